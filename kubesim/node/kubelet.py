"""The simulated kubelet: binds pods to ``kubesim-node`` and moves them through their lifecycle.

Why this exists: with no cluster, something must play scheduler and kubelet so that pods get an
IP, become Running and Ready (honouring ``readinessGates``), crash-loop when told to, and go away
after their grace period, writing statuses shaped like a real kubelet's, as few as a real
kubelet would. What runs inside a pod is a container runtime's business
(``kubesim.node.runtime``): ``process`` for pods matching ``run_selector``, then the runtimes
registered by whoever embeds kubesim, then ``stub``.
Pod IPs come from 127.0.0.0/8 (never 127.0.0.1) because nothing here may leave loopback.
Docs: https://kubernetes.io/docs/concepts/workloads/pods/pod-lifecycle/ and
https://kubernetes.io/docs/concepts/workloads/pods/pod-lifecycle/#pod-readiness-gate
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import random
import tempfile
from collections.abc import Coroutine, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

from aiohttp import web

from kubesim.core.apiserver import NODE_NAME, POD_STORAGE, ApiServer
from kubesim.core.selectors import LabelSelector
from kubesim.core.store import StoredObject, WatchEvent
from kubesim.node.process import ProcessRuntime
from kubesim.node.runtime import (
    ContainerRuntime,
    ContainerRuntimeFactory,
    PodContainers,
    PodSlot,
    PodUnreachable,
    ProxyRequest,
)
from kubesim.node.stub import StubRuntime
from kubesim.wire.errors import ApiError

__all__ = ["Kubelet", "KubeletConfig", "PodIPAllocator"]

log = logging.getLogger(__name__)

HOST_IP: Final = "127.0.0.1"
_OWN_CONDITIONS: Final = ("Initialized", "Ready", "ContainersReady", "PodScheduled")


@dataclass
class KubeletConfig:
    """How simulated pods behave. The default is instant: one status write to Running+Ready."""

    # Seconds from binding to containers running (plus uniform jitter in [0, jitter_seconds]).
    delay_seconds: float = 0.0
    jitter_seconds: float = 0.0
    # Fraction of pods whose container keeps failing (CrashLoopBackOff, never Ready).
    failure_rate: float = 0.0
    # Pods matching this label selector crash-loop.
    crash_loop_selector: str = ""
    # Pods matching this label selector run their real container command as a local process.
    run_selector: str = ""
    # Seconds before a changed annotation reaches downward-API files (kubelet periodic sync).
    annotation_refresh_delay: float = 2.0
    # Probe periods and initial delays are multiplied by this (fast, but in the same order).
    probe_time_scale: float = 0.1
    # First CrashLoopBackOff delay in seconds (doubles up to 30 x this).
    crash_backoff_seconds: float = 1.0
    # Where process pods get their directories (default: a temporary directory).
    work_dir: Path | None = None
    seed: int | None = None

    @classmethod
    def parse(cls, text: str) -> KubeletConfig:
        """``instant`` or ``delay=1.5,jitter=0.5,failure_rate=0.1,crash_loop=app=x,refresh=2``."""
        config = cls()
        text = text.strip()
        if text in ("", "instant"):
            return config
        for part in _split_options(text):
            key, sep, value = part.partition("=")
            if not sep:
                raise ValueError(f"kubelet option {part!r} is not key=value (in {text!r})")
            key = key.strip()
            if key == "delay":
                config.delay_seconds = float(value)
            elif key == "jitter":
                config.jitter_seconds = float(value)
            elif key in ("failure_rate", "failures"):
                config.failure_rate = float(value)
            elif key in ("crash_loop", "crash_loop_selector"):
                config.crash_loop_selector = value
            elif key in ("run", "run_selector"):
                config.run_selector = value
            elif key in ("refresh", "annotation_refresh_delay"):
                config.annotation_refresh_delay = float(value)
            elif key == "probe_time_scale":
                config.probe_time_scale = float(value)
            elif key == "seed":
                config.seed = int(value)
            else:
                raise ValueError(
                    f"unknown kubelet option {key!r}; expected delay, jitter, failure_rate, "
                    "crash_loop, run, refresh, probe_time_scale, seed"
                )
        return config


def _split_options(text: str) -> list[str]:
    """Split on commas that start a new ``key=`` (selectors may contain commas themselves)."""
    known = (
        "delay=",
        "jitter=",
        "failure_rate=",
        "failures=",
        "crash_loop=",
        "crash_loop_selector=",
        "run=",
        "run_selector=",
        "refresh=",
        "annotation_refresh_delay=",
        "probe_time_scale=",
        "seed=",
    )
    parts: list[str] = []
    for chunk in text.split(","):
        if parts and not chunk.strip().startswith(known):
            parts[-1] += "," + chunk
        else:
            parts.append(chunk)
    return parts


class PodIPAllocator:
    """Unique pod IPs in 127.<b>.0.1 upward, skipping .0 and .255, reusing released ones.

    Each kubesim picks its own random second octet <b> (like a node's pod CIDR), so two kubesims
    on one host (parallel tests, a demo beside a test run) do not hand out the same IP, where
    their process pods would collide on IP:port and pod proxies would reach the wrong runtime.
    Service IPs live in 127.96.0.0/16, above every pod range.
    """

    def __init__(self, base_octet: int | None = None) -> None:
        self._base = (
            base_octet if base_octet is not None else random.SystemRandom().randrange(1, 64)
        )
        self._next = 0
        self._free: list[str] = []

    def allocate(self) -> str:
        if self._free:
            return self._free.pop()
        n = self._next
        self._next += 1
        last = n % 254 + 1
        rest = n // 254
        return f"127.{self._base + rest // 256}.{rest % 256}.{last}"

    def release(self, ip: str) -> None:
        self._free.append(ip)


@dataclass
class _Pod:
    """What the kubelet remembers about one pod (by uid)."""

    uid: str
    namespace: str
    name: str
    ip: str
    start_at: float
    failing: bool
    containers: PodContainers
    started: bool = False
    start_timer: bool = False
    started_time: str = ""
    restart_count: int = 0
    terminating: bool = False
    # Metadata as the containers last saw it (downward-API files).
    seen_annotations: dict[str, str] = field(default_factory=dict)
    seen_labels: dict[str, str] = field(default_factory=dict)
    refresh_handle: asyncio.TimerHandle | None = None
    crash_handle: asyncio.TimerHandle | None = None


class Kubelet:
    """Reacts to pod changes in-process and writes through the ApiServer's store."""

    def __init__(
        self,
        api: ApiServer,
        config: KubeletConfig | None = None,
        runtimes: Sequence[ContainerRuntimeFactory] = (),
    ) -> None:
        """``runtimes``: container runtimes asked before ``stub`` (after ``process``), in order."""
        self.api = api
        self.config = config or KubeletConfig()
        self.ips = PodIPAllocator()
        chosen: list[ContainerRuntime] = []
        if self.config.run_selector:
            chosen.append(
                ProcessRuntime(
                    self.config.run_selector,
                    probe_time_scale=self.config.probe_time_scale,
                    crash_backoff_seconds=self.config.crash_backoff_seconds,
                )
            )
        chosen.extend(factory() for factory in runtimes)
        chosen.append(StubRuntime())
        self.runtimes: tuple[ContainerRuntime, ...] = tuple(chosen)
        self._rng = random.Random(self.config.seed)
        self._crash = (
            LabelSelector.parse(self.config.crash_loop_selector)
            if self.config.crash_loop_selector
            else None
        )
        self._pods: dict[tuple[str, str], _Pod] = {}
        self._dirty: dict[tuple[str, str], None] = {}
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._background: set[asyncio.Task[Any]] = set()
        self._unsubscribe = api.store.subscribe(POD_STORAGE, self._on_event)
        self._work_dir = self.config.work_dir
        self._tmp: tempfile.TemporaryDirectory[str] | None = None
        self.status_writes = 0

    # -- lifecycle -------------------------------------------------------------------------------

    def start(self) -> None:
        if self._work_dir is None:
            self._tmp = tempfile.TemporaryDirectory(prefix="kubesim-kubelet-")
            self._work_dir = Path(self._tmp.name)
        self._task = asyncio.get_running_loop().create_task(self._loop(), name="kubesim-kubelet")
        for entry in list(self.api.store.iter_all(POD_STORAGE)):
            self._mark(entry.namespace, entry.name)

    async def stop(self) -> None:
        self._unsubscribe()
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        for pod in list(self._pods.values()):
            if pod.containers.lingers:
                await pod.containers.stop(2.0)
            self._cancel_timers(pod)
        for task in list(self._background):
            task.cancel()
        for task in list(self._background):
            with contextlib.suppress(BaseException):
                await task
        for runtime in self.runtimes:
            await runtime.close()
        if self._tmp is not None:
            self._tmp.cleanup()

    def idle(self) -> bool:
        return not self._dirty

    def _spawn(self, coro: Coroutine[Any, Any, Any]) -> None:
        task = asyncio.get_running_loop().create_task(coro)
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    # -- change detection ------------------------------------------------------------------------

    def _on_event(self, event: WatchEvent) -> None:
        self._mark(event.obj.namespace, event.obj.name)

    def _mark(self, namespace: str, name: str) -> None:
        self._dirty[(namespace, name)] = None
        self._wake.set()

    async def _loop(self) -> None:
        while True:
            await self._wake.wait()
            self._wake.clear()
            count = 0
            while self._dirty:
                key = next(iter(self._dirty))
                del self._dirty[key]
                try:
                    await self._sync(key)
                except ApiError as exc:
                    log.debug("kubelet: %s/%s: %s", key[0], key[1], exc)
                    self._mark(*key)
                except Exception:
                    log.exception("kubelet: syncing pod %s/%s failed", *key)
                count += 1
                if count % 100 == 0:
                    await asyncio.sleep(0)

    # -- one pod -----------------------------------------------------------------------------------

    def _new_pod(self, entry: StoredObject) -> _Pod:
        cfg = self.config
        loop = asyncio.get_running_loop()
        delay = cfg.delay_seconds + (
            self._rng.uniform(0, cfg.jitter_seconds) if cfg.jitter_seconds else 0.0
        )
        failing = bool(self._crash and self._crash.matches(entry.labels))
        if cfg.failure_rate and not failing:
            # Deterministic per pod name so a recreated pod fails the same way.
            h = int(
                hashlib.sha256(f"{cfg.seed}:{entry.namespace}/{entry.name}".encode()).hexdigest()[
                    :8
                ],
                16,
            )
            failing = (h / 0xFFFFFFFF) < cfg.failure_rate
        namespace, name = entry.namespace, entry.name
        assert self._work_dir is not None, "the kubelet was not started"
        slot = PodSlot(
            namespace=namespace,
            name=name,
            uid=entry.uid,
            ip=self.ips.allocate(),
            host_ip=HOST_IP,
            node_name=NODE_NAME,
            work_dir=self._work_dir,
            changed=lambda: self._mark(namespace, name),
            spawn=self._spawn,
        )
        runtime = next(r for r in self.runtimes if r.runs(entry.obj))
        return _Pod(
            uid=entry.uid,
            namespace=namespace,
            name=name,
            ip=slot.ip,
            start_at=loop.time() + delay,
            failing=failing,
            containers=runtime.create(slot, entry.obj),
        )

    def _forget(self, pod: _Pod) -> None:
        self._cancel_timers(pod)
        self.ips.release(pod.ip)
        if pod.containers.lingers:
            self._spawn(pod.containers.stop(0))

    def _cancel_timers(self, pod: _Pod) -> None:
        for handle in (pod.refresh_handle, pod.crash_handle):
            if handle is not None:
                handle.cancel()

    async def _sync(self, key: tuple[str, str]) -> None:
        entry = self.api.store.get(POD_STORAGE, *key)
        pod = self._pods.get(key)
        if entry is None:
            if pod is not None:
                del self._pods[key]
                self._forget(pod)
            return
        if pod is not None and pod.uid != entry.uid:
            del self._pods[key]
            self._forget(pod)
            pod = None
        meta = entry.obj["metadata"]
        if meta.get("deletionTimestamp"):
            if pod is None or not pod.started or not pod.containers.lingers:
                if pod is not None:
                    del self._pods[key]
                    self._forget(pod)
                if (entry.obj.get("spec") or {}).get("nodeName") and not meta.get("finalizers"):
                    self.api.finish_deletion(self.api.resource("", "v1", "pods"), entry)
                return
            if not pod.terminating:
                pod.terminating = True
                grace = float(meta.get("deletionGracePeriodSeconds") or 0)
                self._spawn(self._terminate(pod, grace))
            return
        if pod is None:
            pod = self._new_pod(entry)
            self._pods[key] = pod
        loop = asyncio.get_running_loop()
        now = loop.time()
        if not pod.started and now >= pod.start_at:
            await self._start(pod, entry)
            entry = self.api.store.get(POD_STORAGE, *key)
            if entry is None or entry.uid != pod.uid:
                return
        elif not pod.started and not pod.start_timer:
            pod.start_timer = True
            loop.call_later(pod.start_at - now, self._mark, *key)
        if pod.started:
            self._watch_annotations(pod, entry)
        self._write_status(pod, entry)

    async def _start(self, pod: _Pod, entry: StoredObject) -> None:
        pod.started = True
        pod.started_time = self.api.now()
        annotations = dict(entry.obj["metadata"].get("annotations") or {})
        pod.seen_annotations = annotations
        pod.seen_labels = dict(entry.labels)
        if pod.failing:
            pod.restart_count = 0
            self._schedule_crash(pod)
            return
        await pod.containers.start(entry.obj)

    def _schedule_crash(self, pod: _Pod) -> None:
        loop = asyncio.get_running_loop()
        backoff = self.config.crash_backoff_seconds * min(2**pod.restart_count, 30)

        def crash() -> None:
            pod.restart_count += 1
            self._mark(pod.namespace, pod.name)
            self._schedule_crash(pod)

        pod.crash_handle = loop.call_later(backoff, crash)

    def _watch_annotations(self, pod: _Pod, entry: StoredObject) -> None:
        annotations = entry.obj["metadata"].get("annotations") or {}
        if (
            annotations == pod.seen_annotations and entry.labels == pod.seen_labels
        ) or pod.refresh_handle is not None:
            return
        loop = asyncio.get_running_loop()

        def refresh() -> None:
            pod.refresh_handle = None
            current = self.api.store.get(POD_STORAGE, pod.namespace, pod.name)
            if current is None or current.uid != pod.uid:
                return
            fresh = dict(current.obj["metadata"].get("annotations") or {})
            pod.seen_annotations = fresh
            pod.seen_labels = dict(current.labels)
            pod.containers.refresh(current.obj)

        pod.refresh_handle = loop.call_later(self.config.annotation_refresh_delay, refresh)

    # -- status ------------------------------------------------------------------------------------

    def _containers_ready(self, pod: _Pod, entry: StoredObject) -> bool:
        if not pod.started or pod.failing:
            return False
        return pod.containers.ready(entry.obj)

    def desired_status(self, pod: _Pod, entry: StoredObject) -> dict[str, Any]:
        obj = entry.obj
        spec = obj.get("spec") or {}
        old = obj.get("status") or {}
        now = self.api.now()
        old_conditions = {
            c.get("type"): c for c in old.get("conditions") or [] if isinstance(c, dict)
        }
        ready = self._containers_ready(pod, entry)
        gates = [
            g.get("conditionType") for g in spec.get("readinessGates") or [] if isinstance(g, dict)
        ]
        gates_ok = all((old_conditions.get(g) or {}).get("status") == "True" for g in gates)

        def cond(type_: str, ok: bool, reason: str | None = None) -> dict[str, Any]:
            status = "True" if ok else "False"
            previous = old_conditions.get(type_)
            since = (
                previous.get("lastTransitionTime")
                if previous and previous.get("status") == status
                else now
            )
            out: dict[str, Any] = {
                "type": type_,
                "status": status,
                "lastProbeTime": None,
                "lastTransitionTime": since,
            }
            if not ok and reason:
                out["reason"] = reason
            return out

        started = pod.started
        conditions = [
            cond("PodReadyToStartContainers", started),
            cond("Initialized", True),
            cond(
                "Ready",
                ready and gates_ok,
                "ReadinessGatesNotReady" if ready else "ContainersNotReady",
            ),
            cond("ContainersReady", ready, "ContainersNotReady"),
            cond("PodScheduled", True),
        ]
        own = {c["type"] for c in conditions}
        # Conditions written by others (readiness gates via pods/status) are kept as they are.
        conditions.extend(c for t, c in old_conditions.items() if t not in own)
        container_statuses = []
        for container in spec.get("containers") or []:
            name = container.get("name", "")
            image = container.get("image", "")
            previous: dict[str, Any] = next(
                (c for c in old.get("containerStatuses") or [] if c.get("name") == name), {}
            )
            cs: dict[str, Any] = {
                "name": name,
                "image": image,
                "imageID": f"kubesim://{image}",
                "containerID": f"kubesim://{pod.uid}/{name}",
                "ready": ready,
                "restartCount": pod.restart_count + pod.containers.restarts,
                "started": started and not pod.failing,
                "lastState": {},
            }
            if not started:
                cs["state"] = {"waiting": {"reason": "ContainerCreating"}}
                cs.pop("containerID")
            elif pod.failing or not pod.containers.running():
                cs["state"] = {
                    "waiting": {
                        "reason": "CrashLoopBackOff",
                        "message": f"back-off restarting failed container={name} pod={pod.name}_{pod.namespace}({pod.uid})",
                    }
                }
                if pod.restart_count + pod.containers.restarts:
                    cs["lastState"] = {"terminated": {"exitCode": 1, "reason": "Error"}}
            else:
                started_at = ((previous.get("state") or {}).get("running") or {}).get(
                    "startedAt"
                ) or pod.started_time
                cs["state"] = {"running": {"startedAt": started_at}}
            container_statuses.append(cs)
        status: dict[str, Any] = dict(old)
        status.update(
            {
                "phase": "Running" if started else "Pending",
                "conditions": conditions,
                "hostIP": "127.0.0.1",
                "hostIPs": [{"ip": "127.0.0.1"}],
                "startTime": old.get("startTime") or now,
                "containerStatuses": container_statuses,
            }
        )
        if started:
            status["podIP"] = pod.ip
            status["podIPs"] = [{"ip": pod.ip}]
        return status

    def _write_status(self, pod: _Pod, entry: StoredObject) -> None:
        status = self.desired_status(pod, entry)
        spec = entry.obj.get("spec") or {}
        if status == entry.obj.get("status") and spec.get("nodeName"):
            return
        # A new version sharing the stored one's unchanged parts (stored objects are never
        # mutated): decoding a whole copy of the pod, managedFields included, for every status
        # write was most of what managedFields cost the kubelet.
        current = entry.obj
        obj = dict(current)
        obj["metadata"] = dict(current["metadata"])  # the store stamps its resourceVersion
        # Binding (spec.nodeName) and the first status land in one write: the instant profile
        # costs one write per pod.
        spec = dict(current.get("spec") or {})
        if not spec.get("nodeName"):
            spec["nodeName"] = NODE_NAME
        obj["spec"] = spec
        obj["status"] = status
        self.api.store.update(POD_STORAGE, obj)
        self.status_writes += 1

    # -- termination -------------------------------------------------------------------------------

    async def _terminate(self, pod: _Pod, grace: float) -> None:
        await pod.containers.stop(grace)
        current = self.api.store.get(POD_STORAGE, pod.namespace, pod.name)
        if (
            current is not None
            and current.uid == pod.uid
            and not current.obj["metadata"].get("finalizers")
        ):
            self.api.finish_deletion(self.api.resource("", "v1", "pods"), current)
        self._mark(pod.namespace, pod.name)

    # -- pod proxy and log -------------------------------------------------------------------------

    def pod_log(self, entry: StoredObject) -> bytes:
        pod = self._pods.get((entry.namespace, entry.name))
        return b"" if pod is None else pod.containers.log()

    async def proxy(
        self, entry: StoredObject, port: str, path: str, request: web.Request
    ) -> web.StreamResponse:
        pod = self._pods.get((entry.namespace, entry.name))
        if pod is None or not pod.started:
            raise ApiError(
                503,
                "ServiceUnavailable",
                f"error trying to reach service: pod {entry.name} is not running",
            )
        proxied = ProxyRequest(
            method=request.method,
            port=port,
            path=path,
            query=request.query,
            headers=request.headers,
            body=await request.read(),
        )
        try:
            answer = await pod.containers.proxy(proxied)
        except PodUnreachable as exc:
            raise ApiError(503, "ServiceUnavailable", str(exc)) from None
        return web.Response(
            status=answer.status, body=answer.body, headers={"Content-Type": answer.content_type}
        )
