"""Real ``model-runtime serve`` processes for the pods that must serve real predictions.

Why this exists: kwok runs nothing, and the responder answers the runtime contract without
scoring anything. A test that needs real predictions through the apiserver's pods/proxy gives
its pods the image ``HOST_PROCESS_IMAGE`` (the ModelDeployment's ``spec.runtime.image``); the
responder then plays the kubelet for those pods: it runs the first container's command and args
(``model-runtime`` from this checkout's venv) *inside* the pod network namespace, so the process
binds its own pod IP (``$(POD_IP)`` from the ``status.podIP`` fieldRef) and pods/proxy reaches
it like any pod; it writes the downward-API volumes as the kubelet does (and rewrites them after
the kubelet's refresh delay when the annotations change); it probes the container's
``httpGet`` readinessProbe every ``periodSeconds`` and records the verdict in the pod's
``containerStatuses`` (kwok's stages derive Ready from it and the gates). The operator has no
branch for this: it sees an ordinary pod.

The namespace has its own loopback, so a bundle URI on the host's loopback (the e2e model store
on 127.0.0.1) would not be reached from inside it. ``LoopbackForwarder`` listens on
127.0.0.1:PORT in the namespace and relays each connection to 127.0.0.1:PORT on the host; the
responder opens one for every loopback port a process pod's bundle URI names (and for the
apiserver's port), before the process starts or reloads.

What the kubelet does and this does not: startup and liveness probes (the process is restarted
only when it exits, with back-off), resource limits, security contexts, image pulls.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import ipaddress
import logging
import os
import re
import signal
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final
from urllib.parse import urlsplit

import httpx

from kubesim.node.downward import expand_vars, field_ref_value, write_atomic_dir
from modelfleet_dev.real_cluster.netns import NETNS_DIR, NetworkError, listen_in_netns

__all__ = [
    "HOST_PROCESS_IMAGE",
    "HostProcessPod",
    "LoopbackForwarder",
    "loopback_ports",
    "runs_on_host",
]

log = logging.getLogger("modelfleet.real_cluster.host_process")

#: A pod whose first container has this image runs as a real process of this checkout.
HOST_PROCESS_IMAGE: Final = "modelfleet.dev/host-process/model-runtime:checkout"
_CLONE_NEWNET: Final = 0x40000000
_PR_SET_PDEATHSIG: Final = 1
_STOP_GRACE_SECONDS: Final = 5.0
_MAX_BACKOFF_SECONDS: Final = 30.0
_HOST_ENV: Final = ("HOME", "LANG", "LC_ALL", "PYTHONPATH", "VIRTUAL_ENV", "TMPDIR")
_LOOPBACK_NAMES: Final = ("localhost",)


def runs_on_host(pod: dict[str, Any]) -> bool:
    containers = (pod.get("spec") or {}).get("containers") or []
    return bool(containers) and containers[0].get("image") == HOST_PROCESS_IMAGE


def loopback_ports(uri: str) -> set[int]:
    """The host-loopback port an http(s) URI names (none for other hosts and schemes)."""
    parts = urlsplit(uri)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        return set()
    host = parts.hostname
    try:
        loopback = ipaddress.ip_address(host).is_loopback
    except ValueError:
        loopback = host in _LOOPBACK_NAMES
    if not loopback:
        return set()
    return {parts.port or (443 if parts.scheme == "https" else 80)}


class LoopbackForwarder:
    """127.0.0.1:PORT inside the namespace relays to 127.0.0.1:PORT on the host, one per port."""

    def __init__(self, netns: str) -> None:
        self.netns = netns
        self.ports: set[int] = set()  # claimed before the await: two pods may ask at once
        self.servers: dict[int, asyncio.Server] = {}

    async def ensure(self, port: int) -> None:
        if port in self.ports:
            return
        self.ports.add(port)
        try:
            sock = listen_in_netns(self.netns, port, host="127.0.0.1")
        except NetworkError as exc:
            log.warning("no loopback forwarder for port %s: %s", port, exc)
            return
        self.servers[port] = await asyncio.start_server(
            lambda r, w: self._relay(port, r, w), sock=sock
        )
        log.info("forwarding 127.0.0.1:%s in netns %s to the host's", port, self.netns)

    async def _relay(
        self, port: int, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        try:
            up_reader, up_writer = await asyncio.open_connection("127.0.0.1", port)
        except OSError:
            writer.close()
            return

        async def pipe(src: asyncio.StreamReader, dst: asyncio.StreamWriter) -> None:
            try:
                while chunk := await src.read(65536):
                    dst.write(chunk)
                    await dst.drain()
            except (ConnectionError, OSError):
                pass
            finally:
                with contextlib.suppress(ConnectionError, OSError, RuntimeError):
                    if dst.can_write_eof():
                        dst.write_eof()

        await asyncio.gather(pipe(reader, up_writer), pipe(up_reader, writer))
        for w in (writer, up_writer):
            w.close()

    def close(self) -> None:
        for server in self.servers.values():
            server.close()
        self.servers.clear()
        self.ports.clear()


def _enter_netns_and_die_with_parent(netns: str) -> Callable[[], None]:
    path = str(NETNS_DIR / netns)

    def preexec() -> None:  # in the child, between fork and exec
        libc = ctypes.CDLL(None, use_errno=True)
        fd = os.open(path, os.O_RDONLY)
        if libc.setns(fd, _CLONE_NEWNET) != 0:
            os._exit(126)
        os.close(fd)
        libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)

    return preexec


@dataclass
class HostProcessPod:
    """One pod's first container as a process in the namespace, probed and refreshed."""

    pod: dict[str, Any]
    directory: Path
    netns: str
    client: httpx.AsyncClient  # the apiserver (status patches)
    forwarder: LoopbackForwarder
    forward_ports: frozenset[int] = frozenset()
    process: asyncio.subprocess.Process | None = None
    ready: bool = False
    stopping: bool = False
    tasks: list[asyncio.Task[Any]] = field(default_factory=list)
    volumes: dict[str, Path] = field(default_factory=dict)

    @property
    def meta(self) -> dict[str, Any]:
        meta: dict[str, Any] = self.pod.get("metadata") or {}
        return meta

    @property
    def ip(self) -> str:
        return str((self.pod.get("status") or {}).get("podIP") or "")

    @property
    def container(self) -> dict[str, Any]:
        first: dict[str, Any] = ((self.pod.get("spec") or {}).get("containers") or [{}])[0]
        return first

    @property
    def log_path(self) -> Path:
        return self.directory / "container.log"

    def start(self) -> None:
        self.directory.mkdir(parents=True, exist_ok=True)
        loop = asyncio.get_running_loop()
        self.tasks.append(loop.create_task(self._supervise()))
        self.tasks.append(loop.create_task(self._probe_loop()))
        for task in self.tasks:
            task.add_done_callback(self._report_crash)

    def _report_crash(self, task: asyncio.Task[Any]) -> None:
        """A supervisor or prober that dies leaves the pod unready for good: say so in the log."""
        if not task.cancelled() and task.exception() is not None:
            log.error(
                "%s/%s: %s died",
                self.meta.get("namespace"),
                self.meta.get("name"),
                task.get_coro(),
                exc_info=task.exception(),
            )

    async def refresh(self, pod: dict[str, Any]) -> None:
        """New annotations reach the downward-API files (after the caller's refresh delay)."""
        self.pod = pod
        await self._forward_bundle_ports()
        self._write_volumes()

    async def _forward_bundle_ports(self) -> None:
        uri = str(self.meta.get("annotations", {}).get("modelfleet.dev/bundle-uri") or "")
        for port in loopback_ports(uri) | self.forward_ports:
            await self.forwarder.ensure(port)

    def _write_volumes(self) -> None:
        for volume in (self.pod.get("spec") or {}).get("volumes") or []:
            name = str(volume.get("name", ""))
            host = self.directory / "volumes" / name
            self.volumes[name] = host
            if "downwardAPI" in volume:
                files: dict[str, str] = {}
                for item in volume["downwardAPI"].get("items") or []:
                    ref = (item.get("fieldRef") or {}).get("fieldPath")
                    if ref:
                        files[item["path"]] = field_ref_value(self.pod, ref) or ""
                write_atomic_dir(host, files)
            else:  # emptyDir and the rest: a plain directory
                host.mkdir(parents=True, exist_ok=True)

    def argv_env(self) -> tuple[list[str], dict[str, str]]:
        """Command, args and env as the kubelet expands them, mount paths mapped to host dirs."""
        mounts = {
            str(m.get("mountPath", "")).rstrip("/"): str(self.volumes[m["name"]])
            for m in self.container.get("volumeMounts") or []
            if m.get("name") in self.volumes and str(m.get("mountPath", "")).rstrip("/")
        }
        # Longest mount first, at a path boundary, in one pass (a rewritten path is not
        # rewritten again by a shorter mount such as /tmp).
        pattern = (
            re.compile(
                "|".join(
                    re.escape(m) + r"(?=/|$|\s|:)" for m in sorted(mounts, key=len, reverse=True)
                )
            )
            if mounts
            else None
        )

        def remap(text: str) -> str:
            return pattern.sub(lambda m: mounts[m.group(0)], text) if pattern else text

        env: dict[str, str] = {}
        for var in self.container.get("env") or []:
            name = str(var.get("name", ""))
            if "value" in var:
                env[name] = remap(expand_vars(str(var["value"]), env))
            elif "valueFrom" in var:
                ref = (var["valueFrom"].get("fieldRef") or {}).get("fieldPath")
                value = field_ref_value(self.pod, ref) if ref else None
                if value is not None:
                    env[name] = value
        argv = [
            remap(expand_vars(str(a), env))
            for a in (self.container.get("command") or []) + (self.container.get("args") or [])
        ]
        host_env = {k: v for k, v in os.environ.items() if k in _HOST_ENV}
        host_env["PATH"] = str(Path(sys.executable).parent) + os.pathsep + os.environ["PATH"]
        host_env["HOSTNAME"] = str((self.pod.get("spec") or {}).get("hostname") or "")
        return argv, {**host_env, **env}

    async def _supervise(self) -> None:
        backoff = 1.0
        await self._forward_bundle_ports()
        self._write_volumes()
        while not self.stopping:
            argv, env = self.argv_env()
            with self.log_path.open("ab") as log_file:
                try:
                    self.process = await asyncio.create_subprocess_exec(
                        *argv,
                        env=env,
                        cwd=str(self.directory),
                        stdin=asyncio.subprocess.DEVNULL,
                        stdout=log_file,
                        stderr=asyncio.subprocess.STDOUT,
                        start_new_session=True,
                        preexec_fn=_enter_netns_and_die_with_parent(self.netns),
                    )
                except OSError as exc:
                    log_file.write(f"real-cluster responder: cannot start: {exc}\n".encode())
                    self.process = None
            if self.process is not None:
                code = await self.process.wait()
                log.warning(
                    "%s/%s exited with %s", self.meta.get("namespace"), self.meta.get("name"), code
                )
            if self.stopping:
                return
            await self._set_ready(False)
            await asyncio.sleep(backoff)  # crash-loop back-off, as the kubelet's
            backoff = min(backoff * 2, _MAX_BACKOFF_SECONDS)

    async def _probe_loop(self) -> None:
        """The readiness prober: every periodSeconds; failureThreshold failures make it unready."""
        probe = self.container.get("readinessProbe") or {}
        http_get = probe.get("httpGet")
        if not isinstance(http_get, dict):
            while not self.stopping:  # no probe: ready while the process runs
                await self._set_ready(self.process is not None and self.process.returncode is None)
                await asyncio.sleep(1.0)
            return
        port = http_get.get("port")
        url = f"http://{self.ip}:{port}{http_get.get('path', '/')}"
        period = float(probe.get("periodSeconds", 10))
        threshold = int(probe.get("failureThreshold", 3))
        timeout = float(probe.get("timeoutSeconds", 1))
        failures = 0
        async with httpx.AsyncClient(timeout=timeout) as prober:
            while not self.stopping:
                try:
                    passed = 200 <= (await prober.get(url)).status_code < 400
                except httpx.HTTPError:
                    passed = False
                failures = 0 if passed else failures + 1
                if passed:
                    await self._set_ready(True)
                elif failures >= threshold or not self.ready:
                    await self._set_ready(False)
                # The kubelet probes every periodSeconds; until the first pass, twice a second
                # (no startup probe is played, so readiness should not wait a whole period).
                await asyncio.sleep(period if self.ready else min(period, 0.5))

    async def _set_ready(self, ready: bool) -> None:
        if ready == self.ready:
            return
        meta = self.meta
        path = f"/api/v1/namespaces/{meta.get('namespace')}/pods/{meta.get('name')}"
        try:
            await self._patch_ready(path, ready)
        except httpx.HTTPError as exc:  # a busy apiserver: the next probe tries again
            log.warning("marking %s ready=%s: %s", path, ready, exc)

    async def _patch_ready(self, path: str, ready: bool) -> None:
        meta = self.meta
        current = await self.client.get(path)
        if current.status_code != 200:
            log.warning("reading %s: HTTP %s", path, current.status_code)
            return
        statuses = [
            dict(cs) for cs in current.json().get("status", {}).get("containerStatuses") or []
        ]
        for cs in statuses:
            if cs.get("name") == self.container.get("name"):
                cs["ready"] = ready
        # containerStatuses is atomic in a strategic merge patch: sent whole; the uid makes it a
        # no-op on a pod recreated under the same name.
        resp = await self.client.patch(
            f"{path}/status",
            json={"metadata": {"uid": meta.get("uid")}, "status": {"containerStatuses": statuses}},
            headers={"Content-Type": "application/strategic-merge-patch+json"},
        )
        if resp.status_code < 300:
            self.ready = ready
            log.info("%s ready=%s", path, ready)
        else:
            log.warning("marking %s ready=%s: HTTP %s", path, ready, resp.status_code)

    async def stop(self) -> None:
        self.stopping = True
        for task in self.tasks:
            if task is not asyncio.current_task():
                task.cancel()
        process = self.process
        if process is not None and process.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                process.send_signal(signal.SIGTERM)
            try:
                await asyncio.wait_for(process.wait(), _STOP_GRACE_SECONDS)
            except TimeoutError:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(process.pid, signal.SIGKILL)
                await process.wait()
        await asyncio.gather(*self.tasks, return_exceptions=True)
