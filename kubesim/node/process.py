"""The ``process`` container runtime: the pod's first container runs as a local process.

Why this exists: a few pods of a simulated cluster must run the real program of their image
(an end-to-end test of the server itself, a demo showing real answers), without containers:
the first container's ``command + args`` run on the host with ``$(VAR)`` expansion, env from
``value`` and downward-API ``fieldRef``, downward-API volumes written like the kubelet's into a
per-pod host directory (the container's mount paths rewritten to it in args and env),
startup/readiness/liveness from httpGet probes, and restarts with back-off. All pods share the
host's network: the process must bind its pod IP (a ``status.podIP`` fieldRef), and the pod
proxy forwards to ``podIP:port``.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import signal
import sys
from pathlib import Path
from typing import Any

from aiohttp import ClientError, ClientSession, ClientTimeout

from kubesim.core.selectors import LabelSelector
from kubesim.node.downward import expand_vars, field_ref_value, write_atomic_dir
from kubesim.node.runtime import (
    PodContainers,
    PodObject,
    PodSlot,
    PodUnreachable,
    ProxyAnswer,
    ProxyRequest,
)
from kubesim.wire.jsonwire import clone

__all__ = ["ProcessRuntime"]


class ProcessRuntime:
    """Runs the pods whose labels match ``selector`` (the kubelet's ``run_selector``)."""

    def __init__(
        self, selector: str, *, probe_time_scale: float, crash_backoff_seconds: float
    ) -> None:
        self._selector = LabelSelector.parse(selector)
        self.probe_time_scale = probe_time_scale
        self.crash_backoff_seconds = crash_backoff_seconds
        self._http: ClientSession | None = None

    @property
    def name(self) -> str:
        return "process"

    def runs(self, pod: PodObject) -> bool:
        return self._selector.matches((pod.get("metadata") or {}).get("labels") or {})

    def create(self, slot: PodSlot, pod: PodObject) -> PodContainers:
        return _ProcessPod(self, slot)

    def http(self) -> ClientSession:
        """One client for every process pod's probes and proxied requests."""
        if self._http is None:
            self._http = ClientSession(timeout=ClientTimeout(total=30))
        return self._http

    async def close(self) -> None:
        if self._http is not None:
            await self._http.close()


def _first_port(pod: PodObject) -> str:
    for container in (pod.get("spec") or {}).get("containers") or []:
        for port in container.get("ports") or []:
            if port.get("containerPort"):
                return str(port["containerPort"])
    return ""


def _resolve_port(pod: PodObject, port: str) -> str:
    if port.isdigit():
        return port
    for container in (pod.get("spec") or {}).get("containers") or []:
        for p in container.get("ports") or []:
            if p.get("name") == port:
                return str(p.get("containerPort"))
    return port


class _ProcessPod:
    """A pod whose first container runs as a real local process."""

    def __init__(self, runtime: ProcessRuntime, slot: PodSlot) -> None:
        self.runtime = runtime
        self.slot = slot
        self.dir = slot.directory
        self.proc: asyncio.subprocess.Process | None = None
        self._ready = False
        self._running = False
        self._started = False
        self._restarts = 0
        self.stopping = False
        self._tasks: list[asyncio.Task[Any]] = []
        self._pod_obj: dict[str, Any] = {}
        self._volumes: dict[str, Path] = {}

    @property
    def log_path(self) -> Path:
        return self.dir / "container.log"

    # -- PodContainers -----------------------------------------------------------------------------

    def running(self) -> bool:
        return self._running

    def ready(self, pod: PodObject) -> bool:
        return self._ready

    @property
    def restarts(self) -> int:
        return self._restarts

    @property
    def lingers(self) -> bool:
        return self._started

    def refresh(self, pod: PodObject) -> None:
        self.refresh_downward(pod)

    async def proxy(self, request: ProxyRequest) -> ProxyAnswer:
        target_port = request.port or _first_port(self._pod_obj)
        if not target_port:
            raise PodUnreachable(f"pod {self.slot.name} exposes no port to proxy to")
        target_port = _resolve_port(self._pod_obj, target_port)
        url = f"http://{self.slot.ip}:{target_port}/{request.path}"
        headers = {
            k: v for k, v in request.headers.items() if k.lower() in ("content-type", "accept")
        }
        try:
            async with self.runtime.http().request(
                request.method,
                url,
                params=request.query,
                data=request.body or None,
                headers=headers,
            ) as resp:
                return ProxyAnswer(
                    resp.status,
                    await resp.read(),
                    resp.headers.get("Content-Type", "application/octet-stream"),
                )
        except ClientError as exc:
            raise PodUnreachable(f"error trying to reach service: {exc}") from None

    def log(self) -> bytes:
        return self.log_tail()

    # -- the process ---------------------------------------------------------------------------------

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

    def refresh_downward(self, pod_obj: PodObject) -> None:
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
        host_env["HOSTNAME"] = (self._pod_obj.get("spec") or {}).get("hostname") or self.slot.name[
            :63
        ]
        return argv, {**host_env, **env}

    async def start(self, pod: PodObject) -> None:
        bound: dict[str, Any] = clone(dict(pod))
        bound.setdefault("status", {}).update(podIP=self.slot.ip, hostIP=self.slot.host_ip)
        bound.setdefault("spec", {})["nodeName"] = self.slot.node_name
        self._pod_obj = bound
        self._started = True
        self.dir.mkdir(parents=True, exist_ok=True)
        self._write_volumes()
        loop = asyncio.get_running_loop()
        self._tasks.append(loop.create_task(self._supervise()))
        self._tasks.append(loop.create_task(self._probe_loop()))

    async def _spawn(self) -> asyncio.subprocess.Process:
        argv, env = self._argv_env()
        if not argv:
            raise RuntimeError(f"pod {self.slot.name}: container has no command to run")
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
        backoff = self.runtime.crash_backoff_seconds
        while not self.stopping:
            try:
                self.proc = await self._spawn()
            except (OSError, RuntimeError) as exc:
                with self.log_path.open("a") as fh:
                    fh.write(f"kubesim: cannot start container: {exc}\n")
                self.proc = None
            self._running = self.proc is not None
            if self.proc is not None and not self._has_readiness_probe():
                self._ready = True
            self.slot.changed()
            if self.proc is not None:
                await self.proc.wait()
            self._running = False
            self._ready = False
            if self.stopping:
                break
            self._restarts += 1
            self.slot.changed()
            await asyncio.sleep(backoff)
            backoff = min(backoff * 2, 30 * self.runtime.crash_backoff_seconds)

    def _has_readiness_probe(self) -> bool:
        return bool(self._container().get("readinessProbe"))

    async def _probe_once(self, probe: dict[str, Any]) -> bool:
        http = probe.get("httpGet")
        if not isinstance(http, dict):
            return self._running
        port = _resolve_port(self._pod_obj, str(http.get("port", "")))
        url = f"http://{self.slot.ip}:{port}{http.get('path', '/')}"
        try:
            async with self.runtime.http().get(
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
        scale = self.runtime.probe_time_scale
        loop = asyncio.get_running_loop()

        def period(probe: dict[str, Any]) -> float:
            return max(0.05, min(float(probe.get("periodSeconds", 10)) * scale, 2.0))

        current: asyncio.subprocess.Process | None = None
        started = False
        due: dict[str, float] = {}
        successes: dict[str, int] = {}
        failures: dict[str, int] = {}
        while not self.stopping:
            if not self._running or self.proc is None:
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
                    new_ready = self._ready
                    if ok and successes[kind] >= int(probe.get("successThreshold", 1)):
                        new_ready = True
                    elif not ok and failures[kind] >= int(probe.get("failureThreshold", 3)):
                        new_ready = False
                    if new_ready != self._ready:
                        self._ready = new_ready
                        self.slot.changed()
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
        self._running = False
        self._ready = False
