"""The collector held off while a group starts: on again afterwards, and user code runs with it."""

from __future__ import annotations

import gc
import weakref
from collections.abc import Iterator
from pathlib import Path

import pytest
from tests.conftest import write

from ml_experiment._gc import Hold, held


class Node:
    def __init__(self) -> None:
        self.me = self  # a reference cycle: only the collector frees it


@pytest.fixture(autouse=True)
def collector_restored() -> Iterator[None]:
    was = gc.isenabled()
    yield
    gc.unfreeze()
    gc.enable() if was else gc.disable()


def test_a_hold_ends_when_every_part_is_done() -> None:
    hold = Hold(("ray", "store"))
    assert not gc.isenabled()
    hold.done("ray")
    assert not gc.isenabled()
    hold.done("store")
    assert gc.isenabled()
    assert gc.get_freeze_count() > 0  # what the start loaded is left out of later collections
    hold.release()  # again: nothing more
    assert gc.isenabled()
    hold.close()  # the group's end: every object is seen again
    assert gc.isenabled() and gc.get_freeze_count() == 0


def test_what_the_caller_froze_stays_frozen() -> None:
    gc.freeze()
    frozen = gc.get_freeze_count()
    hold = Hold(("ray",))
    assert not gc.isenabled()
    hold.done("ray")
    hold.close()
    assert gc.isenabled() and gc.get_freeze_count() == frozen


def test_user_code_runs_with_the_collector_on_and_its_garbage_is_not_frozen() -> None:
    gc.collect()
    node = Node()
    gc.collect()  # now in the oldest generation: no young collection would reach it
    ref = weakref.ref(node)
    hold = Hold(("ray",))
    seen = []
    with hold.user_code():
        seen.append(gc.isenabled())
        del node  # garbage the user's code left behind
    assert seen == [True] and not gc.isenabled()
    hold.done("ray")
    assert gc.isenabled()
    assert ref() is None  # collected before the freeze, not kept forever


def test_a_collector_the_caller_turned_off_stays_off() -> None:
    gc.disable()
    hold = Hold(("ray",))
    with hold.user_code():
        assert not gc.isenabled()
    hold.release()
    assert not gc.isenabled() and gc.get_freeze_count() == 0
    with held():
        pass
    assert not gc.isenabled()


def test_held_turns_it_back_on_even_after_an_error() -> None:
    gc.enable()
    with pytest.raises(ValueError), held():
        assert not gc.isenabled()
        raise ValueError("boom")
    assert gc.isenabled()


def test_an_experiment_runs_the_users_code_with_the_collector_on(workdir: Path) -> None:
    """The collector rests while MLflow loads, never while the user's function runs."""
    from ml_experiment import job
    from ml_experiment.config import ExperimentConfig
    from ml_experiment.execution import run_experiment

    seen: list[tuple[bool, int]] = []

    @job(log_system_info=False)
    def train() -> dict[str, float]:
        seen.append((gc.isenabled(), gc.get_freeze_count()))
        return {"acc": 1.0}

    gc.enable()
    config = ExperimentConfig(name="e", kind="experiment", run=[write(workdir / "x.py", "")])
    outcome = run_experiment(config, train, script=None)
    assert outcome.metrics["acc"] == 1.0
    assert seen[0][0] and seen[0][1] > 0  # on, with MLflow's modules left out of collections
    assert gc.isenabled() and gc.get_freeze_count() == 0  # as it was before the run


def test_a_hold_closed_before_its_parts_are_done_freezes_nothing() -> None:
    gc.enable()
    hold = Hold(("ray", "store"))
    hold.close()  # e.g. the group failed before Ray was up
    assert gc.isenabled() and gc.get_freeze_count() == 0
    hold.done("ray")
    hold.done("store")  # too late to hold anything: the collector stays as it is
    assert gc.isenabled() and gc.get_freeze_count() == 0
