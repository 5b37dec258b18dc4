"""One process that answers the model runtime's HTTP endpoints for every simulated pod IP.

Why this exists: kwok gives pods IPs but runs nothing, while the operator reads each pod's
runtime through the apiserver's pods/proxy (``GET /v2``, ``POST /v2/repository/bundle/load``).
It also hands out the pod IPs (``PodAddresses``, one per pod UID from its Node's podCIDR), as
a CNI would: kwok starts a pod without one, and the IP is published in the pod's status with the
first status patch the responder makes for it.
This responder listens on POD_IP:PORT *inside* the pod network namespace (where the whole
10.244.0.0/16 is local) for every containerPort of every simulated pod, one socket per pod IP
(so a pod IP:port belongs to exactly one process: this one, or the pod's own real runtime),
tells which pod was called from the connection's local address, and answers with the same
simulated runtime kubesim uses (``modelfleet_dev.simulated_runtime``, imported, not copied:
one implementation of the runtime contract). Pods whose image is ``HOST_PROCESS_IMAGE`` are not
simulated: the responder runs their real ``model-runtime`` in the namespace instead
(``host_process``). It learns pods, their IPs and bundle annotations
by watching pods through the apiserver, starts a bound Pending pod after the start delay (one
status write conditioned on its resourceVersion: kwok's pod-start Stage re-applied itself from
stale copies), loads the annotated bundle when a pod starts (as the
real runtime does from its downward-API file) and again when the annotations change (after the
kubelet's refresh delay), and plays the kubelet's readiness prober: a container with a
readinessProbe is marked ready once its runtime answers the probe path with 200. It also ends
a bound pod's graceful deletion as the kubelet's status manager does: its containers stopped, a
DELETE with grace 0 and the pod's UID as precondition (kwok 0.8.0's delete Stage deletes by name,
and so deleted pods created meanwhile under the same name). And it keeps ContainersReady and
Ready to the kubelet's rule (``pod_readiness``). It
is the kubelet only of kwok's Nodes (annotation ``kwok.x-k8s.io/node=fake``).

Its sockets live in the namespace but the process stays in the host's, so it still reaches the
apiserver and the model store on the host's loopback.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import datetime
import functools
import json
import logging
import signal
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

import httpx
from aiohttp import web

from modelfleet_dev.real_cluster.cluster import KWOK_NODE_ANNOTATION, client_tls
from modelfleet_dev.real_cluster.host_process import (
    HostProcessPod,
    LoopbackForwarder,
    runs_on_host,
)
from modelfleet_dev.real_cluster.netns import NetnsBinder, NetworkError, is_pod_ip
from modelfleet_dev.real_cluster.pod_addresses import PodAddresses, PodAddressesExhausted
from modelfleet_dev.real_cluster.pod_readiness import (
    changed_conditions,
    kubelet_conditions,
    readiness_patch,
)
from modelfleet_dev.simulated_runtime import (
    BUNDLE_DIGEST_ANNOTATION,
    BUNDLE_URI_ANNOTATION,
    ManifestCache,
    SimulatedRuntime,
    requires_annotated_bundle,
)

__all__ = ["Responder", "main"]

log = logging.getLogger("modelfleet.real_cluster.responder")

WELL_LABEL: Final = "modelfleet.dev/well"
#: Listens on one pod IP and port in the namespace (None when it cannot).
Listen = Callable[[str, int], Awaitable[asyncio.AbstractServer | None]]
#: Seconds before changed annotations reach the runtime's downward-API file (kubelet sync);
#: the same default kubesim's kubelet uses.
ANNOTATION_REFRESH_SECONDS: Final = 2.0
_WATCH_TIMEOUT_SECONDS: Final = 300
#: Requests to the apiserver at once. httpcore's pool matches every queued request against
#: every connection on each change (quadratic): 8,000 pods starting together kept the
#: responder at 100% CPU in that loop, 8,212 of 10,000 pods waiting for it after 4 minutes.
API_CONCURRENCY: Final = 32
#: Attempts at a pod's final DELETE when the apiserver fails (5xx, 429, no connection).
_DELETE_ATTEMPTS: Final = 6
#: Attempts at a pod's start write (each conflict re-reads the pod first).
_START_ATTEMPTS: Final = 20


def _no_op() -> None:
    """Placeholder until the pod's own callback is bound (it needs the pod)."""


@dataclass
class _Pod:
    namespace: str
    name: str
    uid: str
    ip: str
    annotations: dict[str, str]
    runtime: SimulatedRuntime
    probes: dict[str, str]  # container name -> readiness probe path (httpGet only)
    unready: set[str] = field(default_factory=set)  # probed containers not ready in status
    started: bool = False  # the runtime's start-up load is done
    probing: bool = False
    refresh: asyncio.TimerHandle | None = None
    servers: list[asyncio.AbstractServer] = field(default_factory=list)
    listening: bool = False
    published: bool = True  # status.podIP shows ip; if not, the readiness patch publishes it


class Responder:
    """Pods by IP, kept from a watch; answers the runtime endpoints for each."""

    def __init__(
        self,
        client: httpx.AsyncClient,
        listen: Listen | None = None,
        *,
        netns: str = "",
        pods_dir: Path | None = None,
        forward_ports: frozenset[int] = frozenset(),
        pod_start_delay: float = 0.0,
    ) -> None:
        self.client = client
        self.pod_start_delay = pod_start_delay
        self.listen = listen
        self.netns = netns
        self.pods_dir = pods_dir
        self.forwarder = LoopbackForwarder(netns)
        self.forward_ports = forward_ports
        self.hosted: dict[str, HostProcessPod] = {}
        self._hosted_refresh: dict[str, asyncio.TimerHandle] = {}
        self._hosted_stops: dict[str, asyncio.Task[None]] = {}  # uid -> its runtime stopping
        self._finalizing: set[str] = set()  # uids whose final DELETE is sent or under way
        self._readiness_writes: set[str] = set()  # uids with a Ready/ContainersReady write
        self._api_slots = asyncio.Semaphore(API_CONCURRENCY)
        self.manifests = ManifestCache()
        self.by_ip: dict[str, _Pod] = {}
        self.by_uid: dict[str, _Pod] = {}
        self.tasks: set[asyncio.Task[Any]] = set()
        self.synced = asyncio.Event()
        self._latest: dict[str, dict[str, Any]] = {}
        self.addresses = PodAddresses()
        self.node_cidrs: dict[str, str] = {}  # the kwok Nodes it is the kubelet of: podCIDR
        self.foreign_nodes: set[str] = set()  # Nodes that are not kwok's (or have no podCIDR)
        self._waiting_for_node: dict[str, dict[str, dict[str, Any]]] = {}  # node -> uid -> pod
        self.node_ips: dict[str, str] = {}  # kwok Node -> its InternalIP (the pods' hostIP)
        # Bound Pending pods of its Nodes, latest copy, until their start write lands.
        self._pending: dict[str, dict[str, Any]] = {}
        self._started: set[str] = set()  # uids it wrote Running (their older events are stale)

    async def _api(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        """One apiserver request, at most API_CONCURRENCY at once (not the pod watch)."""
        async with self._api_slots:
            return await self.client.request(method, path, **kwargs)

    async def _patch_status(
        self, namespace: str, name: str, patch: dict[str, Any]
    ) -> httpx.Response:
        """A strategic merge patch of a pod's status (the kubelet's write)."""
        return await self._api(
            "PATCH",
            f"/api/v1/namespaces/{namespace}/pods/{name}/status",
            content=json.dumps(patch),
            headers={"Content-Type": "application/strategic-merge-patch+json"},
        )

    def _spawn(self, coro: Any) -> asyncio.Task[Any]:
        task = asyncio.get_running_loop().create_task(coro)
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)
        return task

    # -- pods ---------------------------------------------------------------------------------

    def _forget(self, uid: str) -> None:
        pod = self.by_uid.pop(uid, None)
        if pod is None:
            return
        if pod.refresh is not None:
            pod.refresh.cancel()
        for server in pod.servers:
            server.close()  # the listening socket closes now: a new pod may reuse the IP
        pod.servers.clear()
        if self.by_ip.get(pod.ip) is pod:
            del self.by_ip[pod.ip]

    def _observe_hosted(self, obj: dict[str, Any], uid: str, gone: bool) -> None:
        """A pod run as a real process: start it, refresh its annotations, or stop it."""
        hosted = self.hosted.get(uid)
        if gone:
            if hosted is not None:
                del self.hosted[uid]
                timer = self._hosted_refresh.pop(uid, None)
                if timer is not None:
                    timer.cancel()
                stopping = self._spawn(hosted.stop())
                self._hosted_stops[uid] = stopping

                def done(task: asyncio.Task[None]) -> None:
                    if self._hosted_stops.get(uid) is task:
                        del self._hosted_stops[uid]

                stopping.add_done_callback(done)
            return
        if hosted is None:
            if self.pods_dir is None:
                return
            meta = obj.get("metadata") or {}
            hosted = HostProcessPod(
                obj,
                self.pods_dir / f"{meta.get('namespace')}_{meta.get('name')}_{uid}",
                self.netns,
                self.client,
                self.forwarder,
                self.forward_ports,
            )
            self.hosted[uid] = hosted
            self._latest[uid] = obj
            hosted.start()
            return
        hosted_meta = hosted.pod.get("metadata") or {}
        new_annotations = (obj.get("metadata") or {}).get("annotations") or {}
        changed = new_annotations != (hosted_meta.get("annotations") or {})
        if changed and uid not in self._hosted_refresh:

            def refresh() -> None:
                self._hosted_refresh.pop(uid, None)
                if self.hosted.get(uid) is hosted:
                    self._spawn(hosted.refresh(self._latest.get(uid) or obj))

            self._hosted_refresh[uid] = asyncio.get_running_loop().call_later(
                ANNOTATION_REFRESH_SECONDS, refresh
            )
        self._latest[uid] = obj

    async def _learn_node(self, node: str) -> None:
        """Read a Node once (kwok's, and its podCIDR), then observe the pods that waited."""
        try:
            resp = await self._api("GET", f"/api/v1/nodes/{node}")
            if resp.status_code == 404:
                found: dict[str, Any] = {}
            else:
                resp.raise_for_status()
                found = resp.json()
        except (httpx.HTTPError, ValueError) as exc:
            log.warning("reading Node %s for its podCIDR: %s", node, exc)
            self._waiting_for_node.pop(node, None)  # the pods' next events read it again
            return
        waiting = self._waiting_for_node.pop(node, {})
        annotations = (found.get("metadata") or {}).get("annotations") or {}
        cidr = str((found.get("spec") or {}).get("podCIDR") or "")
        if annotations.get(KWOK_NODE_ANNOTATION) != "fake":
            self.foreign_nodes.add(node)  # no kubelet here plays it (none, or not kwok's)
        elif not cidr:
            log.warning("Node %s has no podCIDR: its %d pods get no IP", node, len(waiting))
            self.foreign_nodes.add(node)
        else:
            self.node_cidrs[node] = cidr
            addresses = (found.get("status") or {}).get("addresses") or []
            for address in addresses:
                if address.get("type") == "InternalIP" and address.get("address"):
                    self.node_ips[node] = str(address["address"])
                    break
        for obj in waiting.values():
            self.observe(obj)

    def _kubelet_of(self, obj: dict[str, Any]) -> bool | None:
        """Whether the responder plays the kubelet of the pod's Node (a kwok Node); None until
        the Node is read, when the pod is observed again."""
        node = str((obj.get("spec") or {}).get("nodeName") or "")
        if not node or node in self.foreign_nodes:
            return False
        if node in self.node_cidrs:
            return True
        if node not in self._waiting_for_node:
            self._spawn(self._learn_node(node))
        uid = str((obj.get("metadata") or {}).get("uid") or "")
        self._waiting_for_node.setdefault(node, {})[uid] = obj
        return None

    def _address(self, obj: dict[str, Any], deleting: bool) -> tuple[str, bool]:
        """The pod's IP and whether its status already shows it ("" while it has none).

        A started pod without one is given the next free address of its Node (kubelet + CNI);
        an address the status shows is held for its UID, so a relist after a restart keeps it.
        """
        meta = obj.get("metadata") or {}
        uid = str(meta.get("uid") or "")
        status = obj.get("status") or {}
        shown = str(status.get("podIP") or "")
        node = str((obj.get("spec") or {}).get("nodeName") or "")
        if deleting or not node or (not shown and status.get("phase") != "Running"):
            return shown, bool(shown)
        if not self._kubelet_of(obj):
            return shown, bool(shown)
        cidr = self.node_cidrs[node]
        if shown:
            if not self.addresses.hold(uid, cidr, shown):
                log.error(
                    "pod %s/%s shows IP %s, outside %s or held by another pod: not served",
                    meta.get("namespace"),
                    meta.get("name"),
                    shown,
                    cidr,
                )
                return "", True
            return shown, True
        try:
            return self.addresses.assign(uid, cidr), False
        except PodAddressesExhausted as exc:
            log.error(
                "pod %s/%s on Node %s: %s", meta.get("namespace"), meta.get("name"), node, exc
            )
            return "", False

    def _schedule_start(self, uid: str, obj: dict[str, Any], deleting: bool) -> None:
        """A bound Pending pod of its Nodes starts `pod_start_delay` seconds after it is first
        seen so: the kubelet's one start write (kwok's pod-start Stage re-applied itself from
        stale copies under load and flipped Ready pods back to not ready)."""
        status = obj.get("status") or {}
        if deleting or status.get("phase", "Pending") != "Pending" or uid in self._started:
            self._pending.pop(uid, None)
            return
        if not self._kubelet_of(obj):
            return
        first = uid not in self._pending
        self._pending[uid] = obj
        if first:
            loop = asyncio.get_running_loop()
            loop.call_later(self.pod_start_delay, lambda: self._spawn(self._start_pod(uid)))

    async def _start_pod(self, uid: str) -> None:
        """Write the pod Running, its containers started (ready at once unless probed), as one
        status patch conditioned on the resourceVersion; a conflict re-reads the pod."""
        for _ in range(_START_ATTEMPTS):
            obj = self._pending.get(uid)
            if obj is None:
                return  # started by an earlier write, deleted, or gone
            meta = obj.get("metadata") or {}
            namespace, name = str(meta.get("namespace")), str(meta.get("name"))
            resp = await self._patch_status(namespace, name, self._start_patch(obj))
            if resp.status_code < 300:
                self._pending.pop(uid, None)
                self._started.add(uid)
                return
            if resp.status_code == 404:
                self._pending.pop(uid, None)
                return
            if resp.status_code != 409:
                log.warning(
                    "starting %s/%s: HTTP %s %s",
                    namespace,
                    name,
                    resp.status_code,
                    resp.text[:200],
                )
                await asyncio.sleep(1.0)
                continue
            latest = await self._api("GET", f"/api/v1/namespaces/{namespace}/pods/{name}")
            if latest.status_code >= 300:
                self._pending.pop(uid, None)
                return
            self.observe(latest.json())  # a newer copy, or the end of its pending state
        # Given up: forget it, so that the pod's next event schedules its start again.
        if self._pending.pop(uid, None) is not None:
            log.warning("starting pod uid %s: no write landed in %d attempts", uid, _START_ATTEMPTS)

    def _start_patch(self, obj: dict[str, Any]) -> dict[str, Any]:
        meta, spec = obj.get("metadata") or {}, obj.get("spec") or {}
        uid = str(meta.get("uid") or "")
        now = _now()
        statuses = [
            {
                "name": c.get("name"),
                "image": c.get("image"),
                "imageID": f"kwok://{c.get('image')}",
                "containerID": f"kwok://{uid}/{c.get('name')}",
                "ready": not c.get("readinessProbe"),
                "restartCount": 0,
                "started": True,
                "state": {"running": {"startedAt": now}},
            }
            for c in spec.get("containers") or []
        ]
        status: dict[str, Any] = {
            "phase": "Running",
            "startTime": now,
            "containerStatuses": statuses,
            "conditions": [
                {"type": "PodReadyToStartContainers", "status": "True", "lastTransitionTime": now},
                {"type": "Initialized", "status": "True", "lastTransitionTime": now},
                *kubelet_conditions(obj, now, statuses),
            ],
        }
        node = str(spec.get("nodeName") or "")
        host_ip = self.node_ips.get(node)
        if host_ip:
            status.update(hostIP=host_ip, hostIPs=[{"ip": host_ip}])
            if spec.get("hostNetwork"):
                status.update(_ip_status(host_ip))
        return {
            "metadata": {"uid": uid, "resourceVersion": meta.get("resourceVersion")},
            "status": status,
        }

    async def _publish_ip(self, namespace: str, name: str, uid: str, ip: str) -> None:
        """Put a pod's IP in its status (pods the responder marks ready get it in that patch)."""
        resp = await self._patch_status(
            namespace, name, {"metadata": {"uid": uid}, "status": _ip_status(ip)}
        )
        if resp.status_code >= 300:
            log.warning(
                "giving %s/%s IP %s: HTTP %s %s",
                namespace,
                name,
                ip,
                resp.status_code,
                resp.text[:200],
            )

    async def _finalize(self, namespace: str, name: str, uid: str) -> None:
        """End a bound pod's graceful deletion, as the kubelet does once its containers exit.

        Invariant: the DELETE carries the pod's UID as precondition, so it can only remove that
        pod, never one created since under the same name (which answers 409 and stays).
        """
        stopping = self._hosted_stops.get(uid)
        if stopping is not None:  # a real runtime exits before its pod is removed
            with contextlib.suppress(Exception):  # it failing to stop does not keep the pod
                await asyncio.shield(stopping)
        body = json.dumps(
            {
                "apiVersion": "v1",
                "kind": "DeleteOptions",
                "gracePeriodSeconds": 0,
                "preconditions": {"uid": uid},
            }
        )
        path = f"/api/v1/namespaces/{namespace}/pods/{name}"
        detail = ""
        for attempt in range(_DELETE_ATTEMPTS):
            if attempt:
                await asyncio.sleep(min(2.0**attempt / 4, 4.0))
            try:
                resp = await self._api(
                    "DELETE", path, content=body, headers={"Content-Type": "application/json"}
                )
            except httpx.HTTPError as exc:
                detail = str(exc) or type(exc).__name__
                continue
            # 404: already gone; 409: the name now belongs to a newer pod (the precondition).
            if resp.status_code < 300 or resp.status_code in (404, 409):
                return
            detail = f"HTTP {resp.status_code} {resp.text[:200]}"
            if resp.status_code != 429 and resp.status_code < 500:
                break
        self._finalizing.discard(uid)  # the next event of the pod tries again
        log.warning("deleting %s/%s (uid %s): %s", namespace, name, uid, detail)

    async def _write_readiness(self, uid: str, obj: dict[str, Any]) -> None:
        """Make the pod's ContainersReady and Ready follow the kubelet's rule, one write at a
        time per pod, each conditioned on the resourceVersion it was computed from."""
        try:
            while True:
                patch = readiness_patch(obj, _now())
                if patch is None:
                    return
                meta = obj.get("metadata") or {}
                resp = await self._patch_status(
                    str(meta.get("namespace")), str(meta.get("name")), patch
                )
                # 409: the pod changed since (its event recomputes); 404: it is gone.
                if resp.status_code >= 300 and resp.status_code not in (404, 409):
                    log.warning(
                        "readiness of %s/%s: HTTP %s %s",
                        meta.get("namespace"),
                        meta.get("name"),
                        resp.status_code,
                        resp.text[:200],
                    )
                    return
                latest = self._latest.get(uid)
                if latest is None or _version(latest) == _version(obj):
                    return  # the write's own event (or a newer one) comes next
                obj = latest
        finally:
            self._readiness_writes.discard(uid)

    def observe(self, obj: dict[str, Any], deleted: bool = False) -> None:
        meta = obj.get("metadata") or {}
        uid = str(meta.get("uid") or "")
        status = obj.get("status") or {}
        deleting = bool(deleted or meta.get("deletionTimestamp"))
        if deleted:
            self.addresses.release(uid)  # the UID is gone from the apiserver: its IP is free
            self._started.discard(uid)
            self._finalizing.discard(uid)
            for waiting in self._waiting_for_node.values():
                waiting.pop(uid, None)
        elif deleting and uid not in self._finalizing and self._kubelet_of(obj):
            # The apiserver removes an unbound pod itself; a bound one waits for its kubelet.
            self._finalizing.add(uid)
            self._spawn(self._finalize(meta.get("namespace", ""), meta.get("name", ""), uid))
        elif (
            not deleting
            and uid not in self._readiness_writes
            and readiness_patch(obj, "") is not None
            and self._kubelet_of(obj)
        ):
            # A write under way re-reads the latest copy when it returns.
            self._readiness_writes.add(uid)
            self._spawn(self._write_readiness(uid, obj))
        self._schedule_start(uid, obj, deleting)
        ip, published = self._address(obj, deleting)
        gone = bool(deleting or not ip or not is_pod_ip(ip))
        if runs_on_host(obj):
            # The real runtime binds $(POD_IP) from its status: it starts once the IP is shown.
            if ip and not published and not gone:
                self._spawn(
                    self._publish_ip(meta.get("namespace", ""), meta.get("name", ""), uid, ip)
                )
            self._observe_hosted(obj, uid, gone or not published)
            if gone:
                self._latest.pop(uid, None)
            return
        if gone:
            self._forget(uid)
            self._latest.pop(uid, None)
            return
        annotations = dict(meta.get("annotations") or {})
        pod = self.by_uid.get(uid)
        if pod is None or pod.ip != ip:
            self._forget(uid)
            probes = {}
            containers = (obj.get("spec") or {}).get("containers") or []
            for c in containers:
                http_get = (c.get("readinessProbe") or {}).get("httpGet")
                if http_get:
                    probes[c["name"]] = str(http_get.get("path") or "/")
            labels = meta.get("labels") or {}
            pod = _Pod(
                meta.get("namespace", ""),
                meta.get("name", ""),
                uid,
                ip,
                annotations,
                SimulatedRuntime(
                    labels.get(WELL_LABEL), _no_op, strict=requires_annotated_bundle(obj)
                ),
                probes,
            )
            pod.published = published
            if not published and not probes:
                self._spawn(self._publish_ip(pod.namespace, pod.name, uid, ip))
            pod.runtime.on_change = functools.partial(self._on_serving, pod)
            self.by_uid[uid] = pod
            self.by_ip[ip] = pod
            self._spawn(self._listen_pod(pod, containers))
            self._spawn(self._start(pod))
        elif annotations != pod.annotations and pod.refresh is None:
            pod.refresh = asyncio.get_running_loop().call_later(
                ANNOTATION_REFRESH_SECONDS, self._refresh, pod
            )
        if published:
            pod.published = True
        self._latest[uid] = obj
        if pod.refresh is None:
            pod.annotations = annotations
        ready = {
            cs.get("name")
            for cs in status.get("containerStatuses") or []
            if cs.get("ready") is True
        }
        pod.unready = set(pod.probes) - ready
        if pod.unready and pod.started and not pod.probing:
            self._spawn(self._probe(pod))

    async def _listen_pod(self, pod: _Pod, containers: list[dict[str, Any]]) -> None:
        """Listen on the pod's IP at every TCP containerPort it declares (the operator's port is
        a setting), until the pod is forgotten."""
        if self.listen is None:
            return
        ports = {
            port["containerPort"]
            for c in containers
            for port in c.get("ports") or []
            if isinstance(port.get("containerPort"), int) and port.get("protocol", "TCP") == "TCP"
        }
        for number in sorted(ports):
            server = await self.listen(pod.ip, number)
            if server is None:
                continue
            if self.by_uid.get(pod.uid) is not pod:  # forgotten while binding
                server.close()
                return
            pod.servers.append(server)

    def _on_serving(self, pod: _Pod) -> None:
        if pod.started:  # at start-up, _start probes once the load returns
            self._spawn(self._probe(pod))

    def _refresh(self, pod: _Pod) -> None:
        pod.refresh = None
        latest = self._latest.get(pod.uid)
        if latest is None or self.by_uid.get(pod.uid) is not pod:
            return
        pod.annotations = dict((latest.get("metadata") or {}).get("annotations") or {})
        uri = pod.annotations.get(BUNDLE_URI_ANNOTATION)
        if uri:
            digest = pod.annotations.get(BUNDLE_DIGEST_ANNOTATION)
            self._spawn(pod.runtime.load_annotated(self.manifests, uri, digest))

    async def _start(self, pod: _Pod) -> None:
        """The runtime starting: it loads the bundle its annotations name, then is probed."""
        uri = pod.annotations.get(BUNDLE_URI_ANNOTATION)
        if uri:
            digest = pod.annotations.get(BUNDLE_DIGEST_ANNOTATION)
            await pod.runtime.load_annotated(self.manifests, uri, digest)
        pod.started = True
        await self._probe(pod)

    async def _probe(self, pod: _Pod) -> None:
        """The kubelet's readiness prober: mark containers ready once their probe passes.

        It runs when the runtime starts serving and on any event that shows a probed container
        still not ready; an extra run after a stale event only repeats an idempotent patch.
        """
        if not pod.unready or pod.probing or self.by_uid.get(pod.uid) is not pod:
            return
        pod.probing = True
        try:
            passed = set()
            for name in pod.unready:
                code, _ = await pod.runtime.answer(self.manifests, "GET", pod.probes[name], b"")
                if code == 200:
                    passed.add(name)
            if not passed:
                return
            latest = self._latest.get(pod.uid) or {}
            statuses = [
                dict(cs) for cs in (latest.get("status") or {}).get("containerStatuses") or []
            ]
            for cs in statuses:
                if cs.get("name") in passed:
                    cs["ready"] = True
            # containerStatuses is an atomic list in a strategic merge patch: sent whole. The
            # uid makes it a no-op on a pod recreated under the same name. The conditions go in
            # the same write, as the kubelet's status manager sends them; Ready was False (a
            # probed container was not ready), so a gate seen late leaves it False, never
            # flips it, and the gate's own event makes it True (_write_readiness).
            patch_status: dict[str, Any] = {"containerStatuses": statuses}
            changed = changed_conditions(latest, _now(), statuses) if latest else []
            if changed:
                patch_status["conditions"] = changed
            if not pod.published:
                patch_status.update(_ip_status(pod.ip))
            resp = await self._patch_status(
                pod.namespace, pod.name, {"metadata": {"uid": pod.uid}, "status": patch_status}
            )
            if resp.status_code < 300:
                pod.unready -= passed
                pod.published = True
            else:
                log.warning(
                    "marking %s/%s ready: HTTP %s %s",
                    pod.namespace,
                    pod.name,
                    resp.status_code,
                    resp.text[:200],
                )
        finally:
            pod.probing = False

    async def watch(self) -> None:
        """List, then watch from that resourceVersion; relist after a 410 or a broken stream."""
        while True:
            try:
                resp = await self.client.get("/api/v1/pods")
                resp.raise_for_status()
                listing = resp.json()
                seen = set()
                for obj in listing["items"]:
                    seen.add(obj["metadata"]["uid"])
                    self.observe(obj)
                for uid in list(self.by_uid):
                    if uid not in seen:
                        self._forget(uid)
                for uid in self.addresses.uids() - seen:
                    self.addresses.release(uid)
                self._finalizing &= seen
                self.synced.set()
                version = listing["metadata"]["resourceVersion"]
                params = {
                    "watch": "1",
                    "resourceVersion": version,
                    "allowWatchBookmarks": "true",
                    "timeoutSeconds": str(_WATCH_TIMEOUT_SECONDS),
                }
                async with self.client.stream(
                    "GET", "/api/v1/pods", params=params, timeout=None
                ) as stream:
                    async for line in stream.aiter_lines():
                        if not line:
                            continue
                        event = json.loads(line)
                        kind, obj = event.get("type"), event.get("object") or {}
                        if kind == "ERROR":
                            break  # 410 Gone or similar: relist
                        if kind == "BOOKMARK":
                            continue
                        self.observe(obj, deleted=kind == "DELETED")
            except (httpx.HTTPError, ValueError, KeyError) as exc:
                log.warning("pod watch: %s; relisting", exc)
                await asyncio.sleep(1)  # back-off before relisting a failing apiserver

    # -- HTTP ---------------------------------------------------------------------------------

    async def handle(self, request: web.Request) -> web.StreamResponse:
        transport = request.transport
        local = transport.get_extra_info("sockname") if transport is not None else None
        ip = str(local[0]) if local else ""
        pod = self.by_ip.get(ip)
        if pod is None:
            refusal = web.json_response(
                {"error": f"no pod has IP {ip} (or the responder has not seen it yet)"},
                status=503,
            )
            # Closing the listener of a gone pod leaves the connections it accepted open: the
            # apiserver's proxy keeps them alive and would reach this process again for a new
            # pod given the same IP, such as a host-process pod whose own runtime now listens
            # there. Closing the connection sends its next request to whoever holds the IP.
            refusal.force_close()
            return refusal
        body = await request.read()
        code, answer = await pod.runtime.answer(self.manifests, request.method, request.path, body)
        return web.json_response(answer, status=code)


def _now() -> str:
    return datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _version(obj: dict[str, Any]) -> str:
    return str((obj.get("metadata") or {}).get("resourceVersion") or "")


def _ip_status(ip: str) -> dict[str, Any]:
    return {"podIP": ip, "podIPs": [{"ip": ip}]}


async def _serve(args: argparse.Namespace) -> None:
    client = httpx.AsyncClient(
        base_url=args.server,
        verify=client_tls(args.ca, args.cert, args.key),
        timeout=10.0,
        headers={"User-Agent": "modelfleet-real-cluster-responder"},
        # One kept-alive connection per request slot, plus the watch: httpx keeps 20, so slots
        # past that reconnected, and TLS handshakes took 9% of a 10,000-pod start-up.
        limits=httpx.Limits(
            max_connections=API_CONCURRENCY + 1, max_keepalive_connections=API_CONCURRENCY + 1
        ),
    )
    app = web.Application()
    runner = web.AppRunner(app, access_log=None)
    binder = NetnsBinder(args.netns)

    async def listen(ip: str, port: int) -> asyncio.AbstractServer | None:
        try:
            sock = await binder.listen(ip, port)
        except NetworkError as exc:
            log.warning("cannot listen on %s:%s: %s", ip, port, exc)
            return None
        assert runner.server is not None
        return await asyncio.get_running_loop().create_server(runner.server, sock=sock)

    responder = Responder(
        client,
        listen,
        netns=args.netns,
        pods_dir=Path(args.pods_dir),
        forward_ports=frozenset(args.forward_port or ()),
        pod_start_delay=args.pod_start_delay,
    )
    app.router.add_route("*", "/{tail:.*}", responder.handle)
    await runner.setup()
    watcher = asyncio.get_running_loop().create_task(responder.watch())
    await responder.synced.wait()
    Path(args.ready_file).write_text("ready\n")
    log.info("watching pods; serving their IPs in netns %s", args.netns)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()
    watcher.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await watcher
    await asyncio.gather(*(hosted.stop() for hosted in responder.hosted.values()))
    responder.forwarder.close()
    for pod in responder.by_uid.values():
        for server in pod.servers:
            server.close()
    binder.close()
    await runner.cleanup()
    await responder.manifests.close()
    await client.aclose()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--netns", required=True)
    parser.add_argument("--server", required=True)
    parser.add_argument("--ca", required=True)
    parser.add_argument("--cert", required=True)
    parser.add_argument("--key", required=True)
    parser.add_argument("--ready-file", required=True)
    parser.add_argument(
        "--pods-dir", required=True, help="per-pod directories of the host-process pods"
    )
    parser.add_argument(
        "--forward-port",
        type=int,
        action="append",
        help="a host loopback port reachable on 127.0.0.1 inside the namespace (repeatable)",
    )
    parser.add_argument(
        "--pod-start-delay",
        type=float,
        default=0.0,
        help="seconds from a pod's binding (first seen bound and Pending) to its start",
    )
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    # One line per manifest and model fetch is thousands at fleet scale; failures still log.
    logging.getLogger("httpx").setLevel(logging.WARNING)
    asyncio.run(_serve(args))


if __name__ == "__main__":
    main()
