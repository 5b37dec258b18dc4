"""Lists with selectors and pagination; watches with resourceVersion, bookmarks, timeouts, 410."""

from __future__ import annotations

import asyncio
import json

import aiohttp

from kubesim.harness.cluster import KubeSim
from tests.kubesim.conftest import Http, pod

PODS = "/api/v1/namespaces/default/pods"
CMS = "/api/v1/namespaces/default/configmaps"


async def _labelled(http: Http) -> None:
    for name, labels in [
        ("a", {"app": "web", "tier": "front"}),
        ("b", {"app": "web", "tier": "back"}),
        ("c", {"app": "db"}),
        ("d", {}),
    ]:
        await http.ok("POST", CMS, {"metadata": {"name": name, "labels": labels}})


async def _names(http: Http, query: str) -> list[str]:
    body = await http.ok("GET", f"{CMS}?{query}")
    return [i["metadata"]["name"] for i in body["items"]]


async def test_label_selector_operators(http: Http) -> None:
    """=, ==, !=, in, notin, exists, !exists.
    https://kubernetes.io/docs/concepts/overview/working-with-objects/labels/#label-selectors"""
    await _labelled(http)
    assert await _names(http, "labelSelector=app%3Dweb") == ["a", "b"]
    assert await _names(http, "labelSelector=app%3D%3Dweb,tier%3Dback") == ["b"]
    assert await _names(http, "labelSelector=app!%3Dweb") == ["c", "d"]
    assert await _names(http, "labelSelector=app+in+(web,db)") == ["a", "b", "c"]
    assert await _names(http, "labelSelector=app+notin+(web)") == ["c", "d"]
    assert await _names(http, "labelSelector=tier") == ["a", "b"]
    assert await _names(http, "labelSelector=!tier") == ["c", "d"]
    bad = await http.get(f"{CMS}?labelSelector=app%3D%3D%3D")
    assert bad.status == 400 and bad.body["reason"] == "BadRequest"


async def test_field_selectors_name_namespace_and_pod_phase(http: Http, kubesim: KubeSim) -> None:
    """Field selectors: metadata.name, metadata.namespace for all; status.phase for pods;
    unsupported fields are a 400.
    https://kubernetes.io/docs/concepts/overview/working-with-objects/field-selectors/"""
    await _labelled(http)
    assert await _names(http, "fieldSelector=metadata.name%3Db") == ["b"]
    assert await _names(http, "fieldSelector=metadata.name!%3Db") == ["a", "c", "d"]
    everywhere = await http.ok(
        "GET", "/api/v1/configmaps?fieldSelector=metadata.namespace%3Ddefault"
    )
    assert len(everywhere["items"]) == 4
    bad = await http.get(f"{CMS}?fieldSelector=data.x%3D1")
    assert bad.status == 400 and bad.body["message"] == "field label not supported: data.x"
    await http.ok("POST", PODS, pod("p1"))
    await kubesim.settle()
    running = await http.ok("GET", f"{PODS}?fieldSelector=status.phase%3DRunning")
    assert [p["metadata"]["name"] for p in running["items"]] == ["p1"]
    pending = await http.ok("GET", f"{PODS}?fieldSelector=status.phase%3DPending")
    assert pending["items"] == []


async def test_list_pagination_with_limit_and_continue(http: Http) -> None:
    """limit/continue: chunks in key order, a continue token until the last chunk.
    https://kubernetes.io/docs/reference/using-api/api-concepts/#retrieving-large-results-sets-in-chunks"""
    for i in range(7):
        await http.ok("POST", CMS, {"metadata": {"name": f"cm{i}"}})
    first = await http.ok("GET", f"{CMS}?limit=3")
    assert [i["metadata"]["name"] for i in first["items"]] == ["cm0", "cm1", "cm2"]
    assert first["metadata"]["remainingItemCount"] == 4
    token = first["metadata"]["continue"]
    second = await http.ok("GET", f"{CMS}?limit=3&continue={token}")
    assert [i["metadata"]["name"] for i in second["items"]] == ["cm3", "cm4", "cm5"]
    third = await http.ok("GET", f"{CMS}?limit=3&continue={second['metadata']['continue']}")
    assert [i["metadata"]["name"] for i in third["items"]] == ["cm6"]
    assert "continue" not in third["metadata"]
    assert second["metadata"]["resourceVersion"] == first["metadata"]["resourceVersion"]
    bad = await http.get(f"{CMS}?limit=3&continue=garbage")
    assert bad.status == 400


async def test_watch_from_resource_version_streams_added_modified_deleted(http: Http) -> None:
    """A watch from a list's resourceVersion delivers every later change in order.
    https://kubernetes.io/docs/reference/using-api/api-concepts/#efficient-detection-of-changes"""
    listed = await http.ok("GET", CMS)
    rv = listed["metadata"]["resourceVersion"]
    await http.ok("POST", CMS, {"metadata": {"name": "w"}, "data": {"a": "1"}})
    await http.ok(
        "PATCH", f"{CMS}/w", {"data": {"a": "2"}}, content_type="application/merge-patch+json"
    )
    await http.ok("DELETE", f"{CMS}/w")
    events = await http.watch_lines(f"{CMS}?watch=true&resourceVersion={rv}", 3)
    assert [e["type"] for e in events] == ["ADDED", "MODIFIED", "DELETED"]
    rvs = [int(e["object"]["metadata"]["resourceVersion"]) for e in events]
    assert rvs == sorted(rvs) and rvs[0] > int(rv)
    assert events[1]["object"]["data"] == {"a": "2"}


async def test_watch_without_resource_version_starts_with_synthetic_added(http: Http) -> None:
    """Without resourceVersion (or "0") a watch first sends ADDED for every existing object.
    https://kubernetes.io/docs/reference/using-api/api-concepts/#semantics-for-watch"""
    await _labelled(http)
    events = await http.watch_lines(f"{CMS}?watch=1&labelSelector=app%3Dweb", 2)
    assert [(e["type"], e["object"]["metadata"]["name"]) for e in events] == [
        ("ADDED", "a"),
        ("ADDED", "b"),
    ]


async def test_watch_label_selector_transitions_are_added_and_deleted(http: Http) -> None:
    """An object that starts/stops matching a watch's selector arrives as ADDED/DELETED.
    https://kubernetes.io/docs/reference/using-api/api-concepts/#efficient-detection-of-changes"""
    rv = (await http.ok("GET", CMS))["metadata"]["resourceVersion"]
    await http.ok("POST", CMS, {"metadata": {"name": "t", "labels": {"app": "x"}}})
    await http.ok(
        "PATCH",
        f"{CMS}/t",
        {"metadata": {"labels": {"app": "web"}}},
        content_type="application/merge-patch+json",
    )
    await http.ok(
        "PATCH",
        f"{CMS}/t",
        {"metadata": {"labels": {"app": "x"}}},
        content_type="application/merge-patch+json",
    )
    events = await http.watch_lines(
        f"{CMS}?watch=1&resourceVersion={rv}&labelSelector=app%3Dweb", 2
    )
    assert [e["type"] for e in events] == ["ADDED", "DELETED"]


async def test_watch_timeout_seconds_ends_the_stream_with_a_bookmark(http: Http) -> None:
    """timeoutSeconds closes the watch; with allowWatchBookmarks, BOOKMARK events carry only the
    resourceVersion (kind + metadata.resourceVersion).
    https://kubernetes.io/docs/reference/using-api/api-concepts/#watch-bookmarks"""
    rv = (await http.ok("GET", CMS))["metadata"]["resourceVersion"]
    loop = asyncio.get_running_loop()
    started = loop.time()
    events = await http.watch_lines(
        f"{CMS}?watch=1&resourceVersion={rv}&timeoutSeconds=1&allowWatchBookmarks=true", 100
    )
    assert 0.9 <= loop.time() - started < 4
    assert events and events[-1]["type"] == "BOOKMARK"
    assert set(events[-1]["object"]) == {"kind", "apiVersion", "metadata"}
    assert events[-1]["object"]["kind"] == "ConfigMap"


async def test_watch_from_expired_resource_version_is_410_gone(tmp_path: object) -> None:
    """A watch from a resourceVersion older than the kept history answers an ERROR event with a
    410 Status (reason Expired).
    https://kubernetes.io/docs/reference/using-api/api-concepts/#410-gone-responses"""
    sim = KubeSim(history_size=5, run_kubelet=False)
    await sim.start()
    try:
        async with aiohttp.ClientSession() as session:
            http = Http(session, sim.url)
            rv = (await http.ok("GET", CMS))["metadata"]["resourceVersion"]
            for i in range(10):
                await http.ok("POST", CMS, {"metadata": {"name": f"x{i}"}})
            events = await http.watch_lines(f"{CMS}?watch=1&resourceVersion={rv}", 5)
            assert len(events) == 1 and events[0]["type"] == "ERROR"
            status = events[0]["object"]
            assert status["code"] == 410 and status["reason"] == "Expired"
            assert status["message"].startswith("too old resource version")
    finally:
        await sim.stop()


async def test_watch_fans_out_to_several_watchers(http: Http) -> None:
    """Every watcher gets every matching event (the watch cache fans out).
    https://kubernetes.io/docs/reference/using-api/api-concepts/#efficient-detection-of-changes"""
    rv = (await http.ok("GET", CMS))["metadata"]["resourceVersion"]
    watchers = [
        asyncio.create_task(http.watch_lines(f"{CMS}?watch=1&resourceVersion={rv}", 3))
        for _ in range(5)
    ]
    await asyncio.sleep(0.05)
    for i in range(3):
        await http.ok("POST", CMS, {"metadata": {"name": f"f{i}"}})
    results = await asyncio.gather(*watchers)
    for events in results:
        assert [e["object"]["metadata"]["name"] for e in events] == ["f0", "f1", "f2"]


async def test_watch_single_object_by_name_field_selector(http: Http) -> None:
    """kubectl wait/delete watch one object with fieldSelector=metadata.name=<name>.
    https://kubernetes.io/docs/concepts/overview/working-with-objects/field-selectors/"""
    await _labelled(http)
    events = await http.watch_lines(f"{CMS}?watch=1&fieldSelector=metadata.name%3Dc", 1)
    assert events[0]["object"]["metadata"]["name"] == "c"
    raw = json.dumps(events[0])
    assert '"type": "ADDED"' in raw


async def test_send_initial_events_ends_with_initial_events_end_bookmark(http: Http) -> None:
    """Streaming lists: sendInitialEvents=true sends the current state as ADDED, then a BOOKMARK
    annotated k8s.io/initial-events-end.
    https://kubernetes.io/docs/reference/using-api/api-concepts/#streaming-lists"""
    await _labelled(http)
    events = await http.watch_lines(
        f"{CMS}?watch=1&sendInitialEvents=true&allowWatchBookmarks=true&resourceVersionMatch=NotOlderThan&labelSelector=app%3Dweb",
        3,
    )
    assert [e["type"] for e in events] == ["ADDED", "ADDED", "BOOKMARK"]
    assert events[2]["object"]["metadata"]["annotations"] == {"k8s.io/initial-events-end": "true"}


async def test_tables_and_partial_object_metadata_by_content_negotiation(http: Http) -> None:
    """Accept: application/json;as=Table;v=v1;g=meta.k8s.io answers a Table; as=PartialObjectMetadataList
    answers metadata only.
    https://kubernetes.io/docs/reference/using-api/api-concepts/#receiving-resources-as-tables"""
    await _labelled(http)
    table = await http.ok(
        "GET",
        CMS,
        headers={"Accept": "application/json;as=Table;v=v1;g=meta.k8s.io,application/json"},
    )
    assert table["kind"] == "Table" and table["columnDefinitions"][0]["name"] == "Name"
    assert [r["cells"][0] for r in table["rows"]] == ["a", "b", "c", "d"]
    assert table["metadata"]["resourceVersion"]
    partial = await http.ok(
        "GET",
        CMS,
        headers={"Accept": "application/json;as=PartialObjectMetadataList;v=v1;g=meta.k8s.io"},
    )
    assert partial["kind"] == "PartialObjectMetadataList"
    assert set(partial["items"][0]) == {"kind", "apiVersion", "metadata"}


async def test_continue_pages_are_consistent_at_the_first_pages_resource_version(
    http: Http,
) -> None:
    """Later pages are served at the first page's resourceVersion: objects created, modified or
    deleted meanwhile do not change what the remaining pages show.
    https://kubernetes.io/docs/reference/using-api/api-concepts/#retrieving-large-results-sets-in-chunks"""
    for i in range(4):
        await http.ok("POST", CMS, {"metadata": {"name": f"k{i}"}, "data": {"v": "old"}})
    first = await http.ok("GET", f"{CMS}?limit=2")
    await http.ok("DELETE", f"{CMS}/k2")
    await http.ok(
        "PATCH", f"{CMS}/k3", {"data": {"v": "new"}}, content_type="application/merge-patch+json"
    )
    await http.ok("POST", CMS, {"metadata": {"name": "k9"}})
    second = await http.ok("GET", f"{CMS}?limit=2&continue={first['metadata']['continue']}")
    assert [(i["metadata"]["name"], i["data"]["v"]) for i in second["items"]] == [
        ("k2", "old"),
        ("k3", "old"),
    ]
    assert "continue" not in second["metadata"]
    exact = await http.ok(
        "GET",
        f"{CMS}?resourceVersion={first['metadata']['resourceVersion']}&resourceVersionMatch=Exact",
    )
    assert [i["metadata"]["name"] for i in exact["items"]] == ["k0", "k1", "k2", "k3"]


async def test_watch_from_before_this_instance_started_is_410(http: Http, kubesim: KubeSim) -> None:
    """resourceVersions only grow; one from before kubesim started (a restarted kubesim) counts as
    compacted: 410, and the client relists.
    https://kubernetes.io/docs/reference/using-api/api-concepts/#410-gone-responses"""
    events = await http.watch_lines(
        f"{CMS}?watch=1&resourceVersion={kubesim.store.start_rv - 1}", 1
    )
    assert events[0]["type"] == "ERROR" and events[0]["object"]["code"] == 410
