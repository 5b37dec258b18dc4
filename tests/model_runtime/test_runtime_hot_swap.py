"""Hot swap: a new bundle loads beside the serving one and switches atomically; a failed load
leaves the old bundle serving and says so in /v2, health and metrics."""

from __future__ import annotations

import shutil
import threading
from pathlib import Path

import httpx
from runtime_harness import RunningServer, write_annotations

from bundle_builder.building import BuiltBundle
from model_runtime.annotations import (
    BUNDLE_DIGEST_ANNOTATION,
    BUNDLE_URI_ANNOTATION,
    parse_annotations,
    unquote_go,
)
from modelfleet_dev.api_poller import wait_until
from modelfleet_dev.ports import free_loopback_port

ROWS = {
    "inputs": [
        {
            "name": "sensors",
            "shape": [1, 7],
            "datatype": "FP32",
            "data": [85, 190, 95, 42, 2.5, 55, 450],
        }
    ]
}


def load(server: RunningServer, uri: str, digest: str | None = None) -> httpx.Response:
    return httpx.post(
        f"{server.url}/v2/repository/bundle/load", json={"uri": uri, "digest": digest}, timeout=30
    )


def test_load_endpoint_swaps_to_the_new_bundle(
    server: RunningServer, second_bundle: BuiltBundle
) -> None:
    response = load(server, f"file://{second_bundle.path}", second_bundle.digest)
    assert response.status_code == 200, response.text
    assert response.json()["bundle"] == {
        "digest": second_bundle.digest,
        "uri": f"file://{second_bundle.path}",
        "well": "fr-0001",
        "version": "2.0.0",
        "models": 6,
    }
    assert httpx.get(f"{server.url}/v2").json()["bundle"]["digest"] == second_bundle.digest
    # Models only in the old bundle are gone; the new version answers.
    assert httpx.get(f"{server.url}/v2/models/gas-lock-02d").status_code == 404
    infer = httpx.post(f"{server.url}/v2/models/gas-lock-01d/infer", json=ROWS)
    assert infer.json()["model_version"] == "2.0.0"
    assert (
        f'modelfleet_runtime_bundle_info{{digest="{second_bundle.digest}"'
        in httpx.get(f"{server.url}/metrics").text
    )


def test_loading_the_digest_already_served_is_a_cheap_idempotent_200(
    server: RunningServer, small_bundle: BuiltBundle
) -> None:
    before = server.state.current
    response = load(server, str(small_bundle.path), small_bundle.digest)
    assert (
        response.status_code == 200 and response.json()["bundle"]["digest"] == small_bundle.digest
    )
    assert server.state.current is before


def test_the_digest_served_from_another_uri_is_verified_there_and_not_loaded_again(
    server: RunningServer, small_bundle: BuiltBundle, tmp_path: Path
) -> None:
    before = server.state.current
    assert before is not None
    # Nothing listens on loopback port 1: the URI does not hold the digest, whatever it claims.
    unreachable = load(server, "http://127.0.0.1:1/b/", small_bundle.digest)
    assert unreachable.status_code == 502 and server.state.current is before
    moved = str(shutil.copytree(small_bundle.path, tmp_path / "moved"))
    response = load(server, moved, small_bundle.digest)
    assert response.status_code == 200 and response.json()["bundle"]["uri"] == moved
    assert server.state.current is not None and server.state.current.sessions is before.sessions


def test_a_failed_swap_keeps_the_old_bundle_serving_and_reports_why(
    server: RunningServer, small_bundle: BuiltBundle, second_bundle: BuiltBundle, tmp_path: Path
) -> None:
    corrupt = shutil.copytree(second_bundle.path, tmp_path / "corrupt")
    victim = next((corrupt / "models").glob("*.onnx"))
    victim.write_bytes(b"not onnx")

    response = load(server, str(corrupt))
    assert response.status_code == 422
    body = response.json()
    assert (
        body["reason"] == "BundleInvalid"
        and f"file models/{victim.name} has sha256" in body["error"]
    )
    assert body["bundle"]["digest"] == small_bundle.digest

    unreachable = load(server, f"http://127.0.0.1:{free_loopback_port()}/b/")
    assert unreachable.status_code == 502 and unreachable.json()["reason"] == "Unreachable"

    wrong_digest = load(server, str(second_bundle.path), "sha256:" + "1" * 64)
    assert wrong_digest.status_code == 422 and "expected sha256:111" in wrong_digest.json()["error"]

    assert httpx.get(f"{server.url}/v2/health/ready").status_code == 200
    meta = httpx.get(f"{server.url}/v2").json()
    assert meta["bundle"]["digest"] == small_bundle.digest
    assert meta["lastLoad"]["ok"] is False and meta["lastLoad"]["reason"] == "BundleInvalid"
    health = httpx.get(f"{server.url}/v2/health/ready").json()
    assert health["lastLoad"]["ok"] is False
    assert httpx.post(f"{server.url}/v2/models/gas-lock-02d/infer", json=ROWS).status_code == 200
    metrics = httpx.get(f"{server.url}/metrics").text
    assert "modelfleet_runtime_last_load_success 0.0" in metrics
    assert (
        'modelfleet_runtime_bundle_loads_total{reason="BundleInvalid",result="failure"} 2.0'
        in metrics
    )
    assert (
        'modelfleet_runtime_bundle_loads_total{reason="Unreachable",result="failure"} 1.0'
        in metrics
    )


def test_requests_keep_succeeding_during_swaps(
    server: RunningServer, small_bundle: BuiltBundle, second_bundle: BuiltBundle
) -> None:
    failures: list[int] = []
    stop = threading.Event()

    def hammer() -> None:
        with httpx.Client(base_url=server.url) as client:
            while not stop.is_set():
                response = client.post("/v2/well/infer", json=ROWS)
                if response.status_code != 200 or len(response.json()["outputs"]) not in (6, 8):
                    failures.append(response.status_code)

    thread = threading.Thread(target=hammer)
    thread.start()
    try:
        for bundle in (second_bundle, small_bundle, second_bundle, small_bundle):
            assert load(server, str(bundle.path), bundle.digest).status_code == 200
    finally:
        stop.set()
        thread.join(timeout=10)
    assert failures == []


def test_a_changed_annotations_file_swaps_the_bundle(
    tmp_path: Path, small_bundle: BuiltBundle, second_bundle: BuiltBundle
) -> None:
    volume = tmp_path / "podinfo"
    visible = write_annotations(
        volume, {BUNDLE_URI_ANNOTATION: f"file://{small_bundle.path}", "other": "x"}
    )
    with RunningServer(None, annotations_file=visible, poll_interval=0.02) as running:
        running.wait_serving(small_bundle.digest)
        write_annotations(
            volume,
            {
                BUNDLE_URI_ANNOTATION: str(second_bundle.path),
                BUNDLE_DIGEST_ANNOTATION: second_bundle.digest,
            },
        )
        running.wait_serving(second_bundle.digest)

        # A digest that does not match is refused as BundleInvalid; the previous bundle stays.
        write_annotations(
            volume,
            {
                BUNDLE_URI_ANNOTATION: str(small_bundle.path),
                BUNDLE_DIGEST_ANNOTATION: "sha256:" + "2" * 64,
            },
        )
        wait_until(
            "refusal",
            lambda: running.state.last_load is not None and not running.state.last_load.ok,
        )
        assert (
            running.state.last_load is not None
            and running.state.last_load.reason == "BundleInvalid"
        )
        assert (
            running.state.current is not None
            and running.state.current.digest == second_bundle.digest
        )


def test_reload_request_reloads_even_when_nothing_changed(
    tmp_path: Path, small_bundle: BuiltBundle, second_bundle: BuiltBundle
) -> None:
    """What SIGHUP does for a plain process: the directory changed in place, reload it."""
    live = shutil.copytree(small_bundle.path, tmp_path / "live")
    with RunningServer(str(live), poll_interval=0.02) as running:
        running.wait_serving(small_bundle.digest)
        shutil.rmtree(live)
        shutil.copytree(second_bundle.path, live)
        running.loop.call_soon_threadsafe(running.watcher.request_reload)
        running.wait_serving(second_bundle.digest)


def test_annotations_file_without_a_bundle_uri_is_reported(tmp_path: Path) -> None:
    visible = write_annotations(tmp_path / "podinfo", {"unrelated": "1"})
    with RunningServer(None, annotations_file=visible) as running:
        wait_until("the missing-URI report", lambda: running.state.last_load is not None)
        assert (
            running.state.last_load is not None and running.state.last_load.reason == "NoBundleUri"
        )
        assert httpx.get(f"{running.url}/v2/health/ready").status_code == 503


def test_go_quoted_annotation_values_are_unquoted() -> None:
    assert unquote_go(r'"a\"b\\c\n\t\u00e9\x41\101"') == 'a"b\\c\n\téAA'
    text = 'modelfleet.dev/bundle-uri="http://127.0.0.1:9/b/"\nkubernetes.io/config.seen="2026-11-25T10:00:00Z"\n'
    assert parse_annotations(text)["modelfleet.dev/bundle-uri"] == "http://127.0.0.1:9/b/"


def test_an_unreachable_new_bundle_is_retried_while_the_old_one_serves(
    tmp_path: Path, small_bundle: BuiltBundle, second_bundle: BuiltBundle
) -> None:
    volume = tmp_path / "podinfo"
    visible = write_annotations(volume, {BUNDLE_URI_ANNOTATION: str(small_bundle.path)})
    later = tmp_path / "published-later"
    with RunningServer(None, annotations_file=visible, poll_interval=0.02) as running:
        running.wait_serving(small_bundle.digest)
        write_annotations(
            volume,
            {BUNDLE_URI_ANNOTATION: str(later), BUNDLE_DIGEST_ANNOTATION: second_bundle.digest},
        )
        wait_until(
            "failure",
            lambda: (
                running.state.last_load is not None
                and running.state.last_load.reason == "Unreachable"
            ),
        )
        assert (
            running.state.current is not None
            and running.state.current.digest == small_bundle.digest
        )
        shutil.copytree(second_bundle.path, later)
        running.wait_serving(second_bundle.digest)
