"""Test harness: kubesim in a thread, the real operator in another, and a watch-fed view.

Everything the tests assert goes through the API (httpx against the kubeconfig's server), so
what they see is what kubectl would see.
"""

from __future__ import annotations

import asyncio
import json
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import yaml

from modelfleet.app.operator_main import OperatorOptions, run_operator

ROOT = Path(__file__).resolve().parents[2]
CRD = ROOT / "crds" / "modeldeployment.yaml"
MD_PATH = "/apis/modelfleet.dev/v1alpha1/namespaces/default/modeldeployments"


class Api:
    def __init__(self, url: str) -> None:
        self.http = httpx.Client(base_url=url, timeout=30)

    def create(self, path: str, body: dict[str, Any]) -> httpx.Response:
        return self.http.post(path, json=body)

    def get(self, path: str, **params: str) -> Any:
        r = self.http.get(path, params=params)
        r.raise_for_status()
        return r.json()

    def merge_patch(self, path: str, patch: dict[str, Any]) -> Any:
        """A merge patch, retried on 409 and 5xx as any client must (fault tests inject them)."""
        for _ in range(20):
            r = self.http.patch(
                path,
                content=json.dumps(patch),
                headers={"Content-Type": "application/merge-patch+json"},
            )
            if r.status_code not in (409, 429, 500, 503):
                break
        r.raise_for_status()
        return r.json()

    def delete(self, path: str) -> httpx.Response:
        return self.http.delete(path)

    def pods(self, selector: str = "modelfleet.dev/deployment") -> list[dict[str, Any]]:
        items: list[dict[str, Any]] = self.get(
            "/api/v1/namespaces/default/pods", labelSelector=selector
        )["items"]
        return items

    def deployment(self, name: str) -> dict[str, Any]:
        result: dict[str, Any] = self.get(f"{MD_PATH}/{name}")
        return result

    def install_crd(self) -> None:
        r = self.create(
            "/apis/apiextensions.k8s.io/v1/customresourcedefinitions",
            yaml.safe_load(CRD.read_text()),
        )
        assert r.status_code in (201, 409), r.text

    def wait_for(
        self, what: str, check: Callable[[], Any], timeout: float = 30.0, interval: float = 0.05
    ) -> Any:
        deadline = time.monotonic() + timeout
        last: Any = None
        while time.monotonic() < deadline:
            last = check()
            if last:
                return last
            time.sleep(interval)
        raise AssertionError(f"timed out after {timeout}s waiting for {what}; last: {last!r}")

    def wait_status(
        self,
        name: str,
        check: Callable[[dict[str, Any]], bool],
        timeout: float = 30.0,
        interval: float = 0.05,
    ) -> dict[str, Any]:
        seen: list[dict[str, Any]] = [{}]

        def probe() -> dict[str, Any] | None:
            status = self.deployment(name).get("status") or {}
            seen[0] = status
            return status if check(status) else None

        try:
            result: dict[str, Any] = self.wait_for(f"status of {name}", probe, timeout, interval)
        except AssertionError as exc:
            raise AssertionError(f"{exc}; last status: {json.dumps(seen[0], indent=1)}") from None
        return result


class OperatorThread:
    """The real operator (kopf + reconciler) on its own loop; restartable."""

    def __init__(self, kubeconfig: Path, **options: Any) -> None:
        self.kubeconfig = kubeconfig
        self.options = options
        self._thread: threading.Thread | None = None
        self._stop = threading.Event()
        self.errors: list[BaseException] = []

    def start(self) -> None:
        self._stop = threading.Event()
        ready = threading.Event()

        def run() -> None:
            try:
                asyncio.run(
                    run_operator(
                        OperatorOptions(
                            kubeconfig=str(self.kubeconfig),
                            namespaces=["default"],
                            liveness=None,
                            standalone=True,
                            **self.options,
                        ),
                        stop_flag=self._stop,
                        ready_flag=ready,
                    )
                )
            except BaseException as exc:  # surfaced by the tests
                self.errors.append(exc)
                ready.set()

        self._thread = threading.Thread(target=run, name="operator", daemon=True)
        self._thread.start()
        assert ready.wait(30), "operator did not become ready"
        assert not self.errors, self.errors

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(30)
            assert not self._thread.is_alive(), "operator did not stop"


class PodWatch:
    """Follows pods through a watch and samples, at every event, wells without a ready pod."""

    def __init__(self, url: str, wells: set[str]) -> None:
        self.url = url
        self.wells = wells
        self.ready: dict[str, bool] = {}
        self.max_unavailable = 0
        self.samples = 0
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._armed = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._http = httpx.Client(base_url=url, timeout=None)

    def __enter__(self) -> PodWatch:
        self._thread.start()
        assert self._armed.wait(10)
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(10)

    def _unavailable(self) -> int:
        return sum(not self.ready.get(w, False) for w in self.wells)

    def _run(self) -> None:
        # Short watch windows resumed from the last resourceVersion, so stopping is prompt.
        with self._http as http:
            listing = http.get(
                "/api/v1/namespaces/default/pods",
                params={"labelSelector": "modelfleet.dev/deployment"},
            ).json()
            for pod in listing["items"]:
                self._apply("ADDED", pod, sample=False)
            rv = listing["metadata"]["resourceVersion"]
            self._armed.set()
            while not self._stop.is_set():
                params = {
                    "watch": "1",
                    "resourceVersion": rv,
                    "labelSelector": "modelfleet.dev/deployment",
                    "timeoutSeconds": "1",
                }
                with http.stream("GET", "/api/v1/namespaces/default/pods", params=params) as stream:
                    for line in stream.iter_lines():
                        if line:
                            event = json.loads(line)
                            assert event["type"] != "ERROR", event
                            rv = event["object"]["metadata"]["resourceVersion"]
                            self._apply(event["type"], event["object"])

    def _apply(self, event_type: str, pod: dict[str, Any], sample: bool = True) -> None:
        well = pod["metadata"]["labels"].get("modelfleet.dev/well")
        if well is None:
            return
        conditions = {
            c["type"]: c["status"] for c in (pod.get("status") or {}).get("conditions") or []
        }
        ready = (
            event_type != "DELETED"
            and conditions.get("Ready") == "True"
            and not pod["metadata"].get("deletionTimestamp")
        )
        with self._lock:
            self.ready[well] = ready
            if not sample:
                return
            self.samples += 1
            self.max_unavailable = max(self.max_unavailable, self._unavailable())


def model_deployment(
    name: str, wells: list[str], version: str, bundles: Path, **rollout: Any
) -> dict[str, Any]:
    return {
        "apiVersion": "modelfleet.dev/v1alpha1",
        "kind": "ModelDeployment",
        "metadata": {"name": name, "namespace": "default"},
        "spec": {
            "model": {
                "name": "esp-failure",
                "version": version,
                "bundleUri": f"file://{bundles}/{{version}}/{{well}}",
            },
            "wells": [{"id": w} for w in wells],
            "rollout": rollout,
        },
    }


@contextmanager
def running_operator(kubeconfig: Path, **options: Any) -> Iterator[OperatorThread]:
    op = OperatorThread(kubeconfig, **options)
    op.start()
    try:
        yield op
    finally:
        op.stop()
