"""A fleet's functional monitoring, from ONE Prometheus query into status.monitoring and the
ModelsHealthy condition.

The query (`fleet_query`) asks for everything at once, each part tagged with a `part` label by
`label_replace`: the 20 wells with the largest feature PSI (with the model and feature of the
argmax, which the runtime's worst-of gauge carries), and counts of wells reporting, drifting,
missing data, stale, with too little data. Counts use `count(...) or vector(0)`, so a part
that matches nothing still answers 0, and an answer without a part is malformed, not "0".
The cost is one request per fleet per interval whatever the number of wells; Prometheus does
the aggregation over the fleet's series (one series per pod per gauge).

Pure: `snapshot_from_samples` reads the samples, `monitoring_status` and `models_healthy` say
what status shows. PSI values are rounded to 3 decimals in status so scrape-to-scrape noise
below that does not rewrite status every interval.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from modelfleet.api.spec import MAX_WORST_WELLS, DriftThresholds, ModelsHealthReason
from modelfleet.logic.prometheus_answer import AnswerProblem, AnswerRefused, Sample
from runtime_contract import monitoring as metrics

PART_LABEL = "part"


class Part(StrEnum):
    WORST = "worst"
    REPORTING = "reporting"
    DRIFTING = "drifting"
    MISSING = "missing"
    STALE = "stale"
    INSUFFICIENT = "insufficient"


def promql_string(value: str) -> str:
    """A PromQL double-quoted string literal."""
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n") + '"'


def fleet_selector(namespace: str, fleet: str, extra: str = "") -> str:
    """The label matchers of one fleet's series (the PodMonitor's `namespace` and `fleet`)."""
    matchers = f"namespace={promql_string(namespace)},fleet={promql_string(fleet)}"
    return "{" + matchers + (f",{extra}" if extra else "") + "}"


def _tag(expr: str, part: Part) -> str:
    return f'label_replace({expr}, "{PART_LABEL}", "{part.value}", "", "")'


def _count(expr: str) -> str:
    return f"count({expr}) or vector(0)"


def fleet_query(namespace: str, fleet: str, thresholds: DriftThresholds) -> str:
    """The one query of a fleet's monitoring interval."""
    sel = fleet_selector(namespace, fleet)
    insufficient = fleet_selector(namespace, fleet, 'verdict="insufficient_data"')
    by_well = "by (well)"
    parts = [
        _tag(
            f"topk({MAX_WORST_WELLS}, max by (well, model, feature) "
            f"({metrics.FEATURE_PSI_WORST}{sel}))",
            Part.WORST,
        ),
        _tag(_count(f"max {by_well} ({metrics.WINDOW_ROWS_MIN}{sel})"), Part.REPORTING),
        _tag(
            _count(
                f"max {by_well} ({metrics.FEATURE_PSI_WORST}{sel}) > {thresholds.feature_psi!r}"
                f" or max {by_well} ({metrics.PREDICTION_PSI_WORST}{sel})"
                f" > {thresholds.prediction_psi!r}"
            ),
            Part.DRIFTING,
        ),
        _tag(
            _count(
                f"max {by_well} ({metrics.MISSING_RATE_WORST}{sel}) > {thresholds.missing_rate!r}"
            ),
            Part.MISSING,
        ),
        _tag(
            _count(
                f"min {by_well} ({metrics.LAST_ROW_AGE_SECONDS}{sel}) > {thresholds.stale_seconds}"
            ),
            Part.STALE,
        ),
        _tag(_count(f"max {by_well} ({metrics.MODELS}{insufficient}) > 0"), Part.INSUFFICIENT),
    ]
    return " or ".join(parts)


@dataclass(frozen=True)
class WorstWellSample:
    well: str
    model: str
    feature: str
    psi: float


@dataclass(frozen=True)
class FleetSnapshot:
    """What one answer says of the fleet."""

    reporting: int
    drifting: int
    missing: int
    stale: int
    insufficient: int
    worst: tuple[WorstWellSample, ...]  # largest PSI first, one entry per well, at most 20


_COUNT_PARTS = (Part.REPORTING, Part.DRIFTING, Part.MISSING, Part.STALE, Part.INSUFFICIENT)


def snapshot_from_samples(samples: Sequence[Sample]) -> FleetSnapshot:
    """Read the tagged parts of `fleet_query`'s answer; raises AnswerRefused if a count is
    missing, repeated or not a non-negative whole number."""
    counts: dict[Part, int] = {}
    worst: dict[str, WorstWellSample] = {}
    for s in samples:
        part = s.label(PART_LABEL)
        if part == Part.WORST:
            well = s.label("well")
            if not well or math.isnan(s.value):
                continue  # a series without a well label, or PSI without a verdict
            seen = worst.get(well)
            if seen is None or s.value > seen.psi:  # two pods of one well: the larger
                worst[well] = WorstWellSample(well, s.label("model"), s.label("feature"), s.value)
        elif part in _COUNT_PARTS:
            key = Part(part)
            if key in counts:
                raise AnswerRefused(AnswerProblem.MALFORMED, f"part {part} answered twice")
            if not (math.isfinite(s.value) and s.value >= 0 and s.value == int(s.value)):
                raise AnswerRefused(AnswerProblem.MALFORMED, f"part {part} is not a count: {s.raw}")
            counts[key] = int(s.value)
        else:
            raise AnswerRefused(
                AnswerProblem.MALFORMED, f"series {dict(s.labels)} is no part of the query"
            )
    missing = [p.value for p in _COUNT_PARTS if p not in counts]
    if missing:
        raise AnswerRefused(AnswerProblem.MALFORMED, f"answer lacks {', '.join(missing)}")
    ranked = sorted(worst.values(), key=lambda w: (-w.psi, w.well))[:MAX_WORST_WELLS]
    return FleetSnapshot(
        reporting=counts[Part.REPORTING],
        drifting=counts[Part.DRIFTING],
        missing=counts[Part.MISSING],
        stale=counts[Part.STALE],
        insufficient=counts[Part.INSUFFICIENT],
        worst=tuple(ranked),
    )


class QueryFailure(StrEnum):
    """Why a query gave no answer to read."""

    UNREACHABLE = "Unreachable"
    """No HTTP answer (refused, timeout), a 5xx, or no token to send."""
    ERROR = "Error"
    """An answer that is an error or not the expected shape."""


@dataclass(frozen=True)
class FailedQuery:
    failure: QueryFailure
    message: str


def failed_from_refusal(refused: AnswerRefused) -> FailedQuery:
    return FailedQuery(QueryFailure.ERROR, refused.message)


def _psi(value: float) -> float:
    return round(value, 3) if math.isfinite(value) else value


def monitoring_status(
    outcome: FleetSnapshot | FailedQuery, observed_at: str, previous: dict[str, Any] | None
) -> dict[str, Any]:
    """status.monitoring for an answer; after a failed query, the last values and the error."""
    if isinstance(outcome, FailedQuery):
        kept = dict(previous or {})
        kept["error"] = outcome.message[:512]
        return kept
    return {
        "observedAt": observed_at,
        "wellsReporting": outcome.reporting,
        "wellsOverThreshold": outcome.drifting,
        "wellsMissingData": outcome.missing,
        "wellsStale": outcome.stale,
        "wellsInsufficientData": outcome.insufficient,
        "worstWells": [
            {"well": w.well, "model": w.model, "feature": w.feature, "psi": _psi(w.psi)}
            for w in outcome.worst
        ],
        "error": None,
    }


def same_answer(a: dict[str, Any] | None, b: dict[str, Any] | None) -> bool:
    """Equal but for observedAt: an unchanged answer is not worth a status write."""

    def strip(d: dict[str, Any] | None) -> dict[str, Any]:
        return {k: v for k, v in (d or {}).items() if k != "observedAt"}

    return strip(a) == strip(b)


def models_healthy(
    outcome: FleetSnapshot | FailedQuery, thresholds: DriftThresholds, wells: int
) -> tuple[str, ModelsHealthReason, str]:
    """(status, reason, message) of the ModelsHealthy condition: the first problem that
    applies, in the order of ModelsHealthReason."""
    if isinstance(outcome, FailedQuery):
        reason = (
            ModelsHealthReason.PROMETHEUS_UNREACHABLE
            if outcome.failure is QueryFailure.UNREACHABLE
            else ModelsHealthReason.PROMETHEUS_ERROR
        )
        return "Unknown", reason, outcome.message
    s = outcome
    if s.reporting == 0:
        return (
            "Unknown",
            ModelsHealthReason.NO_DATA,
            f"none of the {wells} wells has monitoring series in Prometheus "
            "(is the runtime PodMonitor installed?)",
        )
    of = f"of {s.reporting} reporting wells"
    if s.drifting:
        worst = ""
        if s.worst:
            w = s.worst[0]
            worst = f"; worst: well {w.well} model {w.model} feature {w.feature} PSI {_psi(w.psi)}"
        return (
            "False",
            ModelsHealthReason.DRIFTING,
            f"{s.drifting} {of} drift beyond PSI {thresholds.feature_psi} (features) or "
            f"{thresholds.prediction_psi} (predictions){worst}",
        )
    if s.missing:
        return (
            "False",
            ModelsHealthReason.DATA_MISSING,
            f"{s.missing} {of} miss more than {thresholds.missing_rate:.0%} of a feature",
        )
    if s.stale:
        return (
            "False",
            ModelsHealthReason.DATA_STALE,
            f"{s.stale} {of} saw no row for more than {thresholds.stale_seconds}s",
        )
    if s.insufficient >= s.reporting:
        return (
            "Unknown",
            ModelsHealthReason.INSUFFICIENT_DATA,
            f"all {s.reporting} reporting wells have too few rows in their window for a verdict",
        )
    detail = f"; {s.insufficient} with too few rows for a verdict" if s.insufficient else ""
    silent = f"; {wells - s.reporting} wells report nothing" if s.reporting < wells else ""
    return (
        "True",
        ModelsHealthReason.AS_EXPECTED,
        f"{s.reporting} wells report, none drifts{detail}{silent}",
    )
