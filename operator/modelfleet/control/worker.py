"""One worker per ModelDeployment: coalesces a burst of events into one reconcile, and reacts to
single wells between reconciles.

A reconcile reads as four steps: gather the inputs (spec, inventory, revisions, roll-out state),
plan (pure), start the plan's writes (in the background: a roll-out wave is not as slow as its
slowest pod), publish status. Between reconciles each pod event runs the pure reaction for its
well (logic.reactions) against the last plan's targets. Everything the worker keeps is
re-derivable: a restarted operator lists and continues.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field

from modelfleet.api.spec import Reason, RuntimeSpec
from modelfleet.control.cache import FleetKey, ObservedFleet, WatchCache
from modelfleet.control.executor import ApiExecutor, Clock
from modelfleet.control.inputs import FleetInputs, InputGatherer
from modelfleet.control.monitoring import AnalysisTarget, FleetMonitor
from modelfleet.control.publisher import RECONCILE_SECONDS, RECONCILES, StatusPublisher
from modelfleet.io.execution import ActionOutcome, FleetRef
from modelfleet.io.kube import KubeApiError
from modelfleet.logic.actions import (
    Action,
    ConfirmBundle,
    CreatePod,
    DeletePod,
    DeleteReason,
    action_well,
)
from modelfleet.logic.analysis import AnalysisGate, AnalysisState, analysis_applies, gate_of
from modelfleet.logic.budget import BudgetLedger
from modelfleet.logic.fleet_status import MonitoringView
from modelfleet.logic.inventory import BlockedFleet, failure_of
from modelfleet.logic.planning import (
    NOT_READY_PROBE_SECONDS,
    FleetInput,
    FleetPlan,
    canary_wells,
    plan_fleet,
)
from modelfleet.logic.reactions import ReactionView, react
from modelfleet.logic.revisions import WellTarget
from modelfleet.logic.wellpod import WellPod

logger = logging.getLogger("modelfleet.control.worker")

#: Bursts of events within this window share one reconcile.
COALESCE_SECONDS = 0.05
#: While a roll-out is under way, re-plan at least this often (minReadySeconds, deadlines).
ROLLOUT_RECHECK_SECONDS = 2.0
INCONCLUSIVE_RECHECK_SECONDS = 0.5
#: Reconciles of one fleet are spaced by this many times the last one's planning CPU time (at
#: most MAX_RECONCILE_SPACING_SECONDS): a 10,000-well plan costs ~0.1 s of CPU.
RECONCILE_DUTY_FACTOR = 5.0
MAX_RECONCILE_SPACING_SECONDS = 1.0


def reconcile_pause(now: float, last_ended: float, spacing: float) -> float:
    """How long a woken worker waits before it reconciles.

    Events of a big fleet arrive every few milliseconds while its pods start or roll (writes
    finishing, thousands of pods turning Ready after the last create), and each plan of 10,000
    wells costs ~0.1 s of CPU: reconciles are spaced `spacing` apart, so planning takes about
    1/RECONCILE_DUTY_FACTOR of a core whether or not the operator's own writes are in flight.
    (Spaced only while they were, a 10,000-pod start cost the operator 133 CPU-s, most of it
    re-planning between its last create and its last pod's Ready.) A change after a quiet
    spell is reconciled after the coalescing window alone (status freshness).
    """
    return max(COALESCE_SECONDS, last_ended + spacing - now)


#: A well whose write failed (logged) is left alone this long: no hot retry loop.
FAILED_ACTION_RETRY_SECONDS = 1.0

_INVENTORY_REASONS = (Reason.INVENTORY_INVALID.value, Reason.INVENTORY_NOT_FOUND.value)


@dataclass
class LastPlan:
    """What the last reconcile planned, for the spec generation it read: the reactions' input."""

    fleet: FleetRef
    generation: int
    targets: Mapping[str, WellTarget]
    runtimes: Mapping[str, RuntimeSpec]
    min_ready_seconds: int
    ledger: BudgetLedger | None  # None: the plan deferred no update


@dataclass
class WellsInMotion:
    """Writes this worker started and what came of them, by well."""

    # Started and not finished: the planner must not repeat them nor forget that they disrupt
    # their well.
    in_flight: dict[str, Action] = field(default_factory=dict)
    # The last write failed or was inconclusive: not retried before this time.
    not_before: dict[str, float] = field(default_factory=dict)
    # Held because their runtime was asked before it was ready and answered nothing yet: the
    # hold is long (NOT_READY_PROBE_SECONDS) and ends early when the pod's containers are ready.
    awaiting_ready: set[str] = field(default_factory=set)
    recreating: set[str] = field(default_factory=set)  # wells whose pod we deleted to recreate
    queued: dict[str, Action] = field(default_factory=dict)  # reactions to start this tick


class FleetWorker:
    def __init__(
        self,
        key: FleetKey,
        cache: WatchCache,
        gatherer: InputGatherer,
        publisher: StatusPublisher,
        executor: ApiExecutor,
        clock: Clock,
        synced: asyncio.Event,
        monitor: FleetMonitor | None = None,
    ) -> None:
        self.key = key
        self.monitor = monitor  # None: the operator has no Prometheus client
        self.cache = cache
        self.gatherer = gatherer
        self.publisher = publisher
        self.executor = executor
        self.clock = clock
        self.synced = synced  # set once the pod cache was filled from a list
        self.wake_event = asyncio.Event()
        self.motion = WellsInMotion()
        self.last_plan: LastPlan | None = None
        self.service_ensured = False
        self.planning_seconds = 0.0  # CPU time of the last plan's pure steps (no API waits)
        self._task: asyncio.Task[None] | None = None
        self._batches: set[asyncio.Task[None]] = set()

    # ------------------------------------------------------------------------- lifecycle
    def wake(self) -> None:
        self.wake_event.set()
        observed = self.cache.fleets.get(self.key)
        if (
            observed is not None
            and observed.body is not None
            and (self._task is None or self._task.done())
        ):
            self._task = asyncio.get_running_loop().create_task(
                self._run(), name=f"fleet {self.key[0]}/{self.key[1]}"
            )

    def invalidate_plan(self) -> None:
        """The fleet's wells or digests may have moved: no reaction until the next plan."""
        self.last_plan = None

    def tasks(self) -> list[asyncio.Task[None]]:
        monitoring = self.monitor.tasks() if self.monitor is not None else []
        return [t for t in [self._task, *self._batches, *monitoring] if t is not None]

    def cancel(self) -> None:
        if self.monitor is not None:
            self.monitor.stop()
        for task in self.tasks():
            task.cancel()

    async def drain(self) -> None:
        """Wait until every batch of writes started so far has finished."""
        while self._batches:
            await asyncio.gather(*self._batches, return_exceptions=True)

    async def _run(self) -> None:
        delay: float | None = None
        spacing, ended = 0.0, 0.0
        await self.synced.wait()
        while True:
            if delay is None:
                await self.wake_event.wait()
            else:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self.wake_event.wait(), timeout=delay)
            await asyncio.sleep(reconcile_pause(time.perf_counter(), ended, spacing))
            self.wake_event.clear()
            started = time.perf_counter()
            namespace, name = self.key
            try:
                delay = await self.reconcile()
                RECONCILES.labels(namespace, name, "ok").inc()
            except asyncio.CancelledError:
                raise
            except KubeApiError as exc:
                logger.warning("reconcile of %s/%s failed: %s", namespace, name, exc)
                RECONCILES.labels(namespace, name, "error").inc()
                delay = 1.0
            except Exception:
                logger.exception("reconcile of %s/%s crashed", namespace, name)
                RECONCILES.labels(namespace, name, "error").inc()
                delay = 5.0
            ended = time.perf_counter()
            RECONCILE_SECONDS.observe(ended - started)
            # Spaced by the planning's CPU time, not the reconcile's wall time: that also
            # counts waiting for the apiserver, which costs this process nothing.
            spacing = min(
                MAX_RECONCILE_SPACING_SECONDS, RECONCILE_DUTY_FACTOR * self.planning_seconds
            )

    # ------------------------------------------------------------------------- reconcile
    async def reconcile(self) -> float | None:
        """One pass: gather, plan, start the writes, publish. Returns when to look again
        (None: only on the next event)."""
        observed = self.cache.fleets.get(self.key)
        if observed is None or observed.body is None:
            return None
        meta = observed.body["metadata"]
        if meta.get("deletionTimestamp"):
            return None  # garbage collection removes the pods; nothing to converge
        fleet = FleetRef(self.key[0], self.key[1], meta["uid"])
        generation = observed.generation()
        reported = failure_of(observed.last_status)
        try:
            inputs = await self.gatherer.gather(
                fleet,
                observed,
                failure_reported=reported is not None and reported[0] in _INVENTORY_REASONS,
            )
        except BlockedFleet as blocked:
            self.last_plan = None
            model = observed.body.get("spec", {}).get("model", {}) or {}
            await self.publisher.publish_blocked(
                fleet, blocked, generation, f"{model.get('name')}@{model.get('version')}"
            )
            return None  # the fleet's (or its ConfigMaps') next event wakes it
        if inputs.inventory_recovered:
            logger.info("%s/%s: inventory readable again", *self.key)
            await self.executor.post_event(
                fleet,
                "Normal",
                "InventoryResolved",
                f"{len(inputs.spec.wells)} wells and their digests read from the ConfigMaps",
            )
        planning_started = time.perf_counter()
        now = self.clock()
        plan, pods = self._plan(inputs, observed, now)
        self.planning_seconds = time.perf_counter() - planning_started
        if not self.service_ensured:
            await self.executor.ensure_service(fleet, inputs.spec.runtime.port)
            self.service_ensured = True
        runtimes: dict[str, RuntimeSpec] = {inputs.update.name: inputs.update.runtime}
        if inputs.current is not None:
            runtimes[inputs.current.name] = inputs.current.runtime
        self._start(fleet, self._fresh(plan.actions, now), runtimes, pods)
        self.last_plan = LastPlan(
            fleet=fleet,
            generation=generation,
            targets=plan.targets,
            runtimes=runtimes,
            min_ready_seconds=inputs.spec.rollout.min_ready_seconds,
            ledger=BudgetLedger.from_plan(plan) if plan.deferred else None,
        )
        monitoring, analysis = self._monitoring(inputs, observed, plan)
        counts_due = await self.publisher.publish_plan(
            fleet,
            inputs.spec,
            inputs.update,
            plan,
            generation,
            monitoring,
            analysis,
            writes_in_flight=bool(self.motion.in_flight),
        )
        # Counts that wait are written by a later pass: one is due by then at the latest.
        looks = (self._next_look(plan, now), counts_due)
        return min((t for t in looks if t is not None), default=None)

    def _analysis_gate(self, inputs: FleetInputs) -> tuple[AnalysisGate, str]:
        """What the canary analysis lets the plan do (NONE: no analysis applies)."""
        spec = inputs.spec
        if self.monitor is None or spec.monitoring is None:
            return AnalysisGate.NONE, ""
        if not analysis_applies(
            spec.rollout.analysis, inputs.state.current_revision, inputs.update.name
        ):
            return AnalysisGate.NONE, ""
        state = self.monitor.analysis_of(inputs.update.name)
        return gate_of(state), state.message if state is not None else ""

    def _monitoring(
        self, inputs: FleetInputs, observed: ObservedFleet, plan: FleetPlan
    ) -> tuple[MonitoringView | None, AnalysisState | None]:
        """Tell the monitor what to query now; what it last found, for status."""
        monitor = self.monitor
        if monitor is None:
            return None, None
        spec = inputs.spec
        target: AnalysisTarget | None = None
        analysis = spec.rollout.analysis
        if (
            analysis is not None
            and plan.analysis_hold
            and not plan.analysis_failed
            and not plan.rolled_back
        ):
            canary = canary_wells(spec.wells, spec.rollout)
            digests = [plan.targets[w].bundle_digest for w in canary if w in plan.targets]
            known = frozenset(d for d in digests if d) if all(digests) else frozenset()
            target = AnalysisTarget(inputs.update.name, frozenset(canary), analysis, known)
        monitor.configure(
            spec.monitoring,
            len(spec.wells),
            target,
            observed.last_status or {},
            inputs.update.name,
        )
        # The update revision's analysis stays in status after its roll-out, for the record.
        return monitor.view, monitor.analysis_of(inputs.update.name)

    def _plan(
        self, inputs: FleetInputs, observed: ObservedFleet, now: float
    ) -> tuple[FleetPlan, dict[str, WellPod]]:
        spec = inputs.spec
        wells = {w.id for w in spec.wells}
        pods = observed.pod_map()
        gate, gate_message = self._analysis_gate(inputs)
        plan = plan_fleet(
            FleetInput(
                wells=spec.wells,
                update=inputs.update,
                current=inputs.current,
                policy=spec.rollout,
                state=inputs.state,
                pods={w: p for w, p in pods.items() if w in wells},
                stray_pods=[p for w, p in pods.items() if w not in wells],
                now=now,
                in_flight=self.motion.in_flight,
                analysis=gate,
                analysis_message=gate_message,
            )
        )
        return plan, pods

    def _fresh(self, actions: Sequence[Action], now: float) -> list[Action]:
        """The plan's writes not already under way nor held back after a failure."""
        motion = self.motion
        for well, when in list(motion.not_before.items()):
            if when <= now:
                del motion.not_before[well]
                motion.awaiting_ready.discard(well)
        return [
            a
            for a in actions
            if action_well(a) not in motion.in_flight and action_well(a) not in motion.not_before
        ]

    def _next_look(self, plan: FleetPlan, now: float) -> float | None:
        motion = self.motion
        if motion.not_before:
            return max(0.05, min(motion.not_before.values()) - now)
        if motion.in_flight or any(isinstance(a, ConfirmBundle) for a in plan.actions):
            return INCONCLUSIVE_RECHECK_SECONDS
        return None if plan.complete else ROLLOUT_RECHECK_SECONDS

    # ------------------------------------------------------------------------- reactions
    def react(self, well: str) -> None:
        """Run the pure reaction for one well whose pod changed; queue what it starts."""
        last = self.last_plan
        observed = self.cache.fleets.get(self.key)
        if last is None or observed is None or observed.body is None or not self.synced.is_set():
            return
        if observed.generation() != last.generation:
            return  # the spec moved on: the targets are stale until the next reconcile
        if (observed.body.get("metadata") or {}).get("deletionTimestamp"):
            return  # being deleted: garbage collection removes the pods
        motion = self.motion
        if well in motion.awaiting_ready:
            cached = observed.pods.get(well)
            if cached is None or cached.pod.containers_ready:
                motion.awaiting_ready.discard(well)
                motion.not_before.pop(well, None)
        view = ReactionView(
            targets=last.targets,
            pods=_PodView(observed),
            in_flight=motion.in_flight,
            held=motion.not_before,
            recreating=motion.recreating,
            min_ready_seconds=last.min_ready_seconds,
            ledger=last.ledger,
        )
        for action in react(view, well, self.clock()):
            if not motion.queued:
                # Events of one read from the watch arrive together: start them as one batch.
                asyncio.get_running_loop().call_soon(self._start_queued)
            motion.queued[action_well(action)] = action

    def _start_queued(self) -> None:
        motion, last = self.motion, self.last_plan
        actions = [a for w, a in motion.queued.items() if w not in motion.in_flight]
        motion.queued.clear()
        observed = self.cache.fleets.get(self.key)
        if not actions or last is None or observed is None:
            return
        # Only these wells' pods: a copy of the whole 10,000-well cache per batch of events
        # was 4% of the operator's CPU.
        wells = [action_well(a) for a in actions]
        pods = {w: observed.pods[w].pod for w in wells if w in observed.pods}
        self._start(last.fleet, actions, last.runtimes, pods)

    def _recheck_after(self, well: str) -> float:
        """Seconds until an inconclusive bundle confirmation is retried: soon when the runtime
        is ready (it answered about another bundle), long while it is still not ready (then
        its readiness ends the wait: see react)."""
        observed = self.cache.fleets.get(self.key)
        cached = observed.pods.get(well) if observed is not None else None
        if cached is not None and not cached.pod.containers_ready:
            self.motion.awaiting_ready.add(well)
            return NOT_READY_PROBE_SECONDS
        return INCONCLUSIVE_RECHECK_SECONDS

    # ---------------------------------------------------------------------------- writes
    def _start(
        self,
        fleet: FleetRef,
        actions: Sequence[Action],
        runtimes: Mapping[str, RuntimeSpec],
        pods: Mapping[str, WellPod],
    ) -> None:
        """Carry the writes out in the background: each well's outcome wakes the worker."""
        if not actions:
            return
        motion = self.motion
        for action in actions:
            motion.in_flight[action_well(action)] = action
            if isinstance(action, DeletePod) and action.why is DeleteReason.RECREATE:
                motion.recreating.add(action.well)
            elif isinstance(action, CreatePod):
                motion.recreating.discard(action.target.well)

        def done(action: Action, outcome: ActionOutcome) -> None:
            well = action_well(action)
            if motion.in_flight.get(well) is action:
                del motion.in_flight[well]
            for stored in outcome.stored:
                self.cache.observe_pod("MODIFIED", stored)
            for gone in outcome.gone:
                self.cache.forget_pod(self.key, gone)
            motion.awaiting_ready.discard(well)
            if outcome.failed:
                motion.not_before[well] = self.clock() + FAILED_ACTION_RETRY_SECONDS
            elif outcome.inconclusive:
                motion.not_before[well] = self.clock() + self._recheck_after(well)
            # The watch may have shown the outcome (a deleted pod gone, say) while the write
            # was still in flight, when the reaction had to leave the well alone.
            self.react(well)
            self.wake()

        async def carry_out() -> None:
            try:
                await self.executor.execute(fleet, actions, runtimes, pods, on_done=done)
            except Exception:
                logger.exception("writes for %s/%s crashed", *self.key)
            finally:
                for action in actions:  # nothing stays in flight forever
                    if motion.in_flight.get(action_well(action)) is action:
                        del motion.in_flight[action_well(action)]
                self.wake()

        task = asyncio.get_running_loop().create_task(
            carry_out(), name=f"writes {self.key[0]}/{self.key[1]}"
        )
        self._batches.add(task)
        task.add_done_callback(self._batches.discard)


class _PodView(Mapping[str, WellPod]):
    """The cached pods of one fleet as a read-only mapping, without copying 10,000 of them."""

    def __init__(self, observed: ObservedFleet) -> None:
        self._pods = observed.pods

    def __getitem__(self, well: str) -> WellPod:
        return self._pods[well].pod

    def __iter__(self) -> Iterator[str]:
        return iter(self._pods)

    def __len__(self) -> int:
        return len(self._pods)
