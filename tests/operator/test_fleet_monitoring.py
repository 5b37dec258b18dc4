"""status.monitoring and ModelsHealthy from the fleet's one monitoring query: the parts of the
answer are read, the worst wells bounded and deduplicated, and the condition names the first
problem in order (unreachable, error, no data, drifting, missing, stale)."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from modelfleet.api.spec import MAX_WORST_WELLS, DriftThresholds, ModelsHealthReason
from modelfleet.logic.fleet_monitoring import (
    FailedQuery,
    FleetSnapshot,
    Part,
    QueryFailure,
    fleet_query,
    models_healthy,
    monitoring_status,
    same_answer,
    snapshot_from_samples,
)
from modelfleet.logic.prometheus_answer import AnswerRefused, Sample, sample

THRESHOLDS = DriftThresholds()


def counts(**values: int) -> list[Sample]:
    parts = {p.value: 0 for p in Part if p is not Part.WORST} | values
    return [sample({"part": part}, str(n)) for part, n in parts.items()]


def worst(well: str, psi: str, model: str = "m1", feature: str = "f1") -> Sample:
    return sample({"part": "worst", "well": well, "model": model, "feature": feature}, psi)


def test_the_query_selects_the_fleet_and_tags_every_part() -> None:
    q = fleet_query("fleet-fr", "esp", THRESHOLDS)
    assert 'namespace="fleet-fr",fleet="esp"' in q
    for part in Part:
        assert f'"part", "{part.value}"' in q
    assert "topk(20," in q and "or vector(0)" in q


def test_counts_and_worst_wells_are_read_from_their_parts() -> None:
    snap = snapshot_from_samples(
        [
            *counts(reporting=7, drifting=2, missing=1, stale=0, insufficient=3),
            worst("w1", "0.41", "m3", "pressure"),
            worst("w2", "0.9", "m1", "temp"),
        ]
    )
    assert (snap.reporting, snap.drifting, snap.missing, snap.stale, snap.insufficient) == (
        7,
        2,
        1,
        0,
        3,
    )
    assert [(w.well, w.model, w.feature, w.psi) for w in snap.worst] == [
        ("w2", "m1", "temp", 0.9),
        ("w1", "m3", "pressure", 0.41),
    ]


@given(
    st.lists(
        st.tuples(
            st.sampled_from([f"w{i}" for i in range(40)]),
            st.floats(min_value=0, max_value=5) | st.just(float("nan")),
        ),
        max_size=60,
    )
)
def test_worst_wells_are_bounded_one_per_well_largest_first(
    series: list[tuple[str, float]],
) -> None:
    snap = snapshot_from_samples([*counts(), *(worst(w, repr(v)) for w, v in series)])
    wells = [w.well for w in snap.worst]
    assert len(wells) == len(set(wells)) <= MAX_WORST_WELLS
    psis = [w.psi for w in snap.worst]
    assert psis == sorted(psis, reverse=True)
    best: dict[str, float] = {}
    for w, v in series:
        if v == v:  # NaN: no verdict, never listed
            best[w] = max(v, best.get(w, v))
    for entry in snap.worst:  # two pods of one well: the larger PSI stands for it
        assert entry.psi == best[entry.well]
    if len(best) > MAX_WORST_WELLS:
        assert len(wells) == MAX_WORST_WELLS


@pytest.mark.parametrize(
    "samples",
    [
        [],  # no part at all: not "everything 0"
        counts()[1:],
        [*counts(), sample({"part": "drifting"}, "1")],
        [*counts()[1:], sample({"part": counts()[0].label("part")}, "NaN")],
        [*counts()[1:], sample({"part": counts()[0].label("part")}, "1.5")],
        [*counts(), sample({"well": "w1"}, "0.3")],
    ],
)
def test_an_answer_that_is_not_the_query_s_is_refused(samples: list[Sample]) -> None:
    with pytest.raises(AnswerRefused):
        snapshot_from_samples(samples)


def snap(**values: int) -> FleetSnapshot:
    return snapshot_from_samples([*counts(**values), worst("w9", "0.5", "m2", "flow")])


@pytest.mark.parametrize(
    ("outcome", "status", "reason"),
    [
        (FailedQuery(QueryFailure.UNREACHABLE, "refused"), "Unknown", "PrometheusUnreachable"),
        (FailedQuery(QueryFailure.ERROR, "bad_data"), "Unknown", "PrometheusError"),
        (snap(reporting=0), "Unknown", "NoData"),
        (snap(reporting=5, drifting=1, missing=1, stale=1), "False", "Drifting"),
        (snap(reporting=5, missing=1, stale=1), "False", "DataMissing"),
        (snap(reporting=5, stale=2), "False", "DataStale"),
        (snap(reporting=5, insufficient=2), "True", "AsExpected"),
        # Too few rows is never reported as healthy (nor as drift).
        (snap(reporting=5, insufficient=5), "Unknown", "InsufficientData"),
    ],
)
def test_models_healthy_names_the_first_problem(
    outcome: FleetSnapshot | FailedQuery, status: str, reason: str
) -> None:
    got = models_healthy(outcome, THRESHOLDS, wells=5)
    assert (got[0], got[1].value) == (status, reason)


def test_drifting_message_names_the_worst_well_model_feature_and_psi() -> None:
    _, reason, message = models_healthy(snap(reporting=5, drifting=1), THRESHOLDS, wells=5)
    assert reason is ModelsHealthReason.DRIFTING
    assert "well w9 model m2 feature flow PSI 0.5" in message


def test_a_failed_query_keeps_the_last_values_and_says_why() -> None:
    good = monitoring_status(snap(reporting=5, drifting=1), "2026-12-02T01:00:00Z", None)
    assert good["wellsOverThreshold"] == 1 and good["worstWells"][0]["well"] == "w9"
    failed = monitoring_status(
        FailedQuery(QueryFailure.UNREACHABLE, "connection refused"), "2026-12-02T01:01:00Z", good
    )
    assert failed["observedAt"] == "2026-12-02T01:00:00Z"
    assert failed["wellsOverThreshold"] == 1 and failed["error"] == "connection refused"


def test_the_same_answer_later_is_the_same_status() -> None:
    a = monitoring_status(snap(reporting=5), "2026-12-02T01:00:00Z", None)
    b = monitoring_status(snap(reporting=5), "2026-12-02T01:00:30Z", None)
    assert same_answer(a, b)
    assert not same_answer(a, monitoring_status(snap(reporting=4), "x", None))


def test_psi_noise_below_three_decimals_is_not_a_new_answer() -> None:
    def at(psi: str) -> dict[str, object]:
        return monitoring_status(
            snapshot_from_samples([*counts(reporting=1), worst("w1", psi)]), "t", None
        )

    assert same_answer(at("0.41230"), at("0.41249"))
    assert not same_answer(at("0.412"), at("0.418"))


def test_a_fleet_blocked_on_its_inventory_keeps_reporting_what_its_models_see() -> None:
    from modelfleet.api.spec import Reason
    from modelfleet.logic.inventory import BlockedFleet, failure_status

    drifting = {
        "type": "ModelsHealthy",
        "status": "False",
        "reason": "Drifting",
        "message": "1 of 5 reporting wells drift",
        "lastTransitionTime": "2026-12-02T01:00:00Z",
    }
    previous = {
        "conditions": [drifting],
        "monitoring": monitoring_status(snap(reporting=5, drifting=1), "t", None),
    }
    status = failure_status(
        previous,
        BlockedFleet(Reason.INVENTORY_NOT_FOUND, "ConfigMap fr-wells not found"),
        generation=3,
        model="esp@1",
        now=0.0,
    )
    assert drifting in status["conditions"]
    assert status["monitoring"]["wellsOverThreshold"] == 1
