"""Sliding windows of bucket indices: many independent columns, constant memory, O(row) updates.

Each column is a window of the last `capacity` values it was given, kept as a ring of bucket
indices (one byte each for up to 256 buckets) plus the running count of each bucket. Adding n
rows to a set of columns overwrites the n oldest slots of each and moves the counts of what
was evicted and what was added: O(n x columns), whatever the traffic so far. Invariant (the
tests recount it): a column's counts are the histogram of the last min(seen, capacity) buckets
it was given. Columns move independently (a model's columns advance only with its own rows).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import numpy.typing as npt

IntArray = npt.NDArray[np.intp]


class ColumnWindows:
    def __init__(self, columns: int, capacity: int, slots: int) -> None:
        if capacity < 1:
            raise ValueError(f"a window holds at least one row, got capacity {capacity}")
        self.capacity = capacity
        self.slots = slots
        dtype = np.uint8 if slots <= 256 else np.uint16
        self.ring: npt.NDArray[Any] = np.zeros((capacity, columns), dtype=dtype)
        self.counts: IntArray = np.zeros(columns * slots, dtype=np.intp)  # column-major blocks
        self.head: IntArray = np.zeros(columns, dtype=np.intp)  # next slot to write
        self.filled: IntArray = np.zeros(columns, dtype=np.intp)

    def add(self, columns: IntArray, buckets: IntArray) -> None:
        """Append `buckets` (n, len(columns)) to `columns` (distinct column indices)."""
        rows = buckets.shape[0]
        if rows == 0:
            return
        if rows > self.capacity:  # only the newest `capacity` rows can stay
            buckets = buckets[-self.capacity :]
            rows = self.capacity
        step = np.arange(rows)[:, None]
        positions = (self.head[columns] + step) % self.capacity
        # A slot holds a value once the column has been filled to it: a write there evicts.
        occupied = step >= (self.capacity - self.filled[columns])
        base = columns * self.slots
        evicted = (self.ring[positions, columns].astype(np.intp) + base)[occupied]
        added = (buckets + base).ravel()
        if rows == 1:  # distinct columns: no index repeats, plain fancy indexing is exact
            self.counts[evicted] -= 1
            self.counts[added] += 1
        else:
            np.subtract.at(self.counts, evicted, 1)
            np.add.at(self.counts, added, 1)
        self.ring[positions, columns] = buckets
        self.head[columns] = (self.head[columns] + rows) % self.capacity
        self.filled[columns] = np.minimum(self.filled[columns] + rows, self.capacity)

    def column_counts(self, columns: IntArray) -> IntArray:
        """Bucket counts of `columns`, shape (len(columns), slots)."""
        return self.counts.reshape(-1, self.slots)[columns]
