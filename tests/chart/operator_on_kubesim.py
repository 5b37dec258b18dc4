"""The real operator on kubesim for the chart tests: a thread to run it in, the test's own API
client, and real bundles.

Why this exists: two chart tests run the operator exactly as the chart's Deployment would (the
RBAC proof and the fleet-from-values test); they share these pieces. The test's client carries
its own User-Agent so recorded requests can be told apart from the operator's.
"""

from __future__ import annotations

import asyncio
import json
import threading
import time
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import httpx

from modelfleet.app.operator_main import OperatorOptions, run_operator

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
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if check():
                return
            time.sleep(0.05)
        raise AssertionError(f"timed out after {timeout}s waiting for {what}")

    def wait_status(
        self, path: str, what: str, check: Callable[[dict[str, Any]], bool], timeout: float = 60
    ) -> dict[str, Any]:
        seen: list[dict[str, Any]] = [{}]

        def probe() -> bool:
            seen[0] = self.http.get(path).json().get("status") or {}
            return check(seen[0])

        try:
            self.wait_for(what, probe, timeout)
        except AssertionError as exc:
            raise AssertionError(f"{exc}; last status: {json.dumps(seen[0])}") from None
        return seen[0]


class OperatorInThread:
    """The real operator (kopf + reconciler) on its own loop, stopped on exit."""

    def __init__(self, options: OperatorOptions) -> None:
        self.options = options
        self.stop_flag = threading.Event()
        self.ready = threading.Event()
        self.errors: list[BaseException] = []
        self.thread = threading.Thread(target=self._run, name="operator", daemon=True)

    def _run(self) -> None:
        try:
            asyncio.run(run_operator(self.options, stop_flag=self.stop_flag, ready_flag=self.ready))
        except BaseException as exc:  # surfaced by __enter__/__exit__
            self.errors.append(exc)
            self.ready.set()

    def __enter__(self) -> OperatorInThread:
        self.thread.start()
        assert self.ready.wait(30), "operator did not start"
        assert not self.errors, self.errors
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop_flag.set()
        self.thread.join(30)
        assert not self.thread.is_alive(), "operator did not stop"
        assert not self.errors, self.errors
