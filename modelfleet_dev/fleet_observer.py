"""Reads a ModelDeployment's fleet back from the API: status, pods, and a well's own answer.

Why this exists: the demo's progress bars and the e2e assertions must show what the cluster
says, not what the script expects. This talks to the apiserver with the kubeconfig's
credentials (the operator's own `load_connection`, so it works on kubesim, kind or a real
cluster alike) and reduces pods to the facts a person watching a roll-out wants: how many
wells have a ready pod, on which version, and which digest each pod says it serves.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from modelfleet.api.spec import GROUP, PLURAL, VERSION
from modelfleet.io.kube import load_connection
from modelfleet.logic.wellpod import (
    ANNOTATION_VERSION,
    BUNDLE_CONDITION,
    LABEL_DEPLOYMENT,
    LABEL_WELL,
)
from modelfleet_dev.api_poller import poll


@dataclass(frozen=True)
class FleetSnapshot:
    """One look at the fleet: the operator's status and the pods as the API has them."""

    status: dict[str, Any]
    generation: int
    wells: int
    ready_pods: int
    pods_by_version: Counter[str] = field(default_factory=Counter)
    served_digests: dict[str, str] = field(default_factory=dict)

    @property
    def observed(self) -> bool:
        """The status was written for the current spec (not left over from the last one)."""
        return int(self.status.get("observedGeneration") or 0) >= self.generation

    @property
    def unavailable(self) -> int:
        """Wells of the spec without a ready pod (missing pods count)."""
        return self.wells - self.ready_pods

    def get(self, key: str, default: Any = None) -> Any:
        return self.status.get(key, default)

    def reasons(self) -> set[str]:
        return {u.get("reason", "") for u in self.status.get("unhealthyWells") or []}

    def condition(self, kind: str) -> dict[str, Any]:
        for cond in self.status.get("conditions") or []:
            if cond.get("type") == kind:
                return dict(cond)
        return {}


def served_digest(gate: dict[str, Any]) -> str | None:
    """The digest in a True bundle-current gate's message `serving <digest> from <uri>`."""
    if gate.get("status") != "True":
        return None
    words = str(gate.get("message", "")).split()
    return words[1] if len(words) >= 2 and words[0] == "serving" else None


class FleetObserver:
    """Polls one ModelDeployment and its pods through the API."""

    def __init__(self, kubeconfig: Path | str, namespace: str, name: str) -> None:
        connection = load_connection(str(kubeconfig))
        self.namespace = namespace
        self.name = name
        self.http = httpx.Client(
            base_url=connection.host,
            headers=dict(connection.headers),
            verify=connection.tls(),
            timeout=30,
        )

    def close(self) -> None:
        self.http.close()

    @property
    def resource_path(self) -> str:
        return f"/apis/{GROUP}/{VERSION}/namespaces/{self.namespace}/{PLURAL}/{self.name}"

    def deployment(self) -> dict[str, Any] | None:
        response = self.http.get(self.resource_path)
        if response.status_code == 404:
            return None
        response.raise_for_status()
        body: dict[str, Any] = response.json()
        return body

    def pods(self) -> list[dict[str, Any]]:
        response = self.http.get(
            f"/api/v1/namespaces/{self.namespace}/pods",
            params={"labelSelector": f"{LABEL_DEPLOYMENT}={self.name}"},
        )
        response.raise_for_status()
        items: list[dict[str, Any]] = response.json()["items"]
        return items

    def snapshot(self, with_pods: bool = True, body: dict[str, Any] | None = None) -> FleetSnapshot:
        """The status and, unless `with_pods` is False (then `ready_pods` is 0), the pods;
        `body`: the ModelDeployment as already read (else it is read now)."""
        body = (self.deployment() if body is None else body) or {}
        wells = {w["id"] for w in (body.get("spec") or {}).get("wells") or []}
        ready = 0
        versions: Counter[str] = Counter()
        digests: dict[str, str] = {}
        for pod in self.pods() if with_pods else ():
            well = pod["metadata"]["labels"].get(LABEL_WELL, "")
            if well not in wells or pod["metadata"].get("deletionTimestamp"):
                continue
            conditions = {c["type"]: c for c in (pod.get("status") or {}).get("conditions") or []}
            if conditions.get("Ready", {}).get("status") == "True":
                ready += 1
                versions[pod["metadata"]["annotations"].get(ANNOTATION_VERSION, "?")] += 1
            gate = conditions.get(BUNDLE_CONDITION, {})
            served = served_digest(gate)
            if served:
                digests[well] = served
        return FleetSnapshot(
            status=dict(body.get("status") or {}),
            generation=int((body.get("metadata") or {}).get("generation") or 0),
            wells=len(wells),
            ready_pods=ready,
            pods_by_version=versions,
            served_digests=digests,
        )

    def wait(
        self,
        what: str,
        check: Callable[[FleetSnapshot], bool],
        timeout: float,
        on_snapshot: Callable[[FleetSnapshot], None] | None = None,
        interval: float = 0.25,
        status_check: Callable[[FleetSnapshot], bool] | None = None,
    ) -> FleetSnapshot:
        """Poll until `check` holds; every snapshot goes to `on_snapshot` (the progress bar).

        With `status_check` (a condition on the status alone that `check` implies), the pods
        are listed only in polls where it holds: a list of 2,000 pods every 0.25 s is most of
        a real apiserver's CPU, and a test that loads its cluster so measures itself."""

        def sample() -> FleetSnapshot:
            if status_check is None:
                return self.snapshot()
            body = self.deployment() or {}
            status_only = self.snapshot(with_pods=False, body=body)
            return self.snapshot(body=body) if status_check(status_only) else status_only

        return poll(
            what,
            sample,
            check,
            timeout=timeout,
            interval=interval,
            on_sample=on_snapshot,
            describe=lambda last: (
                f"status phase={last.get('phase')} updated={last.get('updatedWells')} "
                f"available={last.get('availableWells')}/{last.wells} "
                f"unhealthy={last.get('unhealthyWells')}"
            ),
        )

    def well_infer(self, pod: str, port: int, body: dict[str, Any]) -> dict[str, Any]:
        """POST the well-level OIP endpoint of one pod, through the apiserver's pod proxy."""
        response = self.http.post(
            f"/api/v1/namespaces/{self.namespace}/pods/{pod}:{port}/proxy/v2/well/infer",
            json=body,
        )
        if response.status_code != 200:
            raise RuntimeError(
                f"well infer on pod {pod} answered {response.status_code}: {response.text[:500]}"
            )
        answer: dict[str, Any] = response.json()
        return answer
