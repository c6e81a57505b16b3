"""The callback protocol: no-op hooks a user overrides; each takes ``**kwargs`` for forward compatibility."""

from __future__ import annotations

from typing import Any


class Callback:
    """Hook into the life of a job.

    Hooks are called in this order: ``on_job_start``; for a group, per trial ``on_trial_start``,
    then ``on_info_logged`` for each batch of metrics/artifacts logged, then ``on_trial_end``;
    finally ``on_job_end``. For an experiment ``on_info_logged`` fires between start and end.
    Group and trial hooks run in the driver process, so they can see the whole study.

    ``config`` is the validated job config. ``trial`` is the live ``optuna.Trial`` in
    ``on_trial_start`` and the finished ``optuna.trial.FrozenTrial`` afterwards. Extra keyword
    arguments carry more context where known: ``run_id``, ``duration`` (seconds), ``step``;
    for a group's ``on_job_end`` also ``best_value``, ``best_params``, ``counts`` and ``study``.

    A callback that raises is logged (its traceback, with notifier secrets masked), disabled
    for the rest of the job and named in the run's ``callbacks.failed`` tag; the run itself is
    unaffected.
    """

    def on_job_start(self, config: Any, **kwargs: Any) -> None:
        """The job is about to run (its runs are created)."""

    def on_job_end(
        self, config: Any, exception: BaseException | None = None, **kwargs: Any
    ) -> None:
        """The job ended; ``exception`` is set when it failed."""

    def on_trial_start(
        self, config: Any, trial: Any, sampled_params: dict[str, Any], **kwargs: Any
    ) -> None:
        """A group trial was sampled and dispatched to a worker."""

    def on_trial_end(
        self,
        config: Any,
        trial: Any,
        metric: Any,
        exception: BaseException | str | None = None,
        **kwargs: Any,
    ) -> None:
        """A group trial finished, failed or was pruned."""

    def on_info_logged(
        self, config: Any, metrics: dict[str, Any], artifacts: dict[str, Any], **kwargs: Any
    ) -> None:
        """Metrics and/or artifacts were logged to the knowledge center."""
