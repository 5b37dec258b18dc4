"""Discovery, CRUD, metadata and error shapes, pinned to the documented apiserver behaviour."""

from __future__ import annotations

import asyncio

from kubesim.harness.cluster import KubeSim
from tests.kubesim.conftest import GADGET_CRD, WIDGET_CRD, WIDGETS, Http, eventually, pod, widget

CONCEPTS = "https://kubernetes.io/docs/reference/using-api/api-concepts/"
CONVENTIONS = "https://github.com/kubernetes/community/blob/master/contributors/devel/sig-architecture/api-conventions.md"


async def test_discovery_documents_list_builtin_groups_and_resources(http: Http) -> None:
    """Discovery: /version, /api, /api/v1, /apis, /apis/{group}, /apis/{group}/{version}.
    https://kubernetes.io/docs/concepts/overview/kubernetes-api/#discovery-api"""
    version = await http.ok("GET", "/version")
    assert version["major"] == "1" and version["gitVersion"].startswith("v1.32")
    api = await http.ok("GET", "/api")
    assert api["kind"] == "APIVersions" and api["versions"] == ["v1"]
    core = await http.ok("GET", "/api/v1")
    names = {r["name"] for r in core["resources"]}
    assert {
        "pods",
        "pods/status",
        "services",
        "configmaps",
        "secrets",
        "events",
        "namespaces",
    } <= names
    pods = next(r for r in core["resources"] if r["name"] == "pods")
    assert (
        pods["namespaced"]
        and pods["kind"] == "Pod"
        and "watch" in pods["verbs"]
        and pods["shortNames"] == ["po"]
    )
    groups = {g["name"] for g in (await http.ok("GET", "/apis"))["groups"]}
    assert {"apps", "coordination.k8s.io", "events.k8s.io", "apiextensions.k8s.io"} <= groups
    group = await http.ok("GET", "/apis/coordination.k8s.io")
    assert group["preferredVersion"]["groupVersion"] == "coordination.k8s.io/v1"
    leases = await http.ok("GET", "/apis/coordination.k8s.io/v1")
    assert [r["name"] for r in leases["resources"]] == ["leases"]


async def test_creating_a_crd_serves_its_resources_at_once_with_status_subresource(
    http: Http,
) -> None:
    """A CRD is served as soon as it is Established, namespaced or cluster-scoped, with /status.
    https://kubernetes.io/docs/tasks/extend-kubernetes/custom-resources/custom-resource-definitions/#create-a-customresourcedefinition"""
    crd = await http.ok(
        "POST", "/apis/apiextensions.k8s.io/v1/customresourcedefinitions", WIDGET_CRD
    )
    assert crd["metadata"]["name"] == "widgets.kubesim.test"
    stored = await http.ok(
        "GET", "/apis/apiextensions.k8s.io/v1/customresourcedefinitions/widgets.kubesim.test"
    )
    established = {c["type"]: c["status"] for c in stored["status"]["conditions"]}
    assert established == {"NamesAccepted": "True", "Established": "True"}
    resources = await http.ok("GET", "/apis/kubesim.test/v1")
    assert {r["name"] for r in resources["resources"]} == {"widgets", "widgets/status"}
    created = await http.ok("POST", WIDGETS, widget("w1"))
    assert created["apiVersion"] == "kubesim.test/v1" and created["metadata"]["generation"] == 1
    await http.ok("POST", "/apis/apiextensions.k8s.io/v1/customresourcedefinitions", GADGET_CRD)
    gadget = await http.ok(
        "POST",
        "/apis/kubesim.test/v1/gadgets",
        {
            "apiVersion": "kubesim.test/v1",
            "kind": "Gadget",
            "metadata": {"name": "g1"},
            "anything": 1,
        },
    )
    assert "namespace" not in gadget["metadata"]
    # Deleting the CRD deletes its objects, then stops serving.
    await http.ok(
        "DELETE", "/apis/apiextensions.k8s.io/v1/customresourcedefinitions/widgets.kubesim.test"
    )

    async def unserved() -> bool:
        return (await http.get(WIDGETS)).status == 404

    await eventually(unserved)


async def test_metadata_uid_timestamps_and_global_resource_version(http: Http) -> None:
    """uid and creationTimestamp are set by the server; resourceVersion is opaque, changes on every
    write and (in kube-apiserver, backed by etcd) increases across all objects.
    https://kubernetes.io/docs/reference/using-api/api-concepts/#resource-versions"""
    a = await http.ok(
        "POST",
        "/api/v1/namespaces/default/configmaps",
        {"metadata": {"name": "a"}, "data": {"k": "1"}},
    )
    b = await http.ok("POST", "/api/v1/namespaces/default/configmaps", {"metadata": {"name": "b"}})
    assert a["metadata"]["uid"] != b["metadata"]["uid"]
    assert a["metadata"]["creationTimestamp"].endswith("Z")
    assert int(b["metadata"]["resourceVersion"]) > int(a["metadata"]["resourceVersion"])
    a2 = await http.ok(
        "PATCH",
        "/api/v1/namespaces/default/configmaps/a",
        {"data": {"k": "2"}},
        content_type="application/merge-patch+json",
    )
    assert int(a2["metadata"]["resourceVersion"]) > int(b["metadata"]["resourceVersion"])
    assert a2["metadata"]["uid"] == a["metadata"]["uid"]


async def test_generate_name_appends_a_random_suffix(http: Http) -> None:
    """generateName: the server appends a unique suffix.
    https://github.com/kubernetes/community/blob/master/contributors/devel/sig-architecture/api-conventions.md#idempotency"""
    body = {"metadata": {"generateName": "cm-"}}
    a = await http.ok("POST", "/api/v1/namespaces/default/configmaps", body)
    b = await http.ok("POST", "/api/v1/namespaces/default/configmaps", body)
    assert a["metadata"]["name"].startswith("cm-") and len(a["metadata"]["name"]) == 8
    assert a["metadata"]["name"] != b["metadata"]["name"]


async def test_create_existing_is_409_already_exists(http: Http) -> None:
    """Create of an existing name answers 409 AlreadyExists with a Status body.
    https://kubernetes.io/docs/reference/using-api/api-concepts/#api-response-status-codes (409)"""
    await http.ok("POST", "/api/v1/namespaces/default/configmaps", {"metadata": {"name": "dup"}})
    reply = await http.post("/api/v1/namespaces/default/configmaps", {"metadata": {"name": "dup"}})
    assert reply.status == 409
    assert reply.body["reason"] == "AlreadyExists"
    assert reply.body["message"] == 'configmaps "dup" already exists'
    assert reply.body["details"] == {"name": "dup", "kind": "configmaps"}


async def test_update_with_stale_resource_version_is_409_conflict(http: Http) -> None:
    """Optimistic concurrency: an update carrying an outdated resourceVersion is rejected with 409.
    https://github.com/kubernetes/community/blob/master/contributors/devel/sig-architecture/api-conventions.md#concurrency-control-and-consistency"""
    cm = await http.ok(
        "POST",
        "/api/v1/namespaces/default/configmaps",
        {"metadata": {"name": "occ"}, "data": {"a": "1"}},
    )
    cm["data"]["a"] = "2"
    await http.ok("PUT", "/api/v1/namespaces/default/configmaps/occ", cm)
    cm["data"]["a"] = "3"
    reply = await http.put("/api/v1/namespaces/default/configmaps/occ", cm)
    assert reply.status == 409 and reply.body["reason"] == "Conflict"
    assert "the object has been modified" in reply.body["message"]
    # Without a resourceVersion the update is unconditional.
    del cm["metadata"]["resourceVersion"]
    assert (await http.ok("PUT", "/api/v1/namespaces/default/configmaps/occ", cm))["data"][
        "a"
    ] == "3"


async def test_invalid_names_are_422_with_field_causes(http: Http) -> None:
    """Names are DNS-1123 subdomains (namespaces: labels; services: DNS-1035 labels).
    https://kubernetes.io/docs/concepts/overview/working-with-objects/names/"""
    reply = await http.post(
        "/api/v1/namespaces/default/configmaps", {"metadata": {"name": "Not_Valid"}}
    )
    assert reply.status == 422 and reply.body["reason"] == "Invalid"
    cause = reply.body["details"]["causes"][0]
    assert cause["field"] == "metadata.name" and cause["reason"] == "FieldValueInvalid"
    assert "RFC 1123 subdomain" in cause["message"]
    reply = await http.post("/api/v1/namespaces", {"metadata": {"name": "a.b"}})
    assert reply.status == 422 and "RFC 1123 label" in reply.body["message"]
    reply = await http.post(
        "/api/v1/namespaces/default/services",
        {"metadata": {"name": "1svc"}, "spec": {"ports": [{"port": 80}]}},
    )
    assert reply.status == 422 and "DNS-1035" in reply.body["message"]
    reply = await http.post("/api/v1/namespaces/default/configmaps", {"metadata": {}})
    assert (
        reply.status == 422
        and reply.body["details"]["causes"][0]["message"]
        == "Required value: name or generateName is required"
    )
    reply = await http.post("/api/v1/namespaces/default/pods", pod("p", hostname="Bad_Host"))
    assert reply.status == 422 and reply.body["details"]["causes"][0]["field"] == "spec.hostname"


async def test_annotations_over_256_kib_are_rejected(http: Http) -> None:
    """metadata.annotations may total at most 256 KiB.
    https://kubernetes.io/docs/concepts/overview/working-with-objects/annotations/#syntax-and-character-set"""
    big = {"metadata": {"name": "big", "annotations": {"x": "a" * (256 * 1024)}}}
    reply = await http.post("/api/v1/namespaces/default/configmaps", big)
    assert reply.status == 422
    assert reply.body["details"]["causes"][0] == {
        "reason": "FieldValueTooLong",
        "message": "Too long: may not be more than 262144 bytes",
        "field": "metadata.annotations",
    }


async def test_request_body_over_3_mib_is_413_and_object_over_etcd_limit_is_rejected(
    http: Http,
) -> None:
    """kube-apiserver refuses bodies over 3 MiB (413); etcd refuses objects over 1.5 MiB.
    https://kubernetes.io/docs/reference/using-api/api-concepts/#api-response-status-codes"""
    huge = {"metadata": {"name": "huge"}, "data": {"x": "a" * (3 * 1024 * 1024 + 10)}}
    reply = await http.post("/api/v1/namespaces/default/configmaps", huge)
    assert reply.status == 413 and reply.body["reason"] == "RequestEntityTooLarge"
    large = {"metadata": {"name": "large"}, "data": {"x": "a" * (2 * 1024 * 1024)}}
    reply = await http.post("/api/v1/namespaces/default/configmaps", large)
    assert reply.status == 413 and "request is too large" in reply.body["message"]


async def test_malformed_bodies_and_unknown_resources_get_status_errors(http: Http) -> None:
    """Errors are metav1.Status bodies: 400 for undecodable bodies, 404 for unknown resources.
    https://kubernetes.io/docs/reference/using-api/api-concepts/#api-response-status-codes"""
    reply = await http.request("POST", "/api/v1/namespaces/default/configmaps", raw=b"{not json")
    assert (
        reply.status == 400
        and reply.body["kind"] == "Status"
        and reply.body["reason"] == "BadRequest"
    )
    reply = await http.get("/api/v1/namespaces/default/nosuchthings")
    assert (
        reply.status == 404
        and reply.body["message"] == "the server could not find the requested resource"
    )
    reply = await http.get("/apis/nosuch.group/v1")
    assert reply.status == 404
    reply = await http.get("/api/v1/namespaces/default/configmaps/missing")
    assert reply.status == 404 and reply.body["message"] == 'configmaps "missing" not found'
    reply = await http.post("/api/v1/namespaces/nowhere/configmaps", {"metadata": {"name": "x"}})
    assert reply.status == 404 and reply.body["message"] == 'namespaces "nowhere" not found'
    reply = await http.post(
        "/api/v1/namespaces/default/configmaps", {"apiVersion": "v2", "metadata": {"name": "x"}}
    )
    assert reply.status == 400


async def test_dry_run_all_validates_without_storing(http: Http) -> None:
    """dryRun=All runs admission and validation but persists nothing.
    https://kubernetes.io/docs/reference/using-api/api-concepts/#dry-run"""
    reply = await http.post(
        "/api/v1/namespaces/default/configmaps?dryRun=All", {"metadata": {"name": "dry"}}
    )
    assert reply.status == 201 and reply.body["metadata"]["name"] == "dry"
    assert (await http.get("/api/v1/namespaces/default/configmaps/dry")).status == 404
    reply = await http.post(
        "/api/v1/namespaces/default/configmaps?dryRun=All", {"metadata": {"name": "BAD"}}
    )
    assert reply.status == 422


async def test_events_are_served_in_core_v1_and_events_k8s_io_v1(http: Http) -> None:
    """core/v1 Event and events.k8s.io/v1 Event are two views of the same objects.
    https://kubernetes.io/docs/reference/kubernetes-api/cluster-resources/event-v1/"""
    ev = {
        "metadata": {"name": "e1"},
        "involvedObject": {"kind": "Pod", "name": "p1", "namespace": "default", "uid": "u1"},
        "reason": "Started",
        "message": "hello",
        "type": "Normal",
    }
    await http.ok("POST", "/api/v1/namespaces/default/events", ev)
    new = await http.ok("GET", "/apis/events.k8s.io/v1/namespaces/default/events/e1")
    assert new["regarding"]["name"] == "p1" and new["note"] == "hello"
    listed = await http.ok(
        "GET",
        "/api/v1/namespaces/default/events?fieldSelector=involvedObject.name%3Dp1,involvedObject.uid%3Du1",
    )
    assert [e["metadata"]["name"] for e in listed["items"]] == ["e1"]


async def test_leases_and_controllerrevisions_are_served(http: Http) -> None:
    """coordination.k8s.io/v1 Lease and apps/v1 ControllerRevision CRUD.
    https://kubernetes.io/docs/concepts/architecture/leases/"""
    lease = await http.ok(
        "POST",
        "/apis/coordination.k8s.io/v1/namespaces/default/leases",
        {"metadata": {"name": "l1"}, "spec": {"holderIdentity": "me", "leaseDurationSeconds": 15}},
    )
    assert lease["kind"] == "Lease"
    rev = await http.ok(
        "POST",
        "/apis/apps/v1/namespaces/default/controllerrevisions",
        {"metadata": {"name": "r1"}, "revision": 1, "data": {"x": 1}},
    )
    assert rev["revision"] == 1


async def test_kubesim_store_is_reachable_for_assertions(kubesim: KubeSim, http: Http) -> None:
    """The fixture exposes the store (not an apiserver behaviour; the test harness contract)."""
    await http.ok("POST", "/api/v1/namespaces/default/configmaps", {"metadata": {"name": "s"}})
    assert kubesim.store.get("/configmaps", "default", "s") is not None


async def test_aggregated_discovery_v2_when_asked(http: Http) -> None:
    """Aggregated discovery: /api and /apis answer APIGroupDiscoveryList (apidiscovery.k8s.io/v2)
    when the Accept header asks for it, as kubectl 1.32 does first.
    https://kubernetes.io/docs/concepts/overview/kubernetes-api/#aggregated-discovery"""
    accept = "application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList,application/json"
    reply = await http.get("/apis", headers={"Accept": accept})
    assert (
        reply.headers["Content-Type"]
        == "application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList"
    )
    groups = {g["metadata"]["name"]: g for g in reply.body["items"]}
    leases = groups["coordination.k8s.io"]["versions"][0]["resources"][0]
    assert leases["resource"] == "leases" and leases["scope"] == "Namespaced"
    core = (await http.get("/api", headers={"Accept": accept})).body["items"][0]
    pods = next(r for r in core["versions"][0]["resources"] if r["resource"] == "pods")
    assert {s["subresource"] for s in pods["subresources"]} >= {"status", "log", "proxy"}
    assert (await http.ok("GET", "/api"))["kind"] == "APIVersions"


async def test_deleting_a_crd_deletes_its_objects_through_their_finalizers_first(
    http: Http,
) -> None:
    """A CRD carries the customresourcecleanup finalizer: deleting it deletes every custom object
    (each waiting for its own finalizers), refuses new ones, then removes the CRD.
    https://kubernetes.io/docs/tasks/extend-kubernetes/custom-resources/custom-resource-definitions/#delete-a-customresourcedefinition"""
    crd = await http.ok(
        "POST", "/apis/apiextensions.k8s.io/v1/customresourcedefinitions", WIDGET_CRD
    )
    assert crd["metadata"]["finalizers"] == ["customresourcecleanup.apiextensions.k8s.io"]
    await http.ok(
        "POST",
        WIDGETS,
        {**widget("held"), "metadata": {"name": "held", "finalizers": ["kubesim.test/hold"]}},
    )
    await http.ok("POST", WIDGETS, widget("free"))
    reply = await http.delete(
        "/apis/apiextensions.k8s.io/v1/customresourcedefinitions/widgets.kubesim.test"
    )
    assert reply.status == 200 and reply.body["metadata"]["deletionTimestamp"]
    for _ in range(200):
        if (await http.get(f"{WIDGETS}/free")).status == 404:
            break
        await asyncio.sleep(0.01)
    held = await http.ok("GET", f"{WIDGETS}/held")
    assert held["metadata"]["deletionTimestamp"]
    refused = await http.post(WIDGETS, widget("late"))
    assert refused.status == 405
    await http.ok(
        "PATCH",
        f"{WIDGETS}/held",
        {"metadata": {"finalizers": None}},
        content_type="application/merge-patch+json",
    )
    for _ in range(200):
        if (
            await http.get(
                "/apis/apiextensions.k8s.io/v1/customresourcedefinitions/widgets.kubesim.test"
            )
        ).status == 404:
            break
        await asyncio.sleep(0.01)
    assert (await http.get(WIDGETS)).status == 404


async def test_bad_query_parameters_are_400(http: Http) -> None:
    """Malformed query parameters are rejected with a BadRequest Status, not a server error.
    https://kubernetes.io/docs/reference/using-api/api-concepts/#api-response-status-codes"""
    for query in (
        "limit=abc",
        "limit=-1",
        "watch=1&timeoutSeconds=soon",
        "watch=1&resourceVersion=abc",
    ):
        reply = await http.get(f"/api/v1/namespaces/default/configmaps?{query}")
        assert reply.status == 400 and reply.body["reason"] == "BadRequest", query


async def test_owner_references_need_all_fields_and_one_controller(http: Http) -> None:
    """ownerReferences must name apiVersion, kind, name and uid; at most one may be the controller.
    https://kubernetes.io/docs/concepts/overview/working-with-objects/owners-dependents/"""
    reply = await http.post(
        "/api/v1/namespaces/default/configmaps",
        {
            "metadata": {
                "name": "o",
                "ownerReferences": [{"apiVersion": "v1", "kind": "ConfigMap", "name": "x"}],
            }
        },
    )
    assert reply.status == 422
    assert reply.body["details"]["causes"][0]["field"] == "metadata.ownerReferences.uid"
    two = [
        {"apiVersion": "v1", "kind": "ConfigMap", "name": n, "uid": n, "controller": True}
        for n in ("a", "b")
    ]
    reply = await http.post(
        "/api/v1/namespaces/default/configmaps", {"metadata": {"name": "o", "ownerReferences": two}}
    )
    assert (
        reply.status == 422
        and "Only one reference can have Controller set to true" in reply.body["message"]
    )
