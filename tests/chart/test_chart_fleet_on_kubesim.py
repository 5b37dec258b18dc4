"""A country's whole install is one release: the fleet rendered from the pilot's values, applied
with kubectl, is served by the operator run with the Deployment's own arguments; a
`helm upgrade --set fleet.model.version=...` rolls the new version out, canary first."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import helm_python as helm
import pytest

from kubesim.harness.testing import kubesim_in_thread
from kubesim.node.kubelet import KubeletConfig
from modelfleet.app.cli import build_parser
from modelfleet.app.settings import OperatorSettings
from modelfleet_dev.kubectl import Kubectl, kubectl_binary
from modelfleet_dev.kubesim_runtime import SimulatedModelRuntime
from modelfleet_dev.operator_thread import OperatorThread
from settings_flags import settings_from_args

from .chart_rendering import CHART_DIR, country_values, merge_values, render
from .operator_on_kubesim import TestClient

pytestmark = pytest.mark.skipif(kubectl_binary() is None, reason="kubectl is not installed")

NAMESPACE = "fleet-fr"
FLEET_PATH = f"/apis/modelfleet.dev/v1alpha1/namespaces/{NAMESPACE}/modeldeployments/esp-failure"
UPGRADE = "2026.12.1"


@pytest.fixture(scope="module")
def pilot_bundles(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Bundles for every fr well at the pilot's version and the upgrade, and the pinned well's."""
    from bundle_builder.building import build_bundle

    values = country_values("fr")["fleet"]
    root = tmp_path_factory.mktemp("fr-bundles")
    for well in values["wells"]:
        for version in {well.get("pin") or values["model"]["version"], well.get("pin") or UPGRADE}:
            build_bundle(well["id"], root / version / well["id"], models=1, version=version)
    return root


def _pilot_values(bundles: Path, **model: str) -> dict[str, Any]:
    # The pilot's values with bundles on local disk, no minimum ready time (60 s in the example)
    # and 4 wells at a time after the canary instead of 1, to keep the test short.
    overrides = {
        "fleet": {
            "model": {"bundleUri": f"file://{bundles}/{{version}}/{{well}}", **model},
            "rollout": {"minReadySeconds": 0, "maxUnavailable": 4},
        }
    }
    return merge_values(country_values("fr"), overrides)


def _settings_from_the_deployment(args: list[str], kubeconfig: Path) -> OperatorSettings:
    """The operator exactly as the chart's container would start it (minus its HTTP ports)."""
    parsed = settings_from_args(OperatorSettings, build_parser().parse_args(args))
    return parsed.model_copy(
        update={"kubeconfig": str(kubeconfig), "metrics_port": None, "liveness": None}
    )


def _available(version: str, wells: int) -> Any:
    def check(status: dict[str, Any]) -> bool:
        return (
            status.get("phase") == "Available"
            and status.get("model") == f"esp-failure@{version}"
            and status.get("availableWells") == wells
            and status.get("updatedWells") == wells
        )

    return check


def test_pilot_country_installs_and_upgrades_from_its_values(
    chart: helm.Chart, pilot_bundles: Path, tmp_path: Path
) -> None:
    with kubesim_in_thread(
        tmp_path,
        kubelet=KubeletConfig(annotation_refresh_delay=30.0),
        container_runtimes=[SimulatedModelRuntime],
    ) as sim:
        kubectl = Kubectl(sim.kubeconfig, tmp_path / "kubectl-cache", namespace=None)
        kubectl.text("apply", "-f", str(CHART_DIR / "crds"))
        kubectl.text("create", "namespace", NAMESPACE)
        release = render(
            chart, _pilot_values(pilot_bundles), release=NAMESPACE, namespace=NAMESPACE
        )
        api = TestClient(sim.url)
        args = release.one("Deployment")["spec"]["template"]["spec"]["containers"][0]["args"]
        with OperatorThread(_settings_from_the_deployment(args, sim.kubeconfig)):
            kubectl.apply([release.one("ModelDeployment")])
            status = api.wait_status(
                FLEET_PATH, "the pilot's 12 wells", _available("2026.11.2", 12)
            )
            assert {(v["version"], v["wells"]) for v in status["versions"]} == {
                ("2026.11.2", 11),
                ("2026.10.1", 1),
            }

            # helm upgrade fleet-fr charts/modelfleet -f examples/fr/values.yaml --set fleet.model.version=2026.12.1
            upgraded = render(
                chart,
                _pilot_values(pilot_bundles, version=UPGRADE),
                release=NAMESPACE,
                namespace=NAMESPACE,
            )
            kubectl.apply([upgraded.one("ModelDeployment")])
            status = api.wait_status(FLEET_PATH, "the upgrade", _available(UPGRADE, 12))
            assert {(v["version"], v["wells"]) for v in status["versions"]} == {
                (UPGRADE, 11),
                ("2026.10.1", 1),
            }
        pods = api.http.get(f"/api/v1/namespaces/{NAMESPACE}/pods").json()["items"]
        assert sorted(p["metadata"]["name"] for p in pods) == [
            f"esp-failure-fr-{i:04d}" for i in range(1, 13)
        ]
