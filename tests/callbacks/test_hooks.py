"""Callback hooks of real experiments and groups: their order, what they see, and isolation of a
callback that raises (it is logged, disabled and listed; the job is unaffected)."""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path
from typing import Any

import pytest
from tests.conftest import all_runs, client, write

pytestmark = [pytest.mark.slow, pytest.mark.timeout(180)]

# Callbacks live in the user's script; they write what they see to files beside it, so the test
# reads exactly what the hooks received (and in which process they ran).
CALLBACKS = """
import json, os
from pathlib import Path
from ml_experiment.callbacks import Callback

HERE = Path(__file__).parent


def _plain(value):
    return json.loads(json.dumps(value, default=str))


class Recorder(Callback):
    def _log(self, hook, **info):
        with (HERE / "events.jsonl").open("a") as f:
            f.write(json.dumps({"hook": hook, "pid": os.getpid(), **_plain(info)}) + "\\n")

    def on_job_start(self, config, **kw):
        self._log("on_job_start", name=config.name, kind=config.kind, run_id=kw.get("run_id"),
                  has_study="study" in kw)

    def on_trial_start(self, config, trial, sampled_params, **kw):
        self._log("on_trial_start", trial=trial.number, params=sampled_params,
                  trial_params=trial.params)

    def on_info_logged(self, config, metrics, artifacts, **kw):
        trial = kw.get("trial")
        self._log("on_info_logged", trial=None if trial is None else trial.number,
                  metrics=metrics, artifacts=sorted(artifacts), step=kw.get("step"))

    def on_trial_end(self, config, trial, metric, exception=None, **kw):
        self._log("on_trial_end", trial=trial.number, state=trial.state.name, metric=metric,
                  exception=None if exception is None else str(exception),
                  duration=kw.get("duration"))

    def on_job_end(self, config, exception=None, **kw):
        study = kw.get("study")
        self._log(
            "on_job_end",
            exception=None if exception is None else f"{type(exception).__name__}: {exception}",
            metrics=kw.get("metrics"), run_id=kw.get("run_id"), duration=kw.get("duration"),
            best_value=kw.get("best_value"), best_params=kw.get("best_params"),
            counts=kw.get("counts"),
            study_best=None if study is None else [study.best_trial.number, study.best_value],
        )


class Boom(Callback):
    # Raises in every hook; records each call so the test can count them.
    def _boom(self, hook):
        with (HERE / "boom.jsonl").open("a") as f:
            f.write(json.dumps({"hook": hook}) + "\\n")
        raise RuntimeError(f"boom in {hook}")

    def on_job_start(self, config, **kw):
        self._boom("on_job_start")

    def on_trial_start(self, config, trial, sampled_params, **kw):
        self._boom("on_trial_start")

    def on_info_logged(self, config, metrics, artifacts, **kw):
        self._boom("on_info_logged")

    def on_trial_end(self, config, trial, metric, exception=None, **kw):
        self._boom("on_trial_end")

    def on_job_end(self, config, exception=None, **kw):
        self._boom("on_job_end")
"""

EXPERIMENT = """
from ml_experiment import job

CALLBACKS = {callbacks}

@job(callbacks=CALLBACKS)
def main(lr: float = 0.1, fail: bool = False):
    for epoch in range(2):
        yield {{"loss": 1.0 / (epoch + 1) * lr}}
    if fail:
        raise ValueError("the model diverged")
    return {{"loss": 0.01, "accuracy": 0.97}}

if __name__ == "__main__":
    main()
"""

OBJECTIVE = """
from ml_experiment import Trial, job

@job(callbacks={callbacks})
def main(x: float = 0.0):
    if Trial.get_current().number == 1:
        raise ValueError("trial one is broken")
    return {{"y": (x - 0.3) ** 2}}

if __name__ == "__main__":
    main()
"""


def script(template: str, callbacks: str) -> str:
    """A user script: the callback classes, then the decorated function using ``callbacks``."""
    return CALLBACKS + template.format(callbacks=callbacks)


def events(folder: Path, name: str = "events.jsonl") -> list[dict[str, Any]]:
    path = folder / name
    return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []


def experiment_file(folder: Path, **params: Any) -> Path:
    path = folder / "exp.json"
    path.write_text(
        json.dumps({"name": "exp", "kind": "experiment", "params": params, "run": ["train.py"]})
    )
    return path


def group_file(folder: Path, num_trials: int) -> Path:
    path = folder / "g.json"
    path.write_text(
        json.dumps(
            {
                "name": "g",
                "kind": "group",
                "report": False,
                "num_trials": num_trials,
                "sampler": "random",
                "pruner": "none",
                "seed": 3,
                "param_space": {"x": "uniform(-1, 1)"},
                "metric": {"name": "y", "direction": "minimize"},
                "resources_per_worker": {"cpu": 1},
                "run": ["objective.py"],
            }
        )
    )
    return path


def run(job_file: Path) -> Any:
    from ml_experiment.config import load_config
    from ml_experiment.execution import run_job

    return run_job(load_config(job_file))[0]


# -- experiments ------------------------------------------------------------------------------


def test_experiment_hook_order_and_payloads(workdir: Path) -> None:
    write(workdir / "train.py", script(EXPERIMENT, callbacks="[Recorder()]"))
    outcome = run(experiment_file(workdir, lr=0.5))

    seen = events(workdir)
    assert [e["hook"] for e in seen] == [
        "on_job_start",
        "on_info_logged",  # step 0
        "on_info_logged",  # step 1
        "on_info_logged",  # the final metrics
        "on_job_end",
    ]
    start, step0, step1, final, end = seen
    assert start["name"] == "exp" and start["kind"] == "experiment"
    assert start["run_id"] == outcome.run_id == end["run_id"]
    assert (step0["step"], step0["metrics"]) == (0, {"loss": 0.5})
    assert (step1["step"], step1["metrics"]) == (1, {"loss": 0.25})
    assert final["metrics"] == {"loss": 0.01, "accuracy": 0.97}
    assert end["exception"] is None
    assert end["metrics"] == {"loss": 0.01, "accuracy": 0.97}
    assert end["duration"] > 0
    assert {e["pid"] for e in seen} == {os.getpid()}


def test_failed_experiment_reports_the_exception_to_on_job_end(workdir: Path) -> None:
    from ml_experiment.exceptions import RunFailedError

    write(workdir / "train.py", script(EXPERIMENT, callbacks="[Recorder()]"))
    with pytest.raises(RunFailedError, match="the model diverged"):
        run(experiment_file(workdir, fail=True))

    seen = events(workdir)
    hooks = [e["hook"] for e in seen]
    # The steps before the failure were logged; the final metrics never came.
    assert hooks == ["on_job_start", "on_info_logged", "on_info_logged", "on_job_end"]
    assert seen[-1]["exception"] == "ValueError: the model diverged"
    (r,) = all_runs(client(workdir), "exp")
    assert r.info.status == "FAILED" and seen[-1]["run_id"] == r.info.run_id


def test_raising_callback_is_disabled_and_the_experiment_finishes(
    workdir: Path, caplog: pytest.LogCaptureFixture
) -> None:
    write(workdir / "train.py", script(EXPERIMENT, callbacks="[Boom(), Recorder()]"))
    with caplog.at_level(logging.ERROR, logger="ml_experiment.callbacks"):
        outcome = run(experiment_file(workdir))

    # Called once (its first hook raised), never again.
    assert events(workdir, "boom.jsonl") == [{"hook": "on_job_start"}]
    # The callback after it still saw the whole job.
    assert [e["hook"] for e in events(workdir)] == [
        "on_job_start",
        "on_info_logged",
        "on_info_logged",
        "on_info_logged",
        "on_job_end",
    ]
    (r,) = all_runs(client(workdir), "exp")
    assert r.info.run_id == outcome.run_id
    assert r.info.status == "FINISHED"
    assert r.data.metrics["accuracy"] == pytest.approx(0.97)
    failed = r.data.tags["callbacks.failed"]
    assert "Boom.on_job_start" in failed and "boom in on_job_start" in failed
    assert "Recorder" not in failed
    # Logged once, with the traceback.
    records = [rec for rec in caplog.records if rec.name == "ml_experiment.callbacks"]
    assert len(records) == 1
    message = records[0].getMessage()
    assert "Boom raised in on_job_start" in message
    assert "Traceback" in message and "RuntimeError: boom in on_job_start" in message


# -- groups -----------------------------------------------------------------------------------


def _check_group_order(seen: list[dict[str, Any]], num_trials: int) -> None:
    hooks = [e["hook"] for e in seen]
    assert hooks[0] == "on_job_start" and hooks.count("on_job_start") == 1
    assert hooks[-1] == "on_job_end" and hooks.count("on_job_end") == 1
    for n in range(num_trials):
        mine = [(i, e["hook"]) for i, e in enumerate(seen) if e.get("trial") == n]
        assert [h for _, h in mine] == ["on_trial_start", "on_info_logged", "on_trial_end"], n


def test_group_hook_order_and_what_the_hooks_see(workdir: Path, ray_local: None) -> None:
    import optuna

    from ml_experiment.hpo import open_storage

    write(workdir / "objective.py", script(OBJECTIVE, callbacks="[Recorder()]"))
    outcome = run(group_file(workdir, 6))
    assert outcome.counts == {"complete": 5, "fail": 1, "pruned": 0}

    seen = events(workdir)
    _check_group_order(seen, 6)
    # Group and trial hooks run in the driver (this process), not on the Ray workers.
    assert {e["pid"] for e in seen} == {os.getpid()}
    start = seen[0]
    assert start["kind"] == "group" and start["run_id"] == outcome.run_id and start["has_study"]

    starts = {e["trial"]: e for e in seen if e["hook"] == "on_trial_start"}
    ends = {e["trial"]: e for e in seen if e["hook"] == "on_trial_end"}
    assert sorted(starts) == sorted(ends) == list(range(6))
    for s in starts.values():
        assert set(s["params"]) == {"x"} and s["params"]["x"] == s["trial_params"]["x"]
    assert ends[1]["state"] == "FAIL" and ends[1]["metric"] is None
    assert "trial one is broken" in ends[1]["exception"]
    for n in (0, 2, 3, 4, 5):
        assert ends[n]["state"] == "COMPLETE" and ends[n]["exception"] is None
        assert ends[n]["metric"] == pytest.approx((starts[n]["params"]["x"] - 0.3) ** 2)
        assert ends[n]["duration"] >= 0
    infos = {e["trial"]: e for e in seen if e["hook"] == "on_info_logged"}
    assert infos[0]["metrics"]["y"] == pytest.approx(ends[0]["metric"])

    end = seen[-1]
    study = optuna.load_study(
        study_name="g", storage=open_storage(str(workdir / "optuna-studies.journal"))
    )
    best = min((n for n in ends if ends[n]["state"] == "COMPLETE"), key=lambda n: ends[n]["metric"])
    assert end["exception"] is None
    assert (
        end["best_value"] == pytest.approx(ends[best]["metric"]) == pytest.approx(study.best_value)
    )
    assert end["best_params"] == {"x": pytest.approx(starts[best]["params"]["x"])}
    assert end["study_best"] == [best, pytest.approx(study.best_value)]
    assert end["counts"] == {"complete": 5, "fail": 1, "pruned": 0}
    assert end["run_id"] == outcome.run_id


def test_raising_callback_never_stops_a_group(
    workdir: Path, ray_local: None, caplog: pytest.LogCaptureFixture
) -> None:
    import optuna
    from optuna.trial import TrialState

    from ml_experiment.hpo import open_storage

    write(workdir / "objective.py", script(OBJECTIVE, callbacks="[Boom(), Recorder()]"))
    with caplog.at_level(logging.ERROR, logger="ml_experiment.callbacks"):
        outcome = run(group_file(workdir, 4))
    assert outcome.counts == {"complete": 3, "fail": 1, "pruned": 0}

    assert events(workdir, "boom.jsonl") == [{"hook": "on_job_start"}]
    _check_group_order(events(workdir), 4)  # the other callback saw everything

    runs = all_runs(client(workdir), "g")
    parents = [r for r in runs if "mlflow.parentRunId" not in r.data.tags]
    children = [r for r in runs if "mlflow.parentRunId" in r.data.tags]
    (parent,) = parents
    assert parent.info.run_id == outcome.run_id and parent.info.status == "FINISHED"
    assert (
        "Boom.on_job_start: RuntimeError: boom in on_job_start"
        in (parent.data.tags["callbacks.failed"])
    )
    assert "Recorder" not in parent.data.tags["callbacks.failed"]
    assert sorted(int(c.data.tags["ml_experiment.trial_number"]) for c in children) == [0, 1, 2, 3]
    assert sorted(c.info.status for c in children) == ["FAILED", "FINISHED", "FINISHED", "FINISHED"]
    study = optuna.load_study(
        study_name="g", storage=open_storage(str(workdir / "optuna-studies.journal"))
    )
    states = [t.state for t in study.get_trials()]
    assert len(states) == 4 and states.count(TrialState.COMPLETE) == 3
    assert parent.data.metrics["trials_complete"] == 3
    records = [rec for rec in caplog.records if rec.name == "ml_experiment.callbacks"]
    assert len(records) == 1 and "Traceback" in records[0].getMessage()
