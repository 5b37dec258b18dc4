"""What the apiserver refuses in a CustomResourceDefinition, the same on kubesim and kube-apiserver.

Both were found by the real cluster (cluster/README.md, fidelity ledger): kubesim accepted a CRD
whose default its own CEL rules reject (the ModelDeployment CRD before c7789c9), and a CRD with a
numeric `exclusiveMinimum` (48fda60's monitoring thresholds).
"""

from __future__ import annotations

import itertools
from typing import Any

import httpx

from tests.crd_bodies import CRDS_PATH, crd_body, spec_schema

from .conftest import ConformanceCluster

_names = itertools.count(1)


def _crd(spec: dict[str, Any]) -> dict[str, Any]:
    """A CRD of a new kind at each call, whose spec has this schema."""
    plural = f"probes{next(_names)}"
    return crd_body("conformance.test", plural.capitalize(), spec_schema(spec), plural=plural)


def _create(cluster: ConformanceCluster, crd: dict[str, Any]) -> httpx.Response:
    answer = cluster.admin.post(CRDS_PATH, json=crd)
    if answer.status_code == 201:
        cluster.admin.delete(f"{CRDS_PATH}/{crd['metadata']['name']}")
    return answer


def _rollout(default: dict[str, Any]) -> dict[str, Any]:
    return {
        "type": "object",
        "properties": {
            "rollout": {
                "type": "object",
                "default": default,
                "properties": {"maxSurge": {"type": "integer"}},
                "x-kubernetes-validations": [{"rule": "self.maxSurge >= 0"}],
            }
        },
    }


def test_a_default_that_its_cel_rule_cannot_evaluate_refuses_the_crd(
    cluster: ConformanceCluster,
) -> None:
    refused = _create(cluster, _crd(_rollout({})))
    assert refused.status_code == 422, refused.text
    message = refused.json()["message"]
    assert "properties[rollout].default" in message, message
    assert "no such key: maxSurge" in message, message


def test_a_default_that_its_cel_rule_rejects_refuses_the_crd(
    cluster: ConformanceCluster,
) -> None:
    refused = _create(cluster, _crd(_rollout({"maxSurge": -1})))
    assert refused.status_code == 422, refused.text
    message = refused.json()["message"]
    assert "properties[rollout].default" in message, message
    assert "failed rule: self.maxSurge >= 0" in message, message


def test_a_default_that_satisfies_its_cel_rule_is_accepted(cluster: ConformanceCluster) -> None:
    accepted = _create(cluster, _crd(_rollout({"maxSurge": 0})))
    assert accepted.status_code == 201, accepted.text


def test_a_numeric_exclusive_minimum_is_not_openapi_v3_0_and_refuses_the_crd(
    cluster: ConformanceCluster,
) -> None:
    # OpenAPI v3.0 (CRD schemas): exclusiveMinimum is a boolean beside minimum; a number is
    # JSON Schema 2020-12, which the CRD's Go type cannot decode.
    schema = {"type": "object", "properties": {"psi": {"type": "number", "exclusiveMinimum": 0}}}
    refused = _create(cluster, _crd(schema))
    assert refused.status_code == 400, refused.text
    message = refused.json()["message"]
    assert "exclusiveMinimum of type bool" in message, message
    fine = {
        "type": "object",
        "properties": {"psi": {"type": "number", "minimum": 0, "exclusiveMinimum": True}},
    }
    assert _create(cluster, _crd(fine)).status_code == 201
