"""Server-side apply over HTTP (PATCH application/apply-patch+yaml) and managedFields on every write.

Docs: https://kubernetes.io/docs/reference/using-api/server-side-apply/ (each test names its section).
"""

from __future__ import annotations

import json
import subprocess
from collections.abc import Iterator
from typing import Any

import pytest
import yaml

from kubesim.harness.testing import KubeSimThread, kubesim_in_thread
from tests.kubesim.conftest import GADGET_CRD, WIDGET_CRD, WIDGETS, Http, run_kubectl, widget

APPLY = "application/apply-patch+yaml"
CMS = "/api/v1/namespaces/default/configmaps"
DEPLOYMENTS = "/apis/apps/v1/namespaces/default/deployments"
GADGETS = "/apis/kubesim.test/v1/gadgets"


def configmap(name: str, **data: str) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": name}, "data": data}


def deployment(name: str, replicas: int, image: str = "nginx:1") -> dict[str, Any]:
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": name},
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": {"app": name}},
            "template": {
                "metadata": {"labels": {"app": name}},
                "spec": {"containers": [{"name": "main", "image": image}]},
            },
        },
    }


async def apply(
    http: Http, path: str, body: dict[str, Any], manager: str, force: bool = False
) -> Any:
    query = f"?fieldManager={manager}" + ("&force=true" if force else "")
    return await http.request("PATCH", path + query, body, content_type=APPLY)


def managers(obj: dict[str, Any]) -> dict[tuple[str, str], dict[str, Any]]:
    return {(e["manager"], e["operation"]): e for e in obj["metadata"].get("managedFields", [])}


async def test_apply_creates_then_updates_and_records_the_applier(http: Http) -> None:
    """Field management: an Apply entry with manager, operation, apiVersion, time and FieldsV1;
    apply creates an absent object (201), applying again updates it (200)."""
    created = await apply(http, f"{CMS}/cfg", configmap("cfg", a="1"), "tool")
    assert created.status == 201, created.body
    entry = managers(created.body)[("tool", "Apply")]
    assert entry["apiVersion"] == "v1" and entry["fieldsType"] == "FieldsV1" and entry["time"]
    assert entry["fieldsV1"] == {"f:data": {"f:a": {}}}
    updated = await apply(http, f"{CMS}/cfg", configmap("cfg", a="1", b="2"), "tool")
    assert updated.status == 200 and updated.body["data"] == {"a": "1", "b": "2"}


async def test_applying_the_same_configuration_again_changes_nothing(http: Http) -> None:
    """An unchanged apply is a no-op: same resourceVersion, same managedFields (timestamps too)."""
    first = (await apply(http, f"{CMS}/same", configmap("same", a="1"), "tool")).body
    second = (await apply(http, f"{CMS}/same", configmap("same", a="1"), "tool")).body
    assert second["metadata"]["resourceVersion"] == first["metadata"]["resourceVersion"]
    assert second["metadata"]["managedFields"] == first["metadata"]["managedFields"]


async def test_fields_the_applier_stops_applying_are_removed(http: Http) -> None:
    """Merge strategy: "fields which were previously applied but are no longer present are
    removed", unless another manager owns them too."""
    await apply(http, f"{CMS}/prune", configmap("prune", a="1", b="2", c="3"), "tool")
    await apply(http, f"{CMS}/prune", configmap("prune", c="3"), "other")
    pruned = (await apply(http, f"{CMS}/prune", configmap("prune", a="1"), "tool")).body
    assert pruned["data"] == {"a": "1", "c": "3"}


async def test_a_different_value_for_another_managers_field_is_409_unless_forced(
    http: Http,
) -> None:
    """Conflicts: 409 with one FieldManagerConflict cause per field; force=true takes the field
    and removes it from the other manager's entry."""
    await http.ok("POST", DEPLOYMENTS + "?fieldManager=kubectl-create", deployment("web", 1))
    refused = await apply(http, f"{DEPLOYMENTS}/web", deployment("web", 3), "ci")
    assert refused.status == 409 and refused.body["reason"] == "Conflict"
    assert refused.body["message"] == (
        'Apply failed with 1 conflict: conflict with "kubectl-create" using apps/v1: .spec.replicas'
    )
    assert refused.body["details"]["causes"] == [
        {
            "reason": "FieldManagerConflict",
            "message": 'conflict with "kubectl-create" using apps/v1',
            "field": ".spec.replicas",
        }
    ]
    forced = await apply(http, f"{DEPLOYMENTS}/web", deployment("web", 3), "ci", force=True)
    assert forced.status == 200 and forced.body["spec"]["replicas"] == 3
    owners = managers(forced.body)
    assert "f:replicas" in owners[("ci", "Apply")]["fieldsV1"]["f:spec"]
    assert "f:replicas" not in owners[("kubectl-create", "Update")]["fieldsV1"]["f:spec"]


async def test_the_same_value_is_shared_not_a_conflict(http: Http) -> None:
    """Conflicts: "You may co-own fields by updating your manifest to match the existing value"."""
    await apply(http, f"{DEPLOYMENTS}/shared", deployment("shared", 2), "one")
    shared = await apply(
        http, f"{DEPLOYMENTS}/shared", deployment("shared", 2, image="nginx:2"), "two"
    )
    assert shared.status == 409  # the image differs...
    agreed = await apply(http, f"{DEPLOYMENTS}/shared", deployment("shared", 2), "two")
    assert agreed.status == 200  # ...the same values are co-owned
    for manager in ("one", "two"):
        assert "f:replicas" in managers(agreed.body)[(manager, "Apply")]["fieldsV1"]["f:spec"]


async def test_apply_needs_a_field_manager_and_force_is_apply_only(http: Http) -> None:
    """Using Server-Side Apply: fieldManager is required for apply patches (422 on PatchOptions)."""
    missing = await http.patch(f"{CMS}/x", configmap("x"), APPLY)
    assert missing.status == 422
    assert missing.body["message"] == (
        'PatchOptions.meta.k8s.io "" is invalid: fieldManager: Required value: is required for apply patch'
    )
    await http.ok("POST", CMS, configmap("merge-me"))
    forced = await http.request(
        "PATCH",
        f"{CMS}/merge-me?force=true",
        {"data": {}},
        content_type="application/merge-patch+json",
    )
    assert (
        forced.status == 422
        and "force: Forbidden: may not be specified for non-apply patch" in forced.body["message"]
    )


async def test_updates_record_the_manager_from_field_manager_or_user_agent(http: Http) -> None:
    """Field management: non-apply writes are Update entries; the manager is the fieldManager
    parameter, else the User-Agent up to its first "/"."""
    created = await http.ok(
        "POST", CMS, configmap("ua", a="1"), headers={"User-Agent": "my-controller/1.2 (linux)"}
    )
    assert managers(created)[("my-controller", "Update")]["fieldsV1"] == {
        "f:data": {".": {}, "f:a": {}}
    }
    patched = await http.ok(
        "PATCH",
        f"{CMS}/ua?fieldManager=editor",
        {"data": {"a": "2"}},
        content_type="application/merge-patch+json",
    )
    owners = managers(patched)
    assert owners[("editor", "Update")]["fieldsV1"] == {"f:data": {"f:a": {}}}
    assert owners[("my-controller", "Update")]["fieldsV1"] == {"f:data": {}}


async def test_managed_fields_are_cleared_by_writing_one_empty_entry(http: Http) -> None:
    """Clearing managedFields: an update setting them to ``[{}]`` strips them; an empty list keeps them."""
    await apply(http, f"{CMS}/clear", configmap("clear", a="1"), "tool")
    kept = await http.ok(
        "PATCH",
        f"{CMS}/clear",
        {"metadata": {"managedFields": []}},
        content_type="application/merge-patch+json",
    )
    assert kept["metadata"]["managedFields"]
    cleared = await http.ok(
        "PATCH",
        f"{CMS}/clear",
        {"metadata": {"managedFields": [{}]}},
        content_type="application/merge-patch+json",
    )
    assert "managedFields" not in cleared["metadata"]


async def test_custom_resources_apply_with_their_list_map_keys_and_status(http: Http) -> None:
    """Merge strategy: x-kubernetes-list-type map lists merge by x-kubernetes-list-map-keys; status
    is applied through /status only; cluster-scoped custom resources are applied too."""
    await http.ok("POST", "/apis/apiextensions.k8s.io/v1/customresourcedefinitions", WIDGET_CRD)
    await http.ok("POST", "/apis/apiextensions.k8s.io/v1/customresourcedefinitions", GADGET_CRD)
    first = await apply(http, f"{WIDGETS}/w", widget("w", 2, parts=[{"id": "a"}]), "one")
    assert first.status == 201, first.body
    second = await apply(http, f"{WIDGETS}/w", widget("w", 2, parts=[{"id": "b"}]), "two")
    assert [p["id"] for p in second.body["spec"]["parts"]] == ["a", "b"]
    with_status = {**widget("w", 2), "status": {"phase": "Ready"}}
    ignored = await apply(http, f"{WIDGETS}/w", with_status, "one")
    assert "status" not in ignored.body
    assert [p["id"] for p in ignored.body["spec"]["parts"]] == ["b"]  # "one" stopped applying "a"
    status = await apply(http, f"{WIDGETS}/w/status", with_status, "reporter")
    assert status.status == 200 and status.body["status"] == {"phase": "Ready"}
    assert managers(status.body)[("reporter", "Apply")]["subresource"] == "status"
    gadget = {
        "apiVersion": "kubesim.test/v1",
        "kind": "Gadget",
        "metadata": {"name": "g"},
        "spec": {"x": 1},
    }
    assert (await apply(http, f"{GADGETS}/g", gadget, "one")).status == 201


# --------------------------------------------------------------------------------------------
# The real kubectl
# --------------------------------------------------------------------------------------------

kubectl_installed = pytest.mark.skipif(
    subprocess.run(["which", "kubectl"], capture_output=True).returncode != 0,
    reason="kubectl not installed",
)


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[KubeSimThread]:
    with kubesim_in_thread(tmp_path_factory.mktemp("ssa")) as sim:
        yield sim


@kubectl_installed
def test_kubectl_apply_server_side_conflicts_and_force_conflicts(
    cluster: KubeSimThread, tmp_path_factory: pytest.TempPathFactory
) -> None:
    """kubectl apply --server-side: creates, refuses another manager's field with kubectl's
    conflict text, --force-conflicts takes it; get --show-managed-fields prints the entries."""
    cache = tmp_path_factory.mktemp("kubectl-cache")

    def kubectl(
        *args: str, stdin: str | None = None, check: bool = True
    ) -> subprocess.CompletedProcess[str]:
        return run_kubectl(cluster.kubeconfig, cache, *args, stdin=stdin, check=check)

    manifest = yaml.safe_dump(configmap("ssa", colour="blue"))
    assert (
        "configmap/ssa serverside-applied"
        in kubectl("apply", "--server-side", "-f", "-", stdin=manifest).stdout
    )
    other = yaml.safe_dump(configmap("ssa", colour="red"))
    refused = kubectl(
        "apply", "--server-side", "--field-manager=ops", "-f", "-", stdin=other, check=False
    )
    assert refused.returncode != 0
    assert 'Apply failed with 1 conflict: conflict with "kubectl": .data.colour' in refused.stderr
    kubectl(
        "apply", "--server-side", "--field-manager=ops", "--force-conflicts", "-f", "-", stdin=other
    )
    shown = yaml.safe_load(
        kubectl("get", "configmap", "ssa", "-o", "yaml", "--show-managed-fields").stdout
    )
    entries = {e["manager"]: e for e in shown["metadata"]["managedFields"]}
    assert shown["data"] == {"colour": "red"}
    assert entries["ops"]["fieldsV1"] == {"f:data": {"f:colour": {}}}
    assert "kubectl" not in entries  # it owned nothing else: an empty entry is dropped
    hidden = json.loads(kubectl("get", "configmap", "ssa", "-o", "json").stdout)
    assert "managedFields" not in hidden["metadata"]


@kubectl_installed
def test_kubectl_moves_from_client_side_to_server_side_apply_without_conflicts(
    cluster: KubeSimThread, tmp_path_factory: pytest.TempPathFactory
) -> None:
    """Upgrading from client-side apply: "kubectl apply --server-side" of a changed manifest on an
    object made by "kubectl apply" succeeds (fields still at their last-applied value are taken
    over), and the last-applied annotation follows, so client-side apply keeps working."""
    cache = tmp_path_factory.mktemp("kubectl-cache")

    def kubectl(
        *args: str, stdin: str | None = None, check: bool = True
    ) -> subprocess.CompletedProcess[str]:
        return run_kubectl(cluster.kubeconfig, cache, *args, stdin=stdin, check=check)

    kubectl("apply", "-f", "-", stdin=yaml.safe_dump(deployment("csa", 1)))
    kubectl(
        "apply",
        "--server-side",
        "-f",
        "-",
        stdin=yaml.safe_dump(deployment("csa", 2, image="nginx:2")),
    )
    live = json.loads(kubectl("get", "deployment", "csa", "-o", "json").stdout)
    assert live["spec"]["replicas"] == 2
    last = json.loads(
        live["metadata"]["annotations"]["kubectl.kubernetes.io/last-applied-configuration"]
    )
    assert last["spec"]["replicas"] == 2
    other = kubectl(
        "apply",
        "--server-side",
        "--field-manager=ops",
        "-f",
        "-",
        stdin=yaml.safe_dump(deployment("csa", 5)),
        check=False,
    )
    assert other.returncode != 0 and 'conflicts with "kubectl":\n- .spec.replicas' in other.stderr
    assert (
        "configured"
        in kubectl("apply", "-f", "-", stdin=yaml.safe_dump(deployment("csa", 3))).stdout
    )


async def test_a_built_in_map_emptied_by_removal_is_omitted(http: Http) -> None:
    """Merge strategy: the last label and data key the applier stops applying go, and so do the
    emptied maps (ObjectMeta and ConfigMap serialize empty maps as absent)."""
    body = configmap("omit", a="1")
    body["metadata"]["labels"] = {"team": "x"}
    await apply(http, f"{CMS}/omit", body, "tool")
    emptied = (
        await apply(
            http,
            f"{CMS}/omit",
            {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "omit"}},
            "tool",
        )
    ).body
    assert "data" not in emptied and "labels" not in emptied["metadata"]
