"""The kubelet's readiness rule for the real cluster's simulated pods, as a pure function.

Why this exists: kwok's Stages computed Ready in parallel workers from whatever copy of the pod
each had, without a resourceVersion, so a worker holding a copy from before the operator's gate
write could land Ready=False after another had written Ready=True: a well flipped unready with
its containers and gate True (5 in one 1,000-pod roll-out). The responder, which plays
the kubelet, computes the rule here and writes it one pod at a time, conditioned on the
resourceVersion it computed from (a stale write is refused, the newer pod's event recomputes).

The rule (the kubelet's status manager): ContainersReady is True when every container of the
spec has a status and each is ready; Ready is True when ContainersReady is and every
spec.readinessGates condition is True.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Final, TypedDict

__all__ = ["ConditionPatch", "changed_conditions", "kubelet_conditions", "readiness_patch"]

CONTAINERS_READY: Final = "ContainersReady"
READY: Final = "Ready"
CONTAINERS_NOT_READY: Final = "ContainersNotReady"
GATES_NOT_READY: Final = "ReadinessGatesNotReady"


class ConditionPatch(TypedDict):
    type: str
    status: str
    reason: str | None  # None removes a reason in a strategic merge patch
    lastTransitionTime: str


def _containers_ready(spec: Mapping[str, Any], statuses: Sequence[Mapping[str, Any]]) -> bool:
    ready = {cs.get("name") for cs in statuses if cs.get("ready") is True}
    names = [c.get("name") for c in spec.get("containers") or []]
    return bool(names) and ready.issuperset(names)


def kubelet_conditions(
    pod: Mapping[str, Any], now: str, statuses: Sequence[Mapping[str, Any]] | None = None
) -> list[ConditionPatch]:
    """ContainersReady and Ready as the kubelet computes them for `pod` (with `statuses` in
    place of its container statuses when given), each stamped `now`."""
    spec = pod.get("spec") or {}
    status = pod.get("status") or {}
    if statuses is None:
        statuses = status.get("containerStatuses") or []
    containers = _containers_ready(spec, statuses)
    true = {c.get("type") for c in status.get("conditions") or [] if c.get("status") == "True"}
    gates = all(g.get("conditionType") in true for g in spec.get("readinessGates") or [])
    ready_reason = (
        None if containers and gates else (GATES_NOT_READY if containers else CONTAINERS_NOT_READY)
    )
    return [
        ConditionPatch(
            type=CONTAINERS_READY,
            status="True" if containers else "False",
            reason=None if containers else CONTAINERS_NOT_READY,
            lastTransitionTime=now,
        ),
        ConditionPatch(
            type=READY,
            status="True" if containers and gates else "False",
            reason=ready_reason,
            lastTransitionTime=now,
        ),
    ]


def changed_conditions(
    pod: Mapping[str, Any], now: str, statuses: Sequence[Mapping[str, Any]] | None = None
) -> list[ConditionPatch]:
    """Those of `kubelet_conditions` whose status the pod does not show yet."""
    shown = {
        c.get("type"): c.get("status") for c in (pod.get("status") or {}).get("conditions") or []
    }
    return [
        c for c in kubelet_conditions(pod, now, statuses) if shown.get(c["type"]) != c["status"]
    ]


def readiness_patch(pod: Mapping[str, Any], now: str) -> dict[str, Any] | None:
    """The pods/status patch that makes a running pod's ContainersReady and Ready follow the
    rule, conditioned on the pod's UID and resourceVersion; None when they already do (or the
    pod is not running, or is being deleted: the kubelet leaves those alone here)."""
    meta = pod.get("metadata") or {}
    status = pod.get("status") or {}
    if meta.get("deletionTimestamp") or status.get("phase") != "Running":
        return None
    wanted = changed_conditions(pod, now)
    if not wanted:
        return None
    return {
        "metadata": {"uid": meta.get("uid"), "resourceVersion": meta.get("resourceVersion")},
        "status": {"conditions": wanted},
    }
