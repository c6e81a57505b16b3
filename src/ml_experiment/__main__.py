"""``python -m ml_experiment`` is the ``ml-experiment`` command."""

from ml_experiment.cli import main

main()
