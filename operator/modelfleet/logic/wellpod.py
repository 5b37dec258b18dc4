"""The well pod: what the operator creates for a well, and what it reads back from one.

`desired_pod` renders a WellTarget into a pod manifest; `observe_pod` reduces a pod body to the
few facts the planner needs (a small frozen `WellPod`, cheap to keep for 10,000 wells in a kopf
index). Both are pure.

The pod tells which bundle it serves through the readiness gate condition
`modelfleet.dev/bundle-current`: the operator sets it True only once the runtime has reported the
digest of the bundle the pod's annotations ask for, and records that digest and URI in the
condition's message, so the served bundle is visible in the API (and survives operator restarts).
The annotation and condition names and the message format are the runtime contract's.

With `bundleConfirmation: ReadinessProbe` the pod has no readiness gate: its runtime passes the
readiness probe only while it serves the URI and digest its annotations name, so ContainersReady
confirms the bundle and the operator writes nothing. That holds only for the bundle the pod was
created with (a probe result does not say which annotations it checked), so the pod carries
`modelfleet.dev/confirmed-by: ReadinessProbe` from its create until a swap in place removes it;
from then on, and for a well without an expected digest, the runtime is read as with the gate and
the answer recorded in the same condition, which is then not a readiness gate.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from modelfleet.api.spec import GROUP, KIND, VERSION, BundleConfirmation, RuntimeSpec
from modelfleet.logic.revisions import WellTarget
from runtime_contract import BUNDLE_CONDITION as BUNDLE_CONDITION
from runtime_contract import (
    BUNDLE_DIGEST_ANNOTATION,
    BUNDLE_URI_ANNOTATION,
    READY_REQUIRES_ANNOTATED_BUNDLE_FLAG,
    GateReason,
    parse_gate_message,
)
from runtime_contract import refused_message as refused_message
from runtime_contract import served_message as served_message

LABEL_DEPLOYMENT = "modelfleet.dev/deployment"
LABEL_WELL = "modelfleet.dev/well"
LABEL_REVISION = "modelfleet.dev/revision"
ANNOTATION_VERSION = "modelfleet.dev/version"
ANNOTATION_TEMPLATE_HASH = "modelfleet.dev/template-hash"
#: Present (value ReadinessProbe) while the pod's readiness probe confirms its annotated bundle.
ANNOTATION_CONFIRMED_BY = "modelfleet.dev/confirmed-by"
PODINFO_DIR = "/etc/modelfleet/podinfo"
CONTAINER_NAME = "runtime"


def pod_name(deployment: str, well: str) -> str:
    return f"{deployment}-{well}"


def desired_pod(
    *, deployment: str, deployment_uid: str, target: WellTarget, runtime: RuntimeSpec
) -> dict[str, Any]:
    """The pod manifest for one well. Hardened, probed, bundle named by annotations."""
    annotations = {
        BUNDLE_URI_ANNOTATION: target.bundle_uri,
        ANNOTATION_VERSION: target.version,
        ANNOTATION_TEMPLATE_HASH: target.template_hash,
    }
    if target.bundle_digest:
        annotations[BUNDLE_DIGEST_ANNOTATION] = target.bundle_digest
    by_probe = runtime.bundle_confirmation is BundleConfirmation.READINESS_PROBE
    if by_probe and target.bundle_digest:
        annotations[ANNOTATION_CONFIRMED_BY] = BundleConfirmation.READINESS_PROBE.value
    port = runtime.port
    container: dict[str, Any] = {
        "name": CONTAINER_NAME,
        "image": runtime.image,
        "command": ["model-runtime"],
        "args": [
            "serve",
            "--host",
            "$(POD_IP)",
            "--port",
            str(port),
            "--annotations-file",
            f"{PODINFO_DIR}/annotations",
            *([READY_REQUIRES_ANNOTATED_BUNDLE_FLAG] if by_probe else []),
        ],
        "env": [
            {"name": "POD_IP", "valueFrom": {"fieldRef": {"fieldPath": "status.podIP"}}},
            {"name": "MODELFLEET_WELL", "value": target.well},
            *[e.model_dump(by_alias=True) for e in runtime.env or []],
        ],
        **(
            {"envFrom": [{"secretRef": {"name": runtime.credentials_secret}}]}
            if runtime.credentials_secret
            else {}
        ),
        "ports": [{"name": "http", "containerPort": port, "protocol": "TCP"}],
        "readinessProbe": {
            "httpGet": {"path": "/v2/health/ready", "port": port},
            "periodSeconds": 2,
            "failureThreshold": 2,
        },
        # Loading a 100-model bundle takes a moment: liveness only counts once started.
        "startupProbe": {
            "httpGet": {"path": "/v2/health/live", "port": port},
            "periodSeconds": 1,
            "failureThreshold": 60,
        },
        "livenessProbe": {
            "httpGet": {"path": "/v2/health/live", "port": port},
            "periodSeconds": 10,
            "failureThreshold": 3,
        },
        "resources": runtime.resources.model_dump(by_alias=True, exclude_none=True, mode="json"),
        "securityContext": {
            "runAsNonRoot": True,
            "runAsUser": 10001,
            "readOnlyRootFilesystem": True,
            "allowPrivilegeEscalation": False,
            "capabilities": {"drop": ["ALL"]},
            "seccompProfile": {"type": "RuntimeDefault"},
        },
        "volumeMounts": [
            {"name": "podinfo", "mountPath": PODINFO_DIR, "readOnly": True},
            {"name": "bundles", "mountPath": "/var/lib/modelfleet"},
            {"name": "tmp", "mountPath": "/tmp"},
        ],
    }
    spec: dict[str, Any] = {
        "hostname": target.well,
        "subdomain": deployment,
        "automountServiceAccountToken": False,
        "enableServiceLinks": False,
        "terminationGracePeriodSeconds": 15,
        **({} if by_probe else {"readinessGates": [{"conditionType": BUNDLE_CONDITION}]}),
        "securityContext": {
            "runAsNonRoot": True,
            "runAsUser": 10001,
            "fsGroup": 10001,
            "seccompProfile": {"type": "RuntimeDefault"},
        },
        "containers": [container],
        "volumes": [
            {
                "name": "podinfo",
                "downwardAPI": {
                    "items": [
                        {"path": "annotations", "fieldRef": {"fieldPath": "metadata.annotations"}}
                    ]
                },
            },
            {"name": "bundles", "emptyDir": {"sizeLimit": "1Gi"}},
            {"name": "tmp", "emptyDir": {"sizeLimit": "64Mi"}},
        ],
    }
    if runtime.node_selector:
        spec["nodeSelector"] = dict(runtime.node_selector)
    if runtime.tolerations:
        spec["tolerations"] = [
            t.model_dump(by_alias=True, exclude_none=True) for t in runtime.tolerations
        ]
    if runtime.image_pull_secrets:
        spec["imagePullSecrets"] = [s.model_dump(by_alias=True) for s in runtime.image_pull_secrets]
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {
            "name": pod_name(deployment, target.well),
            "labels": {
                LABEL_DEPLOYMENT: deployment,
                LABEL_WELL: target.well,
                LABEL_REVISION: target.revision,
                "app.kubernetes.io/name": "model-runtime",
                "app.kubernetes.io/managed-by": "modelfleet",
            },
            "annotations": annotations,
            "ownerReferences": [owner_reference(deployment, deployment_uid)],
        },
        "spec": spec,
    }


def owner_reference(deployment: str, uid: str) -> dict[str, Any]:
    return {
        "apiVersion": f"{GROUP}/{VERSION}",
        "kind": KIND,
        "name": deployment,
        "uid": uid,
        "controller": True,
        "blockOwnerDeletion": True,
    }


def target_metadata_patch(target: WellTarget, *, swaps_bundle: bool) -> dict[str, Any]:
    """Merge patch moving a live pod to a target with the same pod template (in-place).

    A swap ends the readiness probe's confirmation: the kubelet's Ready may still be the probe
    of the previous bundle."""
    annotations: dict[str, str | None] = {
        BUNDLE_URI_ANNOTATION: target.bundle_uri,
        BUNDLE_DIGEST_ANNOTATION: target.bundle_digest,  # None deletes it
        ANNOTATION_VERSION: target.version,
    }
    if swaps_bundle:
        annotations[ANNOTATION_CONFIRMED_BY] = None
    return {"metadata": {"labels": {LABEL_REVISION: target.revision}, "annotations": annotations}}


def headless_service(deployment: str, deployment_uid: str, port: int) -> dict[str, Any]:
    """One headless Service: <well>.<deployment>.<namespace>.svc resolves each well's pod."""
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {
            "name": deployment,
            "labels": {LABEL_DEPLOYMENT: deployment, "app.kubernetes.io/managed-by": "modelfleet"},
            "ownerReferences": [owner_reference(deployment, deployment_uid)],
        },
        "spec": {
            "clusterIP": "None",
            "selector": {LABEL_DEPLOYMENT: deployment},
            "ports": [{"name": "http", "port": port, "targetPort": port, "protocol": "TCP"}],
            "publishNotReadyAddresses": False,
        },
    }


# ------------------------------------------------------------------------------- observation


@dataclass(frozen=True)
class BundleReport:
    """What the bundle-current condition records."""

    status: str  # "True" | "False" | "Unknown"
    reason: str
    message: str
    probed_at: float | None
    digest: str | None
    uri: str | None


@dataclass(frozen=True)
class WellPod:
    """The planner's view of one pod."""

    name: str
    uid: str
    well: str
    revision: str
    template_hash: str
    bundle_uri: str
    bundle_digest: str | None
    version: str
    deleting: bool
    phase: str
    pod_ip: str | None
    ready: bool
    ready_since: float | None
    containers_ready: bool  # the kubelet says the runtime passes its readiness probe
    started_at: float | None  # when the runtime container (or else the pod) started
    bundle: BundleReport | None
    problem: tuple[str, str] | None  # (reason, message) from the kubelet's view

    def serves(self, uri: str, digest: str | None) -> bool:
        """The runtime confirmed it serves this bundle (and this digest, if one is expected)."""
        b = self.bundle
        if b is None or b.status != "True" or b.uri != uri:
            return False
        return digest is None or b.digest == digest

    @property
    def serves_own_target(self) -> bool:
        return self.serves(self.bundle_uri, self.bundle_digest)


def parse_time(value: str | None) -> float | None:
    if not value:
        return None
    return datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp()


def observe_pod(body: Mapping[str, Any]) -> WellPod | None:
    """Reduce a pod body to a WellPod; None if it is not a well pod."""
    meta = body.get("metadata") or {}
    labels = meta.get("labels") or {}
    well = labels.get(LABEL_WELL)
    if not well:
        return None
    annotations = meta.get("annotations") or {}
    status = body.get("status") or {}
    conditions = {c.get("type"): c for c in status.get("conditions") or []}
    ready_cond = conditions.get("Ready") or {}
    ready = ready_cond.get("status") == "True"
    bundle: BundleReport | None = None
    gate = conditions.get(BUNDLE_CONDITION)
    containers_ready = _containers_ready(status, conditions)
    uri = annotations.get(BUNDLE_URI_ANNOTATION, "")
    digest = annotations.get(BUNDLE_DIGEST_ANNOTATION)
    if containers_ready and digest and _confirmed_by_probe(body, annotations):
        since = (conditions.get("ContainersReady") or {}).get("lastTransitionTime")
        bundle = BundleReport(
            status="True",
            reason=GateReason.BUNDLE_SERVED.value,
            message=served_message(digest, uri),
            probed_at=parse_time(since),
            digest=digest,
            uri=uri,
        )
    elif gate:
        message = gate.get("message") or ""
        gate_status = gate.get("status", "Unknown")
        named = parse_gate_message(gate_status, message)
        bundle = BundleReport(
            status=gate_status,
            reason=gate.get("reason") or "",
            message=message,
            probed_at=parse_time(gate.get("lastProbeTime")),
            digest=named.digest,
            uri=named.uri,
        )
    return WellPod(
        name=meta.get("name", ""),
        uid=meta.get("uid", ""),
        well=well,
        revision=labels.get(LABEL_REVISION, ""),
        template_hash=annotations.get(ANNOTATION_TEMPLATE_HASH, ""),
        bundle_uri=uri,
        bundle_digest=digest,
        version=annotations.get(ANNOTATION_VERSION, ""),
        deleting=bool(meta.get("deletionTimestamp")),
        phase=status.get("phase") or "Pending",
        pod_ip=status.get("podIP"),
        ready=ready,
        ready_since=parse_time(ready_cond.get("lastTransitionTime")) if ready else None,
        containers_ready=containers_ready,
        started_at=_started_at(status),
        bundle=bundle,
        problem=_kubelet_problem(status),
    )


def _confirmed_by_probe(body: Mapping[str, Any], annotations: Mapping[str, str]) -> bool:
    """The pod's readiness probe vouches for its annotations: created so, never swapped, and
    no readiness gate (which would mean a runtime not told to check them)."""
    if annotations.get(ANNOTATION_CONFIRMED_BY) != BundleConfirmation.READINESS_PROBE.value:
        return False
    gates = (body.get("spec") or {}).get("readinessGates") or []
    return not any(g.get("conditionType") == BUNDLE_CONDITION for g in gates)


def _containers_ready(status: Mapping[str, Any], conditions: Mapping[Any, Any]) -> bool:
    """ContainersReady, or every container's own status ready: a kubelet writes the statuses
    first and may recompute the condition in a later write."""
    if (conditions.get("ContainersReady") or {}).get("status") == "True":
        return True
    statuses = status.get("containerStatuses") or []
    return bool(statuses) and all(cs.get("ready") is True for cs in statuses)


def _started_at(status: Mapping[str, Any]) -> float | None:
    for cs in status.get("containerStatuses") or []:
        if cs.get("name") == CONTAINER_NAME:
            running = (cs.get("state") or {}).get("running") or {}
            if running.get("startedAt"):
                return parse_time(running["startedAt"])
    return parse_time(status.get("startTime"))


def _kubelet_problem(status: Mapping[str, Any]) -> tuple[str, str] | None:
    for cs in status.get("containerStatuses") or []:
        waiting = (cs.get("state") or {}).get("waiting")
        if waiting and waiting.get("reason") not in (None, "ContainerCreating"):
            return waiting["reason"], waiting.get("message") or ""
    if status.get("phase") == "Failed":
        return "Failed", status.get("message") or status.get("reason") or ""
    return None
