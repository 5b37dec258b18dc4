"""Run kubesim inside tests and benchmarks: in the current event loop or in a background thread.

Why this exists: async tests want kubesim in their own loop (``run_kubesim``); sync tests and
kopf's ``KopfRunner`` (which runs its own loop in a thread) want it running on a loop of its own
in a background thread (``kubesim_in_thread``). Both bind a free loopback port and write a
kubeconfig under the test's temporary directory.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import os
import threading
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator, Sequence
from contextlib import asynccontextmanager, contextmanager
from pathlib import Path
from typing import Any, TypeVar

from kubesim.harness.cluster import KubeSim
from kubesim.http.faults import FaultConfig
from kubesim.node.kubelet import KubeletConfig
from kubesim.node.runtime import ContainerRuntimeFactory

__all__ = ["KubeSimThread", "kubeconfig_env", "kubesim_in_thread", "run_kubesim"]

T = TypeVar("T")


@contextmanager
def kubeconfig_env(path: Path) -> Iterator[None]:
    """Point ``KUBECONFIG`` (and the ``kubernetes`` client's default, which it reads once at
    import) at ``path`` for the duration; kopf's default login goes through that client."""
    saved = os.environ.get("KUBECONFIG")
    os.environ["KUBECONFIG"] = str(path)
    kube_config: Any = None
    saved_default: Any = None
    try:
        from kubernetes.config import kube_config as _kube_config

        kube_config = _kube_config
        saved_default = kube_config.KUBE_CONFIG_DEFAULT_LOCATION
        kube_config.KUBE_CONFIG_DEFAULT_LOCATION = str(path)
    except ImportError:  # the client library is optional
        pass
    try:
        yield
    finally:
        if saved is None:
            os.environ.pop("KUBECONFIG", None)
        else:
            os.environ["KUBECONFIG"] = saved
        if kube_config is not None:
            kube_config.KUBE_CONFIG_DEFAULT_LOCATION = saved_default


@asynccontextmanager
async def run_kubesim(
    tmp_path: Path,
    *,
    kubelet: KubeletConfig | None = None,
    faults: FaultConfig | None = None,
    run_kubelet: bool = True,
    container_runtimes: Sequence[ContainerRuntimeFactory] = (),
) -> AsyncIterator[KubeSim]:
    """Start kubesim in the running loop; yields it (``.kubeconfig``, ``.url``, ``.store``, ``.api``)."""
    sim = KubeSim(
        kubeconfig=tmp_path / "kubesim.kubeconfig",
        kubelet=kubelet,
        faults=faults,
        run_kubelet=run_kubelet,
        container_runtimes=container_runtimes,
    )
    await sim.start()
    try:
        yield sim
    finally:
        await sim.stop()


class KubeSimThread:
    """A kubesim on its own loop in a daemon thread; ``call`` runs a coroutine there."""

    def __init__(self, sim: KubeSim, loop: asyncio.AbstractEventLoop) -> None:
        self.sim = sim
        self.loop = loop

    @property
    def kubeconfig(self) -> Path:
        return self.sim.kubeconfig

    @property
    def url(self) -> str:
        return self.sim.url

    @property
    def store(self) -> Any:
        return self.sim.store

    @property
    def api(self) -> Any:
        return self.sim.api

    @property
    def faults(self) -> FaultConfig:
        """Rules may be added and cleared from the test's thread while kubesim runs."""
        return self.sim.faults

    def call(self, factory: Callable[[], Awaitable[T]], timeout: float = 30.0) -> T:
        async def run() -> T:
            return await factory()

        future: concurrent.futures.Future[T] = asyncio.run_coroutine_threadsafe(run(), self.loop)
        return future.result(timeout)

    def call_sync(self, fn: Callable[[], T], timeout: float = 30.0) -> T:
        """Run a plain function on kubesim's loop (the store is not thread-safe)."""

        async def run() -> T:
            return fn()

        return self.call(run, timeout)


@contextmanager
def kubesim_in_thread(
    tmp_path: Path,
    *,
    kubelet: KubeletConfig | None = None,
    faults: FaultConfig | None = None,
    run_kubelet: bool = True,
    container_runtimes: Sequence[ContainerRuntimeFactory] = (),
    before_start: Callable[[KubeSim], None] | None = None,
) -> Iterator[KubeSimThread]:
    """`before_start` sees the KubeSim before it serves (e.g. to wrap its request handler)."""
    started = threading.Event()
    holder: dict[str, Any] = {}

    async def main() -> None:
        stop = asyncio.Event()
        holder["loop"] = asyncio.get_running_loop()
        holder["stop"] = stop
        sim = KubeSim(
            kubeconfig=tmp_path / "kubesim.kubeconfig",
            kubelet=kubelet,
            faults=faults,
            run_kubelet=run_kubelet,
            container_runtimes=container_runtimes,
        )
        if before_start is not None:
            before_start(sim)
        try:
            await sim.start()
        except BaseException as exc:
            holder["error"] = exc
            started.set()
            raise
        holder["sim"] = sim
        started.set()
        try:
            await stop.wait()
        finally:
            await sim.stop()

    def run() -> None:
        # asyncio.run cancels and awaits leftover tasks before closing the loop: a task that is
        # garbage-collected later, in another thread, would log from a finalizer.
        with contextlib.suppress(BaseException):
            asyncio.run(main())

    thread = threading.Thread(target=run, name="kubesim", daemon=True)
    thread.start()
    started.wait(30)
    if "error" in holder:
        raise RuntimeError("kubesim failed to start") from holder["error"]
    try:
        yield KubeSimThread(holder["sim"], holder["loop"])
    finally:
        holder["loop"].call_soon_threadsafe(holder["stop"].set)
        thread.join(30)
