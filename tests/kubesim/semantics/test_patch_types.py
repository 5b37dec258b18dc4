"""The three PATCH content types, pinned to the documented apiserver behaviour.

Docs: https://kubernetes.io/docs/tasks/manage-kubernetes-objects/update-api-object-kubectl-patch/
      https://github.com/kubernetes/community/blob/master/contributors/devel/sig-api-machinery/strategic-merge-patch.md
      RFC 7386 (merge patch), RFC 6902 (JSON patch)
"""

from __future__ import annotations

import copy
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from kubesim.fields.patching import (
    STRATEGIC_SCHEMAS,
    StrategicSchema,
    apply_json_patch,
    apply_merge_patch,
    apply_strategic_merge_patch,
    strategic_schema_for,
)
from kubesim.wire.errors import ApiError

POD_SCHEMA = STRATEGIC_SCHEMAS[("", "v1", "Pod")]
SERVICE_SCHEMA = STRATEGIC_SCHEMAS[("", "v1", "Service")]


def pod(**spec: Any) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": "web", "finalizers": ["a.example/x"]},
        "spec": {
            "containers": [
                {"name": "app", "image": "app:1", "env": [{"name": "A", "value": "1"}]},
                {"name": "sidecar", "image": "side:1"},
            ],
            **spec,
        },
    }


# ---- JSON merge patch ------------------------------------------------------------------------

_json = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=3),
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=2), inner, max_size=3)
    ),
    max_leaves=10,
)
_objects = st.dictionaries(st.text(max_size=2), _json, max_size=4)


def test_merge_patch_null_deletes_and_objects_merge() -> None:
    # RFC 7386 section 3 example.
    target = {"a": "b", "c": {"d": "e", "f": "g"}}
    assert apply_merge_patch(target, {"a": "z", "c": {"f": None}}) == {"a": "z", "c": {"d": "e"}}


def test_merge_patch_replaces_lists_whole() -> None:
    # Docs (kubectl patch --type merge): "a JSON merge patch replaces a list entirely".
    patched = apply_merge_patch(pod(), {"spec": {"containers": [{"name": "only"}]}})
    assert patched["spec"]["containers"] == [{"name": "only"}]


@given(_objects, _objects)
def test_merge_patch_is_idempotent(target: dict[str, Any], patch: dict[str, Any]) -> None:
    once = apply_merge_patch(target, patch)
    assert apply_merge_patch(once, patch) == once


@given(_objects, _objects)
def test_merge_patch_does_not_mutate_its_inputs(
    target: dict[str, Any], patch: dict[str, Any]
) -> None:
    before_target, before_patch = copy.deepcopy(target), copy.deepcopy(patch)
    apply_merge_patch(target, patch)
    assert (target, patch) == (before_target, before_patch)


@given(_objects)
def test_merge_patch_of_an_object_onto_empty_is_the_object_without_nulls(
    patch: dict[str, Any],
) -> None:
    result = apply_merge_patch({}, patch)
    assert set(result) == {k for k, v in patch.items() if v is not None}


def test_merge_patch_must_be_an_object() -> None:
    with pytest.raises(ApiError) as info:
        apply_merge_patch({}, [1])
    assert info.value.code == 400


# ---- JSON patch ------------------------------------------------------------------------------


def test_json_patch_applies_operations_in_order() -> None:
    patched = apply_json_patch(
        pod(),
        [
            {"op": "test", "path": "/metadata/name", "value": "web"},
            {"op": "replace", "path": "/spec/containers/0/image", "value": "app:2"},
            {"op": "add", "path": "/metadata/labels", "value": {"tier": "a"}},
            {"op": "remove", "path": "/metadata/finalizers/0"},
        ],
    )
    assert patched["spec"]["containers"][0]["image"] == "app:2"
    assert patched["metadata"]["labels"] == {"tier": "a"}
    assert patched["metadata"]["finalizers"] == []


def test_json_patch_that_does_not_apply_is_422() -> None:
    # patch.go: apply failures are answered 422 with the reason as the cause.
    with pytest.raises(ApiError) as info:
        apply_json_patch(pod(), [{"op": "replace", "path": "/spec/nothing/here", "value": 1}])
    assert info.value.code == 422 and info.value.reason == "Invalid"
    assert info.value.causes and info.value.causes[0].message


def test_json_patch_failed_test_operation_is_422() -> None:
    with pytest.raises(ApiError) as info:
        apply_json_patch(pod(), [{"op": "test", "path": "/metadata/name", "value": "other"}])
    assert info.value.code == 422


@pytest.mark.parametrize(
    "ops",
    [{"op": "add"}, [{"op": "frobnicate", "path": "/a"}], [{"op": "add", "path": "/a"}], ["x"]],
)
def test_malformed_json_patch_is_400(ops: Any) -> None:
    with pytest.raises(ApiError) as info:
        apply_json_patch(pod(), ops)
    assert info.value.code == 400


# ---- Strategic merge patch -------------------------------------------------------------------


def test_strategic_merge_merges_containers_by_name() -> None:
    # Docs: "the patch was merged with the list of containers" (patchMergeKey: name).
    patched = apply_strategic_merge_patch(
        pod(), {"spec": {"containers": [{"name": "sidecar", "image": "side:2"}]}}, POD_SCHEMA
    )
    assert [(c["name"], c["image"]) for c in patched["spec"]["containers"]] == [
        ("app", "app:1"),
        ("sidecar", "side:2"),
    ]


def test_strategic_merge_adds_a_new_container_and_keeps_the_others() -> None:
    patched = apply_strategic_merge_patch(
        pod(), {"spec": {"containers": [{"name": "new", "image": "n:1"}]}}, POD_SCHEMA
    )
    assert {c["name"] for c in patched["spec"]["containers"]} == {"app", "sidecar", "new"}


def test_strategic_merge_merges_env_inside_a_container_by_name() -> None:
    patched = apply_strategic_merge_patch(
        pod(),
        {"spec": {"containers": [{"name": "app", "env": [{"name": "B", "value": "2"}]}]}},
        POD_SCHEMA,
    )
    # Without $setElementOrder, mergeSortedSlice puts patch items not in the live list first.
    assert patched["spec"]["containers"][0]["env"] == [
        {"name": "B", "value": "2"},
        {"name": "A", "value": "1"},
    ]


def test_strategic_merge_delete_directive_removes_a_list_item() -> None:
    patched = apply_strategic_merge_patch(
        pod(), {"spec": {"containers": [{"name": "sidecar", "$patch": "delete"}]}}, POD_SCHEMA
    )
    assert [c["name"] for c in patched["spec"]["containers"]] == ["app"]


def test_strategic_merge_replace_directive_replaces_the_list() -> None:
    patched = apply_strategic_merge_patch(
        pod(),
        {"spec": {"containers": [{"name": "solo", "image": "s:1"}, {"$patch": "replace"}]}},
        POD_SCHEMA,
    )
    assert patched["spec"]["containers"] == [{"name": "solo", "image": "s:1"}]


def test_strategic_merge_replace_directive_on_a_map_replaces_the_map() -> None:
    patched = apply_strategic_merge_patch(
        {"metadata": {"labels": {"a": "1", "b": "2"}}},
        {"metadata": {"labels": {"c": "3", "$patch": "replace"}}},
        POD_SCHEMA,
    )
    assert patched["metadata"]["labels"] == {"c": "3"}


def test_strategic_merge_tolerations_have_no_merge_key_and_are_replaced() -> None:
    # core/v1 PodSpec.Tolerations carries no patchStrategy tag.
    target = pod(tolerations=[{"key": "a", "operator": "Exists"}])
    patched = apply_strategic_merge_patch(
        target, {"spec": {"tolerations": [{"key": "b", "operator": "Exists"}]}}, POD_SCHEMA
    )
    assert patched["spec"]["tolerations"] == [{"key": "b", "operator": "Exists"}]


def test_strategic_merge_finalizers_merge_as_a_set_and_delete_from_primitive_list() -> None:
    # metav1.ObjectMeta.Finalizers: patchStrategy=merge on a list of strings.
    patched = apply_strategic_merge_patch(
        pod(), {"metadata": {"finalizers": ["b.example/y"]}}, POD_SCHEMA
    )
    assert sorted(patched["metadata"]["finalizers"]) == ["a.example/x", "b.example/y"]
    removed = apply_strategic_merge_patch(
        patched, {"metadata": {"$deleteFromPrimitiveList/finalizers": ["a.example/x"]}}, POD_SCHEMA
    )
    assert removed["metadata"]["finalizers"] == ["b.example/y"]


def test_strategic_merge_owner_references_merge_by_uid() -> None:
    target = {"metadata": {"ownerReferences": [{"uid": "1", "name": "a"}]}}
    patched = apply_strategic_merge_patch(
        target, {"metadata": {"ownerReferences": [{"uid": "2", "name": "b"}]}}, POD_SCHEMA
    )
    assert {r["uid"] for r in patched["metadata"]["ownerReferences"]} == {"1", "2"}


def test_strategic_merge_service_ports_merge_by_port() -> None:
    svc = {"spec": {"ports": [{"port": 80, "name": "http"}, {"port": 443, "name": "https"}]}}
    patched = apply_strategic_merge_patch(
        svc, {"spec": {"ports": [{"port": 80, "targetPort": 8080}]}}, SERVICE_SCHEMA
    )
    assert patched["spec"]["ports"][0] == {"port": 80, "name": "http", "targetPort": 8080}
    assert len(patched["spec"]["ports"]) == 2


def test_strategic_merge_null_deletes_a_field() -> None:
    patched = apply_strategic_merge_patch(pod(), {"metadata": {"finalizers": None}}, POD_SCHEMA)
    assert "finalizers" not in patched["metadata"]


def test_strategic_merge_set_element_order_orders_the_merged_list() -> None:
    # Mirrors strategicpatch's "merge lists of maps" case: kubectl apply sends $setElementOrder.
    schema = StrategicSchema({"items": StrategicSchema({}, "merge", "name")})
    live = {"items": [{"name": 1, "other": "a"}, {"name": 2, "value": 2, "other": "b"}]}
    patch = {
        "$setElementOrder/items": [{"name": 4}, {"name": 1}, {"name": 2}, {"name": 3}],
        "items": [{"name": 4, "value": 4}, {"name": 3, "value": 3}],
    }
    assert apply_strategic_merge_patch(live, patch, schema)["items"] == [
        {"name": 4, "value": 4},
        {"name": 1, "other": "a"},
        {"name": 2, "value": 2, "other": "b"},
        {"name": 3, "value": 3},
    ]


def test_strategic_merge_set_element_order_keeps_server_only_items_in_place() -> None:
    schema = StrategicSchema({"items": StrategicSchema({}, "merge", "name")})
    live = {"items": [{"name": 1}, {"name": 3}, {"name": 4}, {"name": 2}, {"name": 9}]}
    patch = {"$setElementOrder/items": [{"name": 4}, {"name": 2}, {"name": 3}, {"name": 1}]}
    names = [i["name"] for i in apply_strategic_merge_patch(live, patch, schema)["items"]]
    assert names == [4, 2, 3, 1, 9]


def test_strategic_merge_retain_keys_clears_fields_not_listed() -> None:
    # Used by kubectl apply for union types such as a volume's source.
    target = pod(volumes=[{"name": "data", "emptyDir": {}}])
    patch = {
        "spec": {
            "volumes": [
                {"name": "data", "$retainKeys": ["name", "hostPath"], "hostPath": {"path": "/x"}}
            ]
        }
    }
    patched = apply_strategic_merge_patch(target, patch, POD_SCHEMA)
    assert patched["spec"]["volumes"] == [{"name": "data", "hostPath": {"path": "/x"}}]


def test_strategic_merge_retain_keys_must_cover_the_patch_fields() -> None:
    with pytest.raises(ApiError) as info:
        apply_strategic_merge_patch(
            {"a": {}}, {"a": {"$retainKeys": ["x"], "y": 1}}, StrategicSchema()
        )
    assert info.value.code == 400


def test_strategic_merge_missing_merge_key_is_400() -> None:
    with pytest.raises(ApiError) as info:
        apply_strategic_merge_patch(pod(), {"spec": {"containers": [{"image": "x"}]}}, POD_SCHEMA)
    assert info.value.code == 400 and "merge key" in info.value.message


def test_strategic_merge_does_not_mutate_its_inputs() -> None:
    target, patch = pod(), {"spec": {"containers": [{"name": "app", "$patch": "delete"}]}}
    before = copy.deepcopy((target, patch))
    apply_strategic_merge_patch(target, patch, POD_SCHEMA)
    assert (target, patch) == before


def test_custom_resources_have_no_strategic_schema() -> None:
    # Docs: "Strategic merge patch is not supported for custom resources."
    assert strategic_schema_for("modelfleet.dev", "v1alpha1", "ModelDeployment") is None
    assert strategic_schema_for("", "v1", "Pod") is POD_SCHEMA


_names = st.sampled_from(["a", "b", "c", "d", "e"])


@given(st.lists(_names, unique=True), st.lists(_names, unique=True))
def test_strategic_merge_of_containers_keeps_every_name_once(
    live: list[str], patch: list[str]
) -> None:
    target = {"spec": {"containers": [{"name": n, "image": "old"} for n in live]}}
    patched = apply_strategic_merge_patch(
        target, {"spec": {"containers": [{"name": n, "image": "new"} for n in patch]}}, POD_SCHEMA
    )
    containers = patched["spec"]["containers"]
    assert sorted(c["name"] for c in containers) == sorted(set(live) | set(patch))
    assert all(c["image"] == ("new" if c["name"] in patch else "old") for c in containers)


def test_strategic_merge_order_when_kubectl_apply_adds_and_deletes_in_one_list() -> None:
    # Same outcome as kube-apiserver for strategicpatch's "add map and delete map from merging
    # list": the live order Go sorts by is the in-place-edited live slice.
    schema = StrategicSchema({"items": StrategicSchema({}, "merge", "name")})
    live = {"items": [{"name": 1}, {"name": 2, "other": "b"}, {"name": 4, "other": "c"}]}
    patch = {
        "$setElementOrder/items": [{"name": 2}, {"name": 3}],
        "items": [{"name": 3}, {"name": 1, "$patch": "delete"}],
    }
    assert apply_strategic_merge_patch(live, patch, schema)["items"] == [
        {"name": 2, "other": "b"},
        {"name": 4, "other": "c"},
        {"name": 3},
    ]


_env = st.lists(
    st.fixed_dictionaries(
        {"name": st.sampled_from(["A", "B", "C"]), "value": st.text("xy", max_size=2)}
    ),
    max_size=3,
    unique_by=lambda e: e["name"],
)
_finalizers = st.lists(st.sampled_from(["a/x", "b/y", "c/z"]), unique=True, max_size=3)


@given(_names.flatmap(lambda n: st.tuples(st.just(n), _env)), _finalizers, _finalizers)
def test_strategic_merge_without_directives_is_idempotent(
    container: tuple[str, list[dict[str, str]]],
    live_finalizers: list[str],
    patch_finalizers: list[str],
) -> None:
    name, env = container
    target = pod()
    target["metadata"]["finalizers"] = live_finalizers
    patch = {
        "metadata": {"finalizers": patch_finalizers},
        "spec": {"containers": [{"name": name, "env": env}]},
    }
    once = apply_strategic_merge_patch(target, patch, POD_SCHEMA)
    assert apply_strategic_merge_patch(once, patch, POD_SCHEMA) == once
    assert set(once["metadata"]["finalizers"]) == set(live_finalizers) | set(patch_finalizers)
