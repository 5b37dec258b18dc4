"""Reactions between plans: what one well's pod event starts at once.

A plan of the whole fleet is spaced by up to a second at 10,000 wells; waiting for it made each
wave of a recreate roll-out wait for four plans in a row (1.56 x the ideal time). So, between
plans, each pod event re-evaluates its own well against the targets of the last plan:

- budget-free writes start at once (the well's missing pod is created, its started runtime's
  bundle confirmed: planning.budget_free_action, the planner's own choice);
- budget freed by a well that became available is spent on the updates the plan deferred
  (budget.BudgetLedger), never beyond maxUnavailable.

Pure: the view is plain data, the only state changed is the ledger it carries.
"""

from __future__ import annotations

from collections.abc import Container, Mapping
from dataclasses import dataclass

from modelfleet.logic.actions import Action, CreatePod, DeletePod, RetargetPod, action_well
from modelfleet.logic.availability import counts_unavailable
from modelfleet.logic.budget import BudgetLedger
from modelfleet.logic.planning import budget_free_action, on_target
from modelfleet.logic.revisions import WellTarget
from modelfleet.logic.wellpod import WellPod


@dataclass(frozen=True)
class ReactionView:
    """What a reaction reads of one fleet: the last plan's targets and the wells as now seen."""

    targets: Mapping[str, WellTarget]
    pods: Mapping[str, WellPod]
    in_flight: Mapping[str, Action]  # writes started and not finished, by well
    held: Container[str]  # wells whose last write failed or was inconclusive: not retried yet
    recreating: Container[str]  # wells whose pod this operator deleted to recreate it
    min_ready_seconds: int
    ledger: BudgetLedger | None  # None: the last plan deferred nothing


def react(view: ReactionView, well: str, now: float) -> list[Action]:
    """The writes to start now because `well`'s pod changed (or its write finished)."""
    pod = view.pods.get(well)
    flight = view.in_flight.get(well)
    if view.ledger is not None:
        view.ledger.observe(well, not counts_unavailable(pod, flight, now, view.min_ready_seconds))
    started: list[Action] = []
    target = view.targets.get(well)
    if target is not None and flight is None and well not in view.held:
        action = budget_free_action(pod, target, now)
        # Only a pod this operator deleted to recreate it is replaced at once: one that
        # vanished otherwise (the fleet deleted and its pods collected, whose events can
        # arrive before the fleet's own) waits for the next plan.
        if isinstance(action, CreatePod) and well not in view.recreating:
            action = None
        if action is not None:
            started.append(action)
    if view.ledger is not None:
        started.extend(view.ledger.spend(lambda deferred: still_wanted(view, deferred, now)))
    return started


def still_wanted(view: ReactionView, action: Action, now: float) -> bool:
    """A deferred update still applies to the pod the plan saw, and that pod is available
    (an unavailable one costs no budget: the next plan takes it)."""
    well = action_well(action)
    pod = view.pods.get(well)
    if pod is None or well in view.held:
        return False
    if counts_unavailable(pod, view.in_flight.get(well), now, view.min_ready_seconds):
        return False
    if well in view.in_flight:
        return False
    if isinstance(action, DeletePod):
        return pod.uid == action.uid
    if isinstance(action, RetargetPod):
        return pod.name == action.name and not on_target(pod, action.target)
    return False
