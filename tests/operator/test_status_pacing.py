"""Status writes while a fleet converges (Progressing) or its writes are in flight: a change of
counts alone is written at most every COUNTS_INTERVAL_SECONDS, and the worker looks again when
it is due; anything else at once, and at rest (Available) every change at once.

A status write of a 10,000-well ModelDeployment costs the apiserver work for every inline well
(its validation rules iterate them), and a roll-out re-plans about twice a second: in the
kubesim bench that was 91 status writes in one roll-out where 74 had sufficed.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from modelfleet.api.spec import RuntimeSpec
from modelfleet.control.publisher import (
    COUNTS_INTERVAL_SECONDS,
    MAX_COUNTS_INTERVAL_SECONDS,
    counts_interval,
    only_counts_differ,
)
from modelfleet.control.reconciler import FleetReconciler
from modelfleet.control.worker import FleetWorker
from modelfleet.io.execution import ActionOutcome, FleetRef
from modelfleet.logic.actions import Action, ConfirmBundle
from modelfleet.logic.fleet_status import rfc3339
from modelfleet.logic.wellpod import BUNDLE_CONDITION, served_message
from runtime_contract import BUNDLE_URI_ANNOTATION, GateReason

from .test_fleet_worker import (
    GOOD_SPEC,
    NAMESPACE,
    PodStoringExecutor,
    SteppedClock,
    apply,
    deployment,
    running,
)


class HeldConfirmsExecutor(PodStoringExecutor):
    """Pods are created at once; bundle confirmations stay in flight until `release`, then
    end with the gate True (the pod as the apiserver stores it after the gate write)."""

    def __init__(self) -> None:
        super().__init__()
        self.release = asyncio.Event()

    async def execute(
        self,
        fleet: FleetRef,
        actions: Sequence[Action],
        runtime: Mapping[str, RuntimeSpec],
        pods: Mapping[str, Any],
        on_done: Callable[[Action, ActionOutcome], None],
    ) -> None:
        confirms = [a for a in actions if isinstance(a, ConfirmBundle)]
        await super().execute(
            fleet, [a for a in actions if a not in confirms], runtime, pods, on_done
        )
        if not confirms:
            return
        self.started.extend(confirms)
        await self.release.wait()
        for action in confirms:
            on_done(action, ActionOutcome(stored=[self.pods[action.well]], gone=[]))


async def settle() -> None:
    """Let the reactions' batches start (a call_soon, then the batch's task)."""
    for _ in range(5):
        await asyncio.sleep(0)


def serving(pod: dict[str, Any], rv: int, started: float) -> dict[str, Any]:
    """Running, its runtime ready and its gate True: the pod is Ready."""
    body = running(pod, rv, started, ready=True)
    uri = body["metadata"]["annotations"][BUNDLE_URI_ANNOTATION]
    stamp = rfc3339(started)
    body["status"]["conditions"] = [
        {"type": "ContainersReady", "status": "True", "lastTransitionTime": stamp},
        {"type": "Ready", "status": "True", "lastTransitionTime": stamp},
        {
            "type": BUNDLE_CONDITION,
            "status": "True",
            "reason": GateReason.BUNDLE_SERVED.value,
            "message": served_message("sha256:" + "0" * 64, uri),
            "lastTransitionTime": stamp,
        },
    ]
    return body


async def first_pass(
    executor: PodStoringExecutor, spec: Mapping[str, Any]
) -> tuple[SteppedClock, FleetReconciler, FleetWorker]:
    """The fleet applied and its first pass done: its pods created, its first status written."""
    clock = SteppedClock(1_000_000.0)
    loop = FleetReconciler(executor, clock=clock)
    loop.pods_synced.set()
    apply(loop, executor, deployment("esp", spec))
    worker = loop.workers[(NAMESPACE, "esp")]
    await worker.reconcile()
    await worker.drain()
    return clock, loop, worker


FOUR_WELLS = {**GOOD_SPEC, "wells": [{"id": f"w{i}"} for i in range(1, 5)]}


async def test_counts_alone_wait_for_the_interval_while_writes_are_in_flight() -> None:
    executor = HeldConfirmsExecutor()
    clock, loop, worker = await first_pass(executor, FOUR_WELLS)
    assert len(executor.statuses) == 1, "the roll-out's first status is written at once"
    started = clock.now
    for rv, pod in enumerate(executor.pods.values(), start=20):
        loop.observe_pod("MODIFIED", running(pod, rv, started, ready=True))
    await settle()  # the reactions start the four confirmations: held in flight
    assert sum(isinstance(a, ConfirmBundle) for a in executor.started) == 4
    assert worker.motion.in_flight

    # w1 becomes Ready: the phase moves (Pending -> Progressing), written at once.
    loop.observe_pod("MODIFIED", serving(executor.pods["w1"], 30, started))
    await worker.reconcile()
    assert [s["phase"] for s in executor.statuses] == ["Pending", "Progressing"]

    # w2 becomes Ready 0.5 s later: only the counts move, so the write waits.
    loop.observe_pod("MODIFIED", serving(executor.pods["w2"], 31, started))
    clock.now += COUNTS_INTERVAL_SECONDS / 2
    await worker.reconcile()
    assert len(executor.statuses) == 2, "a change of counts alone waits"

    # The interval has passed: the counts are written, once.
    clock.now += COUNTS_INTERVAL_SECONDS / 2
    await worker.reconcile()
    assert len(executor.statuses) == 3 and executor.statuses[-1]["readyWells"] == 2
    assert only_counts_differ(executor.statuses[-1], executor.statuses[-2])
    await worker.reconcile()
    assert len(executor.statuses) == 3, "nothing new: nothing written"

    # Every confirmation ends (the gates True): the status that shows the roll-out complete
    # is written at once, in the same interval.
    for rv, well in enumerate(sorted(executor.pods), start=40):
        executor.pods[well] = serving(executor.pods[well], rv, started)
    executor.release.set()
    await asyncio.wait_for(worker.drain(), timeout=10)
    assert not worker.motion.in_flight
    await worker.reconcile()
    final = executor.statuses[-1]
    assert len(executor.statuses) == 4
    assert final["readyWells"] == 4 and final["phase"] == "Available"
    await loop.shutdown()


async def test_counts_alone_wait_while_progressing_with_nothing_in_flight_and_at_rest_do_not() -> (
    None
):
    """The tail of a first start: every pod created, the fleet Progressing, pods turning Ready
    one by one. A 1,000-well apply wrote 31 statuses, most of them in that tail."""
    executor = PodStoringExecutor()
    clock, loop, worker = await first_pass(executor, FOUR_WELLS)
    started = clock.now
    loop.observe_pod("MODIFIED", serving(executor.pods["w1"], 30, started))
    await worker.reconcile()
    assert executor.statuses[-1]["phase"] == "Progressing"
    written = len(executor.statuses)

    loop.observe_pod("MODIFIED", serving(executor.pods["w2"], 31, started))
    clock.now += COUNTS_INTERVAL_SECONDS / 4
    await settle()
    assert not worker.motion.in_flight
    look = await worker.reconcile()
    assert len(executor.statuses) == written, "a change of counts alone waits"
    assert look is not None and look <= COUNTS_INTERVAL_SECONDS * 3 / 4 + 1e-9
    clock.now += COUNTS_INTERVAL_SECONDS * 3 / 4
    await worker.reconcile()
    assert executor.statuses[-1]["readyWells"] == 2, "due: written"

    for rv, well in enumerate(("w3", "w4"), start=32):
        loop.observe_pod("MODIFIED", serving(executor.pods[well], rv, started))
    await settle()
    await worker.reconcile()
    assert executor.statuses[-1]["phase"] == "Available", "the phase moved: written at once"
    written = len(executor.statuses)

    # At rest, a pod losing readiness right after a write is written at once (freshness).
    clock.now += COUNTS_INTERVAL_SECONDS / 10
    loop.observe_pod("MODIFIED", running(executor.pods["w3"], 40, started, ready=False))
    await settle()
    await worker.reconcile()
    assert len(executor.statuses) == written + 1
    assert executor.statuses[-1]["readyWells"] == 3
    await loop.shutdown()


async def test_a_change_beyond_the_counts_is_written_at_once_with_writes_in_flight() -> None:
    executor = HeldConfirmsExecutor()
    clock, loop, worker = await first_pass(executor, GOOD_SPEC)
    started = clock.now
    loop.observe_pod("MODIFIED", running(executor.pods["w3"], 20, started, ready=True))
    await settle()  # w3's confirmation is held in flight
    assert worker.motion.in_flight
    # w1 and w2 become Ready: enough wells available, a condition changes its status.
    loop.observe_pod("MODIFIED", serving(executor.pods["w1"], 21, started))
    loop.observe_pod("MODIFIED", serving(executor.pods["w2"], 22, started))
    await worker.reconcile()
    assert len(executor.statuses) == 2, "a condition's status moved: written at once"
    available = next(c for c in executor.statuses[-1]["conditions"] if c["type"] == "Available")
    assert available["status"] == "True"
    executor.pods["w3"] = serving(executor.pods["w3"], 23, started)
    executor.release.set()
    await asyncio.wait_for(worker.drain(), timeout=10)
    await loop.shutdown()


def test_only_counts_differ_is_false_for_phase_revisions_and_condition_reasons() -> None:
    def status(
        phase: str = "Progressing", current: str = "a", reason: str = "X", **counts: Any
    ) -> dict[str, Any]:
        condition = {"type": "Available", "status": "False", "reason": reason}
        return {
            "phase": phase,
            "currentRevision": current,
            "updateRevision": "b",
            "conditions": [{**condition, "message": f"{counts} available"}],
            **counts,
        }

    base = status(readyWells=1)
    assert only_counts_differ(status(readyWells=2, unhealthyWells=[{"well": "w1"}]), base)
    assert not only_counts_differ(status("Available", readyWells=1), base)
    assert not only_counts_differ(status(current="b", readyWells=1), base)
    assert not only_counts_differ(status(reason="Y", readyWells=1), base)


def test_count_only_writes_wait_longer_for_a_fleet_listed_inline_in_its_object() -> None:
    """Each status write re-validates the whole object (0.1 ms of apiserver CPU per inline
    well): the wait grows with the inline wells, never below the base, never past the cap."""
    assert counts_interval(0) == counts_interval(4) == COUNTS_INTERVAL_SECONDS
    assert counts_interval(1_000) == 2.0
    assert counts_interval(10_000) == MAX_COUNTS_INTERVAL_SECONDS
    sizes = [0, 1, 499, 500, 2_500, 5_000, 12_000]
    waits = [counts_interval(n) for n in sizes]
    assert waits == sorted(waits)
