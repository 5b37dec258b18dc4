"""ApiError bodies must be the metav1.Status kube-apiserver sends.

Docs: https://kubernetes.io/docs/reference/using-api/api-concepts/#api-response-status-codes and
https://kubernetes.io/docs/reference/kubernetes-api/common-definitions/status/
"""

from __future__ import annotations

from kubesim.wire.errors import (
    ApiError,
    field_duplicate,
    field_invalid,
    field_not_supported,
    field_required,
    field_too_long,
    field_too_many,
    field_type_invalid,
)


def test_not_found_status_names_the_qualified_resource() -> None:
    # Status reference: details.kind holds the resource for NotFound; group omitted when empty.
    assert ApiError.not_found("", "pods", "web-0").to_status() == {
        "kind": "Status",
        "apiVersion": "v1",
        "metadata": {},
        "status": "Failure",
        "message": 'pods "web-0" not found',
        "reason": "NotFound",
        "details": {"name": "web-0", "kind": "pods"},
        "code": 404,
    }


def test_not_found_for_a_custom_resource_is_qualified_by_group() -> None:
    err = ApiError.not_found("modelfleet.dev", "modeldeployments", "fr")
    assert err.message == 'modeldeployments.modelfleet.dev "fr" not found'
    assert err.to_status()["details"]["group"] == "modelfleet.dev"


def test_already_exists_is_409_with_reason_already_exists() -> None:
    status = ApiError.already_exists("", "configmaps", "cfg").to_status()
    assert (status["code"], status["reason"], status["message"]) == (
        409,
        "AlreadyExists",
        'configmaps "cfg" already exists',
    )


def test_conflict_message_tells_the_client_to_retry_on_the_latest_version() -> None:
    # https://kubernetes.io/docs/reference/using-api/api-concepts/#resource-versions (optimistic concurrency)
    err = ApiError.conflict("", "pods", "x")
    assert err.code == 409 and err.reason == "Conflict"
    assert err.message == (
        'Operation cannot be fulfilled on pods "x": the object has been modified; '
        "please apply your changes to the latest version and try again"
    )


def test_invalid_with_one_cause_prints_it_bare() -> None:
    err = ApiError.invalid(
        "", "Pod", "Bad", [field_invalid("metadata.name", "Bad", "must be lowercase")]
    )
    assert (
        err.message
        == 'Pod "Bad" is invalid: metadata.name: Invalid value: "Bad": must be lowercase'
    )
    assert err.to_status()["details"]["causes"] == [
        {
            "reason": "FieldValueInvalid",
            "message": 'Invalid value: "Bad": must be lowercase',
            "field": "metadata.name",
        }
    ]


def test_invalid_with_several_causes_aggregates_them_in_brackets() -> None:
    err = ApiError.invalid(
        "modelfleet.dev",
        "ModelDeployment",
        "fr",
        [
            field_required("spec.model"),
            field_invalid("spec.replicas", 5, "should be less than or equal to 3"),
            field_duplicate("spec.wells[3]", {"id": "w1"}),
        ],
    )
    assert err.code == 422 and err.reason == "Invalid"
    assert err.message == (
        'ModelDeployment.modelfleet.dev "fr" is invalid: [spec.model: Required value, '
        "spec.replicas: Invalid value: 5: should be less than or equal to 3, "
        'spec.wells[3]: Duplicate value: {"id":"w1"}]'
    )
    assert err.to_status()["details"]["kind"] == "ModelDeployment"


def test_cause_messages_follow_field_error_body_formatting() -> None:
    # k8s.io/apimachinery/pkg/util/validation/field/errors.go ErrorBody
    assert field_not_supported("spec.strategy", "x", ["a", "b"]).message == (
        'Unsupported value: "x": supported values: "a", "b"'
    )
    assert (
        field_not_supported("spec.n", 4, [1, 2]).message
        == 'Unsupported value: 4: supported values: "1", "2"'
    )
    assert field_type_invalid(
        "spec.x", "string", 'spec.x in body must be of type integer: "string"'
    ).message == ('Invalid value: "string": spec.x in body must be of type integer: "string"')
    assert field_too_long("spec.name", 5).message == "Too long: may not be more than 5 bytes"
    assert field_too_many("spec.wells", 4, 3).message == "Too many: 4: must have at most 3 items"
    assert field_invalid("spec.ok", True, "x").message == "Invalid value: true: x"
    assert field_invalid("spec.none", None, "x").message == "Invalid value: null: x"


def test_too_many_requests_carries_retry_after_seconds() -> None:
    status = ApiError.too_many_requests("too many requests, please try again later", 3).to_status()
    assert status["code"] == 429
    assert status["details"] == {"retryAfterSeconds": 3}


def test_too_old_resource_version_is_410_expired() -> None:
    # https://kubernetes.io/docs/reference/using-api/api-concepts/#410-gone-responses
    err = ApiError.too_old_resource_version(5, 120)
    assert (err.code, err.reason, err.message) == (
        410,
        "Expired",
        "too old resource version: 5 (120)",
    )


def test_api_error_is_an_exception_carrying_its_message() -> None:
    try:
        raise ApiError.bad_request("bad body")
    except ApiError as exc:
        assert str(exc) == "bad body"
        assert exc.to_status()["code"] == 400
        assert "details" not in exc.to_status()
