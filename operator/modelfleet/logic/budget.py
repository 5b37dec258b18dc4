"""The unavailability budget between two plans (see BudgetLedger)."""

from __future__ import annotations

from collections import deque
from collections.abc import Callable
from dataclasses import dataclass

from modelfleet.logic.actions import Action, action_well
from modelfleet.logic.planning import FleetPlan


@dataclass
class BudgetLedger:
    """The unavailability budget between two plans, kept up to date one pod event at a time.

    A plan spends the budget it has and defers the other disruptive updates. Without the
    ledger, budget freed by a well that became available again waited for the next plan of
    the whole fleet (spaced by up to a second at 10,000 wells, every wave of a roll-out).
    The ledger holds the exact set of wells counted unavailable: each event re-evaluates its
    well, so the count cannot drift, and a deferred update starts only while the set is
    smaller than maxUnavailable. Being unavailable is judged as strictly as by the plan (a
    well is available only when its pod is ready, serves its own target and has no
    disruptive action in flight), so the ledger never allows more than a plan would.
    """

    max_unavailable: int
    unavailable: set[str]
    deferred: deque[Action]

    @classmethod
    def from_plan(cls, plan: FleetPlan) -> BudgetLedger:
        return cls(plan.max_unavailable, set(plan.unavailable_wells), deque(plan.deferred))

    def observe(self, well: str, available: bool) -> None:
        """A well's availability as just observed."""
        if available:
            self.unavailable.discard(well)
        else:
            self.unavailable.add(well)

    def spend(self, still_wanted: Callable[[Action], bool]) -> list[Action]:
        """Deferred updates to start now, in plan order, within the budget.

        `still_wanted` drops an update the fleet has moved past (its pod replaced, already
        updated, no longer available: the next plan decides about those).
        """
        started: list[Action] = []
        while self.deferred and len(self.unavailable) < self.max_unavailable:
            action = self.deferred.popleft()
            well = action_well(action)
            if well in self.unavailable or not still_wanted(action):
                continue
            self.unavailable.add(well)
            started.append(action)
        return started
