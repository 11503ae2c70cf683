"""When a mirror is no longer worth waiting for: an overall deadline and a minimum rate."""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable


class Pace:
    """Watches the transfer from one mirror; its checks return why to give up, or None.

    The deadline counts from the first request, retries and resumes included. The rate is
    averaged over the last ``window`` seconds of one connection, and judged only once a
    connection has lasted that long: a slow start, or the pause before a resume, is never
    held against a mirror that then keeps up.
    """

    def __init__(self, deadline: float, min_rate: float, window: float,
                 clock: Callable[[], float] = time.monotonic):
        self.deadline, self.min_rate, self.window, self.clock = deadline, min_rate, window, clock
        self.start = clock()
        self.new_connection()

    def new_connection(self) -> None:
        """A new connection starts sending: its rate is judged on its own."""
        self._received = 0
        # (time, bytes received by then); a sample per 1/64 window keeps this short.
        self._samples = deque([(self.clock(), 0)])

    def overdue(self) -> str | None:
        if self.clock() - self.start >= self.deadline:
            return f"deadline of {self.deadline:g} s passed"
        return None

    def received(self, nbytes: int) -> str | None:
        """Count ``nbytes`` that just arrived; returns why to give up on this mirror, or None."""
        now = self.clock()
        self._received += nbytes
        if now - self._samples[-1][0] >= self.window / 64:
            self._samples.append((now, self._received))
        # Keep as the oldest sample the last one taken at least a window ago.
        while len(self._samples) > 1 and self._samples[1][0] <= now - self.window:
            self._samples.popleft()
        then, received_then = self._samples[0]
        if now - then >= self.window:
            rate = (self._received - received_then) / (now - then)
            if rate < self.min_rate:
                return f"too slow: {rate:.0f} B/s over the last {self.window:g} s"
        return self.overdue()
