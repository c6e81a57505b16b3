"""A parameter's value against the function's annotation: what is accepted, coerced, refused."""

from __future__ import annotations

import inspect
import typing
from pathlib import Path
from typing import Any, Literal, Optional, Union

import pytest

from ml_experiment.config import ParamTypeError, check_param
from ml_experiment.exceptions import ConfigError
from ml_experiment.execution._invoke import bind_params


class Custom:
    pass


@pytest.mark.parametrize(
    ("annotation", "value", "expected"),
    [
        (int, 3, 3),
        (int, 3.0, 3),
        (int, "3", 3),
        (int, "1e3", 1000),
        (float, 1, 1),  # an int is a float; kept as given so it is logged as written
        (float, 0.5, 0.5),
        (float, "1e-3", 1e-3),
        (float, " 2.5 ", 2.5),
        (str, "rbf", "rbf"),
        (bool, True, True),
        (Optional[int], None, None),  # noqa: UP045 - the old spelling is what is tested
        (int | None, "4", 4),
        (Union[int, str], "x", "x"),  # noqa: UP007
        (int | str, "3", "3"),  # fits str as it is: not coerced to int
        (Literal["a", "b"], "b", "b"),
        (Literal[1, 2], 2, 2),
        (list[int], [1, "2", 3.0], [1, 2, 3]),
        (list, [1, "x"], [1, "x"]),
        (tuple[int, ...], [1, 2], (1, 2)),
        (tuple[int, str], [1, "a"], (1, "a")),
        (dict[str, float], {"a": "0.5"}, {"a": 0.5}),
        (typing.Annotated[int, "meta"], "5", 5),
        (Any, object, object),
        (inspect.Parameter.empty, "anything", "anything"),
        (Path, 3, 3),  # a class not known here: not checked
        (Custom, "x", "x"),
        # String annotations (from __future__ import annotations), parsed, never evaluated.
        ("int", "7", 7),
        ("float | None", None, None),
        ("Optional[float]", "1e-3", 1e-3),
        ("typing.List[int]", ["1"], [1]),
        ("Literal['x', 'y']", "y", "y"),
        ("dict[str, int]", {"a": 1}, {"a": 1}),
        ("MyClass", 3, 3),
        ("__import__('os').system('true')", 3, 3),
    ],
)
def test_accepted(annotation: Any, value: Any, expected: Any) -> None:
    got = check_param(value, annotation)
    assert got == expected and type(got) is type(expected)


@pytest.mark.parametrize(
    ("annotation", "value", "reason", "loc"),
    [
        (int, "three", "expected int, got 'three'", ""),
        (int, 3.5, "expected int, got 3.5", ""),
        (int, True, "expected int, got True", ""),
        (float, "abc", "expected float, got 'abc'", ""),
        (float, False, "expected float, got False", ""),
        (bool, 1, "expected bool, got 1", ""),
        (bool, "true", "expected bool, got 'true'", ""),
        (str, 3, "expected str, got 3", ""),
        (Optional[int], "x", "expected int, got 'x'", ""),  # noqa: UP045
        (int | list[int], "x", "expected int or a list of int, got 'x'", ""),
        (Literal["a", "b"], "c", "expected one of 'a', 'b', got 'c'", ""),
        (Literal[1], True, "expected one of 1, got True", ""),
        (list[int], [1, "x"], "expected int, got 'x'", "[1]"),
        (list[int], 3, "expected a list of int, got 3", ""),
        (tuple[int, str], [1], "expected 2 items, got [1]", ""),
        (dict[str, int], {"a": "b"}, "expected int, got 'b'", ".a"),
        ("int", "three", "expected int, got 'three'", ""),
        ("list[float]", ["x"], "expected float, got 'x'", "[0]"),
    ],
)
def test_refused(annotation: Any, value: Any, reason: str, loc: str) -> None:
    with pytest.raises(ParamTypeError) as info:
        check_param(value, annotation)
    assert (info.value.reason, info.value.loc) == (reason, loc)


def _sig(f: Any) -> inspect.Signature:
    return inspect.signature(f)


def test_bind_params_names_file_field_and_value() -> None:
    def f(n: int, lr: float = 0.1, layers: list[int] | None = None):
        pass

    with pytest.raises(ConfigError) as info:
        bind_params(_sig(f), {"n": "three"}, fn_name="f", source="job.yaml")
    assert str(info.value) == "job.yaml: params.n: expected int, got 'three'"
    with pytest.raises(ConfigError, match=r"job.yaml: params.layers\[1\]: expected int, got 'x'"):
        bind_params(_sig(f), {"n": 1, "layers": [1, "x"]}, fn_name="f", source="job.yaml")
    bound = bind_params(_sig(f), {"n": "2", "lr": "1e-3"}, fn_name="f")
    assert bound == {"n": 2, "lr": 1e-3, "layers": None}


def test_bind_params_does_not_check_searched_names() -> None:
    def f(C: float = 1.0, kernel: str = "rbf"):
        pass

    # Before a search its names carry placeholders; their values come from distributions.
    bound = bind_params(_sig(f), {"C": None, "kernel": "poly"}, fn_name="f", searched={"C"})
    assert bound == {"C": None, "kernel": "poly"}
    with pytest.raises(ConfigError, match=r"params\.kernel: expected str, got 3"):
        bind_params(_sig(f), {"C": None, "kernel": 3}, fn_name="f", searched={"C"})


def test_defaults_are_not_checked() -> None:
    def f(n: int = "ten"):  # a default that contradicts the annotation is the author's choice
        pass

    assert bind_params(_sig(f), {}, fn_name="f") == {"n": "ten"}
