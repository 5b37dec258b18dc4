"""Admission of spec.monitoring and rollout.analysis as a user meets it through kubectl: a
malformed analysis is refused by the apiserver (the CRD's schema and CEL rules) with the field
named, a well-formed one is accepted, `kubectl explain` documents the fields and
`kubectl get -o wide` has the DRIFTING column. Runs unchanged on kubesim and a real cluster."""

from __future__ import annotations

import copy
from typing import Any

import pytest
import yaml

from modelfleet_dev.fleet_manifest import model_deployment
from modelfleet_dev.kubectl import Kubectl

QUERY = {
    "name": "prediction-psi",
    "query": 'max by (well, model) (modelfleet_runtime_prediction_psi_worst{well=~"{{wells}}"})',
    "operator": "LessThan",
    "threshold": 0.25,
}


def manifest() -> dict[str, Any]:
    md: dict[str, Any] = dict(
        model_deployment(
            "gated",
            wells=["g1", "g2", "g3"],
            version="1.0.0",
            bundle_uri="http://127.0.0.1:9/{version}/{well}/",
        )
    )
    md["spec"]["monitoring"] = {
        "prometheus": {"address": "http://prometheus.monitoring.svc:9090"},
        "intervalSeconds": 30,
    }
    md["spec"]["rollout"] = {"canary": {"wells": 1}, "analysis": {"queries": [QUERY]}}
    return md


def edited(change: Any) -> dict[str, Any]:
    md = copy.deepcopy(manifest())
    change(md["spec"])
    return md


def server_dry_run(kubectl: Kubectl, md: dict[str, Any]) -> tuple[int, str]:
    result = kubectl.run(
        "create", "--dry-run=server", "-f", "-", stdin=yaml.safe_dump(md), check=False
    )
    return result.returncode, result.stderr


def test_a_well_formed_analysis_is_accepted(kubectl: Kubectl) -> None:
    code, err = server_dry_run(kubectl, manifest())
    assert code == 0, err


@pytest.mark.parametrize(
    ("change", "field", "says"),
    [
        (lambda s: s["rollout"].pop("canary"), "spec.rollout", "analysis needs a canary"),
        (lambda s: s.pop("monitoring"), "spec", "rollout.analysis needs spec.monitoring"),
        (
            lambda s: s["rollout"]["analysis"]["queries"][0].update(operator="<"),
            "spec.rollout.analysis.queries[0].operator",
            "Unsupported value",
        ),
        (
            lambda s: s["rollout"]["analysis"]["queries"][0].update(query=""),
            "spec.rollout.analysis.queries[0].query",
            "",
        ),
        (
            lambda s: s["rollout"]["analysis"].update(queries=[QUERY, QUERY]),
            "spec.rollout.analysis.queries[1]",
            "Duplicate value",
        ),
        (
            lambda s: s["rollout"]["analysis"].update(queries=[]),
            "spec.rollout.analysis.queries",
            "",
        ),
        (
            lambda s: s["monitoring"]["prometheus"].update(address="prometheus:9090"),
            "spec.monitoring.prometheus.address",
            "",
        ),
        (
            lambda s: (
                s["monitoring"]["thresholds"].update(missingRate=2)
                if "thresholds" in s["monitoring"]
                else s["monitoring"].update(thresholds={"missingRate": 2})
            ),
            "spec.monitoring.thresholds.missingRate",
            "",
        ),
    ],
)
def test_a_malformed_analysis_or_monitoring_is_refused_naming_the_field(
    kubectl: Kubectl, change: Any, field: str, says: str
) -> None:
    code, err = server_dry_run(kubectl, edited(change))
    assert code != 0
    assert field in err and says in err, err


def test_explain_documents_analysis_and_monitoring(kubectl: Kubectl) -> None:
    def explain(field: str) -> str:
        return " ".join(kubectl.text("explain", field).split())  # kubectl wraps descriptions

    analysis = explain("modeldeployment.spec.rollout.analysis")
    assert "canary" in analysis and "AnalysisFailed" in analysis
    monitoring = explain("modeldeployment.spec.monitoring")
    assert "one Prometheus query per interval for the whole fleet" in monitoring


def test_get_wide_has_the_drifting_column(kubectl: Kubectl) -> None:
    # Wells from a ConfigMap that does not exist: the operator creates no pod for this fleet.
    md: dict[str, Any] = dict(
        model_deployment(
            "wide-cols",
            wells=None,
            wells_from=["wide-cols-absent"],
            version="1.0.0",
            bundle_uri="http://127.0.0.1:9/{version}/{well}/",
        )
    )
    kubectl.run("create", "-f", "-", stdin=yaml.safe_dump(md))
    try:
        narrow = kubectl.text("get", "mdep", "wide-cols").splitlines()[0].split()
        wide = kubectl.text("get", "mdep", "wide-cols", "-o", "wide").splitlines()[0].split()
    finally:
        kubectl.run("delete", "mdep", "wide-cols", "--wait=false")
    assert "DRIFTING" not in narrow
    assert wide[: len(narrow) - 1] == narrow[:-1]  # AGE last in both; DRIFTING after PHASE
    assert "DRIFTING" in wide
