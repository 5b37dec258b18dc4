"""The kopf layer: watches feed the reconciler; nothing else happens here.

Only `@kopf.on.event` handlers are used. They keep no per-object state in annotations (no
diff-base, no progress records), which matters because a ModelDeployment with 10,000 wells
would overflow kopf's last-handled-configuration annotation (256 KiB limit; nolar/kopf#1087).
The operator's own state is the resource's status and its ControllerRevisions.
"""

from __future__ import annotations

import logging
from typing import Any

import kopf

from modelfleet.reconciler import FleetReconciler
from modelfleet.spec import GROUP, PLURAL, VERSION
from modelfleet.wellpod import LABEL_DEPLOYMENT


def build_registry(reconciler: FleetReconciler) -> kopf.OperatorRegistry:
    registry = kopf.OperatorRegistry()

    @kopf.on.event(GROUP, VERSION, PLURAL, registry=registry)  # type: ignore[arg-type]
    async def deployment_event(event: dict[str, Any], **_: Any) -> None:
        reconciler.observe_deployment(event["type"], event["object"])

    @kopf.on.event(  # type: ignore[arg-type]
        "", "v1", "pods", labels={LABEL_DEPLOYMENT: kopf.PRESENT}, registry=registry
    )
    async def pod_event(event: dict[str, Any], **_: Any) -> None:
        reconciler.observe_pod(event["type"], event["object"])

    @kopf.on.cleanup(registry=registry)
    async def stop_workers(**_: Any) -> None:
        await reconciler.shutdown()

    @kopf.on.startup(registry=registry)
    async def configure(settings: kopf.OperatorSettings, **_: Any) -> None:
        configure_kopf(settings)

    return registry


def configure_kopf(settings: kopf.OperatorSettings) -> None:
    # We post our own fleet-level Events; kopf's per-handler events would be one per pod.
    settings.posting.enabled = False
    # No change handlers: nothing for kopf to persist on our objects.
    settings.persistence.finalizer = "modelfleet.dev/kopf-finalizer"
    settings.watching.server_timeout = 300
    settings.watching.client_timeout = 330
    settings.batching.worker_limit = None
    settings.batching.idle_timeout = 5.0
    settings.batching.batch_window = 0.05
    settings.batching.exit_timeout = 0.5  # event handlers hold no work worth waiting for
    logging.getLogger("kopf.objects").setLevel(logging.WARNING)
