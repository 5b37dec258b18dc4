"""The operator tests' own API client and fleet manifests (kubesim and the operator run in
threads: kubesim's harness and modelfleet_dev.operator_thread).

Everything the tests assert goes through the API (httpx against the kubeconfig's server), so
what they see is what kubectl would see.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import yaml

from modelfleet.api.spec import RolloutPolicy
from modelfleet_dev import fleet_manifest
from modelfleet_dev.api_poller import wait_for_status, wait_until
from modelfleet_dev.fleet_manifest import ModelDeploymentManifest, file_bundle_uri

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
        return wait_until(what, check, timeout=timeout, interval=interval)

    def wait_status(
        self,
        name: str,
        check: Callable[[dict[str, Any]], bool],
        timeout: float = 30.0,
        interval: float = 0.05,
    ) -> dict[str, Any]:
        return wait_for_status(
            self.http,
            f"{MD_PATH}/{name}",
            f"status of {name}",
            check,
            timeout=timeout,
            interval=interval,
        )


def model_deployment(
    name: str, wells: list[str] | None, version: str, bundles: Path, **rollout: Any
) -> ModelDeploymentManifest:
    """A fleet of these tests: bundles at <bundles>/<version>/<well>, `rollout` in camelCase."""
    return fleet_manifest.model_deployment(
        name,
        wells=wells,
        version=version,
        bundle_uri=file_bundle_uri(bundles),
        rollout=RolloutPolicy.model_validate(rollout) if rollout else None,
    )
