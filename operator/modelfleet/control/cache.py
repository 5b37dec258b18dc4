"""The watch cache: what the watches last showed of each fleet, its pods and the ConfigMaps it
reads its inventory from.

Events only update memory and tell a listener what changed (a fleet, one of its wells, its
inventory); nothing here plans or writes. Newest wins by resourceVersion, so a late answer of a
write never replaces a newer watch event, and a pod seen deleted is never resurrected.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from modelfleet.logic.inventory import InventorySource, referenced_config_maps
from modelfleet.logic.wellpod import LABEL_DEPLOYMENT, WellPod, observe_pod

FleetKey = tuple[str, str]  # (namespace, name)
ConfigMapKey = tuple[str, str]  # (namespace, name)

#: Deleted pod uids remembered per fleet (a write's answer after the DELETED event is ignored).
MAX_TOMBSTONES = 20_000


class CacheListener(Protocol):
    """Who is told what changed: the control loop."""

    def fleet_changed(self, key: FleetKey) -> None:
        """Something the fleet's next plan reads changed."""

    def well_changed(self, key: FleetKey, well: str) -> None:
        """One well's pod changed (or is gone): a reaction may start at once."""

    def inventory_changed(self, key: FleetKey) -> None:
        """The fleet's wells or digests may have moved: the last plan's targets are stale."""

    def fleet_deleted(self, key: FleetKey) -> None:
        """The ModelDeployment is gone."""


@dataclass
class CachedPod:
    resource_version: int
    pod: WellPod


@dataclass
class CachedConfigMap:
    resource_version: int
    source: InventorySource | None  # None: the ConfigMap does not exist


@dataclass
class ObservedFleet:
    """One ModelDeployment as the watches show it: its body, its status, its pods."""

    body: Mapping[str, Any] | None = None
    last_status: Mapping[str, Any] | None = None  # as last read or written
    pods: dict[str, CachedPod] = field(default_factory=dict)  # by well id
    # uids of pods seen deleted: a write's answer that arrives after the watch's DELETED
    # event must not resurrect the pod in the cache.
    deleted_uids: dict[str, None] = field(default_factory=dict)
    inventory_refs: frozenset[str] = frozenset()  # ConfigMaps the spec reads wells/digests from

    def pod_map(self) -> dict[str, WellPod]:
        return {well: cached.pod for well, cached in self.pods.items()}

    def generation(self) -> int:
        return generation_of(self.body or {})


def resource_version(body: Mapping[str, Any]) -> int:
    try:
        return int((body.get("metadata") or {}).get("resourceVersion") or 0)
    except ValueError:
        return 0


def generation_of(body: Mapping[str, Any]) -> int:
    return int((body.get("metadata") or {}).get("generation") or 0)


def without_managed_fields(body: Mapping[str, Any]) -> Mapping[str, Any]:
    """The body without metadata.managedFields (a shallow copy; the body itself is unchanged).

    Nothing here reads them, and they are most of a big fleet's object: the apiserver records a
    field entry per list item, so a 10,000-well ModelDeployment as the watch delivers it is
    591,641 bytes of JSON, 430,861 of them managedFields (6.16 MB as Python objects, 2.37 MB
    without; measured on kubesim). Kept whole, they stayed as long as the body, and each status
    write's answer (which replaces the body) brought another copy.
    """
    metadata = body.get("metadata")
    if not isinstance(metadata, Mapping) or "managedFields" not in metadata:
        return body
    return {
        **body,
        "metadata": {k: v for k, v in metadata.items() if k != "managedFields"},
    }


def _same_inventory(a: InventorySource | None, b: InventorySource | None) -> bool:
    if a is None or b is None:
        return a is b
    return a.data == b.data and a.other_keys == b.other_keys


def _key_of(body: Mapping[str, Any]) -> tuple[str, str]:
    meta = body.get("metadata") or {}
    return (meta.get("namespace", ""), meta.get("name", ""))


class WatchCache:
    def __init__(self, listener: CacheListener) -> None:
        self.listener = listener
        self.fleets: dict[FleetKey, ObservedFleet] = {}
        # Inventory ConfigMaps referenced by some fleet, as last seen (only those: a namespace's
        # other ConfigMaps are dropped on arrival).
        self.config_maps: dict[ConfigMapKey, CachedConfigMap] = {}

    # ------------------------------------------------------------------------ fleets
    def observe_deployment(self, event_type: str, body: Mapping[str, Any]) -> None:
        key = _key_of(body)
        if event_type == "DELETED":
            if self.fleets.pop(key, None) is not None:
                self.forget_unreferenced(key[0])
                self.listener.fleet_deleted(key)
            return
        fleet = self.fleets.setdefault(key, ObservedFleet())
        if fleet.body is not None and resource_version(fleet.body) > resource_version(body):
            return  # an older view than one we already hold
        fleet.body = without_managed_fields(body)
        fleet.last_status = body.get("status")
        refs = referenced_config_maps(body.get("spec") or {})
        if refs != fleet.inventory_refs:
            fleet.inventory_refs = refs
            self.forget_unreferenced(key[0])
        self.listener.fleet_changed(key)

    def record_status(
        self, key: FleetKey, status: Mapping[str, Any], stored: Mapping[str, Any]
    ) -> None:
        """The answer of our own status write: newer than what the watch showed so far."""
        fleet = self.fleets.get(key)
        if fleet is None:
            return
        fleet.last_status = stored.get("status") or status
        if fleet.body is not None and resource_version(stored) >= resource_version(fleet.body):
            fleet.body = without_managed_fields(stored)

    # ---------------------------------------------------------------------- ConfigMaps
    def observe_config_map(self, event_type: str, body: Mapping[str, Any]) -> None:
        """Keep a ConfigMap some fleet reads its inventory from; tell its readers if it changed."""
        key = _key_of(body)
        readers = self.readers_of(key)
        if not readers:
            self.config_maps.pop(key, None)
            return
        rv = resource_version(body)
        cached = self.config_maps.get(key)
        if cached is not None and cached.resource_version > rv:
            return
        source = None if event_type == "DELETED" else InventorySource.from_config_map(body)
        if cached is not None and _same_inventory(cached.source, source):
            cached.resource_version = rv  # metadata only: keep the parsed inventory
            return
        self.config_maps[key] = CachedConfigMap(rv, source)
        for fleet in readers:
            self.listener.inventory_changed(fleet)

    def resync_config_maps(
        self, namespace: str | None, bodies: Sequence[Mapping[str, Any]]
    ) -> None:
        """A fresh list of the ConfigMaps (in `namespace`, or everywhere)."""
        listed = set()
        for body in bodies:
            listed.add(_key_of(body))
            self.observe_config_map("ADDED", body)
        for key, fleet in list(self.fleets.items()):
            if namespace is not None and key[0] != namespace:
                continue
            for name in fleet.inventory_refs:
                cm_key = (key[0], name)
                cached = self.config_maps.get(cm_key)
                if cm_key not in listed and (cached is None or cached.source is not None):
                    self.config_maps[cm_key] = CachedConfigMap(0, None)
                    self.listener.inventory_changed(key)

    def store_read_config_map(self, key: ConfigMapKey, body: Mapping[str, Any] | None) -> None:
        """The answer of a GET of a referenced ConfigMap the watch had not kept."""
        if key in self.config_maps or not self.readers_of(key):
            return  # the watch delivered it meanwhile (newer), or nobody needs it any more
        source = InventorySource.from_config_map(body) if body is not None else None
        self.config_maps[key] = CachedConfigMap(resource_version(body) if body else 0, source)

    def readers_of(self, key: ConfigMapKey) -> list[FleetKey]:
        return [f for f, m in self.fleets.items() if f[0] == key[0] and key[1] in m.inventory_refs]

    def forget_unreferenced(self, namespace: str) -> None:
        referenced = {
            name for f, m in self.fleets.items() if f[0] == namespace for name in m.inventory_refs
        }
        for key in [k for k in self.config_maps if k[0] == namespace and k[1] not in referenced]:
            del self.config_maps[key]

    # ---------------------------------------------------------------------------- pods
    def observe_pod(self, event_type: str, body: Mapping[str, Any]) -> None:
        meta = body.get("metadata") or {}
        deployment = (meta.get("labels") or {}).get(LABEL_DEPLOYMENT)
        if not deployment:
            return
        pod = observe_pod(body)
        if pod is None:
            return
        key = (meta.get("namespace", ""), deployment)
        if event_type == "DELETED":
            self._pod_deleted(key, pod)
            return
        fleet = self.fleets.setdefault(key, ObservedFleet())
        if pod.uid in fleet.deleted_uids:
            return
        cached = fleet.pods.get(pod.well)
        rv = resource_version(body)
        if cached is not None and cached.resource_version > rv:
            return
        fleet.pods[pod.well] = CachedPod(rv, pod)
        if cached is None or cached.pod != pod:
            self.listener.fleet_changed(key)
            self.listener.well_changed(key, pod.well)

    def _pod_deleted(self, key: FleetKey, pod: WellPod) -> None:
        fleet = self.fleets.get(key)
        if fleet is None:
            return  # its fleet is gone (or never seen): nothing to remember it for
        _bury(fleet, pod.uid)
        cached = fleet.pods.get(pod.well)
        if cached is not None and cached.pod.uid == pod.uid:
            del fleet.pods[pod.well]
            if fleet.body is None and not fleet.pods:
                # Pods of a fleet not (or no longer) known: nothing left to keep.
                del self.fleets[key]
                return
            self.listener.fleet_changed(key)
        self.listener.well_changed(key, pod.well)

    def forget_pod(self, key: FleetKey, well: str) -> None:
        """A write found the well's pod gone.

        Its uid is buried as a DELETED event would: the write's answer can overtake watch
        events from before the deletion, and one of those (the pod still Ready) must not bring
        it back, or the well would count as available while it has no pod.
        """
        fleet = self.fleets.get(key)
        if fleet is not None:
            cached = fleet.pods.pop(well, None)
            if cached is not None:
                _bury(fleet, cached.pod.uid)

    def resync_pods(self, namespace: str | None, bodies: Sequence[Mapping[str, Any]]) -> None:
        """A fresh list of all well pods (in `namespace`, or everywhere): forget the rest."""
        listed = {
            (b["metadata"].get("namespace", ""), b["metadata"].get("uid", "")) for b in bodies
        }
        for (ns, _name), fleet in self.fleets.items():
            if namespace is not None and ns != namespace:
                continue
            for well, cached in list(fleet.pods.items()):
                if (ns, cached.pod.uid) not in listed:
                    del fleet.pods[well]
        for body in bodies:
            self.observe_pod("ADDED", body)
        for key in list(self.fleets):
            if namespace is None or key[0] == namespace:
                self.listener.fleet_changed(key)


def _bury(fleet: ObservedFleet, uid: str) -> None:
    """Remember a deleted pod's uid: later events of it are stale."""
    fleet.deleted_uids[uid] = None
    if len(fleet.deleted_uids) > MAX_TOMBSTONES:
        for old in list(fleet.deleted_uids)[: MAX_TOMBSTONES // 2]:
            del fleet.deleted_uids[old]
