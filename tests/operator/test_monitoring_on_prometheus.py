"""The operator's PromQL and Prometheus client against a real Prometheus scraping the contract's
gauges: the fleet's one query counts and ranks exactly the fleet's wells, analysis answers keep
their labels, and every way of failing comes back as a reason, never an exception."""

from __future__ import annotations

import asyncio
import base64
from collections.abc import Iterator
from pathlib import Path

import pytest
from aiohttp import ClientSession, web

from kubesim.harness.testing import KubeSimThread
from modelfleet.api.spec import Analysis, DriftThresholds, PrometheusEndpoint
from modelfleet.io.kube import KubeClient, load_connection
from modelfleet.io.prometheus import PrometheusClient
from modelfleet.logic.analysis import MeasurementVerdict, measure, render_query, traffic_query
from modelfleet.logic.fleet_monitoring import (
    FailedQuery,
    QueryFailure,
    fleet_query,
    snapshot_from_samples,
)
from modelfleet_dev.ports import LOOPBACK, free_loopback_port
from runtime_contract import monitoring as m

from .cluster_harness import Api
from .monitoring_fixtures import Prometheus, running_prometheus


@pytest.fixture(scope="module")
def prometheus(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Prometheus]:
    with running_prometheus(tmp_path_factory.mktemp("prometheus")) as prom:
        yield prom


def serve_well(
    prom: Prometheus,
    well: str,
    *,
    fleet: str = "esp",
    namespace: str = "default",
    feature_psi: float = 0.02,
    prediction_psi: float = 0.01,
    missing: float = 0.0,
    age: float | str = 1.0,
    rows: int = 500,
    insufficient: int = 0,
    model: str = "m1",
    feature: str = "f1",
) -> None:
    """The bounded gauges of one well's pod, as the runtime exports them after relabelling."""
    pod = dict(namespace=namespace, fleet=fleet, well=well, pod=f"{fleet}-{well}")
    e = prom.exporter
    e.set(m.FEATURE_PSI_WORST, feature_psi, model=model, feature=feature, **pod)
    e.set(m.PREDICTION_PSI_WORST, prediction_psi, model=model, **pod)
    e.set(m.MISSING_RATE_WORST, missing, model=model, feature=feature, **pod)
    e.set(m.LAST_ROW_AGE_SECONDS, age, **pod)
    e.set(m.WINDOW_ROWS_MIN, rows, **pod)
    e.set(m.MODELS, insufficient, verdict="insufficient_data", **pod)
    e.set(m.MODELS, 1, verdict="healthy", **pod)


def endpoint(prom: Prometheus, **extra: object) -> PrometheusEndpoint:
    return PrometheusEndpoint.model_validate({"address": prom.url, **extra})


def query(prom_endpoint: PrometheusEndpoint, promql: str, kube: KubeClient | None = None) -> object:
    async def once() -> object:
        client = PrometheusClient(kube)
        try:
            return await client.query("default", prom_endpoint, promql)
        finally:
            await client.close()

    return asyncio.run(once())


def test_one_query_counts_and_ranks_the_fleet_s_wells_only(prometheus: Prometheus) -> None:
    prometheus.exporter.clear()
    serve_well(prometheus, "w1", feature_psi=0.41, model="m3", feature="pressure")
    serve_well(prometheus, "w2", prediction_psi=0.7)  # drifting by its predictions
    serve_well(prometheus, "w3", missing=0.5)
    serve_well(prometheus, "w4", age="+Inf", rows=0, insufficient=2)  # never saw a row
    serve_well(prometheus, "w5")
    serve_well(prometheus, "x1", fleet="other", feature_psi=9.0)  # another fleet
    serve_well(prometheus, "y1", namespace="elsewhere", feature_psi=9.0)
    prometheus.wait_scraped(f'count({m.WINDOW_ROWS_MIN}{{fleet="esp"}}) == 6')

    answer = query(endpoint(prometheus), fleet_query("default", "esp", DriftThresholds()))
    assert not isinstance(answer, FailedQuery), answer
    snap = snapshot_from_samples(answer)  # type: ignore[arg-type]
    assert (snap.reporting, snap.drifting, snap.missing, snap.stale, snap.insufficient) == (
        5,
        2,
        1,
        1,
        1,
    )
    assert [w.well for w in snap.worst][:1] == ["w1"]
    top = snap.worst[0]
    assert (top.model, top.feature, round(top.psi, 2)) == ("m3", "pressure", 0.41)
    assert {w.well for w in snap.worst} == {"w1", "w2", "w3", "w4", "w5"}


def test_an_empty_fleet_answers_zero_counts_not_nothing(prometheus: Prometheus) -> None:
    answer = query(endpoint(prometheus), fleet_query("default", "nobody", DriftThresholds()))
    snap = snapshot_from_samples(answer)  # type: ignore[arg-type]
    assert (snap.reporting, snap.drifting, snap.worst) == (0, 0, ())


def test_analysis_answers_keep_every_series_labels(prometheus: Prometheus) -> None:
    prometheus.exporter.clear()
    serve_well(prometheus, "w1", prediction_psi=0.05, model="m1")
    serve_well(prometheus, "w2", prediction_psi=0.61, model="m7")
    serve_well(prometheus, "w3", prediction_psi=0.99)  # not a canary well
    prometheus.wait_scraped(f'{m.PREDICTION_PSI_WORST}{{well="w3"}} > 0.9')
    check = Analysis.model_validate(
        {
            "queries": [
                {
                    "name": "prediction-psi",
                    "query": f'max by (well, model) ({m.PREDICTION_PSI_WORST}{{well=~"{{{{wells}}}}"}})',
                    "operator": "LessThan",
                    "threshold": 0.25,
                }
            ],
            "minRows": 100,
        }
    )
    canary = {"w1", "w2"}
    ep = endpoint(prometheus)
    answer = query(ep, render_query(check.queries[0].query, canary, "default", "esp"))
    traffic = query(ep, traffic_query("default", "esp", canary))
    result = measure(check, canary, {"prediction-psi": answer}, traffic)  # type: ignore[dict-item]
    assert result.verdict is MeasurementVerdict.FAILED
    assert 'model="m7"' in result.message and 'well="w2"' in result.message
    assert "0.61" in result.message and "w3" not in result.message


def test_the_traffic_guard_counts_only_canary_wells_scraped_serving_the_new_bundle(
    prometheus: Prometheus,
) -> None:
    prometheus.exporter.clear()
    for well, digest in [("w1", "sha256:new1"), ("w2", "sha256:old2")]:
        serve_well(prometheus, well, rows=500)  # plenty of rows: but whose?
        prometheus.exporter.set(
            m.BUNDLE_INFO,
            1,
            digest=digest,
            namespace="default",
            fleet="esp",
            well=well,
            pod=f"esp-{well}",
        )
    prometheus.wait_scraped(f'count({m.BUNDLE_INFO}{{fleet="esp"}}) == 2')
    check = Analysis.model_validate(
        {
            "queries": [
                {
                    "name": "psi",
                    "query": f"max by (well) ({m.FEATURE_PSI_WORST})",
                    "operator": "LessThan",
                    "threshold": 0.25,
                }
            ],
            "minRows": 100,
        }
    )
    canary = {"w1", "w2"}
    ep = endpoint(prometheus)
    answer = query(ep, render_query(check.queries[0].query, canary, "default", "esp"))
    guard = traffic_query("default", "esp", canary, {"sha256:new1", "sha256:new2"})
    traffic = query(ep, guard)
    # w2 still shows its old bundle's window: the measurement waits for its next scrape.
    result = measure(check, canary, {"psi": answer}, traffic)  # type: ignore[dict-item]
    assert result.verdict is MeasurementVerdict.INCONCLUSIVE
    assert "w2" in result.message and "new bundle" in result.message
    # Without digests (an unpinned bundle) the guard cannot tell, and passes on rows alone.
    unguarded = query(ep, traffic_query("default", "esp", canary))
    passed = measure(check, canary, {"psi": answer}, unguarded)  # type: ignore[dict-item]
    assert passed.verdict is MeasurementVerdict.PASSED


def test_bad_promql_is_an_error_with_prometheus_own_message(prometheus: Prometheus) -> None:
    answer = query(endpoint(prometheus), "max by (well (up")
    assert isinstance(answer, FailedQuery)
    assert answer.failure is QueryFailure.ERROR
    assert "parse error" in answer.message


def test_a_range_vector_is_refused_as_the_wrong_result_type(prometheus: Prometheus) -> None:
    answer = query(endpoint(prometheus), "up[10s]")
    assert isinstance(answer, FailedQuery) and "not an instant vector" in answer.message


def test_nothing_listening_is_unreachable() -> None:
    ep = PrometheusEndpoint.model_validate(
        {"address": f"http://{LOOPBACK}:{free_loopback_port()}", "timeoutSeconds": 1}
    )
    answer = query(ep, "up")
    assert isinstance(answer, FailedQuery) and answer.failure is QueryFailure.UNREACHABLE


def test_a_server_that_never_answers_times_out_as_unreachable() -> None:
    async def run() -> object:
        async def hang(_: web.Request) -> web.Response:
            await asyncio.sleep(30)
            return web.Response()

        app = web.Application()
        app.router.add_post("/api/v1/query", hang)
        runner = web.AppRunner(app)
        await runner.setup()
        port = free_loopback_port()
        await web.TCPSite(runner, LOOPBACK, port).start()
        client = PrometheusClient()
        try:
            ep = PrometheusEndpoint.model_validate(
                {"address": f"http://{LOOPBACK}:{port}", "timeoutSeconds": 1}
            )
            return await client.query("default", ep, "up")
        finally:
            await client.close()
            await runner.cleanup()

    answer = asyncio.run(run())
    assert isinstance(answer, FailedQuery) and answer.failure is QueryFailure.UNREACHABLE


def test_the_bearer_token_is_read_from_its_secret_and_sent(
    prometheus: Prometheus, cluster: KubeSimThread, api: Api
) -> None:
    """An authenticating proxy in front of the real Prometheus, as a managed one would be."""
    r = api.create(
        "/api/v1/namespaces/default/secrets",
        {
            "apiVersion": "v1",
            "kind": "Secret",
            "metadata": {"name": "prom-token"},
            "data": {"token": base64.b64encode(b"s3cret\n").decode()},
        },
    )
    assert r.status_code == 201, r.text

    async def run() -> tuple[object, object, object]:
        async def forward(request: web.Request) -> web.Response:
            if request.headers.get("Authorization") != "Bearer s3cret":
                return web.Response(status=401, text="Unauthorized")
            async with (
                ClientSession() as session,
                session.post(
                    prometheus.url + "/api/v1/query", data=await request.post()
                ) as upstream,
            ):
                return web.Response(status=upstream.status, body=await upstream.read())

        app = web.Application()
        app.router.add_post("/api/v1/query", forward)
        runner = web.AppRunner(app)
        await runner.setup()
        port = free_loopback_port()
        await web.TCPSite(runner, LOOPBACK, port).start()
        kube = KubeClient(load_connection(str(cluster.kubeconfig)))
        client = PrometheusClient(kube)
        address = f"http://{LOOPBACK}:{port}"
        try:
            good = await client.query(
                "default",
                PrometheusEndpoint.model_validate(
                    {"address": address, "bearerTokenSecret": {"name": "prom-token"}}
                ),
                "vector(1)",
            )
            none = await client.query(
                "default", PrometheusEndpoint.model_validate({"address": address}), "vector(1)"
            )
            missing = await client.query(
                "default",
                PrometheusEndpoint.model_validate(
                    {"address": address, "bearerTokenSecret": {"name": "nope"}}
                ),
                "vector(1)",
            )
            return good, none, missing
        finally:
            await client.close()
            await kube.close()
            await runner.cleanup()

    good, none, missing = asyncio.run(run())
    assert not isinstance(good, FailedQuery) and good[0].value == 1.0  # type: ignore[index]
    assert isinstance(none, FailedQuery) and "HTTP 401" in none.message
    assert isinstance(missing, FailedQuery) and "prom-token" not in missing.message
    assert missing.failure is QueryFailure.UNREACHABLE and "nope" in missing.message


def test_exporter_fixture_is_what_prometheus_scrapes(
    prometheus: Prometheus, tmp_path: Path
) -> None:
    prometheus.exporter.clear()
    serve_well(prometheus, "w9", rows=123)
    prometheus.wait_scraped(f'{m.WINDOW_ROWS_MIN}{{well="w9"}} == 123')
