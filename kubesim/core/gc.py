"""The garbage collector and namespace controller of kubesim.

Why this exists: in a real cluster, cascading deletion is not done by the apiserver but by
kube-controller-manager's garbage collector (ownerReferences; Background, Foreground and Orphan
propagation) and namespace controller (a Terminating namespace is emptied, then removed).
Clients observe it as asynchronous: the owner disappears first (Background) or waits for its
dependents behind the ``foregroundDeletion`` finalizer (Foreground). This module reproduces
that asynchrony with one worker task that writes through the same ApiServer path as everyone.
Docs: https://kubernetes.io/docs/concepts/architecture/garbage-collection/ and
https://kubernetes.io/docs/concepts/overview/working-with-objects/namespaces/
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import Any

from kubesim.core.apiserver import CRD_CLEANUP_FINALIZER, CRD_STORAGE, NAMESPACE_STORAGE, ApiServer
from kubesim.core.registry import ResourceDef
from kubesim.core.store import StoredObject, WatchEvent
from kubesim.wire.errors import ApiError

__all__ = ["GarbageCollector"]

log = logging.getLogger(__name__)

_Work = tuple[str, str, str, str]  # (what, storage, namespace, name)


class GarbageCollector:
    """Watches every change and queues the follow-up deletions a controller-manager would do."""

    def __init__(self, api: ApiServer) -> None:
        self.api = api
        self._queue: asyncio.Queue[_Work] = asyncio.Queue()
        self._task: asyncio.Task[None] | None = None
        # storage -> CRD name, for CRDs being deleted (their objects go first).
        self._crd_of_storage: dict[str, str] = {}
        # uid -> (storage, namespace, name) of owners waiting behind foregroundDeletion.
        self._foreground: dict[str, tuple[str, str, str]] = {}
        self._unsubscribe = api.store.subscribe(None, self._on_event)

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._run(), name="kubesim-gc")

    async def stop(self) -> None:
        self._unsubscribe()
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    def idle(self) -> bool:
        return self._queue.empty()

    # -- detection (synchronous, called by the store) ------------------------------------------

    def _on_event(self, event: WatchEvent) -> None:
        entry = event.obj
        if event.type == "DELETED":
            self._foreground.pop(entry.uid, None)
            if entry.uid in self.api.store.dependents:
                self._queue.put_nowait(("owner-gone", event.storage, entry.namespace, entry.uid))
            for uid in entry.owner_uids:
                if uid in self._foreground:
                    # A dependent left: an owner waiting in foreground deletion may now finish.
                    self._queue.put_nowait(("owner-check", event.storage, entry.namespace, uid))
            crd_name = self._crd_of_storage.get(event.storage)
            if crd_name is not None:
                self._queue.put_nowait(("crd", CRD_STORAGE, "", crd_name))
            if entry.namespace:
                ns = self.api.store.get(NAMESPACE_STORAGE, "", entry.namespace)
                if ns is not None and ns.obj["metadata"].get("deletionTimestamp"):
                    self._queue.put_nowait(("namespace", NAMESPACE_STORAGE, "", entry.namespace))
            return
        if event.type == "ADDED" and entry.owner_uids:
            # A dependent whose owners are already gone is collected too.
            self._queue.put_nowait(("dependent", event.storage, entry.namespace, entry.name))
        meta = entry.obj["metadata"]
        if not meta.get("deletionTimestamp"):
            return
        finalizers = meta.get("finalizers") or []
        if "foregroundDeletion" in finalizers:
            self._foreground[entry.uid] = (event.storage, entry.namespace, entry.name)
        if "foregroundDeletion" in finalizers or "orphan" in finalizers:
            self._queue.put_nowait(("finalize", event.storage, entry.namespace, entry.name))
        if event.storage == NAMESPACE_STORAGE:
            self._queue.put_nowait(("namespace", NAMESPACE_STORAGE, "", entry.name))
        if event.storage == CRD_STORAGE and CRD_CLEANUP_FINALIZER in finalizers:
            self._queue.put_nowait(("crd", CRD_STORAGE, "", entry.name))

    # -- work --------------------------------------------------------------------------------------

    async def _run(self) -> None:
        processed = 0
        while True:
            what, storage, namespace, key = await self._queue.get()
            try:
                if what == "owner-gone":
                    self._owner_gone(key)
                elif what == "owner-check":
                    self._owner_check(key)
                elif what == "finalize":
                    self._finalize(storage, namespace, key)
                elif what == "namespace":
                    self._namespace(key)
                elif what == "crd":
                    self._crd_cleanup(key)
                elif what == "dependent":
                    self._dependent(storage, namespace, key)
            except ApiError as exc:
                log.debug("gc: %s %s/%s/%s: %s", what, storage, namespace, key, exc)
            except Exception:  # a bug must not stop the collector
                log.exception("gc: %s %s/%s/%s failed", what, storage, namespace, key)
            processed += 1
            if processed % 50 == 0:
                await asyncio.sleep(0)

    def _rdef(self, storage: str) -> ResourceDef | None:
        for rdef in self.api.registry.all():
            if rdef.storage == storage and not (storage == "/events" and rdef.group):
                return rdef
        return None

    def _owner_exists(self, ref: dict[str, Any], namespace: str) -> bool:
        rdef = self.api.registry.by_kind(str(ref.get("apiVersion", "")), str(ref.get("kind", "")))
        if rdef is None:
            # An owner of a kind nobody serves cannot be proven absent; the real garbage
            # collector leaves such dependents alone too.
            return True
        owner = self.api.store.get(
            rdef.storage, namespace if rdef.namespaced else "", str(ref.get("name", ""))
        )
        return owner is not None and owner.uid == ref.get("uid")

    def _dependents(self, uid: str) -> list[tuple[ResourceDef, StoredObject]]:
        out = []
        for storage, namespace, name in sorted(self.api.store.dependents.get(uid, ())):
            rdef = self._rdef(storage)
            entry = self.api.store.get(storage, namespace, name)
            if rdef is not None and entry is not None:
                out.append((rdef, entry))
        return out

    def _owner_gone(self, uid: str) -> None:
        for rdef, entry in self._dependents(uid):
            refs = entry.obj["metadata"].get("ownerReferences") or []
            alive = [r for r in refs if self._owner_exists(r, entry.namespace)]
            if not alive:
                if not entry.obj["metadata"].get("deletionTimestamp"):
                    self.api.delete(
                        rdef, entry.namespace, entry.name, {"propagationPolicy": "Background"}
                    )
            elif len(alive) != len(refs):
                self.api.patch(
                    rdef,
                    entry.namespace,
                    entry.name,
                    "application/merge-patch+json",
                    {"metadata": {"ownerReferences": alive}},
                )

    def _delete_all(self, rdef: ResourceDef, keys: list[tuple[str, str]]) -> int:
        """Delete (in the background) every object of ``keys`` not being deleted yet; how many
        still exist."""
        coll = self.api.store.collection(rdef.storage)
        remaining = 0
        for key in keys:
            entry = coll.get(*key)
            if entry is None:
                continue
            remaining += 1
            if not entry.obj["metadata"].get("deletionTimestamp"):
                with contextlib.suppress(ApiError):
                    self.api.delete(rdef, key[0], key[1], {"propagationPolicy": "Background"})
        return remaining

    def _crd_cleanup(self, name: str) -> None:
        """The CRD finalizer controller: delete every object of a deleted CRD, then let it go."""
        crd = self.api.store.get(CRD_STORAGE, "", name)
        if crd is None or not crd.obj["metadata"].get("deletionTimestamp"):
            return
        served = [r for r in self.api.registry.all() if r.crd_name == name]
        remaining = 0
        for storage in {r.storage for r in served}:
            self._crd_of_storage[storage] = name
            rdef = next(r for r in served if r.storage == storage)
            keys = list(self.api.store.collection(storage).sorted_keys())
            remaining += self._delete_all(rdef, keys)
        if remaining:
            return
        for storage in [s for s, n in self._crd_of_storage.items() if n == name]:
            del self._crd_of_storage[storage]
        crd_rdef = self.api.resource("apiextensions.k8s.io", "v1", "customresourcedefinitions")
        self._remove_finalizer(crd_rdef, crd, CRD_CLEANUP_FINALIZER)

    def _dependent(self, storage: str, namespace: str, name: str) -> None:
        rdef = self._rdef(storage)
        entry = self.api.store.get(storage, namespace, name)
        if rdef is None or entry is None or entry.obj["metadata"].get("deletionTimestamp"):
            return
        refs = entry.obj["metadata"].get("ownerReferences") or []
        if refs and not any(self._owner_exists(r, namespace) for r in refs):
            self.api.delete(rdef, namespace, name, {"propagationPolicy": "Background"})

    def _owner_check(self, uid: str) -> None:
        waiting = self._foreground.get(uid)
        if waiting is None or self.api.store.dependents.get(uid):
            return
        self._finalize(*waiting)

    def _remove_finalizer(self, rdef: ResourceDef, entry: StoredObject, finalizer: str) -> None:
        finalizers = [f for f in entry.obj["metadata"].get("finalizers") or [] if f != finalizer]
        obj = entry.copy()
        obj["metadata"]["finalizers"] = finalizers
        self.api.replace(rdef, entry.namespace, entry.name, obj)

    def _finalize(self, storage: str, namespace: str, name: str) -> None:
        rdef = self._rdef(storage)
        entry = self.api.store.get(storage, namespace, name)
        if rdef is None or entry is None:
            return
        finalizers = entry.obj["metadata"].get("finalizers") or []
        if "orphan" in finalizers:
            for dep_rdef, dep in self._dependents(entry.uid):
                refs = dep.obj["metadata"].get("ownerReferences") or []
                self.api.patch(
                    dep_rdef,
                    dep.namespace,
                    dep.name,
                    "application/merge-patch+json",
                    {
                        "metadata": {
                            "ownerReferences": [r for r in refs if r.get("uid") != entry.uid]
                            or None
                        }
                    },
                )
            entry = self.api.store.get(storage, namespace, name) or entry
            self._remove_finalizer(rdef, entry, "orphan")
            return
        if "foregroundDeletion" in finalizers:
            dependents = self._dependents(entry.uid)
            for dep_rdef, dep in dependents:
                if not dep.obj["metadata"].get("deletionTimestamp"):
                    self.api.delete(
                        dep_rdef, dep.namespace, dep.name, {"propagationPolicy": "Foreground"}
                    )
            if not self._dependents(entry.uid):
                current = self.api.store.get(storage, namespace, name)
                if current is not None:
                    self._remove_finalizer(rdef, current, "foregroundDeletion")

    def _namespace(self, name: str) -> None:
        ns_rdef = self.api.resource("", "v1", "namespaces")
        ns = self.api.store.get(NAMESPACE_STORAGE, "", name)
        if ns is None or not ns.obj["metadata"].get("deletionTimestamp"):
            return
        remaining = 0
        seen: set[str] = set()
        for rdef in self.api.registry.all():
            if not rdef.namespaced or rdef.storage in seen:
                continue
            seen.add(rdef.storage)
            remaining += self._delete_all(
                rdef, self.api.store.collection(rdef.storage).keys_in(name)
            )
        if remaining:
            return
        obj = ns.copy()
        if (obj.get("spec") or {}).get("finalizers"):
            obj["spec"]["finalizers"] = []
            # spec.finalizers of a namespace change only through namespaces/finalize; kubesim
            # writes the store directly, as the namespace controller's finalize call does.
            self.api.store.update(NAMESPACE_STORAGE, obj)
        current = self.api.store.get(NAMESPACE_STORAGE, "", name)
        if current is not None and not current.obj["metadata"].get("finalizers"):
            self.api.finish_deletion(ns_rdef, current)
