"""Functional monitoring on one machine: a sensor feed, a real Prometheus, the fleet's spec.

Why this exists: the demo's monitoring chapter and the e2e test of the whole chain
(tests/e2e/test_functional_monitoring.py) run the same parts, so they are assembled once, here:

- `LiveFeed`: sensor rows sent to real-runtime wells from a background thread until stopped,
  drawn with `sensor_feed.WellRows` (the generator the wells' bundles trained on), drift
  switchable per well while it runs;
- `monitoring_prometheus_config`: a Prometheus that discovers the well pods through the
  cluster's API (`prometheus_server.well_pods_scrape_config`, the chart's relabelling) and
  evaluates the chart's own alert rules (`chart_alert_rules`: the PrometheusRule rendered by
  Helm, with short `for` durations);
- the ModelDeployment fragments pointing the operator at it: `monitoring_spec`,
  `prediction_psi_analysis`, `runtime_monitoring_env`;
- what both expect of the chapter: the drift switched on (`DRIFT_SENSOR`, `DRIFT_SD`), the
  PSI threshold, the runtime port.

The manifests and the configuration are pure; `LiveFeed`, `firing_alerts` and
`chart_alert_rules` (Helm) do the I/O.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final, TypedDict

import httpx
import yaml

from modelfleet.api.spec import (
    FLEET_PLACEHOLDER,
    NAMESPACE_PLACEHOLDER,
    WELLS_PLACEHOLDER,
    RuntimeSpec,
)
from modelfleet.logic.wellpod import LABEL_WELL
from modelfleet_dev.prometheus_server import (
    RunningPrometheus,
    prometheus_config,
    well_pods_scrape_config,
)
from modelfleet_dev.sensor_feed import WELL_INFER_PATH, Drift, WellRows, check_target, infer_body
from runtime_contract import monitoring as contract

ROOT: Final = Path(__file__).resolve().parents[1]
CHART_DIR: Final = ROOT / "charts" / "modelfleet"
RUNTIME_SETTINGS_PREFIX: Final = "MODELFLEET_RUNTIME_"
WELL_DRIFTING_ALERT: Final = "ModelFleetWellDrifting"
"""The chart's per-well drift alert (charts/modelfleet/templates/prometheusrule.yaml)."""
PREDICTION_PSI_CHECK: Final = "prediction-psi"
RUNTIME_PORT: Final = RuntimeSpec().port
"""The wells' runtime port (spec.runtime.port left at its default), where the feed sends rows."""
DRIFT_SENSOR: Final = "motor_temperature_c"
DRIFT_SD: Final = 3.0
"""The drift that the demo and the e2e test switch on: this sensor, shifted by this many
standard deviations."""
PSI_THRESHOLD: Final = 0.25
"""The PSI the predictions must stay below in the canary analysis, and the one a drifting
feature exceeds: the convention's 0.25."""


# --- The fleet's spec (pure) --------------------------------------------------------------------


class EnvVarManifest(TypedDict):
    name: str
    value: str


def runtime_monitoring_env(*, window_rows: int, min_rows: int) -> list[EnvVarManifest]:
    """spec.runtime.env for a short drift window (model_runtime.settings, MODELFLEET_RUNTIME_*)."""
    return [
        {"name": f"{RUNTIME_SETTINGS_PREFIX}MONITORING_WINDOW_ROWS", "value": str(window_rows)},
        {"name": f"{RUNTIME_SETTINGS_PREFIX}MONITORING_MIN_ROWS", "value": str(min_rows)},
    ]


def monitoring_spec(prometheus_url: str, *, interval_seconds: int) -> dict[str, Any]:
    """spec.monitoring: the operator reads the fleet's series from `prometheus_url`."""
    return {"prometheus": {"address": prometheus_url}, "intervalSeconds": interval_seconds}


def prediction_psi_query() -> str:
    """Each canary well's worst prediction PSI, labelled by well and model (the operator fills
    in the fleet's namespace and name and the canary wells)."""
    selector = (
        f'namespace="{NAMESPACE_PLACEHOLDER}",fleet="{FLEET_PLACEHOLDER}",'
        f'well=~"{WELLS_PLACEHOLDER}"'
    )
    return f"max by (well, model) ({contract.PREDICTION_PSI_WORST}{{{selector}}})"


def prediction_psi_analysis(
    *, threshold: float, interval_seconds: int, measurements: int, min_rows: int
) -> dict[str, Any]:
    """spec.rollout.analysis: every canary well's predictions must keep their reference
    distribution (prediction PSI below `threshold`) for `measurements` intervals in a row."""
    return {
        "queries": [
            {
                "name": PREDICTION_PSI_CHECK,
                "query": prediction_psi_query(),
                "operator": "LessThan",
                "threshold": threshold,
            }
        ],
        "intervalSeconds": interval_seconds,
        "measurements": measurements,
        "minRows": min_rows,
    }


# --- Prometheus ---------------------------------------------------------------------------------


def chart_alert_rules(rule_values: Mapping[str, Any]) -> dict[str, Any]:
    """The chart's PrometheusRule rendered by Helm with `rule_values` (monitoring.prometheusRule
    values, e.g. short `driftFor`), as a Prometheus rule file: `{"groups": [...]}`."""
    import helm_python as helm  # libhelm: loaded only where a chart is rendered

    values = {"monitoring": {"prometheusRule": {"enabled": True, **rule_values}}}
    chart = helm.Chart.load(CHART_DIR)
    try:
        chart.validate_schema(values)
        manifests = chart.render(values, name="modelfleet", namespace="default", is_install=True)
    finally:
        chart.close()
    for path, text in sorted(manifests.items()):
        if path.endswith(".txt"):
            continue
        for doc in yaml.safe_load_all(text):
            if doc and doc.get("kind") == "PrometheusRule":
                return {"groups": doc["spec"]["groups"]}
    raise ValueError("the chart rendered no PrometheusRule with monitoring.prometheusRule on")


def monitoring_prometheus_config(
    kubeconfig: Path,
    rule_file: Path,
    *,
    namespaces: Sequence[str],
    wells: Sequence[str] = (),
    interval_seconds: float = 1.0,
) -> dict[str, Any]:
    """Well pods discovered through `kubeconfig`'s API and relabelled as the chart's PodMonitor
    does, scraped and rules evaluated every `interval_seconds`. With `wells`, discovery asks
    the API only for those wells' pods (a label selector; kubesim's simulated pods serve no
    /metrics, so the demo watches its real-runtime wells only)."""
    scrape = well_pods_scrape_config(
        kubeconfig, namespaces=namespaces, scrape_interval=interval_seconds
    )
    if wells:
        for sd in scrape.get("kubernetes_sd_configs", []):
            sd["selectors"] = [{"role": "pod", "label": f"{LABEL_WELL} in ({','.join(wells)})"}]
    return prometheus_config([scrape], rule_files=[rule_file], evaluation_interval=interval_seconds)


def write_rule_file(path: Path, rule_values: Mapping[str, Any]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump(chart_alert_rules(rule_values), sort_keys=False))
    return path


class Alert(TypedDict):
    name: str
    state: str
    labels: dict[str, str]
    value: str
    summary: str


def alerts(prometheus: RunningPrometheus) -> list[Alert]:
    """Prometheus' alerts (`GET /api/v1/alerts`): pending and firing, with their labels."""
    answer = prometheus.http.get("/api/v1/alerts")
    answer.raise_for_status()
    return [
        Alert(
            name=str(a["labels"].get("alertname", "")),
            state=str(a.get("state", "")),
            labels={k: str(v) for k, v in a["labels"].items()},
            value=str(a.get("value", "")),
            summary=str((a.get("annotations") or {}).get("summary", "")),
        )
        for a in answer.json()["data"]["alerts"]
    ]


def firing(found: Sequence[Alert], name: str, **labels: str) -> list[Alert]:
    return [
        a
        for a in found
        if a["name"] == name
        and a["state"] == "firing"
        and all(a["labels"].get(k) == v for k, v in labels.items())
    ]


# --- The sensor feed ----------------------------------------------------------------------------


@dataclass(frozen=True)
class FeedCounts:
    rows_sent: dict[str, int]
    failed_requests: dict[str, int]


class LiveFeed:
    """Sensor rows for each well's runtime, `rate` rows per second per well in requests of
    `batch` rows, from a daemon thread until `stop()` (or leaving the `with` block).

    `drift(well, sensor, shift_sd)` switches a well's stream to a shifted one at once (0
    puts the sensor back). Rows come from the history `seed` generates for each well: the
    one the bundle in service was trained on, so undrifted rows look like its reference.
    Targets must be loopback or pod addresses (`sensor_feed.check_target`)."""

    def __init__(
        self, targets: Mapping[str, str], *, seed: int, rate: float = 100.0, batch: int = 10
    ) -> None:
        if not 0 < rate <= 2_000 or batch < 1:
            raise ValueError(f"rate {rate} rows/s (at most 2000), batch {batch} (at least 1)")
        self.targets = {well: check_target(url) for well, url in targets.items()}
        self.seed = seed
        self.batch = batch
        self.period = batch / rate
        self._lock = threading.Lock()
        self._streams = {well: WellRows(well, seed) for well in self.targets}
        self._drifts: dict[str, Drift] = {}
        self._generation = 1
        self._sent = dict.fromkeys(self.targets, 0)
        self._failed = dict.fromkeys(self.targets, 0)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="sensor-feed", daemon=True)

    def __enter__(self) -> LiveFeed:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def stop(self) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout=15)

    def drift(self, well: str, sensor: str, shift_sd: float) -> None:
        if well not in self.targets:
            raise ValueError(f"the feed has no target for well {well!r}")
        drift = Drift(well, sensor, shift_sd)
        with self._lock:
            self._generation += 1  # a new draw sequence, not a replay of the first rows
            if shift_sd:
                self._drifts[well] = drift
            else:
                self._drifts.pop(well, None)
            chosen = [self._drifts[well]] if well in self._drifts else []
            self._streams[well] = WellRows(well, self.seed, chosen, draw_seed=self._generation)

    def counts(self) -> FeedCounts:
        with self._lock:
            return FeedCounts(dict(self._sent), dict(self._failed))

    def _run(self) -> None:
        with httpx.Client(timeout=10.0) as client:
            due = time.monotonic()
            while not self._stop.is_set():
                for well, url in self.targets.items():
                    with self._lock:
                        rows = self._streams[well].take(self.batch)
                    try:
                        answer = client.post(url + WELL_INFER_PATH, json=infer_body(rows))
                        ok = answer.status_code == 200
                    except httpx.HTTPError:
                        ok = False
                    with self._lock:
                        if ok:
                            self._sent[well] += self.batch
                        else:
                            self._failed[well] += 1
                due += self.period
                # Pacing a sender: the event is the clock; a stop() wakes it at once.
                self._stop.wait(max(0.0, due - time.monotonic()))
                due = max(due, time.monotonic() - self.period)  # no burst after a stall


def pod_targets(
    pods: Sequence[Mapping[str, Any]], wells: Sequence[str], port: int
) -> dict[str, str]:
    """`well -> http://podIP:port` for the running pods of `wells` (pods without an IP skipped)."""
    found: dict[str, str] = {}
    for pod in pods:
        well = ((pod.get("metadata") or {}).get("labels") or {}).get(LABEL_WELL)
        ip = (pod.get("status") or {}).get("podIP")
        if (
            isinstance(well, str)
            and well in wells
            and ip
            and not (pod.get("metadata") or {}).get("deletionTimestamp")
        ):
            found[well] = f"http://{ip}:{port}"
    return found
