"""Informers: one list + watch stream per resource (well pods, inventory ConfigMaps), feeding
the reconciler.

Why not a kopf handler for pods: kopf processes every event through its cause detection,
which deep-copies the body to build a diff-base and progress records; at 10,000 pods that was
the operator's largest CPU cost (see docs/benchmarks.md). Well pods need none of it: only the
latest state of each pod. This informer does what client-go's reflector does: list, then watch
from the list's resourceVersion with bookmarks, re-watch when the server ends the stream, and
re-list on 410 Gone; the label selector is applied by the server, so unrelated pods cost nothing.

ConfigMaps carry no label of ours (`kubectl create configmap --from-file` adds none, and asking
users to label their inventories is one more step to forget), so their informer watches the
namespace's ConfigMaps and the reconciler keeps only those a fleet references.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import aiohttp

from modelfleet.io.kube import KubeApiError, KubeClient
from modelfleet.logic.wellpod import LABEL_DEPLOYMENT

logger = logging.getLogger("modelfleet.io.informer")

EventSink = Callable[[str, Mapping[str, Any]], None]
ResyncSink = Callable[[str | None, Sequence[Mapping[str, Any]]], None]


class Informer:
    """List + watch of one core/v1 resource in one namespace (or all of them)."""

    resource = ""
    label_selector: str | None = None
    #: Fleets are planned only once this informer has listed (see handlers.build_registry).
    required_before_planning = True

    def __init__(
        self,
        client: KubeClient,
        namespace: str | None,
        on_event: EventSink,
        on_resync: ResyncSink,
        *,
        watch_timeout: int = 300,
    ) -> None:
        self.client = client
        self.namespace = namespace
        self.on_event = on_event
        self.on_resync = on_resync
        self.watch_timeout = watch_timeout
        self.synced = asyncio.Event()
        self._resource_version: str | None = None
        self.path = (
            f"/api/v1/namespaces/{namespace}/{self.resource}"
            if namespace
            else f"/api/v1/{self.resource}"
        )

    async def run(self) -> None:
        backoff = 0.1
        while True:
            before = self._resource_version
            try:
                if self._resource_version is None:
                    items, self._resource_version = await self.client.list_with_version(
                        self.path, self.resource, label_selector=self.label_selector
                    )
                    self.on_resync(self.namespace, items)
                    self.synced.set()
                await self._follow()
                backoff = 0.1
            except asyncio.CancelledError:
                raise
            except _Expired:
                logger.info("%s watch expired (410 Gone); re-listing", self.resource)
                self._resource_version = None
            except (KubeApiError, aiohttp.ClientError, TimeoutError, ValueError) as exc:
                if self._resource_version != before:
                    backoff = 0.1  # the stream delivered before it broke: not a failing server
                logger.warning(
                    "%s watch interrupted: %s; resuming in %.1fs", self.resource, exc, backoff
                )
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, 5.0)
                if isinstance(exc, KubeApiError) and exc.code == 410:
                    self._resource_version = None

    async def _follow(self) -> None:
        assert self._resource_version is not None
        async for event in self.client.watch(
            self.path,
            self.resource,
            resource_version=self._resource_version,
            label_selector=self.label_selector,
            timeout_seconds=self.watch_timeout,
        ):
            kind, obj = event.get("type"), event.get("object") or {}
            if kind == "ERROR":
                if obj.get("code") == 410:
                    raise _Expired()
                raise KubeApiError(
                    int(obj.get("code") or 500), obj.get("reason", ""), obj.get("message", "")
                )
            rv = (obj.get("metadata") or {}).get("resourceVersion")
            if rv:
                self._resource_version = rv
            if kind != "BOOKMARK":
                self.on_event(str(kind), obj)


class PodInformer(Informer):
    """Well pods only: the server filters on the deployment label."""

    resource = "pods"
    label_selector = LABEL_DEPLOYMENT


class ConfigMapInformer(Informer):
    """The namespace's ConfigMaps; the reconciler keeps those a fleet reads its inventory from."""

    resource = "configmaps"
    # Not awaited before planning: a reference the cache lacks is read with a GET, so fleets
    # without inventories never wait on this watch (nor on its RBAC, during an upgrade).
    required_before_planning = False


class _Expired(Exception):
    """The watch's resourceVersion fell out of the server's history window."""
