"""The budget ledger: freed unavailability budget is spent between plans, never beyond it."""

from __future__ import annotations

from collections import deque

from hypothesis import given, settings
from hypothesis import strategies as st

from modelfleet.logic.actions import Action, DeletePod, DeleteReason, action_well
from modelfleet.logic.budget import BudgetLedger


def deletes(wells: list[str]) -> deque[Action]:
    return deque(DeletePod(f"fleet-{w}", f"uid-{w}", w, DeleteReason.RECREATE) for w in wells)


def test_freed_budget_starts_the_next_deferred_update_in_plan_order() -> None:
    ledger = BudgetLedger(2, {"a", "b"}, deletes(["c", "d", "e"]))
    assert ledger.spend(lambda _: True) == []
    ledger.observe("a", available=True)
    assert [action_well(a) for a in ledger.spend(lambda _: True)] == ["c"]
    ledger.observe("b", available=True)
    ledger.observe("c", available=True)
    assert [action_well(a) for a in ledger.spend(lambda _: True)] == ["d", "e"]


def test_a_well_that_became_unavailable_by_itself_takes_budget_away() -> None:
    ledger = BudgetLedger(2, {"a"}, deletes(["c"]))
    ledger.observe("x", available=False)  # a crash elsewhere: the budget is used up
    assert ledger.spend(lambda _: True) == []
    ledger.observe("x", available=True)
    assert [action_well(a) for a in ledger.spend(lambda _: True)] == ["c"]


def test_an_update_the_fleet_moved_past_is_dropped_without_spending_budget() -> None:
    ledger = BudgetLedger(1, set(), deletes(["c", "d"]))
    started = ledger.spend(lambda a: action_well(a) != "c")
    assert [action_well(a) for a in started] == ["d"]
    assert ledger.unavailable == {"d"}


@settings(max_examples=300, deadline=None)
@given(
    wells=st.integers(min_value=1, max_value=30),
    max_unavailable=st.integers(min_value=1, max_value=10),
    steps=st.lists(st.tuples(st.integers(min_value=0, max_value=29), st.booleans()), max_size=200),
)
def test_ledger_never_starts_an_update_while_the_fleet_is_at_its_budget(
    wells: int, max_unavailable: int, steps: list[tuple[int, bool]]
) -> None:
    """A world of wells whose availability changes by itself (crashes, recoveries) and by the
    updates the ledger starts; every change is observed, as the reconciler does per event."""
    ids = [f"w{i}" for i in range(wells)]
    down = set(ids[: min(wells, max_unavailable)])  # the plan spent the whole budget
    ledger = BudgetLedger(max_unavailable, set(down), deletes(ids[len(down) :]))
    updated: set[str] = set(down)
    for index, available in steps:
        well = ids[index % wells]
        if available:
            down.discard(well)
        else:
            down.add(well)
        ledger.observe(well, available)
        for action in ledger.spend(lambda a: action_well(a) not in down):
            assert len(down) < max_unavailable, "started an update with no budget left"
            down.add(action_well(action))
            updated.add(action_well(action))
        assert ledger.unavailable == down
