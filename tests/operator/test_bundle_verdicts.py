"""How the operator reads a runtime's answers about a pod's bundle (pure functions)."""

from __future__ import annotations

from typing import Any

from modelfleet.execution import verdict_from_load, verdict_from_metadata
from modelfleet.planning import ConfirmBundle

URI = "file:///bundles/1.0.0/w-1"
DIGEST = "sha256:" + "a" * 64
ACTION = ConfirmBundle("fleet-w-1", "w-1", URI, DIGEST)


def metadata(bundle: dict[str, Any] | None, last: dict[str, Any] | None = None) -> dict[str, Any]:
    return {"name": "model-runtime", "bundle": bundle, "lastLoad": last}


def test_a_new_pod_serving_its_annotated_bundle_is_confirmed_from_a_read() -> None:
    verdict = verdict_from_metadata(200, metadata({"uri": URI, "digest": DIGEST}), ACTION)
    assert verdict == ("True", "BundleServed", f"serving {DIGEST} from {URI}")


def test_a_runtime_still_loading_its_first_bundle_is_asked_again_later() -> None:
    assert verdict_from_metadata(200, metadata(None), ACTION) is None
    assert verdict_from_metadata(0, {"error": "connection refused"}, ACTION) is None
    assert verdict_from_metadata(503, {"error": "starting"}, ACTION) is None


def test_a_refused_first_load_is_a_definite_bundle_invalid() -> None:
    last = {"uri": URI, "ok": False, "reason": "BundleInvalid", "error": "digest mismatch"}
    verdict = verdict_from_metadata(200, metadata(None, last), ACTION)
    assert verdict == ("False", "BundleInvalid", f"{URI}: digest mismatch")


def test_a_runtime_serving_another_bundle_or_digest_is_nudged_to_load() -> None:
    other = {"uri": "file:///bundles/0.9.0/w-1", "digest": DIGEST}
    assert verdict_from_metadata(200, metadata(other), ACTION) == "nudge"
    wrong_digest = {"uri": URI, "digest": "sha256:" + "b" * 64}
    assert verdict_from_metadata(200, metadata(wrong_digest), ACTION) == "nudge"


def test_a_load_answer_about_another_bundle_is_not_a_verdict() -> None:
    other = {"bundle": {"uri": "file:///bundles/2.0.0/w-1", "digest": DIGEST}}
    assert verdict_from_load(200, other, ACTION) is None
    served = {"bundle": {"uri": URI, "digest": DIGEST}}
    assert verdict_from_load(200, served, ACTION) == (
        "True",
        "BundleServed",
        f"serving {DIGEST} from {URI}",
    )


def test_an_unreachable_bundle_is_reported_as_unreachable_not_invalid() -> None:
    answer = {"reason": "Unreachable", "error": "404 from the model store"}
    assert verdict_from_load(502, answer, ACTION) == (
        "False",
        "Unreachable",
        f"{URI}: 404 from the model store",
    )
    # An apiserver Status (the pod is gone, say) is not the runtime's verdict.
    status = {"kind": "Status", "reason": "NotFound"}
    assert verdict_from_load(404, status, ACTION) is None
