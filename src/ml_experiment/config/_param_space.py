"""The param-space grammar: ``range``, ``randint``, ``uniform``, ``loguniform``, ``choice``.

The text comes from job files and command lines, so it is tokenised and parsed here by hand;
nothing is ever evaluated as Python.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, TypeAlias

if TYPE_CHECKING:
    import optuna

__all__ = [
    "DISTRIBUTION_KINDS",
    "Distribution",
    "ParamSpace",
    "flatten_space",
    "parse_distribution",
    "unflatten_params",
]

DISTRIBUTION_KINDS = ("range", "randint", "uniform", "loguniform", "choice")
_PRIMITIVES = (type(None), bool, int, float, str)
_CONSTANTS = {
    "true": True,
    "false": False,
    "null": None,
    "True": True,
    "False": False,
    "None": None,
}
_ESCAPES = {"n": "\n", "t": "\t", "r": "\r", "0": "\0", "\\": "\\", "'": "'", '"': '"'}
_MAX_DEPTH = 32  # nested lists deeper than this are surely a mistake (and would recurse)

_TOKEN = re.compile(
    r"""
    (?P<ws>\s+)
    | (?P<number>(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?)
    | (?P<name>[A-Za-z_][A-Za-z_0-9]*)
    | (?P<string>['"])
    | (?P<punct>[()\[\],+-])
    """,
    re.VERBOSE,
)


@dataclass(frozen=True)
class _Token:
    kind: str  # "number" | "name" | "string" | "punct" | "end"
    text: str  # the token as written
    pos: int  # 0-based offset in the source
    value: Any = None

    def describe(self) -> str:
        return "end of text" if self.kind == "end" else repr(self.text)


def _error(source: str, token: _Token | int, what: str) -> ValueError:
    pos = token if isinstance(token, int) else token.pos
    return ValueError(f"{what} at column {pos + 1} of {source!r}")


def _read_string(source: str, start: int) -> tuple[str, int]:
    """Reads the quoted string opening at ``start``; returns its value and the end offset."""
    quote, i = source[start], start + 1
    out: list[str] = []
    while i < len(source):
        char = source[i]
        if char == quote:
            return "".join(out), i + 1
        if char == "\\":
            nxt = source[i + 1 : i + 2]
            if nxt in _ESCAPES:
                out.append(_ESCAPES[nxt])
                i += 2
                continue
            if nxt == "u" and re.fullmatch(r"[0-9a-fA-F]{4}", source[i + 2 : i + 6]):
                out.append(chr(int(source[i + 2 : i + 6], 16)))
                i += 6
                continue
            raise _error(source, i, f"unknown escape '\\{nxt}' in string")
        out.append(char)
        i += 1
    raise _error(source, start, "unterminated string")


def _tokenize(source: str) -> Iterator[_Token]:
    # Lazy, so that the parser reports the first offending token, not the first odd character.
    pos = 0
    while pos < len(source):
        match = _TOKEN.match(source, pos)
        if match is None:
            raise _error(source, pos, f"unexpected character {source[pos]!r}")
        kind = match.lastgroup or ""
        if kind == "string":
            text, end = _read_string(source, pos)
            yield _Token("string", source[pos:end], pos, text)
            pos = end
            continue
        text = match.group()
        if kind == "number":
            # A number glued to a name ("1abc", "2e") is junk, not two tokens.
            if re.match(r"[A-Za-z_]", source[match.end() : match.end() + 1]):
                raise _error(source, pos, f"malformed number {text + source[match.end()]!r}")
            value: Any = float(text) if re.search(r"[.eE]", text) else int(text)
            yield _Token("number", text, pos, value)
        elif kind != "ws":
            yield _Token(kind, text, pos)
        pos = match.end()
    yield _Token("end", "", len(source))


class _Parser:
    """Recursive descent over ``NAME '(' [value {',' value} [',']] ')'``."""

    def __init__(self, source: str) -> None:
        self.source = source
        self.tokens = _tokenize(source)
        self.ahead: _Token | None = None

    def peek(self) -> _Token:
        if self.ahead is None:
            self.ahead = next(self.tokens)
        return self.ahead

    def next(self) -> _Token:
        token = self.peek()
        if token.kind != "end":  # "end" repeats forever
            self.ahead = None
        return token

    def expect(self, text: str) -> _Token:
        token = self.next()
        if token.kind != "punct" or token.text != text:
            raise _error(self.source, token, f"expected '{text}' but found {token.describe()}")
        return token

    def call(self) -> tuple[str, list[Any]]:
        token = self.next()
        if token.kind != "name":
            raise _error(
                self.source, token, f"expected a distribution name but found {token.describe()}"
            )
        if token.text not in DISTRIBUTION_KINDS:
            raise _error(
                self.source,
                token,
                f"unknown distribution {token.text!r} (available: {', '.join(DISTRIBUTION_KINDS)})",
            )
        self.expect("(")
        args = self.sequence(")", depth=0)
        end = self.next()
        if end.kind != "end":
            raise _error(self.source, end, f"unexpected {end.describe()} after the closing ')'")
        return token.text, args

    def sequence(self, closer: str, depth: int) -> list[Any]:
        """Parses comma-separated values up to and including ``closer``."""
        items: list[Any] = []
        while True:
            token = self.peek()
            if token.kind == "punct" and token.text == closer:
                self.next()
                return items
            items.append(self.value(depth))
            token = self.next()
            if token.kind == "punct" and token.text == closer:
                return items
            if token.kind == "end":
                raise _error(self.source, token, f"unexpected end of text, missing '{closer}'")
            if not (token.kind == "punct" and token.text == ","):
                raise _error(
                    self.source, token, f"expected ',' or '{closer}' but found {token.describe()}"
                )

    def value(self, depth: int) -> Any:
        token = self.next()
        if token.kind == "punct" and token.text in "+-":
            number = self.next()
            if number.kind != "number":
                raise _error(
                    self.source,
                    number,
                    f"expected a number after '{token.text}' but found {number.describe()}",
                )
            return -number.value if token.text == "-" else number.value
        if token.kind in ("number", "string"):
            return token.value
        if token.kind == "name" and token.text in _CONSTANTS:
            return _CONSTANTS[token.text]
        if token.kind == "punct" and token.text == "[":
            if depth >= _MAX_DEPTH:
                raise _error(self.source, token, "lists nested too deeply")
            return tuple(self.sequence("]", depth + 1))
        if token.kind == "name":
            raise _error(
                self.source, token, f"unexpected name {token.text!r} (strings need quotes)"
            )
        if token.kind == "end":
            raise _error(self.source, token, "unexpected end of text, missing a value")
        raise _error(self.source, token, f"unexpected {token.describe()}")


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _fmt(args: list[Any]) -> str:
    return "(" + ", ".join(repr(a) for a in args) + ")"


def _check_args(kind: str, args: list[Any], source: str) -> tuple[Any, ...]:
    """Validates the arguments of one distribution and returns them normalised."""
    if kind == "choice":
        values = args[0] if len(args) == 1 and isinstance(args[0], tuple) else tuple(args)
        if not values:
            raise ValueError(f"choice needs at least one value, got {source!r}")
        return values
    arity = (2, 3) if kind == "range" else (2,)
    if len(args) not in arity:
        wanted = "2 or 3" if kind == "range" else "2"
        raise ValueError(f"{kind} takes {wanted} arguments, got {len(args)} in {source!r}")
    if kind in ("range", "randint"):
        if not all(isinstance(a, int) and not isinstance(a, bool) for a in args):
            raise ValueError(f"{kind} needs integer arguments, got {_fmt(args)}")
        if kind == "randint":
            if args[0] > args[1]:
                raise ValueError(f"randint needs low <= high, got {_fmt(args)}")
            return tuple(args)
        low, high, step = (*args, 1) if len(args) == 2 else args
        if step <= 0:
            raise ValueError(f"range needs step > 0, got {_fmt(args)}")
        if low >= high:
            raise ValueError(f"range needs low < high (it would be empty), got {_fmt(args)}")
        return (low, high, step)
    if not all(_is_number(a) and math.isfinite(a) for a in args):
        raise ValueError(f"{kind} needs two finite numbers, got {_fmt(args)}")
    low, high = args
    if kind == "loguniform" and not 0 < low < high:
        raise ValueError(f"loguniform needs 0 < low < high, got {_fmt(args)}")
    if kind == "uniform" and not low < high:
        raise ValueError(f"uniform needs low < high, got {_fmt(args)}")
    return (float(low), float(high))


def _to_plain(value: Any) -> Any:
    """Tuples (how nested lists are stored, to keep Distribution hashable) back to lists."""
    return [_to_plain(v) for v in value] if isinstance(value, tuple) else value


@dataclass(frozen=True)
class Distribution:
    """One parsed distribution of a param space.

    Attributes:
        kind: ``range``, ``randint``, ``uniform``, ``loguniform`` or ``choice``.
        args: The validated arguments: ``(low, high, step)`` for range, ``(low, high)`` for the
            others, the tuple of values for choice (nested lists stored as tuples).
        source: The original text, e.g. ``"loguniform(0.01, 1000)"``.
    """

    kind: str
    args: tuple[Any, ...]
    source: str

    def __str__(self) -> str:
        return self.source

    @property
    def is_discrete(self) -> bool:
        """Whether a grid search can enumerate it."""
        return self.kind in ("range", "randint", "choice")

    @property
    def _json_encoded(self) -> bool:
        # Optuna only stores None/bool/int/float/str choices; anything else travels as JSON.
        return self.kind == "choice" and not all(isinstance(v, _PRIMITIVES) for v in self.args)

    def to_optuna(self) -> optuna.distributions.BaseDistribution:
        """The equivalent Optuna distribution (imports optuna)."""
        from optuna.distributions import (
            CategoricalDistribution,
            FloatDistribution,
            IntDistribution,
        )

        if self.kind == "range":
            low, high, step = self.args
            last = low + (high - 1 - low) // step * step
            return IntDistribution(low, last, step=step)
        if self.kind == "randint":
            return IntDistribution(*self.args)
        if self.kind in ("uniform", "loguniform"):
            low, high = self.args
            return FloatDistribution(low, high, log=self.kind == "loguniform")
        if self._json_encoded:
            return CategoricalDistribution([json.dumps(_to_plain(v)) for v in self.args])
        return CategoricalDistribution(list(self.args))

    def decode(self, value: Any) -> Any:
        """Maps a value Optuna stored for this distribution to what the user's function gets."""
        if self.kind in ("range", "randint"):
            return int(value)
        if self.kind in ("uniform", "loguniform"):
            return float(value)
        return json.loads(value) if self._json_encoded else _to_plain(value)


ParamSpace: TypeAlias = dict[str, Distribution | list[Distribution]]


def parse_distribution(text: str) -> Distribution:
    """Parses one distribution, e.g. ``"choice(['rbf', 'poly'])"``.

    Raises:
        ValueError: The text is not a valid distribution; the message says why and where.
    """
    if not isinstance(text, str):
        raise ValueError(f"expected a distribution such as 'uniform(0, 1)', got {text!r}")
    if not text.strip():
        raise ValueError(f"empty distribution, expected e.g. 'uniform(0, 1)', got {text!r}")
    kind, args = _Parser(text).call()
    return Distribution(kind, _check_args(kind, args, text), text.strip())


def flatten_space(
    space: Mapping[str, Distribution | list[Distribution]],
) -> dict[str, Distribution]:
    """One entry per Optuna parameter: list entries become ``name.0``, ``name.1``, ..."""
    flat: dict[str, Distribution] = {}
    for name, entry in space.items():
        items = (
            {f"{name}.{i}": d for i, d in enumerate(entry)}
            if isinstance(entry, list)
            else {name: entry}
        )
        for key, dist in items.items():
            if key in flat:
                raise ValueError(f"param_space has two parameters named {key!r}")
            flat[key] = dist
    return flat


def unflatten_params(
    space: Mapping[str, Distribution | list[Distribution]], flat: Mapping[str, Any]
) -> dict[str, Any]:
    """Decodes Optuna's values and reassembles list entries, in order.

    Keys of ``flat`` that the space does not produce (e.g. suggested by user code through
    ``Trial.get_current()``) are passed through unchanged.
    """
    out: dict[str, Any] = {}
    used: set[str] = set()
    for name, entry in space.items():
        if isinstance(entry, list):
            keys = [f"{name}.{i}" for i in range(len(entry))]
            out[name] = [d.decode(flat[k]) for d, k in zip(entry, keys, strict=True)]
            used.update(keys)
        else:
            out[name] = entry.decode(flat[name])
            used.add(name)
    out.update({k: v for k, v in flat.items() if k not in used})
    return out
