"""The checklist's items, each graded PASS / WARN / FAIL from a run's record (see ``_audit``)."""

from __future__ import annotations

from dataclasses import dataclass

from ml_experiment.reproduce._read import RunView, local_origin, packages
from ml_experiment.tracking.record import (
    CODE_TAGS,
    SNAPSHOT_DIR,
    TAG_DETERMINISTIC,
    TAG_DETERMINISTIC_APPLIED,
    TAG_KIND,
    TAG_REPRODUCED_BY,
    TAG_REPRODUCES,
    TAG_SNAPSHOT,
    TAG_VERDICT,
    TEXT_FILES,
)

PASS, WARN, FAIL = "PASS", "WARN", "FAIL"
_OURS = "ml-experiment records it (@job and `ml-experiment run`)"
_OWN_METRICS = {"duration_s"}  # written by ml-experiment itself, not an evaluation
_SEED_PARAMS = ("seed", "random_state", "random_seed", "rng_seed")
_NONDETERMINISTIC = ("seed.torch", "seed.tensorflow", "seed.keras")
_TEST_WORDS = ("test",)
_VAL_WORDS = ("val", "valid", "validation", "dev")


@dataclass
class Item:
    """One graded checklist item."""

    name: str
    grade: str
    evidence: str
    fix: str = ""


# The record's parts each item reads (to name the parent run a trial's part came from).
_PARTS = {
    "dataset": {"data", "data_files"},
    "code version": {"code"},
    "parameters": {"config"},
    "stochasticity": {"deterministic"},
    "software environment": {"requirements", "python", "environment"},
    "hardware": {"hardware", "numerics"},
}


def grade_all(v: RunView) -> list[Item]:
    """Every item of the checklist, in the order of SPEC section 5."""
    graders = (_dataset, _code, _parameters, _evaluation, _stochasticity, _software, _hardware)
    items = [grade(v) for grade in (*graders, _logs, _reproduction)]
    for item in items:
        if _PARTS.get(item.name, set()) & set(v.inherited):
            item.evidence += f" (on the parent run {v.record.parent_run_id})"
    return items


def _short(value: str, n: int = 12) -> str:
    return value if len(value) <= n else value[:n] + "..."


def _dataset(v: RunView) -> Item:
    found = [f"data.fingerprint.{k} = {_short(x)}" for k, x in sorted(v.record.data.items())]
    if v.data_files is not None:
        files = v.data_files if isinstance(v.data_files, dict) else {}
        unhashed = [p for p, h in files.items() if not (isinstance(h, dict) and h.get("sha256"))]
        if unhashed or not files:
            return Item(
                "dataset",
                WARN,
                f"{TEXT_FILES['data_files']}: {len(files)} file(s), not hashed: "
                + (", ".join(unhashed) or "none listed"),
                "make the data files readable when the run starts so that each is hashed",
            )
        found.append(f"{TEXT_FILES['data_files']}: {len(files)} file(s) with sha256")
    found += [f"MLflow dataset input {d['name']} digest {d['digest']}" for d in v.datasets]
    if found:
        return Item("dataset", PASS, "; ".join(found))
    return Item(
        "dataset",
        WARN,
        "no data fingerprint (data.fingerprint.* tags), no data_files hashes, no MLflow dataset input",
        "return the data from a DataLoader or list its files under data_files: in the job file "
        "(with plain MLflow: mlflow.log_input)",
    )


def _code(v: RunView) -> Item:
    code, tags = v.record.code, v.record.tags
    commit = code.get("commit")
    if commit:
        where = f"{CODE_TAGS['commit']} = {_short(commit)}"
        dirty = code.get("dirty")
        if dirty == "true":
            if code.get("patch"):
                return Item(
                    "code version",
                    PASS,
                    f"{where}, {CODE_TAGS['dirty']} = true, {TEXT_FILES['patch']} "
                    f"({len(code['patch'].encode())} bytes)",
                )
            return Item(
                "code version",
                FAIL,
                f"{where}, {CODE_TAGS['dirty']} = true, but no {TEXT_FILES['patch']}",
                "the uncommitted changes are lost: commit them and run again",
            )
        if v.code_manifest:
            where += f", {TEXT_FILES['code_manifest']} ({len(v.code_manifest)} untracked by hash)"
        if dirty == "false":
            return Item("code version", PASS, f"{where}, {CODE_TAGS['dirty']} = false")
        return Item(
            "code version",
            WARN,
            f"{where}, no {CODE_TAGS['dirty']} tag: uncommitted changes unknown",
            "commit before running (ml-experiment records uncommitted changes as a patch)",
        )
    snapshot = tags.get(TAG_SNAPSHOT)
    if snapshot or v.snapshot_files:
        evidence = f"{TAG_SNAPSHOT} = {snapshot or '?'}; {len(v.snapshot_files)} snapshot file(s)"
        if snapshot and "left out" in snapshot:
            return Item(
                "code version",
                WARN,
                evidence,
                "files were left out of the snapshot: keep the script's folder small or use git",
            )
        if not v.snapshot_files:
            return Item(
                "code version",
                FAIL,
                evidence + f": nothing under {SNAPSHOT_DIR}/",
                "the snapshot's files are gone from the artifact store: run again",
            )
        return Item("code version", PASS, evidence + " (not a git repository)")
    return Item(
        "code version",
        FAIL,
        f"no {CODE_TAGS['commit']} tag and no code snapshot"
        + (f"; git.commit = {tags['git.commit']}" if "git.commit" in tags else ""),
        "commit the script to git, or run it with a current ml-experiment, which snapshots a "
        "script outside git",
    )


def _parameters(v: RunView) -> Item:
    params, config = v.record.params, v.record.config
    if config is None:
        if not params:
            return Item(
                "parameters",
                WARN,
                f"no params and no job file ({TEXT_FILES['config']})",
                f"log every effective value as a param: {_OURS}",
            )
        return Item(
            "parameters",
            WARN,
            f"{len(params)} param(s); no job file ({TEXT_FILES['config']})",
            f"a re-run must rebuild the job: {_OURS}",
        )
    given, space = config.get("params"), config.get("param_space")
    wanted = list(given) if isinstance(given, dict) else []
    if v.record.parent_run_id and isinstance(space, dict):
        wanted += list(space)  # a trial: also every searched value
    missing = sorted(k for k in wanted if str(k) not in params)
    if missing:
        return Item(
            "parameters",
            FAIL,
            f"job file params not among the run's params: {', '.join(missing)}",
            "the run did not record every effective value: run it again with ml-experiment",
        )
    return Item(
        "parameters", PASS, f"{len(params)} param(s) and the job file ({TEXT_FILES['config']})"
    )


def _named(key: str, words: tuple[str, ...]) -> bool:
    parts = [p for p in key.lower().replace("/", "_").replace(".", "_").split("_") if p]
    return any(w in parts for w in words)


def _evaluation(v: RunView) -> Item:
    rec = v.record
    metrics = sorted(
        k for k in rec.metrics if k not in _OWN_METRICS and not k.startswith("system/")
    )
    if not metrics:
        return Item(
            "evaluation",
            FAIL,
            "no metrics" + (" besides duration_s" if rec.metrics else ""),
            "return the metrics from the function (or mlflow.log_metric them)",
        )
    evidence = f"{len(metrics)} metric(s): {', '.join(metrics[:8])}" + (
        ", ..." if len(metrics) > 8 else ""
    )
    tests = [m for m in metrics if _named(m, _TEST_WORDS)]
    vals = [m for m in metrics if _named(m, _VAL_WORDS)]
    if tests and vals:
        evidence += f"; test ({', '.join(tests)}) separate from validation ({', '.join(vals)})"
    target = (rec.config or {}).get("metric")
    target_name = target.get("name") if isinstance(target, dict) else None
    if isinstance(target_name, str) and _named(target_name, _TEST_WORDS):
        return Item(
            "evaluation",
            WARN,
            evidence + f"; the search optimises {target_name!r}, a test metric",
            "select on a validation metric and report the test metric once, for the best trial",
        )
    if rec.status not in ("FINISHED", "RUNNING"):
        return Item(
            "evaluation",
            WARN,
            evidence + f"; the run ended {rec.status}",
            "its metrics may be partial: fix the failure and run again",
        )
    return Item("evaluation", PASS, evidence)


def _stochasticity(v: RunView) -> Item:
    seeds, tags = v.record.seeds, v.record.tags
    job_seed = seeds.get("seed")
    captured = {k: x for k, x in sorted(seeds.items()) if k != "seed"}
    det, applied = tags.get(TAG_DETERMINISTIC), tags.get(TAG_DETERMINISTIC_APPLIED)
    evidence = ", ".join(f"{k} = {_short(x, 20)}" for k, x in [*captured.items()])
    if job_seed is not None:
        evidence = f"seed = {job_seed}" + (f"; {evidence}" if evidence else "")
    group_seed = (v.record.config or {}).get("seed")
    if tags.get(TAG_KIND) == "group" and job_seed is None and group_seed is not None:
        # A group's parent seeds nothing itself: its sampler and trial seeds derive from it.
        job_seed = str(group_seed)
        evidence = f"the group's seed = {job_seed} ({TEXT_FILES['config']}), trial seeds derive"
    if det is not None:
        evidence += f"; {TAG_DETERMINISTIC} = {det}" + (f" ({applied})" if applied else "")
    if job_seed is None and not seeds:
        as_param = [k for k in v.record.params if k.lower() in _SEED_PARAMS]
        if as_param:
            return Item(
                "stochasticity",
                WARN,
                f"no seed.* tags; a seed is a param ({', '.join(as_param)}), but which generators "
                "it seeded is not recorded",
                "set seed: in the job file: ml-experiment seeds every generator with it and records it",
            )
        return Item(
            "stochasticity",
            FAIL,
            "no seed recorded (no seed or seed.* tags)",
            "set seed: in the job file (or --seed): every generator is seeded and recorded",
        )
    if job_seed is None:
        return Item(
            "stochasticity",
            WARN,
            f"seeded by the script only: {evidence}",
            "set seed: in the job file so that every generator (also ones the script does not "
            "seed) starts from it",
        )
    if det == "true" and not applied:
        return Item(
            "stochasticity",
            WARN,
            evidence + f"; no {TAG_DETERMINISTIC_APPLIED} tag",
            "deterministic: true was asked for but no switch was recorded as applied",
        )
    uses = [k for k in _NONDETERMINISTIC if k in captured]
    if uses and det != "true":
        return Item(
            "stochasticity",
            WARN,
            evidence + f"; {', '.join(uses)} without deterministic switches",
            "set deterministic: true (or --deterministic): seeded torch/TensorFlow kernels can "
            "still differ run to run",
        )
    return Item("stochasticity", PASS, evidence)


def _software(v: RunView) -> Item:
    rec = v.record
    python = rec.environment.get("python_version")
    if rec.requirements is None:
        models = [n for n in v.artifact_names if n.endswith("/requirements.txt")]
        if models:
            return Item(
                "software environment",
                WARN,
                f"only a model's requirements ({models[0]}), not the run's environment"
                + (f"; Python {python}" if python else ""),
                f"record every installed package: {_OURS}",
            )
        return Item(
            "software environment",
            FAIL,
            f"no {TEXT_FILES['requirements']}" + (f"; Python {python}" if python else ""),
            f"record the installed packages: {_OURS}",
        )
    found = packages(rec.requirements)
    evidence = f"{TEXT_FILES['requirements']}: {len(found)} package(s)"
    evidence += f"; Python {python}" if python else f"; no {TEXT_FILES['python']}"
    local = sorted(n for n, (_, origin) in found.items() if local_origin(origin))
    if local:
        return Item(
            "software environment",
            WARN,
            evidence + f"; installed from a local folder or editable: {', '.join(local)}",
            "not reinstallable elsewhere: install released versions (or from a git URL at a "
            "commit) before the run",
        )
    if not python:
        return Item(
            "software environment",
            WARN,
            evidence,
            "the Python version is not recorded (env.python_version)",
        )
    return Item("software environment", PASS, evidence)


def _hardware(v: RunView) -> Item:
    hw = v.record.hardware
    if not hw:
        return Item(
            "hardware",
            FAIL,
            "no hw.* tags (CPU, memory, GPUs)",
            f"record the machine: {_OURS}",
        )
    evidence = f"hw.cpu_model = {hw.get('cpu_model', '?')}, {hw.get('gpu_count', '?')} GPU(s)"
    count = hw.get("gpu_count", "0")
    gpus = int(count) if count.isdigit() else 0
    if gpus and not hw.get("gpu_driver_version"):
        return Item(
            "hardware", WARN, evidence + "; no GPU driver", "install nvidia-ml-py (extra [gpu])"
        )
    if v.numerics is None:
        return Item(
            "hardware",
            WARN,
            evidence + f"; no {TEXT_FILES['numerics']}",
            "thread counts, BLAS libraries and CPU flags (which change floating-point results) "
            "are not recorded: run with a current ml-experiment",
        )
    flags = v.numerics.get("cpu_flags") if isinstance(v.numerics, dict) else None
    pools = v.numerics.get("threadpools") if isinstance(v.numerics, dict) else None
    evidence += f"; {TEXT_FILES['numerics']}: {len(pools or [])} thread pool(s)"
    evidence += ", CPU flags" if flags else ", no CPU flags"
    return Item("hardware", PASS, evidence)


def _logs(v: RunView) -> Item:
    rec = v.record
    if rec.console is None:
        return Item(
            "logs",
            FAIL,
            f"no {TEXT_FILES['console']}",
            f"keep the console output: {_OURS}; with plain MLflow, mlflow.log_text",
        )
    evidence = f"{TEXT_FILES['console']} ({len(rec.console.encode())} bytes)"
    if rec.status == "FAILED" and rec.traceback is None:
        return Item(
            "logs", WARN, evidence + f"; FAILED without {TEXT_FILES['traceback']}", "run again"
        )
    if rec.traceback is not None:
        evidence += f", {TEXT_FILES['traceback']}"
    return Item("logs", PASS, evidence)


def _reproduction(v: RunView) -> Item:
    tags = v.record.tags
    verdict, by, of = tags.get(TAG_VERDICT), tags.get(TAG_REPRODUCED_BY), tags.get(TAG_REPRODUCES)
    evidence = f"{TAG_VERDICT} = {verdict}" if verdict else f"no {TAG_VERDICT} tag"
    if by:
        evidence += f", {TAG_REPRODUCED_BY} = {by}"
    if of:
        evidence += f", {TAG_REPRODUCES} = {of} (this run is a re-run)"
    if verdict in ("identical", "within tolerance"):
        return Item("reproduction", PASS, evidence)
    if verdict:
        return Item(
            "reproduction",
            FAIL,
            evidence,
            f"see {by or 'the re-run'}'s reproduction/report.json for what differed and why",
        )
    if v.record.config is None:
        fix = f"ml-experiment reproduce needs the job file ({TEXT_FILES['config']}): {_OURS}"
    else:
        fix = f"ml-experiment reproduce {v.run_id}"
    return Item("reproduction", WARN, evidence + ": not verified", fix)
