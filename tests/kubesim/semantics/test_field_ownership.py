"""Field sets, FieldsV1 and the server-side apply merge, as pure functions.

Docs: https://kubernetes.io/docs/reference/using-api/server-side-apply/ (sections cited per test);
the set semantics are sigs.k8s.io/structured-merge-diff's (typed.ToFieldSet, typed.Compare,
merge.Updater).
"""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from kubesim.fields import managed_fields
from kubesim.fields.apply import apply_configuration, merge
from kubesim.fields.managed_fields import (
    ManagerKey,
    compare,
    decode_managed_fields,
    forget_removed,
    from_fields_v1,
    manager_from_request,
    path_string,
    shape_for,
    to_field_set,
    to_fields_v1,
    track_create,
    track_update,
)
from kubesim.wire.errors import ApiError

DEPLOYMENT = shape_for("apps", "v1", "Deployment", None)
CONFIGMAP = shape_for("", "v1", "ConfigMap", None)
NOW = "2026-01-01T00:00:00Z"
ALICE = ManagerKey("alice", "Apply", "v1")
BOB = ManagerKey("bob", "Apply", "v1")


def deployment(replicas: int = 1, image: str = "nginx:1", **container: Any) -> dict[str, Any]:
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": "web", "labels": {"app": "web"}},
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": {"app": "web"}},
            "template": {
                "metadata": {"labels": {"app": "web"}},
                "spec": {"containers": [{"name": "main", "image": image, **container}]},
            },
        },
    }


def configmap(**data: str) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "cm"}, "data": data}


def test_field_set_of_an_applied_deployment_is_fields_v1() -> None:
    """Field management: list elements by their keys (``k:``), ``.`` for an element that also has
    children, atomic maps (the label selector) as one leaf, no entry for objects that merely
    contain fields."""
    fields = to_field_set(deployment(ports=[{"containerPort": 80}]), DEPLOYMENT)
    tree = to_fields_v1(fields)
    assert tree["f:spec"]["f:selector"] == {}
    assert tree["f:spec"]["f:replicas"] == {}
    container = tree["f:spec"]["f:template"]["f:spec"]["f:containers"]['k:{"name":"main"}']
    assert container == {
        ".": {},
        "f:image": {},
        "f:name": {},
        # protocol is a key with a default (TCP), as in the apiserver's OpenAPI.
        "f:ports": {'k:{"containerPort":80,"protocol":"TCP"}': {".": {}, "f:containerPort": {}}},
    }
    assert "." not in tree["f:spec"] and "f:labels" in tree["f:metadata"]


path_elements = st.one_of(
    st.from_regex(r"f:[a-z]{1,6}", fullmatch=True),
    st.from_regex(r'k:\{"name":"[a-z]{1,4}"\}', fullmatch=True),
    st.from_regex(r'v:"[a-z]{1,4}"', fullmatch=True),
)


@given(st.frozensets(st.lists(path_elements, min_size=1, max_size=4).map(tuple), max_size=12))
def test_fields_v1_encodes_any_set_losslessly(fields: frozenset[tuple[str, ...]]) -> None:
    """FieldsV1 is a trie of path elements where ``.`` marks a member that has children."""
    assert from_fields_v1(to_fields_v1(fields)) == fields


def test_path_strings_match_the_conflict_messages() -> None:
    assert path_string(("f:spec", "f:replicas")) == ".spec.replicas"
    assert path_string(("f:spec", 'k:{"name":"main"}', "f:image")) == '.spec[name="main"].image'
    assert path_string(("f:metadata", "f:finalizers", 'v:"x"')) == '.metadata.finalizers[="x"]'


def test_compare_reports_added_modified_removed_and_nothing_for_equal_objects() -> None:
    old = deployment(replicas=1, env=[{"name": "A", "value": "1"}])
    new = deployment(replicas=2)
    new["metadata"]["annotations"] = {"note": "x"}
    change = compare(old, new, DEPLOYMENT)
    assert ("f:spec", "f:replicas") in change.modified
    assert ("f:metadata", "f:annotations", "f:note") in change.added
    containers = ("f:spec", "f:template", "f:spec", "f:containers", 'k:{"name":"main"}')
    assert (*containers, "f:env") in change.removed
    assert compare(old, old, DEPLOYMENT).empty()


def test_merge_follows_list_types_of_the_schema() -> None:
    """Merge strategy: associative lists merge by key, atomic lists and maps are replaced."""
    live = deployment(args=["a", "b"])
    live["spec"]["template"]["spec"]["containers"].append({"name": "side", "image": "side:1"})
    live["spec"]["selector"]["matchLabels"]["tier"] = "x"
    config = deployment(image="nginx:2", args=["c"])
    merged = merge(live, config, DEPLOYMENT)
    containers = merged["spec"]["template"]["spec"]["containers"]
    assert [c["name"] for c in containers] == ["main", "side"]
    assert containers[0]["image"] == "nginx:2" and containers[0]["args"] == ["c"]
    assert merged["spec"]["selector"] == {"matchLabels": {"app": "web"}}


def test_different_value_for_a_field_of_another_manager_is_a_conflict() -> None:
    """Conflicts: a 409 naming each field unless forced; forcing moves the ownership."""
    first = apply_configuration({}, configmap(a="1", b="2"), CONFIGMAP, ALICE, force=False, now=NOW)
    live = {
        **first.obj,
        "metadata": {**first.obj["metadata"], "managedFields": first.managed_fields},
    }
    with pytest.raises(ApiError) as refused:
        apply_configuration(live, configmap(a="9"), CONFIGMAP, BOB, force=False, now=NOW)
    status = refused.value.to_status()
    assert status["code"] == 409 and status["reason"] == "Conflict"
    assert status["message"] == 'Apply failed with 1 conflict: conflict with "alice": .data.a'
    assert status["details"]["causes"] == [
        {"reason": "FieldManagerConflict", "message": 'conflict with "alice"', "field": ".data.a"}
    ]
    forced = apply_configuration(live, configmap(a="9"), CONFIGMAP, BOB, force=True, now=NOW)
    owners = decode_managed_fields(forced.managed_fields).fields
    assert ("f:data", "f:a") in owners[BOB] and ("f:data", "f:a") not in owners[ALICE]


def test_same_value_is_shared_ownership_and_survives_the_other_managers_removal() -> None:
    """Conflicts (shared ownership) and Merge strategy: a field leaves the object only when the
    last manager that applied it stops applying it."""
    first = apply_configuration({}, configmap(a="1"), CONFIGMAP, ALICE, force=False, now=NOW)
    live = {
        **first.obj,
        "metadata": {**first.obj["metadata"], "managedFields": first.managed_fields},
    }
    shared = apply_configuration(live, configmap(a="1"), CONFIGMAP, BOB, force=False, now=NOW)
    live = {
        **shared.obj,
        "metadata": {**shared.obj["metadata"], "managedFields": shared.managed_fields},
    }
    alice_left = apply_configuration(live, configmap(), CONFIGMAP, ALICE, force=False, now=NOW)
    assert alice_left.obj["data"] == {"a": "1"}


@given(
    st.dictionaries(st.sampled_from("abcdef"), st.sampled_from(["1", "2"]), max_size=5),
    st.dictionaries(st.sampled_from("abcdef"), st.sampled_from(["1", "2"]), max_size=5),
)
def test_a_sole_applier_gets_exactly_its_latest_configuration(
    before: dict[str, str], after: dict[str, str]
) -> None:
    """Merge strategy: fields the manager applied before and omits now are removed."""
    first = apply_configuration({}, configmap(**before), CONFIGMAP, ALICE, force=False, now=NOW)
    live = {
        **first.obj,
        "metadata": {**first.obj["metadata"], "managedFields": first.managed_fields},
    }
    second = apply_configuration(live, configmap(**after), CONFIGMAP, ALICE, force=False, now=NOW)
    assert (second.obj.get("data") or {}) == after
    again = {
        **second.obj,
        "metadata": {**second.obj["metadata"], "managedFields": second.managed_fields},
    }
    assert (
        apply_configuration(
            again, configmap(**after), CONFIGMAP, ALICE, force=False, now="later"
        ).managed_fields
        == second.managed_fields
    )


def test_an_update_takes_the_fields_it_changes_from_their_appliers() -> None:
    """Field management: "If you change a field through an update, ownership moves to you"."""
    first = apply_configuration({}, configmap(a="1", b="1"), CONFIGMAP, ALICE, force=False, now=NOW)
    live = {
        **first.obj,
        "metadata": {**first.obj["metadata"], "managedFields": first.managed_fields},
    }
    updated = configmap(a="2", b="1")
    editor = ManagerKey("kubectl-edit", "Update", "v1")
    entries = track_update(first.managed_fields, live, updated, CONFIGMAP, editor, NOW)
    owners = decode_managed_fields(entries).fields
    assert owners[editor] == {("f:data", "f:a")}
    assert owners[ALICE] == {("f:data", "f:b")}
    assert track_update(entries, updated, updated, CONFIGMAP, editor, "later") is entries


def test_manager_defaults_to_the_user_agent_prefix() -> None:
    """Using Server-Side Apply in a controller / managers: the fieldManager parameter, else the
    User-Agent up to its first slash."""
    assert manager_from_request("", "kubectl/v1.32.0 (linux/amd64) kubernetes/abc") == "kubectl"
    assert manager_from_request("helm", "Helm/4.0") == "helm"
    assert len(manager_from_request("", "x" * 300)) == 128


def test_more_than_ten_updaters_merge_the_oldest_into_ancient_changes() -> None:
    """Field management (managedFields cap): at most 10 Update entries; the oldest merge into an
    ``ancient-changes`` entry per apiVersion."""
    entries: Any = None
    live = configmap()
    for i in range(12):
        new = configmap(**{f"k{j}": "v" for j in range(i + 1)})
        key = ManagerKey(f"editor-{i:02d}", "Update", "v1")
        entries = track_update(entries, live, new, CONFIGMAP, key, f"2026-01-01T00:00:{i:02d}Z")
        live = new
    owners = decode_managed_fields(entries).fields
    assert len(owners) == 10
    ancient = owners[ManagerKey("ancient-changes", "Update", "v1")]
    assert {("f:data", "f:k0"), ("f:data", "f:k1"), ("f:data", "f:k2")} <= ancient
    assert ManagerKey("editor-11", "Update", "v1") in owners


def test_a_write_without_a_manager_only_takes_removed_fields_out_of_the_sets() -> None:
    """kubesim's own controllers write without a manager: a field they remove leaves every set."""
    old = configmap(a="1", b="1")
    creator = ManagerKey("creator", "Update", "v1")
    entries = track_update(None, configmap(), old, CONFIGMAP, creator, NOW)
    after = forget_removed(entries, old, configmap(a="2"), CONFIGMAP, has_status=False)
    assert decode_managed_fields(after).fields[creator] == {("f:data", "f:a")}


containers = st.lists(
    st.fixed_dictionaries(
        {"name": st.sampled_from(["a", "b", "c", "d"]), "image": st.sampled_from(["x:1", "x:2"])},
        optional={"args": st.lists(st.sampled_from(["-v", "-q"]), max_size=2)},
    ),
    max_size=4,
    unique_by=lambda c: c["name"],
)


@given(containers, containers)
def test_a_sole_applier_of_a_deployment_gets_its_latest_containers_in_its_order(
    before: list[dict[str, Any]], after: list[dict[str, Any]]
) -> None:
    """Merge strategy: containers merge by name; what the applier dropped is removed; applying
    the same configuration again is a no-op."""

    def config(items: list[dict[str, Any]]) -> dict[str, Any]:
        body = deployment()
        body["spec"]["template"]["spec"]["containers"] = items
        return body

    first = apply_configuration({}, config(before), DEPLOYMENT, ALICE, force=False, now=NOW)
    live = {
        **first.obj,
        "metadata": {**first.obj["metadata"], "managedFields": first.managed_fields},
    }
    second = apply_configuration(live, config(after), DEPLOYMENT, ALICE, force=False, now=NOW)
    assert second.obj["spec"]["template"]["spec"]["containers"] == after
    again = {
        **second.obj,
        "metadata": {**second.obj["metadata"], "managedFields": second.managed_fields},
    }
    third = apply_configuration(again, config(after), DEPLOYMENT, ALICE, force=False, now="later")
    assert third.obj["spec"] == second.obj["spec"] and third.managed_fields == second.managed_fields


@given(containers, containers)
def test_containers_of_two_appliers_merge_and_each_removes_only_its_own(
    mine: list[dict[str, Any]], theirs: list[dict[str, Any]]
) -> None:
    """Merge strategy with two managers: an element leaves only when no manager applies it;
    shared elements with equal values are co-owned, different values conflict (then forced)."""

    def config(items: list[dict[str, Any]]) -> dict[str, Any]:
        body = deployment()
        body["spec"]["template"]["spec"]["containers"] = items
        return body

    def live_of(result: Any) -> dict[str, Any]:
        return {
            **result.obj,
            "metadata": {**result.obj["metadata"], "managedFields": result.managed_fields},
        }

    first = apply_configuration({}, config(mine), DEPLOYMENT, ALICE, force=False, now=NOW)
    both = apply_configuration(live_of(first), config(theirs), DEPLOYMENT, BOB, force=True, now=NOW)
    names = [c["name"] for c in both.obj["spec"]["template"]["spec"]["containers"]]
    assert set(names) == {c["name"] for c in mine + theirs}
    alice_left = apply_configuration(
        live_of(both), config([]), DEPLOYMENT, ALICE, force=False, now=NOW
    )
    left = alice_left.obj["spec"]["template"]["spec"]["containers"]
    assert {c["name"] for c in left} == {c["name"] for c in theirs}


def test_a_creators_entry_does_not_own_what_the_empty_built_in_already_had() -> None:
    """Field management: a create is an update from the kind's empty object, so spec, the pod
    template and the (null) containers list are not the creator's own; what it added is."""
    creator = ManagerKey("kubectl-create", "Update", "apps/v1")
    entries = track_create(deployment(), DEPLOYMENT, creator, NOW, has_status=True)
    tree = entries[0]["fieldsV1"]
    template = tree["f:spec"]["f:template"]
    assert "." not in tree["f:spec"] and "." not in template and "." not in template["f:spec"]
    assert "." not in template["f:spec"]["f:containers"]
    assert template["f:spec"]["f:containers"]['k:{"name":"main"}'] == {
        ".": {},
        "f:image": {},
        "f:name": {},
    }
    assert template["f:metadata"]["f:labels"] == {".": {}, "f:app": {}}


UPDATE = st.sampled_from(
    [
        ManagerKey(m, "Update", "apps/v1", sub)
        for m in ("kubectl", "operator")
        for sub in ("", "status")
    ]
)


@given(
    writes=st.lists(
        st.tuples(
            UPDATE, st.integers(0, 3), st.sampled_from(["nginx:1", "nginx:2"]), st.integers(0, 2)
        ),
        min_size=1,
        max_size=8,
    )
)
def test_updates_keep_untouched_entries_as_decoding_and_encoding_them_would(
    writes: list[tuple[ManagerKey, int, str, int]],
) -> None:
    """The fast path of track_update (entries this module wrote: untouched ones are kept as they
    are) gives exactly the entries of the general decode-and-encode path, write after write."""
    old: dict[str, Any] = deployment()
    entries = track_create(
        old, DEPLOYMENT, ManagerKey("creator", "Update", "apps/v1"), NOW, has_status=True
    )
    for index, (key, replicas, image, ready) in enumerate(writes):
        new = deployment(replicas=replicas, image=image)
        new["status"] = {"readyReplicas": ready} if ready else {}
        now = f"2026-01-01T00:00:{index:02d}Z"
        general = track_update(entries, old, new, DEPLOYMENT, key, now, has_status=True)
        quick = track_update(
            entries, old, new, DEPLOYMENT, key, now, has_status=True, canonical=True
        )
        assert quick == general
        entries, old = general, new


POD = shape_for("", "v1", "Pod", None)


def pod(well: str, image: str = "runtime:1") -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": f"fleet-{well}", "labels": {"well": well}},
        "spec": {
            "hostname": well,
            "containers": [
                {
                    "name": "runtime",
                    "image": image,
                    "env": [{"name": "WELL", "value": well}, {"name": "MODE", "value": "serve"}],
                    "ports": [{"containerPort": 8080, "protocol": "TCP"}],
                    "readinessProbe": {"httpGet": {"path": "/ready", "port": 8080}},
                }
            ],
            "volumes": [{"name": "tmp", "emptyDir": {}}],
            "readinessGates": [{"conditionType": "example.com/ready"}],
        },
    }


@given(wells=st.lists(st.sampled_from(["a", "b", "w-1", "w-2"]), min_size=1, max_size=6))
def test_a_creators_entry_does_not_depend_on_what_earlier_objects_memoized(
    wells: list[str],
) -> None:
    """Subtrees are memoized across objects (pods of one template share most of their spec):
    each create's entry is the one computed with nothing memoized."""
    key = ManagerKey("operator", "Update", "v1")
    for index, well in enumerate(wells):
        body = pod(well, image=f"runtime:{index % 2}")
        warm = track_create(body, POD, key, NOW, has_status=True)
        POD.added_memo.clear()
        managed_fields._CREATE_MEMO.clear()
        cold = track_create(body, POD, key, NOW, has_status=True)
        assert warm == cold
        owned = from_fields_v1(cold[0]["fieldsV1"])
        assert (
            "f:spec",
            "f:containers",
            'k:{"name":"runtime"}',
            "f:env",
            'k:{"name":"WELL"}',
            "f:value",
        ) in owned
        assert ("f:spec", "f:hostname") in owned
