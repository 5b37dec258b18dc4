"""One fleet's Prometheus schedule: the monitoring query every interval, and the canary
analysis' measurements while a roll-out waits on them.

The worker configures it at every reconcile (what to query, which canary wells to analyse) and
reads back the last answers when it plans and publishes. The monitor sends exactly one
monitoring query per interval per fleet (never one per pod), and wakes the worker only when an
answer differs from the last one, so a fleet whose data does not change costs no status write.
What it knows is re-derivable: it starts from what status last said (a restarted operator
neither forgets an analysis' passing measurements nor measures again before the interval).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Protocol

from prometheus_client import Counter

from modelfleet.api.spec import (
    Analysis,
    AnalysisPhase,
    ConditionType,
    ModelsHealthReason,
    MonitoringSpec,
    PrometheusEndpoint,
)
from modelfleet.control.executor import Clock
from modelfleet.logic.analysis import (
    AnalysisState,
    QueryOutcome,
    advance,
    measure,
    measurement_queries,
    state_from_status,
    traffic_query,
)
from modelfleet.logic.fleet_monitoring import (
    FailedQuery,
    QueryFailure,
    failed_from_refusal,
    fleet_query,
    models_healthy,
    monitoring_status,
    same_answer,
    snapshot_from_samples,
)
from modelfleet.logic.fleet_status import MonitoringView, rfc3339
from modelfleet.logic.prometheus_answer import AnswerRefused
from modelfleet.logic.wellpod import parse_time

logger = logging.getLogger("modelfleet.control.monitoring")

PROMETHEUS_QUERIES = Counter(
    "modelfleet_operator_prometheus_queries",
    "Prometheus queries sent for a fleet, by purpose (monitoring, analysis) and result (ok, "
    "unreachable, error)",
    ["namespace", "deployment", "purpose", "result"],
)
QUERY_PURPOSES = ("monitoring", "analysis")
QUERY_RESULTS = ("ok", "unreachable", "error")


def forget_fleet_series(namespace: str, name: str) -> None:
    """The fleet is gone: so are its query counters."""
    for purpose in QUERY_PURPOSES:
        for result in QUERY_RESULTS:
            with contextlib.suppress(KeyError):
                PROMETHEUS_QUERIES.remove(namespace, name, purpose, result)


class PrometheusQuerier(Protocol):
    """io.prometheus.PrometheusClient, or a test's stand-in."""

    async def query(
        self, namespace: str, endpoint: PrometheusEndpoint, promql: str
    ) -> QueryOutcome: ...


@dataclass(frozen=True)
class AnalysisTarget:
    """Measure this revision on these canary wells."""

    revision: str
    canary: frozenset[str]
    analysis: Analysis
    # The canary wells' expected bundle digests; empty when one is unknown (an unpinned
    # bundle): the traffic guard then cannot tell the new bundle's series from the old one's.
    digests: frozenset[str] = frozenset()


def view_from_status(status: Mapping[str, Any]) -> MonitoringView | None:
    """What status last showed of monitoring, to start from after a restart."""
    shown = status.get("monitoring")
    condition = next(
        (
            c
            for c in status.get("conditions") or []
            if c.get("type") == ConditionType.MODELS_HEALTHY.value
        ),
        None,
    )
    if not isinstance(shown, dict) or condition is None:
        return None
    try:
        reason = ModelsHealthReason(condition.get("reason"))
    except ValueError:
        return None
    return MonitoringView(
        dict(shown), (str(condition.get("status")), reason, str(condition.get("message", "")))
    )


class FleetMonitor:
    def __init__(
        self,
        key: tuple[str, str],
        querier: PrometheusQuerier,
        clock: Clock,
        on_change: Callable[[], None],
    ) -> None:
        self.key = key
        self.querier = querier
        self.clock = clock
        self.on_change = on_change
        self.view: MonitoringView | None = None
        self.analysis: AnalysisState | None = None
        self._spec: MonitoringSpec | None = None
        self._wells = 0
        self._target: AnalysisTarget | None = None
        self._seeded = False
        self._monitor_task: asyncio.Task[None] | None = None
        self._analysis_task: asyncio.Task[None] | None = None
        self._kick = asyncio.Event()  # the spec changed: query again now

    # ------------------------------------------------------------------------ the worker's
    def configure(
        self,
        spec: MonitoringSpec | None,
        wells: int,
        target: AnalysisTarget | None,
        status: Mapping[str, Any],
        update_revision: str,
    ) -> None:
        """Called at every reconcile: what to query now. Cheap when nothing changed."""
        if not self._seeded:
            self._seeded = True
            self.view = view_from_status(status)
            self.analysis = state_from_status(status.get("analysis"), update_revision)
        if self.analysis is not None and self.analysis.revision != update_revision:
            self.analysis = None  # the spec moved on: that analysis no longer applies
        self._wells = wells
        if spec != self._spec:
            self._spec = spec
            self._kick.set()
        if spec is None:
            self.view = None
            self._stop("_monitor_task")
        elif self._monitor_task is None or self._monitor_task.done():
            self._monitor_task = asyncio.get_running_loop().create_task(
                self._monitor(), name=f"monitoring {self.key[0]}/{self.key[1]}"
            )
        if target != self._target:
            self._stop("_analysis_task")
            self._target = target
            if target is not None:
                self._analysis_task = asyncio.get_running_loop().create_task(
                    self._analyse(target), name=f"analysis {self.key[0]}/{self.key[1]}"
                )

    def analysis_of(self, revision: str) -> AnalysisState | None:
        a = self.analysis
        return a if a is not None and a.revision == revision else None

    def tasks(self) -> list[asyncio.Task[None]]:
        return [t for t in (self._monitor_task, self._analysis_task) if t is not None]

    def stop(self) -> None:
        self._stop("_monitor_task")
        self._stop("_analysis_task")

    def _stop(self, attribute: str) -> None:
        task = getattr(self, attribute)
        if task is not None:
            task.cancel()
            setattr(self, attribute, None)

    # ------------------------------------------------------------------------ the loops
    async def _monitor(self) -> None:
        while (spec := self._spec) is not None:
            self._kick.clear()
            try:
                await self.monitor_once(spec)
            except Exception:  # a bug must not stop the schedule: the next interval tries again
                logger.exception("%s/%s: monitoring query crashed", *self.key)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._kick.wait(), timeout=spec.interval_seconds)

    async def monitor_once(self, spec: MonitoringSpec) -> None:
        namespace, name = self.key
        answer = await self._query(
            "monitoring", spec.prometheus, fleet_query(namespace, name, spec.thresholds)
        )
        if isinstance(answer, FailedQuery):
            outcome: Any = answer
        else:
            try:
                outcome = snapshot_from_samples(answer)
            except AnswerRefused as refused:
                outcome = failed_from_refusal(refused)
        if isinstance(outcome, FailedQuery):
            logger.warning("%s/%s: monitoring query: %s", namespace, name, outcome.message)
        previous = self.view.status if self.view is not None else None
        view = MonitoringView(
            monitoring_status(outcome, rfc3339(self.clock()), previous),
            models_healthy(outcome, spec.thresholds, self._wells),
        )
        if (
            self.view is not None
            and same_answer(view.status, self.view.status)
            and view.healthy == self.view.healthy
        ):
            return
        self.view = view
        self.on_change()

    async def _query(self, purpose: str, endpoint: PrometheusEndpoint, promql: str) -> QueryOutcome:
        namespace, name = self.key
        answer = await self.querier.query(namespace, endpoint, promql)
        result = (
            "ok"
            if not isinstance(answer, FailedQuery)
            else "unreachable"
            if answer.failure is QueryFailure.UNREACHABLE
            else "error"
        )
        PROMETHEUS_QUERIES.labels(namespace, name, purpose, result).inc()
        return answer

    async def _analyse(self, target: AnalysisTarget) -> None:
        interval = target.analysis.interval_seconds
        last = self.analysis_of(target.revision)
        if last is not None and last.measured_at is not None:
            # A restarted operator does not measure again before the interval is up.
            measured = parse_time(last.measured_at) or 0.0
            await asyncio.sleep(max(0.0, measured + interval - self.clock()))
        while self._target == target:
            state = self.analysis_of(target.revision)
            if state is not None and state.phase in (
                AnalysisPhase.SUCCESSFUL,
                AnalysisPhase.FAILED,
            ):
                return
            try:
                await self.measure_once(target)
            except Exception:  # the roll-out holds meanwhile; the next interval tries again
                logger.exception("%s/%s: analysis measurement crashed", *self.key)
            await asyncio.sleep(interval)

    async def measure_once(self, target: AnalysisTarget) -> None:
        spec = self._spec
        if spec is None:
            return
        namespace, name = self.key
        queries = measurement_queries(target.analysis, target.canary, namespace, name)
        answers = await asyncio.gather(
            *(self._query("analysis", spec.prometheus, q) for _, q in queries)
        )
        traffic: QueryOutcome | None = None
        if target.analysis.min_rows > 0:
            traffic = await self._query(
                "analysis",
                spec.prometheus,
                traffic_query(namespace, name, target.canary, target.digests),
            )
        measurement = measure(
            target.analysis,
            target.canary,
            {qname: answer for (qname, _), answer in zip(queries, answers, strict=True)},
            traffic,
        )
        if self._target != target:
            return  # reconfigured while measuring: this measurement is for nothing
        previous = self.analysis_of(target.revision)
        state = advance(
            previous,
            target.revision,
            measurement,
            target.analysis.measurements,
            rfc3339(self.clock()),
        )
        if previous is not None and _same_but_time(state, previous):
            return  # the same inconclusive answer again: nothing for status to say
        self.analysis = state
        logger.info(
            "%s/%s: analysis of %s: %s: %s",
            namespace,
            name,
            target.revision,
            self.analysis.phase.value,
            measurement.message,
        )
        self.on_change()


def _same_but_time(a: AnalysisState, b: AnalysisState) -> bool:
    return (a.phase, a.successful, a.message, a.results) == (
        b.phase,
        b.successful,
        b.message,
        b.results,
    )
