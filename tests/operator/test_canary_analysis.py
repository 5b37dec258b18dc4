"""The canary analysis: a measurement passes only on finite values that all meet their
thresholds, fails on one that does not (naming its labels and value), and is inconclusive on
missing data; the planner holds the fleet on the canary until the analysis passes and rolls
it back (reason AnalysisFailed) when it fails."""

from __future__ import annotations

import math
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from modelfleet.api.spec import Analysis, AnalysisPhase, ModelDeploymentSpec, Reason
from modelfleet.control.inputs import spec_error_message
from modelfleet.logic.analysis import (
    AnalysisGate,
    AnalysisState,
    Measurement,
    MeasurementVerdict,
    advance,
    measure,
    render_query,
    state_from_status,
    traffic_query,
)
from modelfleet.logic.fleet_monitoring import FailedQuery, QueryFailure
from modelfleet.logic.fleet_status import StatusContext, build_status, status_events
from modelfleet.logic.planning import FleetInput, FleetPlan, plan_fleet
from modelfleet.logic.prometheus_answer import Sample, sample
from modelfleet.logic.revisions import revision_of

from .fleet_model import FleetModel
from .test_planning import make_spec, with_version

CANARY = frozenset({"w00000", "w00001"})


def analysis(**extra: Any) -> Analysis:
    return Analysis.model_validate(
        {
            "queries": [
                {
                    "name": "prediction-psi",
                    "query": 'max by (well, model) (psi{well=~"{{wells}}"})',
                    "operator": "LessThan",
                    "threshold": 0.25,
                }
            ],
            "measurements": 3,
            "minRows": 100,
            **extra,
        }
    )


def rows(**per_well: float) -> tuple[Sample, ...]:
    return tuple(sample({"well": w}, repr(float(n))) for w, n in per_well.items())


ENOUGH = rows(w00000=500, w00001=800)


def psi(well: str, value: str, model: str = "m1") -> Sample:
    return sample({"well": well, "model": model}, value)


def measured(answer: tuple[Sample, ...] | FailedQuery, traffic: Any = ENOUGH) -> Measurement:
    return measure(analysis(), CANARY, {"prediction-psi": answer}, traffic)


# ---------------------------------------------------------------------------- queries


def test_the_canary_wells_replace_the_placeholder_as_an_exact_alternation() -> None:
    q = render_query(
        'x{namespace="{{namespace}}",fleet="{{fleet}}",well=~"{{wells}}"}',
        {"fr-0002", "fr-0001"},
        "fleet-fr",
        "esp",
    )
    assert q == 'x{namespace="fleet-fr",fleet="esp",well=~"fr-0001|fr-0002"}'
    assert 'well=~"w00000|w00001"' in traffic_query("ns", "esp", CANARY)
    guarded = traffic_query("ns", "esp", CANARY, {"sha256:b", "sha256:a"})
    assert guarded.endswith(
        'and on (well) max by (well) (modelfleet_runtime_bundle_info{namespace="ns",'
        'fleet="esp",well=~"w00000|w00001", digest=~"sha256:a|sha256:b"})'
    )


# ------------------------------------------------------------------------ measurements


def test_all_series_under_threshold_pass() -> None:
    m = measured((psi("w00000", "0.05"), psi("w00001", "0.1")))
    assert m.verdict is MeasurementVerdict.PASSED
    assert len(m.results) == 2


def test_one_series_over_threshold_fails_naming_its_well_model_and_value() -> None:
    m = measured((psi("w00000", "0.05"), psi("w00001", "0.61", model="m7")))
    assert m.verdict is MeasurementVerdict.FAILED
    assert 'well="w00001"' in m.message and 'model="m7"' in m.message
    assert "= 0.61, needs < 0.25" in m.message
    assert not m.results[0].passed  # the offending series first


@pytest.mark.parametrize(
    ("answer", "traffic", "why"),
    [
        ((), ENOUGH, "returned no series"),
        ((psi("w00000", "NaN"),), ENOUGH, "is NaN"),
        ((psi("w00000", "+Inf"),), ENOUGH, "is +Inf"),
        (FailedQuery(QueryFailure.UNREACHABLE, "connection refused"), ENOUGH, "refused"),
        (FailedQuery(QueryFailure.ERROR, "bad_data: parse error"), ENOUGH, "parse error"),
        ((psi("w00000", "0.01"),), rows(w00000=500, w00001=12), "has 12 rows"),
        ((psi("w00000", "0.01"),), rows(w00000=500), "w00001 has no monitoring series"),
        ((psi("w00000", "0.01"),), rows(w00000=500, w00001=math.nan), "has nan rows"),
        ((psi("w00000", "0.9"),), rows(w00000=5, w00001=5), "rows"),  # too little traffic
        ((psi("w00000", "0.01"),), FailedQuery(QueryFailure.UNREACHABLE, "timeout"), "timeout"),
    ],
)
def test_missing_data_is_inconclusive_and_says_why(
    answer: tuple[Sample, ...] | FailedQuery, traffic: Any, why: str
) -> None:
    m = measured(answer, traffic)
    assert m.verdict is MeasurementVerdict.INCONCLUSIVE
    assert why in m.message


values = st.one_of(
    st.floats(min_value=0, max_value=1).map(repr), st.sampled_from(["NaN", "+Inf", "-Inf"])
)


@given(st.lists(st.tuples(st.sampled_from(sorted(CANARY)), values), max_size=8))
def test_never_passes_on_a_non_finite_value_and_fails_exactly_on_a_finite_one_over(
    series: list[tuple[str, str]],
) -> None:
    m = measured(tuple(psi(w, v) for w, v in series))
    parsed = [float(v) for _, v in series]
    if any(math.isfinite(v) and not v < 0.25 for v in parsed):
        assert m.verdict is MeasurementVerdict.FAILED
    elif not parsed or any(not math.isfinite(v) for v in parsed):
        assert m.verdict is MeasurementVerdict.INCONCLUSIVE
    else:
        assert m.verdict is MeasurementVerdict.PASSED


# ---------------------------------------------------------------------------- progress


def run(*verdicts: MeasurementVerdict, required: int = 3) -> AnalysisState:
    state: AnalysisState | None = None
    for i, verdict in enumerate(verdicts):
        state = advance(state, "rev2", Measurement(verdict, "m"), required, f"t{i}")
    assert state is not None
    return state


PASS, FAIL, UNSURE = (
    MeasurementVerdict.PASSED,
    MeasurementVerdict.FAILED,
    MeasurementVerdict.INCONCLUSIVE,
)


@pytest.mark.parametrize(
    ("verdicts", "phase", "successful"),
    [
        ((PASS,), AnalysisPhase.RUNNING, 1),
        ((PASS, PASS, PASS), AnalysisPhase.SUCCESSFUL, 3),
        ((PASS, PASS, UNSURE), AnalysisPhase.INCONCLUSIVE, 0),
        ((PASS, PASS, UNSURE, PASS, PASS), AnalysisPhase.RUNNING, 2),
        ((PASS, FAIL), AnalysisPhase.FAILED, 1),
        ((PASS, PASS, PASS, FAIL), AnalysisPhase.SUCCESSFUL, 3),  # decided stays decided
        ((FAIL, PASS, PASS, PASS), AnalysisPhase.FAILED, 0),
    ],
)
def test_passing_measurements_in_a_row_pass_one_failure_fails(
    verdicts: tuple[MeasurementVerdict, ...], phase: AnalysisPhase, successful: int
) -> None:
    state = run(*verdicts)
    assert (state.phase, state.successful) == (phase, successful)


def test_the_analysis_survives_a_restart_through_status() -> None:
    state = run(PASS, PASS)
    assert state_from_status(state.as_status(), "rev2") == state
    assert state_from_status(state.as_status(), "rev3") is None


# ------------------------------------------------------------------------------ admission


def spec_with(**rollout: Any) -> dict[str, Any]:
    return {
        "model": {"name": "esp", "version": "1", "bundleUri": "http://127.0.0.1/{well}"},
        "wells": [{"id": "w1"}],
        "monitoring": {"prometheus": {"address": "http://127.0.0.1:9090"}},
        "rollout": rollout,
    }


@pytest.mark.parametrize(
    ("rollout", "field"),
    [
        (
            {"analysis": analysis().model_dump(by_alias=True)},
            "spec.rollout: Value error, analysis needs a canary",
        ),
        (
            {"canary": {"wells": 1}, "analysis": {"queries": []}},
            "spec.rollout.analysis.queries: List should have at least 1 item",
        ),
        (
            {
                "canary": {"wells": 1},
                "analysis": {
                    "queries": [{"name": "a", "query": " ", "operator": "LessThan", "threshold": 1}]
                },
            },
            "spec.rollout.analysis.queries.0.query",
        ),
        (
            {
                "canary": {"wells": 1},
                "analysis": {
                    "queries": [{"name": "a", "query": "up", "operator": "<", "threshold": 1}]
                },
            },
            "spec.rollout.analysis.queries.0.operator",
        ),
    ],
)
def test_a_malformed_analysis_is_refused_naming_the_field(
    rollout: dict[str, Any], field: str
) -> None:
    with pytest.raises(ValidationError) as refused:
        ModelDeploymentSpec.model_validate(spec_with(**rollout))
    assert field in spec_error_message(refused.value)  # what status says of the fleet


def test_analysis_without_monitoring_is_refused() -> None:
    data = spec_with(canary={"wells": 1}, analysis=analysis().model_dump(by_alias=True))
    del data["monitoring"]
    with pytest.raises(ValidationError, match=r"needs spec\.monitoring"):
        ModelDeploymentSpec.model_validate(data)


# ------------------------------------------------------------------------------ planning


class AnalysedFleet(FleetModel):
    """The pure fleet model, with the canary analysis' gate and message as given."""

    gate = AnalysisGate.NONE
    message = ""

    def plan(self) -> FleetPlan:
        update = revision_of(self.spec)
        self.revisions.setdefault(update.name, update)
        current = self.revisions.get(self.state.current_revision or "")
        plan = plan_fleet(
            FleetInput(
                wells=self.spec.wells,
                update=update,
                current=current,
                policy=self.spec.rollout,
                state=self.state,
                pods=dict(self.pods),
                now=self.now,
                analysis=self.gate,
                analysis_message=self.message,
            )
        )
        self.state = plan.state
        self.last_plan = plan
        return plan


def rolling_out(wells: int = 10) -> AnalysedFleet:
    fleet = AnalysedFleet(make_spec(wells, canary={"wells": 2}, maxUnavailable=3))
    fleet.converge()
    fleet.spec = with_version(fleet.spec, "2.0.0")
    fleet.gate = AnalysisGate.HOLD
    return fleet


def steps(fleet: AnalysedFleet, n: int) -> FleetPlan:
    plan = fleet.step()
    for _ in range(n - 1):
        plan = fleet.step()
    return plan


def on_update(fleet: AnalysedFleet) -> set[str]:
    update = revision_of(fleet.spec).name
    return {w for w, p in fleet.pods.items() if p.revision == update}


def test_the_fleet_holds_on_the_canary_until_the_analysis_passes() -> None:
    fleet = rolling_out()
    plan = steps(fleet, 30)
    assert on_update(fleet) == {"w00000", "w00001"}
    assert plan.analysis_hold and plan.canary_done and not plan.rolled_back
    fleet.gate = AnalysisGate.PASSED
    fleet.converge()
    assert len(on_update(fleet)) == 10


def test_the_deadline_does_not_run_while_the_analysis_holds() -> None:
    fleet = rolling_out()
    steps(fleet, 10)
    fleet.tick(seconds=10 * fleet.spec.rollout.progress_deadline_seconds)
    plan = steps(fleet, 3)
    assert not plan.deadline_exceeded and not plan.rolled_back


def test_a_failed_analysis_rolls_the_fleet_back_with_analysis_failed() -> None:
    fleet = rolling_out()
    steps(fleet, 10)
    fleet.gate = AnalysisGate.FAILED
    fleet.message = 'prediction-psi {well="w00001", model="m7"} = 0.61, needs < 0.25'
    plan = fleet.step()
    assert plan.rolled_back and plan.analysis_failed
    (event,) = [e for e in plan.events if e[1] == "AnalysisFailed"]
    assert "0.61" in event[2] and 'well="w00001"' in event[2]
    fleet.converge()
    assert on_update(fleet) == set()  # every well back on the old revision

    final = fleet.plan()
    failed = AnalysisState(
        revision_of(fleet.spec).name, AnalysisPhase.FAILED, 0, "t", fleet.message
    )
    ctx = StatusContext(1, "esp-failure@2.0.0", revision_of(fleet.spec).name, fleet.now)
    status = build_status(final, {}, ctx, analysis=failed)
    conditions = {c["type"]: c for c in status["conditions"]}
    assert conditions["Progressing"]["reason"] == Reason.ANALYSIS_FAILED.value
    assert "0.61" in conditions["Progressing"]["message"]
    assert conditions["Degraded"]["reason"] == Reason.ANALYSIS_FAILED.value
    assert conditions["AnalysisPassed"]["status"] == "False"
    assert status["analysis"]["phase"] == "Failed"


def test_an_inconclusive_analysis_says_why_in_progressing_and_posts_one_warning() -> None:
    fleet = rolling_out()
    plan = steps(fleet, 10)
    held = AnalysisState(
        revision_of(fleet.spec).name,
        AnalysisPhase.INCONCLUSIVE,
        0,
        "t",
        "canary well w00001 has 12 rows in its window (minRows 100)",
    )
    ctx = StatusContext(2, "esp-failure@2.0.0", revision_of(fleet.spec).name, fleet.now)
    status = build_status(plan, {}, ctx, analysis=held)
    progressing = next(c for c in status["conditions"] if c["type"] == "Progressing")
    assert progressing["reason"] == Reason.ANALYSIS_INCONCLUSIVE.value
    assert "12 rows" in progressing["message"]
    events = status_events(plan, {}, status)
    assert [e[1] for e in events].count("AnalysisInconclusive") == 1
    assert status_events(plan, status, status) == []  # nothing new: no event again


@settings(max_examples=25, deadline=None)
@given(
    st.lists(
        st.tuples(
            st.sampled_from([AnalysisGate.HOLD, AnalysisGate.FAILED]),
            st.frozensets(st.sampled_from([f"w{i:05d}" for i in range(10)])),
        ),
        min_size=1,
        max_size=25,
    )
)
def test_no_well_outside_the_canary_moves_before_the_analysis_passes(
    script: list[tuple[AnalysisGate, frozenset[str]]],
) -> None:
    """Whatever the analysis says short of Passed, and whichever pods the kubelet starts."""
    fleet = rolling_out()
    for gate, started in script:
        fleet.gate = gate
        fleet.step(run=started)
        assert on_update(fleet) <= CANARY
