"""Reference bins of k columns: edges padded to one matrix, and each column's own edges.

A column's buckets follow `HistogramStatistics`: 0 is the underflow bucket (< edges[0]), 1 ..
len(edges) - 1 the inner intervals (the last closed on the right), len(edges) the overflow
bucket; `slots - 1` (the same for every column) is the missing bucket (NaN). +Inf lands in the
overflow bucket and -Inf in the underflow one: out of range, never missing, never an error.
A batch of n rows is bucketed with one binary search (`searchsorted`) per column, as the
builder's `bucket_indices` defines the buckets: O(n x k x log(edges)), k numpy calls.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
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
    # Derived from the above: each column's real edges (views of `edges`) and its last edge
    # (NaN for a column without edges, so no value equals it).
    column_edges: tuple[FloatArray, ...] = field(init=False, repr=False, compare=False)
    last_edges: FloatArray = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        own = tuple(self.edges[c, :count] for c, count in enumerate(self.edge_counts.tolist()))
        last = np.array([e[-1] if len(e) else np.nan for e in own], dtype=np.float64)
        object.__setattr__(self, "column_edges", own)
        object.__setattr__(self, "last_edges", last)

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
        # Column-major copy, so each column's search reads contiguous values.
        columns = np.array(np.asarray(values).T, dtype=np.float64, order="C")
        buckets = np.empty(columns.shape, dtype=np.intp)
        for column, edges in enumerate(self.column_edges):
            # Edges at or below the value; NaN sorts past every edge and is set apart below.
            buckets[column] = edges.searchsorted(columns[column], side="right")
        buckets[columns == self.last_edges[:, None]] -= 1  # the maximum is inside, not overflow
        buckets[np.isnan(columns)] = self.missing_bucket
        result: IntArray = buckets.T
        return result
