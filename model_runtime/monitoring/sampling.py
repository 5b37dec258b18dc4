"""How many of the rows a model scores enter its windows: at most a rate, on average.

Binning costs a few microseconds a request whatever the rate, a tenth of a single-row request
at saturation (docs/benchmarks.md, Runtime), and a window of 1,000 rows filled in 50 ms of a
load test says nothing about drift. A well's sensor feed sends a row every second or so: under
the rate every row is binned. Above it, requests are taken whole or not at all, spread in time
(a token bucket holding one second's rows), so the window spans at least
`window_rows / rate` seconds of the traffic and its cost stays bounded. Rows not taken still
count as arrived (the last row's age).
"""

from __future__ import annotations


class RowBudget:
    """A token bucket of `rate` rows a second, holding at most one second's worth.

    A request is taken when at least one row's worth is left, and then takes all its rows
    (the bucket may go below zero): a batch larger than a second's worth is still taken, about
    once per `rows / rate` seconds."""

    __slots__ = ("at", "rate", "tokens")

    def __init__(self, rate: float, now: float) -> None:
        if rate <= 0:
            raise ValueError(f"a row budget needs a positive rate, got {rate}")
        self.rate = rate
        self.tokens = rate
        self.at = now

    def take(self, rows: int, now: float) -> bool:
        """Whether a request of `rows` rows arriving at `now` (monotonic seconds) is binned."""
        tokens = self.tokens
        if now > self.at:  # two threads may hand their clocks in either order
            tokens += (now - self.at) * self.rate
            if tokens > self.rate:
                tokens = self.rate
            self.at = now
        if tokens < 1.0:
            self.tokens = tokens
            return False
        self.tokens = tokens - rows
        return True
