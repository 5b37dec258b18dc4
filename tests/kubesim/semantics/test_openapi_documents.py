"""OpenAPI documents as kubectl consumes them (field validation probe, explain, patch metadata).

Docs: https://kubernetes.io/docs/concepts/overview/kubernetes-api/#openapi-v3
      https://kubernetes.io/docs/reference/using-api/api-concepts/#field-validation
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from kubesim.presentation.openapi import (
    openapi_v2_document,
    openapi_v3_document,
    openapi_v3_index,
)
from kubesim.schema.builtin import builtin_definition_name

from .model_deployment_schema import SCHEMA


@dataclass
class Served:
    group: str
    version: str
    kind: str
    plural: str
    namespaced: bool
    has_status: bool
    raw_schema: dict[str, Any] | None = None


RESOURCES = [
    Served("", "v1", "Pod", "pods", True, True),
    Served("", "v1", "Namespace", "namespaces", False, True),
    Served("", "v1", "ConfigMap", "configmaps", True, False),
    Served("coordination.k8s.io", "v1", "Lease", "leases", True, False),
    Served("modelfleet.dev", "v1alpha1", "ModelDeployment", "modeldeployments", True, True, SCHEMA),
]


def test_index_lists_every_group_version_with_a_content_hash() -> None:
    gvs = [("", "v1"), ("coordination.k8s.io", "v1"), ("modelfleet.dev", "v1alpha1")]
    index = openapi_v3_index(gvs, RESOURCES)
    assert set(index["paths"]) == {
        "api/v1",
        "apis/coordination.k8s.io/v1",
        "apis/modelfleet.dev/v1alpha1",
    }
    url = index["paths"]["apis/modelfleet.dev/v1alpha1"]["serverRelativeURL"]
    assert url.startswith("/openapi/v3/apis/modelfleet.dev/v1alpha1?hash=")


def test_index_hash_changes_when_a_crd_schema_changes() -> None:
    changed = Served(
        "modelfleet.dev",
        "v1alpha1",
        "ModelDeployment",
        "modeldeployments",
        True,
        True,
        {"type": "object"},
    )
    before = openapi_v3_index([("modelfleet.dev", "v1alpha1")], RESOURCES)
    after = openapi_v3_index([("modelfleet.dev", "v1alpha1")], [*RESOURCES[:-1], changed])
    assert before != after


def _patch_ops(doc: dict[str, Any], kind: str) -> list[dict[str, Any]]:
    return [
        item["patch"]
        for item in doc["paths"].values()
        if "patch" in item and item["patch"]["x-kubernetes-group-version-kind"]["kind"] == kind
    ]


def test_patch_operations_advertise_field_validation_for_kubectl_strict_validation() -> None:
    # cli-runtime's query_param_verifier_v3 looks for this exact shape.
    for group, version, kind in [
        ("", "v1", "Pod"),
        ("modelfleet.dev", "v1alpha1", "ModelDeployment"),
    ]:
        ops = _patch_ops(openapi_v3_document(group, version, RESOURCES), kind)
        assert ops
        assert all(
            any(p["name"] == "fieldValidation" and p["in"] == "query" for p in op["parameters"])
            for op in ops
        )


def test_builtin_definitions_come_from_the_real_kubernetes_schemas_with_patch_metadata() -> None:
    doc = openapi_v3_document("", "v1", RESOURCES)
    schemas = doc["components"]["schemas"]
    pod = schemas["io.k8s.api.core.v1.Pod"]
    assert pod["x-kubernetes-group-version-kind"] == [{"group": "", "kind": "Pod", "version": "v1"}]
    containers = schemas["io.k8s.api.core.v1.PodSpec"]["properties"]["containers"]
    assert containers["x-kubernetes-patch-merge-key"] == "name"
    assert containers["items"] == {"$ref": "#/components/schemas/io.k8s.api.core.v1.Container"}
    assert (
        schemas["io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta"]["properties"]["name"]["type"]
        == "string"
    )
    assert (
        builtin_definition_name("coordination.k8s.io", "v1", "Lease")
        == "io.k8s.api.coordination.v1.Lease"
    )


def test_crd_schema_is_published_with_gvk_descriptions_and_object_meta() -> None:
    doc = openapi_v3_document("modelfleet.dev", "v1alpha1", RESOURCES)
    md = doc["components"]["schemas"]["dev.modelfleet.v1alpha1.ModelDeployment"]
    assert md["x-kubernetes-group-version-kind"] == [
        {"group": "modelfleet.dev", "kind": "ModelDeployment", "version": "v1alpha1"}
    ]
    assert md["properties"]["metadata"]["allOf"] == [
        {"$ref": "#/components/schemas/io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta"}
    ]
    assert md["properties"]["spec"]["properties"]["wells"]["x-kubernetes-list-type"] == "map"
    assert "io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta" in doc["components"]["schemas"]
    assert (
        "/apis/modelfleet.dev/v1alpha1/namespaces/{namespace}/modeldeployments/{name}/status"
        in doc["paths"]
    )


def test_every_reference_resolves_inside_the_document() -> None:
    doc = openapi_v3_document("", "v1", RESOURCES)
    schemas = doc["components"]["schemas"]

    def refs(node: Any) -> list[str]:
        if isinstance(node, dict):
            found = [node["$ref"]] if isinstance(node.get("$ref"), str) else []
            return found + [r for v in node.values() for r in refs(v)]
        if isinstance(node, list):
            return [r for v in node for r in refs(v)]
        return []

    missing = {r for r in refs(doc) if r.rsplit("/", 1)[-1] not in schemas}
    assert missing == set()


def test_v2_document_uses_definitions_and_body_parameters() -> None:
    doc = openapi_v2_document(RESOURCES)
    assert doc["swagger"] == "2.0"
    assert "io.k8s.api.core.v1.Pod" in doc["definitions"]
    post = doc["paths"]["/api/v1/namespaces/{namespace}/pods"]["post"]
    assert any(p["in"] == "body" for p in post["parameters"])


def test_index_without_resources_changes_when_a_crd_schema_is_compiled() -> None:
    # kubectl caches /openapi/v3 documents by their hashed URL, so a CRD change must change it.
    from kubesim.schema.structural import compile_schema

    before = openapi_v3_index([("modelfleet.dev", "v1alpha1")])
    assert openapi_v3_index([("modelfleet.dev", "v1alpha1")]) == before
    compile_schema({"type": "object"})
    assert openapi_v3_index([("modelfleet.dev", "v1alpha1")]) != before


def test_only_built_ins_advertise_strategic_merge_patch() -> None:
    # kubectl apply sends a strategic merge patch iff the PATCH operation lists the type;
    # custom resources refuse it (415), so their documents must not offer it.
    pod_ops = _patch_ops(openapi_v3_document("", "v1", RESOURCES), "Pod")
    md_ops = _patch_ops(
        openapi_v3_document("modelfleet.dev", "v1alpha1", RESOURCES), "ModelDeployment"
    )
    assert all(
        "application/strategic-merge-patch+json" in op["requestBody"]["content"] for op in pod_ops
    )
    assert all(
        "application/strategic-merge-patch+json" not in op["requestBody"]["content"]
        for op in md_ops
    )
    assert all("application/merge-patch+json" in op["requestBody"]["content"] for op in md_ops)
