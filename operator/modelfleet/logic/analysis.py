"""The canary analysis: queries rendered for the canary wells, one measurement's verdict from
their answers, and the analysis' progress over measurements.

Semantics (Argo Rollouts' Successful / Failed / Inconclusive, decided differently where its
users got hurt):
- Every series of every answer is a measurement of its own, labels kept: a failing one names
  its well and model. Argo reads `result[0]` of an unordered vector.
- Missing data never passes and never fails: Prometheus unreachable or refusing the query
  (bad PromQL included: the spec is fixed by a new generation, which starts a new analysis),
  a malformed answer, an empty vector (argo-rollouts#1466 aborted on it, Flagger fails it),
  NaN or an infinite value, a canary well with fewer than `minRows` rows in its window, or no
  window series at all: Inconclusive, and the roll-out holds.
- One failing series fails the measurement, and one failed measurement fails the analysis
  (Argo's default failureLimit 0); `measurements` passing ones in a row pass it, an
  inconclusive one starts the count again.
"""

from __future__ import annotations

import math
import re
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from modelfleet.api.spec import (
    FLEET_PLACEHOLDER,
    MAX_ANALYSIS_RESULTS,
    NAMESPACE_PLACEHOLDER,
    WELLS_PLACEHOLDER,
    Analysis,
    AnalysisPhase,
    AnalysisQuery,
    ComparisonOperator,
)
from modelfleet.logic.fleet_monitoring import FailedQuery, fleet_selector
from modelfleet.logic.prometheus_answer import Sample
from runtime_contract import monitoring as metrics

_RE2_SPECIAL = re.compile(r"[\\.+*?()|\[\]{}^$]")

#: A query's outcome: its samples, or why there are none.
QueryOutcome = tuple[Sample, ...] | FailedQuery


def wells_regex(wells: Collection[str]) -> str:
    """An alternation matching exactly these well ids (Prometheus anchors regex matchers),
    escaped for a PromQL double-quoted string."""
    pattern = "|".join(_RE2_SPECIAL.sub(r"\\\g<0>", w) for w in sorted(wells))
    return pattern.replace("\\", "\\\\").replace('"', '\\"')


def render_query(query: str, wells: Collection[str], namespace: str, fleet: str) -> str:
    """The query with its placeholders filled in (values escaped for a PromQL string)."""
    return (
        query.replace(WELLS_PLACEHOLDER, wells_regex(wells))
        .replace(NAMESPACE_PLACEHOLDER, _in_string(namespace))
        .replace(FLEET_PLACEHOLDER, _in_string(fleet))
    )


def _in_string(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"')


def traffic_query(
    namespace: str, fleet: str, wells: Collection[str], digests: Collection[str] = ()
) -> str:
    """Rows in each canary well's monitoring window: the minimum-traffic guard.

    With the canary's bundle digests, only wells whose last scrape shows one of them serving
    answer: an in-place swap starts fresh windows, but until Prometheus scrapes the pod again
    its series are the old bundle's, and a measurement must not judge the new version on them.
    """
    sel = fleet_selector(namespace, fleet, f'well=~"{wells_regex(wells)}"')
    rows = f"min by (well) ({metrics.WINDOW_ROWS_MIN}{sel})"
    if not digests:
        return rows
    serving = fleet_selector(
        namespace,
        fleet,
        f'well=~"{wells_regex(wells)}", digest=~"{wells_regex(digests)}"',
    )
    return f"{rows} and on (well) max by (well) ({metrics.BUNDLE_INFO}{serving})"


def meets(value: float, operator: ComparisonOperator, threshold: float) -> bool:
    match operator:
        case ComparisonOperator.LESS_THAN:
            return value < threshold
        case ComparisonOperator.LESS_OR_EQUAL:
            return value <= threshold
        case ComparisonOperator.GREATER_THAN:
            return value > threshold
        case ComparisonOperator.GREATER_OR_EQUAL:
            return value >= threshold


class MeasurementVerdict(StrEnum):
    PASSED = "Passed"
    FAILED = "Failed"
    INCONCLUSIVE = "Inconclusive"


@dataclass(frozen=True)
class SeriesResult:
    query: str
    sample: Sample
    passed: bool


@dataclass(frozen=True)
class Measurement:
    verdict: MeasurementVerdict
    message: str
    results: tuple[SeriesResult, ...] = ()  # failing first


_SYMBOL = {
    ComparisonOperator.LESS_THAN: "<",
    ComparisonOperator.LESS_OR_EQUAL: "<=",
    ComparisonOperator.GREATER_THAN: ">",
    ComparisonOperator.GREATER_OR_EQUAL: ">=",
}


def describe(sample: Sample) -> str:
    """`{well="fr-0001", model="m3"}`: the series' labels, as PromQL writes them."""
    labels = ", ".join(f'{k}="{v}"' for k, v in sample.labels if k != "__name__")
    return "{" + labels + "}"


def _traffic_problem(
    outcome: QueryOutcome | None, wells: Collection[str], min_rows: int
) -> str | None:
    if outcome is None:
        return None
    if isinstance(outcome, FailedQuery):
        return f"traffic guard: {outcome.message}"
    rows = {s.label("well"): s.value for s in outcome}
    for well in sorted(wells):
        seen = rows.get(well)
        if seen is None:
            return (
                f"canary well {well} has no monitoring series of its new bundle in Prometheus "
                "(not scraped since the swap, or no PodMonitor)"
            )
        if not seen >= min_rows:  # NaN too
            return f"canary well {well} has {seen:g} rows in its window (minRows {min_rows})"
    return None


def measure(
    analysis: Analysis,
    canary: Collection[str],
    answers: Mapping[str, QueryOutcome],
    traffic: QueryOutcome | None,
) -> Measurement:
    """One measurement's verdict. `answers` by query name; `traffic` is the guard's answer
    (None when minRows is 0)."""
    problem = _traffic_problem(traffic, canary, analysis.min_rows)
    if problem is not None:
        return Measurement(MeasurementVerdict.INCONCLUSIVE, problem)
    results: list[SeriesResult] = []
    inconclusive: list[str] = []
    failures: list[str] = []
    for check in analysis.queries:
        outcome = answers.get(check.name)
        if outcome is None:
            inconclusive.append(f"{check.name}: not measured")
            continue
        if isinstance(outcome, FailedQuery):
            inconclusive.append(f"{check.name}: {outcome.message}")
            continue
        if not outcome:
            inconclusive.append(f"{check.name}: the query returned no series")
            continue
        for s in outcome:
            if not math.isfinite(s.value):
                inconclusive.append(f"{check.name}: {describe(s)} is {s.raw}")
                continue
            ok = meets(s.value, check.operator, check.threshold)
            results.append(SeriesResult(check.name, s, ok))
            if not ok:
                failures.append(_failure(check, s))
    results.sort(key=lambda r: r.passed)  # failing first (a stable sort keeps the order)
    if failures:
        more = f" (and {len(failures) - 3} more)" if len(failures) > 3 else ""
        return Measurement(
            MeasurementVerdict.FAILED, "; ".join(failures[:3]) + more, tuple(results)
        )
    if inconclusive:
        return Measurement(MeasurementVerdict.INCONCLUSIVE, "; ".join(inconclusive), tuple(results))
    return Measurement(
        MeasurementVerdict.PASSED,
        f"{len(results)} series of {len(analysis.queries)} queries meet their thresholds",
        tuple(results),
    )


def _failure(check: AnalysisQuery, s: Sample) -> str:
    return (
        f"{check.name} {describe(s)} = {s.raw}, needs {_SYMBOL[check.operator]} {check.threshold:g}"
    )


@dataclass(frozen=True)
class AnalysisState:
    """The analysis of one revision, as status.analysis keeps it."""

    revision: str
    phase: AnalysisPhase
    successful: int = 0
    measured_at: str | None = None
    message: str = ""
    results: tuple[dict[str, Any], ...] = field(default=())

    def as_status(self) -> dict[str, Any]:
        return {
            "revision": self.revision,
            "phase": self.phase.value,
            "successfulMeasurements": self.successful,
            "measuredAt": self.measured_at,
            "message": self.message[:1024],
            "results": list(self.results),
        }


def state_from_status(status: Mapping[str, Any] | None, revision: str) -> AnalysisState | None:
    """The persisted analysis of this revision (None: another revision's, or none)."""
    if not status or status.get("revision") != revision:
        return None
    try:
        phase = AnalysisPhase(str(status.get("phase")))
    except ValueError:
        return None
    return AnalysisState(
        revision=revision,
        phase=phase,
        successful=int(status.get("successfulMeasurements") or 0),
        measured_at=status.get("measuredAt"),
        message=str(status.get("message") or ""),
        results=tuple(status.get("results") or ()),
    )


def _result_status(r: SeriesResult) -> dict[str, Any]:
    labels = {k: v for k, v in r.sample.labels if k != "__name__"}
    return {"query": r.query, "value": r.sample.raw, "passed": r.passed, "labels": labels}


def advance(
    previous: AnalysisState | None,
    revision: str,
    measurement: Measurement,
    required: int,
    measured_at: str,
) -> AnalysisState:
    """The analysis after one more measurement. A decided analysis stays decided."""
    if previous is not None and previous.phase in (AnalysisPhase.SUCCESSFUL, AnalysisPhase.FAILED):
        return previous
    successful = previous.successful if previous is not None else 0
    results = tuple(_result_status(r) for r in measurement.results[:MAX_ANALYSIS_RESULTS])
    match measurement.verdict:
        case MeasurementVerdict.FAILED:
            phase, message = AnalysisPhase.FAILED, measurement.message
        case MeasurementVerdict.INCONCLUSIVE:
            successful = 0
            phase, message = AnalysisPhase.INCONCLUSIVE, measurement.message
        case MeasurementVerdict.PASSED:
            successful += 1
            done = successful >= required
            phase = AnalysisPhase.SUCCESSFUL if done else AnalysisPhase.RUNNING
            message = f"{successful} of {required} measurements passed: {measurement.message}"
    return AnalysisState(revision, phase, successful, measured_at, message, results)


class AnalysisGate(StrEnum):
    """What the planner does with the canary analysis."""

    NONE = "None"
    """No analysis applies: the canary alone gates."""
    HOLD = "Hold"
    """Not decided (pending, running, inconclusive): only the canary wells move."""
    PASSED = "Passed"
    FAILED = "Failed"
    """Roll back (with autoRollback), else hold."""


def gate_of(state: AnalysisState | None) -> AnalysisGate:
    if state is None:
        return AnalysisGate.HOLD
    if state.phase is AnalysisPhase.SUCCESSFUL:
        return AnalysisGate.PASSED
    if state.phase is AnalysisPhase.FAILED:
        return AnalysisGate.FAILED
    return AnalysisGate.HOLD


def analysis_applies(
    analysis: Analysis | None, current_revision: str | None, update_revision: str
) -> bool:
    """A roll-out from a known-good revision to another, with analysis in the spec. The first
    roll-out of a fleet has nothing to roll back to and nothing to compare with: no analysis."""
    return (
        analysis is not None
        and current_revision is not None
        and current_revision != update_revision
    )


def measurement_queries(
    analysis: Analysis, canary: Collection[str], namespace: str, fleet: str
) -> Sequence[tuple[str, str]]:
    """(name, PromQL) of each check, for these canary wells of this fleet."""
    return [(q.name, render_query(q.query, canary, namespace, fleet)) for q in analysis.queries]
