"""The whole-well endpoint's ScoringPool: the caller and helper threads share one call's items."""

from __future__ import annotations

import threading
from collections.abc import Iterator

import httpx
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from runtime_harness import RunningServer

from bundle_builder.building import BuiltBundle
from model_runtime.scoring_pool import MIN_ITEMS_TO_SHARE, ScoringPool


@pytest.fixture(scope="module")
def pool() -> Iterator[ScoringPool]:
    shared = ScoringPool(threads=3)
    yield shared
    shared.close()


@settings(max_examples=60, deadline=None)
@given(items=st.lists(st.integers(), max_size=64))
def test_results_keep_the_items_order_whatever_thread_scored_them(
    pool: ScoringPool, items: list[int]
) -> None:
    assert pool.map(lambda x: x * 3 + 1, items) == [x * 3 + 1 for x in items]


def test_helpers_take_part_while_the_caller_is_busy(pool: ScoringPool) -> None:
    """Item 0 blocks until another thread has scored an item: only a helper can release it."""
    first_thread: list[int] = []
    other_thread_ran = threading.Event()
    ran_on: set[int] = set()

    def work(index: int) -> int:
        me = threading.get_ident()
        ran_on.add(me)
        if index == 0:
            first_thread.append(me)
            assert other_thread_ran.wait(timeout=10), "no helper scored anything"
        elif first_thread and me != first_thread[0]:
            other_thread_ran.set()
        return index

    assert pool.map(work, list(range(40))) == list(range(40))
    assert len(ran_on) >= 2


def test_the_first_error_reaches_the_caller_after_every_claimed_item_finished(
    pool: ScoringPool,
) -> None:
    """Item 3 is still running when item 5 fails: the caller hears of it only once 3 is done."""
    running = 0
    lock = threading.Lock()
    failed = threading.Event()

    def work(index: int) -> int:
        nonlocal running
        with lock:
            running += 1
        try:
            if index == 5:
                failed.set()
                raise ValueError(f"model {index} failed")
            if index == 3:
                assert failed.wait(timeout=10)
            return index
        finally:
            with lock:
                running -= 1

    with pytest.raises(ValueError, match="model 5 failed"):
        pool.map(work, list(range(50)))
    assert running == 0
    # The pool serves the next call as usual.
    assert pool.map(lambda x: -x, list(range(20))) == [-x for x in range(20)]


def test_one_thread_or_few_items_run_on_the_caller_alone() -> None:
    single = ScoringPool(threads=1)
    caller = threading.get_ident()
    assert single.map(lambda _: threading.get_ident(), list(range(50))) == [caller] * 50
    assert single._helpers == []
    shared = ScoringPool(threads=2)
    few = list(range(MIN_ITEMS_TO_SHARE - 1))
    assert shared.map(lambda _: threading.get_ident(), few) == [caller] * len(few)
    assert shared._helpers == []


def test_a_pool_refuses_fewer_than_one_thread() -> None:
    with pytest.raises(ValueError, match="well scoring threads must be >= 1, got 0"):
        ScoringPool(threads=0)


def test_the_well_endpoint_answers_the_same_on_one_thread_and_on_three(
    small_bundle: BuiltBundle,
) -> None:
    rows = np.random.default_rng(11).normal(
        [85, 190, 95, 42, 2.5, 55, 450], [2, 4, 2, 1, 0.3, 0.6, 12], (7, 7)
    )
    body = {
        "inputs": [
            {"name": "sensors", "shape": [7, 7], "datatype": "FP32", "data": rows.ravel().tolist()}
        ]
    }
    answers = []
    for threads in (1, 3):
        with RunningServer(str(small_bundle.path), well_threads=threads) as server:
            server.wait_serving(small_bundle.digest)
            response = httpx.post(f"{server.url}/v2/well/infer", json=body)
            assert response.status_code == 200, response.text
            answers.append(response.json())
    assert answers[0] == answers[1]
    assert len(answers[0]["outputs"]) == len(small_bundle.manifest.models)
