"""The kopf layer: watches feed the reconciler; nothing else happens here.

Only `@kopf.on.event` handlers are used. They keep no per-object state in annotations (no
diff-base, no progress records), which matters because a ModelDeployment with 10,000 wells
would overflow kopf's last-handled-configuration annotation (256 KiB limit; nolar/kopf#1087).
The operator's own state is the resource's status and its ControllerRevisions.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from typing import Any

import kopf

from modelfleet.api.spec import GROUP, PLURAL, VERSION
from modelfleet.control.reconciler import FleetReconciler
from modelfleet.io.informer import Informer


def build_registry(
    reconciler: FleetReconciler, informers: Sequence[Informer]
) -> kopf.OperatorRegistry:
    """kopf watches ModelDeployments; our informers watch pods and inventory ConfigMaps (see
    informer.py for why). Fleets are planned only once the pod informers have listed: before
    that a fleet would see its wells' pods as missing."""
    registry = kopf.OperatorRegistry()

    @kopf.on.event(GROUP, VERSION, PLURAL, registry=registry)  # type: ignore[arg-type]
    async def deployment_event(event: dict[str, Any], **_: Any) -> None:
        reconciler.observe_deployment(event["type"], event["object"])

    informer_tasks: list[asyncio.Task[None]] = []

    @kopf.on.startup(registry=registry)
    async def start(settings: kopf.OperatorSettings, **_: Any) -> None:
        configure_kopf(settings)
        for informer in informers:
            informer_tasks.append(
                asyncio.create_task(informer.run(), name=f"{informer.resource} informer")
            )

        async def all_synced() -> None:
            await asyncio.gather(
                *(i.synced.wait() for i in informers if i.required_before_planning)
            )
            reconciler.pods_synced.set()

        informer_tasks.append(asyncio.create_task(all_synced()))

    @kopf.on.cleanup(registry=registry)
    async def stop(**_: Any) -> None:
        for task in informer_tasks:
            task.cancel()
        await asyncio.gather(*informer_tasks, return_exceptions=True)
        await reconciler.shutdown()

    return registry


class NoDiffBase(kopf.DiffBaseStorage):
    """kopf builds every event's "essence" (a deep copy of the body) to diff it for change
    handlers. We have none, and a 10,000-well ModelDeployment made that 12% of the operator's
    CPU while a fleet came up (one event per status write): nothing is built or stored."""

    def build(self, *, body: kopf.Body, extra_fields: Any = None) -> kopf.BodyEssence:
        return kopf.BodyEssence()

    def fetch(self, *, body: kopf.Body) -> kopf.BodyEssence | None:
        return None

    def store(self, *, body: kopf.Body, patch: kopf.Patch, essence: kopf.BodyEssence) -> None:
        return None


def configure_kopf(settings: kopf.OperatorSettings) -> None:
    # We post our own fleet-level Events; kopf's per-handler events would be one per pod.
    settings.posting.enabled = False
    # No change handlers: nothing for kopf to persist on our objects.
    settings.persistence.diffbase_storage = NoDiffBase()
    settings.persistence.finalizer = "modelfleet.dev/kopf-finalizer"
    settings.watching.server_timeout = 300
    settings.watching.client_timeout = 330
    settings.batching.worker_limit = None
    settings.batching.idle_timeout = 5.0
    settings.batching.batch_window = 0.05
    settings.batching.exit_timeout = 0.5  # event handlers hold no work worth waiting for
    logging.getLogger("kopf.objects").setLevel(logging.WARNING)
