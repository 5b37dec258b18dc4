"""The ModelDeployment status and Events, derived from a plan and the previous status.

Pure: the same plan and previous status give the same status, byte for byte, so the executor
writes status only when something a reader can see has changed (zero writes at steady state).
Conditions follow metav1.Condition: lastTransitionTime moves only when the condition's status
does.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any

from modelfleet.api.spec import (
    MAX_UNHEALTHY_REPORTED,
    AnalysisPhase,
    ConditionType,
    ModelsHealthReason,
    Phase,
    Reason,
)
from modelfleet.logic.analysis import AnalysisState
from modelfleet.logic.planning import FleetPlan, RolloutState, WellProblem
from modelfleet.logic.wellpod import parse_time


def rfc3339(ts: float) -> str:
    return datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def rollout_state_from_status(status: Mapping[str, Any] | None) -> RolloutState:
    status = status or {}
    return RolloutState(
        current_revision=status.get("currentRevision"),
        rolled_back_from=status.get("rolledBackFrom"),
        last_progress=parse_time(status.get("lastProgressTime")),
        progress_mark=(int(status.get("updatedWells", 0)), int(status.get("availableWells", 0))),
    )


@dataclass(frozen=True)
class MonitoringView:
    """The fleet's last monitoring answer, as status shows it (logic.fleet_monitoring)."""

    status: dict[str, Any]  # status.monitoring
    healthy: tuple[str, ModelsHealthReason, str]  # the ModelsHealthy condition


@dataclass(frozen=True)
class StatusContext:
    generation: int
    model: str  # name@version in spec
    update_revision: str
    now: float


def _condition(
    previous: Mapping[str, Mapping[str, Any]],
    ctx: StatusContext,
    ctype: ConditionType,
    status: str,
    reason: StrEnum,
    message: str,
) -> dict[str, Any]:
    prev = previous.get(ctype.value)
    transition = (
        prev["lastTransitionTime"]
        if prev and prev.get("status") == status and prev.get("lastTransitionTime")
        else rfc3339(ctx.now)
    )
    return {
        "type": ctype.value,
        "status": status,
        "reason": reason.value,
        "message": message,
        "lastTransitionTime": transition,
        "observedGeneration": ctx.generation,
    }


def fleet_phase(plan: FleetPlan, current_revision: str | None) -> Phase:
    if plan.rolled_back or plan.deadline_exceeded:
        return Phase.DEGRADED
    if plan.rollout_done:
        healthy = plan.available >= plan.wells - plan.max_unavailable
        return Phase.AVAILABLE if healthy else Phase.DEGRADED
    if plan.paused:
        return Phase.PAUSED
    if current_revision is None and plan.ready == 0:
        return Phase.PENDING
    return Phase.PROGRESSING


def build_status(
    plan: FleetPlan,
    previous: Mapping[str, Any] | None,
    ctx: StatusContext,
    monitoring: MonitoringView | None = None,
    analysis: AnalysisState | None = None,
) -> dict[str, Any]:
    """The full status object to write for this plan."""
    prev_conditions = {c["type"]: c for c in (previous or {}).get("conditions") or []}
    state = plan.state
    phase = fleet_phase(plan, state.current_revision)
    enough = plan.available >= plan.wells - plan.max_unavailable
    target = plan.target_revision
    progress_msg = f"{plan.updated} of {plan.wells} wells serve revision {target}"

    available = _condition(
        prev_conditions,
        ctx,
        ConditionType.AVAILABLE,
        "True" if enough else "False",
        Reason.MINIMUM_WELLS_AVAILABLE if enough else Reason.MINIMUM_WELLS_UNAVAILABLE,
        f"{plan.available} of {plan.wells} wells available "
        f"(at most {plan.max_unavailable} may be unavailable)",
    )
    failed_analysis = (
        f"canary analysis of revision {ctx.update_revision} failed: "
        f"{analysis.message if analysis is not None else ''}"
    )
    if plan.rolled_back and plan.analysis_failed:
        prog = (
            "False",
            Reason.ANALYSIS_FAILED,
            f"{failed_analysis}; rolled back to revision {target}; {progress_msg}. "
            "Change the spec to roll out again.",
        )
    elif plan.analysis_failed:
        prog = (
            "False",
            Reason.ANALYSIS_FAILED,
            f"{failed_analysis}; the roll-out holds on the canary (no autoRollback or no "
            f"revision to roll back to); {progress_msg}",
        )
    elif plan.rolled_back:
        prog = (
            "False",
            Reason.ROLLED_BACK,
            f"rolled back from revision {ctx.update_revision} "
            f"to revision {target}; {progress_msg}. Change the spec to roll out again.",
        )
    elif plan.deadline_exceeded:
        prog = (
            "False",
            Reason.PROGRESS_DEADLINE_EXCEEDED,
            f"no progress for more than the progress deadline; {progress_msg}",
        )
    elif plan.rollout_done:
        prog = (
            "True",
            Reason.NEW_REVISION_AVAILABLE,
            f"revision {target} serves all {plan.wells} wells",
        )
    elif plan.paused:
        prog = ("Unknown", Reason.PAUSED, f"roll-out paused; {progress_msg}")
    elif plan.canary_wells and not plan.canary_done:
        prog = ("True", Reason.CANARY, f"canary of {plan.canary_wells} wells; {progress_msg}")
    elif plan.analysis_hold:
        inconclusive = analysis is not None and analysis.phase is AnalysisPhase.INCONCLUSIVE
        detail = analysis.message if analysis is not None else "waiting for the first measurement"
        prog = (
            "True",
            Reason.ANALYSIS_INCONCLUSIVE if inconclusive else Reason.ANALYSIS_RUNNING,
            f"canary of {plan.canary_wells} wells held for analysis"
            f"{' (inconclusive, the roll-out holds)' if inconclusive else ''}: {detail}",
        )
    else:
        prog = ("True", Reason.ROLLING_OUT, progress_msg)
    progressing = _condition(prev_conditions, ctx, ConditionType.PROGRESSING, *prog)

    if plan.analysis_failed and (plan.rolled_back or not plan.rollout_done):
        deg = ("True", Reason.ANALYSIS_FAILED, prog[2])
    elif plan.rolled_back:
        deg = ("True", Reason.ROLLED_BACK, prog[2])
    elif plan.deadline_exceeded:
        deg = ("True", Reason.PROGRESS_DEADLINE_EXCEEDED, prog[2])
    elif plan.bundle_invalid:
        deg = (
            "True",
            Reason.BUNDLE_INVALID,
            f"{plan.bundle_invalid} wells refused their bundle (see unhealthyWells)",
        )
    elif not enough:
        deg = ("True", Reason.WELLS_UNHEALTHY, available["message"])
    else:
        deg = ("False", Reason.AS_EXPECTED, "all wells as expected")
    degraded = _condition(prev_conditions, ctx, ConditionType.DEGRADED, *deg)

    conditions = [available, progressing, degraded]
    if monitoring is not None:
        conditions.append(
            _condition(prev_conditions, ctx, ConditionType.MODELS_HEALTHY, *monitoring.healthy)
        )
    if analysis is not None:
        verdict = {
            AnalysisPhase.SUCCESSFUL: "True",
            AnalysisPhase.FAILED: "False",
        }.get(analysis.phase, "Unknown")
        conditions.append(
            _condition(
                prev_conditions,
                ctx,
                ConditionType.ANALYSIS,
                verdict,
                analysis.phase,
                f"revision {analysis.revision}: {analysis.message}",
            )
        )
    status: dict[str, Any] = {
        "observedGeneration": ctx.generation,
        "model": ctx.model,
        "wells": plan.wells,
        "readyWells": plan.ready,
        "updatedWells": plan.updated,
        "availableWells": plan.available,
        "currentRevision": state.current_revision,
        "updateRevision": ctx.update_revision,
        "phase": phase.value,
        "conditions": conditions,
        "unhealthyWells": [
            {"well": r.well, "reason": r.reason, "message": r.message[:512]}
            for r in plan.unhealthy[:MAX_UNHEALTHY_REPORTED]
        ],
        "versions": [
            {"version": version, "revision": rev, "wells": count}
            for (version, rev), count in sorted(plan.versions.items())
        ],
        "lastProgressTime": (
            rfc3339(state.last_progress) if state.last_progress is not None else None
        ),
        "rolledBackFrom": state.rolled_back_from,
        "monitoring": monitoring.status if monitoring is not None else None,
        "analysis": analysis.as_status() if analysis is not None else None,
    }
    return status


def status_events(
    plan: FleetPlan, previous: Mapping[str, Any] | None, status: Mapping[str, Any]
) -> list[tuple[str, str, str]]:
    """Events for what changed at fleet level (never one per pod)."""
    prev = previous or {}
    events: list[tuple[str, str, str]] = []
    prev_prog = _reason(prev, ConditionType.PROGRESSING)
    new_prog = _reason(status, ConditionType.PROGRESSING)
    if prev.get("updateRevision") != status["updateRevision"]:
        events.append(
            (
                "Normal",
                "RolloutStarted",
                f"rolling out revision {status['updateRevision']} ({status['model']}) "
                f"to {plan.wells} wells",
            )
        )
    if prev_prog == Reason.CANARY.value and new_prog in (
        Reason.ROLLING_OUT.value,
        Reason.NEW_REVISION_AVAILABLE.value,
    ):
        events.append(
            (
                "Normal",
                "CanaryPassed",
                f"{plan.canary_wells} canary wells available on revision "
                f"{plan.target_revision}; continuing with the fleet",
            )
        )
    if plan.started_updates:
        events.append(
            (
                "Normal",
                "WaveStarted",
                f"updating {plan.started_updates} wells; {plan.updated} of {plan.wells} "
                f"on revision {plan.target_revision} (maxUnavailable "
                f"{plan.max_unavailable})",
            )
        )
    if new_prog != prev_prog:
        if new_prog == Reason.NEW_REVISION_AVAILABLE.value:
            events.append(
                (
                    "Normal",
                    "RolloutComplete",
                    f"revision {plan.target_revision} serves all {plan.wells} wells",
                )
            )
        elif new_prog == Reason.PROGRESS_DEADLINE_EXCEEDED.value:
            events.append(("Warning", "ProgressDeadlineExceeded", _message(status)))
        elif new_prog == Reason.PAUSED.value:
            events.append(("Normal", "RolloutPaused", _message(status)))
    if new_prog != prev_prog and new_prog == Reason.ANALYSIS_INCONCLUSIVE.value:
        events.append(("Warning", Reason.ANALYSIS_INCONCLUSIVE.value, _message(status)))
    prev_analysis = _reason(prev, ConditionType.ANALYSIS)
    if (
        _reason(status, ConditionType.ANALYSIS) == AnalysisPhase.SUCCESSFUL.value
        and prev_analysis != AnalysisPhase.SUCCESSFUL.value
    ):
        events.append(("Normal", "AnalysisPassed", _message(status, ConditionType.ANALYSIS)))
    healthy = _reason(status, ConditionType.MODELS_HEALTHY)
    prev_healthy = _reason(prev, ConditionType.MODELS_HEALTHY)
    first_and_fine = prev_healthy is None and healthy == ModelsHealthReason.AS_EXPECTED.value
    if healthy is not None and healthy != prev_healthy and not first_and_fine:
        etype = "Normal" if healthy == ModelsHealthReason.AS_EXPECTED.value else "Warning"
        events.append((etype, healthy, _message(status, ConditionType.MODELS_HEALTHY)))
    invalid = Reason.BUNDLE_INVALID.value
    if (
        _reason(status, ConditionType.DEGRADED) == invalid
        and _reason(prev, ConditionType.DEGRADED) != invalid
    ):
        first = next((r for r in plan.unhealthy if r.reason == WellProblem.BUNDLE_INVALID), None)
        detail = f": well {first.well}: {first.message}" if first else ""
        events.append(
            (
                "Warning",
                Reason.BUNDLE_INVALID.value,
                f"{plan.bundle_invalid} wells refused their bundle{detail}",
            )
        )
    events.extend(plan.events)
    return events


def _reason(status: Mapping[str, Any], ctype: ConditionType) -> str | None:
    for c in status.get("conditions") or []:
        if c.get("type") == ctype.value:
            return str(c.get("reason"))
    return None


def _message(status: Mapping[str, Any], ctype: ConditionType = ConditionType.PROGRESSING) -> str:
    for c in status.get("conditions") or []:
        if c.get("type") == ctype.value:
            return str(c.get("message"))
    return ""
