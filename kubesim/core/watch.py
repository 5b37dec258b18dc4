"""One client's watch: which events it sees, in which order, and when it ends.

Why this exists: a watch is a filter over the store's change stream with apiserver rules that
clients depend on: an object that stops matching a label selector arrives as DELETED and one
that starts matching as ADDED; a watch resumes strictly after the requested resourceVersion;
BOOKMARK events carry only a resourceVersion; a stalled watcher must not block the writers.
The HTTP layer only drains ``Watcher.next_batch`` onto a chunked response.
Docs: https://kubernetes.io/docs/reference/using-api/api-concepts/#efficient-detection-of-changes
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Callable
from typing import Any

from kubesim.core.store import StoredObject, WatchEvent
from kubesim.wire.jsonwire import encode

__all__ = ["Watcher"]

Matcher = Callable[[StoredObject], bool]
Transform = Callable[[StoredObject], bytes]


class Watcher:
    """Buffers the lines one watch connection must send; filled synchronously by the store."""

    def __init__(
        self,
        matches: Matcher,
        *,
        transform: Callable[[str, StoredObject], bytes] | None = None,
    ) -> None:
        self._matches = matches
        self._transform = transform
        self._pending: deque[bytes] = deque()
        self._wake = asyncio.Event()
        self.last_rv = 0
        self.closed = False
        self.max_pending = 100_000

    def _push(self, type_: str, event: WatchEvent | None, obj: StoredObject) -> None:
        if self._transform is not None:
            line = self._transform(type_, obj)
        elif event is not None:
            line = event.line(type_)
        else:
            line = b'{"type":"' + type_.encode() + b'","object":' + obj.raw + b"}\n"
        self._pending.append(line)
        self.last_rv = max(self.last_rv, obj.rv)
        if len(self._pending) > self.max_pending:
            # Like the apiserver's watch cache, an unresponsive watcher is closed rather than
            # buffered without bound; its client re-watches from its last resourceVersion.
            self._pending.clear()
            self.closed = True
        self._wake.set()

    def initial(self, obj: StoredObject) -> None:
        """A synthetic ADDED for the current state (watch without resourceVersion)."""
        if self._matches(obj):
            self._push("ADDED", None, obj)

    def offer(self, event: WatchEvent) -> None:
        if self.closed:
            return
        new_match = self._matches(event.obj)
        if event.type == "ADDED":
            if new_match:
                self._push("ADDED", event, event.obj)
        elif event.type == "DELETED":
            if new_match or (event.old is not None and self._matches(event.old)):
                self._push("DELETED", event, event.obj)
        else:
            old_match = event.old is not None and self._matches(event.old)
            if new_match and old_match:
                self._push("MODIFIED", event, event.obj)
            elif new_match:
                self._push("ADDED", event, event.obj)
            elif old_match:
                self._push("DELETED", event, event.obj)
        self.last_rv = max(self.last_rv, event.rv)

    def bookmark(
        self, api_version: str, kind: str, rv: int, annotations: dict[str, str] | None = None
    ) -> None:
        meta: dict[str, Any] = {"resourceVersion": str(rv)}
        if annotations:
            meta["annotations"] = annotations
        obj = {"kind": kind, "apiVersion": api_version, "metadata": meta}
        self._pending.append(b'{"type":"BOOKMARK","object":' + encode(obj) + b"}\n")
        self._wake.set()

    def error(self, status: dict[str, Any]) -> None:
        self._pending.append(b'{"type":"ERROR","object":' + encode(status) + b"}\n")
        self._wake.set()

    def close(self) -> None:
        self.closed = True
        self._wake.set()

    async def next_batch(self, timeout: float | None) -> list[bytes]:
        """Wait for pending lines (at most ``timeout`` seconds); empty list on timeout/close."""
        if not self._pending and not self.closed:
            self._wake.clear()
            try:
                await asyncio.wait_for(self._wake.wait(), timeout)
            except TimeoutError:
                return []
        batch = list(self._pending)
        self._pending.clear()
        return batch
