"""One running kubesim: API semantics, garbage collector, kubelet and the HTTP server, together.

Why this exists: the CLI, the test fixtures and the benchmarks all need the same assembly with
the same start and stop order (the HTTP server last up and first down, the kubelet's processes
stopped before the loop ends). ``KubeSim`` is that assembly.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
from collections.abc import Sequence
from pathlib import Path

from aiohttp import web

from kubesim.core.apiserver import ApiServer
from kubesim.core.gc import GarbageCollector
from kubesim.core.store import Store
from kubesim.harness.kubeconfig import write_kubeconfig
from kubesim.http.faults import FaultConfig
from kubesim.http.server import HttpConfig, KubeHttp, build_app
from kubesim.node.kubelet import Kubelet, KubeletConfig
from kubesim.node.runtime import ContainerRuntimeFactory

__all__ = ["KubeSim"]


class KubeSim:
    """Start with ``await start()``, stop with ``await stop()``; ``url`` and ``kubeconfig`` after start.

    ``container_runtimes`` are the kubelet's plugins for what runs in pods (``kubesim.node.runtime``).
    """

    def __init__(
        self,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        kubeconfig: Path | None = None,
        kubelet: KubeletConfig | None = None,
        run_kubelet: bool = True,
        container_runtimes: Sequence[ContainerRuntimeFactory] = (),
        faults: FaultConfig | None = None,
        http: HttpConfig | None = None,
        history_size: int = 50_000,
    ) -> None:
        if not (host.startswith("127.") or host in ("localhost", "::1")):
            raise ValueError(f"kubesim serves on loopback only, not {host!r}")
        self.host = host
        self.port = port
        self.kubeconfig_path = kubeconfig
        self.faults = faults or FaultConfig()
        self.api = ApiServer(Store(history_size=history_size))
        self.gc = GarbageCollector(self.api)
        self.kubelet = Kubelet(self.api, kubelet, container_runtimes) if run_kubelet else None
        self.http = KubeHttp(
            self.api, self.faults, http or HttpConfig(), lambda: f"{self.host}:{self.port}"
        )
        if self.kubelet is not None:
            self.http.pod_proxy = self.kubelet.proxy
            self.http.pod_log = self.kubelet.pod_log
        self._runner: web.AppRunner | None = None

    @property
    def store(self) -> Store:
        return self.api.store

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    @property
    def kubeconfig(self) -> Path:
        if self.kubeconfig_path is None:
            raise RuntimeError("kubesim was started without a kubeconfig path")
        return self.kubeconfig_path

    async def start(self) -> None:
        self.gc.start()
        if self.kubelet is not None:
            self.kubelet.start()
        app = build_app(self.http)
        self._runner = web.AppRunner(
            app, access_log=None, handle_signals=False, shutdown_timeout=1.0
        )
        await self._runner.setup()
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((self.host, self.port))
        self.port = sock.getsockname()[1]
        site = web.SockSite(self._runner, sock, backlog=1024)
        await site.start()
        if self.kubeconfig_path is not None:
            write_kubeconfig(self.kubeconfig_path, self.url)

    async def stop(self) -> None:
        self.http.close_watches()
        await asyncio.sleep(0)
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None
        if self.kubelet is not None:
            await self.kubelet.stop()
        await self.gc.stop()

    async def settle(self, timeout: float = 5.0) -> None:
        """Wait until the kubelet and the garbage collector have no queued work."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while loop.time() < deadline:
            if self.gc.idle() and (self.kubelet is None or self.kubelet.idle()):
                await asyncio.sleep(0.01)
                if self.gc.idle() and (self.kubelet is None or self.kubelet.idle()):
                    return
            await asyncio.sleep(0.01)

    async def serve_forever(self, stop: asyncio.Event) -> None:
        await self.start()
        try:
            await stop.wait()
        finally:
            with contextlib.suppress(Exception):
                await self.stop()
