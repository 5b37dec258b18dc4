"""The request path queues and folds in batches; what the windows hold must not depend on it.

A monitor folded once after many requests holds what one folded after every request holds:
the same bucket counts, rows seen and rows rejected, whatever the mix of request sizes, dtypes
(rows the queue cannot hold are folded in at once, behind what is queued), refused rows
without outputs and unreadable arrays. And a batch of several columns is bucketed as the
builder defines each column's buckets (NaN missing, infinities out of range, constant and
empty columns).
"""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from bundle_builder.building import build_bundle
from bundle_builder.sensors import generate_history
from bundle_builder.statistics import bucket_indices, histogram
from model_runtime.manifest import BundleManifest
from model_runtime.monitoring.bins import ReferenceBins
from model_runtime.monitoring.config import MonitoringConfig
from model_runtime.monitoring.monitor import BundleMonitor
from model_runtime.monitoring.report import monitoring_report


@pytest.fixture(scope="module")
def manifest(tmp_path_factory: pytest.TempPathFactory) -> BundleManifest:
    return build_bundle("fr-0001", tmp_path_factory.mktemp("bundles") / "two", models=2).manifest


@pytest.fixture(scope="module")
def history() -> np.ndarray:
    return generate_history("fr-0001", 0).features


# One request: rows, as float32 (what the data plane hands over) or another dtype, scored or
# refused before scoring (no output), or not rows of the model's features at all.
request = st.tuples(
    st.integers(0, 6),  # rows
    st.sampled_from(["float32", "float32", "float32", "float64", "int64"]),
    st.sampled_from(["scored", "scored", "scored", "refused", "not-rows"]),
)


def _feed(
    monitor: BundleMonitor,
    requests: list[tuple[int, str, str]],
    history: np.ndarray,
    fold_after: set[int],
) -> None:
    name = next(iter(monitor.models))
    rng = np.random.default_rng(len(requests))
    for index, (count, dtype, kind) in enumerate(requests):
        rows = history[rng.integers(0, len(history), count)]
        if count:  # some values the reference never saw, and some missing
            rows[0, 2] = rng.choice([np.nan, np.inf, -1e9, rows[0, 2]])
        if dtype == "int64":
            rows = np.nan_to_num(rows, nan=0.0, posinf=1e6, neginf=-1e6)
        rows = rows.astype(dtype)
        probabilities = rng.random((count, 2)).astype(np.float32)
        if kind == "scored":
            monitor.observe_model(
                name, rows, ("label", "probabilities"), (rows[:, 0], probabilities)
            )
        elif kind == "refused":
            monitor.observe_refused(name, rows, count)
        else:
            monitor.observe_model(name, rows.reshape(-1), ("probabilities",), (probabilities,))
        if index in fold_after:
            monitor.fold_all()


def _state(monitor: BundleMonitor) -> tuple[list[list[int]], list[tuple[int, int, int]]]:
    report = monitoring_report(monitor)  # folds what is queued
    traffic = [
        (m.traffic.rows_seen, m.traffic.rows_rejected, m.feature_window.filled)
        for m in monitor.models.values()
    ]
    assert [report["models"][name]["rows"] for name in monitor.models] == [t[2] for t in traffic]
    return monitor.column_counts().tolist(), traffic


@settings(max_examples=60, deadline=None)
@given(
    requests=st.lists(request, min_size=1, max_size=60),
    capacity=st.integers(1, 40),
    folds=st.sets(st.integers(0, 59)),
)
def test_folding_in_batches_counts_what_folding_every_request_counts(
    manifest: BundleManifest,
    history: np.ndarray,
    requests: list[tuple[int, str, str]],
    capacity: int,
    folds: set[int],
) -> None:
    config = MonitoringConfig(window_rows=capacity, min_rows=1)
    batched, one_by_one = BundleMonitor(manifest, config), BundleMonitor(manifest, config)
    _feed(batched, requests, history, folds)
    _feed(one_by_one, requests, history, set(range(len(requests))))
    assert _state(batched) == _state(one_by_one)
    name = next(iter(batched.models))
    sent = sum(n for n, _, kind in requests if kind != "not-rows")
    assert batched.models[name].traffic.rows_seen == sent
    assert batched.models[name].feature_window.filled == min(sent, capacity)


@settings(max_examples=40, deadline=None)
@given(
    requests=st.lists(st.integers(1, 4), min_size=1, max_size=40),
    folds=st.sets(st.integers(0, 39)),
    mixed=st.booleans(),
)
def test_whole_well_requests_folded_in_batches_count_as_one_by_one(
    manifest: BundleManifest,
    history: np.ndarray,
    requests: list[int],
    folds: set[int],
    mixed: bool,
) -> None:
    config = MonitoringConfig(window_rows=25, min_rows=1)
    monitors = BundleMonitor(manifest, config), BundleMonitor(manifest, config)
    rng = np.random.default_rng(len(requests))
    batches = [history[rng.integers(0, len(history), n)].astype(np.float32) for n in requests]
    for monitor, fold_after in zip(monitors, (folds, set(range(len(requests)))), strict=True):
        for index, rows in enumerate(batches):
            # As the data plane hands them over: a column of each model's probabilities (not
            # contiguous past one row); with `mixed`, one model's in another dtype.
            probabilities = np.stack([rows[:, 2], rows[:, 1]], axis=1) / 100
            predictions = {
                m: probabilities[:, 1].astype(np.float64 if mixed and i else np.float32, copy=False)
                for i, m in enumerate(monitor.models)
            }
            monitor.observe_well(rows, predictions)
            if index in fold_after:
                monitor.fold_all()
    assert _state(monitors[0]) == _state(monitors[1])


column = st.one_of(
    hnp.arrays(np.float64, st.integers(1, 200), elements=st.floats(-1e3, 1e3, width=32)),
    st.just(np.full(20, 7.0)),  # a constant column: edges [7, 7]
    st.just(np.full(5, np.nan)),  # no value at all: no edges
)
live_value = st.one_of(
    st.floats(-2e3, 2e3, width=32), st.sampled_from([np.nan, np.inf, -np.inf, 7.0])
)


@settings(max_examples=60, deadline=None)
@given(
    references=st.lists(column, min_size=1, max_size=6),
    rows=st.integers(1, 40),
    data=st.data(),
)
def test_a_batch_of_columns_is_bucketed_as_the_builder_buckets_each(
    references: list[np.ndarray], rows: int, data: st.DataObject
) -> None:
    statistics = [histogram(values) for values in references]
    bins = ReferenceBins.of(statistics)
    live = data.draw(hnp.arrays(np.float64, (rows, len(references)), elements=live_value))
    found = bins.bucket(live.astype(np.float32))
    for index, stats in enumerate(statistics):
        values = live[:, index].astype(np.float32).astype(np.float64)
        if stats.edges:
            expected = bucket_indices(np.asarray(stats.edges), values)
        else:  # no edges: every present value is in bucket 0, out of range
            expected = np.zeros(rows, dtype=np.intp)
        expected[np.isnan(values)] = bins.missing_bucket
        assert found[:, index].tolist() == expected.tolist()


def test_a_monitor_holds_no_request_arrays_between_folds(
    manifest: BundleManifest, history: np.ndarray
) -> None:
    """The queue keeps bytes, so each request's arrays are freed with it (memory stays flat)."""
    import weakref

    monitor = BundleMonitor(manifest, MonitoringConfig())
    name = next(iter(monitor.models))
    rows = history[:1].astype(np.float32)
    probabilities = np.array([[0.2, 0.8]], dtype=np.float32)
    watched = weakref.ref(rows), weakref.ref(probabilities)
    monitor.observe_model(name, rows, ("probabilities",), (probabilities,))
    del rows, probabilities
    assert [ref() for ref in watched] == [None, None]
    assert monitoring_report(monitor)["models"][name]["rows"] == 1
