"""What a user sees with kubectl: columns, describe, wait, explain, patch."""

from __future__ import annotations

import json
import re

from modelfleet_dev.kubectl import Kubectl

from .conftest import Fleet, wells_named

V1, V2 = "1.0.0", "2.0.0"


def test_get_mdep_shows_model_wells_ready_up_to_date_available_phase_and_age(
    fleet: Fleet, kubectl: Kubectl
) -> None:
    wells = wells_named("cols", 4)
    fleet.shelf.ensure(wells, [V1])
    fleet.apply(wells, V1)
    fleet.wait_available(V1, 4)
    lines = kubectl.text("get", "mdep", fleet.name).splitlines()
    assert lines[0].split() == [
        "NAME",
        "MODEL",
        "WELLS",
        "READY",
        "UP-TO-DATE",
        "AVAILABLE",
        "PHASE",
        "AGE",
    ]
    assert lines[1].split()[:7] == [
        fleet.name,
        f"esp-failure@{V1}",
        "4",
        "4",
        "4",
        "4",
        "Available",
    ]


def test_describe_mdep_shows_conditions_and_events(fleet: Fleet, kubectl: Kubectl) -> None:
    wells = wells_named("desc", 3)
    fleet.shelf.ensure(wells, [V1])
    fleet.apply(wells, V1)
    fleet.wait_available(V1, 3)
    text = kubectl.text("describe", "mdep", fleet.name)
    conditions = text[text.index("  Conditions:") : text.index("Events:")]
    types = re.findall(r"^\s+Type:\s+(\w+)$", conditions, re.MULTILINE)
    reasons = re.findall(r"^\s+Reason:\s+(\w+)$", conditions, re.MULTILINE)
    assert types == ["Available", "Progressing", "Degraded"]
    assert reasons == ["MinimumWellsAvailable", "NewRevisionAvailable", "AsExpected"]
    events = text[text.index("Events:") :].splitlines()
    assert events[1].split() == ["Type", "Reason", "Age", "From", "Message"]
    assert any(
        line.split()[:2] == ["Normal", "RolloutComplete"] and "modelfleet-operator" in line
        for line in events[3:]
    ), events


def test_kubectl_wait_for_condition_available_returns(fleet: Fleet, kubectl: Kubectl) -> None:
    wells = wells_named("wait", 3)
    fleet.shelf.ensure(wells, [V1])
    fleet.apply(wells, V1)
    result = kubectl.run("wait", "--for=condition=Available", f"mdep/{fleet.name}", "--timeout=60s")
    assert result.stdout.strip() == f"modeldeployment.modelfleet.dev/{fleet.name} condition met"


def test_kubectl_explain_prints_the_max_unavailable_description(kubectl: Kubectl) -> None:
    text = kubectl.text("explain", "modeldeployment.spec.rollout.maxUnavailable")
    assert "KIND:       ModelDeployment" in text
    assert "Maximum number of wells (or percent of the fleet, rounded down)" in " ".join(
        text.split()
    )


def test_pause_and_resume_with_kubectl_patch(fleet: Fleet, kubectl: Kubectl) -> None:
    wells = wells_named("pause", 4)
    fleet.shelf.ensure(wells, [V1, V2])
    fleet.apply(wells, V1)
    fleet.wait_available(V1, 4)
    kubectl.run(
        "patch",
        "mdep",
        fleet.name,
        "--type",
        "merge",
        "-p",
        '{"spec":{"rollout":{"paused":true}}}',
    )
    kubectl.run(
        "patch",
        "mdep",
        fleet.name,
        "--type",
        "merge",
        "-p",
        json.dumps({"spec": {"model": {"version": V2}}}),
    )
    paused = fleet.wait("paused", lambda s: s.get("phase") == "Paused", 30)
    assert paused.pods_by_version == {V1: 4}
    kubectl.run(
        "patch",
        "mdep",
        fleet.name,
        "--type",
        "merge",
        "-p",
        '{"spec":{"rollout":{"paused":false}}}',
    )
    fleet.wait_available(V2, 4)
