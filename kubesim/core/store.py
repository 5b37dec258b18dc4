"""The object store: objects, the global resourceVersion, indexes and the watch history.

Why this exists: kube-apiserver's semantics for reads and watches (one monotonically increasing
resourceVersion across all objects, lists that are consistent at a resourceVersion, watches that
resume from one and answer 410 once it left the cache window) all hang on how objects are
stored. This module is that storage and nothing else: no validation, no defaulting, no HTTP.
Each stored version keeps its JSON encoding, encoded once, because a list or a watch fan-out
sends the same bytes to many clients.

Lookups that a real cluster serves from indexes are indexed here as well, so the cost of a list
or a watch does not grow with unrelated objects: by namespace, by label ``key=value``, and by
owner uid (for the garbage collector).
Docs: https://kubernetes.io/docs/reference/using-api/api-concepts/#resource-versions
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from typing import Any

from kubesim.wire.errors import ApiError
from kubesim.wire.jsonwire import decode, encode

__all__ = ["Collection", "Store", "StoredObject", "WatchEvent"]


class StoredObject:
    """One version of one object. ``obj`` must never be mutated once stored.

    A superseded version (kept only by the watch history) drops its decoded dict and keeps its
    bytes; ``obj`` decodes them again on the rare access (a field-selector watch replaying
    history). This halves the memory of a large store with a deep history window.
    """

    __slots__ = ("_obj", "labels", "name", "namespace", "owner_uids", "raw", "rv", "uid")

    def __init__(self, obj: dict[str, Any], rv: int) -> None:
        meta = obj["metadata"]
        self._obj: dict[str, Any] | None = obj
        self.rv = rv
        self.name: str = meta["name"]
        self.namespace: str = meta.get("namespace", "")
        self.uid: str = meta.get("uid", "")
        self.labels: dict[str, str] = meta.get("labels") or {}
        refs = meta.get("ownerReferences") or []
        self.owner_uids: tuple[str, ...] = tuple(
            str(r.get("uid", "")) for r in refs if isinstance(r, dict)
        )
        self.raw = encode(obj)

    @property
    def obj(self) -> dict[str, Any]:
        if self._obj is None:
            self._obj = decode(self.raw)
        return self._obj

    def release(self) -> None:
        """Forget the decoded dict of a version that is no longer current."""
        self._obj = None

    def copy(self) -> dict[str, Any]:
        """A private deep copy for a caller to modify (decoding is faster than deepcopy)."""
        result: dict[str, Any] = decode(self.raw)
        return result


class WatchEvent:
    """A change: ``obj`` is the new version (for DELETED, the last one with the deletion rv)."""

    __slots__ = ("_lines", "obj", "old", "rv", "storage", "type")

    def __init__(
        self, type_: str, storage: str, obj: StoredObject, old: StoredObject | None
    ) -> None:
        self.type = type_
        self.storage = storage
        self.obj = obj
        self.old = old
        self.rv = obj.rv
        self._lines: dict[str, bytes] = {}

    def line(self, type_: str) -> bytes:
        """The chunk a JSON watch sends for this event, encoded once per event type."""
        cached = self._lines.get(type_)
        if cached is None:
            cached = b'{"type":"' + type_.encode() + b'","object":' + self.obj.raw + b"}\n"
            self._lines[type_] = cached
        return cached


Listener = Callable[[WatchEvent], None]


class Collection:
    """All objects of one storage key (``group/plural``)."""

    def __init__(self, storage: str, history_size: int) -> None:
        self.storage = storage
        self.by_namespace: dict[str, dict[str, StoredObject]] = {}
        self.label_index: dict[tuple[str, str], set[tuple[str, str]]] = {}
        self.history: deque[WatchEvent] = deque(maxlen=history_size)
        # resourceVersion of the newest event that fell out of the history window: a watch
        # from an older (or equal) resourceVersion can no longer be served.
        self.evicted_rv = 0
        self.listeners: list[Listener] = []
        self._sorted: list[tuple[str, str]] | None = None
        self.count = 0

    def get(self, namespace: str, name: str) -> StoredObject | None:
        bucket = self.by_namespace.get(namespace)
        return None if bucket is None else bucket.get(name)

    def sorted_keys(self) -> list[tuple[str, str]]:
        if self._sorted is None:
            self._sorted = sorted(
                (ns, name) for ns, bucket in self.by_namespace.items() for name in bucket
            )
        return self._sorted

    def keys_in(self, namespace: str) -> list[tuple[str, str]]:
        bucket = self.by_namespace.get(namespace)
        return [] if not bucket else [(namespace, n) for n in sorted(bucket)]

    def keys_with_labels(
        self, required: dict[str, str], namespace: str | None
    ) -> list[tuple[str, str]]:
        sets = [self.label_index.get(item, set()) for item in required.items()]
        sets.sort(key=len)
        found = set(sets[0])
        for other in sets[1:]:
            found &= other
        if namespace is not None:
            found = {k for k in found if k[0] == namespace}
        return sorted(found)

    def _index(self, entry: StoredObject) -> None:
        key = (entry.namespace, entry.name)
        for item in entry.labels.items():
            self.label_index.setdefault(item, set()).add(key)

    def _unindex(self, entry: StoredObject) -> None:
        key = (entry.namespace, entry.name)
        for item in entry.labels.items():
            members = self.label_index.get(item)
            if members is not None:
                members.discard(key)
                if not members:
                    del self.label_index[item]

    def put(self, entry: StoredObject) -> StoredObject | None:
        bucket = self.by_namespace.setdefault(entry.namespace, {})
        old = bucket.get(entry.name)
        if old is None:
            self._sorted = None
            self.count += 1
        else:
            if old.labels != entry.labels:
                self._unindex(old)
                self._index(entry)
        if old is None:
            self._index(entry)
        bucket[entry.name] = entry
        if old is not None:
            old.release()
        return old

    def remove(self, namespace: str, name: str) -> StoredObject | None:
        bucket = self.by_namespace.get(namespace)
        if bucket is None or name not in bucket:
            return None
        old = bucket.pop(name)
        old.release()
        if not bucket:
            del self.by_namespace[namespace]
        self._unindex(old)
        self._sorted = None
        self.count -= 1
        return old

    def record(self, event: WatchEvent) -> None:
        if len(self.history) == self.history.maxlen and self.history:
            self.evicted_rv = self.history[0].rv
        self.history.append(event)
        for listener in list(self.listeners):
            listener(event)


class Store:
    """Every collection, the global resourceVersion and the owner index."""

    def __init__(self, history_size: int = 50_000, start_rv: int | None = None) -> None:
        # Start from the wall clock (milliseconds) unless told otherwise: a restarted kubesim then
        # never reuses a resourceVersion a client still holds, and a watch from one of the old
        # instance's versions answers 410 (everything before the start counts as compacted), so
        # clients relist as they would after etcd compaction.
        self._rv = start_rv if start_rv is not None else int(time.time() * 1000)
        self.start_rv = self._rv
        self.history_size = history_size
        self.collections: dict[str, Collection] = {}
        # owner uid -> {(storage, namespace, name)} of dependents naming it.
        self.dependents: dict[str, set[tuple[str, str, str]]] = {}
        self._global_listeners: list[Listener] = []

    @property
    def resource_version(self) -> int:
        return self._rv

    def next_rv(self) -> int:
        self._rv += 1
        return self._rv

    def collection(self, storage: str) -> Collection:
        coll = self.collections.get(storage)
        if coll is None:
            coll = Collection(storage, self.history_size)
            coll.evicted_rv = self.start_rv
            self.collections[storage] = coll
        return coll

    def subscribe(self, storage: str | None, listener: Listener) -> Callable[[], None]:
        """Call ``listener`` synchronously on every change (``storage`` None: on all)."""
        target = self._global_listeners if storage is None else self.collection(storage).listeners
        target.append(listener)

        def unsubscribe() -> None:
            if listener in target:
                target.remove(listener)

        return unsubscribe

    def get(self, storage: str, namespace: str, name: str) -> StoredObject | None:
        return self.collection(storage).get(namespace, name)

    def iter_all(self, storage: str) -> Iterator[StoredObject]:
        for bucket in self.collection(storage).by_namespace.values():
            yield from bucket.values()

    def _stamp(self, obj: dict[str, Any]) -> int:
        rv = self.next_rv()
        obj["metadata"]["resourceVersion"] = str(rv)
        return rv

    def _emit(self, coll: Collection, event: WatchEvent) -> None:
        coll.record(event)
        for listener in list(self._global_listeners):
            listener(event)

    def _reindex_owners(
        self, storage: str, old: StoredObject | None, new: StoredObject | None
    ) -> None:
        old_uids = set(old.owner_uids) if old is not None else set()
        new_uids = set(new.owner_uids) if new is not None else set()
        if old_uids == new_uids:
            return
        ref = old or new
        assert ref is not None
        key = (storage, ref.namespace, ref.name)
        for uid in old_uids - new_uids:
            members = self.dependents.get(uid)
            if members is not None:
                members.discard(key)
                if not members:
                    del self.dependents[uid]
        for uid in new_uids - old_uids:
            self.dependents.setdefault(uid, set()).add(key)

    def create(self, storage: str, obj: dict[str, Any]) -> StoredObject:
        coll = self.collection(storage)
        meta = obj["metadata"]
        if coll.get(meta.get("namespace", ""), meta["name"]) is not None:
            raise RuntimeError("create of an existing object must be refused by the caller")
        entry = StoredObject(obj, self._stamp(obj))
        coll.put(entry)
        self._reindex_owners(storage, None, entry)
        self._emit(coll, WatchEvent("ADDED", storage, entry, None))
        return entry

    def update(self, storage: str, obj: dict[str, Any]) -> StoredObject:
        coll = self.collection(storage)
        meta = obj["metadata"]
        old = coll.get(meta.get("namespace", ""), meta["name"])
        if old is None:
            raise RuntimeError("update of a missing object must be refused by the caller")
        entry = StoredObject(obj, self._stamp(obj))
        coll.put(entry)
        self._reindex_owners(storage, old, entry)
        self._emit(coll, WatchEvent("MODIFIED", storage, entry, old))
        return entry

    def delete(self, storage: str, namespace: str, name: str) -> StoredObject:
        coll = self.collection(storage)
        old = coll.remove(namespace, name)
        if old is None:
            raise RuntimeError("delete of a missing object must be refused by the caller")
        # The DELETED event carries the object at the deletion's resourceVersion, as etcd's
        # watch does.
        final = dict(old.obj)
        final["metadata"] = dict(old.obj["metadata"])
        entry = StoredObject(final, self._stamp(final))
        self._reindex_owners(storage, old, None)
        self._emit(coll, WatchEvent("DELETED", storage, entry, old))
        return entry

    def events_since(self, storage: str, rv: int) -> Iterable[WatchEvent]:
        """Events after ``rv`` still in the window; raises 410 Expired when it left the window."""
        coll = self.collection(storage)
        if rv < coll.evicted_rv:
            raise ApiError.too_old_resource_version(rv, coll.evicted_rv + 1)
        return [ev for ev in coll.history if ev.rv > rv]

    def forget_collection(self, storage: str) -> None:
        self.collections.pop(storage, None)
