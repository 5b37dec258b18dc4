"""The request path's queue: single rows appended to a model's byte buffers (the fast path),
bounded whatever the traffic when nobody folds, counted as the full checks count them.

A fast path that skipped a check would show here: rows of views and of other layouts, outputs
asked for or not (the output's index is cached per `output_names`), requests of several rows,
all folded into the same windows as the same rows handed over one copy at a time.
"""

from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from model_runtime.manifest import BundleManifest
from model_runtime.monitoring.config import MonitoringConfig
from model_runtime.monitoring.monitor import MAX_PENDING_ROWS, BundleMonitor
from model_runtime.monitoring.report import monitoring_report

BOTH = ("label", "probabilities")
PROBABILITIES = ("probabilities",)
LABEL = ("label",)


def test_single_rows_stay_bounded_when_nobody_folds(
    manifest: BundleManifest, history: np.ndarray
) -> None:
    """No event loop runs the fold a request asks for: past MAX_PENDING_ROWS the request path
    folds the queue itself, so its buffers never hold more than that many rows."""
    monitor = BundleMonitor(manifest, MonitoringConfig(window_rows=300, min_rows=10))
    name = next(iter(monitor.models))
    model = monitor.models[name]
    probabilities = np.array([[0.3, 0.7]], dtype=np.float32)
    label = np.array([1])
    sent = 3 * MAX_PENDING_ROWS + 17
    most = 0
    for index in range(sent):
        row = history[index % len(history)].reshape(1, -1)
        monitor.observe_model(name, row, BOTH, (label, probabilities))
        most = max(most, model.pending_rows, len(model.output_bytes) // 8)
    assert most <= MAX_PENDING_ROWS
    assert model.traffic.rows_seen + model.pending_rows == sent
    report = monitoring_report(monitor)["models"][name]
    assert report["rows"] == 300
    assert model.traffic.rows_seen == sent and model.pending_rows == 0
    assert model.prediction_window is not None and model.prediction_window.filled == 300


# One request: rows, their layout, and which outputs the client asked for.
request = st.tuples(
    st.sampled_from([1, 1, 1, 1, 0, 3]),
    st.sampled_from(["copy", "copy", "view", "fortran", "float64"]),
    st.sampled_from([BOTH, BOTH, PROBABILITIES, LABEL, (BOTH[1], BOTH[0])]),
)


def _request_arrays(
    rows: np.ndarray, layout: str, probabilities: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    if layout == "view":  # a column-strided view of a wider block: not contiguous
        wide = np.zeros((len(rows), rows.shape[1] * 2), dtype=rows.dtype)
        wide[:, ::2] = rows
        wide_probabilities = np.zeros((len(rows), 4), dtype=probabilities.dtype)
        wide_probabilities[:, ::2] = probabilities
        return wide[:, ::2], wide_probabilities[:, ::2]
    if layout == "fortran":
        return np.asfortranarray(rows), probabilities
    if layout == "float64":
        return rows.astype(np.float64), probabilities.astype(np.float64)
    return rows.copy(), probabilities.copy()


@settings(max_examples=60, deadline=None)
@given(requests=st.lists(request, min_size=1, max_size=80), seed=st.integers(0, 2**16))
def test_fast_path_counts_what_the_full_checks_count(
    manifest: BundleManifest,
    history: np.ndarray,
    requests: list[tuple[int, str, tuple[str, ...]]],
    seed: int,
) -> None:
    """The same requests, once through the queue (mostly single contiguous rows of the lane's
    dtype: the fast path) and once added to the windows directly (`add_now`, no queue at
    all): the same windows, rows seen and predictions."""
    config = MonitoringConfig(window_rows=40, min_rows=1)
    fast, checked = BundleMonitor(manifest, config), BundleMonitor(manifest, config)
    name = next(iter(fast.models))
    rng = np.random.default_rng(seed)
    for count, layout, names in requests:
        rows = history[rng.integers(0, len(history), count)]
        if count:
            rows[0, 1] = rng.choice([np.nan, np.inf, rows[0, 1]])
        probabilities = rng.random((count, 2)).astype(np.float32)
        label = np.zeros(count, dtype=np.int64)
        given_rows, given_probabilities = _request_arrays(rows, layout, probabilities)
        by_name = {"label": label, "probabilities": given_probabilities}
        fast.observe_model(name, given_rows, names, tuple(by_name[n] for n in names))
        scored = probabilities.astype(np.float64) if "probabilities" in names else None
        checked.models[name].add_now(rows.astype(np.float64), scored)
    reports = monitoring_report(fast), monitoring_report(checked)
    assert fast.column_counts().tolist() == checked.column_counts().tolist()
    assert reports[0]["models"][name]["rows"] == reports[1]["models"][name]["rows"]
    sent = sum(count for count, _, _ in requests)
    assert fast.models[name].traffic.rows_seen == sent
    predicted = sum(count for count, _, names in requests if "probabilities" in names)
    window = fast.models[name].prediction_window
    assert window is not None and window.filled == min(predicted, 40)
