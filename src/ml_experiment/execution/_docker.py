"""A job whose file has ``docker_config``: its driver runs in a container, the store stays here.

The job file (minus ``docker_config``) runs inside with ``python -m
ml_experiment.execution._docker_inner``; the folders it needs (working directory, job file,
scripts with their git checkout, the knowledge center) are mounted at the same absolute paths
and the container runs as this user, so paths in the job file and the store mean the same inside
and out. Network: none, or the host's when the store or Ray is reached over it.
"""

from __future__ import annotations

import json
import os
import shutil
import sys
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

from ml_experiment.exceptions import ConfigError, ExecutionError, Interrupted, RunFailedError
from ml_experiment.execution._docker_engine import (
    FIELD,
    ImageInfo,
    build_image,
    connect,
    ensure_project,
    image_info,
    tag_name,
)

__all__ = ["container_mounts", "run_in_container"]

TMP = "/ml-experiment-tmp"  # a tmpfs inside: Ray's sockets and HOME, apart from the host's /tmp
# The image's Python, whichever name it has, runs the job file the host wrote.
_INNER = [
    "sh", "-c", 'exec "$(command -v python3 || command -v python)" "$@"', "python",
    "-m", "ml_experiment.execution._docker_inner",
]  # fmt: skip
_PASS_ENV = (
    "MLFLOW_TRACKING_URI",
    "MLFLOW_TRACKING_USERNAME",
    "MLFLOW_TRACKING_PASSWORD",
    "MLFLOW_TRACKING_TOKEN",
    "MLFLOW_TRACKING_INSECURE_TLS",
    "ML_EXPERIMENT_FULL_ERROR",
)


def _git_root(folder: Path) -> Path:
    for parent in (folder, *folder.parents):
        if (parent / ".git").exists():
            return parent
    return folder


def container_mounts(folders: list[Path]) -> list[str]:
    """The fewest folders that cover ``folders`` (a parent covers its children)."""
    out: list[Path] = []
    for folder in sorted({f.resolve() for f in folders}, key=lambda p: len(p.parts)):
        if not any(folder == o or o in folder.parents for o in out):
            out.append(folder)
    for folder in out:
        if len(folder.parts) < 2 or str(folder) in ("/usr", "/bin", "/lib", "/etc", "/proc"):
            raise ConfigError(
                f"cannot mount {str(folder)!r} into the container at the same path; run from a "
                "project folder and keep the job file, scripts and store out of system folders",
                field=FIELD,
            )
    return [str(f) for f in out]


def _folders(config: Any, tracking_uri: str | None) -> tuple[list[Path], str]:
    from ml_experiment.tracking import KnowledgeCenter
    from ml_experiment.tracking._store import sqlite_path

    kc = KnowledgeCenter.resolve(tracking_uri)
    folders = [Path.cwd(), kc.base_dir]
    if config.source is not None:
        folders.append(Path(config.source).resolve().parent)
    folders += [_git_root(Path(s).resolve().parent) for s in config.run]
    folders += [Path(f).resolve().parent for f in getattr(config, "data_files", None) or ()]
    db = sqlite_path(kc.tracking_uri)
    if db is not None:
        folders.append(db.parent)
    if kc.artifact_root is not None:
        folders.append(kc.artifact_root.parent)
    scheme = urlparse(kc.tracking_uri).scheme
    ray_address = getattr(config.ray_config, "address", None) if config.ray_config else None
    remote = scheme in ("http", "https", "postgresql", "mysql", "mssql") or "+" in scheme
    if ray_address not in (None, "local"):
        remote = True
    return folders, "host" if remote else "none"


def _image(client: Any, config: Any, verbose: bool) -> ImageInfo:
    docker = config.docker_config
    if docker.image is not None:
        return image_info(client, docker.image)
    base = Path(config.source).resolve().parent if config.source else Path.cwd()
    dockerfile = (base / Path(docker.dockerfile).expanduser()).resolve()
    context = (base / Path(docker.context).expanduser()).resolve() if docker.context else None
    return build_image(
        client,
        dockerfile=dockerfile,
        context=context or dockerfile.parent,
        args={k: str(v) for k, v in docker.args.items()},
        tag=f"ml-experiment-job/{tag_name(config.name)}:latest",
        verbose=verbose,
    )


def _inner_job(config: Any, folder: Path, verbosity: int, resume: bool) -> Path:
    data = config.resolved_dict()
    data.pop("docker_config", None)
    source = data.pop("source", None)
    if config.notify:  # excluded from dumps as secrets; the private folder is this user's only
        data["notify"] = list(config.notify)
    job = folder / "job.json"
    job.write_text(json.dumps(data))
    job.chmod(0o600)
    spec = {"job": str(job), "source": source, "verbosity": verbosity, "resume": resume}
    path = folder / "launch.json"
    path.write_text(json.dumps(spec))
    return path


def run_in_container(config: Any, *, resume: bool = False) -> list[Any]:
    """Run ``config``'s scripts in its ``docker_config`` container; raise as the job ended.

    Raises:
        ConfigError: No engine, a missing image, a failed build (before anything is written),
            or a job refused inside (exit 2).
        RunFailedError: The job failed inside (its own messages were streamed above).
        Interrupted: Ctrl-C or SIGTERM: forwarded to the job, which stops as it does here.
    """
    from ml_experiment._output import VERBOSE, verbosity
    from ml_experiment._tmp import make_private_dir
    from ml_experiment.tracking._capture import RUN_TAGS_ENV, run_tags

    level = verbosity()
    client = connect()
    image = ensure_project(client, _image(client, config, level >= VERBOSE), verbose=level >= 1)
    folders, network = _folders(config, config.tracking_uri)
    private = make_private_dir()
    try:
        launch = _inner_job(config, private, level, resume)
        mounts = container_mounts([*folders, private])
        env = {k: os.environ[k] for k in _PASS_ENV if k in os.environ}
        # Read by the run's capture (tracking/_capture.py) in the driver and in Ray's workers.
        tags = {**run_tags(), **image.tags()}
        env[RUN_TAGS_ENV] = json.dumps(tags)
        env.update(
            {
                "HOME": TMP,
                "TMPDIR": TMP,
                "RAY_TMPDIR": TMP,
                "PYTHONUNBUFFERED": "1",
                "RAY_USAGE_STATS_ENABLED": "0",
            }
        )
        container = client.containers.create(
            image.id,
            [*_INNER, str(launch)],
            entrypoint=[],
            user=f"{os.getuid()}:{os.getgid()}",
            working_dir=str(Path.cwd()),
            environment=env,
            volumes=_volumes(mounts, image),
            tmpfs={TMP: "mode=1777,exec"},
            network_mode=network,
            shm_size="2g",
            init=True,
            labels={"org.ml-experiment.job": config.name},
        )
        try:
            code = _attach(client, container)
        finally:
            container.remove(force=True)
    finally:
        shutil.rmtree(private, ignore_errors=True)
    _raise_for(code, image)
    return [None for _ in config.run]


def _volumes(mounts: list[str], image: ImageInfo) -> dict[str, dict[str, str]]:
    volumes = {m: {"bind": m, "mode": "rw"} for m in mounts}
    if image.overlay:  # this checkout's code over the installed copy (same dependencies)
        import ml_experiment

        package = str(Path(ml_experiment.__file__).resolve().parent)
        volumes[package] = {"bind": image.overlay, "mode": "ro"}
    return volumes


def _attach(client: Any, container: Any) -> int:
    """Start ``container``, stream its output here, forward Ctrl-C/SIGTERM; its exit code."""
    from ml_experiment.execution._signals import interrupts_raise

    container.start()
    sent: list[str] = []
    stream = client.api.attach(container.id, stream=True, logs=True, demux=True)
    while True:
        try:
            with interrupts_raise("interrupted"):
                for out, err in stream:
                    if out:
                        sys.stdout.buffer.write(out)
                        sys.stdout.flush()
                    if err:
                        sys.stderr.buffer.write(err)
                        sys.stderr.flush()
            break
        except Interrupted as exc:
            # First signal: the job's own (it stops at a safe point); a second one kills it.
            signal = "SIGKILL" if sent else ("SIGTERM" if exc.signum == 15 else "SIGINT")
            sent.append(signal)
            try:
                container.kill(signal=signal)
            except Exception:
                break
    result = container.wait()
    return int(result.get("StatusCode", 1))


def _raise_for(code: int, image: ImageInfo) -> None:
    where = f"in the container ({image.name})"
    if code == 0:
        return
    if code in (130, 143):
        raise Interrupted(f"interrupted: the job stopped {where}", signum=code - 128)
    if code == 2:
        raise ConfigError(f"the job was refused {where}; the reason is above", field=FIELD)
    if code == 1:
        raise RunFailedError(f"the job failed {where}; its output is above")
    if code == 137:
        raise ExecutionError(f"the job was killed {where} (exit 137: SIGKILL or out of memory)")
    raise ExecutionError(f"the job ended {where} with exit code {code}")
