"""A fleet's reconciles are spaced by its planning cost in a stream of events, whether or not
the operator's own writes are in flight, and a change after a quiet spell waits only the
coalescing window (status freshness)."""

from __future__ import annotations

import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from modelfleet.control.worker import (
    COALESCE_SECONDS,
    MAX_RECONCILE_SPACING_SECONDS,
    reconcile_pause,
)

times = st.floats(min_value=0.0, max_value=1e6, allow_nan=False)
spacings = st.floats(min_value=0.0, max_value=MAX_RECONCILE_SPACING_SECONDS, allow_nan=False)


def test_a_change_after_a_quiet_spell_waits_only_the_coalescing_window() -> None:
    assert reconcile_pause(now=100.0, last_ended=10.0, spacing=0.5) == COALESCE_SECONDS


def test_a_ten_thousand_well_fleet_in_a_stream_of_events_plans_a_fifth_of_the_time() -> None:
    planning = 0.1  # the CPU seconds of one 10,000-well plan
    ended = 50.0
    pause = reconcile_pause(now=ended + 0.01, last_ended=ended, spacing=5 * planning)
    # The next plan starts 5 plans' time after the last ended.
    assert pause == pytest.approx(0.5 - 0.01)


@given(now=times, ago=times, spacing=spacings)
@example(now=1.0, ago=0.0, spacing=0.05)  # 1.0 + 0.05 - 1.0 is 0.05 and a little
def test_the_next_reconcile_starts_no_sooner_than_the_spacing_allows(
    now: float, ago: float, spacing: float
) -> None:
    ended = now - ago
    pause = reconcile_pause(now, ended, spacing)
    assert pause >= COALESCE_SECONDS
    slack = 1e-6  # float rounding of times up to 1e6 s
    assert now + pause >= ended + spacing - slack
    assert pause <= max(COALESCE_SECONDS, spacing) + slack  # never longer than one spacing
