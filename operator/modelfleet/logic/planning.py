"""Reconcile planning: from desired wells and observed pods to the next actions and the status.

`plan_fleet` is a pure function of plain data (no clock, no API): given the spec, the revisions,
the pods as last observed, the roll-out state kept in status and the time, it returns the
writes to make now and the status to report. The executor carries the plan out; the next
observation feeds the next plan. Executing a plan and planning again yields nothing new, which
is what keeps steady state at zero writes.

Budget rule (the Deployment controller's): at any instant at most `maxUnavailable` wells may be
unavailable, and wells that are already unavailable count against it. A well being updated
counts as unavailable from the moment its pod is touched until the runtime has confirmed the
new bundle and minReadySeconds have passed.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from enum import StrEnum

from modelfleet.api.spec import LabelSelector, RolloutPolicy, Well
from modelfleet.logic.actions import (
    Action,
    ConfirmBundle,
    CreatePod,
    DeletePod,
    DeleteReason,
    RetargetPod,
)
from modelfleet.logic.analysis import AnalysisGate
from modelfleet.logic.availability import as_seen, counts_unavailable
from modelfleet.logic.revisions import Revision, WellTarget, well_target
from modelfleet.logic.wellpod import WellPod
from runtime_contract.pod import GateReason

#: How long an Unreachable bundle report stands before the pod is probed again.
UNREACHABLE_RETRY_SECONDS = 15.0
#: A pod's runtime is asked for its bundle once the kubelet says it is ready (before that it is
#: still loading: a read is a 503 or an empty answer). One still not ready this long after it
#: started is asked anyway, and again after as long: a runtime that refused its bundle stays
#: unready, and the refusal is a verdict to record.
NOT_READY_PROBE_SECONDS = 30.0


# ------------------------------------------------------------------------------------- inputs


@dataclass(frozen=True)
class RolloutState:
    """What the planner needs to remember between reconciles; kept in the resource's status."""

    current_revision: str | None = None
    rolled_back_from: str | None = None
    last_progress: float | None = None
    progress_mark: tuple[int, int] = (0, 0)  # (updated, available) at the previous reconcile


@dataclass(frozen=True)
class FleetInput:
    wells: Sequence[Well]
    update: Revision
    current: Revision | None  # the last fully available revision, from its ControllerRevision
    policy: RolloutPolicy
    state: RolloutState
    pods: Mapping[str, WellPod]  # by well id, as the watch last showed them
    stray_pods: Sequence[WellPod] = ()  # owned pods of wells no longer in spec
    now: float = 0.0
    # Actions started earlier and not finished, by well: not repeated, and a delete or swap
    # under way counts its well unavailable (availability.counts_unavailable).
    in_flight: Mapping[str, Action] = field(default_factory=dict)
    # The canary analysis of the update revision (logic.analysis): HOLD keeps the roll-out on
    # the canary wells, FAILED rolls back like an exceeded deadline (with autoRollback).
    analysis: AnalysisGate = AnalysisGate.NONE
    analysis_message: str = ""


# ------------------------------------------------------------------------------------ outputs


class WellProblem(StrEnum):
    """Why a well is unhealthy, as the planner sees it (the runtime's and the kubelet's own
    reasons pass through as they are)."""

    POD_MISSING = "PodMissing"
    TERMINATING = "Terminating"
    PENDING = "Pending"
    NOT_READY = "NotReady"
    BUNDLE_INVALID = GateReason.BUNDLE_INVALID.value


@dataclass(frozen=True)
class UnhealthyWellReport:
    well: str
    reason: str  # a WellProblem, or the runtime's or kubelet's reason
    message: str


@dataclass
class FleetPlan:
    actions: list[Action] = field(default_factory=list)
    target_revision: str = ""
    wells: int = 0
    ready: int = 0
    updated: int = 0
    available: int = 0
    unavailable: int = 0
    max_unavailable: int = 0
    rollout_done: bool = False  # every well's pod is on the target and serves its bundle
    complete: bool = False  # ... and every well is available: the target becomes current
    paused: bool = False
    canary_wells: int = 0
    canary_done: bool = True
    analysis_hold: bool = False  # the canary is done; its analysis has not passed yet
    analysis_failed: bool = False  # the update revision failed its analysis
    deadline_exceeded: bool = False
    rolled_back: bool = False
    state: RolloutState = field(default_factory=RolloutState)
    unhealthy: list[UnhealthyWellReport] = field(default_factory=list)
    bundle_invalid: int = 0
    versions: dict[tuple[str, str], int] = field(default_factory=dict)  # (version, rev) -> wells
    started_updates: int = 0
    events: list[tuple[str, str, str]] = field(default_factory=list)  # (type, reason, message)
    targets: dict[str, WellTarget] = field(default_factory=dict)  # what each well converges to
    # The budget ledger's starting point (see BudgetLedger): wells counted unavailable once the
    # plan's actions start, and the disruptive updates the budget left for later, in order.
    unavailable_wells: set[str] = field(default_factory=set)
    deferred: list[Action] = field(default_factory=list)


# ------------------------------------------------------------------------------- arithmetic


def resolve_max_unavailable(value: int | str, wells: int) -> int:
    """Int or percent of the fleet, rounded down; never below 1 (maxSurge is always 0)."""
    count = wells * int(value.rstrip("%")) // 100 if isinstance(value, str) else value
    return max(1, min(count, max(wells, 1)))


def selector_matches(selector: LabelSelector, labels: Mapping[str, str]) -> bool:
    for key, value in (selector.match_labels or {}).items():
        if labels.get(key) != value:
            return False
    for req in selector.match_expressions or []:
        present = req.key in labels
        values = req.values or []
        if req.operator == "In" and (not present or labels[req.key] not in values):
            return False
        if req.operator == "NotIn" and present and labels[req.key] in values:
            return False
        if req.operator == "Exists" and not present:
            return False
        if req.operator == "DoesNotExist" and present:
            return False
    return True


def canary_wells(wells: Sequence[Well], policy: RolloutPolicy) -> set[str]:
    canary = policy.canary
    if canary is None:
        return set()
    if canary.wells is not None:
        return {w.id for w in wells[: canary.wells]}
    if canary.selector is not None:
        return {w.id for w in wells if selector_matches(canary.selector, w.labels or {})}
    return set()


def needs_recreate(pod: WellPod, target: WellTarget) -> bool:
    return pod.template_hash != target.template_hash


def on_target(pod: WellPod, target: WellTarget) -> bool:
    """The pod's labels and annotations already name the target."""
    return (
        pod.revision == target.revision
        and pod.template_hash == target.template_hash
        and pod.bundle_uri == target.bundle_uri
        and pod.bundle_digest == target.bundle_digest
    )


# ----------------------------------------------------------------------------------- planning


def _target_revision(inp: FleetInput) -> tuple[Revision, bool]:
    """The revision to converge to, and whether that is a rollback."""
    state = inp.state
    if state.rolled_back_from == inp.update.name and inp.current is not None:
        return inp.current, True
    return inp.update, False


def plan_fleet(inp: FleetInput) -> FleetPlan:
    """The next writes for one ModelDeployment, and the status they lead to."""
    policy, now = inp.policy, inp.now
    target_rev, rolled_back = _target_revision(inp)
    targets = {w.id: well_target(target_rev, w) for w in inp.wells}
    total = len(inp.wells)
    pods = as_seen(inp.pods, inp.in_flight)
    plan = FleetPlan(
        target_revision=target_rev.name,
        wells=total,
        max_unavailable=resolve_max_unavailable(policy.max_unavailable, total),
        paused=policy.paused,
        rolled_back=rolled_back,
    )

    for stray in inp.stray_pods:
        if not stray.deleting:
            plan.actions.append(
                DeletePod(stray.name, stray.uid, stray.well, DeleteReason.WELL_REMOVED)
            )

    available: dict[str, bool] = {}
    for w in inp.wells:
        available[w.id] = not counts_unavailable(
            inp.pods.get(w.id), inp.in_flight.get(w.id), now, policy.min_ready_seconds
        )
    plan.available = sum(available.values())
    plan.unavailable = total - plan.available

    pending_updates: list[tuple[Well, WellPod, WellTarget]] = []
    for w in inp.wells:
        target, pod = targets[w.id], pods.get(w.id)
        action = budget_free_action(pod, target, now)
        if action is not None:
            plan.actions.append(action)
        elif (
            pod is not None
            and not pod.deleting
            and not on_target(pod, target)
            and w.id not in inp.in_flight
        ):
            # A well with a write under way is not updated again (nor counted as an update
            # this plan starts: its WaveStarted would name wells no plan started).
            pending_updates.append((w, pod, target))

    _count_fleet(inp.wells, pods, targets, plan)
    canary = canary_wells(inp.wells, policy)
    plan.canary_wells = len(canary)
    plan.canary_done = all(
        on_target(pods[c], targets[c]) and available[c] for c in canary if c in pods
    ) and all(c in pods for c in canary)
    plan.rollout_done = plan.updated == total and not inp.stray_pods
    plan.complete = plan.rollout_done and plan.available == total

    plan.analysis_failed = inp.analysis is AnalysisGate.FAILED
    plan.analysis_hold = (
        bool(canary)
        and plan.canary_done
        and not rolled_back
        and inp.analysis in (AnalysisGate.HOLD, AnalysisGate.FAILED)
    )
    plan.unavailable_wells = {w for w, ok in available.items() if not ok}
    if not policy.paused:
        _plan_updates(plan, pending_updates, available, canary)

    _track_progress(inp, plan, target_rev)
    plan.targets = targets
    return plan


def budget_free_action(pod: WellPod | None, target: WellTarget, now: float) -> Action | None:
    """The write a well needs that costs no unavailability budget, if any.

    A missing pod is created and a pod on its target has its bundle confirmed whatever the
    budget (and even while paused): a missing pod is already unavailable, and confirming only
    ever makes a well available. The reconciler also calls this for one well as soon as its
    pod changes, so a recreated pod or a started runtime does not wait for the next full plan.
    """
    if pod is None:
        return CreatePod(target)
    if pod.deleting or not on_target(pod, target):
        return None
    if not pod.serves_own_target and _should_probe(pod, now):
        return ConfirmBundle(pod.name, target.well, pod.bundle_uri, pod.bundle_digest)
    return None


def _should_probe(pod: WellPod, now: float) -> bool:
    if pod.phase != "Running" or not pod.pod_ip:
        return False
    if not pod.containers_ready and not unready_for_long(pod, now):
        return False
    report = pod.bundle
    if report is None or report.uri != pod.bundle_uri or report.status == "True":
        return True  # never asked about this bundle, or asked about another digest
    if report.reason == GateReason.UNREACHABLE:
        return now - (report.probed_at or 0.0) >= UNREACHABLE_RETRY_SECONDS
    return False  # a definite refusal (BundleInvalid) stands until the target changes


def unready_for_long(pod: WellPod, now: float) -> bool:
    """Running without its containers ready for NOT_READY_PROBE_SECONDS or more."""
    return pod.started_at is not None and now - pod.started_at >= NOT_READY_PROBE_SECONDS


def _plan_updates(
    plan: FleetPlan,
    pending: list[tuple[Well, WellPod, WellTarget]],
    available: dict[str, bool],
    canary: set[str],
) -> None:
    """Pick which outdated pods to move now, within the unavailability budget."""
    if canary and (not plan.canary_done or plan.analysis_hold) and not plan.rolled_back:
        pending = [p for p in pending if p[0].id in canary]
    # Already-unavailable wells first: updating them costs no budget (Deployment does the same).
    pending.sort(key=lambda p: available[p[0].id])
    budget = plan.max_unavailable - plan.unavailable
    for well, pod, target in pending:
        bundle_changes = pod.bundle_uri != target.bundle_uri or (
            target.bundle_digest is not None and pod.bundle_digest != target.bundle_digest
        )
        if not needs_recreate(pod, target) and not bundle_changes:
            # Same template, same bundle: relabel only, the well stays available.
            plan.actions.append(RetargetPod(pod.name, target, swaps_bundle=False))
            continue
        action: Action = (
            DeletePod(pod.name, pod.uid, well.id, DeleteReason.RECREATE)
            if needs_recreate(pod, target)
            else RetargetPod(pod.name, target, swaps_bundle=True)
        )
        if available[well.id]:
            if budget <= 0:
                plan.deferred.append(action)
                continue
            budget -= 1
            plan.unavailable_wells.add(well.id)
        plan.started_updates += 1
        plan.actions.append(action)


def _count_fleet(
    wells: Sequence[Well],
    pods: Mapping[str, WellPod],
    targets: Mapping[str, WellTarget],
    plan: FleetPlan,
) -> None:
    reports: list[UnhealthyWellReport] = []
    for w in wells:
        pod, target = pods.get(w.id), targets[w.id]
        if pod is not None and not pod.deleting:
            if pod.ready:
                plan.ready += 1
                if pod.bundle is not None and pod.bundle.status == "True":
                    key = (pod.version, pod.revision)
                    plan.versions[key] = plan.versions.get(key, 0) + 1
            if on_target(pod, target) and pod.serves_own_target:
                plan.updated += 1
        report = _unhealthy_report(w.id, pod, target)
        if report is not None:
            if report.reason == WellProblem.BUNDLE_INVALID:
                plan.bundle_invalid += 1
            reports.append(report)
    # Bundle refusals first: they are what an operator must act on.
    reports.sort(key=lambda r: r.reason != WellProblem.BUNDLE_INVALID)
    plan.unhealthy = reports


def _unhealthy_report(
    well: str, pod: WellPod | None, target: WellTarget
) -> UnhealthyWellReport | None:
    if pod is None:
        return UnhealthyWellReport(
            well, WellProblem.POD_MISSING, "no pod yet; the operator creates it"
        )
    if pod.deleting:
        return UnhealthyWellReport(
            well, WellProblem.TERMINATING, f"pod {pod.name} is being deleted"
        )
    report = pod.bundle
    if report is not None and report.status == "False" and report.reason:
        return UnhealthyWellReport(well, report.reason, report.message)
    if pod.problem is not None:
        return UnhealthyWellReport(well, pod.problem[0], pod.problem[1])
    if pod.phase == "Pending":
        return UnhealthyWellReport(well, WellProblem.PENDING, f"pod {pod.name} is not running yet")
    if not pod.containers_ready:
        return UnhealthyWellReport(well, WellProblem.NOT_READY, "the runtime is not ready")
    return None


def _track_progress(inp: FleetInput, plan: FleetPlan, target_rev: Revision) -> None:
    """Progress deadline, rollback decision and the roll-out state to persist."""
    state, policy, now = inp.state, inp.policy, inp.now
    mark = (plan.updated, plan.available)
    last_progress: float | None = state.last_progress if state.last_progress is not None else now
    if mark[0] > state.progress_mark[0] or mark[1] > state.progress_mark[1]:
        last_progress = now
    if plan.rollout_done or policy.paused or (plan.analysis_hold and not plan.analysis_failed):
        # No deadline at rest, nor while paused, nor while the canary analysis decides (it
        # holds on missing data for as long as data is missing): it restarts afterwards.
        last_progress = None
    current = state.current_revision
    rolled_back_from = state.rolled_back_from
    if rolled_back_from is not None and rolled_back_from != inp.update.name:
        rolled_back_from = None  # the spec moved on: a new roll-out, no longer rolled back
    if plan.complete:
        current = target_rev.name
    exceeded = last_progress is not None and now - last_progress > policy.progress_deadline_seconds
    can_roll_back = (
        policy.auto_rollback
        and not plan.rolled_back
        and current is not None
        and current != inp.update.name
    )
    if plan.analysis_failed and can_roll_back:
        rolled_back_from = inp.update.name
        last_progress = now
        exceeded = False
        plan.rolled_back = True
        plan.events.append(
            (
                "Warning",
                "AnalysisFailed",
                f"canary analysis of revision {inp.update.name} failed: "
                f"{inp.analysis_message}; rolling back to revision {current}",
            )
        )
    if (
        exceeded
        and policy.auto_rollback
        and not plan.rolled_back
        and current is not None
        and current != inp.update.name
    ):
        rolled_back_from = inp.update.name
        last_progress = now  # the rollback gets its own deadline
        exceeded = False
        plan.rolled_back = True
        plan.events.append(
            (
                "Warning",
                "RolledBack",
                f"no progress for {policy.progress_deadline_seconds}s on revision "
                f"{inp.update.name}: rolling back to revision {current}",
            )
        )
    plan.deadline_exceeded = exceeded
    plan.state = RolloutState(
        current_revision=current,
        rolled_back_from=rolled_back_from,
        last_progress=last_progress,
        progress_mark=mark,
    )
