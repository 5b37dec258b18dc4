"""The drift statistics' invariants: bins as the builder's, PSI's sign and zero, the window's
counts equal to a recount of its last rows, and bad values that never break the window."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from bundle_builder.building import BuiltBundle
from bundle_builder.sensors import generate_history
from bundle_builder.statistics import bucket_indices, histogram
from model_runtime.manifest import BundleManifest
from model_runtime.monitoring.bins import ReferenceBins
from model_runtime.monitoring.config import MonitoringConfig
from model_runtime.monitoring.monitor import BundleMonitor
from model_runtime.monitoring.psi import psi
from model_runtime.monitoring.report import monitoring_report
from model_runtime.monitoring.thresholds import calibrate
from model_runtime.monitoring.window import RowWindow
from runtime_contract.monitoring import DriftVerdict, ThresholdSource

finite = st.floats(-1e6, 1e6, allow_nan=False, width=32)
samples = hnp.arrays(np.float64, st.integers(1, 300), elements=finite)


@settings(deadline=None)  # a shared 2-core machine: time is not what these tests pin
@given(reference=samples, live=samples)
def test_live_values_land_in_the_bucket_the_builder_defines(
    reference: np.ndarray, live: np.ndarray
) -> None:
    stats = histogram(reference)
    bins = ReferenceBins.of([stats])
    expected = bucket_indices(np.asarray(stats.edges), live)
    assert (bins.bucket(live.reshape(-1, 1))[:, 0] == expected).all()


def test_nan_is_missing_and_infinities_are_out_of_range_never_errors() -> None:
    bins = ReferenceBins.of([histogram(np.arange(100.0))])
    buckets = bins.bucket(np.array([[np.nan], [np.inf], [-np.inf], [50.0]]))[:, 0]
    assert buckets[0] == bins.missing_bucket
    assert buckets[1] == len(histogram(np.arange(100.0)).edges)  # overflow
    assert buckets[2] == 0  # underflow
    assert 0 < buckets[3] < buckets[1]


counts_strategy = hnp.arrays(np.intp, st.integers(2, 12), elements=st.integers(0, 1000))


@settings(deadline=None)
@given(counts=counts_strategy, reference=counts_strategy)
def test_psi_is_never_negative(counts: np.ndarray, reference: np.ndarray) -> None:
    size = min(len(counts), len(reference))
    ref = reference[:size].astype(float) + 1
    value = psi(counts[None, :size], (ref / ref.sum())[None, :], np.array([size]))[0]
    assert np.isnan(value) if counts[:size].sum() == 0 else value >= 0


@settings(deadline=None)
@given(reference=counts_strategy, scale=st.integers(1, 50))
def test_psi_of_the_reference_distribution_itself_is_zero(
    reference: np.ndarray, scale: int
) -> None:
    ref = reference.astype(float) + 1
    frequencies = ref / ref.sum()
    counts = (ref * scale).astype(np.intp)
    assert psi(counts[None, :], frequencies[None, :], np.array([len(ref)]))[0] == pytest.approx(
        0.0, abs=1e-12
    )


@settings(max_examples=80, deadline=None)
@given(
    capacity=st.integers(1, 40),
    batches=st.lists(st.integers(1, 60), min_size=1, max_size=25),
    seed=st.integers(0, 2**16),
)
def test_window_counts_equal_a_recount_of_its_last_rows(
    capacity: int, batches: list[int], seed: int
) -> None:
    rng = np.random.default_rng(seed)
    slots, columns = 7, 3
    window = RowWindow(columns, capacity, slots)
    history = np.zeros((0, columns), dtype=np.intp)
    for rows in batches:
        buckets = rng.integers(0, slots, size=(rows, columns))
        window.add(buckets)
        history = np.concatenate([history, buckets])
        last = history[-capacity:]
        for column in range(columns):
            recount = np.bincount(last[:, column], minlength=slots)
            assert (window.counts[column] == recount).all()
        assert window.filled == len(last)


@pytest.fixture(scope="module")
def monitored_manifest(small_bundle: BuiltBundle) -> BundleManifest:
    return small_bundle.manifest


@pytest.fixture(scope="module")
def reference_rows() -> np.ndarray:
    """Rows of the history the small bundle was built from (well fr-0001, seed 0)."""
    return generate_history("fr-0001", 0).features


any_rows = st.one_of(
    hnp.arrays(
        st.sampled_from([np.float32, np.float64, np.int64, np.bool_]),
        st.tuples(st.integers(0, 30), st.sampled_from([1, 6, 7, 8])),
    ),
    st.builds(lambda n: np.array([["x"] * 7] * n, dtype=object), st.integers(1, 5)),
    hnp.arrays(np.float64, st.integers(1, 5)),  # a flat vector, not rows
)


@settings(max_examples=80, deadline=None)
@given(rows=any_rows)
def test_any_array_is_counted_or_rejected_never_raised(
    monitored_manifest: BundleManifest, rows: np.ndarray
) -> None:
    """NaN counts as missing, infinities as out of range; the wrong width or type is rejected."""
    monitor = BundleMonitor(monitored_manifest, MonitoringConfig(window_rows=50, min_rows=5))
    name = monitored_manifest.models[0].name
    monitor.observe_model(name, rows, ("probabilities",), (np.zeros((len(rows), 2)),))
    monitor.observe_well(rows, {name: np.zeros(len(rows))})
    report = monitoring_report(monitor)["models"][name]
    readable = rows.ndim == 2 and rows.shape[1] == 7 and rows.dtype.kind in "biuf"
    sent = 2 * len(rows)
    assert report["rows"] == (min(sent, 50) if readable else 0)
    assert report["rows_rejected"] == (0 if readable else sent)
    if readable and sent:
        values = np.concatenate([rows, rows]).astype(np.float64)[-50:]
        missing = float(np.isnan(values[:, 0]).mean())
        assert report["features"]["intake_pressure_bar"]["missing_rate"] == pytest.approx(missing)


def test_calibrated_thresholds_grow_as_the_window_shrinks(
    monitored_manifest: BundleManifest,
) -> None:
    assert monitored_manifest.reference is not None
    bins = ReferenceBins.of(list(monitored_manifest.reference.features.values()))
    small, large = calibrate(bins, 200), calibrate(bins, 2000)
    assert small.source is ThresholdSource.CALIBRATED
    assert 0 < large.drift < small.drift
    assert large.warn < large.drift
    assert calibrate(bins, 200) == small  # seeded: the same bundle, the same thresholds


def test_window_draws_from_the_reference_stay_under_calibrated_drift(
    monitored_manifest: BundleManifest, reference_rows: np.ndarray
) -> None:
    """No false alarm on rows from the reference's own distribution (the calibration's point)."""
    config = MonitoringConfig(window_rows=500, min_rows=100, thresholds=ThresholdSource.CALIBRATED)
    monitor = BundleMonitor(monitored_manifest, config)
    rng = np.random.default_rng(3)
    rows = reference_rows[rng.integers(0, len(reference_rows), 500)]
    monitor.observe_well(rows, {m.name: np.zeros(500) for m in monitored_manifest.models[:1]})
    report = monitoring_report(monitor)["models"][monitored_manifest.models[0].name]
    assert all(f["verdict"] == DriftVerdict.HEALTHY for f in report["features"].values())


def test_built_bundles_carry_the_reference_of_their_held_out_rows(
    monitored_manifest: BundleManifest,
) -> None:
    """`bundle build` (and the demo shelf) get what `bundle pack` gives: feature histograms of
    the held-out rows of the simulated history, and each model's predictions on them."""
    from bundle_builder.building import HOLDOUT_FRACTION
    from bundle_builder.sensors import SENSOR_NAMES

    history = generate_history("fr-0001", 0).features
    order = np.random.default_rng(0).permutation(history.shape[0])
    held_out = history[np.sort(order[: int(history.shape[0] * HOLDOUT_FRACTION)])]
    reference = monitored_manifest.reference
    assert reference is not None and reference.sample_rows == len(held_out)
    assert list(reference.features) == list(SENSOR_NAMES)
    for index, name in enumerate(SENSOR_NAMES):
        assert reference.features[name] == histogram(held_out[:, index])
    for model in monitored_manifest.models:
        assert model.prediction_reference is not None
        assert "probabilities[1]" in model.prediction_reference.outputs
