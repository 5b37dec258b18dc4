"""A whole-well fold adds a batch to every model's windows in one numpy pass (a `WindowBank`'s);
it must count exactly what adding the same rows to each model's windows one model at a time
counts. Two levels: a bank add against each window's own add (the same rings, counts, heads
and fills, for windows at different levels and any batch), and a monitor fed whole-well
requests against one whose models are each handed the same rows (the same counts, fills and
rows seen), whatever the rows hold (NaN, infinities, values far outside the reference),
whichever models a request names and in which order, and however far apart single-model
traffic has moved the models' windows.
"""

from __future__ import annotations

import itertools
from enum import Enum

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from model_runtime.manifest import BundleManifest
from model_runtime.monitoring.config import MonitoringConfig
from model_runtime.monitoring.monitor import BundleMonitor
from model_runtime.monitoring.window import RowWindow, WindowBank

ODD_VALUES = (np.nan, np.inf, -np.inf, 1e9, -1e9)


# One request: a whole-well batch (rows, the models named: all in order, or a shuffled subset;
# scored or refused before scoring) or one model's single row, which moves that model's
# windows on their own.
request = st.one_of(
    st.tuples(
        st.just("well"),
        st.integers(0, 40),  # rows: past the window too
        st.sampled_from(["all", "all", "subset", "refused"]),
        st.sampled_from(["float32", "float64"]),  # the predictions' dtype
    ),
    st.tuples(st.just("single"), st.just(1), st.just("one"), st.just("float32")),
)


def _odd(rng: np.random.Generator, values: np.ndarray) -> None:
    """Some values the reference never saw, and some missing, in place."""
    if values.size:
        for _ in range(int(rng.integers(0, 4))):
            values.flat[int(rng.integers(0, values.size))] = rng.choice(ODD_VALUES)


@settings(max_examples=80, deadline=None)
@given(
    requests=st.lists(request, min_size=1, max_size=40),
    capacity=st.integers(1, 30),
    folds=st.sets(st.integers(0, 39)),
    seed=st.integers(0, 2**16),
)
def test_the_vectorised_well_fold_counts_what_the_per_model_fold_counts(
    manifest: BundleManifest,
    history: np.ndarray,
    requests: list[tuple[str, int, str, str]],
    capacity: int,
    folds: set[int],
    seed: int,
) -> None:
    config = MonitoringConfig(window_rows=capacity, min_rows=1)
    vectorised, per_model = BundleMonitor(manifest, config), BundleMonitor(manifest, config)
    names = list(vectorised.models)
    rng = np.random.default_rng(seed)
    last_named: object = None
    for index, (kind, count, which, dtype) in enumerate(requests):
        rows = history[rng.integers(0, len(history), count)]
        _odd(rng, rows)
        if kind == "single":
            name = names[int(rng.integers(0, len(names)))]
            one = rng.random((1, 2)).astype(np.float32)
            # Folded before and after on the vectorised side, so both sides see one order.
            vectorised.fold_all()
            for monitor in (vectorised, per_model):
                monitor.observe_model(name, rows, ("probabilities",), (one,))
            vectorised.fold_all()
            continue
        named = names if which != "subset" else list(rng.permutation(names)[: rng.integers(0, 9)])
        scored: dict[str, np.ndarray] = {}
        for name in named:
            model = per_model.models[name]
            values = rng.random((count, model.prediction_index + 1))
            _odd(rng, values)
            scored[name] = values.astype(dtype)
        # As the data plane hands them over: a column of each model's probabilities.
        predictions = {
            name: p[:, per_model.models[name].prediction_index] for name, p in scored.items()
        }
        # A fold takes the requests of one model list in turn: folded when the list changes,
        # the vectorised side's windows see the rows in the order the per-model side does.
        if (None if which == "refused" else named) != last_named:
            vectorised.fold_all()
        last_named = None if which == "refused" else named
        vectorised.observe_well(rows, None if which == "refused" else predictions)
        if index in folds:
            vectorised.fold_all()
        for name in names if which == "refused" else named:
            output = None if which == "refused" else scored[name]
            per_model.models[name].add_now(rows, output)  # one model's windows at a time
    vectorised.fold_all()
    per_model.fold_all()
    assert vectorised.column_counts().tolist() == per_model.column_counts().tolist()
    for name in names:
        batched, alone = vectorised.models[name], per_model.models[name]
        assert batched.prediction_window is not None and alone.prediction_window is not None
        assert batched.feature_window.filled == alone.feature_window.filled
        assert batched.prediction_window.filled == alone.prediction_window.filled
        assert batched.traffic.rows_seen == alone.traffic.rows_seen


def _bucket_rows(rng: np.random.Generator, rows: int, columns: int, slots: int) -> np.ndarray:
    return rng.integers(0, slots, (rows, columns)).astype(np.intp)


class Step(Enum):
    ALONE = "rows to one window only"
    BANK = "rows of their own to some windows, in one pass"
    SAME = "the same rows to some windows of one width"


@settings(max_examples=300, deadline=None)
@given(
    widths=st.lists(st.integers(1, 3), min_size=1, max_size=7),
    capacity=st.integers(1, 12),
    steps=st.lists(
        st.tuples(st.integers(0, 30), st.integers(0, 2**16), st.sampled_from(Step)), max_size=14
    ),
)
def test_a_bank_add_is_each_window_s_own_add(
    widths: list[int], capacity: int, steps: list[tuple[int, int, Step]]
) -> None:
    """Step by step, rows to some windows of a bank (any subset, any order) and to the same
    windows kept apart: their own rows in one pass per level, or the same rows to windows of
    one width (counted once per group of identical windows, then copied); in between, rows to
    one window only, so the windows drift apart in content, head and fill."""
    slots = 9
    bank = WindowBank(widths, capacity, slots)
    apart = [RowWindow(width, capacity, slots) for width in widths]
    for rows, seed, step in steps:
        rng = np.random.default_rng(seed)
        if step is Step.ALONE:
            which = int(rng.integers(0, len(widths)))
            buckets = _bucket_rows(rng, rows, widths[which], slots)
            bank.windows[which].add(buckets)
            apart[which].add(buckets)
            continue
        members = tuple(int(m) for m in rng.permutation(len(widths))[: rng.integers(0, 8)])
        if step is Step.SAME:
            width = widths[int(rng.integers(0, len(widths)))]
            members = tuple(m for m in members if widths[m] == width)
            buckets = _bucket_rows(rng, rows, width, slots)
            bank.add_same(members, buckets)
            for member in members:
                apart[member].add(buckets)
            continue
        block = _bucket_rows(rng, rows, sum(widths[m] for m in members), slots)
        bank.add(members, block)
        at = 0
        for member in members:
            apart[member].add(block[:, at : at + widths[member]])
            at += widths[member]
    for window, kept in zip(bank.windows, apart, strict=True):
        assert (window.head, window.filled) == (kept.head, kept.filled)
        assert window.ring.tolist() == kept.ring.tolist()
        assert window.counts.tolist() == kept.counts.tolist()
        recount = np.zeros_like(kept.counts)
        for column in range(kept.counts.shape[0]):
            np.add.at(recount[column], kept.ring[: kept.filled, column].astype(np.intp), 1)
        assert window.counts.tolist() == recount.tolist()
    # Windows a group holds together are identical: the group is a fact, not a hope.
    for one, other in itertools.combinations(bank.windows, 2):
        if one.group is not None and one.group == other.group:
            assert one.ring.tolist() == other.ring.tolist()
            assert (one.head, one.filled) == (other.head, other.filled)


def test_a_well_of_one_feature_list_counts_the_same_rows_once_for_all_its_models() -> None:
    """100 windows fed only the same rows stay one group: each fold counts one window."""
    bank = WindowBank([7] * 100, 50, 12)
    rng = np.random.default_rng(1)
    for rows in (30, 40, 5, 80):
        bank.add_same(tuple(range(100)), _bucket_rows(rng, rows, 7, 12))
    assert len({window.group for window in bank.windows}) == 1
    bank.windows[3].add(_bucket_rows(rng, 1, 7, 12))  # an /infer row for one model
    assert bank.windows[3].group is None
    assert len({window.group for window in bank.windows if window is not bank.windows[3]}) == 1
