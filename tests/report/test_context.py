"""The pieces of a report that need no knowledge center: lanes, best-so-far, sampling."""

from __future__ import annotations

from types import SimpleNamespace

from ml_experiment.report._context import best_and_spread, best_so_far, lanes, timeline_state
from ml_experiment.report._load import TrialRow, objectives_of


def row(n: int, start: float, end: float, **kw: object) -> TrialRow:
    return TrialRow(number=n, state="complete", start=start, end=end, **kw)  # type: ignore[arg-type]


def test_overlapping_trials_get_one_lane_per_concurrent_slot() -> None:
    rows = [row(0, 0, 10), row(1, 0, 5), row(2, 5, 9), row(3, 9.5, 12), row(4, 1, 2)]
    names, lane_of = lanes(rows)
    assert names == ["slot 1", "slot 2", "slot 3"]
    assert lane_of == {0: 0, 1: 1, 4: 2, 2: 1, 3: 1}


def test_worker_tags_name_the_lanes() -> None:
    rows = [row(0, 0, 1, worker="12"), row(1, 0, 1, worker="node-b:7"), row(2, 2, 3)]
    names, lane_of = lanes(rows)
    assert names == ["pid 12", "node-b:7", "unknown"]
    assert lane_of == {0: 0, 1: 1, 2: 2}


def test_timed_out_failures_are_told_apart() -> None:
    assert timeline_state(TrialRow(0, "fail", error="timed out: ran longer than ...")) == "timeout"
    assert timeline_state(TrialRow(0, "fail", error="ValueError: x")) == "fail"
    assert timeline_state(TrialRow(0, "pruned")) == "pruned"


def test_best_so_far_follows_the_direction() -> None:
    assert best_so_far([3, 1, 2, 0], maximize=False) == [3, 1, 1, 0]
    assert best_so_far([1, 3, 2, 4], maximize=True) == [1, 3, 3, 4]


def test_sampling_keeps_the_best_and_spreads_the_rest() -> None:
    trials = [SimpleNamespace(number=i, values=[float(i % 50)]) for i in range(400)]
    chosen = best_and_spread(trials, 40, maximize=True)
    assert len(chosen) == 40
    assert sum(t.values[0] == 49 for t in chosen) >= 8  # the best quarter
    assert [t.number for t in chosen] == sorted(t.number for t in chosen)
    assert best_and_spread(trials[:10], 40, maximize=True) == trials[:10]


def test_objectives_come_from_the_parent_metric_param() -> None:
    run = SimpleNamespace(
        data=SimpleNamespace(params={"metric": "acc (maximize), loss (minimize)"})
    )
    assert objectives_of(run) == [("acc", "maximize"), ("loss", "minimize")]  # type: ignore[arg-type]


def test_wall_times_read_at_a_glance() -> None:
    from ml_experiment._format import format_duration

    assert format_duration(42.04) == "42.0s"
    assert format_duration(725) == "12m 05s"
    assert format_duration(15937.8) == "4h 25m 38s"
