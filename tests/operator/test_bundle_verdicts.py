"""How the operator reads a runtime's answers about a pod's bundle (pure functions)."""

from __future__ import annotations

import dataclasses
from typing import Any

from modelfleet.api.spec import RuntimeSpec
from modelfleet.io.execution import verdict_from_load, verdict_from_metadata
from modelfleet.logic.actions import ConfirmBundle
from modelfleet.logic.planning import budget_free_action
from modelfleet.logic.revisions import WellTarget
from modelfleet.logic.wellpod import desired_pod, observe_pod

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


def test_a_refused_bundle_is_not_asked_about_again_until_the_target_changes() -> None:
    """A definite refusal recorded on the pod stands: re-asking would rewrite the gate (its
    lastProbeTime) on every plan, a write loop for every broken well."""
    target = WellTarget("w-1", "rev1", "tmpl", "1.0.0", URI, DIGEST)
    body = desired_pod(
        deployment="fleet", deployment_uid="uid", target=target, runtime=RuntimeSpec()
    )
    status, reason, message = verdict_from_load(
        422, {"reason": "BundleInvalid", "error": "digest mismatch"}, ACTION
    ) or ("", "", "")
    body["metadata"].update(name="fleet-w-1", uid="pod-uid")
    # Its runtime refused its first bundle, so it never passed its readiness probe.
    body["status"] = {
        "phase": "Running",
        "podIP": "127.0.0.2",
        "startTime": "2026-11-25T09:59:00Z",
        "containerStatuses": [{"name": "runtime", "ready": False}],
        "conditions": [
            {
                "type": "modelfleet.dev/bundle-current",
                "status": status,
                "reason": reason,
                "message": message,
                "lastProbeTime": "2026-11-25T10:00:00Z",
            },
        ],
    }
    pod = observe_pod(body)
    assert pod is not None and pod.bundle is not None and pod.bundle.uri == URI
    assert budget_free_action(pod, target, now=1e10) is None
    # A new target (another version's bundle) is asked about.
    moved = WellTarget("w-1", "rev2", "tmpl", "2.0.0", URI.replace("1.0.0", "2.0.0"), None)
    retargeted = dataclasses.replace(
        pod, bundle_uri=moved.bundle_uri, bundle_digest=None, revision="rev2", version="2.0.0"
    )
    assert isinstance(budget_free_action(retargeted, moved, now=1e10), ConfirmBundle)
