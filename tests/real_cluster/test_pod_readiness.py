"""The kubelet's readiness rule the responder keeps pods to (no cluster needed)."""

from __future__ import annotations

from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from modelfleet_dev.real_cluster.pod_readiness import kubelet_conditions, readiness_patch

NOW = "2026-12-03T12:00:00Z"
_STATUS = st.sampled_from(["True", "False", None])


@st.composite
def pods(draw: st.DrawFn) -> dict[str, Any]:
    names = draw(st.lists(st.sampled_from("abc"), min_size=1, max_size=3, unique=True))
    gates = draw(st.lists(st.sampled_from(["g1", "g2"]), max_size=2, unique=True))
    statuses = [
        {"name": n, "ready": draw(st.booleans())}
        for n in names
        if draw(st.integers(0, 9))  # now and then a container without a status yet
    ]
    conditions = []
    for kind in ["ContainersReady", "Ready", *gates]:
        value = draw(_STATUS)
        if value is not None:
            conditions.append({"type": kind, "status": value})
    return {
        "metadata": {"name": "p", "uid": "u-1", "resourceVersion": "41"},
        "spec": {
            "containers": [{"name": n} for n in names],
            "readinessGates": [{"conditionType": g} for g in gates],
        },
        "status": {
            "phase": "Running",
            "containerStatuses": statuses,
            "conditions": conditions,
        },
    }


def _apply(pod: dict[str, Any], patch: dict[str, Any]) -> dict[str, Any]:
    """A strategic merge of status.conditions (merged by type), as the apiserver does."""
    merged = {c["type"]: dict(c) for c in pod["status"]["conditions"]}
    for c in patch["status"]["conditions"]:
        merged.setdefault(c["type"], {}).update(c)
    return {**pod, "status": {**pod["status"], "conditions": list(merged.values())}}


@settings(max_examples=300)
@given(pods())
def test_ready_means_every_container_ready_and_every_gate_true(pod: dict[str, Any]) -> None:
    patch = readiness_patch(pod, NOW)
    after = _apply(pod, patch) if patch else pod
    shown = {c["type"]: c["status"] for c in after["status"]["conditions"]}
    ready = {cs["name"] for cs in pod["status"]["containerStatuses"] if cs["ready"]}
    containers = all(c["name"] in ready for c in pod["spec"]["containers"])
    gates = all(shown.get(g["conditionType"]) == "True" for g in pod["spec"]["readinessGates"])
    assert shown["ContainersReady"] == ("True" if containers else "False")
    assert shown["Ready"] == ("True" if containers and gates else "False")
    # Once applied, nothing more to write; and a patch names only conditions that change.
    assert readiness_patch(after, NOW) is None
    if patch:
        before = {c["type"]: c["status"] for c in pod["status"]["conditions"]}
        assert all(before.get(c["type"]) != c["status"] for c in patch["status"]["conditions"])
        assert patch["metadata"] == {"uid": "u-1", "resourceVersion": "41"}


def test_a_gate_not_true_holds_ready_with_its_reason() -> None:
    pod: dict[str, Any] = {
        "metadata": {"uid": "u", "resourceVersion": "7"},
        "spec": {"containers": [{"name": "c"}], "readinessGates": [{"conditionType": "g"}]},
        "status": {
            "phase": "Running",
            "containerStatuses": [{"name": "c", "ready": True}],
            "conditions": [{"type": "g", "status": "False"}],
        },
    }
    containers, ready = kubelet_conditions(pod, NOW)
    assert (containers["status"], containers["reason"]) == ("True", None)
    assert (ready["status"], ready["reason"]) == ("False", "ReadinessGatesNotReady")


def test_pending_and_terminating_pods_are_left_alone() -> None:
    pod: dict[str, Any] = {
        "metadata": {"uid": "u", "resourceVersion": "7"},
        "spec": {"containers": [{"name": "c"}]},
        "status": {"phase": "Pending", "containerStatuses": [{"name": "c", "ready": True}]},
    }
    assert readiness_patch(pod, NOW) is None
    running: dict[str, Any] = {**pod, "status": {**pod["status"], "phase": "Running"}}
    assert readiness_patch(running, NOW) is not None
    deleting = {**running, "metadata": {**running["metadata"], "deletionTimestamp": NOW}}
    assert readiness_patch(deleting, NOW) is None
