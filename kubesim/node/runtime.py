"""The kubelet's container-runtime plugin interface: what runs inside a pod, behind one Protocol.

Why this exists: the kubelet owns a pod's lifecycle as the API shows it (binding, pod IP, phase,
conditions and readiness gates, delays, injected crash loops, grace periods, downward-API
timing); what runs inside the pod is a runtime's business. kubesim ships two runtimes, ``stub``
(nothing runs: containers are ready once started) and ``process`` (the first container's real
command as a local process), and a program embedding kubesim registers its own (for instance a
simulation of its server, cheap enough for thousands of pods) without kubesim knowing about it.

The kubelet asks each runtime in turn whether it ``runs`` a pod: ``process`` first when the
kubelet's ``run_selector`` is set, then the registered runtimes in registration order, then
``stub``, which runs every pod. Every method is called on the kubelet's event loop.
"""

from __future__ import annotations

from collections.abc import Callable, Coroutine, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

__all__ = [
    "ContainerRuntime",
    "ContainerRuntimeFactory",
    "PodContainers",
    "PodObject",
    "PodSlot",
    "PodUnreachable",
    "ProxyAnswer",
    "ProxyRequest",
]

#: A pod as stored: read it, never mutate it (the store shares it with every reader).
PodObject = Mapping[str, Any]


@dataclass(slots=True)
class PodSlot:
    """What the kubelet gives a runtime for one pod: who it is, where it lives, and the way back.

    Read-only for runtimes. Not frozen, and the directory not built, because the kubelet makes
    one per pod: at 10,000 pods a frozen dataclass and a Path join each cost more than the rest.
    """

    namespace: str
    name: str
    uid: str
    #: The pod IP (127.x, unique while the pod exists); a process pod must bind it.
    ip: str
    host_ip: str
    node_name: str
    #: The kubelet's directory for pods' host files.
    work_dir: Path
    #: The containers' state changed (running, ready, restarts): the kubelet rewrites the status.
    changed: Callable[[], None]
    #: Run background work that the kubelet cancels when it stops.
    spawn: Callable[[Coroutine[Any, Any, Any]], None]

    @property
    def directory(self) -> Path:
        """This pod's own host directory (not created; a runtime that needs one creates it)."""
        return self.work_dir / f"{self.namespace}_{self.name}_{self.uid[:8]}"


@dataclass(frozen=True)
class ProxyRequest:
    """One request through ``/api/v1/namespaces/{ns}/pods/{name}[:port]/proxy/{path}``."""

    method: str
    #: The ``:port`` of the URL (a number or a port name), "" when the URL names none.
    port: str
    #: Below ``/proxy/``, without the leading slash.
    path: str
    query: Mapping[str, str]
    headers: Mapping[str, str]
    body: bytes


@dataclass(frozen=True)
class ProxyAnswer:
    status: int
    body: bytes
    content_type: str = "application/json"


class PodUnreachable(Exception):
    """Nothing in the pod answers: the proxy answers 503 ServiceUnavailable with this message."""


class PodContainers(Protocol):
    """One pod's containers as a runtime runs them."""

    async def start(self, pod: PodObject) -> None:
        """Start the containers, once, when the kubelet's start delay has passed.

        A pod whose containers crash-loop by the kubelet's configuration is never started."""

    def running(self) -> bool:
        """The container is up (False after ``start``: CrashLoopBackOff, waiting to restart)."""

    def ready(self, pod: PodObject) -> bool:
        """Containers ready (ContainersReady; Ready also needs the pod's readiness gates)."""

    @property
    def restarts(self) -> int:
        """How often the container restarted (containerStatuses[].restartCount)."""

    def refresh(self, pod: PodObject) -> None:
        """The pod's labels or annotations changed; called ``annotation_refresh_delay`` later,
        when a real kubelet's periodic sync would rewrite the downward-API files."""

    async def proxy(self, request: ProxyRequest) -> ProxyAnswer:
        """Answer a pod-proxy request, or raise ``PodUnreachable``."""

    def log(self) -> bytes:
        """The container's log (``pods/{name}/log``)."""

    @property
    def lingers(self) -> bool:
        """Stopping takes time (a real process): a deleted pod stays until ``stop`` returns or
        its grace period ends. Without that, a deleted pod goes at once and ``stop`` is not
        awaited."""

    async def stop(self, grace_seconds: float) -> None:
        """Stop the containers: SIGTERM, then SIGKILL after ``grace_seconds``."""


class ContainerRuntime(Protocol):
    """A kind of container runtime; one instance per kubelet, one ``PodContainers`` per pod."""

    @property
    def name(self) -> str:
        """Shown in logs and errors."""

    def runs(self, pod: PodObject) -> bool:
        """Whether this runtime runs ``pod`` (asked once, when the kubelet first sees the pod)."""

    def create(self, slot: PodSlot, pod: PodObject) -> PodContainers:
        """The containers of a pod this runtime runs (not started yet)."""

    async def close(self) -> None:
        """The kubelet stops: release what the runtime holds (clients, caches)."""


#: Called once per kubelet (a runtime instance serves one kubesim), before its loop may run.
ContainerRuntimeFactory = Callable[[], ContainerRuntime]
