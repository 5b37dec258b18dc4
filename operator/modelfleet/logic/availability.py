"""When a well counts as unavailable: the one rule the plan, the budget ledger and the
reactions share, so the unavailability budget means the same thing to all three."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping

from modelfleet.logic.actions import Action, DeletePod, RetargetPod
from modelfleet.logic.wellpod import WellPod


def is_available(pod: WellPod | None, now: float, min_ready_seconds: int) -> bool:
    """Ready, serving its own target bundle, for at least minReadySeconds."""
    if pod is None or pod.deleting or not pod.ready or not pod.serves_own_target:
        return False
    since = max(pod.ready_since or now, (pod.bundle.probed_at if pod.bundle else None) or 0.0)
    return now - since >= min_ready_seconds


def disrupts(action: Action) -> bool:
    """Whether the action makes its well unavailable until it is confirmed again."""
    if isinstance(action, DeletePod):
        return True
    return isinstance(action, RetargetPod) and action.swaps_bundle


def counts_unavailable(
    pod: WellPod | None, in_flight: Action | None, now: float, min_ready_seconds: int
) -> bool:
    """The well costs budget: no available pod, or a delete or swap of it is under way (the
    cache still shows the pod as it was until the write's answer or watch event arrives)."""
    if in_flight is not None and disrupts(in_flight):
        return True
    return not is_available(pod, now, min_ready_seconds)


def as_seen(pods: Mapping[str, WellPod], in_flight: Mapping[str, Action]) -> dict[str, WellPod]:
    """The pods with every one being deleted or swapped right now shown not ready."""
    seen = dict(pods)
    for well, action in in_flight.items():
        pod = seen.get(well)
        if pod is not None and disrupts(action):
            seen[well] = dataclasses.replace(pod, ready=False)
    return seen
