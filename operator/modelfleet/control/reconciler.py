"""Coalesced reconciliation: one worker per ModelDeployment, woken by whatever changed.

Watch events (ModelDeployments and their pods) only update in-memory caches and set a wake-up
flag; each fleet's worker then reconciles once for a whole burst of events, so 10,000 pod
events cause a handful of plans, not 10,000. A reconcile reads only memory (the caches filled
by the watches) plus the fleet's ControllerRevisions once, plans, executes, and writes status
only when it changed. Everything it needs to resume lives in the API server, so a restarted
operator continues a roll-out where it stood.

Fleets that read their wells or digests from ConfigMaps (`spec.wellsFrom`,
`spec.model.digestsFrom`) are resolved here into a plain spec before planning: the ConfigMap watch
keeps only the ConfigMaps some fleet references, a reference never seen is read once, and while
an inventory cannot be read the fleet's pods are left alone and status says why.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import time
from collections.abc import Callable, Hashable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from prometheus_client import Counter, Gauge, Histogram
from pydantic import ValidationError

from modelfleet.api.spec import ModelDeploymentSpec, Phase, RuntimeSpec
from modelfleet.io.execution import ExecutionResult, FleetExecutor, FleetRef
from modelfleet.io.kube import KubeApiError, namespaced
from modelfleet.logic.fleet_status import (
    StatusContext,
    build_status,
    rollout_state_from_status,
    status_events,
)
from modelfleet.logic.inventory import (
    InventoryError,
    InventorySource,
    failure_of,
    failure_status,
    referenced_config_maps,
    resolve_inventory,
    uses_inventory,
)
from modelfleet.logic.planning import (
    Action,
    BudgetLedger,
    ConfirmBundle,
    CreatePod,
    DeletePod,
    FleetInput,
    FleetPlan,
    RetargetPod,
    action_well,
    budget_free_action,
    is_available,
    on_target,
    plan_fleet,
)
from modelfleet.logic.revisions import Revision, WellTarget, revision_of
from modelfleet.logic.wellpod import LABEL_DEPLOYMENT, WellPod, observe_pod

logger = logging.getLogger("modelfleet.control.reconciler")

RECONCILES = Counter(
    "modelfleet_operator_reconciles_total",
    "Fleet reconciles",
    ["namespace", "deployment", "result"],
)
RECONCILE_SECONDS = Histogram(
    "modelfleet_operator_reconcile_duration_seconds",
    "Duration of one fleet reconcile (plan + writes)",
    buckets=(0.001, 0.005, 0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30),
)
WELLS = Gauge("modelfleet_operator_wells", "Wells by state", ["namespace", "deployment", "state"])
FLEET_PHASE = Gauge(
    "modelfleet_operator_fleet_phase",
    "1 for the phase the fleet's status reports, 0 for the others (kube-state-metrics style)",
    ["namespace", "deployment", "phase"],
)

#: Bursts of events within this window share one reconcile.
COALESCE_SECONDS = 0.05
#: While a roll-out is under way, re-plan at least this often (minReadySeconds, deadlines).
ROLLOUT_RECHECK_SECONDS = 2.0
INCONCLUSIVE_RECHECK_SECONDS = 0.5
#: Reconciles of one fleet are spaced by this many times the last one's duration (at most
#: MAX_RECONCILE_SPACING_SECONDS): a 10,000-well plan costs ~0.1 s of CPU.
RECONCILE_DUTY_FACTOR = 5.0
MAX_RECONCILE_SPACING_SECONDS = 1.0
#: A well whose write failed (logged) is left alone this long: no hot retry loop.
FAILED_ACTION_RETRY_SECONDS = 1.0

MAX_TOMBSTONES = 20_000

FleetKey = tuple[str, str]  # (namespace, name)
ConfigMapKey = tuple[str, str]  # (namespace, name)


@dataclass
class _CachedPod:
    resource_version: int
    pod: WellPod


@dataclass
class _CachedConfigMap:
    resource_version: int
    source: InventorySource | None  # None: the ConfigMap does not exist


def _same_inventory(a: InventorySource | None, b: InventorySource | None) -> bool:
    if a is None or b is None:
        return a is b
    return a.data == b.data and a.other_keys == b.other_keys


@dataclass
class FleetMemory:
    """What the operator keeps per ModelDeployment between reconciles (all re-derivable)."""

    body: Mapping[str, Any] | None = None
    pods: dict[str, _CachedPod] = field(default_factory=dict)  # by well id
    # uids of pods seen deleted: a write's answer that arrives after the watch's DELETED
    # event must not resurrect the pod in the cache.
    deleted_uids: dict[str, None] = field(default_factory=dict)
    revisions: dict[str, dict[str, Any]] | None = None  # ControllerRevisions by revision hash
    inventory_refs: frozenset[str] = frozenset()  # ConfigMaps the spec reads wells/digests from
    # (inputs, resolved spec, its revision) of the last successful inventory resolution
    resolved: tuple[Hashable, ModelDeploymentSpec, Revision] | None = None
    service_ensured: bool = False
    last_status: Mapping[str, Any] | None = None
    wake: asyncio.Event = field(default_factory=asyncio.Event)
    worker: asyncio.Task[None] | None = None
    # Actions started by a reconcile and not finished yet, by well id. Reconciles do not wait
    # for them (see _start_actions); the planner must not repeat them nor forget that they
    # disrupt their well.
    in_flight: dict[str, Action] = field(default_factory=dict)
    batches: set[asyncio.Task[None]] = field(default_factory=set)
    # Wells whose last action failed or was inconclusive: not retried before this time.
    not_before: dict[str, float] = field(default_factory=dict)
    # What the last reconcile planned each well towards, for the spec generation it read, so a
    # pod event can start a well's budget-free write at once (see FleetReconciler._react).
    fleet: FleetRef | None = None
    targets: dict[str, WellTarget] | None = None
    targets_generation: int = -1
    runtimes: dict[str, RuntimeSpec] = field(default_factory=dict)
    reactions: dict[str, Action] = field(default_factory=dict)  # non-empty: a start is queued
    planning_seconds: float = 0.0  # CPU time of the last reconcile's planning (no API waits)
    ledger: BudgetLedger | None = None  # None: the last plan deferred no update
    recreating: set[str] = field(default_factory=set)  # wells whose pod we deleted to recreate
    min_ready_seconds: int = 0

    def cancel(self) -> None:
        for task in [self.worker, *self.batches]:
            if task is not None:
                task.cancel()


def _rv(body: Mapping[str, Any]) -> int:
    try:
        return int((body.get("metadata") or {}).get("resourceVersion") or 0)
    except ValueError:
        return 0


class FleetReconciler:
    def __init__(self, executor: FleetExecutor, clock: Callable[[], float] = time.time) -> None:
        self.executor = executor
        self.clock = clock
        self.fleets: dict[FleetKey, FleetMemory] = {}
        # Inventory ConfigMaps referenced by some fleet, as last seen (only those: a namespace's
        # other ConfigMaps are dropped on arrival).
        self.config_maps: dict[ConfigMapKey, _CachedConfigMap] = {}
        # Set once the pod cache has been filled from a list: planning before that would see
        # every well as missing.
        self.pods_synced = asyncio.Event()

    # ----------------------------------------------------------------------- observations
    def observe_deployment(self, event_type: str, body: Mapping[str, Any]) -> None:
        meta = body.get("metadata") or {}
        key = (meta.get("namespace", ""), meta.get("name", ""))
        if event_type == "DELETED":
            memory = self.fleets.pop(key, None)
            if memory:
                memory.cancel()
                self._forget_unreferenced(key[0])
            return
        memory = self.fleets.setdefault(key, FleetMemory())
        if memory.body is not None and _rv(memory.body) > _rv(body):
            return  # an older view than one we already hold
        memory.body = body
        memory.last_status = body.get("status")
        refs = referenced_config_maps(body.get("spec") or {})
        if refs != memory.inventory_refs:
            memory.inventory_refs = refs
            self._forget_unreferenced(key[0])
        self._wake(key, memory)

    def observe_config_map(self, event_type: str, body: Mapping[str, Any]) -> None:
        """Keep a ConfigMap some fleet reads its inventory from; wake those fleets if it changed."""
        meta = body.get("metadata") or {}
        key = (meta.get("namespace", ""), meta.get("name", ""))
        readers = self._readers_of(key)
        if not readers:
            self.config_maps.pop(key, None)
            return
        rv = _rv(body)
        cached = self.config_maps.get(key)
        if cached is not None and cached.resource_version > rv:
            return
        source = None if event_type == "DELETED" else InventorySource.from_config_map(body)
        if cached is not None and _same_inventory(cached.source, source):
            cached.resource_version = rv  # metadata only: keep the parsed inventory
            return
        self.config_maps[key] = _CachedConfigMap(rv, source)
        for fleet in readers:
            memory = self.fleets[fleet]
            # Its wells or digests may have changed: no reaction until the next plan.
            memory.targets = None
            memory.ledger = None
            self._wake(fleet, memory)

    def resync_config_maps(
        self, namespace: str | None, bodies: Sequence[Mapping[str, Any]]
    ) -> None:
        """A fresh list of the ConfigMaps (in `namespace`, or everywhere)."""
        listed = set()
        for body in bodies:
            meta = body.get("metadata") or {}
            listed.add((meta.get("namespace", ""), meta.get("name", "")))
            self.observe_config_map("ADDED", body)
        for fleet, memory in list(self.fleets.items()):
            if namespace is not None and fleet[0] != namespace:
                continue
            for name in memory.inventory_refs:
                key = (fleet[0], name)
                cached = self.config_maps.get(key)
                if key not in listed and (cached is None or cached.source is not None):
                    self.config_maps[key] = _CachedConfigMap(0, None)
                    memory.targets = None
                    memory.ledger = None
                    self._wake(fleet, memory)

    def _readers_of(self, key: ConfigMapKey) -> list[FleetKey]:
        return [f for f, m in self.fleets.items() if f[0] == key[0] and key[1] in m.inventory_refs]

    def _forget_unreferenced(self, namespace: str) -> None:
        referenced = {
            name for f, m in self.fleets.items() if f[0] == namespace for name in m.inventory_refs
        }
        for key in [k for k in self.config_maps if k[0] == namespace and k[1] not in referenced]:
            del self.config_maps[key]

    def observe_pod(self, event_type: str, body: Mapping[str, Any]) -> None:
        meta = body.get("metadata") or {}
        deployment = (meta.get("labels") or {}).get(LABEL_DEPLOYMENT)
        if not deployment:
            return
        key = (meta.get("namespace", ""), deployment)
        memory = self.fleets.setdefault(key, FleetMemory())
        pod = observe_pod(body)
        if pod is None:
            return
        cached = memory.pods.get(pod.well)
        if event_type == "DELETED":
            memory.deleted_uids[pod.uid] = None
            if len(memory.deleted_uids) > MAX_TOMBSTONES:
                for uid in list(memory.deleted_uids)[: MAX_TOMBSTONES // 2]:
                    del memory.deleted_uids[uid]
            if cached is not None and cached.pod.uid == pod.uid:
                del memory.pods[pod.well]
                self._wake(key, memory)
            self._react(key, memory, pod.well)
            return
        if pod.uid in memory.deleted_uids:
            return
        rv = _rv(body)
        if cached is not None and cached.resource_version > rv:
            return
        memory.pods[pod.well] = _CachedPod(rv, pod)
        if cached is None or cached.pod != pod:
            self._wake(key, memory)
            self._react(key, memory, pod.well)

    def resync_pods(self, namespace: str | None, bodies: Sequence[Mapping[str, Any]]) -> None:
        """A fresh list of all well pods (in `namespace`, or everywhere): forget the rest."""
        listed = {
            (b["metadata"].get("namespace", ""), b["metadata"].get("uid", "")) for b in bodies
        }
        for (ns, _name), memory in self.fleets.items():
            if namespace is not None and ns != namespace:
                continue
            for well, cached in list(memory.pods.items()):
                if (ns, cached.pod.uid) not in listed:
                    del memory.pods[well]
        for body in bodies:
            self.observe_pod("ADDED", body)
        for key, memory in self.fleets.items():
            if namespace is None or key[0] == namespace:
                self._wake(key, memory)

    def _react(self, key: FleetKey, memory: FleetMemory, well: str) -> None:
        """Act on one well as soon as its pod changes, instead of at the fleet's next reconcile.

        Budget-free writes (create a missing pod, confirm a bundle) start at once, and budget
        freed by a well that became available is spent on the updates the last plan deferred
        (BudgetLedger). In a roll-out with pods recreated, each wave used to wait for three
        reconciles in a row (to delete, to create once the pod was gone, to confirm once the
        runtime started) and a fourth to spend the freed budget, each spaced by up to a second
        at 10,000 wells: 1.56 x the ideal time (docs/benchmarks.md).
        """
        targets = memory.targets
        if targets is None or memory.fleet is None or not self.pods_synced.is_set():
            return
        body = memory.body
        if body is None or _generation(body) != memory.targets_generation:
            return  # the spec moved on: the targets are stale until the next reconcile
        if (body.get("metadata") or {}).get("deletionTimestamp"):
            return  # being deleted: garbage collection removes the pods
        now = self.clock()
        cached = memory.pods.get(well)
        pod = cached.pod if cached is not None else None
        flight = memory.in_flight.get(well)
        ledger = memory.ledger
        if ledger is not None:
            ledger.observe(
                well,
                is_available(pod, now, memory.min_ready_seconds)
                and not (flight is not None and _disrupts(flight)),
            )
        target = targets.get(well)
        if target is not None and flight is None and well not in memory.not_before:
            action = budget_free_action(pod, target, now)
            # Only a pod this operator deleted to recreate it is replaced at once: one that
            # vanished otherwise (the fleet deleted and its pods collected, whose events can
            # arrive before the fleet's own) waits for the next plan.
            if isinstance(action, CreatePod) and well not in memory.recreating:
                action = None
            if action is not None:
                memory.recreating.discard(well)
                self._queue_reaction(key, memory, action)
        if ledger is not None:
            for action in ledger.spend(lambda a: self._still_wanted(memory, a, now)):
                self._queue_reaction(key, memory, action)

    def _still_wanted(self, memory: FleetMemory, action: Action, now: float) -> bool:
        """A deferred update still applies to the pod the plan saw, and that pod is available."""
        well = action_well(action)
        cached = memory.pods.get(well)
        if cached is None or well in memory.in_flight or well in memory.not_before:
            return False
        pod = cached.pod
        if not is_available(pod, now, memory.min_ready_seconds):
            return False  # it costs no budget now: the next plan takes it
        if isinstance(action, DeletePod):
            return pod.uid == action.uid
        if isinstance(action, RetargetPod):
            return pod.name == action.name and not on_target(pod, action.target)
        return False

    def _queue_reaction(self, key: FleetKey, memory: FleetMemory, action: Action) -> None:
        if not memory.reactions:
            # Events of one read from the watch arrive together: start them as one batch.
            asyncio.get_running_loop().call_soon(self._start_reactions, key, memory)
        memory.reactions[action_well(action)] = action

    def _start_reactions(self, key: FleetKey, memory: FleetMemory) -> None:
        actions = [a for w, a in memory.reactions.items() if w not in memory.in_flight]
        memory.reactions.clear()
        if actions and memory.fleet is not None and self.fleets.get(key) is memory:
            # Only these wells' pods: a copy of the whole 10,000-well cache per batch of events
            # was 4% of the operator's CPU.
            wells = [action_well(a) for a in actions]
            pods = {w: memory.pods[w].pod for w in wells if w in memory.pods}
            self._start_actions(key, memory, memory.fleet, actions, memory.runtimes, pods)

    def _wake(self, key: FleetKey, memory: FleetMemory) -> None:
        memory.wake.set()
        if memory.body is not None and (memory.worker is None or memory.worker.done()):
            memory.worker = asyncio.get_running_loop().create_task(
                self._run(key, memory), name=f"fleet {key[0]}/{key[1]}"
            )

    async def shutdown(self) -> None:
        """Stop every fleet worker (kopf would otherwise wait for them as hung tasks)."""
        tasks = [t for m in self.fleets.values() for t in [m.worker, *m.batches] if t is not None]
        for memory in self.fleets.values():
            memory.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    # ---------------------------------------------------------------------------- workers
    async def _run(self, key: FleetKey, memory: FleetMemory) -> None:
        delay: float | None = None
        spacing, ended = 0.0, 0.0
        await self.pods_synced.wait()
        while True:
            if delay is None:
                await memory.wake.wait()
            else:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(memory.wake.wait(), timeout=delay)
            # With actions finishing in the background every few milliseconds, a big fleet
            # would be re-planned back to back; while actions are in flight its reconciles are
            # spaced so they take about 1/RECONCILE_DUTY_FACTOR of the time (small fleets: the
            # coalescing window). At rest a change is reconciled at once (status freshness).
            pause = COALESCE_SECONDS
            if memory.in_flight:
                pause = max(pause, ended + spacing - time.perf_counter())
            await asyncio.sleep(pause)
            memory.wake.clear()
            started = time.perf_counter()
            try:
                delay = await self.reconcile(key, memory)
                RECONCILES.labels(key[0], key[1], "ok").inc()
            except asyncio.CancelledError:
                raise
            except KubeApiError as exc:
                logger.warning("reconcile of %s/%s failed: %s", *key, exc)
                RECONCILES.labels(key[0], key[1], "error").inc()
                delay = 1.0
            except Exception:
                logger.exception("reconcile of %s/%s crashed", *key)
                RECONCILES.labels(key[0], key[1], "error").inc()
                delay = 5.0
            ended = time.perf_counter()
            RECONCILE_SECONDS.observe(ended - started)
            # Spaced by the planning's own CPU time, not the reconcile's wall time: that also
            # counts waiting for the apiserver (the status write), which costs this process
            # nothing, and spacing by it held freed budget back ~1.3 s per well at 10,000 wells.
            spacing = min(
                MAX_RECONCILE_SPACING_SECONDS, RECONCILE_DUTY_FACTOR * memory.planning_seconds
            )

    async def reconcile(self, key: FleetKey, memory: FleetMemory) -> float | None:
        """One pass; returns when to look again (None: only on the next event)."""
        body = memory.body
        if body is None:
            return None
        meta = body["metadata"]
        if meta.get("deletionTimestamp"):
            return None  # garbage collection removes the pods; nothing to converge
        fleet = FleetRef(key[0], key[1], meta["uid"])
        planning_started = time.perf_counter()
        try:
            spec = ModelDeploymentSpec.model_validate(body.get("spec") or {})
        except ValidationError as exc:
            logger.error("%s/%s: spec rejected: %s", *key, exc)
            return None
        update: Revision | None = None
        if uses_inventory(spec):
            sources = await self._inventory_sources(key[0], memory.inventory_refs)
            # Same spec generation, same ConfigMap contents: the same resolution. Resolving and
            # hashing 10,000 wells and digests costs ~25 ms, and a roll-out reconciles often.
            inputs = (
                meta.get("generation"),
                tuple((n, s.resource_version if s else None) for n, s in sorted(sources.items())),
            )
            cached = memory.resolved
            if cached is not None and cached[0] == inputs and inputs[0] is not None:
                spec, update = cached[1], cached[2]
            else:
                try:
                    spec = resolve_inventory(spec, key[1], sources)
                except InventoryError as exc:
                    memory.resolved = None
                    await self._report_inventory_failure(fleet, memory, spec, exc, meta)
                    return None  # the ConfigMap watch wakes the fleet when one changes
                update = revision_of(spec)
                memory.resolved = (inputs, spec, update)
            if failure_of(memory.last_status) is not None:
                logger.info("%s/%s: inventory readable again", *key)
                await self.executor.post_event(
                    fleet,
                    "Normal",
                    "InventoryResolved",
                    f"{len(spec.wells)} wells and their digests read from the ConfigMaps",
                )
        if update is None:
            update = revision_of(spec)
        revisions = await self._revisions(fleet, memory, update, spec.revision_history_limit)
        previous = memory.last_status or {}
        state = rollout_state_from_status(previous)
        current_data = revisions.get(state.current_revision or "")
        current = (
            Revision.from_data(state.current_revision or "", current_data["data"])
            if current_data
            else None
        )
        wells = {w.id for w in spec.wells}
        pods = {w: c.pod for w, c in memory.pods.items()}
        # A well whose pod is being deleted or swapped right now is unavailable, even though
        # the cache still shows the pod as it was: the budget must count it.
        seen = dict(pods)
        for well, action in memory.in_flight.items():
            if well in seen and _disrupts(action):
                seen[well] = dataclasses.replace(seen[well], ready=False)
        now = self.clock()
        plan = plan_fleet(
            FleetInput(
                wells=spec.wells,
                update=update,
                current=current,
                policy=spec.rollout,
                state=state,
                pods={w: p for w, p in seen.items() if w in wells},
                stray_pods=[p for w, p in seen.items() if w not in wells],
                now=now,
            )
        )
        memory.planning_seconds = time.perf_counter() - planning_started
        if not memory.service_ensured:
            await self.executor.ensure_service(fleet, spec.runtime.port)
            memory.service_ensured = True
        runtimes: dict[str, RuntimeSpec] = {update.name: update.runtime}
        if current is not None:
            runtimes[current.name] = current.runtime
        for well, when in list(memory.not_before.items()):
            if when <= now:
                del memory.not_before[well]
        fresh = [
            a
            for a in plan.actions
            if action_well(a) not in memory.in_flight and action_well(a) not in memory.not_before
        ]
        if fresh:
            self._start_actions(key, memory, fleet, fresh, runtimes, pods)
        memory.fleet, memory.runtimes = fleet, runtimes
        memory.targets, memory.targets_generation = plan.targets, _generation(body)
        memory.min_ready_seconds = spec.rollout.min_ready_seconds
        memory.ledger = BudgetLedger.from_plan(plan) if plan.deferred else None
        await self._report(fleet, memory, spec, update, plan, meta)
        if memory.not_before:
            return max(0.05, min(memory.not_before.values()) - now)
        if memory.in_flight or any(isinstance(a, ConfirmBundle) for a in plan.actions):
            return INCONCLUSIVE_RECHECK_SECONDS
        return None if plan.complete else ROLLOUT_RECHECK_SECONDS

    def _start_actions(
        self,
        key: FleetKey,
        memory: FleetMemory,
        fleet: FleetRef,
        actions: Sequence[Action],
        runtimes: Mapping[str, RuntimeSpec],
        pods: Mapping[str, WellPod],
    ) -> None:
        """Carry the actions out in the background: each well's outcome wakes the worker.

        Waiting for a whole batch before planning again made every roll-out wave as slow as
        its slowest pod (10,000 wells, maxUnavailable 10%: 1.57 x the ideal time; see
        docs/benchmarks.md). Now budget freed by one well is spent at the next reconcile.
        """
        for action in actions:
            memory.in_flight[action_well(action)] = action
            if isinstance(action, DeletePod) and action.why == "Recreate":
                memory.recreating.add(action.well)
            elif isinstance(action, CreatePod):
                memory.recreating.discard(action.target.well)

        def done(action: Action, outcome: ExecutionResult) -> None:
            well = action_well(action)
            if memory.in_flight.get(well) is action:
                del memory.in_flight[well]
            for stored in outcome.stored:
                self.observe_pod("MODIFIED", stored)
            for gone in outcome.gone:
                memory.pods.pop(gone, None)
            if outcome.failed:
                memory.not_before[well] = self.clock() + FAILED_ACTION_RETRY_SECONDS
            elif outcome.inconclusive:
                memory.not_before[well] = self.clock() + INCONCLUSIVE_RECHECK_SECONDS
            # The watch may have shown the outcome (a deleted pod gone, say) while the action
            # was still in flight, when _react had to leave the well alone.
            self._react(key, memory, well)
            self._wake(key, memory)

        async def carry_out() -> None:
            try:
                await self.executor.execute(fleet, actions, runtimes, pods, on_done=done)
            except Exception:
                logger.exception("actions for %s/%s crashed", *key)
            finally:
                for action in actions:  # nothing stays in flight forever
                    if memory.in_flight.get(action_well(action)) is action:
                        del memory.in_flight[action_well(action)]
                self._wake(key, memory)

        task = asyncio.get_running_loop().create_task(
            carry_out(), name=f"actions {key[0]}/{key[1]}"
        )
        memory.batches.add(task)
        task.add_done_callback(memory.batches.discard)

    async def _report(
        self,
        fleet: FleetRef,
        memory: FleetMemory,
        spec: ModelDeploymentSpec,
        update: Revision,
        plan: FleetPlan,
        meta: Mapping[str, Any],
    ) -> None:
        previous = memory.last_status or {}
        ctx = StatusContext(
            generation=int(meta.get("generation") or 0),
            model=f"{spec.model.name}@{spec.model.version}",
            update_revision=update.name,
            now=self.clock(),
        )
        status = build_status(plan, previous, ctx)
        for state_name, count in (
            ("ready", plan.ready),
            ("updated", plan.updated),
            ("available", plan.available),
            ("unavailable", plan.unavailable),
            ("bundle_invalid", plan.bundle_invalid),
        ):
            WELLS.labels(fleet.namespace, fleet.name, state_name).set(count)
        events = status_events(plan, previous, status)
        if await self._publish(fleet, memory, status):
            for etype, reason, message in events:
                await self.executor.post_event(fleet, etype, reason, message)

    async def _publish(
        self, fleet: FleetRef, memory: FleetMemory, status: Mapping[str, Any]
    ) -> bool:
        """Export the fleet's phase; write its status if a reader would see a difference.
        Whether it was written."""
        _export_phase(fleet, status)
        if _same_status(status, memory.last_status or {}):
            return False
        stored = await self.executor.write_status(fleet, status)
        memory.last_status = stored.get("status") or status
        if memory.body is not None and _rv(stored) >= _rv(memory.body):
            memory.body = stored
        return True

    async def _inventory_sources(
        self, namespace: str, names: frozenset[str]
    ) -> dict[str, InventorySource | None]:
        """What the watch holds of each ConfigMap; one read of a reference it has not seen.

        The watch drops ConfigMaps no fleet referenced when they arrived, so a new reference
        (a fleet created after its ConfigMaps, or a spec edited to name another one) is read
        once; from then on the watch keeps it current.
        """
        sources: dict[str, InventorySource | None] = {}
        for name in sorted(names):
            key = (namespace, name)
            if key not in self.config_maps:
                await self._read_config_map(key)
            cached = self.config_maps.get(key)
            sources[name] = cached.source if cached is not None else None
        return sources

    async def _read_config_map(self, key: ConfigMapKey) -> None:
        path = namespaced("v1", key[0], "configmaps", key[1])
        body: dict[str, Any] | None
        try:
            body = await self.executor.client.get(path, "configmaps")
        except KubeApiError as exc:
            if not exc.not_found:
                raise
            body = None
        if key in self.config_maps or not self._readers_of(key):
            return  # the watch delivered it meanwhile (newer), or nobody needs it any more
        source = InventorySource.from_config_map(body) if body is not None else None
        self.config_maps[key] = _CachedConfigMap(_rv(body) if body else 0, source)

    async def _report_inventory_failure(
        self,
        fleet: FleetRef,
        memory: FleetMemory,
        spec: ModelDeploymentSpec,
        error: InventoryError,
        meta: Mapping[str, Any],
    ) -> None:
        """Status says Degraded with the inventory's reason; one Warning event per new error."""
        previous = memory.last_status or {}
        status = failure_status(
            previous,
            error,
            generation=int(meta.get("generation") or 0),
            model=f"{spec.model.name}@{spec.model.version}",
            now=self.clock(),
        )
        reported = failure_of(previous)
        if not await self._publish(fleet, memory, status):
            return
        logger.warning("%s/%s: %s: %s", fleet.namespace, fleet.name, error.reason, error)
        if reported != (error.reason.value, error.message[:1024]):
            await self.executor.post_event(fleet, "Warning", error.reason.value, error.message)

    async def _revisions(
        self, fleet: FleetRef, memory: FleetMemory, update: Revision, history_limit: int
    ) -> dict[str, dict[str, Any]]:
        """ControllerRevisions of the fleet; records the update revision, prunes old ones."""
        if memory.revisions is None:
            memory.revisions = await self.executor.list_revisions(fleet)
        revisions = memory.revisions
        if update.name not in revisions:
            number = max((int(r.get("revision", 0)) for r in revisions.values()), default=0) + 1
            revisions[update.name] = await self.executor.record_revision(fleet, update, number)
            current = (memory.last_status or {}).get("currentRevision")
            keep = {update.name, current}
            old = sorted(
                (r for name, r in revisions.items() if name not in keep),
                key=lambda r: int(r.get("revision", 0)),
            )
            for item in old[: max(0, len(old) - history_limit)]:
                name = item["metadata"]["labels"]["modelfleet.dev/revision"]
                await self.executor.delete_revision(fleet, item["metadata"]["name"])
                del revisions[name]
        return revisions


def _export_phase(fleet: FleetRef, status: Mapping[str, Any]) -> None:
    for phase in Phase:
        FLEET_PHASE.labels(fleet.namespace, fleet.name, phase.value).set(
            1 if status.get("phase") == phase.value else 0
        )


def _generation(body: Mapping[str, Any]) -> int:
    return int((body.get("metadata") or {}).get("generation") or 0)


def _disrupts(action: Action) -> bool:
    """Whether the action makes its well unavailable until it is confirmed again."""
    if isinstance(action, DeletePod):
        return True
    return isinstance(action, RetargetPod) and action.swaps_bundle


def _same_status(new: Mapping[str, Any], old: Mapping[str, Any]) -> bool:
    """Equal as a reader sees them (the apiserver drops nulls from merge patches)."""

    def strip(value: Any) -> Any:
        if isinstance(value, dict):
            return {k: strip(v) for k, v in value.items() if v is not None and v != []}
        if isinstance(value, list):
            return [strip(v) for v in value]
        return value

    return bool(strip(dict(new)) == strip(dict(old)))
