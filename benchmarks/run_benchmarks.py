#!/usr/bin/env python
"""ml-experiment against the glue code users write today and Ray Tune, side by side.

One command runs every benchmark, one after the other on this machine, prints a table and writes
``benchmarks/results/latest.json``::

    python benchmarks/run_benchmarks.py                    # everything (several minutes)
    python benchmarks/run_benchmarks.py --only overhead    # or efficiency, memory, import
    python benchmarks/run_benchmarks.py --quick            # a fast smoke run (small sizes)
    python benchmarks/run_benchmarks.py --update-readme    # also refresh benchmarks/README.md

Every system runs as its own command in a fresh temporary working directory (where its stores
land), the way a user would run it:

- ml-experiment: ``ml-experiment run benchmarks/jobs/<job>.yaml``; knowledge center
  ``mlruns.db`` + ``mlartifacts/``, Optuna journal ``optuna-studies.journal``.
- glue: ``python benchmarks/jobs/glue_optuna_mlflow.py`` (Optuna SQLite study, nested MLflow run
  per trial in a SQLite store, sequential).
- ray-tune: ``python benchmarks/jobs/ray_tune_mlflow.py`` (Tune + OptunaSearch +
  MLflowLoggerCallback on a private local Ray).

Timings are read back from what each system persisted (MLflow / Optuna stores), never from its
console output. See benchmarks/README.md for the definitions.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import itertools
import json
import os
import platform
import re
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
JOBS = HERE / "jobs"
EXAMPLES = REPO / "examples" / "quickstart"
RESULTS = HERE / "results"
README = HERE / "README.md"
SEED = 42
SYSTEMS = ("ml-experiment", "glue", "ray-tune")
GIB = 2**30
TIMINGS_ENV = "ML_EXPERIMENT_TIMINGS"
README_START = "<!-- latest-results:start -->"
README_END = "<!-- latest-results:end -->"


class BenchmarkError(RuntimeError):
    """A benchmarked command failed or persisted something unexpected."""


# ---------------------------------------------------------------------------------------------
# Running a command
# ---------------------------------------------------------------------------------------------


def _env(extra: dict[str, str] | None = None) -> dict[str, str]:
    env = dict(os.environ)
    env.pop("MLFLOW_TRACKING_URI", None)
    env.update(
        RAY_USAGE_STATS_ENABLED="0",
        ML_EXPERIMENT_NO_PROGRESS="1",
        MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR="false",
        PYTHONUNBUFFERED="1",
    )
    env.update(extra or {})
    return env


def cli_command() -> list[str]:
    """The installed ``ml-experiment`` console script next to this interpreter (what users type)."""
    script = Path(sys.executable).parent / "ml-experiment"
    return [str(script)] if script.exists() else [sys.executable, "-m", "ml_experiment"]


@dataclass
class Launch:
    """One benchmarked command: when it was started and ended (epoch seconds), where it ran."""

    cmd: list[str]
    cwd: Path
    t_launch: float
    t_exit: float
    memory: MemoryTrace | None = None
    phases: dict[str, list[float]] | None = None  # ML_EXPERIMENT_TIMINGS of a group, if written

    @property
    def wall_s(self) -> float:
        return self.t_exit - self.t_launch


def launch(
    cmd: Sequence[str],
    cwd: Path,
    *,
    env: dict[str, str] | None = None,
    timeout: float = 1800,
    sample_memory_s: float | None = None,
) -> Launch:
    """Run ``cmd`` in ``cwd`` (output to ``cwd/command.log``); optionally sample its memory."""
    log = cwd / "command.log"
    timings = cwd / "timings.json"
    env = {TIMINGS_ENV: str(timings), **(env or {})}
    sampler = None
    with open(log, "wb") as out:
        t0 = time.time()
        proc = subprocess.Popen(
            list(cmd), cwd=cwd, env=_env(env), stdout=out, stderr=subprocess.STDOUT
        )
        if sample_memory_s is not None:
            sampler = MemorySampler(proc.pid, sample_memory_s)
            sampler.start()
        try:
            rc = proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
            raise BenchmarkError(f"{' '.join(cmd)} ran longer than {timeout} s") from None
        finally:
            t1 = time.time()
            if sampler is not None:
                sampler.stop()
    if rc != 0:
        tail = log.read_text(errors="replace")[-3000:]
        raise BenchmarkError(f"{' '.join(cmd)} failed (exit {rc}) in {cwd}; last output:\n{tail}")
    phases = json.loads(timings.read_text()) if timings.exists() else None
    timings.unlink(missing_ok=True)
    return Launch(list(cmd), cwd, t0, t1, sampler.trace() if sampler else None, phases)


# The group's own record of its phases (src/ml_experiment/execution/_startup.py), in the order
# they run: (name in the group's file, what the table calls it, span or instant).
PHASES = (
    ("store", "store", "span"),
    ("study", "study", "span"),
    ("capture", "capture", "span"),
    ("parent_run", "parent run", "span"),
    ("data", "DataLoader", "span"),
    ("ray_start", "Ray start", "span"),
    ("ray_wait", "wait for Ray", "span"),
    ("records", "records", "span"),
    ("finish", "end (record, report, summary)", "span"),
    ("ray_shutdown", "Ray shutdown", "span"),
)


def phase_figures(run: Launch, first_trial: float | None = None) -> dict[str, float]:
    """Seconds per phase of a group command, from the timings the group wrote.

    ``imports`` is launch -> the group starts (interpreter, CLI, job file, the user's script);
    ``first_dispatch``/``first_trial`` are counted from launch; ``exit`` is the group's return
    -> the process ended (interpreter shutdown).
    """
    ph = run.phases or {}
    out: dict[str, float] = {}
    if "group" in ph:
        out["imports"] = round(ph["group"][0] - run.t_launch, 3)
    for key, _, _ in PHASES:
        if key in ph and ph[key][1] == ph[key][1]:  # not NaN: it ended
            out[key] = round(ph[key][1] - ph[key][0], 3)
    if "first_dispatch" in ph:
        out["first_dispatch"] = round(ph["first_dispatch"][0] - run.t_launch, 3)
    if first_trial is not None:
        out["first_trial"] = round(first_trial - run.t_launch, 3)
    if "trials_end" in ph and "end" in ph:
        out["after_trials_to_return"] = round(ph["end"][0] - ph["trials_end"][0], 3)
    if "end" in ph:
        out["exit"] = round(run.t_exit - ph["end"][0], 3)
    return out


# ---------------------------------------------------------------------------------------------
# Memory: PSS of a process tree, sampled
# ---------------------------------------------------------------------------------------------


def _rollup(pid: int) -> dict[str, int] | None:
    """Rss, Pss, Pss_Shmem (bytes) of one process from /proc/<pid>/smaps_rollup (one cheap read)."""
    try:
        with open(f"/proc/{pid}/smaps_rollup", "rb") as f:
            text = f.read()
    except OSError:
        return None
    out: dict[str, int] = {}
    for line in text.splitlines()[1:]:
        key, _, rest = line.partition(b":")
        if key in (b"Rss", b"Pss", b"Pss_Shmem"):
            out[key.decode()] = int(rest.split()[0]) * 1024
    return out if "Pss" in out else None


def _shm_used() -> int:
    """Bytes in use on /dev/shm (tmpfs; Ray's object store lives there on Linux)."""
    try:
        s = os.statvfs("/dev/shm")
    except OSError:
        return 0
    return (s.f_blocks - s.f_bfree) * s.f_frsize


def _label(proc: Any) -> str:
    """A readable name: Ray sets titles like ``ray::IDLE``; Python helpers by their script."""
    try:
        name = proc.name()
        cmd = proc.cmdline()
    except Exception:
        return "?"
    if cmd and cmd[0].startswith("ray::"):
        return cmd[0].split()[0]
    if name.startswith("python") and cmd:
        for arg in cmd[1:]:
            if not arg.startswith("-"):
                return Path(arg).name
        return name
    if cmd and Path(cmd[0]).name == "ml-experiment":
        return "ml-experiment"
    return name


@dataclass
class MemoryTrace:
    """Samples of one process tree: (t, total, pss, rss, pss_shmem, shm_delta, n_procs), and per
    sample the (pid, pss, rss) of every process; ``labels`` names the pids."""

    samples: list[tuple[float, int, int, int, int, int, int]] = field(default_factory=list)
    per_process: list[list[tuple[int, int, int]]] = field(default_factory=list)
    labels: dict[int, str] = field(default_factory=dict)

    def peak_index(self, col: int, window: tuple[float, float] | None = None) -> int | None:
        idx = [
            i
            for i, s in enumerate(self.samples)
            if window is None or window[0] <= s[0] <= window[1]
        ]
        return max(idx, key=lambda i: self.samples[i][col]) if idx else None

    def peak(self, col: int, window: tuple[float, float] | None = None) -> int:
        i = self.peak_index(col, window)
        return self.samples[i][col] if i is not None else 0

    def breakdown(self, i: int | None) -> list[dict[str, Any]]:
        """The processes of sample ``i``, largest PSS first."""
        if i is None:
            return []
        rows = [
            {
                "pid": pid,
                "process": self.labels.get(pid, "?"),
                "pss_mib": round(pss / 2**20, 1),
                "rss_mib": round(rss / 2**20, 1),
            }
            for pid, pss, rss in self.per_process[i]
        ]
        return sorted(rows, key=lambda d: -d["pss_mib"])


_T, _TOTAL, _PSS, _RSS, _SHMEM, _SHM, _N = range(7)


class MemorySampler(threading.Thread):
    """Every ``period`` s: the sum over ``root`` and all its descendants of PSS and RSS.

    PSS (proportional set size) charges each shared page to the processes mapping it in equal
    parts, so summing it over processes counts a shared page once; RSS would count the shared
    object store pages once per process that touched them. /dev/shm pages that no process maps
    any more (still held by tmpfs) are invisible to both, so the growth of /dev/shm beyond the
    shared memory the tree maps (``Pss_Shmem``) is added to the total.
    """

    def __init__(self, root_pid: int, period: float) -> None:
        super().__init__(daemon=True)
        self.root_pid = root_pid
        self.period = period
        self.shm0 = _shm_used()
        self._stop_event = threading.Event()
        self._trace = MemoryTrace()

    def stop(self) -> None:
        self._stop_event.set()
        self.join(timeout=10)

    def trace(self) -> MemoryTrace:
        return self._trace

    def _remember_label(self, proc: Any, refresh: bool) -> None:
        # Ray retitles a worker (ray::IDLE <-> ray::execute_trial): keep the busy title once seen.
        old = self._trace.labels.get(proc.pid)
        if old is None or (refresh and old == "ray::IDLE"):
            self._trace.labels[proc.pid] = _label(proc)

    def run(self) -> None:
        import psutil

        try:
            root = psutil.Process(self.root_pid)
        except psutil.NoSuchProcess:
            return
        n = 0
        while not self._stop_event.is_set():
            t0 = time.time()
            try:
                procs = [root, *root.children(recursive=True)]
            except psutil.Error:
                break
            per = [(p, r) for p in procs if (r := _rollup(p.pid)) is not None]
            pss = sum(r["Pss"] for _, r in per)
            rss = sum(r.get("Rss", 0) for _, r in per)
            shmem = sum(r.get("Pss_Shmem", 0) for _, r in per)
            shm = max(0, _shm_used() - self.shm0)
            total = pss + max(0, shm - shmem)
            self._trace.samples.append((t0, total, pss, rss, shmem, shm, len(per)))
            self._trace.per_process.append([(p.pid, r["Pss"], r.get("Rss", 0)) for p, r in per])
            for p, _ in per:
                self._remember_label(p, refresh=n % 10 == 0)
            n += 1
            self._stop_event.wait(max(0.0, self.period - (time.time() - t0)))


# ---------------------------------------------------------------------------------------------
# Reading back what each system persisted
# ---------------------------------------------------------------------------------------------


@dataclass
class TrialTimes:
    """One trial, epoch seconds: its function started / ended, and when it was fully persisted."""

    start: float
    end: float
    persisted: float


def _mlflow_runs(db: Path, experiment: str | None = None) -> list[Any]:
    from mlflow.entities import ViewType
    from mlflow.tracking import MlflowClient

    client = MlflowClient(f"sqlite:///{db}")
    exps = client.search_experiments(view_type=ViewType.ALL)
    runs: list[Any] = []
    for e in exps:
        if experiment is not None and e.name != experiment:
            continue
        token = None
        while True:
            page = client.search_runs(
                [e.experiment_id], run_view_type=ViewType.ALL, max_results=1000, page_token=token
            )
            runs.extend(page)
            token = page.token
            if not token:
                break
    return runs


def read_ml_experiment(workdir: Path, study_name: str) -> tuple[list[TrialTimes], list[Any]]:
    """Children of the group's parent run (start/end inside the worker) + the Optuna journal.

    A trial is persisted when both the study was told its result (``datetime_complete``) and
    its child run's metrics were written (the metric's timestamp); the later of the two.
    """
    import optuna
    from mlflow.tracking import MlflowClient

    runs = _mlflow_runs(workdir / "mlruns.db")
    parents = [r for r in runs if "mlflow.parentRunId" not in r.data.tags]
    children = [r for r in runs if "mlflow.parentRunId" in r.data.tags]
    if len(parents) != 1:
        raise BenchmarkError(f"expected one parent run in {workdir}, found {len(parents)}")
    storage = optuna.storages.JournalStorage(
        optuna.storages.journal.JournalFileBackend(str(workdir / "optuna-studies.journal"))
    )
    study = optuna.load_study(study_name=study_name, storage=storage)
    told = {t.number: t.datetime_complete.timestamp() for t in study.trials if t.datetime_complete}
    client = MlflowClient(f"sqlite:///{workdir / 'mlruns.db'}")
    trials = []
    for r in children:
        number = int(r.data.tags["ml_experiment.trial_number"])
        written = (
            max(m.timestamp for m in client.get_metric_history(r.info.run_id, "duration_s")) / 1000
        )
        trials.append(
            TrialTimes(
                r.info.start_time / 1000,
                r.info.end_time / 1000,
                max(written, told.get(number, 0.0)),
            )
        )
    return trials, children


def read_glue(workdir: Path, study_name: str) -> list[TrialTimes]:
    """The Optuna SQLite study: a trial starts when asked and is persisted when told.

    The objective's MLflow run is written inside the trial, so ``datetime_complete`` comes after
    it; the function's own end is not recorded separately (end = persisted).
    """
    import optuna

    study = optuna.load_study(study_name=study_name, storage=f"sqlite:///{workdir / 'optuna.db'}")
    runs = _mlflow_runs(workdir / "mlruns.db", study_name)
    nested = [r for r in runs if "mlflow.parentRunId" in r.data.tags]
    if len(nested) != len(study.trials):
        raise BenchmarkError(
            f"glue: {len(study.trials)} trials but {len(nested)} nested MLflow runs"
        )
    return [
        TrialTimes(
            t.datetime_start.timestamp(),
            t.datetime_complete.timestamp(),
            t.datetime_complete.timestamp(),
        )
        for t in study.trials
        if t.datetime_complete is not None
    ]


def read_tune(workdir: Path, experiment: str) -> list[TrialTimes]:
    """MLflow runs of the Tune callback: the function's ``t_start``/``t_end`` metrics; persisted
    when the callback ended the run (its ``end_time``)."""
    runs = _mlflow_runs(workdir / "mlruns.db", experiment)
    return [
        TrialTimes(r.data.metrics["t_start"], r.data.metrics["t_end"], r.info.end_time / 1000)
        for r in runs
        if r.info.end_time and "t_start" in r.data.metrics
    ]


# ---------------------------------------------------------------------------------------------
# Figures
# ---------------------------------------------------------------------------------------------


def overhead_figures(trials: Sequence[TrialTimes], run: Launch | None = None) -> dict[str, Any]:
    """Per-trial overhead of trivial trials.

    total: first trial start -> last trial persisted. Per-trial intervals: between consecutive
    persisted completions, the first one measured from the first trial start (so the intervals
    add up to the total and their mean is total / n).
    """
    if not trials:
        raise BenchmarkError("no trials were persisted")
    first = min(t.start for t in trials)
    done = sorted(t.persisted for t in trials)
    marks = [first, *done]
    intervals = [b - a for a, b in itertools.pairwise(marks)]
    total = done[-1] - first
    out: dict[str, Any] = {
        "trials": len(trials),
        "total_s": round(total, 3),
        "median_ms": round(statistics.median(intervals) * 1000, 2),
        "mean_ms": round(total / len(trials) * 1000, 2),
        "p90_ms": round(_quantile(intervals, 0.9) * 1000, 2),
    }
    if run is not None:
        out.update(
            startup_s=round(first - run.t_launch, 3),
            after_last_s=round(run.t_exit - done[-1], 3),
            command_s=round(run.wall_s, 3),
        )
    return out


def efficiency_figures(
    trials: Sequence[TrialTimes], workers: int, cpu_s: float, run: Launch | None = None
) -> dict[str, Any]:
    """Parallel efficiency: (sum of trial durations / workers) / (last trial end - first trial start).

    ``nominal`` uses the trials' nominal CPU time instead of their measured durations (so it also
    charges trials slowed down by contention): n * cpu_s / workers over the same span.
    """
    if not trials:
        raise BenchmarkError("no trials were persisted")
    first = min(t.start for t in trials)
    last = max(t.end for t in trials)
    span = last - first
    busy = sum(t.end - t.start for t in trials)
    out: dict[str, Any] = {
        "trials": len(trials),
        "workers": workers,
        "cpu_s_per_trial": cpu_s,
        "span_s": round(span, 3),
        "sum_trial_s": round(busy, 3),
        "efficiency": round(busy / workers / span, 4),
        "nominal_efficiency": round(len(trials) * cpu_s / workers / span, 4),
        "median_trial_s": round(statistics.median(t.end - t.start for t in trials), 3),
    }
    if run is not None:
        out.update(startup_s=round(first - run.t_launch, 3), command_s=round(run.wall_s, 3))
    return out


def _quantile(values: Sequence[float], q: float) -> float:
    s = sorted(values)
    return s[min(len(s) - 1, int(q * len(s)))]


def _loadavg() -> list[float]:
    try:
        return [round(x, 2) for x in os.getloadavg()]
    except OSError:
        return []


# ---------------------------------------------------------------------------------------------
# The benchmarks
# ---------------------------------------------------------------------------------------------


def _workdir(tag: str) -> Path:
    return Path(
        tempfile.mkdtemp(prefix=f"mlxb-{tag}-", dir="/tmp" if os.path.isdir("/tmp") else None)
    )


def _cleanup(path: Path, keep: bool) -> None:
    if keep:
        print(f"  (kept {path})", flush=True)
    else:
        shutil.rmtree(path, ignore_errors=True)


def run_ml_experiment(
    job: str,
    trials: int,
    *,
    env: dict[str, str] | None = None,
    sample_memory_s: float | None = None,
    keep: bool = False,
    extra_args: Sequence[str] = (),
) -> tuple[Launch, list[TrialTimes], list[Any]]:
    """``ml-experiment run benchmarks/jobs/<job>.yaml --num_trials N`` in a fresh folder."""
    wd = _workdir(f"mlx-{job}")
    try:
        run = launch(
            [
                *cli_command(),
                "run",
                str(JOBS / f"{job}.yaml"),
                "--num_trials",
                str(trials),
                *extra_args,
            ],
            wd,
            env=env,
            sample_memory_s=sample_memory_s,
        )
        name = {
            "trivial": "bench-overhead",
            "busy": "bench-efficiency",
            "shared_data": "bench-memory",
        }[job]
        times, children = read_ml_experiment(wd, name)
    finally:
        _cleanup(wd, keep)
    if len(times) != trials:
        raise BenchmarkError(f"ml-experiment {job}: {len(times)} child runs for {trials} trials")
    return run, times, children


def bench_overhead_ml_experiment(trials: int, keep: bool = False) -> dict[str, Any]:
    run, times, _ = run_ml_experiment("trivial", trials, keep=keep)
    first = min(t.start for t in times)
    return {"workers": 2, **overhead_figures(times, run), "phases": phase_figures(run, first)}


def bench_overhead_glue(trials: int, keep: bool = False) -> dict[str, Any]:
    wd = _workdir("glue")
    try:
        run = launch(
            [
                sys.executable,
                str(JOBS / "glue_optuna_mlflow.py"),
                "--trials",
                str(trials),
                "--seed",
                str(SEED),
            ],
            wd,
        )
        times = read_glue(wd, "bench-glue")
    finally:
        _cleanup(wd, keep)
    if len(times) != trials:
        raise BenchmarkError(f"glue: {len(times)} trials persisted for {trials}")
    return {"workers": 1, **overhead_figures(times, run)}


def run_tune(
    trials: int, workload: str, cpu_s: float, keep: bool
) -> tuple[Launch, list[TrialTimes]]:
    wd = _workdir("tune")
    try:
        run = launch(
            [
                sys.executable,
                str(JOBS / "ray_tune_mlflow.py"),
                "--trials",
                str(trials),
                "--seed",
                str(SEED),
                "--workload",
                workload,
                "--cpu-s",
                str(cpu_s),
                "--num-cpus",
                "2",
            ],
            wd,
        )
        times = read_tune(wd, "bench-tune")
    finally:
        _cleanup(wd, keep)
    if len(times) != trials:
        raise BenchmarkError(f"ray-tune: {len(times)} trials persisted for {trials}")
    return run, times


def bench_overhead_tune(trials: int, keep: bool = False) -> dict[str, Any]:
    run, times = run_tune(trials, "trivial", 0.0, keep)
    return {"workers": 2, **overhead_figures(times, run)}


def bench_efficiency_ml_experiment(trials: int, cpu_s: float, keep: bool = False) -> dict[str, Any]:
    run, times, _ = run_ml_experiment(
        "busy", trials, keep=keep, extra_args=["--params", json.dumps({"cpu_s": cpu_s})]
    )
    return efficiency_figures(times, 2, cpu_s, run)


def bench_efficiency_tune(trials: int, cpu_s: float, keep: bool = False) -> dict[str, Any]:
    run, times = run_tune(trials, "busy", cpu_s, keep)
    return efficiency_figures(times, 2, cpu_s, run)


def _first_trial_after(db: Path, t_launch: float) -> float:
    """The earliest child run that started after ``t_launch`` (a later command in one folder)."""
    starts = [
        r.info.start_time / 1000
        for r in _mlflow_runs(db)
        if "mlflow.parentRunId" in r.data.tags and r.info.start_time / 1000 >= t_launch
    ]
    if not starts:
        raise BenchmarkError(f"no trial of the command launched at {t_launch} in {db}")
    return min(starts)


def _startup_row(run: Launch, first: float) -> dict[str, Any]:
    ph = phase_figures(run, first)
    group = (run.phases or {}).get("group", [run.t_launch])[0]
    return {
        "first_trial_s": round(first - run.t_launch, 3),
        "first_trial_from_group_s": round(first - group, 3),
        "command_s": round(run.wall_s, 3),
        "phases": ph,
    }


def _bare_row(run: Launch) -> dict[str, Any]:
    """``jobs/bare_ray.py``'s first task, from its launch."""
    text = (run.cwd / "command.log").read_text(errors="replace")
    found = re.findall(r"^first_task (\S+)$", text, flags=re.M)
    if not found:
        raise BenchmarkError(f"bare_ray.py printed no first task: {text[-2000:]}")
    return {
        "first_trial_s": round(float(found[-1]) - run.t_launch, 3),
        "command_s": round(run.wall_s, 3),
        "phases": {},
    }


@contextlib.contextmanager
def ray_head(num_cpus: int = 2) -> Iterator[tuple[str, dict[str, str]]]:
    """``ray start --head --block`` on 127.0.0.1 (no dashboard), stopped by its process group."""
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = int(s.getsockname()[1])
    temp = tempfile.mkdtemp(prefix="mlxb-head-", dir="/tmp")
    env = _env({"RAY_AUTH_MODE": "disabled"})
    cmd = [
        str(Path(sys.executable).parent / "ray"), "start", "--head", "--block",
        "--node-ip-address=127.0.0.1", f"--port={port}", f"--num-cpus={num_cpus}",
        f"--temp-dir={temp}", "--include-dashboard=false", "--disable-usage-stats",
    ]  # fmt: skip
    proc = subprocess.Popen(
        cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        start_new_session=True,
    )  # fmt: skip
    try:
        deadline = time.time() + 120
        while True:
            if proc.poll() is not None:
                raise BenchmarkError(f"ray start --head exited with {proc.returncode}")
            if time.time() > deadline:
                raise BenchmarkError("ray start --head did not open its port in 120 s")
            with socket.socket() as s:
                if s.connect_ex(("127.0.0.1", port)) == 0:
                    break
            time.sleep(0.3)
        yield f"127.0.0.1:{port}", {"RAY_AUTH_MODE": "disabled"}
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
        shutil.rmtree(temp, ignore_errors=True)


def bench_startup(repeats: int, keep: bool = False) -> dict[str, Any]:
    """Command -> first trial running, 4 trivial trials: a fresh folder, a folder whose store
    exists, and a folder whose store exists with ``ray_config.address`` naming a running local
    head (``ray start --head``); ``repeats`` commands each, medians reported."""
    trivial = [*cli_command(), "run", str(JOBS / "trivial.yaml"), "--num_trials", "4"]
    rows: dict[str, list[dict[str, Any]]] = {
        "fresh": [], "existing_store": [], "warm": [], "bare_ray": [],
    }  # fmt: skip
    for _ in range(repeats):
        wd = _workdir("start-fresh")
        try:
            run = launch(trivial, wd)
            rows["fresh"].append(_startup_row(run, _first_trial_after(wd / "mlruns.db", 0)))
            run = launch(trivial, wd)  # the same folder again: its store exists
            first = _first_trial_after(wd / "mlruns.db", run.t_launch)
            rows["existing_store"].append(_startup_row(run, first))
        finally:
            _cleanup(wd, keep)
    with ray_head() as (address, env):
        wd = _workdir("start-warm")
        try:
            warm = [*trivial, "--ray_config", json.dumps({"address": address})]
            launch(warm, wd, env=env)  # the store is made and the head has run a job once
            for _ in range(repeats):
                run = launch(warm, wd, env=env)
                first = _first_trial_after(wd / "mlruns.db", run.t_launch)
                rows["warm"].append(_startup_row(run, first))
            # The floor: Ray alone, joining the same head with the same code shipped.
            bare = [sys.executable, str(JOBS / "bare_ray.py"), address, str(JOBS)]
            for _ in range(repeats):
                run = launch(bare, wd, env=env)
                rows["bare_ray"].append(_bare_row(run))
        finally:
            _cleanup(wd, keep)
    out: dict[str, Any] = {"repeats": repeats, "runs": rows}
    for kind, runs in rows.items():
        out[kind] = {
            key: round(statistics.median(r[key] for r in runs), 3)
            for key in ("first_trial_s", "first_trial_from_group_s", "command_s")
            if all(key in r for r in runs)
        }
        names = {k for r in runs for k in r["phases"]}
        out[kind]["phases"] = {
            k: round(statistics.median(r["phases"][k] for r in runs if k in r["phases"]), 3)
            for k in sorted(names)
        }
    return out


def bench_main_job(keep: bool = False) -> dict[str, Any]:
    """The README's main job (examples/quickstart/svm_group.yaml, 40 iris SVM trials) end to
    end, against the same search as glue code (jobs/glue_svm.py): each command's wall time."""
    out: dict[str, Any] = {}
    wd = _workdir("main-mlx")
    try:
        run = launch([*cli_command(), "run", str(EXAMPLES / "svm_group.yaml")], wd)
        times, _ = read_ml_experiment(wd, "SVM")
        first = min(t.start for t in times)
        out["ml-experiment"] = {
            "trials": len(times),
            "command_s": round(run.wall_s, 3),
            "startup_s": round(first - run.t_launch, 3),
            "trial_phase_s": round(max(t.persisted for t in times) - first, 3),
            "phases": phase_figures(run, first),
        }
    finally:
        _cleanup(wd, keep)
    wd = _workdir("main-glue")
    try:
        run = launch([sys.executable, str(JOBS / "glue_svm.py"), "--trials", "40"], wd)
        times = read_glue(wd, "SVM")
        first = min(t.start for t in times)
        out["glue"] = {
            "trials": len(times),
            "command_s": round(run.wall_s, 3),
            "startup_s": round(first - run.t_launch, 3),
            "trial_phase_s": round(max(t.persisted for t in times) - first, 3),
        }
    finally:
        _cleanup(wd, keep)
    out["command_ratio_to_glue"] = round(
        out["ml-experiment"]["command_s"] / out["glue"]["command_s"], 3
    )
    return out


# What `import ml_experiment` and the public names pull in: a user's script pays this before
# anything runs. Heavy libraries must stay out (the test suite checks that; the time is here).
IMPORT_CODE = (
    "import time; t = time.perf_counter(); import ml_experiment; "
    "from ml_experiment import job, DataLoader, Trial, AutologgingBackend; "
    "import ml_experiment.integrations, ml_experiment.callbacks.notifiers; "
    "dt = time.perf_counter() - t; import sys, json; "
    "print(json.dumps([dt, [m for m in ('mlflow', 'optuna', 'ray', 'torch', 'tensorflow', "
    "'xgboost') if m in sys.modules]]))"
)
IMPORT_TARGET_S = 0.3


def bench_import(repeats: int) -> dict[str, Any]:
    """``import ml_experiment`` in fresh interpreters: best and median of ``repeats``."""
    times: list[float] = []
    heavy: set[str] = set()
    for _ in range(repeats):
        out = subprocess.run(
            [sys.executable, "-c", IMPORT_CODE], capture_output=True, text=True, timeout=120
        )
        if out.returncode != 0:
            raise BenchmarkError(f"import ml_experiment failed: {out.stderr.strip()[-500:]}")
        dt_s, loaded = json.loads(out.stdout.strip().splitlines()[-1])
        times.append(float(dt_s))
        heavy.update(loaded)
    return {
        "runs": repeats,
        "best_s": round(min(times), 4),  # the best: a cold disk cache is not the package's cost
        "median_s": round(statistics.median(times), 4),
        "heavy_modules": sorted(heavy),
    }


def bench_memory(
    trials: int, data_mib: int, sample_s: float = 0.05, keep: bool = False
) -> dict[str, Any]:
    """Peak memory of the whole process tree of ``ml-experiment run`` while trials share an array."""
    run, times, children = run_ml_experiment(
        "shared_data",
        trials,
        env={"MLX_BENCH_DATA_MIB": str(data_mib)},
        sample_memory_s=sample_s,
        keep=keep,
    )
    trace = run.memory
    assert trace is not None
    if not trace.samples:
        raise BenchmarkError("no memory samples were taken")
    window = (min(t.start for t in times), max(t.end for t in times))
    gaps = [b[_T] - a[_T] for a, b in zip(trace.samples, trace.samples[1:], strict=False)]
    in_window = [x for x in trace.samples if window[0] <= x[_T] <= window[1]]
    ipeak = trace.peak_index(_TOTAL)
    peak_t = trace.samples[ipeak][_T] if ipeak is not None else 0.0
    phase = (
        "trials"
        if window[0] <= peak_t <= window[1]
        else (
            "before trials (load_data, fingerprint, ray.put)"
            if peak_t < window[0]
            else "after trials"
        )
    )
    return {
        "trials": trials,
        "workers": 2,
        "data_mib": data_mib,
        "peak_total_gib": round(trace.peak(_TOTAL) / GIB, 3),
        "peak_pss_gib": round(trace.peak(_PSS) / GIB, 3),
        "peak_rss_gib": round(trace.peak(_RSS) / GIB, 3),
        "peak_shm_gib": round(trace.peak(_SHM) / GIB, 3),
        "peak_total_during_trials_gib": round(trace.peak(_TOTAL, window) / GIB, 3),
        "median_total_during_trials_gib": round(
            statistics.median(x[_TOTAL] for x in in_window) / GIB if in_window else 0.0, 3
        ),
        "peak_rss_during_trials_gib": round(trace.peak(_RSS, window) / GIB, 3),
        "peak_phase": phase,
        "peak_at_s": round(peak_t - run.t_launch, 2),
        "peak_processes": trace.breakdown(ipeak),
        "peak_processes_during_trials": trace.breakdown(trace.peak_index(_TOTAL, window)),
        "max_processes": max(s[_N] for s in trace.samples),
        "samples": len(trace.samples),
        "sample_interval_ms": round(statistics.median(gaps) * 1000, 1) if gaps else None,
        "zero_copy_trials": sum(1 for r in children if r.data.metrics.get("zero_copy") == 1.0),
        "trials_phase_s": [round(window[0] - run.t_launch, 2), round(window[1] - run.t_launch, 2)],
        "command_s": round(run.wall_s, 3),
    }


# ---------------------------------------------------------------------------------------------
# Orchestration, table, README
# ---------------------------------------------------------------------------------------------


def _step(
    results: dict[str, Any], section: str, key: str, fn: Any, *args: Any, **kwargs: Any
) -> None:
    print(f"- {section}: {key} ...", flush=True)
    before = _loadavg()
    t0 = time.time()
    try:
        value = fn(*args, **kwargs)
    except BenchmarkError as exc:
        value = {"error": str(exc)}
        print(f"  FAILED: {exc}", flush=True)
    value["loadavg_before"] = before
    value["loadavg_after"] = _loadavg()
    results.setdefault(section, {})[key] = value
    print(f"  done in {time.time() - t0:.1f} s: {_brief(value)}", flush=True)


def _brief(v: dict[str, Any]) -> str:
    keys = (
        "median_ms",
        "mean_ms",
        "total_s",
        "startup_s",
        "efficiency",
        "peak_total_gib",
        "peak_rss_gib",
        "best_s",
        "command_ratio_to_glue",
    )
    return ", ".join(f"{k}={v[k]}" for k in keys if k in v) or str(v.get("error", ""))[:200]


def _meta(argv: Sequence[str]) -> dict[str, Any]:
    from importlib.metadata import PackageNotFoundError, version

    def ver(name: str) -> str | None:
        try:
            return version(name)
        except PackageNotFoundError:
            return None

    cpu = platform.processor() or ""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    try:
        import psutil

        mem_gib = round(psutil.virtual_memory().total / GIB, 1)
    except ImportError:
        mem_gib = None
    commit = subprocess.run(
        ["git", "rev-parse", "--short", "HEAD"], cwd=REPO, capture_output=True, text=True
    )
    now = dt.datetime.now(dt.UTC)
    return {
        "date_utc": now.isoformat(timespec="seconds"),
        "date": now.date().isoformat(),
        "cpus": os.cpu_count(),
        "cpu_model": cpu,
        "memory_gib": mem_gib,
        "os": platform.platform(),
        "python": platform.python_version(),
        "versions": {p: ver(p) for p in ("ml-experiment", "mlflow", "optuna", "ray", "numpy")},
        "git_commit": commit.stdout.strip() or None,
        "command": " ".join(["python benchmarks/run_benchmarks.py", *argv]),
    }


def _targets(results: dict[str, Any]) -> dict[str, Any]:
    """The issue's acceptance targets, checked against this invocation's figures."""
    out: dict[str, Any] = {}
    ov = results.get("overhead", {})
    mlx, glue, tune = (ov.get(k, {}) for k in SYSTEMS)
    if "median_ms" in mlx:
        out["overhead_median_ms<=30"] = mlx["median_ms"] <= 30
        if "median_ms" in glue:
            out["ratio_to_glue"] = round(mlx["median_ms"] / glue["median_ms"], 3)
            out["ratio_to_glue<0.6"] = out["ratio_to_glue"] < 0.6
        if "command_s" in glue and "command_s" in mlx:
            out["command_ratio_to_glue"] = round(mlx["command_s"] / glue["command_s"], 3)
            out["command_ratio_to_glue<=0.6"] = out["command_ratio_to_glue"] <= 0.6
        if "median_ms" in tune:
            out["ratio_to_ray_tune"] = round(mlx["median_ms"] / tune["median_ms"], 3)
            out["ratio_to_ray_tune<0.25"] = out["ratio_to_ray_tune"] < 0.25
    st = results.get("startup", {}).get("ml-experiment", {})
    for kind, limit in STARTUP_TARGETS.items():
        if kind in st:
            out[f"first_trial_{kind}_s<={limit}"] = st[kind]["first_trial_s"] <= limit
    if "warm" in st and "bare_ray" in st:  # what the group adds to Ray's own floor
        out["first_trial_warm_over_bare_ray_s"] = round(
            st["warm"]["first_trial_s"] - st["bare_ray"]["first_trial_s"], 3
        )
    main_job = results.get("main_job", {}).get("README main job", {})
    if "command_ratio_to_glue" in main_job:
        out["main_job_command_ratio_to_glue"] = main_job["command_ratio_to_glue"]
    eff = results.get("efficiency", {}).get("ml-experiment", {})
    if "efficiency" in eff:
        out["efficiency>=0.9"] = eff["efficiency"] >= 0.9
    mem = results.get("memory", {}).get("ml-experiment", {})
    if "peak_total_gib" in mem:
        out["memory_peak<=1.5GiB"] = mem["peak_total_gib"] <= 1.5
    imp = results.get("import", {}).get("ml-experiment", {})
    if "best_s" in imp:
        out[f"import_s<{IMPORT_TARGET_S}"] = imp["best_s"] < IMPORT_TARGET_S
        out["import_no_heavy_module"] = imp["heavy_modules"] == []
    return out


# Issue 14: command -> first trial running (s) in a fresh folder, a folder whose store exists,
# and with a running local head (``ray_config.address``).
STARTUP_TARGETS = {"fresh": 4.0, "existing_store": 3.5, "warm": 1.5}


def _fmt(v: Any, nd: int = 1) -> str:
    if v is None or v == "":
        return "-"
    if isinstance(v, float):
        return f"{v:.{nd}f}"
    return str(v)


def render_markdown(results: dict[str, Any]) -> str:
    """The figures as markdown tables (printed, and kept in benchmarks/README.md)."""
    meta = results.get("meta", {})
    lines = [
        f"Measured {meta.get('date', '?')} (UTC) side by side in one invocation "
        f"(`{meta.get('command', 'python benchmarks/run_benchmarks.py')}`) on this "
        f"{meta.get('cpus', '?')}-core machine ({meta.get('cpu_model', '?')}, "
        f"{meta.get('memory_gib', '?')} GiB RAM); ml-experiment {meta.get('versions', {}).get('ml-experiment')}, "
        f"MLflow {meta.get('versions', {}).get('mlflow')}, Optuna {meta.get('versions', {}).get('optuna')}, "
        f"Ray {meta.get('versions', {}).get('ray')}, Python {meta.get('python')}.",
        "",
    ]
    ov = results.get("overhead")
    if ov:
        n = next((v.get("trials") for v in ov.values() if "trials" in v), "?")
        lines += [
            f"**Per-trial overhead**, {n} trivial trials (`x**2`), TPE seed {SEED}, SQLite MLflow store:",
            "",
            "| system | workers | median ms/trial | mean ms/trial | trial phase s | startup s | command s | load avg (1 min) |",
            "|---|---|---|---|---|---|---|---|",
        ]
        for k in SYSTEMS:
            v = ov.get(k)
            if not v:
                continue
            if "error" in v:
                lines.append(f"| {k} | failed: {v['error'][:80]} |||||||")
                continue
            lines.append(
                f"| {k} | {v['workers']} | {_fmt(v['median_ms'])} | {_fmt(v['mean_ms'])} | {_fmt(v['total_s'], 2)} "
                f"| {_fmt(v.get('startup_s'), 2)} | {_fmt(v.get('command_s'), 1)} "
                f"| {_fmt((v.get('loadavg_before') or [None])[0], 2)} |"
            )
        lines.append("")
        ph = ov.get("ml-experiment", {}).get("phases")
        if ph:
            lines += [_phase_line(ph), ""]
    st = results.get("startup", {}).get("ml-experiment")
    if st and "error" not in st:
        lines += [
            f"**Command to first trial**, ml-experiment, 4 trivial trials, median of "
            f"{st['repeats']} commands each:",
            "",
            "| folder | first trial s (from launch) | from the group's start s | command s "
            "| imports s | store s | Ray start s | waited for Ray s | Ray shutdown s |",
            "|---|---|---|---|---|---|---|---|---|",
        ]
        names = {
            "fresh": "fresh (new store)",
            "existing_store": "store exists",
            "warm": "store exists, running local head (`ray_config.address`)",
            "bare_ray": "floor: a bare Ray driver on that head (`ray.init` + one task)",
        }
        for kind, label in names.items():
            v = st.get(kind)
            if not v:
                continue
            p = v["phases"]
            lines.append(
                f"| {label} | {_fmt(v['first_trial_s'], 2)} | {_fmt(v.get('first_trial_from_group_s'), 2)} "
                f"| {_fmt(v['command_s'], 1)} | {_fmt(p.get('imports'), 2)} | {_fmt(p.get('store'), 2)} "
                f"| {_fmt(p.get('ray_start'), 2)} | {_fmt(p.get('ray_wait'), 2)} "
                f"| {_fmt(p.get('ray_shutdown'), 2)} |"
            )
        lines.append("")
    mj = results.get("main_job", {}).get("README main job")
    if mj and "error" not in mj:
        lines += [
            "**The README's main job** end to end (`ml-experiment run "
            "examples/quickstart/svm_group.yaml`, 40 iris SVM trials on 2 workers, with its "
            "report) against the same search as glue code (`jobs/glue_svm.py`, sequential):",
            "",
            "| system | trials | command s | startup s | trial phase s |",
            "|---|---|---|---|---|",
        ]
        for k in ("ml-experiment", "glue"):
            v = mj[k]
            lines.append(
                f"| {k} | {v['trials']} | {_fmt(v['command_s'], 1)} | {_fmt(v['startup_s'], 2)} "
                f"| {_fmt(v['trial_phase_s'], 2)} |"
            )
        lines += ["", _phase_line(mj["ml-experiment"]["phases"]), ""]
    eff = results.get("efficiency")
    if eff:
        v0 = next((v for v in eff.values() if "trials" in v), {})
        lines += [
            f"**Parallel efficiency**, {v0.get('trials', '?')} CPU-bound trials of "
            f"{v0.get('cpu_s_per_trial', '?')} s CPU on 2 workers:",
            "",
            "| system | efficiency | nominal efficiency | span s | sum of trial s | median trial s | startup s "
            "| command s | load avg (1 min) |",
            "|---|---|---|---|---|---|---|---|---|",
        ]
        for k in SYSTEMS:
            v = eff.get(k)
            if not v:
                continue
            if "error" in v:
                lines.append(f"| {k} | failed: {v['error'][:80]} ||||||||")
                continue
            lines.append(
                f"| {k} | {_fmt(v['efficiency'], 3)} | {_fmt(v['nominal_efficiency'], 3)} | {_fmt(v['span_s'], 2)} "
                f"| {_fmt(v['sum_trial_s'], 2)} | {_fmt(v['median_trial_s'], 2)} | {_fmt(v.get('startup_s'), 2)} "
                f"| {_fmt(v.get('command_s'), 1)} | {_fmt((v.get('loadavg_before') or [None])[0], 2)} |"
            )
        if "glue" not in eff:
            lines.append(
                "| glue | - (sequential: one trial at a time, at most 0.5 on 2 workers) ||||||||"
            )
        lines.append("")
    mem = results.get("memory")
    if mem:
        lines += [
            "**Peak memory**, ml-experiment, trials on 2 workers sharing a DataLoader array "
            "(whole process tree of the command):",
            "",
            "| run | array MiB | trials | peak total GiB (PSS + unmapped /dev/shm) | peak during trials GiB "
            "| median during trials GiB | peak RSS sum GiB | peak /dev/shm GiB | peak when | zero-copy trials |",
            "|---|---|---|---|---|---|---|---|---|---|",
        ]
        for k, v in mem.items():
            if "error" in v:
                lines.append(f"| {k} | failed: {v['error'][:80]} |||||||||")
                continue
            lines.append(
                f"| {k} | {v['data_mib']} | {v['trials']} | {_fmt(v['peak_total_gib'], 2)} "
                f"| {_fmt(v['peak_total_during_trials_gib'], 2)} "
                f"| {_fmt(v.get('median_total_during_trials_gib'), 2)} | {_fmt(v['peak_rss_gib'], 2)} "
                f"| {_fmt(v['peak_shm_gib'], 2)} | {v['peak_phase']} | {v['zero_copy_trials']}/{v['trials']} |"
            )
        lines.append("")
    imp = results.get("import", {}).get("ml-experiment")
    if imp:
        if "error" in imp:
            lines += [f"**Import time**: failed: {imp['error'][:200]}", ""]
        else:
            lines += [
                f"**Import time** of `ml_experiment` and its public names, fresh interpreter, "
                f"best of {imp['runs']}: {_fmt(imp['best_s'], 3)} s (median "
                f"{_fmt(imp['median_s'], 3)} s); heavy modules loaded: "
                f"{', '.join(imp['heavy_modules']) or 'none'}.",
                "",
            ]
    loads = [
        x
        for section in ("overhead", "efficiency", "memory", "import", "startup", "main_job")
        for v in results.get(section, {}).values()
        for x in (v.get("loadavg_before", [None])[:1] + v.get("loadavg_after", [None])[:1])
        if x is not None
    ]
    if loads:
        lines.append(
            f"1-minute load average during the run: {min(loads):.1f} to {max(loads):.1f} "
            f"on {meta.get('cpus', '?')} CPUs (other work on the machine slows every system)."
        )
        lines.append("")
    tg = results.get("targets")
    if tg:
        lines.append("Targets: " + ", ".join(f"`{k}`: {v}" for k, v in tg.items()) + ".")
        lines.append("")
    return "\n".join(lines)


def _phase_line(ph: dict[str, float]) -> str:
    """Where a group command's time went, in the order it runs."""
    labels = {"imports": "imports (launch -> group)", **{k: v for k, v, _ in PHASES}}
    labels.update(
        first_dispatch="first dispatch (from launch)",
        first_trial="first trial running (from launch)",
        after_trials_to_return="last trial -> group returns",
        exit="interpreter exit",
    )
    parts = [f"{labels[k]} {ph[k]:.2f}" for k in labels if k in ph]
    return "ml-experiment phases (s): " + "; ".join(parts) + "."


def update_readme(markdown: str, path: Path = README) -> bool:
    """Replace the block between the results markers of benchmarks/README.md."""
    if not path.exists():
        return False
    text = path.read_text()
    if README_START not in text or README_END not in text:
        return False
    head, rest = text.split(README_START, 1)
    _, tail = rest.split(README_END, 1)
    path.write_text(f"{head}{README_START}\n{markdown}\n{README_END}{tail}")
    return True


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument(
        "--trials", type=int, default=None, help="trivial trials for the overhead (200)"
    )
    ap.add_argument(
        "--only",
        choices=("overhead", "efficiency", "memory", "import", "startup", "main-job"),
        action="append",
        help="run only this benchmark (repeatable)",
    )
    ap.add_argument(
        "--systems",
        default=",".join(SYSTEMS),
        help=f"comma-separated subset of {', '.join(SYSTEMS)}",
    )
    ap.add_argument("--quick", action="store_true", help="a fast smoke run with small sizes")
    ap.add_argument("--efficiency-trials", type=int, default=None, help="CPU-bound trials (20)")
    ap.add_argument(
        "--cpu-s", type=float, default=None, help="CPU seconds per CPU-bound trial (1.0)"
    )
    ap.add_argument("--memory-trials", type=int, default=None, help="trials sharing the array (8)")
    ap.add_argument(
        "--data-mib", type=int, default=None, help="size of the shared array in MiB (1024)"
    )
    ap.add_argument(
        "--no-control", action="store_true", help="skip the memory run with a 1 MiB array"
    )
    ap.add_argument(
        "--startup-repeats", type=int, default=None, help="commands per startup case (3)"
    )
    ap.add_argument("--sample-ms", type=float, default=50.0, help="memory sampling period")
    ap.add_argument("--out", type=Path, default=None, help="JSON output (results/latest.json)")
    ap.add_argument(
        "--update-readme", action="store_true", help="refresh the figures in benchmarks/README.md"
    )
    ap.add_argument("--keep", action="store_true", help="keep the temporary working directories")
    args = ap.parse_args(argv)

    q = args.quick
    trials = args.trials or (20 if q else 200)
    eff_trials = args.efficiency_trials or (6 if q else 20)
    cpu_s = args.cpu_s or (0.3 if q else 1.0)
    mem_trials = args.memory_trials or (4 if q else 8)
    data_mib = args.data_mib or (64 if q else 1024)
    only = set(args.only or ("overhead", "efficiency", "memory", "import", "startup", "main-job"))
    startup_repeats = args.startup_repeats or (1 if q else 3)
    systems = [s.strip() for s in args.systems.split(",") if s.strip()]
    unknown = set(systems) - set(SYSTEMS)
    if unknown:
        ap.error(
            f"unknown system(s) {', '.join(sorted(unknown))}; choose from {', '.join(SYSTEMS)}"
        )
    out = args.out or (RESULTS / ("quick.json" if q else "latest.json"))

    results: dict[str, Any] = {"meta": _meta(sys.argv[1:] if argv is None else argv)}
    results["meta"]["parameters"] = {
        "trials": trials,
        "efficiency_trials": eff_trials,
        "cpu_s": cpu_s,
        "memory_trials": mem_trials,
        "data_mib": data_mib,
        "startup_repeats": startup_repeats,
        "seed": SEED,
        "quick": q,
        "systems": systems,
    }
    print(f"benchmarks on {results['meta']['cpus']} CPUs; load average {_loadavg()}", flush=True)
    if "overhead" in only:
        steps = {
            "ml-experiment": bench_overhead_ml_experiment,
            "glue": bench_overhead_glue,
            "ray-tune": bench_overhead_tune,
        }
        for k in SYSTEMS:
            if k in systems:
                _step(results, "overhead", k, steps[k], trials, keep=args.keep)
    if "efficiency" in only:
        if "ml-experiment" in systems:
            _step(
                results,
                "efficiency",
                "ml-experiment",
                bench_efficiency_ml_experiment,
                eff_trials,
                cpu_s,
                keep=args.keep,
            )
        if "ray-tune" in systems:
            _step(
                results,
                "efficiency",
                "ray-tune",
                bench_efficiency_tune,
                eff_trials,
                cpu_s,
                keep=args.keep,
            )
    if "memory" in only and "ml-experiment" in systems:
        _step(
            results,
            "memory",
            "ml-experiment",
            bench_memory,
            mem_trials,
            data_mib,
            args.sample_ms / 1000,
            keep=args.keep,
        )
        if not args.no_control:
            _step(
                results,
                "memory",
                "control (1 MiB array)",
                bench_memory,
                mem_trials,
                1,
                args.sample_ms / 1000,
                keep=args.keep,
            )
    if "startup" in only and "ml-experiment" in systems:
        _step(results, "startup", "ml-experiment", bench_startup, startup_repeats, keep=args.keep)
    if "main-job" in only and {"ml-experiment", "glue"} <= set(systems):
        _step(results, "main_job", "README main job", bench_main_job, keep=args.keep)
    if "import" in only and "ml-experiment" in systems:
        _step(results, "import", "ml-experiment", bench_import, 3 if q else 10)
    results["targets"] = _targets(results)
    md = render_markdown(results)
    print()
    print(md)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(results, indent=2, default=str) + "\n")
    print(f"wrote {out}")
    if args.update_readme:
        print(
            "updated benchmarks/README.md"
            if update_readme(md)
            else "README.md has no results markers"
        )
    failed = [
        f"{s}/{k}"
        for s, d in results.items()
        if isinstance(d, dict)
        for k, v in d.items()
        if isinstance(v, dict) and "error" in v
    ]
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
