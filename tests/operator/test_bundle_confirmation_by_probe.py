"""bundleConfirmation ReadinessProbe: the kubelet's Ready confirms the bundle a pod was created
with, so the operator writes nothing for it; a swapped pod is confirmed as with the gate.

Pure: pod bodies from `desired_pod`, statuses as a kubelet writes them, `observe_pod` and the
planner, at 10,000 wells."""

from __future__ import annotations

import copy
from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from modelfleet.api.spec import BundleConfirmation, ModelDeploymentSpec, RuntimeSpec
from modelfleet.logic.actions import ConfirmBundle
from modelfleet.logic.availability import is_available
from modelfleet.logic.planning import (
    NOT_READY_PROBE_SECONDS,
    FleetInput,
    RolloutState,
    budget_free_action,
    plan_fleet,
)
from modelfleet.logic.revisions import WellTarget, revision_of, well_target
from modelfleet.logic.wellpod import (
    ANNOTATION_CONFIRMED_BY,
    BUNDLE_CONDITION,
    WellPod,
    desired_pod,
    observe_pod,
    target_metadata_patch,
)
from runtime_contract import READY_REQUIRES_ANNOTATED_BUNDLE_FLAG

PROBE = RuntimeSpec(bundle_confirmation=BundleConfirmation.READINESS_PROBE)
STARTED = "2026-12-04T05:00:00Z"
NOW = 1_890_000_000.0  # long after STARTED


def digest(n: int) -> str:
    return f"sha256:{n:064x}"


def target(version: str = "1.0.0", d: str | None = digest(1), well: str = "w1") -> WellTarget:
    return WellTarget(well, f"rev-{version}", "tmpl", version, f"file:///b/{version}/{well}", d)


def pod_body(t: WellTarget, runtime: RuntimeSpec = PROBE) -> dict[str, Any]:
    body = desired_pod(deployment="esp", deployment_uid="uid", target=t, runtime=runtime)
    body["metadata"]["uid"] = f"uid-{t.well}"
    return body


def started(body: dict[str, Any], *, ready: bool) -> dict[str, Any]:
    """The kubelet's status for a running pod whose readiness probe passes (or not)."""
    out = copy.deepcopy(body)
    flag = "True" if ready else "False"
    out["status"] = {
        "phase": "Running",
        "podIP": "10.244.0.7",
        "startTime": STARTED,
        "containerStatuses": [
            {"name": "runtime", "ready": ready, "state": {"running": {"startedAt": STARTED}}}
        ],
        "conditions": [
            {"type": "ContainersReady", "status": flag, "lastTransitionTime": STARTED},
            {"type": "Ready", "status": flag, "lastTransitionTime": STARTED},
        ],
    }
    return out


def merge(body: dict[str, Any], patch: dict[str, Any]) -> dict[str, Any]:
    """A JSON merge patch (RFC 7386), as the apiserver applies the operator's."""
    out = copy.deepcopy(body)

    def apply(into: dict[str, Any], change: dict[str, Any]) -> None:
        for key, value in change.items():
            if value is None:
                into.pop(key, None)
            elif isinstance(value, dict):
                apply(into.setdefault(key, {}), value)
            else:
                into[key] = value

    apply(out, patch)
    return out


def observed(body: dict[str, Any]) -> WellPod:
    pod = observe_pod(body)
    assert pod is not None
    return pod


def test_a_probe_confirmed_pod_has_no_gate_and_tells_its_runtime_to_check_its_annotations() -> None:
    body = pod_body(target())
    assert "readinessGates" not in body["spec"]
    assert READY_REQUIRES_ANNOTATED_BUNDLE_FLAG in body["spec"]["containers"][0]["args"]
    assert body["metadata"]["annotations"][ANNOTATION_CONFIRMED_BY] == "ReadinessProbe"
    # The default keeps the gate, the runtime's usual readiness, and the template hash of a
    # fleet made before the field existed.
    gated = pod_body(target(), RuntimeSpec())
    assert gated["spec"]["readinessGates"] == [{"conditionType": BUNDLE_CONDITION}]
    assert READY_REQUIRES_ANNOTATED_BUNDLE_FLAG not in gated["spec"]["containers"][0]["args"]
    assert ANNOTATION_CONFIRMED_BY not in gated["metadata"]["annotations"]
    assert "bundleConfirmation" not in revision_of(spec(1, probe=False)).data()["runtime"]
    assert revision_of(spec(1)).template_hash != revision_of(spec(1, probe=False)).template_hash


def test_ready_confirms_the_annotated_digest_without_a_read_or_a_write() -> None:
    t = target()
    pod = observed(started(pod_body(t), ready=True))
    assert pod.serves_own_target and pod.bundle is not None
    assert (pod.bundle.digest, pod.bundle.uri) == (t.bundle_digest, t.bundle_uri)
    assert is_available(pod, NOW, 0)
    assert budget_free_action(pod, t, NOW) is None


def test_not_ready_is_not_confirmed_and_is_read_only_after_it_stays_unready() -> None:
    t = target()
    pod = observed(started(pod_body(t), ready=False))
    assert not pod.serves_own_target
    assert pod.started_at is not None
    soon = pod.started_at + NOT_READY_PROBE_SECONDS - 1
    assert budget_free_action(pod, t, soon) is None
    # A runtime that never passes: its /v2 says why (BundleInvalid, Unreachable), as with the gate.
    assert isinstance(budget_free_action(pod, t, NOW), ConfirmBundle)


def test_a_swap_in_place_is_not_confirmed_by_a_ready_that_predates_it() -> None:
    old, new = target("1.0.0", digest(1)), target("2.0.0", digest(2))
    body = started(pod_body(old), ready=True)
    swapped = merge(body, target_metadata_patch(new, swaps_bundle=True))
    pod = observed(swapped)
    assert ANNOTATION_CONFIRMED_BY not in swapped["metadata"]["annotations"]
    assert pod.bundle_digest == new.bundle_digest and not pod.serves_own_target
    assert budget_free_action(pod, new, NOW) == ConfirmBundle(
        pod.name, "w1", new.bundle_uri, new.bundle_digest
    )
    # Swapped back (a rollback): still not the probe's word, the runtime may serve 2.0.0.
    back = merge(swapped, target_metadata_patch(old, swaps_bundle=True))
    assert not observed(back).serves_own_target


def test_a_relabel_that_keeps_the_bundle_keeps_the_confirmation() -> None:
    t = target()
    body = started(pod_body(t), ready=True)
    relabelled = merge(body, target_metadata_patch(t, swaps_bundle=False))
    assert observed(relabelled).serves_own_target


def test_a_well_without_an_expected_digest_is_read_for_its_digest() -> None:
    t = target(d=None)
    body = pod_body(t)
    assert ANNOTATION_CONFIRMED_BY not in body["metadata"]["annotations"]
    pod = observed(started(body, ready=True))
    assert not pod.serves_own_target
    assert isinstance(budget_free_action(pod, t, NOW), ConfirmBundle)


def test_the_marker_on_a_gated_pod_confirms_nothing() -> None:
    """A gated pod's runtime does not check its annotations: only the gate speaks for it."""
    body = started(pod_body(target(), RuntimeSpec()), ready=True)
    body["metadata"]["annotations"][ANNOTATION_CONFIRMED_BY] = "ReadinessProbe"
    assert not observed(body).serves_own_target


@given(st.lists(st.sampled_from(["swap", "relabel", "unready", "ready"]), max_size=8))
def test_probe_confirmation_holds_only_for_a_ready_pod_never_swapped(steps: list[str]) -> None:
    versions = [target("1.0.0", digest(1)), target("2.0.0", digest(2))]
    current = 0
    body = started(pod_body(versions[0]), ready=True)
    swapped = False
    ready = True
    for step in steps:
        if step == "swap":
            current = 1 - current
            body = merge(body, target_metadata_patch(versions[current], swaps_bundle=True))
            swapped = True
        elif step == "relabel":
            body = merge(body, target_metadata_patch(versions[current], swaps_bundle=False))
        else:
            ready = step == "ready"
            status = started(body, ready=ready)["status"]
            body = {**body, "status": status}
    pod = observed(body)
    assert pod.serves_own_target == (ready and not swapped)


# -------------------------------------------------------------------------------------- scale


def spec(wells: int, *, probe: bool = True) -> ModelDeploymentSpec:
    data: dict[str, Any] = {
        "model": {
            "name": "esp-failure",
            "version": "1.0.0",
            "bundleUri": "file:///b/{version}/{well}",
            "digests": {f"w{i:05d}": digest(i + 1) for i in range(wells)},
        },
        "wells": [{"id": f"w{i:05d}"} for i in range(wells)],
    }
    if probe:
        data["runtime"] = {"bundleConfirmation": "ReadinessProbe"}
    return ModelDeploymentSpec.model_validate(data)


def test_ten_thousand_ready_probe_confirmed_pods_are_available_and_need_no_call() -> None:
    fleet = spec(10_000)
    revision = revision_of(fleet)
    pods = {
        w.id: observed(
            started(
                desired_pod(
                    deployment="esp",
                    deployment_uid="uid",
                    target=well_target(revision, w),
                    runtime=fleet.runtime,
                ),
                ready=True,
            )
        )
        for w in fleet.wells
    }
    plan = plan_fleet(
        FleetInput(
            wells=fleet.wells,
            update=revision,
            current=revision,
            policy=fleet.rollout,
            state=RolloutState(current_revision=revision.name),
            pods=pods,
            stray_pods=[],
            now=NOW,
            in_flight={},
        )
    )
    assert plan.actions == []
    assert plan.rollout_done
    assert all(is_available(p, NOW, 0) for p in pods.values())
