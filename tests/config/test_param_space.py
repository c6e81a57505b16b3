"""The param-space grammar: parsing, validation, Optuna conversion."""

from __future__ import annotations

import math

import optuna
import pytest
from optuna.distributions import CategoricalDistribution, FloatDistribution, IntDistribution

from ml_experiment.config import (
    Distribution,
    flatten_space,
    parse_distribution,
    unflatten_params,
)


@pytest.mark.parametrize(
    ("text", "kind", "args"),
    [
        ("range(2, 5)", "range", (2, 5, 1)),
        ("range(0, 10, 3)", "range", (0, 10, 3)),
        ("range(-5, -1)", "range", (-5, -1, 1)),
        ("randint(-3, 3)", "randint", (-3, 3)),
        ("randint(4, 4)", "randint", (4, 4)),
        ("uniform(-1.5, 2)", "uniform", (-1.5, 2.0)),
        ("uniform(.5, 2.5E+3)", "uniform", (0.5, 2500.0)),
        ("loguniform(1e-5, 1)", "loguniform", (1e-5, 1.0)),
        ("loguniform(1E-3, 1e+3)", "loguniform", (1e-3, 1000.0)),
        ("choice(['rbf', \"poly\"])", "choice", ("rbf", "poly")),
        ("choice([true, false, null])", "choice", (True, False, None)),
        ("choice([True, False, None])", "choice", (True, False, None)),
        ("choice(1, 2, 3)", "choice", (1, 2, 3)),
        ("choice([-1, +2, -0.5, 1e-5])", "choice", (-1, 2, -0.5, 1e-5)),
        ("choice([[1, 2], [3], []])", "choice", ((1, 2), (3,), ())),
        ("choice([[1, 2], [3]], 'x')", "choice", (((1, 2), (3,)), "x")),
        (
            "choice(['it\\'s', \"a\\\"b\", 'tab\\t', '\\u00e9'])",
            "choice",
            ("it's", 'a"b', "tab\t", "é"),
        ),
        ("choice(['a, b', '(x)', ']'])", "choice", ("a, b", "(x)", "]")),
        ("choice([1, 2,])", "choice", (1, 2)),
        ("  choice (\t[ 1 ,2 ] )  ", "choice", (1, 2)),
    ],
)
def test_parses(text: str, kind: str, args: tuple) -> None:
    dist = parse_distribution(text)
    assert (dist.kind, dist.args) == (kind, args)
    assert str(dist) == text.strip()


def test_ints_and_floats_keep_their_type() -> None:
    values = parse_distribution("choice([1, 1.0, 1e0, -0])").args
    assert [type(v) for v in values] == [int, float, float, int]


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("loguniform(0, 10)", "loguniform needs 0 < low < high, got (0, 10)"),
        ("loguniform(-1, 1)", "loguniform needs 0 < low < high, got (-1, 1)"),
        ("loguniform(10, 1)", "loguniform needs 0 < low < high"),
        ("uniform(1, 1)", "uniform needs low < high, got (1, 1)"),
        ("uniform(2, -1)", "uniform needs low < high"),
        ("uniform(0, 1e999)", "finite"),
        ("uniform('a', 'b')", "two finite numbers"),
        ("uniform(0)", "uniform takes 2 arguments, got 1"),
        ("range(5, 5)", "range needs low < high"),
        ("range(5, 2)", "range needs low < high"),
        ("range(0, 10, 0)", "step > 0"),
        ("range(0, 10, -1)", "step > 0"),
        ("range(1.5, 3)", "range needs integer arguments, got (1.5, 3)"),
        ("range(true, 3)", "integer arguments"),
        ("range(1, 2, 3, 4)", "range takes 2 or 3 arguments, got 4"),
        ("randint(3, 1)", "randint needs low <= high"),
        ("choice([])", "at least one value"),
        ("choice()", "at least one value"),
        ("normal(0, 1)", "unknown distribution 'normal'"),
        ("Uniform(0, 1)", "unknown distribution 'Uniform'"),
        ("uniform", "expected '(' but found end of text"),
        ("uniform(0, 1", "missing ')'"),
        ("uniform(0, ", "missing a value"),
        ("choice([1, 2)", "expected ',' or ']' but found ')'"),
        ("choice([1, 2]", "missing ')'"),
        ("uniform(0, 1))", "unexpected ')' after the closing ')'"),
        ("uniform(0, 1) junk", "unexpected 'junk' after the closing ')' at column 15"),
        ("uniform(0, 1); import os", "unexpected character ';'"),
        ("choice([1+1])", "found '+' at column 10"),
        ("choice([2*3])", "unexpected character '*'"),
        ("choice([__import__('os').system('ls')])", "unexpected name '__import__'"),
        ("__import__('os')", "unknown distribution '__import__'"),
        ("choice([os.path])", "unexpected name 'os'"),
        ("choice([rbf])", "strings need quotes"),
        ("choice([range(1, 2)])", "unexpected name 'range'"),
        ("choice(['abc])", "unterminated string"),
        ("choice(['\\q'])", "unknown escape"),
        ("choice([1e])", "malformed number '1e'"),
        ("choice([0x10])", "malformed number"),
        ("choice([{'a': 1}])", "unexpected character '{'"),
        ("choice([--1])", "expected a number after '-'"),
        ("choice(" + "[" * 40 + "]" * 40 + ")", "nested too deeply"),
        ("", "empty distribution"),
        ("   ", "empty distribution"),
        ("(1, 2)", "expected a distribution name"),
    ],
)
def test_rejects(text: str, message: str) -> None:
    with pytest.raises(ValueError) as info:
        parse_distribution(text)
    assert message in str(info.value)
    assert "\n" not in str(info.value)


def test_error_names_token_position() -> None:
    with pytest.raises(ValueError, match=r"'__import__' .*column 9 of"):
        parse_distribution("choice([__import__('os')])")


def test_rejects_non_string() -> None:
    with pytest.raises(ValueError, match="got 5"):
        parse_distribution(5)  # type: ignore[arg-type]


def test_code_is_never_executed(tmp_path) -> None:
    sentinel = tmp_path / "pwned"
    for text in (
        f"choice([__import__('os').system('touch {sentinel}')])",
        f"choice([exec(\"open('{sentinel}', 'w')\")])",
        f"choice([open('{sentinel}', 'w')])",
    ):
        with pytest.raises(ValueError):
            parse_distribution(text)
    assert not sentinel.exists()


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("range(2, 5)", IntDistribution(2, 4)),
        ("range(0, 10, 3)", IntDistribution(0, 9, step=3)),
        ("range(1, 10, 4)", IntDistribution(1, 9, step=4)),
        ("range(0, 10, 5)", IntDistribution(0, 5, step=5)),
        ("range(0, 1, 7)", IntDistribution(0, 0, step=7)),
        ("range(-10, -2, 3)", IntDistribution(-10, -4, step=3)),
        ("randint(1, 3)", IntDistribution(1, 3)),
        ("uniform(-1, 1)", FloatDistribution(-1.0, 1.0)),
        ("loguniform(1e-5, 1)", FloatDistribution(1e-5, 1.0, log=True)),
        ("choice(['a', 1, 2.5, true, null])", CategoricalDistribution(["a", 1, 2.5, True, None])),
    ],
)
def test_to_optuna(text: str, expected: optuna.distributions.BaseDistribution) -> None:
    assert parse_distribution(text).to_optuna() == expected


@pytest.mark.parametrize(("low", "high", "step"), [(0, 10, 3), (2, 5, 1), (-7, 8, 4), (5, 6, 10)])
def test_range_matches_python_range(low: int, high: int, step: int) -> None:
    dist = parse_distribution(f"range({low}, {high}, {step})").to_optuna()
    assert isinstance(dist, IntDistribution)
    assert list(range(dist.low, dist.high + 1, dist.step)) == list(range(low, high, step))


def test_list_choices_are_json_encoded_and_decoded() -> None:
    dist = parse_distribution("choice([[1, 2], [3, [4]], 'a', null])")
    optuna_dist = dist.to_optuna()
    assert isinstance(optuna_dist, CategoricalDistribution)
    assert all(isinstance(c, str) for c in optuna_dist.choices)
    assert [dist.decode(c) for c in optuna_dist.choices] == [[1, 2], [3, [4]], "a", None]


def test_primitive_choices_are_not_encoded() -> None:
    dist = parse_distribution("choice(['a', 1])")
    assert dist.to_optuna().choices == ("a", 1)
    assert dist.decode("a") == "a"
    assert dist.decode(1) == 1


@pytest.mark.parametrize(
    ("text", "stored", "value"),
    [("range(0, 5)", 3.0, 3), ("randint(0, 5)", 2, 2), ("uniform(0, 1)", 1, 1.0)],
)
def test_decode_numbers(text: str, stored: object, value: object) -> None:
    decoded = parse_distribution(text).decode(stored)
    assert decoded == value and type(decoded) is type(value)


def test_distribution_is_frozen_and_hashable() -> None:
    dist = parse_distribution("choice([[1], [2]])")
    assert hash(dist) == hash(parse_distribution("choice([[1], [2]])"))
    with pytest.raises(AttributeError):
        dist.kind = "range"  # type: ignore[misc]


def _space() -> dict[str, Distribution | list[Distribution]]:
    return {
        "lr": parse_distribution("loguniform(1e-4, 1)"),
        "layers": [parse_distribution("range(2, 20)"), parse_distribution("range(2, 20, 2)")],
        "shape": parse_distribution("choice([[1, 2], [3]])"),
    }


def test_flatten_space() -> None:
    flat = flatten_space(_space())
    assert list(flat) == ["lr", "layers.0", "layers.1", "shape"]
    assert str(flat["layers.1"]) == "range(2, 20, 2)"


def test_flatten_rejects_colliding_names() -> None:
    space = {"a": [parse_distribution("range(0, 2)")], "a.0": parse_distribution("range(0, 2)")}
    with pytest.raises(ValueError, match=r"'a\.0'"):
        flatten_space(space)


def test_unflatten_reassembles_lists_in_order() -> None:
    flat = {"layers.1": 4, "lr": 0.1, "layers.0": 3, "shape": "[3]", "extra": "kept"}
    params = unflatten_params(_space(), flat)
    assert params == {"lr": 0.1, "layers": [3, 4], "shape": [3], "extra": "kept"}


def test_round_trip_through_a_real_optuna_study() -> None:
    space = _space()
    flat = {name: dist.to_optuna() for name, dist in flatten_space(space).items()}
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0))
    for _ in range(20):
        trial = study.ask(fixed_distributions=flat)
        params = unflatten_params(space, trial.params)
        assert 1e-4 <= params["lr"] <= 1 and not math.isnan(params["lr"])
        assert len(params["layers"]) == 2
        assert params["layers"][0] in range(2, 20)
        assert params["layers"][1] in range(2, 20, 2)
        assert params["shape"] in ([1, 2], [3])
        study.tell(trial, 0.0)
