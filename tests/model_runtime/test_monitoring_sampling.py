"""The monitoring's row budget: under its rate every request is binned; above it, at most a
second's worth more than the rate allows, and requests are taken whole."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from bundle_builder.building import BuiltBundle
from model_runtime.monitoring.config import MonitoringConfig
from model_runtime.monitoring.monitor import BundleMonitor
from model_runtime.monitoring.report import monitoring_report
from model_runtime.monitoring.sampling import RowBudget

_rates = st.floats(min_value=1.0, max_value=5_000.0)
_requests = st.lists(
    st.tuples(st.floats(min_value=0.0, max_value=0.5), st.integers(min_value=1, max_value=200)),
    max_size=200,
)


@given(_rates, _requests)
def test_rows_taken_stay_within_the_rate_plus_one_seconds_worth_and_one_request(
    rate: float, requests: list[tuple[float, int]]
) -> None:
    budget, now, taken, largest = RowBudget(rate, 0.0), 0.0, 0, 0
    for gap, rows in requests:
        now += gap
        if budget.take(rows, now):
            taken += rows
            largest = max(largest, rows)
    assert taken <= rate * now + rate + largest


@given(_rates, st.lists(st.integers(min_value=1, max_value=50), max_size=200))
def test_requests_no_faster_than_the_rate_are_all_taken(rate: float, sizes: list[int]) -> None:
    budget, now, previous = RowBudget(rate, 0.0), 0.0, 0
    for rows in sizes:
        now += previous / rate  # the rows taken before are paid back before the next request
        assert budget.take(rows, now)
        previous = rows


def test_a_batch_larger_than_a_second_is_taken_about_once_per_its_share_of_time() -> None:
    budget = RowBudget(100.0, 0.0)
    taken = [budget.take(1_000, t / 10) for t in range(200)]  # 10 requests a second, 20 s
    assert taken[0] and 1 <= sum(taken) <= 3  # 1,000 rows every ~10 s at 100 rows/s


def test_a_clock_handed_in_late_by_another_thread_neither_refills_nor_fails() -> None:
    budget = RowBudget(10.0, 5.0)
    assert budget.take(5, 5.0)
    assert budget.take(4, 4.9)  # earlier than the last: no refill, 1 row's worth left
    assert budget.take(1, 4.95)
    assert not budget.take(1, 4.99)  # nothing left, and still no refill before 5.0
    assert budget.take(1, 5.2)  # 0.2 s at 10 rows a second: 2 rows' worth


def test_a_row_budget_needs_a_positive_rate() -> None:
    with pytest.raises(ValueError, match="positive rate"):
        RowBudget(0.0, 0.0)
    with pytest.raises(ValueError, match="max_rows_per_second"):
        MonitoringConfig(max_rows_per_second=-1.0)


def test_requests_above_the_rate_are_not_binned_but_still_count_as_arrived(
    small_bundle: BuiltBundle,
) -> None:
    config = MonitoringConfig(window_rows=300, min_rows=10, max_rows_per_second=50.0)
    monitor = BundleMonitor(small_bundle.manifest, config)
    names = [m.name for m in small_bundle.manifest.models]
    row = np.full((1, monitor.well_width), 1.0, dtype=np.float32)
    for _ in range(200):  # at once: far above 50 rows a second
        monitor.observe_well(row, {n: np.zeros(1, dtype=np.float32) for n in names})
    monitor.fold_all()
    report = monitoring_report(monitor)
    for name in names:
        model = report["models"][name]
        assert model["rows"] == 50  # one second's worth, then nothing until it refills
        assert model["last_row_age_s"] is not None and model["last_row_age_s"] < 5
    every_row = BundleMonitor(small_bundle.manifest, MonitoringConfig(window_rows=300, min_rows=10))
    for _ in range(200):
        every_row.observe_well(row, {n: np.zeros(1, dtype=np.float32) for n in names})
    every_row.fold_all()
    assert {m["rows"] for m in monitoring_report(every_row)["models"].values()} == {200}


def test_a_models_own_requests_are_sampled_by_its_own_budget(small_bundle: BuiltBundle) -> None:
    config = MonitoringConfig(window_rows=300, min_rows=10, max_rows_per_second=50.0)
    monitor = BundleMonitor(small_bundle.manifest, config)
    first, second = [m.name for m in small_bundle.manifest.models][:2]
    row = np.full((1, len(monitor.models[first].features)), 1.0, dtype=np.float32)
    for _ in range(200):
        monitor.observe_model(first, row, (), [])
    monitor.observe_model(second, row, (), [])
    monitor.fold_all()
    models = monitoring_report(monitor)["models"]
    assert models[first]["rows"] == 50 and models[second]["rows"] == 1


def test_a_well_request_not_binned_still_makes_its_models_last_row_recent(
    small_bundle: BuiltBundle, monkeypatch: pytest.MonkeyPatch
) -> None:
    clock = [100.0]
    monkeypatch.setattr("model_runtime.monitoring.monitor._monotonic", lambda: clock[0])
    config = MonitoringConfig(window_rows=300, min_rows=10, max_rows_per_second=1.0)
    monitor = BundleMonitor(small_bundle.manifest, config)
    names = [m.name for m in small_bundle.manifest.models]
    row = np.full((1, monitor.well_width), 1.0, dtype=np.float32)
    monitor.observe_well(row, {n: np.zeros(1, dtype=np.float32) for n in names})  # binned
    monitor.fold_all()
    clock[0] = 100.5  # half a row's worth later: not binned, but it arrived
    monitor.observe_well(row, {n: np.zeros(1, dtype=np.float32) for n in names})
    report = monitoring_report(monitor, now=101.0)
    for name in names:
        assert report["models"][name]["rows"] == 1
        assert report["models"][name]["last_row_age_s"] == pytest.approx(0.5)
