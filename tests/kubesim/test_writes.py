"""Patch types, status subresource and generation, deletion with finalizers, grace and GC."""

from __future__ import annotations

from kubesim.harness.cluster import KubeSim
from tests.kubesim.conftest import WIDGET_CRD, WIDGETS, Http, eventually, pod, widget

PODS = "/api/v1/namespaces/default/pods"
CMS = "/api/v1/namespaces/default/configmaps"


async def test_merge_patch_and_json_patch(http: Http) -> None:
    """application/merge-patch+json (RFC 7386: null deletes) and application/json-patch+json (RFC 6902).
    https://kubernetes.io/docs/tasks/manage-kubernetes-objects/update-api-object-kubectl-patch/"""
    await http.ok("POST", CMS, {"metadata": {"name": "p"}, "data": {"a": "1", "b": "2"}})
    merged = await http.ok(
        "PATCH",
        f"{CMS}/p",
        {"data": {"a": None, "c": "3"}},
        content_type="application/merge-patch+json",
    )
    assert merged["data"] == {"b": "2", "c": "3"}
    ops = [{"op": "replace", "path": "/data/b", "value": "20"}, {"op": "remove", "path": "/data/c"}]
    patched = await http.ok("PATCH", f"{CMS}/p", ops, content_type="application/json-patch+json")
    assert patched["data"] == {"b": "20"}
    failed = await http.patch(
        f"{CMS}/p",
        [{"op": "test", "path": "/data/b", "value": "nope"}],
        "application/json-patch+json",
    )
    assert failed.status in (409, 422) and failed.body["kind"] == "Status"


async def test_strategic_merge_patch_merges_containers_by_name(http: Http) -> None:
    """Strategic merge patch merges lists by their patchMergeKey (containers by name).
    https://kubernetes.io/docs/tasks/manage-kubernetes-objects/update-api-object-kubectl-patch/#use-a-strategic-merge-patch-to-update-a-deployment"""
    body = pod("smp")
    body["spec"]["containers"].append({"name": "side", "image": "registry.local/side:1"})
    await http.ok("POST", PODS, body)
    patch = {"spec": {"containers": [{"name": "side", "image": "registry.local/side:2"}]}}
    patched = await http.ok(
        "PATCH", f"{PODS}/smp", patch, content_type="application/strategic-merge-patch+json"
    )
    images = {c["name"]: c["image"] for c in patched["spec"]["containers"]}
    assert images == {"main": "registry.local/app:1", "side": "registry.local/side:2"}


async def test_strategic_merge_patch_is_415_for_custom_resources(http: Http) -> None:
    """Custom resources do not support strategic merge patch (415 Unsupported Media Type).
    https://kubernetes.io/docs/tasks/extend-kubernetes/custom-resources/custom-resource-definitions/#advanced-topics"""
    await http.ok("POST", "/apis/apiextensions.k8s.io/v1/customresourcedefinitions", WIDGET_CRD)
    await http.ok("POST", WIDGETS, widget("s"))
    reply = await http.patch(
        f"{WIDGETS}/s", {"spec": {"size": 2}}, "application/strategic-merge-patch+json"
    )
    assert reply.status == 415 and reply.body["reason"] == "UnsupportedMediaType"


async def test_pod_spec_is_immutable_except_images(http: Http) -> None:
    """Pod updates may not change fields other than images, activeDeadlineSeconds, tolerations.
    https://kubernetes.io/docs/concepts/workloads/pods/#pod-update-and-replacement"""
    await http.ok("POST", PODS, pod("imm"))
    reply = await http.patch(
        f"{PODS}/imm", {"spec": {"restartPolicy": "Never"}}, "application/merge-patch+json"
    )
    assert reply.status == 422 and reply.body["details"]["causes"][0]["field"] == "spec"
    ok = await http.patch(
        f"{PODS}/imm",
        {"spec": {"containers": [{"name": "main", "image": "registry.local/app:2"}]}},
        "application/strategic-merge-patch+json",
    )
    assert ok.status == 200


async def test_status_subresource_separates_spec_and_status_writes(http: Http) -> None:
    """With the status subresource, the main endpoint ignores status and /status ignores the rest.
    https://kubernetes.io/docs/tasks/extend-kubernetes/custom-resources/custom-resource-definitions/#status-subresource"""
    await http.ok("POST", "/apis/apiextensions.k8s.io/v1/customresourcedefinitions", WIDGET_CRD)
    created = await http.ok("POST", WIDGETS, {**widget("st"), "status": {"phase": "Ignored"}})
    assert "status" not in created
    status = await http.ok(
        "PATCH",
        f"{WIDGETS}/st/status",
        {"status": {"phase": "Ready"}, "spec": {"size": 9}},
        content_type="application/merge-patch+json",
    )
    assert status["status"] == {"phase": "Ready"} and status["spec"]["size"] == 1
    main = await http.ok(
        "PATCH",
        f"{WIDGETS}/st",
        {"status": {"phase": "Lost"}, "spec": {"size": 2}},
        content_type="application/merge-patch+json",
    )
    assert main["status"] == {"phase": "Ready"} and main["spec"]["size"] == 2


async def test_generation_bumps_only_on_spec_changes(http: Http) -> None:
    """metadata.generation increments on spec changes, not on metadata or status writes.
    https://github.com/kubernetes/community/blob/master/contributors/devel/sig-architecture/api-conventions.md#metadata"""
    await http.ok("POST", "/apis/apiextensions.k8s.io/v1/customresourcedefinitions", WIDGET_CRD)
    w = await http.ok("POST", WIDGETS, widget("g"))
    assert w["metadata"]["generation"] == 1
    w = await http.ok(
        "PATCH",
        f"{WIDGETS}/g",
        {"metadata": {"labels": {"x": "y"}}},
        content_type="application/merge-patch+json",
    )
    assert w["metadata"]["generation"] == 1
    w = await http.ok(
        "PATCH",
        f"{WIDGETS}/g/status",
        {"status": {"phase": "A"}},
        content_type="application/merge-patch+json",
    )
    assert w["metadata"]["generation"] == 1
    w = await http.ok(
        "PATCH", f"{WIDGETS}/g", {"spec": {"size": 3}}, content_type="application/merge-patch+json"
    )
    assert w["metadata"]["generation"] == 2


async def test_finalizers_hold_deletion_until_removed(http: Http) -> None:
    """An object with finalizers gets deletionTimestamp (200, as kube-apiserver answers) and is
    removed once they are gone.
    https://kubernetes.io/docs/concepts/overview/working-with-objects/finalizers/"""
    await http.ok("POST", CMS, {"metadata": {"name": "fin", "finalizers": ["kubesim.test/hold"]}})
    reply = await http.delete(f"{CMS}/fin")
    assert reply.status == 200 and reply.body["metadata"]["deletionTimestamp"]
    held = await http.ok("GET", f"{CMS}/fin")
    assert held["metadata"]["deletionGracePeriodSeconds"] == 0
    added = await http.patch(
        f"{CMS}/fin",
        {"metadata": {"finalizers": ["kubesim.test/hold", "kubesim.test/more"]}},
        "application/merge-patch+json",
    )
    assert added.status == 422
    await http.ok(
        "PATCH",
        f"{CMS}/fin",
        {"metadata": {"finalizers": None}},
        content_type="application/merge-patch+json",
    )
    assert (await http.get(f"{CMS}/fin")).status == 404


async def test_pod_delete_honours_grace_period_and_kubelet_removes_it(
    http: Http, kubesim: KubeSim
) -> None:
    """A running pod is first marked with deletionTimestamp (gracePeriodSeconds), then removed by
    the kubelet once its containers stopped; unscheduled pods go at once.
    https://kubernetes.io/docs/concepts/workloads/pods/pod-lifecycle/#pod-termination"""
    await http.ok("POST", PODS, pod("g1"))
    await kubesim.settle()
    reply = await http.request("DELETE", f"{PODS}/g1?gracePeriodSeconds=5")
    assert reply.status in (200, 202)
    assert reply.body["metadata"]["deletionGracePeriodSeconds"] == 5
    await eventually(lambda: kubesim.store.get("/pods", "default", "g1") is None)


async def test_background_propagation_garbage_collects_dependents(http: Http) -> None:
    """Background cascading deletion: the owner goes at once, the GC deletes its dependents.
    https://kubernetes.io/docs/concepts/architecture/garbage-collection/#background-deletion"""
    owner = await http.ok("POST", CMS, {"metadata": {"name": "owner"}})
    ref = {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "name": "owner",
        "uid": owner["metadata"]["uid"],
    }
    await http.ok("POST", CMS, {"metadata": {"name": "dep", "ownerReferences": [ref]}})
    await http.ok(
        "POST", PODS, {**pod("dep-pod"), "metadata": {"name": "dep-pod", "ownerReferences": [ref]}}
    )
    await http.ok("DELETE", f"{CMS}/owner", {"propagationPolicy": "Background"})

    async def gone() -> bool:
        return (await http.get(f"{CMS}/dep")).status == 404 and (
            await http.get(f"{PODS}/dep-pod")
        ).status == 404

    await eventually(gone)


async def test_foreground_propagation_waits_for_dependents(http: Http) -> None:
    """Foreground: the owner keeps a foregroundDeletion finalizer until its dependents are gone.
    https://kubernetes.io/docs/concepts/architecture/garbage-collection/#foreground-deletion"""
    owner = await http.ok("POST", CMS, {"metadata": {"name": "fg"}})
    ref = {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "name": "fg",
        "uid": owner["metadata"]["uid"],
        "blockOwnerDeletion": True,
    }
    await http.ok(
        "POST",
        CMS,
        {
            "metadata": {
                "name": "fg-dep",
                "ownerReferences": [ref],
                "finalizers": ["kubesim.test/slow"],
            }
        },
    )
    reply = await http.delete(f"{CMS}/fg", {"propagationPolicy": "Foreground"})
    assert reply.status == 200 and "foregroundDeletion" in reply.body["metadata"]["finalizers"]

    async def dependent_marked() -> bool:
        return bool((await http.ok("GET", f"{CMS}/fg-dep"))["metadata"].get("deletionTimestamp"))

    await eventually(dependent_marked)
    assert (await http.get(f"{CMS}/fg")).status == 200
    await http.ok(
        "PATCH",
        f"{CMS}/fg-dep",
        {"metadata": {"finalizers": None}},
        content_type="application/merge-patch+json",
    )

    async def owner_gone() -> bool:
        return (await http.get(f"{CMS}/fg")).status == 404

    await eventually(owner_gone)


async def test_orphan_propagation_keeps_dependents_without_the_owner_reference(http: Http) -> None:
    """Orphan: dependents stay, their ownerReferences to the deleted owner are removed.
    https://kubernetes.io/docs/concepts/architecture/garbage-collection/#orphaned-dependents"""
    owner = await http.ok("POST", CMS, {"metadata": {"name": "or"}})
    ref = {"apiVersion": "v1", "kind": "ConfigMap", "name": "or", "uid": owner["metadata"]["uid"]}
    await http.ok("POST", CMS, {"metadata": {"name": "or-dep", "ownerReferences": [ref]}})
    await http.delete(f"{CMS}/or", {"propagationPolicy": "Orphan"})

    async def owner_gone() -> bool:
        return (await http.get(f"{CMS}/or")).status == 404

    await eventually(owner_gone)
    dep = await http.ok("GET", f"{CMS}/or-dep")
    assert not dep["metadata"].get("ownerReferences")


async def test_namespace_deletion_terminates_then_empties_then_removes(http: Http) -> None:
    """A deleted namespace is Terminating (no new content, 403), its objects are deleted, then it goes.
    https://kubernetes.io/docs/concepts/overview/working-with-objects/namespaces/#deleting-a-namespace"""
    await http.ok("POST", "/api/v1/namespaces", {"metadata": {"name": "doomed"}})
    await http.ok(
        "POST",
        "/api/v1/namespaces/doomed/configmaps",
        {"metadata": {"name": "c", "finalizers": ["kubesim.test/f"]}},
    )
    reply = await http.delete("/api/v1/namespaces/doomed")
    assert reply.body["status"]["phase"] == "Terminating"
    blocked = await http.post("/api/v1/namespaces/doomed/configmaps", {"metadata": {"name": "new"}})
    assert blocked.status == 403 and "being terminated" in blocked.body["message"]

    async def marked() -> bool:
        return bool(
            (await http.ok("GET", "/api/v1/namespaces/doomed/configmaps/c"))["metadata"].get(
                "deletionTimestamp"
            )
        )

    await eventually(marked)
    await http.ok(
        "PATCH",
        "/api/v1/namespaces/doomed/configmaps/c",
        {"metadata": {"finalizers": None}},
        content_type="application/merge-patch+json",
    )

    async def ns_gone() -> bool:
        return (await http.get("/api/v1/namespaces/doomed")).status == 404

    await eventually(ns_gone)


async def test_delete_collection_with_label_selector(http: Http) -> None:
    """DELETE on a collection deletes what the selectors match.
    https://kubernetes.io/docs/reference/using-api/api-concepts/#efficient-detection-of-changes"""
    for name, app in [("x1", "a"), ("x2", "a"), ("x3", "b")]:
        await http.ok("POST", CMS, {"metadata": {"name": name, "labels": {"app": app}}})
    await http.ok("DELETE", f"{CMS}?labelSelector=app%3Da")
    left = await http.ok("GET", f"{CMS}?labelSelector=app")
    assert [i["metadata"]["name"] for i in left["items"]] == ["x3"]


async def test_dependent_of_a_missing_owner_is_collected(http: Http) -> None:
    """The garbage collector deletes objects whose owners (by uid) do not exist.
    https://kubernetes.io/docs/concepts/overview/working-with-objects/owners-dependents/"""
    ref = {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "name": "ghost",
        "uid": "00000000-0000-0000-0000-000000000000",
    }
    await http.ok("POST", CMS, {"metadata": {"name": "orphaned", "ownerReferences": [ref]}})

    async def gone() -> bool:
        return (await http.get(f"{CMS}/orphaned")).status == 404

    await eventually(gone)


async def test_immutable_configmap_and_service_cluster_ip_cannot_change(http: Http) -> None:
    """immutable ConfigMaps refuse data changes; a Service's clusterIP may not change once set.
    https://kubernetes.io/docs/concepts/configuration/configmap/#configmap-immutable"""
    await http.ok(
        "POST", CMS, {"metadata": {"name": "frozen"}, "data": {"a": "1"}, "immutable": True}
    )
    reply = await http.patch(f"{CMS}/frozen", {"data": {"a": "2"}}, "application/merge-patch+json")
    assert reply.status == 422 and reply.body["details"]["causes"][0] == {
        "reason": "FieldValueForbidden",
        "message": "Forbidden: field is immutable when `immutable` is set",
        "field": "data",
    }
    svc = await http.ok(
        "POST",
        "/api/v1/namespaces/default/services",
        {"metadata": {"name": "s"}, "spec": {"ports": [{"port": 80}]}},
    )
    assert svc["spec"]["clusterIP"].startswith("127.96.")
    reply = await http.patch(
        "/api/v1/namespaces/default/services/s",
        {"spec": {"clusterIP": "127.96.9.9"}},
        "application/merge-patch+json",
    )
    assert (
        reply.status == 422 and reply.body["details"]["causes"][0]["field"] == "spec.clusterIPs[0]"
    )


async def test_system_namespaces_may_not_be_deleted(http: Http) -> None:
    """default, kube-system and kube-public are protected (403).
    https://kubernetes.io/docs/concepts/overview/working-with-objects/namespaces/#initial-namespaces"""
    reply = await http.delete("/api/v1/namespaces/default")
    assert (
        reply.status == 403
        and reply.body["message"]
        == 'namespaces "default" is forbidden: this namespace may not be deleted'
    )
