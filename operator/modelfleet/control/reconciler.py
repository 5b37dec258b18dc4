"""The operator's control loop: the watch cache, one worker per ModelDeployment, the input
gatherer and the status publisher, wired together.

Watch events (kopf's for ModelDeployments, our informers' for pods and inventory ConfigMaps)
only update the cache; the cache tells this loop which fleet changed (wake its worker, which
reconciles once for a whole burst) and which well (run the worker's reaction for it). 10,000 pod
events cause a handful of plans, not 10,000.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Mapping, Sequence
from typing import Any

from modelfleet.control.cache import FleetKey, WatchCache
from modelfleet.control.executor import ApiExecutor, Clock
from modelfleet.control.inputs import InputGatherer
from modelfleet.control.monitoring import FleetMonitor, PrometheusQuerier, forget_fleet_series
from modelfleet.control.publisher import StatusPublisher
from modelfleet.control.worker import FleetWorker


class FleetReconciler:
    def __init__(
        self,
        executor: ApiExecutor,
        clock: Clock = time.time,
        prometheus: PrometheusQuerier | None = None,
    ) -> None:
        self.executor = executor
        self.clock = clock
        self.prometheus = prometheus  # None: spec.monitoring is not acted on
        self.cache = WatchCache(self)
        self.gatherer = InputGatherer(executor, self.cache)
        self.publisher = StatusPublisher(executor, self.cache, clock)
        self.workers: dict[FleetKey, FleetWorker] = {}
        # Set once the pod cache has been filled from a list: planning before that would see
        # every well as missing.
        self.pods_synced = asyncio.Event()

    # ---------------------------------------------------------------- watch events in
    def observe_deployment(self, event_type: str, body: Mapping[str, Any]) -> None:
        self.cache.observe_deployment(event_type, body)

    def observe_pod(self, event_type: str, body: Mapping[str, Any]) -> None:
        self.cache.observe_pod(event_type, body)

    def resync_pods(self, namespace: str | None, bodies: Sequence[Mapping[str, Any]]) -> None:
        self.cache.resync_pods(namespace, bodies)

    def observe_config_map(self, event_type: str, body: Mapping[str, Any]) -> None:
        self.cache.observe_config_map(event_type, body)

    def resync_config_maps(
        self, namespace: str | None, bodies: Sequence[Mapping[str, Any]]
    ) -> None:
        self.cache.resync_config_maps(namespace, bodies)

    # ------------------------------------------------------------ the cache's listener
    def worker(self, key: FleetKey) -> FleetWorker:
        worker = self.workers.get(key)
        if worker is None:
            monitor = (
                FleetMonitor(key, self.prometheus, self.clock, lambda: self.fleet_changed(key))
                if self.prometheus is not None
                else None
            )
            worker = FleetWorker(
                key,
                self.cache,
                self.gatherer,
                self.publisher,
                self.executor,
                self.clock,
                self.pods_synced,
                monitor,
            )
            self.workers[key] = worker
        return worker

    def fleet_changed(self, key: FleetKey) -> None:
        self.worker(key).wake()

    def well_changed(self, key: FleetKey, well: str) -> None:
        worker = self.workers.get(key)
        if worker is not None:
            worker.react(well)

    def inventory_changed(self, key: FleetKey) -> None:
        worker = self.worker(key)
        worker.invalidate_plan()
        worker.wake()

    def fleet_deleted(self, key: FleetKey) -> None:
        worker = self.workers.pop(key, None)
        if worker is not None:
            worker.cancel()
        self.gatherer.forget(key)
        self.publisher.forget(key)
        forget_fleet_series(*key)

    async def shutdown(self) -> None:
        """Stop every fleet worker (kopf would otherwise wait for them as hung tasks)."""
        tasks = [t for w in self.workers.values() for t in w.tasks()]
        for worker in self.workers.values():
            worker.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
