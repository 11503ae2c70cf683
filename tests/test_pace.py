"""Pace: when to give up on a mirror, on a clock the tests move by hand."""

from __future__ import annotations

from datasets.pace import Pace


class Clock:
    def __init__(self):
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def receive(pace: Pace, clock: Clock, rate: float, seconds: float, step: float = 0.1):
    """Feed ``rate`` bytes/s for ``seconds``; returns the first reason to give up, if any."""
    for _ in range(round(seconds / step)):
        clock.now += step
        if reason := pace.received(round(rate * step)):
            return reason
    return None


def test_slow_connection_is_given_up_once_a_full_window_has_passed():
    clock = Clock()
    pace = Pace(deadline=1e9, min_rate=10_000, window=30, clock=clock)
    assert receive(pace, clock, rate=1000, seconds=29.5) is None
    assert receive(pace, clock, rate=1000, seconds=1) == "too slow: 1000 B/s over the last 30 s"


def test_fast_start_does_not_excuse_a_slow_last_window():
    clock = Clock()
    pace = Pace(deadline=1e9, min_rate=10_000, window=30, clock=clock)
    assert receive(pace, clock, rate=10_000_000, seconds=5) is None
    assert receive(pace, clock, rate=100, seconds=31).startswith("too slow: ")


def test_new_connection_starts_a_new_window():
    clock = Clock()
    pace = Pace(deadline=1e9, min_rate=10_000, window=30, clock=clock)
    assert receive(pace, clock, rate=50_000, seconds=20) is None
    clock.now += 25  # the connection dropped; reconnecting took a while
    pace.new_connection()
    # Over the last 30 s that is 8 kB/s, but this connection has not lasted a window yet.
    assert receive(pace, clock, rate=50_000, seconds=5) is None


def test_deadline_counts_from_the_first_request_across_connections():
    clock = Clock()
    pace = Pace(deadline=60, min_rate=0, window=30, clock=clock)
    assert receive(pace, clock, rate=50_000, seconds=40) is None
    pace.new_connection()
    assert receive(pace, clock, rate=50_000, seconds=30) == "deadline of 60 s passed"
