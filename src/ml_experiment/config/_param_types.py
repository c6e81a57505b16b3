"""A parameter's value against the job function's annotation, before anything runs.

Values come from job files and command lines (YAML/JSON data), so the check is about data
types: ``n: int`` given ``"three"`` is bad input. The coercions a user expects are applied
(``"1e-3"`` or ``3`` for a float, ``"3"`` or ``3.0`` for an int, a list for a tuple); ``bool``
stays strict; annotations this module does not know (a class of the user's, ``Path``) accept
anything, as an unannotated parameter does. String annotations (``from __future__ import
annotations``) are read by a small parser, never evaluated.
"""

from __future__ import annotations

import ast
import inspect
import numbers
import types
import typing
from collections.abc import Mapping, Sequence
from typing import Any, Literal, Union

__all__ = ["ParamTypeError", "check_param"]

_UNKNOWN = object()  # an annotation that is not checked
_NoneType = type(None)


class ParamTypeError(ValueError):
    """A value that contradicts an annotation; ``loc`` is the path below the parameter."""

    def __init__(self, reason: str, loc: str = "") -> None:
        super().__init__(reason)
        self.reason = reason
        self.loc = loc


def _short(value: Any, limit: int = 60) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


# -- string annotations ---------------------------------------------------------------------

_NAMES: dict[str, Any] = {
    "int": int,
    "float": float,
    "str": str,
    "bool": bool,
    "None": None,
    "NoneType": None,
    "Any": Any,
    "object": Any,
    "list": list,
    "List": list,
    "Sequence": list,
    "tuple": tuple,
    "Tuple": tuple,
    "dict": dict,
    "Dict": dict,
    "Mapping": dict,
}


def _split_top(text: str, sep: str) -> list[str]:
    """Split ``text`` at ``sep`` outside brackets and quotes."""
    parts, depth, quote, start = [], 0, "", 0
    for i, ch in enumerate(text):
        if quote:
            quote = "" if ch == quote else quote
        elif ch in "'\"":
            quote = ch
        elif ch in "[(":
            depth += 1
        elif ch in "])":
            depth -= 1
        elif ch == sep and depth == 0:
            parts.append(text[start:i])
            start = i + 1
    return [*parts, text[start:]]


def _parse(text: str) -> Any:
    text = text.strip()
    alternatives = _split_top(text, "|")
    if len(alternatives) > 1:
        return _union([_parse(a) for a in alternatives])
    if text == "...":
        return Ellipsis
    head, bracket, rest = text.partition("[")
    head = head.strip().rpartition(".")[2]  # typing.Optional -> Optional
    if not bracket:
        return _NAMES.get(head, _UNKNOWN)
    if not rest.endswith("]"):
        return _UNKNOWN
    inner = rest[:-1]
    if head == "Literal":
        try:
            values = ast.literal_eval(f"({inner},)")  # literals only, never code
        except (ValueError, SyntaxError):
            return _UNKNOWN
        return Literal[values]
    args = [_parse(a) for a in _split_top(inner, ",")]
    if head == "Optional" and len(args) == 1:
        return _union([args[0], None])
    if head == "Union":
        return _union(args)
    origin = _NAMES.get(head, _UNKNOWN)
    if origin in (list, tuple, dict):
        return (origin, tuple(args))
    return _UNKNOWN


def _union(args: list[Any]) -> Any:
    return _UNKNOWN if _UNKNOWN in args else ("union", tuple(args))


# -- normalised annotations -------------------------------------------------------------------


def _normalise(annotation: Any) -> Any:
    """An annotation as ``int``/``float``/``str``/``bool``/``None``/``Any``/``("union", args)``/
    ``(list|tuple|dict, args)``/``("literal", values)``, or ``_UNKNOWN``."""
    if isinstance(annotation, str):
        annotation = _parse(annotation)
    if annotation is Ellipsis:  # tuple[int, ...]
        return Ellipsis
    if annotation is inspect.Parameter.empty or annotation is Any or annotation is _UNKNOWN:
        return Any if annotation is not _UNKNOWN else _UNKNOWN
    if annotation is None or annotation is _NoneType:
        return None
    if isinstance(annotation, tuple):  # already parsed from a string
        kind, args = annotation
        return (kind, tuple(_normalise(a) for a in args)) if kind != "literal" else annotation
    origin = typing.get_origin(annotation)
    args = typing.get_args(annotation)
    if origin is Literal:
        return ("literal", args)
    if origin is Union or origin is types.UnionType:
        return _union([_normalise(a) for a in args])
    if origin is typing.Annotated:
        return _normalise(args[0])
    if origin in (list, Sequence, set, frozenset) or annotation in (list, Sequence):
        return (list, tuple(_normalise(a) for a in args))
    if origin is tuple or annotation is tuple:
        return (tuple, tuple(_normalise(a) for a in args))
    if origin in (dict, Mapping) or annotation in (dict, Mapping):
        return (dict, tuple(_normalise(a) for a in args))
    if annotation in (int, float, str, bool):
        return annotation
    return _UNKNOWN


def _describe(kind: Any) -> str:
    if kind is None:
        return "None"
    if isinstance(kind, type):
        return kind.__name__
    if isinstance(kind, tuple):
        name, args = kind
        if name == "union":
            return " or ".join(_describe(a) for a in args)
        if name == "literal":
            return "one of " + ", ".join(repr(v) for v in args)
        what = {list: "a list", tuple: "a list", dict: "a mapping"}[name]
        if name is dict and len(args) == 2:
            return f"{what} of {_describe(args[1])}"
        if args and args[0] not in (Any, _UNKNOWN):
            return f"{what} of {_describe(args[0])}"
        return what
    return "any value"


# -- checking ----------------------------------------------------------------------------------


def _exact(value: Any, kind: Any) -> bool:
    """Whether ``value`` already is of the simple ``kind`` (no coercion)."""
    if kind is None:
        return value is None
    if kind is bool:
        return isinstance(value, bool)
    if kind is int:
        return isinstance(value, numbers.Integral) and not isinstance(value, bool)
    if kind is float:
        return isinstance(value, numbers.Real) and not isinstance(value, bool)
    if kind is str:
        return isinstance(value, str)
    return False


def _coerce_number(value: Any, kind: type) -> Any:
    if isinstance(value, bool):
        raise ParamTypeError(f"expected {kind.__name__}, got {_short(value)}")
    if kind is int and isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, str):
        text = value.strip().replace("_", "")
        try:
            number = float(text)
        except ValueError:
            number = None
        if number is not None:
            if kind is float:
                return number
            try:
                return int(text)
            except ValueError:
                if number.is_integer():
                    return int(number)
    raise ParamTypeError(f"expected {kind.__name__}, got {_short(value)}")


def _check(value: Any, kind: Any) -> Any:
    if kind is Any or kind is _UNKNOWN:
        return value
    if kind in (None, bool, int, float, str):
        if _exact(value, kind):
            return value
        if kind in (int, float):
            return _coerce_number(value, kind)
        raise ParamTypeError(f"expected {_describe(kind)}, got {_short(value)}")
    name, args = kind
    if name == "literal":
        for allowed in args:
            if value == allowed and type(value) is type(allowed):
                return value
        raise ParamTypeError(f"expected {_describe(kind)}, got {_short(value)}")
    if name == "union":
        for arg in args:  # a value that already fits one member is kept as it is
            if arg in (Any, _UNKNOWN) or (not isinstance(arg, tuple) and _exact(value, arg)):
                return value
        others = [a for a in args if a is not None]
        if value is not None and len(others) == 1:  # X | None: X's own, more precise message
            return _check(value, others[0])
        for arg in args:
            try:
                return _check(value, arg)
            except ParamTypeError:
                continue
        raise ParamTypeError(f"expected {_describe(kind)}, got {_short(value)}")
    if name is dict:
        if not isinstance(value, Mapping):
            raise ParamTypeError(f"expected {_describe(kind)}, got {_short(value)}")
        item = args[1] if len(args) == 2 else Any
        return {k: _at(v, item, f".{k}") for k, v in value.items()}
    if not isinstance(value, list | tuple):
        raise ParamTypeError(f"expected {_describe(kind)}, got {_short(value)}")
    if name is tuple and args and args[-1] is not Ellipsis and len(args) != len(value):
        raise ParamTypeError(f"expected {len(args)} items, got {_short(value)}")
    items = [_at(v, _item_kind(name, args, i), f"[{i}]") for i, v in enumerate(value)]
    return tuple(items) if name is tuple else items


def _item_kind(name: Any, args: tuple[Any, ...], i: int) -> Any:
    if not args:
        return Any
    if name is tuple and args[-1] is not Ellipsis:
        return args[i]
    return args[0]


def _at(value: Any, kind: Any, loc: str) -> Any:
    try:
        return _check(value, kind)
    except ParamTypeError as exc:
        raise ParamTypeError(exc.reason, loc + exc.loc) from None


def check_param(value: Any, annotation: Any) -> Any:
    """``value`` checked against ``annotation``, with the expected coercions applied.

    Raises:
        ParamTypeError: the value contradicts the annotation; ``loc`` is the path inside it
            (``[1]`` for a list's second item), ``reason`` says ``expected int, got 'three'``.
    """
    return _check(value, _normalise(annotation))
