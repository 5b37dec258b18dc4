"""The fleet observer's polling: the pods are listed only when the status allows it to be done."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx

from modelfleet.logic.wellpod import LABEL_WELL
from modelfleet_dev.fleet_observer import FleetObserver, FleetSnapshot

KUBECONFIG = """apiVersion: v1
kind: Config
clusters: [{name: c, cluster: {server: "http://127.0.0.1:1"}}]
users: [{name: u, user: {}}]
contexts: [{name: x, context: {cluster: c, user: u}}]
current-context: x
"""


def ready_pod(well: str) -> dict[str, Any]:
    return {
        "metadata": {"name": f"f-{well}", "labels": {LABEL_WELL: well}, "annotations": {}},
        "status": {"conditions": [{"type": "Ready", "status": "True"}]},
    }


def test_pods_are_listed_only_in_polls_where_the_status_check_holds(tmp_path: Path) -> None:
    kubeconfig = tmp_path / "kubeconfig"
    kubeconfig.write_text(KUBECONFIG)
    observer = FleetObserver(kubeconfig, "ns", "f")
    gets = {"deployment": 0, "pods": 0}

    def answer(request: httpx.Request) -> httpx.Response:
        if request.url.path.endswith("/pods"):
            gets["pods"] += 1
            return httpx.Response(200, json={"items": [ready_pod("w1"), ready_pod("w2")]})
        gets["deployment"] += 1
        phase = "Available" if gets["deployment"] >= 5 else "Progressing"
        return httpx.Response(
            200,
            json={
                "metadata": {"generation": 1},
                "spec": {"wells": [{"id": "w1"}, {"id": "w2"}]},
                "status": {"observedGeneration": 1, "phase": phase},
            },
        )

    observer.http = httpx.Client(
        base_url="http://127.0.0.1:1", transport=httpx.MockTransport(answer)
    )

    def available(s: FleetSnapshot) -> bool:
        return bool(s.observed and s.get("phase") == "Available")

    final = observer.wait(
        "f available",
        lambda s: available(s) and s.ready_pods == 2,
        timeout=10,
        interval=0.001,
        status_check=available,
    )
    assert final.ready_pods == 2
    # Four polls saw Progressing and listed nothing; the fifth read the status, then the pods.
    assert gets == {"deployment": 5, "pods": 1}
