"""Reference bins as one padded matrix, so a request's values are bucketed in one numpy call.

A column's buckets follow `HistogramStatistics`: 0 is the underflow bucket (< edges[0]), 1 ..
len(edges) - 1 the inner intervals (the last closed on the right), len(edges) the overflow
bucket; `slots - 1` (the same for every column) is the missing bucket (NaN). +Inf lands in the
overflow bucket and -Inf in the underflow one: out of range, never missing, never an error.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from model_runtime.manifest import HistogramStatistics

IntArray = npt.NDArray[np.intp]
FloatArray = npt.NDArray[np.float64]


@dataclass(frozen=True)
class ReferenceBins:
    """The bins of k columns: edges padded with +Inf to one width, reference frequencies."""

    edges: FloatArray  # (k, width), each row strictly increasing then +Inf padding
    edge_counts: IntArray  # (k,) real edges per column
    reference: FloatArray  # (k, slots - 1): frequencies per bucket, zero beyond a column's own
    slots: int  # buckets per column, the missing bucket included (the same for all columns)

    @classmethod
    def of(cls, histograms: Sequence[HistogramStatistics], slots: int = 0) -> ReferenceBins:
        """`slots` at least: columns of several bin sets share one window layout."""
        width = max((len(h.edges) for h in histograms), default=0)
        # underflow .. overflow is width + 1 buckets, then missing
        slots = max(slots, width + 2)
        edges = np.full((len(histograms), max(width, 1)), np.inf)
        reference = np.zeros((len(histograms), slots - 1))
        for column, h in enumerate(histograms):
            edges[column, : len(h.edges)] = h.edges
            reference[column, : len(h.frequencies)] = h.frequencies
        return cls(
            edges=edges,
            edge_counts=np.array([len(h.edges) for h in histograms], dtype=np.intp),
            reference=reference,
            slots=slots,
        )

    def take(self, columns: IntArray) -> ReferenceBins:
        """The bins of `columns` only (same slots)."""
        return ReferenceBins(
            self.edges[columns], self.edge_counts[columns], self.reference[columns], self.slots
        )

    @property
    def missing_bucket(self) -> int:
        return self.slots - 1

    def bucket(self, values: npt.NDArray[Any]) -> IntArray:
        """Bucket of every value of `values` (n, k): column j in column j's bins."""
        data = np.asarray(values, dtype=np.float64)
        # Edges at or below the value (searchsorted right), column by column in one broadcast.
        below = (data[:, :, None] >= self.edges[None, :, :]).sum(axis=2)
        buckets = np.minimum(below, self.edge_counts)  # +Inf passes the padding: clamp it
        on_last_edge = (data == self.edges[np.arange(data.shape[1]), self.edge_counts - 1]) & (
            self.edge_counts > 0
        )
        buckets[on_last_edge] -= 1  # the reference's maximum is inside, not overflow
        buckets[np.isnan(data)] = self.missing_bucket
        result: IntArray = buckets.astype(np.intp, copy=False)
        return result
