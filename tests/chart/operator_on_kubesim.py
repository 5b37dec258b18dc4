"""The chart tests' own API client and real bundles, for running the real operator on kubesim
(in a thread: modelfleet_dev.operator_thread).

Why this exists: two chart tests run the operator exactly as the chart's Deployment would (the
RBAC proof and the fleet-from-values test); they share these pieces. The test's client carries
its own User-Agent so recorded requests can be told apart from the operator's.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import httpx

from modelfleet_dev.api_poller import wait_for_status, wait_until

TEST_AGENT = "modelfleet-chart-test"
KubeObject = dict[str, Any]


def build_bundles(root: Path, wells: Iterable[str], versions: Iterable[str]) -> Path:
    """Real one-model bundles at <root>/<version>/<well> (about 0.3 s each)."""
    from bundle_builder.building import build_bundle

    for version in versions:
        for well in wells:
            build_bundle(well, root / version / well, models=1, version=version)
    return root


class TestClient:
    """The test's own requests to the API (never counted as the operator's)."""

    __test__ = False  # not a pytest test class

    def __init__(self, url: str) -> None:
        self.http = httpx.Client(base_url=url, timeout=30, headers={"User-Agent": TEST_AGENT})

    def create(self, path: str, body: KubeObject) -> KubeObject:
        answer = self.http.post(path, json=body)
        assert answer.status_code == 201, answer.text
        created: KubeObject = answer.json()
        return created

    def merge_patch(self, path: str, patch: dict[str, Any]) -> None:
        answer = self.http.patch(
            path,
            content=json.dumps(patch),
            headers={"Content-Type": "application/merge-patch+json"},
        )
        assert answer.status_code == 200, answer.text

    def wait_for(self, what: str, check: Callable[[], bool], timeout: float = 60) -> None:
        wait_until(what, check, timeout=timeout)

    def wait_status(
        self, path: str, what: str, check: Callable[[dict[str, Any]], bool], timeout: float = 60
    ) -> dict[str, Any]:
        return wait_for_status(self.http, path, what, check, timeout=timeout)
