"""The roll-out planner, exercised on a pure fleet model (no server), up to 10,000 wells."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from modelfleet.api.spec import ModelDeploymentSpec
from modelfleet.logic.actions import ConfirmBundle, CreatePod, DeletePod, RetargetPod
from modelfleet.logic.fleet_status import StatusContext, build_status, status_events
from modelfleet.logic.planning import NOT_READY_PROBE_SECONDS, resolve_max_unavailable

from .fleet_model import FleetModel


def make_spec(wells: int, version: str = "1.0.0", **rollout: Any) -> ModelDeploymentSpec:
    return ModelDeploymentSpec.model_validate(
        {
            "model": {
                "name": "esp-failure",
                "version": version,
                "bundleUri": "http://127.0.0.1:9000/{version}/{well}/",
            },
            "wells": [
                {"id": f"w{i:05d}", "labels": {"zone": "north" if i % 3 == 0 else "south"}}
                for i in range(wells)
            ],
            "rollout": rollout,
        }
    )


def with_version(spec: ModelDeploymentSpec, version: str) -> ModelDeploymentSpec:
    data = spec.model_dump(by_alias=True, exclude_none=True)
    data["model"]["version"] = version
    return ModelDeploymentSpec.model_validate(data)


def converged_fleet(wells: int, **rollout: Any) -> FleetModel:
    fleet = FleetModel(make_spec(wells, **rollout))
    fleet.converge()
    assert fleet.unavailable() == 0
    return fleet


# --------------------------------------------------------------------------------- arithmetic


@pytest.mark.parametrize(
    ("value", "wells", "expected"),
    [("10%", 100, 10), ("10%", 5, 1), ("25%", 10, 2), (3, 10, 3), ("100%", 7, 7), (50, 7, 7)],
)
def test_max_unavailable_rounds_down_and_never_below_one(
    value: int | str, wells: int, expected: int
) -> None:
    assert resolve_max_unavailable(value, wells) == expected


# ----------------------------------------------------------------------------------- creation


def test_new_fleet_creates_one_pod_per_well_at_once() -> None:
    fleet = FleetModel(make_spec(50))
    plan = fleet.plan()
    creates = [a for a in plan.actions if isinstance(a, CreatePod)]
    assert sorted(a.target.well for a in creates) == sorted(w.id for w in fleet.spec.wells)


def test_converged_fleet_plans_nothing() -> None:
    fleet = converged_fleet(30)
    plan = fleet.plan()
    assert plan.actions == []
    assert plan.complete and plan.state.current_revision == plan.target_revision


def test_removed_well_loses_its_pod_and_added_well_gets_one() -> None:
    fleet = converged_fleet(10)
    data = fleet.spec.model_dump(by_alias=True, exclude_none=True)
    data["wells"] = [*data["wells"][1:], {"id": "new-well"}]
    fleet.spec = ModelDeploymentSpec.model_validate(data)
    plan = fleet.plan()
    deletes = [a for a in plan.actions if isinstance(a, DeletePod)]
    creates = [a for a in plan.actions if isinstance(a, CreatePod)]
    assert [d.well for d in deletes] == ["w00000"] and deletes[0].why == "WellRemoved"
    assert [c.target.well for c in creates] == ["new-well"]
    fleet.apply(plan.actions)
    fleet.tick()
    fleet.converge()
    assert set(fleet.pods) == {w.id for w in fleet.spec.wells}


# --------------------------------------------------------------------------------- properties


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    wells=st.integers(min_value=1, max_value=120),
    max_unavailable=st.one_of(
        st.integers(min_value=1, max_value=30), st.sampled_from(["1%", "10%", "25%", "50%"])
    ),
    readiness=st.lists(st.floats(min_value=0.0, max_value=1.0), min_size=1, max_size=60),
    seed=st.integers(min_value=0, max_value=2**16),
)
def test_rollout_never_exceeds_max_unavailable(
    wells: int, max_unavailable: int | str, readiness: list[float], seed: int
) -> None:
    import random

    rng = random.Random(seed)
    fleet = converged_fleet(wells, maxUnavailable=max_unavailable)
    budget = resolve_max_unavailable(max_unavailable, wells)
    fleet.spec = with_version(fleet.spec, "2.0.0")
    for i in range(400):
        share = readiness[i % len(readiness)]
        pending = [w for w, p in fleet.pods.items() if p.phase == "Pending"]
        run = [w for w in pending if rng.random() < share]
        plan = fleet.plan()
        fleet.apply(plan.actions)
        assert fleet.unavailable() <= budget, f"step {i}: {fleet.unavailable()} > {budget}"
        fleet.tick(run=run)
        if plan.complete and not plan.actions:
            break


@settings(max_examples=25, deadline=None)
@given(
    wells=st.integers(min_value=1, max_value=200),
    max_unavailable=st.sampled_from([1, 3, "10%", "30%"]),
)
def test_rollout_always_finishes_when_pods_become_ready(
    wells: int, max_unavailable: int | str
) -> None:
    fleet = converged_fleet(wells, maxUnavailable=max_unavailable)
    fleet.spec = with_version(fleet.spec, "2.0.0")
    budget = resolve_max_unavailable(max_unavailable, wells)
    steps = fleet.converge()
    waves = -(-wells // budget)
    # Each wave takes a retarget step and a confirm step.
    assert steps <= 2 * waves + 2
    assert all(p.version == "2.0.0" for p in fleet.pods.values())
    assert (
        fleet.last_plan is not None
        and fleet.last_plan.state.current_revision == fleet.last_plan.target_revision
    )


@settings(max_examples=25, deadline=None)
@given(wells=st.integers(min_value=1, max_value=80), cut=st.integers(min_value=0, max_value=30))
def test_executing_a_plan_then_replanning_repeats_no_write(wells: int, cut: int) -> None:
    fleet = converged_fleet(wells, maxUnavailable="20%")
    fleet.spec = with_version(fleet.spec, "2.0.0")
    for _ in range(cut):
        fleet.step()
    first = fleet.plan()
    fleet.apply(first.actions)
    second = fleet.plan()
    writes = (CreatePod, DeletePod, RetargetPod)
    done = {
        (type(a), getattr(a, "name", None), getattr(a, "target", None))
        for a in first.actions
        if isinstance(a, writes)
    }
    again = {
        (type(a), getattr(a, "name", None), getattr(a, "target", None))
        for a in second.actions
        if isinstance(a, writes)
    }
    assert not (done & again)


def test_in_place_swap_when_only_the_bundle_changes() -> None:
    fleet = converged_fleet(10, maxUnavailable=10)
    uids = {w: p.uid for w, p in fleet.pods.items()}
    fleet.spec = with_version(fleet.spec, "2.0.0")
    plan = fleet.plan()
    assert {type(a) for a in plan.actions} == {RetargetPod}
    assert all(isinstance(a, RetargetPod) and a.swaps_bundle for a in plan.actions)
    fleet.apply(plan.actions)
    fleet.tick()
    fleet.converge()
    assert {w: p.uid for w, p in fleet.pods.items()} == uids  # no pod was recreated


def change_runtime_image(fleet: FleetModel) -> None:
    """A new runtime image: every pod's template changes, so every well is recreated."""
    data = fleet.spec.model_dump(by_alias=True, exclude_none=True)
    data["runtime"]["image"] = "registry.example/model-runtime:0.2.0"
    fleet.spec = ModelDeploymentSpec.model_validate(data)


def test_runtime_change_recreates_pods_within_budget() -> None:
    fleet = converged_fleet(20, maxUnavailable=4)
    change_runtime_image(fleet)
    plan = fleet.plan()
    deletes = [a for a in plan.actions if isinstance(a, DeletePod)]
    assert len(deletes) == 4 and all(d.why == "Recreate" for d in deletes)
    fleet.apply(plan.actions)
    fleet.tick()
    fleet.converge()
    assert len({p.template_hash for p in fleet.pods.values()}) == 1


def test_a_plan_with_the_waves_deletes_still_in_flight_starts_and_announces_nothing() -> None:
    # The cache shows a pod as it was until its delete is answered: a plan in between must
    # neither repeat the delete nor count it as an update it starts (a WaveStarted Event
    # "updating 2 wells", written with the status at once, while no well was started).
    fleet = converged_fleet(10, maxUnavailable=2)
    change_runtime_image(fleet)
    first = fleet.plan()
    deletes = {a.well: a for a in first.actions if isinstance(a, DeletePod)}
    assert first.started_updates == 2 and len(deletes) == 2
    again = fleet.plan(in_flight=dict(deletes))
    assert again.started_updates == 0
    assert not [a for a in again.actions if isinstance(a, DeletePod)]
    assert again.unavailable_wells == set(deletes) and len(again.deferred) == 8
    ctx = StatusContext(generation=2, model="esp-failure@1.0.0", update_revision="r", now=0.0)
    previous = build_status(first, {}, ctx)
    status = build_status(again, previous, ctx)
    assert "WaveStarted" not in [reason for _, reason, _ in status_events(again, previous, status)]


def test_pinned_well_keeps_its_version_through_a_rollout() -> None:
    spec = make_spec(6)
    data = spec.model_dump(by_alias=True, exclude_none=True)
    data["wells"][2]["pin"] = "1.0.0"
    fleet = FleetModel(ModelDeploymentSpec.model_validate(data))
    fleet.converge()
    fleet.spec = with_version(fleet.spec, "2.0.0")
    fleet.converge()
    assert fleet.pods["w00002"].version == "1.0.0"
    assert fleet.pods["w00002"].bundle_uri.endswith("/1.0.0/w00002/")
    assert {p.version for w, p in fleet.pods.items() if w != "w00002"} == {"2.0.0"}


def test_canary_wells_go_first_and_the_rest_waits() -> None:
    fleet = converged_fleet(30, maxUnavailable=10, canary={"wells": 3})
    fleet.spec = with_version(fleet.spec, "2.0.0")
    plan = fleet.plan()
    touched = {a.target.well for a in plan.actions if isinstance(a, RetargetPod)}
    assert touched == {"w00000", "w00001", "w00002"}
    fleet.apply(plan.actions)
    fleet.tick()
    # Until the canary is confirmed and available, nothing else moves.
    plan = fleet.plan()
    assert not [a for a in plan.actions if isinstance(a, RetargetPod)]
    fleet.apply(plan.actions)
    fleet.tick()
    plan = fleet.plan()
    assert len([a for a in plan.actions if isinstance(a, RetargetPod)]) == 10


def test_canary_by_selector_and_min_ready_seconds_hold_the_fleet() -> None:
    fleet = converged_fleet(
        12,
        maxUnavailable=12,
        minReadySeconds=30,
        canary={"selector": {"matchLabels": {"zone": "north"}}},
    )
    fleet.spec = with_version(fleet.spec, "2.0.0")
    north = {w.id for w in fleet.spec.wells if (w.labels or {}).get("zone") == "north"}
    plan = fleet.step()
    assert {a.target.well for a in plan.actions if isinstance(a, RetargetPod)} == north
    for _ in range(5):  # confirmed, but not yet ready for 30 s
        plan = fleet.step()
        assert not [a for a in plan.actions if isinstance(a, RetargetPod)]
    fleet.tick(seconds=30)
    plan = fleet.plan()
    assert {a.target.well for a in plan.actions if isinstance(a, RetargetPod)} == {
        w.id for w in fleet.spec.wells
    } - north


def test_paused_rollout_changes_no_pod() -> None:
    fleet = converged_fleet(10, maxUnavailable=5, paused=True)
    fleet.spec = with_version(fleet.spec, "2.0.0")
    for _ in range(5):
        plan = fleet.step()
        assert plan.actions == []
        assert plan.paused and not plan.rollout_done
    data = fleet.spec.model_dump(by_alias=True, exclude_none=True)
    data["rollout"]["paused"] = False
    fleet.spec = ModelDeploymentSpec.model_validate(data)
    fleet.converge()
    assert {p.version for p in fleet.pods.values()} == {"2.0.0"}


def test_broken_bundle_stalls_within_budget_then_rolls_back_exactly() -> None:
    fleet = converged_fleet(20, maxUnavailable=3, progressDeadlineSeconds=60)
    good = fleet.plan()
    v1_revision = good.target_revision
    v1_pods = {w: (p.revision, p.bundle_uri, p.uid) for w, p in fleet.pods.items()}
    fleet.spec = with_version(fleet.spec, "3.0.0")
    fleet.bad_uris = {f"http://127.0.0.1:9000/3.0.0/{w.id}/" for w in fleet.spec.wells}
    rolled_back = False
    for _ in range(200):
        plan = fleet.plan()
        fleet.apply(plan.actions)
        assert fleet.unavailable() <= 3
        if plan.rolled_back:
            rolled_back = True
        fleet.tick(seconds=5)
        if rolled_back and plan.complete and not plan.actions:
            break
    assert rolled_back
    plan = fleet.plan()
    assert plan.target_revision == v1_revision
    assert plan.state.rolled_back_from is not None
    assert {w: (p.revision, p.bundle_uri, p.uid) for w, p in fleet.pods.items()} == v1_pods
    assert plan.actions == []


def test_broken_bundle_is_reported_as_bundle_invalid() -> None:
    fleet = converged_fleet(5, maxUnavailable=2)
    fleet.spec = with_version(fleet.spec, "3.0.0")
    fleet.bad_uris = {f"http://127.0.0.1:9000/3.0.0/{w.id}/" for w in fleet.spec.wells}
    for _ in range(3):
        plan = fleet.step()
    assert plan.bundle_invalid == 2
    assert {r.reason for r in plan.unhealthy} == {"BundleInvalid"}


def test_unexpected_digest_is_refused() -> None:
    # The runtime refuses the bundle at start and stays unready: it is asked once it has been
    # unready for NOT_READY_PROBE_SECONDS, and its refusal is the well's verdict.
    spec = make_spec(3)
    data = spec.model_dump(by_alias=True, exclude_none=True)
    data["model"]["digests"] = {"w00001": "sha256:" + "0" * 64}
    fleet = FleetModel(ModelDeploymentSpec.model_validate(data))
    fleet.step()  # created
    started = fleet.now
    while fleet.now - started < NOT_READY_PROBE_SECONDS:
        plan = fleet.step()
        assert [(r.well, r.reason) for r in plan.unhealthy] == [("w00001", "NotReady")]
    assert fleet.confirms["w00001"] == 0
    fleet.step()  # asked now
    plan = fleet.plan()
    assert [(r.well, r.reason) for r in plan.unhealthy] == [("w00001", "BundleInvalid")]
    assert fleet.confirms == {"w00000": 1, "w00001": 1, "w00002": 1}


def test_a_recreated_pod_whose_runtime_never_loads_ends_in_the_progress_deadline() -> None:
    # Its bundle store never answers: the runtime is neither ready nor refusing. No verdict
    # comes, so the deadline decides: rolled back to the last good revision, within budget.
    fleet = converged_fleet(10, maxUnavailable=2, progressDeadlineSeconds=60)
    good = fleet.plan().target_revision
    data = fleet.spec.model_dump(by_alias=True, exclude_none=True)
    data["runtime"]["image"] = "registry.example/model-runtime:0.2.0"
    data["model"]["version"] = "3.0.0"
    fleet.spec = ModelDeploymentSpec.model_validate(data)
    fleet.hung_uris = {f"http://127.0.0.1:9000/3.0.0/{w.id}/" for w in fleet.spec.wells}
    for _ in range(200):
        plan = fleet.step()
        assert fleet.unavailable() <= 2
        if plan.rolled_back and plan.complete and not plan.actions:
            break
    assert plan.rolled_back and plan.target_revision == good
    assert {p.version for p in fleet.pods.values()} == {"1.0.0"}


# -------------------------------------------------------------------------------------- scale


def test_ten_thousand_new_pods_are_each_asked_for_their_bundle_once_their_runtime_is_ready() -> (
    None
):
    # Runtimes take 8 s to load after their pod starts: asking before that reads nothing (on a
    # real apiserver, 867 of 1,367 reads for 500 pods answered 503). One read per pod.
    fleet = FleetModel(make_spec(10_000))
    fleet.runtime_load_seconds = 8.0
    steps = fleet.converge()
    assert steps <= 12
    assert set(fleet.confirms.values()) == {1} and len(fleet.confirms) == 10_000


def test_ten_thousand_well_rollout_honours_the_budget() -> None:
    fleet = converged_fleet(10_000)
    fleet.spec = with_version(fleet.spec, "2.0.0")
    budget = resolve_max_unavailable("10%", 10_000)
    waves = 0
    for _ in range(100):
        plan = fleet.plan()
        fleet.apply(plan.actions)
        assert fleet.unavailable() <= budget
        waves += bool(plan.started_updates)
        fleet.tick()
        if plan.complete and not plan.actions:
            break
    assert waves == 10
    assert {p.version for p in fleet.pods.values()} == {"2.0.0"}
    assert not [a for a in fleet.plan().actions if not isinstance(a, ConfirmBundle)]
