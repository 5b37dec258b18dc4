"""Reactions between plans: a well's pod event starts its budget-free write at once and spends
freed budget on the plan's deferred updates, and never starts a disruptive update while the
fleet is at its unavailability budget, whatever the order of events, crashes and recoveries.

Driven with the pure FleetModel (tests/operator/fleet_model.py) standing in for the cluster:
every write a reaction starts is carried out at once, every change is observed, as the worker
does per pod event.
"""

from __future__ import annotations

import dataclasses
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from modelfleet.api.spec import ModelDeploymentSpec
from modelfleet.logic.actions import (
    Action,
    ConfirmBundle,
    CreatePod,
    DeletePod,
    DeleteReason,
    action_well,
)
from modelfleet.logic.availability import counts_unavailable, disrupts
from modelfleet.logic.budget import BudgetLedger
from modelfleet.logic.planning import FleetPlan
from modelfleet.logic.reactions import ReactionView, react

from .fleet_model import FleetModel
from .test_planning import make_spec


def rolled_out_fleet(wells: int, max_unavailable: int, *, recreate: bool) -> FleetModel:
    """A fleet converged on 1.0.0 whose spec now asks for a new version (in place) or image."""
    fleet = FleetModel(make_spec(wells, maxUnavailable=max_unavailable))
    fleet.converge()
    data: dict[str, Any] = fleet.spec.model_dump(by_alias=True, exclude_none=True)
    if recreate:
        data["runtime"] = {**data.get("runtime", {}), "image": "registry.local/runtime:2"}
    else:
        data["model"]["version"] = "2.0.0"
    fleet.spec = ModelDeploymentSpec.model_validate(data)
    return fleet


class Reactor:
    """The worker's bookkeeping around `react`, with writes carried out at once."""

    def __init__(self, fleet: FleetModel, plan: FleetPlan) -> None:
        self.fleet = fleet
        self.plan = plan
        self.ledger = BudgetLedger.from_plan(plan)
        self.recreating: set[str] = set()
        self.budget = plan.max_unavailable
        self.started_disruptive: list[str] = []

    def start(self, actions: list[Action]) -> None:
        for action in actions:
            if disrupts(action):
                assert self.fleet.unavailable() < self.budget or self._already_down(action), (
                    f"started {action} with {self.fleet.unavailable()} wells unavailable "
                    f"(budget {self.budget})"
                )
                self.started_disruptive.append(action_well(action))
            if isinstance(action, DeletePod) and action.why is DeleteReason.RECREATE:
                self.recreating.add(action.well)
            if isinstance(action, CreatePod):
                self.recreating.discard(action.target.well)
            self.fleet.apply([action])
            # The write's outcome is an event for its well, as in the worker.
            self.observe(action_well(action))

    def _already_down(self, action: Action) -> bool:
        pod = self.fleet.pods.get(action_well(action))
        mr = self.fleet.spec.rollout.min_ready_seconds
        return counts_unavailable(pod, None, self.fleet.now, mr)

    def observe(self, well: str) -> None:
        view = ReactionView(
            targets=self.plan.targets,
            pods=self.fleet.pods,
            in_flight={},
            held=(),
            recreating=self.recreating,
            min_ready_seconds=self.fleet.spec.rollout.min_ready_seconds,
            ledger=self.ledger,
        )
        self.start(react(view, well, self.fleet.now))


def test_a_recreated_wells_pod_is_created_and_confirmed_without_a_new_plan() -> None:
    fleet = rolled_out_fleet(4, 1, recreate=True)
    plan = fleet.plan()
    reactor = Reactor(fleet, plan)
    reactor.start([a for a in plan.actions])
    (deleted,) = [action_well(a) for a in plan.actions if isinstance(a, DeletePod)]
    fleet.tick()  # the kubelet removes the deleted pod
    reactor.observe(deleted)
    assert fleet.pods[deleted].template_hash == plan.targets[deleted].template_hash
    fleet.tick()  # the new pod's runtime starts
    reactor.observe(deleted)
    assert fleet.pods[deleted].ready, "its bundle was confirmed by the reaction"


def test_a_pod_that_vanished_by_itself_waits_for_the_next_plan() -> None:
    fleet = rolled_out_fleet(3, 1, recreate=True)
    plan = fleet.plan()
    reactor = Reactor(fleet, plan)
    gone = "w00002"
    del fleet.pods[gone]  # collected by someone else: not a delete of ours
    reactor.observe(gone)
    assert gone not in fleet.pods


def test_freed_budget_is_spent_on_the_next_deferred_update_in_plan_order() -> None:
    fleet = rolled_out_fleet(5, 1, recreate=False)
    plan = fleet.plan()
    reactor = Reactor(fleet, plan)
    reactor.start(plan.actions)
    first = reactor.started_disruptive[0]
    deferred = [action_well(a) for a in plan.deferred]
    fleet.tick()
    reactor.observe(first)  # its swap is confirmed: available again, budget freed
    assert reactor.started_disruptive[1:2] == deferred[:1]


@settings(max_examples=150, deadline=None)
@given(
    wells=st.integers(min_value=2, max_value=12),
    max_unavailable=st.integers(min_value=1, max_value=4),
    recreate=st.booleans(),
    events=st.lists(
        st.tuples(st.sampled_from(["tick", "crash", "recover"]), st.integers(0, 11)),
        max_size=80,
    ),
)
def test_reactions_never_start_a_disruptive_update_at_the_budget(
    wells: int, max_unavailable: int, recreate: bool, events: list[tuple[str, int]]
) -> None:
    fleet = rolled_out_fleet(wells, max_unavailable, recreate=recreate)
    plan = fleet.plan()
    reactor = Reactor(fleet, plan)
    reactor.start(plan.actions)
    ids = [w.id for w in fleet.spec.wells]
    for kind, index in events:
        well = ids[index % wells]
        if kind == "tick":
            fleet.tick()
            changed = ids
        elif kind == "crash" and well in fleet.pods:
            fleet.pods[well] = dataclasses.replace(fleet.pods[well], ready=False)
            changed = [well]
        elif kind == "recover" and well in fleet.pods:
            pod = fleet.pods[well]
            served = pod.bundle is not None and pod.bundle.status == "True"
            fleet.pods[well] = dataclasses.replace(
                pod, ready=pod.containers_ready and served, ready_since=fleet.now
            )
            changed = [well]
        else:
            continue
        for each in changed:
            reactor.observe(each)
    # Whatever happened, a started update was never repeated for the same well.
    assert len(reactor.started_disruptive) == len(set(reactor.started_disruptive))
    assert not any(isinstance(a, ConfirmBundle) for a in plan.deferred)
