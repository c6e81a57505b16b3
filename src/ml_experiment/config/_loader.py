"""Reads a job file (YAML or JSON), applies command-line overrides, validates once."""

from __future__ import annotations

import difflib
import json
import re
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ValidationError
from pydantic_core import ErrorDetails

from ..exceptions import ConfigError
from ._bounds import MAX_DEPTH, check_data, check_node, too_large
from ._models import (
    KINDS,
    METRIC_TAGS,
    AnyJobConfig,
    ExperimentConfig,
    FieldValueError,
    GroupConfig,
    JobConfig,
    format_loc,
)

__all__ = ["load_config", "read_mapping"]

_MODELS: dict[str, type[JobConfig | ExperimentConfig | GroupConfig]] = {
    "job": JobConfig,
    "experiment": ExperimentConfig,
    "group": GroupConfig,
}
# Overrides of these fields merge into the file's mapping instead of replacing it.
_MERGED = ("params", "param_space", "ray_config", "docker_config", "resources_per_worker", "metric")
_MAPPING_SUFFIXES = (".yaml", ".yml", ".json")
_NO_FILE = "command line"


class _SafeLoader(yaml.SafeLoader):
    """``yaml.SafeLoader`` that also reads ``1e-5`` as a float, as YAML 1.2 and JSON do.

    PyYAML follows YAML 1.1, where an exponent without a dot is a string: a learning rate of
    ``1e-5`` would reach the user's function as ``'1e-5'``.
    """


_SafeLoader.add_implicit_resolver(
    "tag:yaml.org,2002:float",
    re.compile(r"^[-+]?(?:[0-9][0-9_]*)(?:\.[0-9_]*)?[eE][-+]?[0-9]+$"),
    list("-+0123456789"),
)


def parse_value(text: str) -> Any:
    """One command-line value read as YAML data (``0.5``, ``1e-5``, ``[1, 2]``, ``rbf``); never code."""
    try:
        return _parse_text(text, json_only=False) if text != "" else ""
    except ValueError:
        return text


def _short(value: Any, limit: int = 80) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _parse_text(text: str, *, json_only: bool) -> Any:
    """Parses JSON or YAML; raises ValueError with one line naming line and column."""
    reason = too_large(len(text.encode("utf-8", "surrogatepass")))
    if reason is not None:
        raise ValueError(reason)
    if json_only:
        try:
            data = json.loads(text)
        except json.JSONDecodeError as exc:
            raise ValueError(
                f"invalid JSON at line {exc.lineno}, column {exc.colno}: {exc.msg}"
            ) from None
        except RecursionError:
            raise ValueError(f"is nested more than {MAX_DEPTH} levels deep") from None
        check_data(data)
        return data
    try:
        return _load_yaml(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        problem = getattr(exc, "problem", None) or str(exc)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        raise ValueError(f"invalid YAML{where}: {' '.join(problem.split())}") from None


def _load_yaml(text: str) -> Any:
    """``yaml.load`` with the SafeLoader subclass (no arbitrary objects), aliases bounded."""
    loader = _SafeLoader(text)
    try:
        try:
            node = loader.get_single_node()
        except RecursionError:
            raise ValueError(f"is nested more than {MAX_DEPTH} levels deep") from None
        if node is None:
            return None
        check_node(node)  # before construction: an alias bomb is refused while still small
        return loader.construct_document(node)
    finally:
        loader.dispose()


def _read_file(path: Path, label: str) -> Any:
    try:
        # Refused before reading: a huge file is not worth the memory or the time.
        reason = too_large(path.stat().st_size) if path.is_file() else None
        if reason is not None:
            raise ConfigError(reason, source=label)
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError("file not found", source=label) from None
    except IsADirectoryError:
        raise ConfigError("is a directory, expected a job file", source=label) from None
    except UnicodeDecodeError:
        raise ConfigError("is not UTF-8 text", source=label) from None
    except OSError as exc:
        raise ConfigError(f"cannot be read: {exc.strerror}", source=label) from None
    try:
        data = _parse_text(text, json_only=path.suffix.lower() == ".json") if text.strip() else None
    except ValueError as exc:
        raise ConfigError(str(exc), source=label) from None
    if data is None:
        raise ConfigError("the file is empty", source=label)
    return data


def _is_file(path: Path) -> bool:
    try:
        return path.is_file()
    except OSError:
        return False


def read_mapping(text_or_path: str, *, what: str) -> dict[str, Any]:
    """Reads a CLI dict option: inline JSON/YAML, or a path to a .yaml/.yml/.json file.

    Args:
        text_or_path: The option's value, e.g. ``'{"C": 2}'`` or ``params.yaml``.
        what: The option, e.g. ``--params``; it is the ``source`` of any error.

    Raises:
        ConfigError: Not parseable, or not a mapping.
    """
    text = text_or_path.strip()
    # Inline JSON longer than a file name may be makes is_file() raise: it is then not a path.
    path = Path(text) if text and "\n" not in text and not text.startswith(("{", "[")) else None
    if path is not None and (path.suffix.lower() in _MAPPING_SUFFIXES or _is_file(path)):
        try:
            data = _read_file(path, text)
        except ConfigError as exc:
            raise ConfigError(str(exc), source=what) from None
    else:
        try:
            data = _parse_text(text, json_only=False)
        except ValueError as exc:
            raise ConfigError(str(exc), source=what) from None
    if not isinstance(data, dict):
        raise ConfigError(
            f"must be a JSON/YAML mapping or a .yaml/.yml/.json file, got {_short(text_or_path)}",
            source=what,
        )
    return data


def _merge(data: dict[str, Any], overrides: dict[str, Any]) -> dict[str, Any]:
    merged = dict(data)
    for key, value in overrides.items():
        if value is None:  # an unset CLI option
            continue
        if key == "run":
            # Scripts named on the command line are relative to where the command runs.
            value = [Path.cwd() / p if isinstance(p, str | Path) else p for p in _listify(value)]
        old = merged.get(key)
        if key in _MERGED and isinstance(old, dict) and isinstance(value, dict):
            if key == "docker_config" and {"image", "dockerfile"} & value.keys():
                # A new image or Dockerfile replaces the file's choice rather than adding to it.
                old = {k: v for k, v in old.items() if k not in ("image", "dockerfile")}
            value = {**old, **value}
        merged[key] = value
    return merged


def _listify(value: Any) -> list[Any]:
    return [value] if isinstance(value, str | Path) else list(value)


def _model_at(model: type[BaseModel] | None, loc: list[str | int]) -> type[BaseModel] | None:
    """The model class that holds the field at ``loc``, if the path leads through models."""
    for part in loc:
        if model is None or isinstance(part, int):
            continue
        field = model.model_fields.get(part)
        model = _find_model(field.annotation) if field else None
    return model


def _find_model(annotation: Any) -> type[BaseModel] | None:
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    for arg in getattr(annotation, "__args__", ()) + getattr(annotation, "__metadata__", ()):
        found = _find_model(arg)
        if found is not None:
            return found
    return None


def _unknown_field(model: type[BaseModel], loc: list[str | int], kind: str) -> str:
    key, parent = loc[-1], _model_at(model, loc[:-1])
    if len(loc) == 1 and key in GroupConfig.model_fields and kind != "group":
        return f"only valid when kind is 'group', this job's kind is {kind!r}"
    if parent is None:
        return "unknown field"
    close = difflib.get_close_matches(str(key), list(parent.model_fields), n=1)
    if close:
        return f"unknown field; did you mean {close[0]!r}?"
    return f"unknown field; allowed: {', '.join(parent.model_fields)}"


def _reason(error: ErrorDetails) -> str:
    """One short sentence for one pydantic error, ending with the bad value."""
    kind, ctx = error["type"], error.get("ctx") or {}
    got = f", got {_short(error.get('input'))}"
    if kind in ("value_error", "assertion_error"):
        return str(ctx.get("error", error["msg"]))
    if kind == "missing":
        return "is required"
    bounds = {"greater_than": ">", "greater_than_equal": ">=", "less_than": "<"}
    bounds |= {"less_than_equal": "<="}
    if kind in bounds:
        limit = next(iter(ctx.values()), "?")
        return f"must be {bounds[kind]} {limit}{got}"
    simple = {
        "int_type": "must be an integer",
        "int_parsing": "must be an integer",
        "int_from_float": "must be a whole number",
        "float_type": "must be a number",
        "float_parsing": "must be a number",
        "finite_number": "must be a finite number",
        "string_type": "must be a string",
        "bool_type": "must be true or false",
        "bool_parsing": "must be true or false",
        "dict_type": "must be a mapping",
        "model_type": "must be a mapping",
        "model_attributes_type": "must be a mapping",
        "list_type": "must be a list",
        "path_type": "must be a path",
        "string_too_short": "must not be empty",
    }
    if kind in simple:
        return simple[kind] + got
    if kind == "too_short":
        return f"needs at least {ctx.get('min_length', 1)} item(s){got}"
    if kind == "literal_error":
        return f"must be {ctx.get('expected', 'one of the allowed values')}{got}"
    return error["msg"].splitlines()[0] + got


def _to_config_error(
    exc: ValidationError, model: type[BaseModel], kind: str, source: str
) -> ConfigError:
    error = exc.errors(include_url=False)[0]
    loc = list(error["loc"])
    if loc[:1] == ["metric"] and len(loc) > 1 and loc[1] in METRIC_TAGS:
        del loc[1]
    cause = (error.get("ctx") or {}).get("error")
    if isinstance(cause, FieldValueError):
        loc += cause.loc
        reason = cause.reason
    elif error["type"] == "extra_forbidden":
        reason = _unknown_field(model, loc, kind)
    else:
        reason = _reason(error)
    field = format_loc(loc) or None
    return ConfigError(" ".join(reason.split()), source=source, field=field)


def load_config(path: str | Path | None, overrides: dict[str, Any] | None = None) -> AnyJobConfig:
    """Loads and validates a job file, with command-line overrides applied on top.

    Args:
        path: The job file (``.json`` is read as JSON, anything else as YAML), or None to build
            the job from ``overrides`` alone.
        overrides: Already-parsed values by field name. Mapping fields (``params``,
            ``param_space``, ``ray_config``, ``docker_config``, ``resources_per_worker``,
            ``metric``) merge into the file's, the override winning; other fields replace.
            ``run`` entries are relative to the working directory; None values are ignored.

    Raises:
        ConfigError: One line, ``<file>: <field path>: <reason, got <value>>``.
    """
    source = _NO_FILE if path is None else str(path)
    data: Any = {} if path is None else _read_file(Path(path), source)
    if not isinstance(data, dict):
        raise ConfigError(
            f"the top level must be a mapping of field names, got a {type(data).__name__}",
            source=source,
        )
    if "source" in data:
        raise ConfigError(
            "unknown field (it is set by ml-experiment)", source=source, field="source"
        )
    data = _merge(data, overrides or {})
    raw_kind = data.get("kind", "experiment")
    kind = raw_kind.strip().lower() if isinstance(raw_kind, str) else raw_kind
    if kind not in KINDS:
        raise ConfigError(
            f"Unknown kind {raw_kind!r}. Available: {', '.join(KINDS)}.",
            source=source,
            field="kind",
        )
    data["kind"] = kind
    if path is not None:
        data["source"] = Path(path)
    model = _MODELS[kind]
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        raise _to_config_error(exc, model, kind, source) from None
