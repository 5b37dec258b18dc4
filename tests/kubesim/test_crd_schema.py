"""CRD structural schemas on create/update: validation, defaulting, pruning, CEL, field validation."""

from __future__ import annotations

from tests.crd_bodies import crd_body, spec_schema
from tests.kubesim.conftest import WIDGET_CRD, WIDGETS, Http, widget

CRD_DOC = "https://kubernetes.io/docs/tasks/extend-kubernetes/custom-resources/custom-resource-definitions/"


async def _crd(http: Http) -> None:
    await http.ok("POST", "/apis/apiextensions.k8s.io/v1/customresourcedefinitions", WIDGET_CRD)


async def test_schema_violations_are_422_with_field_paths(http: Http) -> None:
    """Types, required, enum, minimum/maximum are validated with field paths.
    https://kubernetes.io/docs/tasks/extend-kubernetes/custom-resources/custom-resource-definitions/#validation"""
    await _crd(http)
    reply = await http.post(WIDGETS, widget("bad", size=11, color="green"))
    assert reply.status == 422 and reply.body["reason"] == "Invalid"
    causes = {c["field"]: c for c in reply.body["details"]["causes"]}
    assert (
        causes["spec.size"]["message"]
        == "Invalid value: 11: spec.size in body should be less than or equal to 10"
    )
    assert causes["spec.color"]["reason"] == "FieldValueNotSupported"
    assert reply.body["message"].startswith('Widget.kubesim.test "bad" is invalid: [')
    missing = await http.post(
        WIDGETS,
        {"apiVersion": "kubesim.test/v1", "kind": "Widget", "metadata": {"name": "m"}, "spec": {}},
    )
    assert missing.status == 422 and missing.body["details"]["causes"][0]["field"] == "spec.size"
    typed = await http.post(WIDGETS, widget("t", size="big"))  # type: ignore[arg-type]
    assert typed.status == 422 and "must be of type integer" in typed.body["message"]


async def test_defaults_are_applied_and_unknown_fields_pruned(http: Http) -> None:
    """Defaults from the schema are applied; unknown fields are pruned (and reported as warnings).
    https://kubernetes.io/docs/tasks/extend-kubernetes/custom-resources/custom-resource-definitions/#defaulting-and-nullable"""
    await _crd(http)
    reply = await http.post(WIDGETS, {**widget("d"), "extra": 1})
    assert reply.status == 201
    assert reply.body["spec"]["color"] == "red" and "extra" not in reply.body
    assert 'unknown field "extra"' in reply.headers.get("Warning", "")


async def test_field_validation_strict_rejects_unknown_fields(http: Http) -> None:
    """fieldValidation=Strict turns unknown fields into a 400 BadRequest.
    https://kubernetes.io/docs/reference/using-api/api-concepts/#field-validation"""
    await _crd(http)
    reply = await http.post(
        f"{WIDGETS}?fieldValidation=Strict", {**widget("s"), "spec": {"size": 1, "nope": True}}
    )
    assert reply.status == 400 and 'unknown field "spec.nope"' in reply.body["message"]
    ignored = await http.post(
        f"{WIDGETS}?fieldValidation=Ignore", {**widget("s"), "spec": {"size": 1, "nope": True}}
    )
    assert ignored.status == 201 and "Warning" not in ignored.headers


async def test_cel_validation_rule_message(http: Http) -> None:
    """x-kubernetes-validations rules are evaluated; a failing rule answers 422 with its message.
    https://kubernetes.io/docs/tasks/extend-kubernetes/custom-resources/custom-resource-definitions/#validation-rules"""
    await _crd(http)
    reply = await http.post(WIDGETS, widget("cel", size=7))
    assert reply.status == 422
    cause = reply.body["details"]["causes"][0]
    assert cause["field"] == "spec" and "size 7 is unlucky" in cause["message"]


async def test_list_type_map_duplicates_are_rejected(http: Http) -> None:
    """x-kubernetes-list-type: map forbids duplicate keys (FieldValueDuplicate).
    https://kubernetes.io/docs/reference/using-api/server-side-apply/#merge-strategy"""
    await _crd(http)
    reply = await http.post(WIDGETS, widget("dups", parts=[{"id": "a"}, {"id": "a"}]))
    assert reply.status == 422
    cause = reply.body["details"]["causes"][0]
    assert cause["reason"] == "FieldValueDuplicate" and cause["field"] == "spec.parts[1]"


async def test_non_structural_crd_schema_is_rejected(http: Http) -> None:
    """CRD schemas must be structural (every field typed).
    https://kubernetes.io/docs/tasks/extend-kubernetes/custom-resources/custom-resource-definitions/#specifying-a-structural-schema"""
    crd = crd_body("kubesim.test", "Blob", spec_schema({"properties": {"a": {"type": "string"}}}))
    reply = await http.post("/apis/apiextensions.k8s.io/v1/customresourcedefinitions", crd)
    assert reply.status == 422 and reply.body["details"]["kind"] == "CustomResourceDefinition"
