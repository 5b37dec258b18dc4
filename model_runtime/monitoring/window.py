"""A sliding window of bucket indices: constant memory, O(rows x columns) per update.

The window holds the bucket of each of the last `capacity` rows, for `columns` columns that
always advance together (one model's features; or its prediction), as a ring of bucket indices
(one byte each for up to 256 buckets) plus the running count of every bucket of every column.
Adding n rows overwrites the n oldest slots and moves the counts of what was evicted and what
was added: O(n x columns), whatever the traffic so far, and a read of the counts costs nothing.
Invariant (the tests recount it): the counts are the histogram of the last min(rows seen,
capacity) rows added.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import numpy.typing as npt

IntArray = npt.NDArray[np.intp]


class RowWindow:
    def __init__(self, columns: int, capacity: int, slots: int) -> None:
        if capacity < 1:
            raise ValueError(f"a window holds at least one row, got capacity {capacity}")
        self.capacity = capacity
        self.slots = slots
        self.ring: npt.NDArray[Any] = np.zeros(
            (capacity, columns), dtype=np.uint8 if slots <= 256 else np.uint16
        )
        self.counts: IntArray = np.zeros((columns, slots), dtype=np.intp)
        self._base = np.arange(columns, dtype=np.intp) * slots  # column c's counts start here
        self.head = 0  # the next slot to write
        self.filled = 0

    def add(self, buckets: IntArray) -> None:
        """Append rows of buckets, shape (n, columns)."""
        rows = buckets.shape[0]
        if rows == 0:
            return
        if rows > self.capacity:  # only the newest `capacity` rows can stay
            buckets = buckets[-self.capacity :]
            rows = self.capacity
        positions = (self.head + np.arange(rows)) % self.capacity
        # Row i of this batch lands on an occupied slot once i >= capacity - filled.
        evicted = self.ring[positions[max(0, self.capacity - self.filled) :]]
        size = self.counts.size
        flat = self.counts.reshape(-1)
        flat += np.bincount((buckets + self._base).ravel(), minlength=size)
        if evicted.size:
            flat -= np.bincount((evicted.astype(np.intp) + self._base).ravel(), minlength=size)
        self.ring[positions] = buckets
        self.head = (self.head + rows) % self.capacity
        self.filled = min(self.filled + rows, self.capacity)
