"""meta.k8s.io/v1 Tables as kubectl get receives them.

Docs: https://kubernetes.io/docs/reference/using-api/api-concepts/#receiving-resources-as-tables
      https://kubernetes.io/docs/tasks/extend-kubernetes/custom-resources/custom-resource-definitions/#additional-printer-columns
      https://kubernetes.io/docs/reference/kubectl/jsonpath/
"""

from __future__ import annotations

import datetime
from typing import Any

import pytest

from kubesim.presentation.tables import JsonPath, PrinterColumn, human_duration, render_table

NOW = datetime.datetime(2026, 11, 25, 13, 0, 0, tzinfo=datetime.UTC)

MD: dict[str, Any] = {
    "apiVersion": "modelfleet.dev/v1alpha1",
    "kind": "ModelDeployment",
    "metadata": {"name": "fr", "namespace": "fleet", "creationTimestamp": "2026-11-25T12:55:00Z"},
    "spec": {"model": {"name": "churn"}, "replicas": 3},
    "status": {
        "conditions": [
            {"type": "Progressing", "status": "True"},
            {"type": "Ready", "status": "False"},
        ]
    },
}

COLUMNS = [
    PrinterColumn.from_crd(c)
    for c in [
        {"name": "Model", "type": "string", "jsonPath": ".spec.model.name"},
        {"name": "Replicas", "type": "integer", "jsonPath": ".spec.replicas"},
        {
            "name": "Ready",
            "type": "string",
            "jsonPath": '.status.conditions[?(@.type=="Ready")].status',
        },
        {"name": "Phase", "type": "string", "jsonPath": ".status.phase", "priority": 1},
        {"name": "Age", "type": "date", "jsonPath": ".metadata.creationTimestamp"},
    ]
]


def test_crd_printer_columns_follow_the_name_column() -> None:
    table = render_table(
        [MD], COLUMNS, kind_hint="ModelDeployment", include_object="Metadata", now=NOW
    )
    assert table["kind"] == "Table" and table["apiVersion"] == "meta.k8s.io/v1"
    assert [c["name"] for c in table["columnDefinitions"]] == [
        "Name",
        "Model",
        "Replicas",
        "Ready",
        "Phase",
        "Age",
    ]
    assert table["columnDefinitions"][4]["priority"] == 1
    assert table["columnDefinitions"][1]["description"] == (
        "Custom resource definition column (in JSONPath format): .spec.model.name"
    )


def test_crd_cells_are_typed_missing_values_are_null_and_dates_become_ages() -> None:
    table = render_table(
        [MD], COLUMNS, kind_hint="ModelDeployment", include_object="Metadata", now=NOW
    )
    assert table["rows"][0]["cells"] == ["fr", "churn", 3, "False", None, "5m"]


def test_rows_carry_partial_object_metadata_by_default_the_object_or_nothing_on_request() -> None:
    metadata = render_table(
        [MD], COLUMNS, kind_hint="ModelDeployment", include_object="Metadata", now=NOW
    )
    assert metadata["rows"][0]["object"] == {
        "kind": "PartialObjectMetadata",
        "apiVersion": "meta.k8s.io/v1",
        "metadata": MD["metadata"],
    }
    full = render_table(
        [MD], COLUMNS, kind_hint="ModelDeployment", include_object="Object", now=NOW
    )
    assert full["rows"][0]["object"] == MD
    bare = render_table([MD], COLUMNS, kind_hint="ModelDeployment", include_object="None", now=NOW)
    assert "object" not in bare["rows"][0]


def test_a_crd_without_printer_columns_gets_name_and_age() -> None:
    table = render_table([MD], None, kind_hint="ModelDeployment", include_object="None", now=NOW)
    assert [c["name"] for c in table["columnDefinitions"]] == ["Name", "Age"]
    assert table["rows"][0]["cells"] == ["fr", "5m"]


def pod(**status: Any) -> dict[str, Any]:
    return {
        "metadata": {"name": "web-0", "creationTimestamp": "2026-11-25T12:00:00Z"},
        "spec": {"containers": [{"name": "a"}, {"name": "b"}], "nodeName": "kubesim"},
        "status": status,
    }


def test_pod_rows_show_ready_status_restarts_age_and_wide_columns() -> None:
    running = pod(
        phase="Running",
        podIP="127.0.0.7",
        containerStatuses=[
            {"name": "a", "ready": True, "restartCount": 0, "state": {"running": {}}},
            {
                "name": "b",
                "ready": True,
                "restartCount": 2,
                "state": {"running": {}},
                "lastState": {"terminated": {"finishedAt": "2026-11-25T12:58:00Z"}},
            },
        ],
    )
    table = render_table([running], None, kind_hint="Pod", include_object="None", now=NOW)
    names = [(c["name"], c["priority"]) for c in table["columnDefinitions"]]
    assert names[:5] == [("Name", 0), ("Ready", 0), ("Status", 0), ("Restarts", 0), ("Age", 0)]
    assert ("IP", 1) in names and ("Node", 1) in names
    assert table["rows"][0]["cells"][:7] == [
        "web-0",
        "2/2",
        "Running",
        "2 (2m ago)",
        "60m",
        "127.0.0.7",
        "kubesim",
    ]


def test_pod_status_shows_the_waiting_reason_and_terminating() -> None:
    crashing = pod(
        phase="Running",
        containerStatuses=[
            {
                "name": "a",
                "ready": False,
                "restartCount": 5,
                "state": {"waiting": {"reason": "CrashLoopBackOff"}},
            }
        ],
    )
    assert (
        render_table([crashing], None, kind_hint="Pod", include_object="None", now=NOW)["rows"][0][
            "cells"
        ][2]
        == "CrashLoopBackOff"
    )
    deleting = pod(phase="Running")
    deleting["metadata"]["deletionTimestamp"] = "2026-11-25T12:59:00Z"
    assert (
        render_table([deleting], None, kind_hint="Pod", include_object="None", now=NOW)["rows"][0][
            "cells"
        ][2]
        == "Terminating"
    )


def test_pod_readiness_gates_column_counts_true_conditions() -> None:
    gated = pod(
        phase="Running", conditions=[{"type": "modelfleet.dev/bundle-loaded", "status": "True"}]
    )
    gated["spec"]["readinessGates"] = [
        {"conditionType": "modelfleet.dev/bundle-loaded"},
        {"conditionType": "other"},
    ]
    assert (
        render_table([gated], None, kind_hint="Pod", include_object="None", now=NOW)["rows"][0][
            "cells"
        ][8]
        == "1/2"
    )


def test_service_namespace_and_event_printers() -> None:
    svc = {
        "metadata": {"name": "web", "creationTimestamp": "2026-11-25T12:00:00Z"},
        "spec": {
            "type": "ClusterIP",
            "clusterIP": "127.0.1.1",
            "ports": [{"port": 80, "protocol": "TCP"}],
            "selector": {"app": "web"},
        },
    }
    assert render_table([svc], None, kind_hint="Service", include_object="None", now=NOW)["rows"][
        0
    ]["cells"] == ["web", "ClusterIP", "127.0.1.1", "<none>", "80/TCP", "60m", "app=web"]
    ns = {
        "metadata": {"name": "fleet", "creationTimestamp": "2026-11-25T12:00:00Z"},
        "status": {"phase": "Active"},
    }
    assert render_table([ns], None, kind_hint="Namespace", include_object="None", now=NOW)["rows"][
        0
    ]["cells"] == ["fleet", "Active", "60m"]
    event = {
        "metadata": {"name": "web-0.1"},
        "involvedObject": {"kind": "Pod", "name": "web-0"},
        "type": "Normal",
        "reason": "Started",
        "message": "Started container",
        "lastTimestamp": "2026-11-25T12:59:30Z",
        "count": 1,
    }
    cells = render_table([event], None, kind_hint="Event", include_object="None", now=NOW)["rows"][
        0
    ]["cells"]
    assert (
        cells[:4] == ["30s", "Normal", "Started", "pod/web-0"] and cells[6] == "Started container"
    )


@pytest.mark.parametrize(
    ("seconds", "text"),
    [
        (0, "0s"),
        (119, "119s"),
        (120, "2m"),
        (310, "5m10s"),
        (3 * 3600 + 60, "3h1m"),
        (50 * 3600, "2d2h"),
        (400 * 86400, "400d"),
        (3 * 365 * 86400, "3y"),
    ],
)
def test_human_duration_matches_apimachinery(seconds: int, text: str) -> None:
    assert human_duration(seconds) == text


@pytest.mark.parametrize(
    ("path", "expected"),
    [
        (".spec.model.name", ["churn"]),
        ('.status.conditions[?(@.type=="Ready")].status', ["False"]),
        (".status.conditions[*].type", ["Progressing", "Ready"]),
        (".status.conditions[0].type", ["Progressing"]),
        (".status.conditions[-1].type", ["Ready"]),
        ("{.metadata.name}", ["fr"]),
        (".metadata['namespace']", ["fleet"]),
        (".status.nothing", []),
    ],
)
def test_kubectl_jsonpath_subset(path: str, expected: list[Any]) -> None:
    assert JsonPath(path).find(MD) == expected
