"""A group's fixed costs: Ray starts on a thread of its own while the driver does everything else.

A local ``ray.init`` takes seconds, mostly waiting on the processes it starts (GCS, API server,
raylet), and needs nothing the driver prepares; the study, the capture and the DataLoader need
nothing of Ray. So Ray comes up on :class:`RayStart`'s thread while the driver does the rest,
and the first trial is dispatched once both are ready. Joining a running cluster, the driver
first connects (a fraction of a second), then does the rest while the job's workers start.
Where nothing before the trials needs it, the knowledge center (MLflow's import and store:
seconds of CPU) opens on the group's writer thread meanwhile (:func:`open_store`), which then
starts the parent run and writes each trial's record.

The thread lives as long as the Ray session: Ray starts its local processes with
``PR_SET_PDEATHSIG``, which fires when the *thread* that started them ends, so it also runs
``ray.shutdown``. :class:`Phases` records when each part ran (``ML_EXPERIMENT_TIMINGS=<file>``
writes them as JSON; the benchmarks read that).
"""

from __future__ import annotations

import contextlib
import contextvars
import json
import os
import sys
import threading
import time
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any, TypeVar

from ml_experiment.exceptions import ConfigError
from ml_experiment.execution._ray import ray_session

if TYPE_CHECKING:
    from ml_experiment.tracking.record import RunRecord

TIMINGS_ENV = "ML_EXPERIMENT_TIMINGS"
T = TypeVar("T")


class Phases:
    """Wall-clock start and end (epoch seconds) of each named part of a group, in order."""

    def __init__(self) -> None:
        self.spans: dict[str, list[float]] = {}
        self._lock = threading.Lock()

    def begin(self, name: str) -> None:
        with self._lock:
            self.spans[name] = [time.time(), float("nan")]

    def end(self, name: str) -> None:
        with self._lock:
            if name in self.spans:
                self.spans[name][1] = time.time()

    @contextlib.contextmanager
    def span(self, name: str) -> Iterator[None]:
        self.begin(name)
        try:
            yield
        finally:
            self.end(name)

    def mark(self, name: str) -> None:
        """An instant (start = end)."""
        now = time.time()
        with self._lock:
            self.spans[name] = [now, now]

    def write(self) -> None:
        """To the file named by ``ML_EXPERIMENT_TIMINGS``, if set (never fails the group)."""
        path = os.environ.get(TIMINGS_ENV)
        if not path:
            return
        with self._lock:
            data = {k: v for k, v in self.spans.items()}
        with contextlib.suppress(OSError), open(path, "w", encoding="utf-8") as f:
            json.dump(data, f, indent=1)


def again_on_import_deadlock(fn: Callable[[], T]) -> T:
    """``fn()``, once more if Python refused an import two threads made at once ("deadlock
    detected by _ModuleLock", modules that import each other): the other one has finished."""
    try:
        return fn()
    except BaseException as exc:
        if "deadlock detected" not in str(exc):
            raise
    return fn()


class RayStart:
    """``ray_session(config)`` entered and left on a thread of its own.

    ``start()`` returns at once, or joining a cluster once connected; ``ready()`` waits until
    Ray is up and raises what starting it raised; ``release()`` lets the thread shut Ray down
    (in the background) and ``close()`` waits for that. With a Ray session already open in
    this process nothing is started.
    """

    def __init__(self, config: Any, phases: Phases | None = None) -> None:
        self.config = config
        self.phases = phases or Phases()
        self._up = threading.Event()
        self._stop = threading.Event()
        self._error: BaseException | None = None
        self._shutdown_error: BaseException | None = None
        self._warm: list[Any] = []  # the warm-up tasks' refs, held while Ray runs
        self._thread: threading.Thread | None = None
        self._inline: contextlib.ExitStack | None = None

    def start(self) -> None:
        if self._thread is not None or self._inline is not None:
            return
        ray = sys.modules.get("ray")
        if ray is not None and ray.is_initialized():  # a session of the caller's: use it
            self._inline = contextlib.ExitStack()
            self._inline.enter_context(ray_session(self.config))
            self._up.set()
            return
        # In the caller's context: its verbosity decides whether Ray forwards workers' output.
        context = contextvars.copy_context()
        self._thread = threading.Thread(
            target=context.run, args=(self._own,), name="ml-experiment-ray", daemon=True
        )
        self._thread.start()
        if self.config.ray_config.address:
            # Joining, the connection is Python work (importing Ray, packing the code) that the
            # study and the capture would slow through the GIL, and the job's workers start only
            # once it is made: first connect, then the rest beside the workers' start (-0.2 s).
            self._up.wait()
            if isinstance(self._error, ConfigError):  # bad input: before anything is written
                raise self._error

    def _own(self) -> None:
        self.phases.begin("ray_start")
        session = None
        try:
            session = again_on_import_deadlock(self._enter)
        except BaseException as exc:
            self._error = exc
        self.phases.end("ray_start")
        if session is not None:
            self._warm = warm_workers(self.config)
        self._up.set()
        if session is None:
            return
        self._stop.wait()
        self.phases.begin("ray_shutdown")
        try:
            session.__exit__(None, None, None)
        except BaseException as exc:
            self._shutdown_error = exc
        finally:
            # Dropped only now: a warm-up cut short by the shutdown would print an error.
            self._warm.clear()
            self.phases.end("ray_shutdown")

    def _enter(self) -> Any:
        session = ray_session(self.config)
        session.__enter__()
        return session

    def ready(self) -> None:
        """Wait for Ray; raise the error that starting it raised."""
        if self._thread is None and self._inline is None:
            self.start()
        self._up.wait()
        if self._error is not None:
            raise self._error

    def warm(self) -> bool:
        """Whether the warm-up tasks have run (their workers are up), or there are none."""
        refs = list(self._warm)
        if not refs:
            return True
        import ray

        try:
            return len(ray.wait(refs, num_returns=len(refs), timeout=0)[0]) == len(refs)
        except Exception:  # best effort, as the warm-up itself
            return True

    def release(self) -> None:
        """Let Ray shut down in the background (the trials are over and told)."""
        self._stop.set()

    def close(self) -> None:
        """Shut Ray down and wait for it (and for a start still under way)."""
        self._stop.set()
        if self._inline is not None:
            inline, self._inline = self._inline, None
            inline.close()
        if self._thread is not None:
            thread, self._thread = self._thread, None
            thread.join()
        if self._shutdown_error is not None:
            error, self._shutdown_error = self._shutdown_error, None
            # The group's outcome is recorded and shown by now: say so, do not fail it.
            print(f"warning: Ray did not shut down cleanly: {error}", file=sys.stderr)


def _warm_worker() -> int:
    """A no-op task: Ray starts a worker process for it, which imports the trial code."""
    import ml_experiment.execution._worker  # noqa: F401

    return os.getpid()


def warm_workers(config: Any) -> list[Any]:
    """One no-op task per slot, shaped like a trial, submitted as soon as Ray is up.

    Joining a running cluster, a new driver's workers are started with its first tasks (~1-2 s
    each: a Python process importing Ray and the trial code); started now, while the driver
    still opens the store and the study, they are ready for the first trial. Best effort.
    """
    need = getattr(config, "resources_per_worker", None)
    if need is None:
        return []
    try:
        import ray

        from ml_experiment.execution._ray import slots

        remote = ray.remote(_warm_worker).options(
            num_cpus=need.cpu, num_gpus=need.gpu or None, max_retries=0
        )
        return [remote.remote() for _ in range(slots(config))]
    except Exception:  # the group's own start says what is wrong, if anything is
        return []


def open_store(group: Any) -> None:
    """The group's recorder on its knowledge center, its experiment checked (or created)."""

    def recorder() -> Any:
        from ml_experiment.tracking._mlflow import MLflowTracker
        from ml_experiment.tracking.recorder import Recorder

        return Recorder(MLflowTracker(group.kc), secrets=group.secrets)

    with group.phases.span("store"):
        group.recorder = again_on_import_deadlock(recorder)
        group.recorder.tracker.experiment_id(group.config.name, "group")
    group.hold.done("store")


def start_parent(group: Any) -> None:
    """The group's parent run started (or, resumed, set running again)."""
    with group.phases.span("parent_run"):
        if group.parent.run_id is None:
            group.sweeper.set_parent_run_id(group.recorder.start(group.parent))
        else:
            group.recorder.tracker.client.update_run(group.parent.run_id, status="RUNNING")


def parent_record(group: Any) -> RunRecord:
    """The group's parent run as it starts: its tags, params and context (code, environment)."""
    from ml_experiment.hpo import public_url
    from ml_experiment.tracking._capture import capture_context
    from ml_experiment.tracking.record import TAG_FUNCTION, TAG_KIND, TAG_SITTINGS, RunRecord

    config, sweeper = group.config, group.sweeper
    record = RunRecord(
        experiment=config.name,
        name=sweeper.study_name,
        run_id=sweeper.parent_run_id,
        tags={
            TAG_KIND: "group",
            TAG_FUNCTION: group.job_fn.name,
            "ml_experiment.study": sweeper.study_name,
            "ml_experiment.study_storage": public_url(group.storage_path),
        },
    )
    if record.run_id is not None:  # resumed: the run has its params and context already
        # Counted at once: a sitting stopped again never reaches the group's end.
        client = group.recorder.tracker.client
        before = client.get_run(record.run_id).data.tags.get(TAG_SITTINGS, "1")
        counted = int(before) + 1 if before.isdigit() else 2  # a study that did not count
        record.tags[TAG_SITTINGS] = str(max(sweeper.sittings, counted))
        client.set_tag(record.run_id, TAG_SITTINGS, record.tags[TAG_SITTINGS])
        return record
    record.tags[TAG_SITTINGS] = str(sweeper.sittings)
    params = {
        **group.fixed,
        **{f"param_space.{k}": str(v) for k, v in group.flat.items()},
        "num_trials": config.num_trials,
        "sampler": config.sampler,
        "pruner": config.pruner,
        "metric": ", ".join(f"{m.name} ({m.direction})" for m in group.metrics),
        "timeout_per_trial": config.timeout_per_trial,
        "seed": config.seed,
    }
    record.params = {k: v for k, v in params.items() if v is not None}
    capture_context(
        record,
        resolved_config=config.resolved_dict(),
        source_file=str(group.script),
        system_info=group.job_fn.options.log_system_info,
    )
    return record


def load_data(group: Any) -> tuple[Any] | None:
    """The DataLoader's data (computed before Ray is needed), its fingerprint on the parent run."""
    loader = group.job_fn.options.data_loader
    if loader is None:
        return None
    from ml_experiment.tracking.fingerprint import fingerprint

    with group.hold.user_code():
        data = loader._compute()
    group.data = {loader.__name__: fingerprint(data)}
    group.parent.data.update(group.data)
    return (data,)
