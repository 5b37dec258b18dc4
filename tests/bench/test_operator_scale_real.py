"""The real-cluster scale bench's own arithmetic: what it reads from kube-apiserver's /metrics
and how it turns counters into per-pod figures and roll-out budgets (the cluster parts are
measured, not tested here: they need 10 minutes of a real control plane)."""

from __future__ import annotations

import math
import sys
from pathlib import Path

import httpx
from hypothesis import given
from hypothesis import strategies as st

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "bench"))

import operator_scale_real as bench

METRICS = """\
# HELP apiserver_request_total [STABLE] Counter of apiserver requests broken out for each verb...
# TYPE apiserver_request_total counter
apiserver_request_total{code="201",component="apiserver",dry_run="",group="",resource="pods",scope="resource",subresource="",verb="POST",version="v1"} 300
apiserver_request_total{code="429",component="apiserver",dry_run="",group="",resource="pods",scope="resource",subresource="",verb="POST",version="v1"} 4
apiserver_request_total{code="200",component="apiserver",dry_run="",group="",resource="pods",scope="resource",subresource="status",verb="PATCH",version="v1"} 600
apiserver_request_total{code="200",component="",dry_run="",group="",resource="",scope="",subresource="/healthz",verb="GET",version=""} 9
apiserver_request_total{code="0",component="apiserver",dry_run="",group="",resource="pods",scope="namespace",subresource="",verb="WATCH",version="v1"} 2
apiserver_request_duration_seconds_count{verb="POST"} 300
"""


def metrics_client(text: str) -> httpx.Client:
    return httpx.Client(
        base_url="https://apiserver.invalid",
        transport=httpx.MockTransport(lambda request: httpx.Response(200, text=text)),
    )


def test_requests_are_read_by_verb_resource_subresource_and_code_without_non_resource_paths() -> (
    None
):
    with metrics_client(METRICS) as http:
        counts = bench.apiserver_requests(http)
    assert counts == {
        ("POST", "pods", "201"): 300.0,
        ("POST", "pods", "429"): 4.0,
        ("PATCH", "pods/status", "200"): 600.0,
        ("WATCH", "pods", "0"): 2.0,
    }


def test_a_phase_is_the_delta_over_every_code_and_429s_are_counted_apart() -> None:
    before = {("POST", "pods", "201"): 100.0, ("PATCH", "pods/status", "200"): 600.0}
    after = {
        ("POST", "pods", "201"): 400.0,
        ("POST", "pods", "429"): 5.0,
        ("PATCH", "pods/status", "200"): 600.0,
        ("GET", "pods/proxy", "200"): 300.0,
    }
    delta = bench.requests_delta(after, before)
    assert delta == {"GET pods/proxy": 300.0, "POST pods": 305.0}
    assert bench.throttled(after, before) == 5.0
    assert bench.writes(delta) == 305.0
    assert bench.per_pod(delta, 100) == {"GET pods/proxy": 3.0, "POST pods": 3.05}


@given(st.integers(min_value=1, max_value=100_000), st.floats(min_value=0.5, max_value=60))
def test_the_roll_out_budget_rounds_ten_percent_down_and_ideal_is_waves_times_the_delay(
    wells: int, delay: float
) -> None:
    res = bench.SideResult("deployment", wells, 50.0, 100, delay)
    bench.rollout_budget(res, delay)
    assert res.max_unavailable == max(1, math.floor(wells / 10))
    assert (
        (res.rollout_waves - 1) * res.max_unavailable
        < wells
        <= res.rollout_waves * res.max_unavailable
    )
    assert res.rollout_ideal_s == res.rollout_waves * delay


@given(
    st.lists(st.floats(min_value=0, max_value=1e6), min_size=1),
    st.floats(min_value=1, max_value=100),
)
def test_a_percentile_is_a_sample_with_at_least_that_share_at_or_below_it(
    values: list[float], p: float
) -> None:
    q = bench.percentile(values, p)
    assert q in values
    assert sum(v <= q for v in values) >= p / 100 * len(values)
    assert sum(v < q for v in values) < p / 100 * len(values)


def test_a_pod_being_deleted_or_gone_is_not_ready() -> None:
    ready = {"metadata": {}, "status": {"conditions": [{"type": "Ready", "status": "True"}]}}
    deleting = {**ready, "metadata": {"deletionTimestamp": "2026-12-02T00:00:00Z"}}
    assert bench.pod_is_ready("MODIFIED", ready)
    assert not bench.pod_is_ready("DELETED", ready)
    assert not bench.pod_is_ready("MODIFIED", deleting)


OPERATOR_METRICS = """\
modelfleet_operator_api_calls_total{code="201",resource="pods",verb="create"} 500.0
modelfleet_operator_api_calls_total{code="409",resource="pods",verb="create"} 12.0
modelfleet_operator_api_calls_total{code="503",resource="pods/proxy",verb="get"} 40.0
modelfleet_operator_api_calls_total{code="200",resource="pods/proxy",verb="get"} 500.0
modelfleet_operator_api_calls_created{code="201",resource="pods",verb="create"} 1.7e9
modelfleet_operator_api_connections_total{connection="new"} 64.0
modelfleet_operator_api_connections_total{connection="reused"} 988.0
"""


def test_the_operators_calls_are_kept_by_code_and_summed_by_request_with_its_connections() -> None:
    before = bench.parse_operator_metrics(OPERATOR_METRICS)
    assert before["create pods 409"] == 12.0 and before["connections new"] == 64.0
    after = {**before, "create pods 409": 20.0, "get pods/proxy 200": 900.0, "connections new": 65}
    side = bench.SideResult("modelfleet", 500, 500.0, 1000, 10.0)
    bench.record_calls(side, "rollout", bench.calls_delta(after, before))
    assert side.operator_calls_by_code["rollout"] == {
        "create pods 409": 8.0,
        "get pods/proxy 200": 400.0,
    }
    assert side.operator_calls["rollout"] == {"create pods": 8.0, "get pods/proxy": 400.0}
    assert side.operator_connections["rollout"] == {"new": 1.0}


def _run(ready: float, rollout: float, unavailable: int, writes: float = 0.0) -> dict[str, object]:
    return {
        "time_to_ready_s": ready,
        "rollout_time_s": rollout,
        "pods_ready_s": ready - 0.5,
        "rollout_ideal_s": 50.0,
        "rollout_ratio": rollout / 50.0,
        "max_unavailable_seen": unavailable,
        "steady_writes": writes,
        "notes": [],
        "requests_per_pod": {"ready": {"POST pods": ready}},  # marks which run it came from
    }


def test_one_run_is_reported_as_it_is() -> None:
    run = _run(27.0, 70.0, 100)
    assert bench.combine_repeats([run]) is run


def test_repeats_report_medians_the_worst_unavailability_and_the_median_runs_requests() -> None:
    side = bench.combine_repeats(
        [_run(31.0, 80.0, 100), _run(25.0, 60.0, 98, writes=2.0), _run(27.0, 75.0, 100)]
    )
    assert (side["time_to_ready_s"], side["rollout_time_s"]) == (27.0, 75.0)
    assert side["rollout_ratio"] == 1.5
    assert side["max_unavailable_seen"] == 100
    assert side["steady_writes"] == 2.0  # any repeat's write is reported
    assert side["requests_per_pod"] == {"ready": {"POST pods": 27.0}}
    assert [r["time_to_ready_s"] for r in side["repeats"]] == [31.0, 25.0, 27.0]


@given(st.lists(st.floats(1.0, 1000.0), min_size=2, max_size=7))
def test_the_median_time_to_ready_lies_between_the_fastest_and_slowest_repeat(
    times: list[float],
) -> None:
    side = bench.combine_repeats([_run(t, t, 1) for t in times])
    assert min(times) - 0.01 <= side["time_to_ready_s"] <= max(times) + 0.01


def test_each_repeat_is_paired_with_the_deployment_run_beside_it() -> None:
    measured = {
        "modelfleet": [_run(30.0, 70.0, 100), _run(24.0, 72.0, 100)],
        "deployment": [_run(25.0, 70.0, 100), _run(32.0, 80.0, 100)],
    }
    ratios = bench.paired_ratios(measured)
    assert list(ratios) == ["modelfleet"]
    assert ratios["modelfleet"]["time_to_ready_s"] == {"each": [1.2, 0.75], "median": 0.975}
    assert ratios["modelfleet"]["rollout_time_s"] == {"each": [1.0, 0.9], "median": 0.95}
