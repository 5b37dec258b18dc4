"""The writes a plan or a reaction asks for: plain values, carried out by the executor."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from modelfleet.logic.revisions import WellTarget


class DeleteReason(StrEnum):
    """Why a pod is deleted: its well left the spec, or its template changed."""

    WELL_REMOVED = "WellRemoved"
    RECREATE = "Recreate"


@dataclass(frozen=True)
class CreatePod:
    target: WellTarget


@dataclass(frozen=True)
class DeletePod:
    name: str
    uid: str
    well: str
    why: DeleteReason


@dataclass(frozen=True)
class RetargetPod:
    """Patch a live pod's labels/annotations to a target with the same pod template.

    `swaps_bundle` is False when the bundle stays the same (a pinned well, say): then the patch
    only relabels the revision and the pod stays available.
    """

    name: str
    target: WellTarget
    swaps_bundle: bool


@dataclass(frozen=True)
class ConfirmBundle:
    """Ask the pod's runtime to load/report its annotated bundle and record the answer."""

    name: str
    well: str
    uri: str
    digest: str | None


Action = CreatePod | DeletePod | RetargetPod | ConfirmBundle


def action_well(action: Action) -> str:
    """The well an action is for."""
    if isinstance(action, CreatePod | RetargetPod):
        return action.target.well
    return action.well
