"""Score a whole-well request's models on the calling thread and helper threads at once.

A whole-well request runs up to a few hundred tiny onnxruntime sessions one after the other;
onnxruntime releases the GIL while a session runs, so a second thread scores other models in
that time (the event loop serves one request at a time: without helpers a pod uses one core).
Measured in docs/benchmarks.md ("Whole well on two threads").

Invariants: the calling thread always takes part, so a request never waits for a busy or slow
helper to start (a helper that wakes late finds nothing left and leaves); items are claimed one
at a time from a shared iterator (next() on it is atomic under the GIL), so the split follows
each model's real cost; results keep the items' order; the first error raised by any item is
raised to the caller once every claimed item has finished, and nothing runs after the call
returns.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable, Iterator, Sequence
from typing import Generic, TypeVar, cast

T = TypeVar("T")
R = TypeVar("R")

#: Items below this are scored on the calling thread alone: waking a helper costs more.
MIN_ITEMS_TO_SHARE = 8


class _SharedCall(Generic[T, R]):
    """One `map` call's work, claimed item by item by the caller and the helpers."""

    __slots__ = ("active", "closed", "error", "idle", "indices", "items", "lock", "results", "work")

    def __init__(self, work: Callable[[T], R], items: Sequence[T]) -> None:
        self.work = work
        self.items = items
        self.indices: Iterator[int] = iter(range(len(items)))
        self.results: list[R | None] = [None] * len(items)
        self.error: BaseException | None = None
        self.lock = threading.Lock()
        self.closed = False  # set by the caller once it found nothing left to claim
        self.active = 0  # helpers inside `drain`
        self.idle = threading.Condition(self.lock)

    def drain(self) -> None:
        """Claim and run items until none is left (or one has failed)."""
        items, results, work = self.items, self.results, self.work
        for index in self.indices:
            if self.error is not None:
                return
            try:
                results[index] = work(items[index])
            except BaseException as exc:  # re-raised in the caller, whatever it is
                if self.error is None:
                    self.error = exc
                return

    def help(self) -> None:
        with self.lock:
            if self.closed:
                return
            self.active += 1
        try:
            self.drain()
        finally:
            with self.lock:
                self.active -= 1
                if self.active == 0:
                    self.idle.notify_all()

    def finish(self) -> list[R]:
        """After the caller's own `drain`: wait for the helpers that joined, then the results."""
        with self.lock:
            self.closed = True
            while self.active:
                self.idle.wait()
        if self.error is not None:
            raise self.error
        return cast("list[R]", self.results)  # without an error, every slot is filled


class ScoringPool:
    """`threads` threads in all score a call's items: the caller and `threads - 1` helpers.

    Helpers start with the first call that shares work and are daemons (they hold no state
    between calls, so a process may exit with them waiting). `threads=1` runs every item on the
    calling thread and starts nothing.
    """

    def __init__(self, threads: int) -> None:
        if threads < 1:
            raise ValueError(f"well scoring threads must be >= 1, got {threads}")
        self.threads = threads
        # Each entry is one call's `help` (None stops a helper).
        self._calls: queue.SimpleQueue[Callable[[], None] | None] = queue.SimpleQueue()
        self._helpers: list[threading.Thread] = []
        self._start_lock = threading.Lock()

    def map(self, work: Callable[[T], R], items: Sequence[T]) -> list[R]:
        if self.threads == 1 or len(items) < MIN_ITEMS_TO_SHARE:
            return [work(item) for item in items]
        self._ensure_helpers()
        call: _SharedCall[T, R] = _SharedCall(work, items)
        for _ in self._helpers:
            self._calls.put(call.help)
        call.drain()
        return call.finish()

    def close(self) -> None:
        """Stop the helpers (tests; a serving process just exits)."""
        with self._start_lock:
            for _ in self._helpers:
                self._calls.put(None)
            for helper in self._helpers:
                helper.join()
            self._helpers = []

    def _ensure_helpers(self) -> None:
        if self._helpers:
            return
        with self._start_lock:
            while len(self._helpers) < self.threads - 1:
                helper = threading.Thread(
                    target=self._serve,
                    name=f"well-scoring-{len(self._helpers) + 1}",
                    daemon=True,
                )
                helper.start()
                self._helpers.append(helper)

    def _serve(self) -> None:
        while (help_call := self._calls.get()) is not None:
            help_call()
