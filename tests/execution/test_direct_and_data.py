"""Direct runs' flag parsing, DataLoader sharing, and the job decorator's argument checks."""

from __future__ import annotations

import pytest

from ml_experiment import DataLoader, job
from ml_experiment.cli._direct import parse_flags
from ml_experiment.exceptions import ConfigError


@job
def _fn(C: float = 1.0, kernel: str = "rbf"):
    return {"a": C}


def test_parse_flags_reads_values_as_data() -> None:
    flags = parse_flags(["--C", "0.5", "--kernel=linear", "--layers", "[1, 2]", "--x", "1e-5"], _fn)
    assert flags == {"C": 0.5, "kernel": "linear", "layers": [1, 2], "x": 1e-5}
    code = "__import__('os').system('true')"
    assert parse_flags(["--kernel", code], _fn) == {"kernel": code}


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["C", "1"], "command line: unexpected argument 'C'; use --<parameter> <value>"),
        (["--C"], "command line: C: --C needs a value"),
        (["--C", "--kernel", "x"], "command line: C: --C needs a value"),
    ],
)
def test_parse_flags_errors(argv: list[str], message: str) -> None:
    with pytest.raises(ConfigError) as info:
        parse_flags(argv, _fn)
    assert str(info.value) == message


def test_data_loader_shared_value_wins_and_is_removed() -> None:
    calls = []

    class Loader(DataLoader):
        @classmethod
        def load_data(cls):
            calls.append(1)
            return [1, 2, 3]

    assert Loader.load_data() == [1, 2, 3] and len(calls) == 1
    Loader._install("shared")
    assert Loader.load_data() == "shared" and len(calls) == 1
    assert Loader._compute() == [1, 2, 3] and len(calls) == 2
    Loader._uninstall()
    assert Loader.load_data() == [1, 2, 3]


def test_job_rejects_bad_arguments() -> None:
    class NotALoader:
        pass

    class NoLoad(DataLoader):
        pass

    with pytest.raises(ConfigError, match="DataLoader subclass"):
        job(data_loader=NotALoader)
    with pytest.raises(ConfigError, match="must implement"):
        job(data_loader=NoLoad)
    with pytest.raises(ConfigError, match="instances"):
        job(callbacks=[DataLoader])


def test_job_accepts_loader_instance_and_keeps_the_function() -> None:
    class L(DataLoader):
        @classmethod
        def load_data(cls):
            return 1

    @job(data_loader=L())
    def main(a: int = 1):
        return {"a": a}

    assert main.options.data_loader is L
    assert main.fn(a=2) == {"a": 2} and main.__name__ == "main"
