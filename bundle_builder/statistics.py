"""Reference statistics: how the packing sample and the model's predictions on it are distributed.

Pure functions of numpy arrays (no I/O), so the same sample always gives the same numbers and
the same bytes. Bins are the sample's own quantiles, fixed at packing time: live traffic is
later counted into these same buckets (never re-binned per window, the pitfall of binning
reference and current data together), with an overflow bucket at each end for values outside
the reference range.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import numpy.typing as npt

from model_runtime.manifest import HistogramStatistics, PredictionStatistics

DEFAULT_BINS = 10


def bucket_indices(edges: npt.NDArray[np.float64], values: npt.NDArray[np.float64]) -> Any:
    """Bucket of each (non-missing) value: 0 below edges[0], len(edges) above edges[-1].

    Bucket i (1 <= i < len(edges)) holds [edges[i-1], edges[i]); the last inner bucket also
    holds edges[-1] itself, so the reference's maximum is inside, not in the overflow bucket.
    """
    indices = np.searchsorted(edges, values, side="right")
    indices[values == edges[-1]] = len(edges) - 1
    return indices


def histogram(values: npt.NDArray[Any], bins: int = DEFAULT_BINS) -> HistogramStatistics:
    """Quantile histogram of `values` (NaN = missing), with underflow and overflow buckets.

    Edges are the distinct quantiles at 0, 1/bins, ..., 1 (so at most bins + 1 edges; a constant
    variable has edges [v, v]). No value at all gives no edges and one empty bucket.
    """
    data = np.asarray(values, dtype=np.float64).ravel()
    missing = np.isnan(data)
    present = data[~missing]
    missing_rate = float(missing.sum() / data.size) if data.size else 0.0
    if present.size == 0:
        return HistogramStatistics(
            count=int(data.size), missing_rate=missing_rate, edges=[], frequencies=[0.0]
        )
    edges = np.unique(np.quantile(present, np.linspace(0.0, 1.0, bins + 1)))
    if edges.size == 1:
        edges = np.array([edges[0], edges[0]])
    counts = np.bincount(bucket_indices(edges, present), minlength=edges.size + 1)
    return HistogramStatistics(
        count=int(data.size),
        missing_rate=missing_rate,
        min=float(present.min()),
        max=float(present.max()),
        edges=[float(e) for e in edges],
        frequencies=[float(c) / present.size for c in counts],
    )


def classifier_statistics(
    classes: tuple[int, ...],
    labels: npt.NDArray[Any],
    probabilities: npt.NDArray[Any],
    bins: int = DEFAULT_BINS,
) -> PredictionStatistics:
    labels = np.asarray(labels).ravel()
    total = max(labels.size, 1)
    return PredictionStatistics(
        label_frequencies={str(c): float((labels == c).sum()) / total for c in classes},
        outputs={
            f"probabilities[{c}]": histogram(probabilities[:, index], bins)
            for index, c in enumerate(classes)
        },
    )


def regressor_statistics(
    values: npt.NDArray[Any], bins: int = DEFAULT_BINS
) -> PredictionStatistics:
    return PredictionStatistics(outputs={"value": histogram(values, bins)})
