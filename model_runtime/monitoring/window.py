"""Sliding windows of bucket indices: constant memory, O(rows x columns) per update.

A window holds the bucket of each of the last `capacity` rows, for `columns` columns that
always advance together (one model's features; or its prediction), as a ring of bucket indices
(one byte each for up to 256 buckets) plus the running count of every bucket of every column.
Adding n rows overwrites the n oldest slots and moves the counts of what was evicted and what
was added: O(n x columns), whatever the traffic so far, and a read of the counts costs nothing.
Invariant (the tests recount it): the counts are the histogram of the last min(rows seen,
capacity) rows added.

A `WindowBank` keeps many windows of one capacity side by side, each a block of columns of one
ring and one count matrix (views), so the same rows added to many windows at once (a whole-well
batch, which every model of the well sees) are one numpy pass over all their columns instead of
one per window; each window still advances on its own (`RowWindow.add`), and a bank add gives
exactly the ring, counts, head and fill that adding to each window in turn gives.

A bank also knows which of its windows are identical (`RowWindow.group`: windows of one group
were made alike and have been fed only the same rows since, in `add_same`), so the same rows to
a whole well's models (100 windows of the same features, the usual well) are counted once, in
one window of each group, and copied to the others: the count work of a whole-well fold does
not grow with the number of models. A window fed anything of its own leaves its group.
"""

from __future__ import annotations

from collections.abc import Sequence
from itertools import count
from typing import Any

import numpy as np
import numpy.typing as npt

IntArray = npt.NDArray[np.intp]


def _ring_dtype(slots: int) -> type[np.unsignedinteger[Any]]:
    return np.uint8 if slots <= 256 else np.uint16


class RowWindow:
    def __init__(
        self,
        columns: int,
        capacity: int,
        slots: int,
        *,
        ring: npt.NDArray[Any] | None = None,
        counts: IntArray | None = None,
    ) -> None:
        """A window of its own, or (`ring`, `counts`: views of a bank's, (capacity, columns)
        and (columns, slots), the counts C-contiguous) a block of a bank's columns."""
        if capacity < 1:
            raise ValueError(f"a window holds at least one row, got capacity {capacity}")
        self.capacity = capacity
        self.slots = slots
        self.ring: npt.NDArray[Any] = (
            np.zeros((capacity, columns), dtype=_ring_dtype(slots)) if ring is None else ring
        )
        self.counts: IntArray = (
            np.zeros((columns, slots), dtype=np.intp) if counts is None else counts
        )
        self._base = np.arange(columns, dtype=np.intp) * slots  # column c's counts start here
        self.head = 0  # the next slot to write
        self.filled = 0
        # Windows of one bank with the same group are identical (ring, counts, head, fill);
        # None: known identical to no other.
        self.group: int | None = None

    def add(self, buckets: IntArray) -> None:
        """Append rows of buckets, shape (n, columns)."""
        if buckets.shape[0]:
            self.group = None
            self._add(buckets)

    def _add(self, buckets: npt.NDArray[Any]) -> None:
        self.head, self.filled = _add_rows(
            self.ring, self.counts, _ALL, self._base, self.head, self.filled, buckets
        )


_ALL = slice(None)
Columns = slice | IntArray  # a block of a ring's columns and of its counts' rows


def _add_rows(
    ring: npt.NDArray[Any],
    counts: IntArray,
    columns: Columns,
    base: IntArray,
    head: int,
    filled: int,
    buckets: npt.NDArray[Any],
) -> tuple[int, int]:
    """Add `buckets` (n, k) to the windows of `columns` (k of them) of `ring` (capacity, C)
    and `counts` (C, slots, C-contiguous), all at `head` and `filled`; `base` is where each
    of those columns' counts start in the flat counts. Returns the new head and fill."""
    capacity = ring.shape[0]
    rows = buckets.shape[0]
    flat = counts.reshape(-1)  # a view
    size = flat.size
    if rows >= capacity:
        # Only the newest `capacity` rows stay, and they are all the windows hold: counted
        # afresh (nothing to evict), laid out from `head` as adding them one by one would be.
        buckets = buckets[-capacity:]
        ring[head:, columns] = buckets[: capacity - head]
        ring[:head, columns] = buckets[capacity - head :]
        counts[columns] = 0
        flat += np.bincount(_indices(buckets, base), minlength=size)
        return head, capacity
    # The batch lands on [head, head + rows), wrapping past the end onto [0, wrapped): two
    # slices of the ring, never an index array. Slots below `filled` are occupied (while the
    # ring is not full, head == filled), so what this batch evicts is the wrapped part, or
    # all of it once the ring is full.
    first = min(rows, capacity - head)
    wrapped = rows - first
    if filled == capacity:
        flat -= np.bincount(_indices(ring[head : head + first, columns], base), minlength=size)
    if wrapped:
        flat -= np.bincount(_indices(ring[:wrapped, columns], base), minlength=size)
        ring[:wrapped, columns] = buckets[first:]
    ring[head : head + first, columns] = buckets[:first]
    flat += np.bincount(_indices(buckets, base), minlength=size)
    return (head + rows) % capacity, min(filled + rows, capacity)


def _indices(buckets: npt.NDArray[Any], base: IntArray) -> IntArray:
    """Each bucket's position in the flat counts, as one flat array."""
    found: IntArray = buckets.astype(np.intp)  # a copy, which the sum may overwrite
    found += base
    return found.reshape(-1)


MAX_CACHED_MEMBER_LISTS = 16  # distinct lists of windows added to together whose columns are kept


class WindowBank:
    """Windows of one capacity and slot count, each a block of columns of one ring and one
    count matrix: window i is `windows[i]`, columns [starts[i], starts[i] + widths[i])."""

    def __init__(self, widths: Sequence[int], capacity: int, slots: int) -> None:
        if capacity < 1:
            raise ValueError(f"a window holds at least one row, got capacity {capacity}")
        total = sum(widths)
        self.slots = slots
        self.ring: npt.NDArray[Any] = np.zeros((capacity, total), dtype=_ring_dtype(slots))
        self.counts: IntArray = np.zeros((total, slots), dtype=np.intp)
        self.starts = tuple(int(s) for s in np.cumsum([0, *widths])[:-1])
        self.widths = tuple(widths)
        self.windows = tuple(
            RowWindow(
                width,
                capacity,
                slots,
                ring=self.ring[:, start : start + width],
                counts=self.counts[start : start + width],
            )
            for start, width in zip(self.starts, self.widths, strict=True)
        )
        self._columns: dict[tuple[int, ...], tuple[IntArray, IntArray]] = {}
        self._groups = count()
        first_of_width: dict[int, int] = {}
        for window, width in zip(self.windows, self.widths, strict=True):
            # Windows of one width are made alike (empty): one group.
            if width not in first_of_width:
                first_of_width[width] = next(self._groups)
            window.group = first_of_width[width]

    def add(self, members: tuple[int, ...], buckets: npt.NDArray[Any]) -> None:
        """Append the same rows to the windows `members` (no repeats): `buckets` (n, their
        widths summed) holds their columns side by side in the order of `members`. Exactly
        what `windows[m].add` with its own block of columns gives, for every m in turn; one
        numpy pass for all the windows at one head and fill (the usual case: windows fed the
        same rows stay level)."""
        if not buckets.shape[0] or not members:
            return
        windows = self.windows
        for member in members:
            windows[member].group = None  # each was handed its own columns
        columns, owners = self._layout(members)
        levels: dict[tuple[int, int], list[int]] = {}
        for position, member in enumerate(members):
            window = windows[member]
            levels.setdefault((window.head, window.filled), []).append(position)
        for (head, filled), positions in levels.items():
            own, these = columns, buckets
            if len(levels) > 1:
                chosen = np.zeros(len(members), dtype=bool)
                chosen[positions] = True
                offsets = np.flatnonzero(chosen[owners])
                own, these = columns[offsets], buckets[:, offsets]
            level = _add_rows(
                self.ring, self.counts, _block(own), own * self.slots, head, filled, these
            )
            for position in positions:
                window = windows[members[position]]
                window.head, window.filled = level

    def add_same(self, members: tuple[int, ...], buckets: npt.NDArray[Any]) -> None:
        """Append the same rows, `buckets` (n, w), to each of the windows `members` (no
        repeats, every one w columns wide): exactly what `windows[m].add(buckets)` gives for
        every m in turn. Per group of identical windows among them, one is counted and the
        others copy its counts and take the same rows; they stay one group."""
        if not buckets.shape[0] or not members:
            return
        windows = self.windows
        by_group: dict[int | tuple[int], list[int]] = {}
        for member in members:
            group = windows[member].group
            by_group.setdefault((member,) if group is None else group, []).append(member)
        for these in by_group.values():
            first = windows[these[0]]
            head = first.head
            first._add(buckets)
            first.group = next(self._groups)
            if len(these) == 1:
                continue
            others = tuple(these[1:])
            columns = _block(self._layout(others)[0])
            copies = len(others)
            self.counts[columns] = np.tile(first.counts, (copies, 1))
            # The ring rows `first._add` wrote, from `head` on (wrapping), given the same rows.
            capacity = first.capacity
            kept = buckets[-capacity:]
            written = kept.shape[0]
            rows = np.tile(kept, (1, copies))
            at = min(written, capacity - head)  # up to the ring's end, then from its start
            self.ring[head : head + at, columns] = rows[:at]
            self.ring[: written - at, columns] = rows[at:]
            for member in others:
                window = windows[member]
                window.head, window.filled, window.group = first.head, first.filled, first.group

    def _layout(self, members: tuple[int, ...]) -> tuple[IntArray, IntArray]:
        """The bank columns of `members`, side by side in their order, and for each of those
        columns the position in `members` of the window it belongs to."""
        found = self._columns.get(members)
        if found is None:
            widths = [self.widths[m] for m in members]
            starts = [self.starts[m] for m in members]
            columns = np.concatenate(
                [np.arange(s, s + w) for s, w in zip(starts, widths, strict=True)]
            ).astype(np.intp)
            owners = np.repeat(np.arange(len(members), dtype=np.intp), widths)
            found = columns, owners
            if len(self._columns) < MAX_CACHED_MEMBER_LISTS:
                self._columns[members] = found
        return found


def _block(columns: IntArray) -> Columns:
    """`columns` as a slice when they are one ascending run (basic indexing: views, no copy)."""
    first = int(columns[0])
    if columns[-1] == first + columns.size - 1 and bool((np.diff(columns) == 1).all()):
        return slice(first, first + columns.size)
    return columns
