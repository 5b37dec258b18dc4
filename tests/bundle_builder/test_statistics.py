"""Reference histograms: invariants that live-traffic drift checks rely on, for any data."""

from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from bundle_builder.statistics import bucket_indices, histogram

values = st.lists(
    st.one_of(st.floats(-1e9, 1e9, allow_nan=False), st.just(float("nan"))),
    min_size=1,
    max_size=200,
)


@settings(max_examples=200, deadline=None)
@given(values, st.integers(1, 20))
def test_histogram_invariants(data: list[float], bins: int) -> None:
    array = np.array(data)
    stats = histogram(array, bins)
    present = array[~np.isnan(array)]
    assert stats.count == array.size
    assert stats.missing_rate == np.isnan(array).sum() / array.size
    assert len(stats.frequencies) == len(stats.edges) + 1
    if present.size == 0:
        assert stats.edges == [] and stats.min is None
        return
    assert stats.min == present.min() and stats.max == present.max()
    assert stats.edges[0] == stats.min and stats.edges[-1] == stats.max
    assert all(a < b for a, b in zip(stats.edges, stats.edges[1:], strict=False)) or (
        stats.edges == [stats.min, stats.min]
    )
    assert len(stats.edges) <= bins + 1
    # Every reference value is inside the range: both overflow buckets are empty.
    assert stats.frequencies[0] == 0.0 and stats.frequencies[-1] == 0.0
    assert abs(sum(stats.frequencies) - 1.0) < 1e-9
    # The same data gives the same statistics (reproducible bundles).
    assert histogram(array, bins) == stats


def test_live_values_outside_the_reference_land_in_the_overflow_buckets() -> None:
    edges = np.array([0.0, 1.0, 2.0])
    live = np.array([-5.0, 0.0, 0.5, 1.0, 2.0, 7.0])
    assert bucket_indices(edges, live).tolist() == [0, 1, 1, 2, 2, 3]
