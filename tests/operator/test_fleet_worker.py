"""The control loop with a fake executor and a fake clock: what a reconcile writes, what a
fleet that cannot be planned reports, and what a deleted fleet leaves behind (nothing).

No API server and no monkey-patching: FleetReconciler takes any ApiExecutor.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from prometheus_client import REGISTRY

from modelfleet.api.spec import RuntimeSpec
from modelfleet.control.reconciler import FleetReconciler
from modelfleet.io.execution import ActionOutcome, FleetRef
from modelfleet.logic.actions import Action, ConfirmBundle, CreatePod
from modelfleet.logic.fleet_status import rfc3339
from modelfleet.logic.planning import NOT_READY_PROBE_SECONDS
from modelfleet.logic.revisions import Revision
from modelfleet.logic.wellpod import LABEL_DEPLOYMENT, LABEL_WELL, WellPod, desired_pod

NAMESPACE = "fleet-worker-test"


class FakeExecutor:
    """Records every write; status writes are stored and answered like the apiserver's."""

    def __init__(self) -> None:
        self.fleets: dict[str, dict[str, Any]] = {}  # as stored, by name
        self.started: list[Action] = []
        self.statuses: list[Mapping[str, Any]] = []
        self.events: list[tuple[str, str, str]] = []
        self.revisions: dict[str, dict[str, Any]] = {}
        self._rv = 100

    async def execute(
        self,
        fleet: FleetRef,
        actions: Sequence[Action],
        runtime: Mapping[str, RuntimeSpec],
        pods: Mapping[str, WellPod],
        on_done: Callable[[Action, ActionOutcome], None],
    ) -> None:
        for action in actions:
            self.started.append(action)
            on_done(action, ActionOutcome(stored=[], gone=[]))

    async def ensure_service(self, fleet: FleetRef, port: int) -> None:
        return None

    async def list_revisions(self, fleet: FleetRef) -> dict[str, dict[str, Any]]:
        return dict(self.revisions)

    async def record_revision(
        self, fleet: FleetRef, revision: Revision, number: int
    ) -> dict[str, Any]:
        body = {"metadata": {"name": f"{fleet.name}-{revision.name}"}, "data": revision.data()}
        self.revisions[revision.name] = {**body, "revision": number}
        return self.revisions[revision.name]

    async def delete_revision(self, fleet: FleetRef, name: str) -> None:
        return None

    async def write_status(self, fleet: FleetRef, status: Mapping[str, Any]) -> dict[str, Any]:
        self._rv += 1
        self.statuses.append(status)
        stored = self.fleets[fleet.name]
        stored = {**stored, "metadata": {**stored["metadata"], "resourceVersion": str(self._rv)}}
        self.fleets[fleet.name] = {**stored, "status": dict(status)}
        return self.fleets[fleet.name]

    async def post_event(self, fleet: FleetRef, etype: str, reason: str, message: str) -> None:
        self.events.append((etype, reason, message))

    async def read_config_map(self, namespace: str, name: str) -> dict[str, Any] | None:
        return None


def apply(loop: FleetReconciler, executor: FakeExecutor, body: dict[str, Any]) -> None:
    """What `kubectl apply` and the watch do: stored, then observed."""
    executor.fleets[body["metadata"]["name"]] = body
    loop.observe_deployment("ADDED", body)


def deployment(name: str, spec: Mapping[str, Any], rv: int = 1) -> dict[str, Any]:
    return {
        "metadata": {
            "namespace": NAMESPACE,
            "name": name,
            "uid": f"uid-{name}",
            "resourceVersion": str(rv),
            "generation": 1,
        },
        "spec": dict(spec),
    }


GOOD_SPEC = {
    "model": {"name": "esp", "version": "1.0.0", "bundleUri": "file:///b/{version}/{well}/"},
    "wells": [{"id": "w1"}, {"id": "w2"}, {"id": "w3"}],
}


def phase_series(name: str) -> dict[str, float]:
    series = {}
    for metric in REGISTRY.collect():
        if metric.name == "modelfleet_operator_fleet_phase":
            for sample in metric.samples:
                labels = sample.labels
                if labels["namespace"] == NAMESPACE and labels["deployment"] == name:
                    series[labels["phase"]] = sample.value
    return series


def fake_clock() -> float:
    return 1_000_000.0


async def test_a_reconcile_creates_every_missing_pod_and_writes_status_once() -> None:
    executor = FakeExecutor()
    loop = FleetReconciler(executor, clock=fake_clock)
    apply(loop, executor, deployment("esp", GOOD_SPEC))
    worker = loop.workers[(NAMESPACE, "esp")]
    await worker.reconcile()
    await worker.drain()
    await loop.shutdown()
    created = sorted(a.target.well for a in executor.started if isinstance(a, CreatePod))
    assert created == ["w1", "w2", "w3"]
    assert len(executor.statuses) == 1 and executor.statuses[0]["wells"] == 3


async def test_a_spec_that_fails_validation_is_degraded_in_status_with_a_warning_event() -> None:
    executor = FakeExecutor()
    loop = FleetReconciler(executor, clock=fake_clock)
    bad = {**GOOD_SPEC, "rollout": {"maxUnavailable": "ten percent"}}
    apply(loop, executor, deployment("bad", bad))
    worker = loop.workers[(NAMESPACE, "bad")]
    await worker.reconcile()
    (status,) = executor.statuses
    degraded = next(c for c in status["conditions"] if c["type"] == "Degraded")
    assert degraded["status"] == "True" and degraded["reason"] == "SpecInvalid"
    assert "spec.rollout.maxUnavailable" in degraded["message"]
    assert status["phase"] == "Degraded"
    assert [(t, r) for t, r, _ in executor.events] == [("Warning", "SpecInvalid")]
    assert executor.started == [], "no pod is touched while the spec is invalid"
    await worker.reconcile()  # the same error again: no second write, no second event
    assert len(executor.statuses) == 1 and len(executor.events) == 1
    await loop.shutdown()


async def test_a_deleted_fleet_takes_its_phase_series_with_it() -> None:
    executor = FakeExecutor()
    loop = FleetReconciler(executor, clock=fake_clock)
    apply(loop, executor, deployment("gone", GOOD_SPEC))
    await loop.workers[(NAMESPACE, "gone")].reconcile()
    assert phase_series("gone"), "the phase was exported"
    loop.observe_deployment("DELETED", deployment("gone", GOOD_SPEC))
    assert phase_series("gone") == {}
    assert (NAMESPACE, "gone") not in loop.workers
    await loop.shutdown()


def pod_body(fleet: str, well: str, uid: str) -> dict[str, Any]:
    return {
        "metadata": {
            "namespace": NAMESPACE,
            "name": f"{fleet}-{well}",
            "uid": uid,
            "resourceVersion": "7",
            "labels": {LABEL_DEPLOYMENT: fleet, LABEL_WELL: well},
        },
        "spec": {},
        "status": {"phase": "Running"},
    }


async def test_pod_events_of_a_deleted_fleet_leave_no_memory_behind() -> None:
    loop = FleetReconciler(FakeExecutor(), clock=fake_clock)
    loop.observe_deployment("ADDED", deployment("old", GOOD_SPEC))
    loop.observe_pod("ADDED", pod_body("old", "w1", "p1"))
    loop.observe_deployment("DELETED", deployment("old", GOOD_SPEC))
    # Garbage collection: the pod is updated (terminating), then deleted.
    loop.observe_pod("MODIFIED", pod_body("old", "w1", "p1"))
    loop.observe_pod("DELETED", pod_body("old", "w1", "p1"))
    assert loop.cache.fleets == {}
    await loop.shutdown()


async def test_a_pod_a_write_found_gone_is_not_brought_back_by_an_older_watch_event() -> None:
    # A real apiserver's DELETE answer can arrive before the watch has delivered the pod's
    # last update from before the deletion; that stale event must not count the well as
    # having its (Ready) pod again: the budget would be over by one.
    loop = FleetReconciler(FakeExecutor(), clock=fake_clock)
    loop.observe_deployment("ADDED", deployment("esp", GOOD_SPEC))
    loop.observe_pod("ADDED", pod_body("esp", "w1", "p1"))
    loop.cache.forget_pod((NAMESPACE, "esp"), "w1")
    loop.observe_pod("MODIFIED", pod_body("esp", "w1", "p1"))
    assert "w1" not in loop.cache.fleets[(NAMESPACE, "esp")].pods
    # Its replacement (another uid) is seen as usual.
    loop.observe_pod("ADDED", pod_body("esp", "w1", "p2"))
    assert loop.cache.fleets[(NAMESPACE, "esp")].pods["w1"].pod.uid == "p2"
    await loop.shutdown()


class SlowApiExecutor(FakeExecutor):
    """An apiserver that takes its time to list revisions."""

    latency = 0.3

    async def list_revisions(self, fleet: FleetRef) -> dict[str, dict[str, Any]]:
        await asyncio.sleep(self.latency)  # the apiserver's latency, not the operator's work
        return await super().list_revisions(fleet)


async def test_planning_time_counts_the_operators_work_not_the_apiservers_latency() -> None:
    executor = SlowApiExecutor()
    loop = FleetReconciler(executor, clock=fake_clock)
    apply(loop, executor, deployment("slow", GOOD_SPEC))
    worker = loop.workers[(NAMESPACE, "slow")]
    await worker.reconcile()
    assert 0 <= worker.planning_seconds < SlowApiExecutor.latency
    await loop.shutdown()


class PodStoringExecutor(FakeExecutor):
    """Creates pods as the apiserver stores them (Pending); every bundle confirmation is
    inconclusive (the runtime has nothing to report yet)."""

    def __init__(self) -> None:
        super().__init__()
        self.pods: dict[str, dict[str, Any]] = {}

    async def execute(
        self,
        fleet: FleetRef,
        actions: Sequence[Action],
        runtime: Mapping[str, RuntimeSpec],
        pods: Mapping[str, WellPod],
        on_done: Callable[[Action, ActionOutcome], None],
    ) -> None:
        for action in actions:
            self.started.append(action)
            outcome = ActionOutcome(stored=[], gone=[])
            if isinstance(action, CreatePod):
                body = desired_pod(
                    deployment=fleet.name,
                    deployment_uid=fleet.uid,
                    target=action.target,
                    runtime=runtime[action.target.revision],
                )
                body["metadata"].update(
                    namespace=NAMESPACE, uid=f"uid-{action.target.well}", resourceVersion="10"
                )
                body["status"] = {"phase": "Pending"}
                self.pods[action.target.well] = body
                outcome.stored.append(body)
            elif isinstance(action, ConfirmBundle):
                outcome.inconclusive = 1
            on_done(action, outcome)


class SteppedClock:
    def __init__(self, now: float) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def running(pod: dict[str, Any], rv: int, started: float, ready: bool) -> dict[str, Any]:
    """The pod as the kubelet reports it: started, with an IP, its runtime ready or not."""
    stamp = rfc3339(started)
    return {
        **pod,
        "metadata": {**pod["metadata"], "resourceVersion": str(rv)},
        "status": {
            "phase": "Running",
            "podIP": "10.244.0.7",
            "startTime": stamp,
            "containerStatuses": [
                {"name": "runtime", "ready": ready, "state": {"running": {"startedAt": stamp}}}
            ],
        },
    }


async def test_a_runtime_asked_before_it_was_ready_is_asked_again_once_it_is_ready() -> None:
    # A runtime unready for NOT_READY_PROBE_SECONDS is asked (it may have refused its bundle);
    # an empty answer holds the well that long again, but its readiness ends the wait at once.
    clock = SteppedClock(1_000_000.0)
    executor = PodStoringExecutor()
    loop = FleetReconciler(executor, clock=clock)
    loop.pods_synced.set()
    apply(loop, executor, deployment("esp", {**GOOD_SPEC, "wells": [{"id": "w1"}]}))
    worker = loop.workers[(NAMESPACE, "esp")]
    await worker.reconcile()
    await worker.drain()
    pod = executor.pods["w1"]

    def confirms() -> int:
        return sum(isinstance(a, ConfirmBundle) for a in executor.started)

    started = clock.now
    loop.observe_pod("MODIFIED", running(pod, 11, started, ready=False))
    await worker.reconcile()
    assert confirms() == 0, "a runtime just started and not ready is not asked"
    clock.now = started + NOT_READY_PROBE_SECONDS
    await worker.reconcile()
    await worker.drain()
    assert confirms() == 1, "unready for NOT_READY_PROBE_SECONDS: asked"
    clock.now += NOT_READY_PROBE_SECONDS / 2
    await worker.reconcile()
    await worker.drain()
    assert confirms() == 1, "still unready: not asked again before the hold ends"
    loop.observe_pod("MODIFIED", running(pod, 12, started, ready=True))
    await asyncio.sleep(0)  # the reaction's batch starts on the next loop iteration
    await worker.drain()
    assert confirms() == 2, "ready: asked at once, without waiting for the hold"
    await loop.shutdown()
