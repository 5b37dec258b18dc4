"""Label and field selector semantics pinned to the Kubernetes documentation.

Docs: https://kubernetes.io/docs/concepts/overview/working-with-objects/labels/#label-selectors
      https://kubernetes.io/docs/concepts/overview/working-with-objects/field-selectors/
"""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from kubesim.core.selectors import (
    FieldSelector,
    LabelSelector,
    dns1123_label_errors,
    dns1123_subdomain_errors,
    label_key_errors,
)
from kubesim.wire.errors import ApiError

POD = {"metadata": {"name": "web-0", "namespace": "fr"}, "status": {"phase": "Running"}}
POD_FIELDS = frozenset({"metadata.name", "metadata.namespace", "status.phase"})


@pytest.mark.parametrize(
    ("selector", "labels", "expected"),
    [
        ("environment = production", {"environment": "production"}, True),
        ("environment == production", {"environment": "production"}, True),
        ("tier != frontend", {"tier": "backend"}, True),
        # "!=" also selects resources without the key (docs: equality-based requirement).
        ("tier != frontend", {}, True),
        ("tier != frontend", {"tier": "frontend"}, False),
        ("environment in (production, qa)", {"environment": "qa"}, True),
        ("environment in (production, qa)", {}, False),
        # "notin" also selects resources without the key (docs: set-based requirement).
        ("tier notin (frontend, backend)", {}, True),
        ("tier notin (frontend, backend)", {"tier": "backend"}, False),
        ("partition", {"partition": ""}, True),
        ("partition", {}, False),
        ("!partition", {}, True),
        ("!partition", {"partition": "a"}, False),
        ("partition in (customerA, customerB),environment!=qa", {"partition": "customerA"}, True),
        ("", {"anything": "x"}, True),
        ("a in (in)", {"a": "in"}, True),
        ("x in (foo,,baz)", {"x": ""}, True),
        ("a=", {"a": ""}, True),
    ],
)
def test_label_selector_matches_like_the_documented_examples(
    selector: str, labels: dict[str, str], expected: bool
) -> None:
    assert LabelSelector.parse(selector).matches(labels) is expected


@pytest.mark.parametrize(
    ("selector", "message"),
    [
        ("a in", "unable to parse requirement: found '' expected: '('"),
        ("a b", "unable to parse requirement: found 'b', expected: in, notin, =, ==, !=, gt, lt"),
        ("a,", "found '', expected: identifier after ','"),
        ("a=b c", "found 'c', expected: ',' or 'end of string'"),
        ("a in (x", "unable to parse requirement: found '', expected: ',' or ')'"),
    ],
)
def test_bad_label_selector_syntax_is_400_with_the_parser_message(
    selector: str, message: str
) -> None:
    with pytest.raises(ApiError) as info:
        LabelSelector.parse(selector)
    assert info.value.code == 400 and info.value.reason == "BadRequest"
    assert info.value.message == message


def test_invalid_label_key_in_selector_is_rejected() -> None:
    with pytest.raises(ApiError) as info:
        LabelSelector.parse("-bad=1")
    assert "name part must consist of alphanumeric characters" in info.value.message


def test_required_equalities_are_the_exact_match_terms_for_index_lookups() -> None:
    sel = LabelSelector.parse("app=web,tier in (a),env!=qa,zone in (x,y),canary")
    assert sel.required_equalities() == {"app": "web", "tier": "a"}
    assert sel.required_keys() == frozenset({"app", "tier", "zone", "canary"})


def test_metav1_label_selector_combines_match_labels_and_expressions() -> None:
    # https://kubernetes.io/docs/concepts/overview/working-with-objects/labels/#resources-that-support-set-based-requirements
    sel = LabelSelector.from_match_labels_expressions(
        {
            "matchLabels": {"component": "redis"},
            "matchExpressions": [
                {"key": "tier", "operator": "In", "values": ["cache"]},
                {"key": "environment", "operator": "NotIn", "values": ["dev"]},
            ],
        }
    )
    assert sel.matches({"component": "redis", "tier": "cache"})
    assert not sel.matches({"component": "redis", "tier": "cache", "environment": "dev"})
    assert LabelSelector.from_match_labels_expressions({}).matches({"x": "y"})
    assert not LabelSelector.from_match_labels_expressions(None).matches({})


def test_metav1_label_selector_rejects_unknown_operators() -> None:
    with pytest.raises(ApiError) as info:
        LabelSelector.from_match_labels_expressions(
            {"matchExpressions": [{"key": "a", "operator": "Like"}]}
        )
    assert info.value.code == 400


_key = st.from_regex(r"\A[a-z]([a-z0-9.-]{0,8}[a-z0-9])?\Z")
_value = st.from_regex(r"\A([A-Za-z0-9]([A-Za-z0-9_.-]{0,8}[A-Za-z0-9])?)?\Z")
_requirement_text = st.one_of(
    st.builds(lambda k, v: f"{k}={v}", _key, _value),
    st.builds(lambda k, v: f"{k}!={v}", _key, _value),
    st.builds(
        lambda k, vs: f"{k} in ({','.join(vs)})", _key, st.lists(_value, min_size=1, max_size=3)
    ),
    st.builds(
        lambda k, vs: f"{k} notin ({','.join(vs)})", _key, st.lists(_value, min_size=1, max_size=3)
    ),
    _key,
    st.builds(lambda k: f"!{k}", _key),
)


@given(st.lists(_requirement_text, max_size=4), st.dictionaries(_key, _value, max_size=4))
def test_label_selector_print_parse_round_trip_keeps_meaning(
    terms: list[str], labels: dict[str, str]
) -> None:
    parsed = LabelSelector.parse(",".join(terms))
    reparsed = LabelSelector.parse(str(parsed))
    assert reparsed == parsed
    assert reparsed.matches(labels) == parsed.matches(labels)


def test_field_selector_supports_equal_double_equal_and_not_equal() -> None:
    assert FieldSelector.parse("metadata.name=web-0", POD_FIELDS).matches(POD)
    assert FieldSelector.parse("metadata.name==web-0,metadata.namespace=fr", POD_FIELDS).matches(
        POD
    )
    assert not FieldSelector.parse("status.phase!=Running", POD_FIELDS).matches(POD)
    assert FieldSelector.parse("status.phase!=Pending", POD_FIELDS).matches(POD)
    assert FieldSelector.parse("", POD_FIELDS).matches(POD)


def test_unsupported_field_is_400_field_label_not_supported() -> None:
    # Docs: "Error from server (BadRequest): Unable to find ... field label not supported: foo"
    with pytest.raises(ApiError) as info:
        FieldSelector.parse("spec.nodeName=x", frozenset({"metadata.name"}))
    assert (info.value.code, info.value.message) == (
        400,
        "field label not supported: spec.nodeName",
    )


def test_field_selector_without_operator_is_400() -> None:
    with pytest.raises(ApiError) as info:
        FieldSelector.parse("metadata.name", POD_FIELDS)
    assert (
        info.value.message == "invalid selector: 'metadata.name'; can't understand 'metadata.name'"
    )


def test_field_selector_values_may_escape_commas() -> None:
    sel = FieldSelector.parse(r"metadata.name=a\,b", POD_FIELDS)
    assert sel.matches({"metadata": {"name": "a,b"}})
    assert str(sel) == r"metadata.name=a\,b"


def test_object_names_follow_rfc_1123() -> None:
    # https://kubernetes.io/docs/concepts/overview/working-with-objects/names/#dns-subdomain-names
    assert dns1123_subdomain_errors("fr.wells-1") == []
    assert dns1123_subdomain_errors("Bad_Name")[0].startswith(
        "a lowercase RFC 1123 subdomain must consist"
    )
    assert dns1123_subdomain_errors("a" * 254)[0] == "must be no more than 253 bytes"
    assert dns1123_label_errors("a.b") == ["must not contain dots"]
    assert label_key_errors("modelfleet.dev/well") == []
    assert label_key_errors("/x") == ["prefix part must be non-empty"]
