"""The Docker engine, through the ``docker`` SDK (the ``docker`` extra).

The SDK rather than the ``docker`` command: its errors are typed (a missing image, a refused
connection), a build's log arrives as JSON lines with the error apart, and images are built by the
engine's own builder whatever CLI (or buildx plugin) is installed.
"""

from __future__ import annotations

import json
import os
import re
import sys
from collections import deque
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ml_experiment.exceptions import ConfigError, ExecutionError, MissingDependencyError

__all__ = ["ImageInfo", "build_image", "connect", "ensure_project", "image_info", "tag_name"]

LABEL_SOURCE = "org.ml-experiment.source"
LABEL_BASE = "org.ml-experiment.base"
LABEL_SITE = "org.ml-experiment.site"  # where the installed ml_experiment package is
VENV = "/opt/ml-experiment"
FIELD = "docker_config"
# Probes an image's Python: its X.Y and the ml-experiment version it has (or null).
_PROBE = (
    "import json, sys\n"
    "try:\n    import ml_experiment; v = ml_experiment.__version__\n"
    "except Exception:\n    v = None\n"
    "print(json.dumps({'python': '%d.%d' % sys.version_info[:2], 'project': v, "
    "'executable': sys.executable}))"
)


@dataclass(frozen=True)
class ImageInfo:
    """An image as a run records it: the name asked for, its id and its registry digest."""

    name: str
    id: str
    digest: str | None
    env: tuple[str, ...] = ()
    base_id: str | None = None
    overlay: str | None = None  # mount the running ml_experiment package here (code changed)

    def tags(self) -> dict[str, str]:
        """The ``container.*`` tags of every run made in a container of this image."""
        out = {"container.runtime": "docker", "container.image": self.name}
        out["container.image_id"] = self.id
        if self.digest:
            out["container.digest"] = self.digest
        if self.base_id and self.base_id != self.id:
            out["container.base_image_id"] = self.base_id
        return out


def _sdk() -> Any:
    try:
        import docker
    except ImportError as exc:
        raise MissingDependencyError("running a job in Docker", "docker", "docker") from exc
    return docker


def connect() -> Any:
    """A client of the engine at ``DOCKER_HOST`` (or the default socket) that answered a ping.

    Raises:
        ConfigError: No engine answers, or this user may not use it (exit 2, nothing written).
    """
    docker = _sdk()
    where = os.environ.get("DOCKER_HOST") or "the default socket"
    try:
        client = docker.from_env(timeout=600)  # removing a 1 GB container takes minutes
        client.ping()
    except docker.errors.DockerException as exc:
        text = " ".join(str(exc).split())
        why = "no permission to use it" if "ermission denied" in text else "no engine answers"
        raise ConfigError(
            f"cannot reach a Docker engine at {where} ({why}: {text[:200]}); start dockerd, "
            "or set DOCKER_HOST, or remove docker_config to run on this machine",
            field=FIELD,
        ) from None
    return client


def image_info(client: Any, name: str) -> ImageInfo:
    """What ``name`` is in the engine (no pull: a missing image is bad input)."""
    docker = _sdk()
    try:
        image = client.images.get(name)
    except docker.errors.ImageNotFound:
        raise ConfigError(
            f"image {name!r} is not in the Docker engine; pull or build it first "
            "(docker pull / docker build), or give a dockerfile",
            field=f"{FIELD}.image",
        ) from None
    except docker.errors.APIError as exc:
        raise ConfigError(f"image {name!r}: {exc}", field=f"{FIELD}.image") from None
    digests = image.attrs.get("RepoDigests") or []
    env = tuple((image.attrs.get("Config") or {}).get("Env") or ())
    return ImageInfo(name, image.id, digests[0] if digests else None, env)


def tag_name(text: str) -> str:
    """A valid image repository name made from ``text``."""
    return re.sub(r"[^a-z0-9._-]+", "-", text.lower()).strip("._-") or "job"


def build_image(
    client: Any,
    *,
    dockerfile: Path,
    context: Path,
    args: dict[str, str],
    tag: str,
    verbose: bool,
    field: str = f"{FIELD}.dockerfile",
    network: str = "host",
) -> ImageInfo:
    """Build ``dockerfile`` in ``context`` with the engine's builder.

    Raises:
        ConfigError: The build failed: one line, and with ``verbose`` the log's last lines
            printed before it on stderr.
    """
    docker = _sdk()
    if not dockerfile.is_file():
        raise ConfigError(f"Dockerfile not found: {str(dockerfile)!r}", field=field)
    if not context.is_dir():
        raise ConfigError(f"build context is not a folder: {str(context)!r}", field=field)
    tail: deque[str] = deque(maxlen=25)
    image_id = None
    error = None
    try:
        # dockerfile: a path relative to the context, or absolute (the SDK adds one outside it).
        for chunk in client.api.build(
            path=str(context),
            dockerfile=str(dockerfile),
            buildargs=dict(args),
            tag=tag,
            rm=True,
            forcerm=True,
            decode=True,
            network_mode=network,
        ):
            if "stream" in chunk:
                tail.extend(ln for ln in str(chunk["stream"]).splitlines() if ln.strip())
            if "error" in chunk:
                error = " ".join(str(chunk["error"]).split())
            aux = chunk.get("aux")
            if isinstance(aux, dict) and "ID" in aux:
                image_id = aux["ID"]
    except docker.errors.APIError as exc:
        error = " ".join(str(getattr(exc, "explanation", None) or exc).split())
    if error is not None or image_id is None:
        if verbose:
            print("\n".join(tail), file=sys.stderr, flush=True)
        hint = "" if verbose else " (--verbose shows the build's last lines)"
        raise ConfigError(
            f"building {str(dockerfile)!r} failed: {(error or 'no image was produced')[:300]}{hint}",
            field=field,
        )
    info = image_info(client, image_id)
    return ImageInfo(tag, info.id, info.digest, info.env)


def _probe(client: Any, image: ImageInfo) -> dict[str, Any]:
    script = (
        'for p in python3 python; do command -v "$p" >/dev/null 2>&1 && exec "$p" -c "$0"; '
        "done; echo no-python; exit 127"
    )
    try:
        out = client.containers.run(
            image.id,
            ["sh", "-c", script, _PROBE],
            remove=True,
            network_mode="none",
            stdout=True,
            stderr=True,
            entrypoint=[],
        )
        result: dict[str, Any] = json.loads(out.decode().strip().splitlines()[-1])
        return result
    except Exception as exc:
        raise ConfigError(
            f"image {image.name!r} has no usable Python 3 (python3 or python) with a shell: "
            f"{' '.join(str(exc).split())[:200]}",
            field=FIELD,
        ) from None


def ensure_project(client: Any, image: ImageInfo, *, verbose: bool) -> ImageInfo:
    """``image`` if it has the running ml-experiment, else an image made from it that has it.

    The made image is ``image`` plus a virtual environment at /opt/ml-experiment (seeing the
    image's own packages), installed offline from a wheelhouse of this environment's versions;
    the engine keeps it under a tag keyed by the image and those versions, so the next run
    starts at once. When only ml-experiment's own code changed since (a checkout being worked
    on), the running package is mounted over the installed one instead of a new install.
    """
    from ml_experiment import __version__
    from ml_experiment.execution._docker_wheels import deps_key

    docker = _sdk()
    labels = client.images.get(image.id).labels or {}
    if labels.get(LABEL_SITE):
        return _with_overlay(image, labels)  # made here, or built FROM an image made here
    found = _probe(client, image)
    key = deps_key(found["python"])
    tag = f"ml-experiment-local/{image.id.removeprefix('sha256:')[:12]}:{__version__}-{key}"
    try:
        made = client.images.get(tag)
        if made.labels.get(LABEL_BASE) == image.id:
            return _made(image, made)
    except docker.errors.ImageNotFound:
        pass
    if found.get("project") == __version__ and not _is_dev_checkout():
        return image
    if verbose:
        print(f"Installing ml-experiment {__version__} into {image.name} ...", file=sys.stderr)
    _install(client, image, found, tag)
    return _made(image, client.images.get(tag))


def _install(client: Any, image: ImageInfo, found: dict[str, Any], tag: str) -> None:
    from ml_experiment import __version__
    from ml_experiment.execution._docker_wheels import project_wheelhouse, source_hash

    house = project_wheelhouse(found["python"])
    wheel = (house / ".complete").read_text().strip()
    site = f"{VENV}/lib/python{found['python']}/site-packages/ml_experiment"
    script = (
        f'set -e; "{found["executable"]}" -m venv --system-site-packages {VENV}; '
        f"{VENV}/bin/python -m pip install --quiet --no-index --disable-pip-version-check "
        f"--find-links /wheels /wheels/{wheel}; test -d {site}"
    )
    container = client.containers.create(
        image.id,
        ["sh", "-c", script],
        entrypoint=[],
        user="0:0",
        network_mode="none",
        volumes={str(house): {"bind": "/wheels", "mode": "ro"}},
    )
    try:
        container.start()
        code = container.wait().get("StatusCode", 1)
        if code != 0:
            log = container.logs().decode(errors="replace").strip().splitlines()
            raise ExecutionError(
                f"installing ml-experiment {__version__} into image {image.name!r} failed "
                f"(exit {code}): {' | '.join(log[-3:])}"
            )
        path = next(
            (e.split("=", 1)[1] for e in image.env if e.startswith("PATH=")),
            "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
        )
        repo, _, version = tag.rpartition(":")
        container.commit(
            repository=repo,
            tag=version,
            changes=[
                f"ENV PATH={VENV}/bin:{path}",
                f"LABEL {LABEL_BASE}={image.id} {LABEL_SOURCE}={source_hash()[:12]} "
                f"{LABEL_SITE}={site}",
            ],
        )
    finally:
        container.remove(force=True)


def _with_overlay(image: ImageInfo, labels: dict[str, str]) -> ImageInfo:
    from dataclasses import replace

    from ml_experiment.execution._docker_wheels import source_hash

    if labels.get(LABEL_SOURCE) == source_hash()[:12]:
        return image
    return replace(image, overlay=labels[LABEL_SITE])


def _made(image: ImageInfo, made: Any) -> ImageInfo:
    env = tuple((made.attrs.get("Config") or {}).get("Env") or ())
    info = ImageInfo(image.name, made.id, image.digest, env, base_id=image.id)
    return _with_overlay(info, made.labels or {})


def _is_dev_checkout() -> bool:
    # A checkout's version does not change with its code: trust only a made image's label there.
    from ml_experiment.execution._docker_wheels import project_source

    return project_source() is not None
