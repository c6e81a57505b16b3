"""Where a group's trials run: the ``Executor`` interface and its Ray implementation."""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any, Protocol

from ml_experiment.execution._worker import TrialResult, TrialSpec, execute_trial

if TYPE_CHECKING:
    from collections.abc import Hashable


class Executor(Protocol):
    """Runs trials somewhere; the group loop only submits, waits and cancels."""

    slots: int  # trials that fit at once

    def submit(self, spec: TrialSpec) -> Hashable:
        """Start ``spec``; return a handle for it."""

    def wait(self, timeout: float) -> list[tuple[Hashable, TrialResult]]:
        """Trials that ended within ``timeout`` seconds (at least one unless it ran out)."""

    def cancel_all(self) -> None:
        """Stop every trial still running."""


class RayExecutor:
    """Trials as Ray tasks, one per ``resources_per_worker``; over ``timeout_per_trial`` they fail."""

    def __init__(self, config: Any, slots: int) -> None:
        import ray

        self.slots = slots
        self.timeout = config.timeout_per_trial
        self._remote = ray.remote(execute_trial).options(
            num_cpus=config.resources_per_worker.cpu,
            num_gpus=config.resources_per_worker.gpu or None,
            max_retries=0,
        )
        self._started: dict[Any, float] = {}

    def submit(self, spec: TrialSpec) -> Any:
        ref = self._remote.remote(spec)
        self._started[ref] = time.time()
        return ref

    def wait(self, timeout: float) -> list[tuple[Any, TrialResult]]:
        import ray

        if not self._started:
            return []
        if self.timeout is not None:
            oldest = min(self._started.values())
            timeout = min(timeout, max(0.0, oldest + self.timeout - time.time()))
        ready, _ = ray.wait(list(self._started), num_returns=1, timeout=timeout)
        done = [(ref, self._result(ref)) for ref in ready]
        if not ready and self.timeout is not None:
            now = time.time()
            for ref, t0 in list(self._started.items()):
                if now - t0 >= self.timeout:
                    ray.cancel(ref, force=True)
                    done.append((ref, self._timed_out(ref)))
        return done

    def _result(self, ref: Any) -> TrialResult:
        import ray

        t0 = self._started.pop(ref)
        try:
            result: TrialResult = ray.get(ref)
            return result
        except ray.exceptions.RayError as exc:
            text = str(exc).strip()
            first = text.splitlines()[0] if text else ""
            return TrialResult(
                state="fail",
                error=f"the worker process died ({type(exc).__name__}): {first}"[:2000],
                started=t0,
                ended=time.time(),
            )

    def _timed_out(self, ref: Any) -> TrialResult:
        return TrialResult(
            state="fail",
            error=f"timed out: ran longer than timeout_per_trial={self.timeout}s and was stopped",
            started=self._started.pop(ref),
            ended=time.time(),
        )

    def cancel_all(self) -> None:
        import ray

        for ref in self._started:
            ray.cancel(ref, force=True)
        self._started.clear()
