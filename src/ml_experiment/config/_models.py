"""The job-file models: one validated, typed view of a job, built once by the loader."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any, Literal, TypeAlias

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Discriminator,
    Field,
    PlainSerializer,
    PlainValidator,
    Tag,
    field_validator,
    model_validator,
)

from ._bounds import check_name
from ._param_space import Distribution, flatten_space, parse_distribution

__all__ = [
    "KINDS",
    "PRUNERS",
    "SAMPLERS",
    "AnyJobConfig",
    "BaseJobConfig",
    "DockerConfig",
    "ExperimentConfig",
    "FieldValueError",
    "GroupConfig",
    "JobConfig",
    "MetricConfig",
    "RayConfig",
    "ResourcesConfig",
    "format_loc",
]

KINDS = ("job", "experiment", "group")
SAMPLERS = ("tpe", "random", "cmaes", "gp", "qmc", "grid", "nsga2")
PRUNERS = ("hyperband", "sha", "median", "percentile", "none")
_PRUNER_ALIASES = {"successivehalving": "sha"}
METRIC_TAGS = ("single", "multi")  # discriminator tags; the loader strips them from error paths


def format_loc(loc: tuple[str | int, ...] | list[str | int]) -> str:
    """A pydantic location as a field path: ``("run", 0)`` -> ``run[0]``."""
    out = ""
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else f"{'.' if out else ''}{part}"
    return out


class FieldValueError(ValueError):
    """A validation failure of a sub-field, below the location where pydantic raised it.

    Attributes:
        reason: The message without the path.
        loc: The path below pydantic's location, e.g. ``(1,)`` for the second list entry.
    """

    def __init__(self, reason: str, loc: tuple[str | int, ...] = ()) -> None:
        self.reason = reason
        self.loc = loc
        super().__init__(f"{format_loc(loc)}: {reason}" if loc else reason)


def _no_bool(value: Any) -> Any:
    # pydantic reads True as 1; in a job file that is always a mistake.
    if isinstance(value, bool):
        raise ValueError(f"must be a number, got {value!r}")
    return value


def _lower(value: Any) -> Any:
    return value.strip().lower() if isinstance(value, str) else value


_Int = Annotated[int, BeforeValidator(_no_bool)]
_Float = Annotated[float, BeforeValidator(_no_bool)]


def _param_entry(value: Any) -> Distribution | list[Distribution]:
    """Parses one param_space value: a distribution string or a list of them."""
    if isinstance(value, Distribution):
        return value
    if isinstance(value, str):
        return parse_distribution(value)
    if not isinstance(value, list | tuple):
        raise ValueError(
            f"must be a distribution such as 'uniform(0, 1)' or a list of them, got {value!r}"
        )
    out = []
    for i, item in enumerate(_rejoin(list(value))):
        try:
            out.append(item if isinstance(item, Distribution) else parse_distribution(item))
        except ValueError as exc:
            raise FieldValueError(str(exc), (i,)) from None
    if not out:
        raise ValueError("must not be an empty list")
    return out


def _rejoin(items: list[Any]) -> list[Any]:
    """Undoes YAML's split of ``[range(2, 20), range(2, 20)]`` into ``['range(2', 20, ...]``.

    In a YAML flow sequence every ", " separates items, so a distribution with arguments arrives
    in pieces; the pieces are glued back until parentheses balance (complete items never merge).
    """
    out: list[Any] = []
    pending: list[str] = []
    for item in items:
        if not pending and not isinstance(item, str):
            out.append(item)
            continue
        # YAML has typed the middle pieces ("20" -> 20); their str() reads back the same.
        pending.append(item if isinstance(item, str) else str(item))
        text = ", ".join(pending)
        if text.count("(") + text.count("[") <= text.count(")") + text.count("]"):
            out.append(text)
            pending = []
    return out + ([", ".join(pending)] if pending else [])


def _dump_entry(entry: Distribution | list[Distribution]) -> str | list[str]:
    return [str(d) for d in entry] if isinstance(entry, list) else str(entry)


ParamEntry = Annotated[
    Distribution | list[Distribution],
    PlainValidator(_param_entry),
    PlainSerializer(_dump_entry, when_used="json"),
]


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid")

    def resolved_dict(self) -> dict[str, Any]:
        """A JSON-able dump: paths as strings, distributions as their source text."""
        data = self.model_dump(mode="json")
        if "source" in data:  # last, after the subclass's fields
            data["source"] = data.pop("source")
        return data


class MetricConfig(_Model):
    """The metric a group optimises."""

    name: str = Field(min_length=1)
    direction: Annotated[Literal["maximize", "minimize"], BeforeValidator(_lower)] = "maximize"


class ResourcesConfig(_Model):
    """What one trial worker reserves on Ray."""

    cpu: Annotated[_Float, Field(gt=0)] = 1.0
    gpu: Annotated[_Float, Field(ge=0)] = 0.0


def _check_json_like(value: Any, loc: tuple[str | int, ...]) -> None:
    if isinstance(value, dict):
        for key, item in value.items():
            if not isinstance(key, str):
                raise FieldValueError(f"keys must be strings, got {key!r}", loc)
            _check_json_like(item, (*loc, key))
    elif isinstance(value, list | tuple):
        for i, item in enumerate(value):
            _check_json_like(item, (*loc, i))
    elif not isinstance(value, str | int | float | bool | type(None)):
        raise FieldValueError(f"must be JSON-like data, got {value!r}", loc)


class RayConfig(_Model):
    """How to reach or start Ray; unknown keys are passed to ``ray.init``."""

    model_config = ConfigDict(extra="allow")

    address: str | None = None
    num_cpus: Annotated[_Int, Field(ge=1)] | None = None
    num_gpus: Annotated[_Int, Field(ge=0)] | None = None

    @model_validator(mode="after")
    def _extras_are_data(self) -> RayConfig:
        for key, value in (self.model_extra or {}).items():
            _check_json_like(value, (key,))
        return self

    def init_kwargs(self) -> dict[str, Any]:
        """The extra keys, for ``ray.init(**kwargs)``."""
        return dict(self.model_extra or {})


class DockerConfig(_Model):
    """The container the job's scripts run in: a ready image or a Dockerfile to build."""

    image: str | None = None
    dockerfile: str | None = None
    context: str | None = None
    args: dict[str, str] = {}

    @model_validator(mode="after")
    def _one_source(self) -> DockerConfig:
        if (self.image is None) == (self.dockerfile is None):
            got = "both" if self.image is not None else "neither"
            raise ValueError(f"needs exactly one of 'image' or 'dockerfile', got {got}")
        return self


def _masked(url: str | None) -> str | None:
    from ml_experiment.hpo._storage import public_url

    return None if url is None else public_url(url)


def _as_list(value: Any) -> Any:
    return [value] if isinstance(value, str | Path) else value


class BaseJobConfig(_Model):
    """Fields shared by every kind of job."""

    name: str
    kind: Annotated[Literal["job", "experiment", "group"], BeforeValidator(_lower)]
    params: dict[str, Any] = {}
    run: Annotated[list[Path], BeforeValidator(_as_list), Field(min_length=1)]
    docker_config: DockerConfig | None = None
    ray_config: RayConfig | None = None
    seed: Annotated[_Int, Field(ge=0, lt=2**32)] | None = None
    tracking_uri: str | None = None
    deterministic: bool = False  # apply the known determinism switches (execution/_determinism)
    data_files: Annotated[list[Path], BeforeValidator(_as_list)] = []  # hashed on every run
    # Apprise URLs to notify (issue 16). Secrets: excluded from dumps (config/job.json) and repr.
    notify: Annotated[list[str], BeforeValidator(_as_list)] = Field([], exclude=True, repr=False)
    source: Path | None = None

    @field_validator("name")
    @classmethod
    def _valid_name(cls, value: str) -> str:
        return check_name(value)

    @model_validator(mode="after")
    def _resolve_run(self) -> BaseJobConfig:
        # Relative to the job file, so a job runs the same from any working directory.
        base = self.source.parent if self.source else Path.cwd()
        resolved = []
        for i, path in enumerate(self.run):
            if path.suffix != ".py":
                raise FieldValueError(
                    f"is not a Python script (.py), got {str(path)!r}: `run:` lists the "
                    "scripts whose @job function runs",
                    ("run", i),
                )
            full = (base / path.expanduser()).resolve()
            if not full.is_file():
                what = "is not a file" if full.exists() else "script not found"
                where = "" if str(full) == str(path) else f" (looked for {str(full)!r})"
                raise FieldValueError(f"{what}: {str(path)!r}{where}", ("run", i))
            resolved.append(full)
        self.run = resolved
        for i, path in enumerate(self.data_files):
            full = (base / path.expanduser()).resolve()
            if not full.exists():
                raise FieldValueError(f"no such file or folder: {str(path)!r}", ("data_files", i))
            self.data_files[i] = full
        if self.source is not None:
            self.source = self.source.resolve()
        return self


class JobConfig(BaseJobConfig):
    """An untracked run of the scripts."""

    kind: Annotated[Literal["job"], BeforeValidator(_lower)] = "job"


class ExperimentConfig(BaseJobConfig):
    """One tracked run (the default kind)."""

    kind: Annotated[Literal["experiment"], BeforeValidator(_lower)] = "experiment"


def _metric_tag(value: Any) -> str:
    return "multi" if isinstance(value, list | tuple) else "single"


def _metric_shorthand(value: Any) -> Any:
    # `metric: val_accuracy` is short for `metric: {name: val_accuracy}`.
    if isinstance(value, list | tuple):
        return [{"name": v} if isinstance(v, str) else v for v in value]
    return {"name": value} if isinstance(value, str) else value


_Metric = Annotated[
    Annotated[MetricConfig, Tag("single")] | Annotated[list[MetricConfig], Tag("multi")],
    Discriminator(_metric_tag),
]


class GroupConfig(BaseJobConfig):
    """An Optuna study of ``num_trials`` tracked trials."""

    kind: Annotated[Literal["group"], BeforeValidator(_lower)] = "group"
    param_space: dict[str, ParamEntry] = {}
    num_trials: Annotated[_Int, Field(ge=1)] = 10
    sampler: str = "tpe"
    pruner: str = "median"
    timeout_per_trial: Annotated[_Float, Field(gt=0)] | None = None
    metric: Annotated[_Metric | None, BeforeValidator(_metric_shorthand)] = None
    resources_per_worker: ResourcesConfig = ResourcesConfig()
    ray_config: RayConfig = RayConfig()
    report: bool = True  # an HTML + PNG report at the end, logged to the parent run
    replay: list[dict[str, Any]] = []  # recorded trials to re-run first: {params, seed, of}
    # Optuna storage URL (default: the journal file); stored with its password masked.
    study_storage: Annotated[str | None, PlainSerializer(_masked, when_used="json")] = None

    @field_validator("param_space", mode="before")
    @classmethod
    def _flow_mapping_split(cls, value: Any) -> Any:
        # YAML splits `{b: uniform(0, 1)}` at the comma into {'b': 'uniform(0', '1)': None};
        # the pieces cannot be glued back (equal pieces collide as keys), so say what happened.
        if not isinstance(value, dict) or None not in value.values():
            return value
        for name, entry in value.items():
            if isinstance(entry, str) and entry.count("(") > entry.count(")"):
                raise FieldValueError(
                    f"YAML split {entry!r}... at a comma: inside {{ }} quote each distribution, "
                    f"e.g. {{{name}: '{entry}, ...)'}}, or write one name per line",
                    (name,),
                )
        return value

    @field_validator("sampler", mode="before")
    @classmethod
    def _known_sampler(cls, value: Any) -> str:
        name = _lower(value)
        if name == "skopt":
            raise ValueError(
                "The skopt sampler was removed from Optuna; use 'gp' "
                "(Gaussian-process Bayesian optimisation) instead."
            )
        if name not in SAMPLERS:
            raise ValueError(f"Unknown sampler {value!r}. Available: {', '.join(SAMPLERS)}.")
        return name

    @field_validator("pruner", mode="before")
    @classmethod
    def _known_pruner(cls, value: Any) -> str:
        name = "none" if value is None else _lower(value)
        name = _PRUNER_ALIASES.get(name, name) if isinstance(name, str) else name
        if name not in PRUNERS:
            raise ValueError(f"Unknown pruner {value!r}. Available: {', '.join(PRUNERS)}.")
        return name

    @field_validator("metric")
    @classmethod
    def _unique_metrics(cls, value: Any) -> Any:
        if isinstance(value, list):
            if not value:
                raise ValueError("a metric list needs at least one metric, got []")
            seen: set[str] = set()
            for i, metric in enumerate(value):
                if metric.name in seen:
                    raise FieldValueError(f"duplicate metric name {metric.name!r}", (i, "name"))
                seen.add(metric.name)
        return value

    @model_validator(mode="after")
    def _space_fits_sampler(self) -> GroupConfig:
        try:
            flatten_space(self.param_space)
        except ValueError as exc:
            raise FieldValueError(str(exc), ("param_space",)) from None
        if self.sampler == "grid":
            for name, entry in self.param_space.items():
                for i, dist in enumerate(entry if isinstance(entry, list) else [entry]):
                    if not dist.is_discrete:
                        loc = (
                            ("param_space", name, i)
                            if isinstance(entry, list)
                            else ("param_space", name)
                        )
                        raise FieldValueError(
                            f"the grid sampler needs choice, range or randint, got {str(dist)!r}",
                            loc,
                        )
        return self

    @property
    def is_multi_objective(self) -> bool:
        """Whether ``metric`` is a list (Optuna optimises all of them)."""
        return isinstance(self.metric, list)


AnyJobConfig: TypeAlias = JobConfig | ExperimentConfig | GroupConfig
