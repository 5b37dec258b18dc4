"""The simulated kubelet: binds pods to ``kubesim-node`` and moves them through their lifecycle.

Why this exists: with no cluster, something must play scheduler and kubelet so that pods get an
IP, become Running and Ready (honouring ``readinessGates``), crash-loop when told to, and go away
after their grace period, writing statuses shaped like a real kubelet's, as few as a real
kubelet would. Most pods are simulated (their runtime answers from ``modelfleet_dev.simulated_runtime``); pods that
match ``run_selector`` run their real container command as a local process, with env, args and
downward-API files mapped to the host and readiness derived from their readinessProbe.
Pod IPs come from 127.0.0.0/8 (never 127.0.0.1) because nothing here may leave loopback.
Docs: https://kubernetes.io/docs/concepts/workloads/pods/pod-lifecycle/ and
https://kubernetes.io/docs/concepts/workloads/pods/pod-lifecycle/#pod-readiness-gate
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import os
import random
import re
import signal
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

from aiohttp import ClientError, ClientSession, ClientTimeout, web

from kubesim.apiserver import NODE_NAME, POD_STORAGE, ApiServer
from kubesim.downward import expand_vars, field_ref_value, write_atomic_dir
from kubesim.errors import ApiError
from kubesim.jsonwire import encode
from kubesim.selectors import LabelSelector
from kubesim.store import StoredObject, WatchEvent
from modelfleet_dev.simulated_runtime import (
    BUNDLE_DIGEST_ANNOTATION,
    BUNDLE_URI_ANNOTATION,
    ManifestCache,
    SimulatedRuntime,
)

__all__ = ["Kubelet", "KubeletConfig", "PodIPAllocator"]

log = logging.getLogger(__name__)

WELL_LABEL: Final = "modelfleet.dev/well"
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
    run_process: bool
    started: bool = False
    start_timer: bool = False
    started_time: str = ""
    restart_count: int = 0
    terminating: bool = False
    sim: SimulatedRuntime | None = None
    process: _ProcessPod | None = None
    # Annotations as the runtime last saw them (downward-API files / simulated load).
    seen_annotations: dict[str, str] = field(default_factory=dict)
    seen_labels: dict[str, str] = field(default_factory=dict)
    refresh_handle: asyncio.TimerHandle | None = None
    crash_handle: asyncio.TimerHandle | None = None


class Kubelet:
    """Reacts to pod changes in-process and writes through the ApiServer's store."""

    def __init__(self, api: ApiServer, config: KubeletConfig | None = None) -> None:
        self.api = api
        self.config = config or KubeletConfig()
        self.ips = PodIPAllocator()
        self.manifests = ManifestCache()
        self._rng = random.Random(self.config.seed)
        self._crash = (
            LabelSelector.parse(self.config.crash_loop_selector)
            if self.config.crash_loop_selector
            else None
        )
        self._run = (
            LabelSelector.parse(self.config.run_selector) if self.config.run_selector else None
        )
        self._pods: dict[tuple[str, str], _Pod] = {}
        self._dirty: dict[tuple[str, str], None] = {}
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._background: set[asyncio.Task[Any]] = set()
        self._unsubscribe = api.store.subscribe(POD_STORAGE, self._on_event)
        self._work_dir = self.config.work_dir
        self._tmp: tempfile.TemporaryDirectory[str] | None = None
        self._http: ClientSession | None = None
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
            if pod.process is not None:
                await pod.process.stop(2.0)
            self._cancel_timers(pod)
        for task in list(self._background):
            task.cancel()
        for task in list(self._background):
            with contextlib.suppress(BaseException):
                await task
        if self._http is not None:
            await self._http.close()
        await self.manifests.close()
        if self._tmp is not None:
            self._tmp.cleanup()

    def idle(self) -> bool:
        return not self._dirty

    def _spawn(self, coro: Any) -> None:
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
        pod = _Pod(
            uid=entry.uid,
            namespace=entry.namespace,
            name=entry.name,
            ip=self.ips.allocate(),
            start_at=loop.time() + delay,
            failing=failing,
            run_process=bool(self._run and self._run.matches(entry.labels)),
        )
        if not pod.run_process:
            pod.sim = SimulatedRuntime(
                entry.labels.get(WELL_LABEL), lambda: self._mark(pod.namespace, pod.name)
            )
        return pod

    def _forget(self, pod: _Pod) -> None:
        self._cancel_timers(pod)
        self.ips.release(pod.ip)
        if pod.process is not None:
            process = pod.process
            self._spawn(process.stop(0))

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
            if pod is None or not pod.started or pod.process is None:
                if pod is not None:
                    del self._pods[key]
                    self._forget(pod)
                if (entry.obj.get("spec") or {}).get("nodeName") and not meta.get("finalizers"):
                    self.api.finish_deletion(self.api.resource("", "v1", "pods"), entry)
                return
            if not pod.terminating:
                pod.terminating = True
                grace = float(meta.get("deletionGracePeriodSeconds") or 0)
                self._spawn(self._terminate_process(pod, entry, grace))
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
        if pod.sim is not None:
            uri = annotations.get(BUNDLE_URI_ANNOTATION)
            digest = annotations.get(BUNDLE_DIGEST_ANNOTATION)
            if uri and self.manifests.is_fast(uri):
                # Loaded before the first status write: the instant profile stays one write.
                await pod.sim.load(self.manifests, uri, digest)
            elif uri:
                # A network fetch must not stall the kubelet for every other pod: the pod is
                # Running but not Ready until it completes (as a real runtime loading a bundle).
                self._spawn(self._load_then_mark(pod, uri, digest))
        elif pod.run_process:
            assert self._work_dir is not None
            pod.process = _ProcessPod(
                self, pod, self._work_dir / f"{pod.namespace}_{pod.name}_{pod.uid[:8]}"
            )
            pod.process.start(self._with_ip(entry, pod))

    async def _load_then_mark(self, pod: _Pod, uri: str, digest: str | None) -> None:
        assert pod.sim is not None
        await pod.sim.load(self.manifests, uri, digest)
        self._mark(pod.namespace, pod.name)

    def _with_ip(self, entry: StoredObject, pod: _Pod) -> dict[str, Any]:
        obj = entry.copy()
        status = obj.setdefault("status", {})
        status["podIP"] = pod.ip
        status["hostIP"] = "127.0.0.1"
        obj.setdefault("spec", {})["nodeName"] = NODE_NAME
        return obj

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
        labels_changed = pod.process is not None and entry.labels != pod.seen_labels
        if (
            annotations == pod.seen_annotations and not labels_changed
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
            if pod.sim is not None:
                uri = fresh.get(BUNDLE_URI_ANNOTATION)
                if uri:
                    self._spawn(
                        pod.sim.load(self.manifests, uri, fresh.get(BUNDLE_DIGEST_ANNOTATION))
                    )
            elif pod.process is not None:
                pod.process.refresh_downward(current.obj)

        pod.refresh_handle = loop.call_later(self.config.annotation_refresh_delay, refresh)

    # -- status ------------------------------------------------------------------------------------

    def _containers_ready(self, pod: _Pod, entry: StoredObject) -> bool:
        if not pod.started or pod.failing:
            return False
        if pod.sim is not None:
            wants_bundle = BUNDLE_URI_ANNOTATION in (entry.obj["metadata"].get("annotations") or {})
            return pod.sim.serving or not wants_bundle
        if pod.process is not None:
            return pod.process.ready
        return False

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
                "restartCount": pod.restart_count,
                "started": started and not pod.failing,
                "lastState": {},
            }
            if not started:
                cs["state"] = {"waiting": {"reason": "ContainerCreating"}}
                cs.pop("containerID")
            elif pod.failing or (pod.process is not None and not pod.process.running):
                cs["state"] = {
                    "waiting": {
                        "reason": "CrashLoopBackOff",
                        "message": f"back-off restarting failed container={name} pod={pod.name}_{pod.namespace}({pod.uid})",
                    }
                }
                if pod.restart_count:
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

    async def _terminate_process(self, pod: _Pod, entry: StoredObject, grace: float) -> None:
        if pod.process is not None:
            await pod.process.stop(grace)
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
        if pod is None or pod.process is None:
            return b""
        return pod.process.log_tail()

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
        body = await request.read()
        if pod.sim is not None:
            code, answer = await pod.sim.answer(self.manifests, request.method, path, body)
            return web.Response(status=code, body=encode(answer), content_type="application/json")
        target_port = port or _first_port(entry.obj)
        if not target_port:
            raise ApiError(
                503, "ServiceUnavailable", f"pod {entry.name} exposes no port to proxy to"
            )
        target_port = _resolve_port(entry.obj, target_port)
        url = f"http://{pod.ip}:{target_port}/{path}"
        if self._http is None:
            self._http = ClientSession(timeout=ClientTimeout(total=30))
        headers = {
            k: v for k, v in request.headers.items() if k.lower() in ("content-type", "accept")
        }
        try:
            async with self._http.request(
                request.method, url, params=request.query, data=body or None, headers=headers
            ) as resp:
                payload = await resp.read()
                return web.Response(
                    status=resp.status,
                    body=payload,
                    headers={
                        "Content-Type": resp.headers.get("Content-Type", "application/octet-stream")
                    },
                )
        except ClientError as exc:
            raise ApiError(
                503, "ServiceUnavailable", f"error trying to reach service: {exc}"
            ) from None


def _first_port(pod: dict[str, Any]) -> str:
    for container in (pod.get("spec") or {}).get("containers") or []:
        for port in container.get("ports") or []:
            if port.get("containerPort"):
                return str(port["containerPort"])
    return ""


def _resolve_port(pod: dict[str, Any], port: str) -> str:
    if port.isdigit():
        return port
    for container in (pod.get("spec") or {}).get("containers") or []:
        for p in container.get("ports") or []:
            if p.get("name") == port:
                return str(p.get("containerPort"))
    return port


class _ProcessPod:
    """A pod whose first container runs as a real local process."""

    def __init__(self, kubelet: Kubelet, pod: _Pod, directory: Path) -> None:
        self.kubelet = kubelet
        self.pod = pod
        self.dir = directory
        self.proc: asyncio.subprocess.Process | None = None
        self.ready = False
        self.running = False
        self.stopping = False
        self._tasks: list[asyncio.Task[Any]] = []
        self._pod_obj: dict[str, Any] = {}
        self._volumes: dict[str, Path] = {}

    @property
    def log_path(self) -> Path:
        return self.dir / "container.log"

    def log_tail(self, limit: int = 256 * 1024) -> bytes:
        try:
            data = self.log_path.read_bytes()
        except OSError:
            return b""
        return data[-limit:]

    def _container(self) -> dict[str, Any]:
        containers = (self._pod_obj.get("spec") or {}).get("containers") or [{}]
        first: dict[str, Any] = containers[0]
        return first

    def _write_volumes(self) -> None:
        spec = self._pod_obj.get("spec") or {}
        for volume in spec.get("volumes") or []:
            name = volume.get("name", "")
            host = self.dir / "volumes" / name
            self._volumes[name] = host
            if "downwardAPI" in volume:
                files: dict[str, str] = {}
                for item in volume["downwardAPI"].get("items") or []:
                    ref = (item.get("fieldRef") or {}).get("fieldPath")
                    if ref:
                        files[item["path"]] = field_ref_value(self._pod_obj, ref) or ""
                write_atomic_dir(host, files)
            else:
                # emptyDir and anything else: a plain host directory.
                host.mkdir(parents=True, exist_ok=True)

    def refresh_downward(self, pod_obj: dict[str, Any]) -> None:
        status = self._pod_obj.get("status") or {}
        self._pod_obj = dict(pod_obj)
        self._pod_obj["status"] = {
            **(pod_obj.get("status") or {}),
            "podIP": status.get("podIP"),
            "hostIP": "127.0.0.1",
        }
        self._write_volumes()

    def _argv_env(self) -> tuple[list[str], dict[str, str]]:
        container = self._container()
        mounts = {
            m.get("mountPath", ""): self._volumes[m["name"]]
            for m in container.get("volumeMounts") or []
            if m.get("name") in self._volumes
        }

        # One pass, longest mount path first, only at a path boundary: replacing mount paths
        # one after another rewrote paths already rewritten (a /tmp mount inside a host
        # directory under /tmp).
        paths = sorted((m for m in mounts if m.rstrip("/")), key=len, reverse=True)
        pattern = (
            re.compile("|".join(re.escape(m.rstrip("/")) + r"(?=/|$|\s|:)" for m in paths))
            if paths
            else None
        )
        hosts = {m.rstrip("/"): str(h) for m, h in mounts.items() if m.rstrip("/")}

        def remap(text: str) -> str:
            if pattern is None:
                return text
            return pattern.sub(lambda match: hosts[match.group(0)], text)

        env: dict[str, str] = {}
        for var in container.get("env") or []:
            name = var.get("name", "")
            if "value" in var:
                env[name] = remap(expand_vars(str(var["value"]), env))
            elif "valueFrom" in var:
                ref = (var["valueFrom"].get("fieldRef") or {}).get("fieldPath")
                value = field_ref_value(self._pod_obj, ref) if ref else None
                if value is not None:
                    env[name] = value
        argv = [
            remap(expand_vars(str(a), env))
            for a in (container.get("command") or []) + (container.get("args") or [])
        ]
        host_env = {
            k: v
            for k, v in os.environ.items()
            if k in ("HOME", "LANG", "LC_ALL", "PYTHONPATH", "VIRTUAL_ENV", "TMPDIR")
        }
        bin_dir = str(Path(sys.executable).parent)
        host_env["PATH"] = bin_dir + os.pathsep + os.environ.get("PATH", "")
        host_env["HOSTNAME"] = (self._pod_obj.get("spec") or {}).get("hostname") or self.pod.name[
            :63
        ]
        return argv, {**host_env, **env}

    def start(self, pod_obj: dict[str, Any]) -> None:
        self._pod_obj = pod_obj
        self.dir.mkdir(parents=True, exist_ok=True)
        self._write_volumes()
        loop = asyncio.get_running_loop()
        self._tasks.append(loop.create_task(self._supervise()))
        self._tasks.append(loop.create_task(self._probe_loop()))

    async def _spawn(self) -> asyncio.subprocess.Process:
        argv, env = self._argv_env()
        if not argv:
            raise RuntimeError(f"pod {self.pod.name}: container has no command to run")
        log_file = self.log_path.open("ab")
        try:
            return await asyncio.create_subprocess_exec(
                *argv,
                env=env,
                cwd=str(self.dir),
                stdout=log_file,
                stderr=asyncio.subprocess.STDOUT,
                stdin=asyncio.subprocess.DEVNULL,
                start_new_session=True,
            )
        finally:
            log_file.close()

    async def _supervise(self) -> None:
        backoff = self.kubelet.config.crash_backoff_seconds
        while not self.stopping:
            try:
                self.proc = await self._spawn()
            except (OSError, RuntimeError) as exc:
                with self.log_path.open("a") as fh:
                    fh.write(f"kubesim: cannot start container: {exc}\n")
                self.proc = None
            self.running = self.proc is not None
            if self.proc is not None and not self._has_readiness_probe():
                self.ready = True
            self.kubelet._mark(self.pod.namespace, self.pod.name)
            if self.proc is not None:
                await self.proc.wait()
            self.running = False
            self.ready = False
            if self.stopping:
                break
            self.pod.restart_count += 1
            self.kubelet._mark(self.pod.namespace, self.pod.name)
            await asyncio.sleep(backoff)
            backoff = min(backoff * 2, 30 * self.kubelet.config.crash_backoff_seconds)

    def _has_readiness_probe(self) -> bool:
        return bool(self._container().get("readinessProbe"))

    async def _probe_once(self, probe: dict[str, Any]) -> bool:
        http = probe.get("httpGet")
        if not isinstance(http, dict):
            return self.running
        port = _resolve_port(self._pod_obj, str(http.get("port", "")))
        url = f"http://{self.pod.ip}:{port}{http.get('path', '/')}"
        session = self.kubelet._http
        if session is None:
            session = self.kubelet._http = ClientSession(timeout=ClientTimeout(total=30))
        try:
            async with session.get(
                url, timeout=ClientTimeout(total=float(probe.get("timeoutSeconds", 1)))
            ) as resp:
                return 200 <= resp.status < 400
        except (ClientError, TimeoutError, OSError):
            return False

    async def _probe_loop(self) -> None:
        """Startup, readiness and liveness probes, each on its own period, like the kubelet's
        per-probe workers: until a startupProbe succeeds the other two do not run, a container
        whose startup or liveness probe fails failureThreshold times in a row is killed (and
        restarted by `_supervise`), and every (re)start begins with initialDelaySeconds again.
        https://kubernetes.io/docs/concepts/configuration/liveness-readiness-startup-probes/
        """
        container = self._container()
        probes: dict[str, dict[str, Any]] = {
            kind: container[f"{kind}Probe"]
            for kind in ("startup", "readiness", "liveness")
            if isinstance(container.get(f"{kind}Probe"), dict)
        }
        scale = self.kubelet.config.probe_time_scale
        loop = asyncio.get_running_loop()

        def period(probe: dict[str, Any]) -> float:
            return max(0.05, min(float(probe.get("periodSeconds", 10)) * scale, 2.0))

        current: asyncio.subprocess.Process | None = None
        started = False
        due: dict[str, float] = {}
        successes: dict[str, int] = {}
        failures: dict[str, int] = {}
        while not self.stopping:
            if not self.running or self.proc is None:
                current = None
                await asyncio.sleep(0.05)
                continue
            now = loop.time()
            if self.proc is not current:  # a new container start: probes begin afresh
                current = self.proc
                started = "startup" not in probes
                due = {
                    k: now + float(p.get("initialDelaySeconds", 0)) * scale
                    for k, p in probes.items()
                }
                successes = dict.fromkeys(probes, 0)
                failures = dict.fromkeys(probes, 0)
            for kind in ("startup", "readiness", "liveness"):
                probe = probes.get(kind)
                if probe is None or now < due[kind] or (kind != "startup" and not started):
                    continue
                if kind == "startup" and started:
                    continue
                ok = await self._probe_once(probe)
                due[kind] = loop.time() + period(probe)
                successes[kind], failures[kind] = (
                    (successes[kind] + 1, 0) if ok else (0, failures[kind] + 1)
                )
                if kind == "startup" and ok:
                    started = True
                elif kind == "readiness":
                    new_ready = self.ready
                    if ok and successes[kind] >= int(probe.get("successThreshold", 1)):
                        new_ready = True
                    elif not ok and failures[kind] >= int(probe.get("failureThreshold", 3)):
                        new_ready = False
                    if new_ready != self.ready:
                        self.ready = new_ready
                        self.kubelet._mark(self.pod.namespace, self.pod.name)
                elif not ok and failures[kind] >= int(probe.get("failureThreshold", 3)):
                    failures[kind] = 0
                    with contextlib.suppress(ProcessLookupError):
                        os.killpg(current.pid, signal.SIGKILL)
            wake = min(due.values(), default=loop.time() + 0.5)
            await asyncio.sleep(max(0.02, min(wake - loop.time(), 0.5)))

    async def stop(self, grace: float) -> None:
        self.stopping = True
        proc = self.proc
        if proc is not None and proc.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGTERM)
            try:
                await asyncio.wait_for(proc.wait(), timeout=max(grace, 0.01))
            except TimeoutError:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(proc.pid, signal.SIGKILL)
                await proc.wait()
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(BaseException):
                await task
        self.running = False
        self.ready = False
