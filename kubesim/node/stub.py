"""The ``stub`` container runtime: nothing runs in the pod; its containers are ready once started.

Why this exists: most pods in a simulated cluster only need a lifecycle the API shows (phase,
conditions, readiness gates, restarts), not a program behind it; a stub costs a few bytes a pod,
so 10,000 of them come up in seconds. The pod proxy reaches nothing, as on a cluster where
nothing listens on the pod's port.
"""

from __future__ import annotations

from kubesim.node.runtime import (
    PodContainers,
    PodObject,
    PodSlot,
    PodUnreachable,
    ProxyAnswer,
    ProxyRequest,
)

__all__ = ["StubRuntime"]


class StubContainers:
    __slots__ = ("_pod_name",)

    def __init__(self, pod_name: str) -> None:
        self._pod_name = pod_name

    async def start(self, pod: PodObject) -> None:
        return None

    def running(self) -> bool:
        return True

    def ready(self, pod: PodObject) -> bool:
        return True

    @property
    def restarts(self) -> int:
        return 0

    def refresh(self, pod: PodObject) -> None:
        return None

    async def proxy(self, request: ProxyRequest) -> ProxyAnswer:
        raise PodUnreachable(
            f"error trying to reach service: nothing listens in pod {self._pod_name} "
            "(kubesim's stub container runtime runs no program)"
        )

    def log(self) -> bytes:
        return b""

    @property
    def lingers(self) -> bool:
        return False

    async def stop(self, grace_seconds: float) -> None:
        return None


class StubRuntime:
    """Runs every pod it is asked about: the kubelet asks it last."""

    @property
    def name(self) -> str:
        return "stub"

    def runs(self, pod: PodObject) -> bool:
        return True

    def create(self, slot: PodSlot, pod: PodObject) -> PodContainers:
        return StubContainers(slot.name)

    async def close(self) -> None:
        return None
