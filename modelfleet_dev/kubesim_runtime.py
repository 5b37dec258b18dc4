"""The simulated model runtime as a kubesim container runtime: what a well's pod runs on kubesim.

Why this exists: kubesim is a generic Kubernetes simulator and knows nothing of modelfleet; its
kubelet runs pods through container-runtime plugins. This plugs the product's simulated model
runtime (``modelfleet_dev.simulated_runtime``) into it for every pod of a well, so that the
operator's reads and nudges through the pod proxy get the real runtime's answers at 10,000 pods.
Registered by whoever starts kubesim for the product: ``local_cluster`` and ``python -m kubesim
serve --container-runtime`` (``PLUGIN``), the tests' and benchmarks' in-thread kubesims
(``container_runtimes=[SimulatedModelRuntime]``).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Final

from kubesim.node.runtime import PodContainers, PodObject, PodSlot, ProxyAnswer, ProxyRequest
from kubesim.wire.jsonwire import encode
from modelfleet.logic.wellpod import LABEL_WELL
from modelfleet_dev.simulated_runtime import (
    ManifestCache,
    SimulatedRuntime,
    requires_annotated_bundle,
)
from runtime_contract import BUNDLE_DIGEST_ANNOTATION, BUNDLE_URI_ANNOTATION

__all__ = ["PLUGIN", "SimulatedModelRuntime"]

#: ``python -m kubesim serve --container-runtime PLUGIN``.
PLUGIN: Final = f"{__name__}:SimulatedModelRuntime"


def _annotations(pod: PodObject) -> Mapping[str, str]:
    annotations: Mapping[str, str] = (pod.get("metadata") or {}).get("annotations") or {}
    return annotations


class _SimulatedPod:
    """One well pod: loads the bundle its annotations name at start and when they change."""

    __slots__ = ("_manifests", "_runtime", "_seen", "_slot")

    def __init__(
        self, manifests: ManifestCache, slot: PodSlot, well: str | None, *, strict: bool
    ) -> None:
        self._manifests = manifests
        self._slot = slot
        self._runtime = SimulatedRuntime(well, slot.changed, strict=strict)
        # The stored annotations at the last (re)load; stored objects are never mutated.
        self._seen: Mapping[str, str] = {}

    async def start(self, pod: PodObject) -> None:
        self._seen = annotations = _annotations(pod)
        uri = annotations.get(BUNDLE_URI_ANNOTATION)
        digest = annotations.get(BUNDLE_DIGEST_ANNOTATION)
        if uri and self._manifests.is_fast(uri):
            # Loaded before the first status write: the instant profile stays one write a pod.
            await self._runtime.load_annotated(self._manifests, uri, digest)
        elif uri:
            # A network fetch must not stall the kubelet for every other pod: the pod is Running
            # but not Ready until it completes (as a real runtime loading a bundle).
            self._slot.spawn(self._load_then_report(uri, digest))

    async def _load_then_report(self, uri: str, digest: str | None) -> None:
        await self._runtime.load_annotated(self._manifests, uri, digest)
        self._slot.changed()

    def running(self) -> bool:
        return True

    def ready(self, pod: PodObject) -> bool:
        return self._runtime.ready or BUNDLE_URI_ANNOTATION not in _annotations(pod)

    @property
    def restarts(self) -> int:
        return 0

    def refresh(self, pod: PodObject) -> None:
        annotations = _annotations(pod)
        if annotations == self._seen:  # only the labels changed: the runtime reads annotations
            return
        self._seen = annotations
        uri = annotations.get(BUNDLE_URI_ANNOTATION)
        if uri:
            digest = annotations.get(BUNDLE_DIGEST_ANNOTATION)
            self._slot.spawn(self._runtime.load_annotated(self._manifests, uri, digest))

    async def proxy(self, request: ProxyRequest) -> ProxyAnswer:
        status, body = await self._runtime.answer(
            self._manifests, request.method, request.path, request.body
        )
        return ProxyAnswer(status, encode(body))

    def log(self) -> bytes:
        return b""

    @property
    def lingers(self) -> bool:
        return False

    async def stop(self, grace_seconds: float) -> None:
        return None


class SimulatedModelRuntime:
    """Runs every pod that carries the operator's well label; one manifest cache for them all."""

    def __init__(self) -> None:
        self._manifests = ManifestCache()

    @property
    def name(self) -> str:
        return "modelfleet-simulated-runtime"

    def runs(self, pod: PodObject) -> bool:
        return LABEL_WELL in ((pod.get("metadata") or {}).get("labels") or {})

    def create(self, slot: PodSlot, pod: PodObject) -> PodContainers:
        labels: Mapping[str, str] = (pod.get("metadata") or {}).get("labels") or {}
        strict = requires_annotated_bundle(pod)
        return _SimulatedPod(self._manifests, slot, labels.get(LABEL_WELL), strict=strict)

    async def close(self) -> None:
        await self._manifests.close()
