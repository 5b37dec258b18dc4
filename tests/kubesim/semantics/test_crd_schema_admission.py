"""Structural schema pruning, defaulting and validation of custom resources.

Docs: https://kubernetes.io/docs/tasks/extend-kubernetes/custom-resources/custom-resource-definitions/
(#specifying-a-structural-schema, #field-pruning, #defaulting, #validation,
#validation-rules, #transition-rules) and
https://kubernetes.io/docs/reference/using-api/server-side-apply/#merge-strategy (list types).
"""

from __future__ import annotations

import copy
import time
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from kubesim.schema.structural import compile_schema, structural_causes, validate_structural

from .model_deployment_schema import SCHEMA

COMPILED = compile_schema(SCHEMA)


def md(**spec: Any) -> dict[str, Any]:
    return {
        "apiVersion": "modelfleet.dev/v1alpha1",
        "kind": "ModelDeployment",
        "metadata": {"name": "fr", "labels": {"a": "b"}},
        "spec": {"model": {"name": "m"}, "wells": [{"id": "w1"}], **spec},
    }


def messages(obj: dict[str, Any], old: dict[str, Any] | None = None) -> list[str]:
    return [c.error_text() for c in COMPILED.admit(obj, old, strict_unknown=False)[1]]


def test_the_model_deployment_schema_is_structural() -> None:
    assert validate_structural(SCHEMA) == []


def test_unknown_fields_are_pruned_and_reported_but_metadata_is_kept() -> None:
    obj = md(extra=1)
    obj["spec"]["wells"][0]["junk"] = True
    admitted, causes, unknown = COMPILED.admit(obj, None, strict_unknown=True)
    assert causes == []
    assert "extra" not in admitted["spec"] and "junk" not in admitted["spec"]["wells"][0]
    assert unknown == ["spec.extra", "spec.wells[0].junk"]
    assert admitted["metadata"] == {"name": "fr", "labels": {"a": "b"}}


def test_preserve_unknown_fields_keeps_everything_below() -> None:
    admitted, _, unknown = COMPILED.admit(
        md(config={"free": {"form": [1]}}), None, strict_unknown=True
    )
    assert admitted["spec"]["config"] == {"free": {"form": [1]}}
    assert unknown == []


def test_defaults_are_applied_also_nested_and_inside_list_items() -> None:
    admitted, causes, _ = COMPILED.admit(md(), None, strict_unknown=False)
    assert causes == []
    spec = admitted["spec"]
    assert spec["replicas"] == 1 and spec["strategy"] == "RollingUpdate"
    assert spec["model"]["version"] == "latest"
    # rollout defaults to {} and then its own properties default.
    assert spec["rollout"] == {"maxSurge": "25%", "maxUnavailable": 0}
    assert spec["wells"][0]["weight"] == 1.0


def test_admit_does_not_mutate_the_request_object() -> None:
    obj = md(extra=1)
    before = copy.deepcopy(obj)
    COMPILED.admit(obj, None, strict_unknown=True)
    assert obj == before


def test_type_errors_name_the_field_and_the_expected_type() -> None:
    assert messages(md(replicas="two")) == [
        'spec.replicas: Invalid value: "string": spec.replicas in body must be of type integer: "string"',
        '<nil>: Invalid value: "null": some validation rules were not checked because the object '
        "was invalid; correct the existing errors to complete validation",
    ]


def test_required_fields_are_reported_as_required_value() -> None:
    obj = md()
    del obj["spec"]["model"]
    assert messages(obj)[0] == "spec.model: Required value"


def test_enum_violations_list_the_supported_values() -> None:
    assert messages(md(strategy="Blue"))[0] == (
        'spec.strategy: Unsupported value: "Blue": supported values: "RollingUpdate", "Recreate"'
    )


def test_maximum_and_pattern_and_max_length() -> None:
    result = messages(md(replicas=5, model={"name": "Bad_" + "x" * 70}))
    assert (
        "spec.replicas: Invalid value: 5: spec.replicas in body should be less than or equal to 3"
        in result
    )
    assert "spec.model.name: Too long: may not be more than 63 bytes" in result
    assert any(
        m.startswith('spec.model.name: Invalid value: "Bad_')
        and m.endswith("should match '^[a-z0-9-]+$'")
        for m in result
    )


def test_int_or_string_accepts_both_and_rejects_other_types() -> None:
    assert messages(md(rollout={"maxSurge": 2, "maxUnavailable": "10%"})) == []
    assert messages(md(rollout={"maxSurge": True}))[0] == (
        'spec.rollout.maxSurge: Invalid value: "boolean": spec.rollout.maxSurge in body must be of type '
        'integer,string: "boolean"'
    )


def test_list_type_map_rejects_duplicate_keys_at_the_second_occurrence() -> None:
    assert messages(md(wells=[{"id": "w1"}, {"id": "w2"}, {"id": "w1"}])) == [
        'spec.wells[2]: Duplicate value: {"id":"w1"}'
    ]


def test_list_type_set_rejects_duplicates() -> None:
    schema = {
        "type": "object",
        "properties": {
            "tags": {"type": "array", "x-kubernetes-list-type": "set", "items": {"type": "string"}}
        },
    }
    causes = compile_schema(schema).admit({"tags": ["a", "b", "a"]}, None, strict_unknown=False)[1]
    assert [c.error_text() for c in causes] == ['tags[2]: Duplicate value: "a"']


def test_max_items_is_too_many() -> None:
    schema = {
        "type": "object",
        "properties": {"xs": {"type": "array", "maxItems": 2, "items": {"type": "integer"}}},
    }
    causes = compile_schema(schema).admit({"xs": [1, 2, 3]}, None, strict_unknown=False)[1]
    assert causes[0].error_text() == "xs: Too many: 3: must have at most 2 items"


def test_cel_rule_failure_reports_the_message_at_the_field_path() -> None:
    assert messages(md(rollout={"maxSurge": 0, "maxUnavailable": 0})) == [
        'spec.rollout: Invalid value: "object": maxSurge and maxUnavailable cannot both be 0'
    ]


def test_cel_rule_without_message_reports_the_failed_rule() -> None:
    schema = {
        "type": "object",
        "properties": {
            "n": {"type": "integer", "x-kubernetes-validations": [{"rule": "self > 1"}]}
        },
    }
    causes = compile_schema(schema).admit({"n": 0}, None, strict_unknown=False)[1]
    assert [c.error_text() for c in causes] == [
        'n: Invalid value: "integer": failed rule: self > 1'
    ]


def test_cel_rules_run_per_list_item_with_item_paths() -> None:
    result = messages(md(wells=[{"id": "w1"}, {"id": "w2", "pin": "x" * 65}]))
    assert result == ['spec.wells[1]: Invalid value: "object": pin too long']


def test_cel_message_expression_and_reason() -> None:
    schema = {
        "type": "object",
        "properties": {
            "n": {
                "type": "integer",
                "x-kubernetes-validations": [
                    {
                        "rule": "self <= 3",
                        "messageExpression": "'n is ' + string(self) + ', max 3'",
                        "reason": "FieldValueForbidden",
                    }
                ],
            }
        },
    }
    causes = compile_schema(schema).admit({"n": 7}, None, strict_unknown=False)[1]
    assert [(c.reason, c.error_text()) for c in causes] == [
        ("FieldValueForbidden", "n: Forbidden: n is 7, max 3")
    ]


def test_transition_rules_are_skipped_on_create_and_checked_on_update() -> None:
    # Docs (#transition-rules): rules with oldSelf only run when an old value exists.
    schema = {
        "type": "object",
        "properties": {
            "name": {
                "type": "string",
                "x-kubernetes-validations": [
                    {"rule": "self == oldSelf", "message": "is immutable"}
                ],
            }
        },
    }
    compiled = compile_schema(schema)
    assert compiled.admit({"name": "a"}, None, strict_unknown=False)[1] == []
    assert compiled.admit({"name": "a"}, {"name": "a"}, strict_unknown=False)[1] == []
    causes = compiled.admit({"name": "b"}, {"name": "a"}, strict_unknown=False)[1]
    assert [c.error_text() for c in causes] == ['name: Invalid value: "string": is immutable']


def test_transition_rules_correlate_list_map_items_by_key() -> None:
    schema = {
        "type": "object",
        "properties": {
            "wells": {
                "type": "array",
                "x-kubernetes-list-type": "map",
                "x-kubernetes-list-map-keys": ["id"],
                "items": {
                    "type": "object",
                    "required": ["id"],
                    "properties": {"id": {"type": "string"}, "zone": {"type": "string"}},
                    "x-kubernetes-validations": [
                        {"rule": "self.zone == oldSelf.zone", "message": "zone is immutable"}
                    ],
                },
            }
        },
    }
    compiled = compile_schema(schema)
    old = {"wells": [{"id": "a", "zone": "1"}, {"id": "b", "zone": "2"}]}
    new = {"wells": [{"id": "b", "zone": "2"}, {"id": "a", "zone": "9"}, {"id": "c", "zone": "3"}]}
    causes = compiled.admit(new, old, strict_unknown=False)[1]
    assert [c.error_text() for c in causes] == [
        'wells[1]: Invalid value: "object": zone is immutable'
    ]


def test_unchanged_invalid_values_are_ratcheted_on_update() -> None:
    # Docs (#validation-ratcheting): unchanged fields that fail validation do not block updates.
    invalid = md(replicas=9)
    assert messages(invalid, None) != []
    assert messages(invalid, copy.deepcopy(invalid)) == []


def test_nullable_fields_accept_null_and_non_nullable_nulls_are_dropped() -> None:
    schema = {
        "type": "object",
        "properties": {
            "a": {"type": "string", "nullable": True},
            "b": {"type": "string"},
            "c": {"type": "string", "default": "d"},
        },
    }
    admitted, causes, _ = compile_schema(schema).admit(
        {"a": None, "b": None, "c": None}, None, strict_unknown=False
    )
    assert causes == []
    assert admitted == {"a": None, "c": "d"}


def test_format_date_time_is_checked() -> None:
    schema = {"type": "object", "properties": {"at": {"type": "string", "format": "date-time"}}}
    compiled = compile_schema(schema)
    assert compiled.admit({"at": "2026-11-25T12:00:00Z"}, None, strict_unknown=False)[1] == []
    causes = compiled.admit({"at": "yesterday"}, None, strict_unknown=False)[1]
    assert (
        causes[0].error_text()
        == 'at: Invalid value: "yesterday": at in body must be of type date-time: "yesterday"'
    )


@pytest.mark.parametrize(
    ("schema", "fragment"),
    [
        (
            {"type": "object", "properties": {"a": {"properties": {"b": {"type": "string"}}}}},
            "properties[a].type: Required value",
        ),
        (
            {
                "type": "object",
                "properties": {"a": {"type": "string", "x-kubernetes-int-or-string": True}},
            },
            "properties[a].type: Forbidden",
        ),
        (
            {
                "type": "object",
                "properties": {
                    "a": {"type": "array", "items": {"type": "string"}, "uniqueItems": True}
                },
            },
            "uniqueItems",
        ),
        (
            {
                "type": "object",
                "properties": {"a": {"type": "object", "additionalProperties": False}},
            },
            "additionalProperties",
        ),
        (
            {"type": "object", "x-kubernetes-validations": [{"rule": "self.x ==="}]},
            "x-kubernetes-validations[0].rule",
        ),
        (
            {
                "type": "object",
                "properties": {
                    "l": {
                        "type": "array",
                        "x-kubernetes-list-type": "map",
                        "items": {"type": "object"},
                    }
                },
            },
            "x-kubernetes-list-map-keys: Required value",
        ),
        ({"type": "string"}, "openAPIV3Schema.type"),
    ],
)
def test_non_structural_schemas_are_rejected(schema: dict[str, Any], fragment: str) -> None:
    problems = validate_structural(schema)
    assert any(fragment in p for p in problems), problems


def test_structural_causes_are_prefixed_for_the_crd_error() -> None:
    causes = structural_causes(
        {"type": "object", "properties": {"a": {}}}, "spec.versions[0].schema.openAPIV3Schema"
    )
    assert causes[0].field == "spec.versions[0].schema.openAPIV3Schema.properties[a].type"


def test_admitting_ten_thousand_wells_takes_well_under_a_second() -> None:
    obj = md(
        wells=[{"id": f"w{i}", "labels": {"zone": f"z{i % 5}"}, "pin": "v1"} for i in range(10_000)]
    )
    started = time.perf_counter()
    admitted, causes, _ = COMPILED.admit(obj, None, strict_unknown=True)
    elapsed = time.perf_counter() - started
    assert causes == [] and len(admitted["spec"]["wells"]) == 10_000
    assert elapsed < 1.0, f"admit took {elapsed:.3f}s"


def test_rule_costs_bound_per_item_rules_by_max_items() -> None:
    costs = {(c.path, c.rule): c.max_evaluations for c in COMPILED.rule_costs()}
    assert costs[("spec.wells[*]", "!has(self.pin) || self.pin.size() <= 64")] == 10_000


_scalars = st.one_of(st.none(), st.booleans(), st.integers(-5, 5), st.text("abw0%", max_size=4))
_wells = st.lists(
    st.fixed_dictionaries(
        {"id": st.one_of(st.sampled_from(["w1", "w2", "w3"]), _scalars)},
        optional={
            "pin": _scalars,
            "junk": _scalars,
            "labels": st.dictionaries(st.sampled_from("ab"), _scalars, max_size=2),
        },
    ),
    max_size=4,
)
_specs = st.fixed_dictionaries(
    {"model": st.fixed_dictionaries({"name": st.one_of(st.just("m"), _scalars)})},
    optional={
        "wells": _wells,
        "replicas": _scalars,
        "strategy": st.one_of(st.just("Recreate"), _scalars),
        "rollout": st.fixed_dictionaries(
            {}, optional={"maxSurge": _scalars, "maxUnavailable": _scalars, "x": _scalars}
        ),
        "extra": _scalars,
    },
)


@settings(max_examples=150, deadline=None)
@given(_specs)
def test_admission_is_idempotent_and_leaves_no_unknown_fields(spec: dict[str, Any]) -> None:
    # Pruning and defaulting are projections: admitting the result again changes nothing.
    obj = {
        "apiVersion": "modelfleet.dev/v1alpha1",
        "kind": "ModelDeployment",
        "metadata": {"name": "p"},
        "spec": spec,
    }
    once, causes, _ = COMPILED.admit(obj, None, strict_unknown=True)
    twice, causes_again, unknown_again = COMPILED.admit(once, None, strict_unknown=True)
    assert twice == once
    assert unknown_again == []
    assert [c.error_text() for c in causes_again] == [c.error_text() for c in causes]


def test_defaults_must_validate_against_their_own_schema() -> None:
    # Docs (#defaulting): "Default values ... must be pruned ... and validated" at CRD creation.
    problems = validate_structural(
        {
            "type": "object",
            "properties": {
                "n": {"type": "integer", "maximum": 3, "default": 5},
                "o": {
                    "type": "object",
                    "default": {"x": 1},
                    "properties": {"y": {"type": "string"}},
                },
                "fine": {"type": "string", "enum": ["a"], "default": "a"},
            },
        }
    )
    assert problems == [
        "openAPIV3Schema.properties[n].default: Invalid value: 5: "
        "openAPIV3Schema.properties[n].default in body should be less than or equal to 3",
        'openAPIV3Schema.properties[o].default: Invalid value: {"x":1}: '
        "must not have unknown fields: openAPIV3Schema.properties[o].default.x",
    ]


def test_a_root_metadata_schema_constrains_the_name_but_never_prunes_object_meta() -> None:
    # Docs (#specifying-a-structural-schema): only metadata.name and generateName may be restricted.
    schema = {
        "type": "object",
        "properties": {
            "metadata": {
                "type": "object",
                "properties": {"name": {"type": "string", "maxLength": 5}},
            }
        },
    }
    compiled = compile_schema(schema)
    obj = {"metadata": {"name": "short", "labels": {"a": "b"}, "finalizers": ["x/y"]}}
    admitted, causes, unknown = compiled.admit(obj, None, strict_unknown=True)
    assert (admitted, causes, unknown) == (obj, [], [])
    causes = compiled.admit({"metadata": {"name": "much-too-long"}}, None, strict_unknown=False)[1]
    assert [c.error_text() for c in causes] == [
        "metadata.name: Too long: may not be more than 5 bytes"
    ]


def test_root_rules_see_only_name_and_generate_name_of_metadata() -> None:
    # Docs (#validation-rules): "apiVersion, kind, metadata.name and metadata.generateName are
    # always accessible from the root ... No other metadata properties are accessible."
    schema = {
        "type": "object",
        "x-kubernetes-validations": [
            {"rule": "size(self.metadata.name) <= 5", "message": "name too long"},
            {"rule": "!has(self.metadata.labels)", "message": "labels are visible"},
        ],
    }
    causes = compile_schema(schema).admit(
        {"metadata": {"name": "abcdefg", "labels": {"a": "b"}}}, None, strict_unknown=False
    )[1]
    assert [c.error_text() for c in causes] == ['<nil>: Invalid value: "object": name too long']


def test_junctors_validate_without_pruning() -> None:
    # Structural schemas allow value validations in allOf/anyOf/oneOf/not; pruning and
    # defaulting follow the main schema only (Docs: #specifying-a-structural-schema).
    schema = {
        "type": "object",
        "properties": {
            "port": {
                "x-kubernetes-int-or-string": True,
                "anyOf": [{"type": "integer"}, {"type": "string"}],
            },
            "mode": {"type": "string", "not": {"enum": ["forbidden"]}},
            "spec": {
                "type": "object",
                "properties": {"a": {"type": "string"}, "b": {"type": "string"}},
                "allOf": [{"required": ["a"]}],
                "oneOf": [{"required": ["a"]}, {"required": ["b"]}],
            },
        },
    }
    compiled = compile_schema(schema)
    admitted, causes, _ = compiled.admit(
        {"port": "http", "mode": "ok", "spec": {"a": "x"}}, None, strict_unknown=False
    )
    assert causes == [] and admitted["spec"] == {"a": "x"}
    causes = compiled.admit(
        {"mode": "forbidden", "spec": {"a": "x", "b": "y"}}, None, strict_unknown=False
    )[1]
    assert [c.error_text() for c in causes] == [
        '<nil>: Invalid value: "": "mode" must not validate the schema (not)',
        '<nil>: Invalid value: "": "spec" must validate one and only one schema (oneOf). Found 2 valid alternatives',
    ]
    causes = compiled.admit({"spec": {"b": "y"}}, None, strict_unknown=False)[1]
    assert [c.error_text() for c in causes] == ["spec.a: Required value"]


@pytest.mark.parametrize(
    "int_or_string",
    [
        {"x-kubernetes-int-or-string": True},
        {"x-kubernetes-int-or-string": True, "anyOf": [{"type": "integer"}, {"type": "string"}]},
        {
            "x-kubernetes-int-or-string": True,
            "allOf": [
                {"anyOf": [{"type": "integer"}, {"type": "string"}]},
                {"pattern": "^[0-9]+%?$"},
            ],
        },
    ],
)
def test_int_or_string_idioms_are_structural(int_or_string: dict[str, Any]) -> None:
    """ValidateStructural allows exactly these int-or-string shapes (controller-gen emits the
    anyOf one). https://pkg.go.dev/k8s.io/apiextensions-apiserver/pkg/apiserver/schema#ValidateStructural"""
    schema = {"type": "object", "properties": {"maxUnavailable": int_or_string}}
    assert validate_structural(schema) == []


def test_transition_rules_still_run_on_unchanged_values() -> None:
    # Docs (#validation-ratcheting): rules that read oldSelf are not ratcheted, so an update
    # that leaves their value unchanged (here: a status-like sibling changes) still runs them.
    schema = {
        "type": "object",
        "properties": {
            "spec": {
                "type": "object",
                "properties": {"n": {"type": "integer"}},
                "x-kubernetes-validations": [
                    {"rule": "self.n != oldSelf.n", "message": "n must change on every update"}
                ],
            },
            "status": {"type": "object", "properties": {"seen": {"type": "integer"}}},
        },
    }
    compiled = compile_schema(schema)
    old = {"spec": {"n": 1}, "status": {"seen": 1}}
    new = {"spec": {"n": 1}, "status": {"seen": 2}}
    causes = compiled.admit(new, old, strict_unknown=False)[1]
    assert [c.error_text() for c in causes] == [
        'spec: Invalid value: "object": n must change on every update'
    ]
