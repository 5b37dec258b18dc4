"""`--ready-requires-annotated-bundle`: the readiness probe passes only while the runtime serves
the URI and digest its annotations name, so the kubelet's Ready confirms the bundle
(bundleConfirmation: ReadinessProbe)."""

from __future__ import annotations

from pathlib import Path

import httpx
from runtime_harness import RunningServer, write_annotations

from bundle_builder.building import BuiltBundle
from model_runtime.annotations import BUNDLE_DIGEST_ANNOTATION, BUNDLE_URI_ANNOTATION
from model_runtime.cli import build_parser
from modelfleet_dev.api_poller import wait_until
from runtime_contract import READY_REQUIRES_ANNOTATED_BUNDLE_FLAG


def ready(server: RunningServer) -> int:
    return httpx.get(f"{server.url}/v2/health/ready").status_code


def annotate(volume: Path, bundle: BuiltBundle, digest: str | None = None) -> Path:
    return write_annotations(
        volume,
        {
            BUNDLE_URI_ANNOTATION: f"file://{bundle.path}",
            BUNDLE_DIGEST_ANNOTATION: digest or bundle.digest,
        },
    )


def test_the_flag_the_operator_passes_is_the_runtimes_own() -> None:
    args = build_parser().parse_args(["serve", READY_REQUIRES_ANNOTATED_BUNDLE_FLAG])
    assert args.ready_requires_annotated_bundle is True


def test_ready_only_once_the_annotated_digest_serves(
    tmp_path: Path, small_bundle: BuiltBundle
) -> None:
    visible = annotate(tmp_path / "podinfo", small_bundle)
    with RunningServer(
        None, annotations_file=visible, poll_interval=0.02, ready_requires_annotated_bundle=True
    ) as running:
        running.wait_serving(small_bundle.digest)
        assert ready(running) == 200
        assert "modelfleet_runtime_ready 1" in httpx.get(f"{running.url}/metrics").text


def test_not_ready_while_a_swap_to_the_newly_annotated_bundle_is_pending_or_refused(
    tmp_path: Path, small_bundle: BuiltBundle, second_bundle: BuiltBundle
) -> None:
    volume = tmp_path / "podinfo"
    visible = annotate(volume, small_bundle)
    with RunningServer(
        None, annotations_file=visible, poll_interval=0.02, ready_requires_annotated_bundle=True
    ) as running:
        running.wait_serving(small_bundle.digest)
        # A digest the bundle does not have: refused, the old bundle keeps serving requests,
        # and the probe fails, since what serves is not what the pod was asked to serve.
        annotate(volume, second_bundle, digest="sha256:" + "2" * 64)
        wait_until(
            "refusal",
            lambda: running.state.last_load is not None and not running.state.last_load.ok,
        )
        assert running.state.current is not None
        assert running.state.current.digest == small_bundle.digest
        assert ready(running) == 503
        assert "modelfleet_runtime_ready 0" in httpx.get(f"{running.url}/metrics").text
        annotate(volume, second_bundle)
        running.wait_serving(second_bundle.digest)
        wait_until("ready on the new bundle", lambda: ready(running) == 200)


def test_a_bundle_loaded_through_the_api_does_not_pass_the_probe(
    tmp_path: Path, small_bundle: BuiltBundle, second_bundle: BuiltBundle
) -> None:
    visible = annotate(tmp_path / "podinfo", small_bundle)
    with RunningServer(
        None, annotations_file=visible, poll_interval=0.02, ready_requires_annotated_bundle=True
    ) as running:
        running.wait_serving(small_bundle.digest)
        answer = httpx.post(
            f"{running.url}/v2/repository/bundle/load",
            json={"uri": f"file://{second_bundle.path}", "digest": second_bundle.digest},
            timeout=30,
        )
        assert answer.status_code == 200, answer.text
        assert ready(running) == 503


def test_without_the_flag_any_verified_bundle_is_ready(
    tmp_path: Path, small_bundle: BuiltBundle, second_bundle: BuiltBundle
) -> None:
    volume = tmp_path / "podinfo"
    visible = annotate(volume, small_bundle)
    with RunningServer(None, annotations_file=visible, poll_interval=0.02) as running:
        running.wait_serving(small_bundle.digest)
        annotate(volume, second_bundle, digest="sha256:" + "2" * 64)
        wait_until(
            "refusal",
            lambda: running.state.last_load is not None and not running.state.last_load.ok,
        )
        assert ready(running) == 200  # the gate's operator reads /v2, which says why
