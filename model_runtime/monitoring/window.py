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
        capacity = self.capacity
        if rows > capacity:  # only the newest `capacity` rows can stay
            buckets = buckets[-capacity:]
            rows = capacity
        head, filled = self.head, self.filled
        # The batch lands on [head, head + rows), wrapping past the end onto [0, wrapped): two
        # slices of the ring, never an index array. Slots below `filled` are occupied (while the
        # ring is not full, head == filled), so what this batch evicts is the wrapped part, or
        # all of it once the ring is full.
        first = min(rows, capacity - head)
        wrapped = rows - first
        flat = self.counts.reshape(-1)
        size = flat.size
        if filled == capacity:
            self._evict(flat, self.ring[head : head + first], size)
        if wrapped:
            self._evict(flat, self.ring[:wrapped], size)
            self.ring[:wrapped] = buckets[first:]
        self.ring[head : head + first] = buckets[:first]
        flat += np.bincount((buckets + self._base).ravel(), minlength=size)
        self.head = (head + rows) % capacity
        self.filled = min(filled + rows, capacity)

    def _evict(self, flat: IntArray, evicted: npt.NDArray[Any], size: int) -> None:
        flat -= np.bincount((evicted + self._base).ravel(), minlength=size)
