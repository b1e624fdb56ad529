"""The rate behind queue ETAs: completions per second of time the lane was busy."""

from __future__ import annotations

import pytest

from service.messaging.lane_rate import MIN_COMPLETIONS, WINDOW_SECONDS, LaneRate


def two_slots_of_one_second(rate: LaneRate, start: float, count: int) -> None:
    """`count` one-second requests on two slots from `start`: pairs finish at start+1, start+2, …"""
    for i in range(count):
        rate.add(start + 1 + i // 2, 1.0)


def test_too_few_completions_give_no_rate() -> None:
    rate = LaneRate()
    assert rate.per_second(0.0) is None
    two_slots_of_one_second(rate, 0.0, MIN_COMPLETIONS - 1)
    assert rate.per_second(1.5) is None


def test_right_after_a_start_the_rate_is_that_of_the_busy_seconds() -> None:
    """The issue's case: 2 slots, 1 s each; after 4 completions the rate is 2/s, not 4/60."""
    rate = LaneRate()
    two_slots_of_one_second(rate, 100.0, 4)
    assert rate.per_second(102.05) == pytest.approx(2.0)


def test_an_idle_spell_does_not_dilute_the_rate() -> None:
    rate = LaneRate()
    two_slots_of_one_second(rate, 0.0, 6)  # busy 0–3 s
    two_slots_of_one_second(rate, 40.0, 4)  # idle 3–40 s, then busy 40–42 s
    assert rate.per_second(42.0) == pytest.approx(10 / 5)


def test_old_completions_leave_the_window() -> None:
    rate = LaneRate()
    two_slots_of_one_second(rate, 0.0, 10)
    assert rate.per_second(5.0 + WINDOW_SECONDS + 1) is None


def test_steady_load_reads_the_steady_rate() -> None:
    rate = LaneRate()
    for i in range(600):  # 5 per second, each request taking 0.8 s, for two minutes
        rate.add(1.0 + i / 5, 0.8)
    assert rate.per_second(121.0) == pytest.approx(5.0, rel=0.05)


def test_a_burst_of_instant_completions_stays_finite() -> None:
    rate = LaneRate()
    for _ in range(5):
        rate.add(10.0, 0.0)
    assert rate.per_second(10.0) == pytest.approx(1000.0)
