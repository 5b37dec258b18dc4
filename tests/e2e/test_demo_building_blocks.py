"""The demo's small parts: fleet plan, model store, bundle cache, what a gate says."""

from __future__ import annotations

from pathlib import Path

import httpx

from modelfleet_dev.bundle_cache import BundleKey, ensure_bundles
from modelfleet_dev.demo_fleet import VERSIONS, FleetPlan, model_deployment
from modelfleet_dev.fleet_observer import served_digest
from modelfleet_dev.model_store import running_model_store


def test_fleet_plan_runs_the_last_wells_for_real_and_breaks_a_real_one() -> None:
    plan = FleetPlan.of(10, real_wells=3)
    assert plan.wells[0] == "no-0001"
    assert plan.real_wells == plan.wells[-3:]
    assert plan.broken_well in plan.real_wells
    assert plan.run_selector() == f"modelfleet.dev/well in ({','.join(plan.wells[-3:])})"
    keys = plan.bundle_keys()
    assert len(keys) == 10 * len(VERSIONS)
    assert {k.models for k in keys if k.well in plan.real_wells} == {plan.real_models}
    assert len({k.seed for k in keys}) == len(VERSIONS)  # versions differ in their models


def test_manifest_pins_wells_and_labels_them_with_their_country() -> None:
    manifest = model_deployment(
        name="esp",
        namespace="default",
        wells=["no-0001", "nl-0002"],
        version="1.0.0",
        bundle_uri="http://127.0.0.1:1/esp-failure/{version}/{well}",
        pins={"nl-0002": "0.9.0"},
    )
    wells = manifest["spec"]["wells"]
    assert wells == [
        {"id": "no-0001", "labels": {"country": "no"}},
        {"id": "nl-0002", "labels": {"country": "nl"}, "pin": "0.9.0"},
    ]


def test_model_store_serves_published_files_and_nothing_else(tmp_path: Path) -> None:
    bundle = tmp_path / "b"
    (bundle / "models").mkdir(parents=True)
    (bundle / "manifest.json").write_text("{}")
    (bundle / "models" / "m.onnx").write_bytes(b"onnx")
    (tmp_path / "secret").write_text("no")
    with running_model_store("esp-failure") as store:
        store.publish({("1.0.0", "w1"): bundle})
        base = store.bundle_uri("1.0.0", "w1")
        assert httpx.get(f"{base}/manifest.json").json() == {}
        assert httpx.get(f"{base}/models/m.onnx").content == b"onnx"
        assert httpx.get(f"{base}/../secret").status_code == 404
        assert httpx.get(store.bundle_uri("2.0.0", "w1") + "/manifest.json").status_code == 404
        assert store.uri_template() == f"{store.url}/esp-failure/{{version}}/{{well}}"


def test_bundle_cache_builds_once_then_hits(tmp_path: Path) -> None:
    key = BundleKey("cache-w1", "1.0.0", 1, 1)
    calls: list[tuple[int, int, int]] = []
    first = ensure_bundles([key], tmp_path, processes=1, progress=lambda *a: calls.append(a))
    assert calls[-1] == (1, 1, 0)
    again = ensure_bundles([key], tmp_path, progress=lambda *a: calls.append(a))
    assert calls[-1] == (1, 1, 1)
    assert first[key].digest == again[key].digest and first[key].digest.startswith("sha256:")


def test_served_digest_reads_only_a_true_gate() -> None:
    digest = "sha256:" + "a" * 64
    assert served_digest({"status": "True", "message": f"serving {digest} from http://x"}) == digest
    assert served_digest({"status": "False", "message": f"serving {digest} from http://x"}) is None
    assert served_digest({"status": "True", "message": "BundleInvalid"}) is None
