"""A real Prometheus for the tests, the demo and the operator's analysis: built, configured, run.

Why this exists: functional monitoring is only checked when a real Prometheus discovers the
well pods through the cluster's API (``kubernetes_sd_configs``), scrapes the runtimes and answers
PromQL, and when the chart's rules are evaluated by the real ``promtool``. Debian's package
(2.42) is built without Kubernetes service discovery, so both binaries are compiled from the Go
module (``cluster/go/prometheus``, Prometheus 3.16) with every discovery plugin but Kubernetes
left out (build tags ``remove_all_sd,enable_kubernetes_sd``): about a third of the full build,
which keeps the cold CI run inside its budget. The result is cached outside the tree, keyed by
version (``~/.cache/modelfleet/prometheus/3.16.0/bin``) as ``pinned_go_build`` keeps every pinned
Go build: with a manifest of sha256s, rebuilt only when missing, changed on disk or built from
another recipe.

The configuration is generated (``prometheus_config``, ``well_pods_scrape_config``: pure);
``running_prometheus`` starts the server on a free loopback port with it, waits for ``/-/ready``,
and stops it on exit; every failure names the server's log file.
"""

from __future__ import annotations

import contextlib
import enum
import json
import os
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final, Literal, NotRequired, TypedDict

import httpx
import yaml

from modelfleet.logic.wellpod import LABEL_DEPLOYMENT, LABEL_WELL
from modelfleet_dev import pinned_go_build
from modelfleet_dev.api_poller import DeadlineExceeded, poll
from modelfleet_dev.local_cluster import ManagedProcess
from modelfleet_dev.pinned_go_build import BuildError, GoBinary
from modelfleet_dev.ports import LOOPBACK, free_loopback_port

__all__ = [
    "PROMETHEUS_MODULE_VERSION",
    "PROMETHEUS_VERSION",
    "WELL_POD_TARGET_LABELS",
    "BuildError",
    "PrometheusInstall",
    "PrometheusStartError",
    "RunningPrometheus",
    "Sample",
    "Tool",
    "cache_dir",
    "ensure_installed",
    "ensure_prometheus",
    "missing_tools",
    "prometheus_config",
    "running_prometheus",
    "static_scrape_config",
    "well_pod_relabelling",
    "well_pods_scrape_config",
]

#: github.com/prometheus/prometheus publishes 3.x releases as v0.3xx.y Go module versions.
PROMETHEUS_MODULE_VERSION: Final = "v0.316.0"
PROMETHEUS_VERSION: Final = "3.16.0"
BUILD_TAGS: Final = "remove_all_sd,enable_kubernetes_sd"
MODULE_DIR: Final = Path(__file__).resolve().parents[1] / "cluster" / "go" / "prometheus"
_VERSION_PKG: Final = "github.com/prometheus/common/version"
# A plain `go build` leaves the version empty; `prometheus --version` and the
# prometheus_build_info series say which release and recipe made the binary.
_LDFLAGS: Final = " ".join(
    [
        "-s -w",
        f"-X {_VERSION_PKG}.Version={PROMETHEUS_VERSION}",
        f"-X {_VERSION_PKG}.Revision=gomod-{PROMETHEUS_MODULE_VERSION}",
        f"-X {_VERSION_PKG}.Branch=modelfleet",
        f"-X {_VERSION_PKG}.BuildUser=modelfleet",
        f"-X {_VERSION_PKG}.BuildDate=19700101-00:00:00",
    ]
)


class Tool(enum.StrEnum):
    """A binary of the install; its value is the file name in the cache's bin/ folder."""

    PROMETHEUS = "prometheus"
    PROMTOOL = "promtool"
    PROMQL_SELECTORS = "promql-selectors"
    """Ours (cluster/go/prometheus/promql-selectors): Prometheus's parser, the metric names."""


_PACKAGES: Final[dict[Tool, str]] = {
    Tool.PROMETHEUS: "github.com/prometheus/prometheus/cmd/prometheus",
    Tool.PROMTOOL: "github.com/prometheus/prometheus/cmd/promtool",
    Tool.PROMQL_SELECTORS: "modelfleet.dev/cluster/prometheus/promql-selectors",
}


def cache_dir() -> Path:
    """The version-keyed cache (``MODELFLEET_PROMETHEUS_CACHE`` overrides the root)."""
    root = os.environ.get("MODELFLEET_PROMETHEUS_CACHE")
    base = Path(root) if root else Path.home() / ".cache" / "modelfleet" / "prometheus"
    return base / PROMETHEUS_VERSION


def _binary(tool: Tool) -> GoBinary:
    return GoBinary(
        name=tool.value,
        package=_PACKAGES[tool],
        source_dir=MODULE_DIR,
        version=PROMETHEUS_MODULE_VERSION,
        ldflags=_LDFLAGS,
        tags=BUILD_TAGS,
    )


def _tool_path(tool: Tool) -> Path:
    return pinned_go_build.binary_path(cache_dir(), tool.value)


def missing_tools() -> list[Tool]:
    """Binaries not built (or not matching the manifest): empty when the install is complete."""
    return [Tool(b.name) for b in pinned_go_build.stale(map(_binary, Tool), cache_dir())]


@dataclass(frozen=True)
class PrometheusInstall:
    """The binaries of one cached install."""

    prometheus: Path
    promtool: Path
    promql_selectors: Path


def ensure_installed(progress: Callable[[str], None] = print) -> PrometheusInstall:
    """Build what is missing (idempotent: a current binary is only hashed, and nothing is said),
    then return the binaries.

    Each build logs to ``logs/build-<tool>.log`` in the cache; a failure names the tool and
    that log. Module downloads and Go's build cache stay in Go's defaults, outside the tree.
    """
    todo = missing_tools()
    if todo:
        pinned_go_build.build_binaries(
            [_binary(tool) for tool in todo],
            cache_dir(),
            label="prometheus",
            cold_hint=f"Prometheus {PROMETHEUS_VERSION}: a cold build takes several minutes",
            progress=progress,
        )
    return PrometheusInstall(
        _tool_path(Tool.PROMETHEUS),
        _tool_path(Tool.PROMTOOL),
        _tool_path(Tool.PROMQL_SELECTORS),
    )


def ensure_prometheus() -> Path:
    """The prometheus binary alone (built with the others when missing)."""
    return ensure_installed().prometheus


# --- Configuration (pure) ---------------------------------------------------------------------


class RelabelConfig(TypedDict):
    """One entry of a scrape config's ``relabel_configs`` (Prometheus's own snake_case keys)."""

    action: Literal["keep", "replace", "drop", "labelmap"]
    source_labels: list[str]
    regex: NotRequired[str]
    target_label: NotRequired[str]
    replacement: NotRequired[str]


class ScrapeConfig(TypedDict):
    job_name: str
    scrape_interval: str
    metrics_path: str
    honor_labels: NotRequired[bool]
    kubernetes_sd_configs: NotRequired[list[dict[str, Any]]]
    static_configs: NotRequired[list[dict[str, Any]]]
    relabel_configs: NotRequired[list[RelabelConfig]]


def _meta_pod_label(label: str) -> str:
    """The discovery label of a pod label: Prometheus replaces every non [a-zA-Z0-9_] by _."""
    return "__meta_kubernetes_pod_label_" + "".join(c if c.isalnum() else "_" for c in label)


#: The labels every scraped well-pod series gains, and the discovery label each comes from. The
#: chart's PodMonitor produces the same (tests/monitoring pins that): `runtime_contract.monitoring`
#: and the alert rules rely on them.
WELL_POD_TARGET_LABELS: Final[Mapping[str, str]] = {
    "fleet": _meta_pod_label(LABEL_DEPLOYMENT),
    "well": _meta_pod_label(LABEL_WELL),
    "namespace": "__meta_kubernetes_namespace",
    "pod": "__meta_kubernetes_pod_name",
}
RUNTIME_PORT_NAME: Final = "http"
"""The well container's port name (modelfleet.logic.wellpod): the one target kept per pod."""


def well_pod_relabelling() -> list[RelabelConfig]:
    """Keep the running pods of ModelDeployments on their runtime port, name them by fleet,
    well, namespace and pod, and drop every other discovered pod."""
    rules: list[RelabelConfig] = [
        {
            "action": "keep",
            "source_labels": [
                "__meta_kubernetes_pod_labelpresent_"
                + _meta_pod_label(LABEL_DEPLOYMENT).removeprefix("__meta_kubernetes_pod_label_")
            ],
            "regex": "true",
        },
        {
            "action": "keep",
            "source_labels": ["__meta_kubernetes_pod_container_port_name"],
            "regex": RUNTIME_PORT_NAME,
        },
        {"action": "keep", "source_labels": ["__meta_kubernetes_pod_phase"], "regex": "Running"},
    ]
    rules += [
        {"action": "replace", "source_labels": [source], "target_label": target}
        for target, source in WELL_POD_TARGET_LABELS.items()
    ]
    return rules


def well_pods_scrape_config(
    kubeconfig: Path,
    *,
    namespaces: Sequence[str] = (),
    job_name: str = "modelfleet-wells",
    scrape_interval: float = 1.0,
) -> ScrapeConfig:
    """Well pods discovered through the cluster's API (role pod, with `kubeconfig`), in
    `namespaces` (all of them when empty), scraped on the runtime's /metrics."""
    sd: dict[str, Any] = {"role": "pod", "kubeconfig_file": str(kubeconfig)}
    if namespaces:
        sd["namespaces"] = {"names": list(namespaces)}
    return {
        "job_name": job_name,
        "scrape_interval": _duration(scrape_interval),
        "metrics_path": "/metrics",
        "kubernetes_sd_configs": [sd],
        "relabel_configs": well_pod_relabelling(),
    }


def static_scrape_config(
    job_name: str,
    targets: Sequence[str],
    *,
    scrape_interval: float = 1.0,
    honor_labels: bool = False,
) -> ScrapeConfig:
    """Fixed `host:port` targets (the operator's metrics port, a runtime started by hand, an
    exporter of test series: `honor_labels` keeps the labels it sets, pod labels included)."""
    config: ScrapeConfig = {
        "job_name": job_name,
        "scrape_interval": _duration(scrape_interval),
        "metrics_path": "/metrics",
        "static_configs": [{"targets": list(targets)}],
    }
    if honor_labels:
        config["honor_labels"] = True
    return config


def _duration(seconds: float) -> str:
    """A Prometheus duration; whole milliseconds (the finest unit it parses)."""
    return f"{max(1, round(seconds * 1000))}ms"


def prometheus_config(
    scrape_configs: Sequence[ScrapeConfig],
    *,
    rule_files: Sequence[Path] = (),
    evaluation_interval: float = 1.0,
) -> dict[str, Any]:
    """The whole prometheus.yml."""
    return {
        "global": {
            "scrape_interval": _duration(1.0),
            "evaluation_interval": _duration(evaluation_interval),
        },
        "rule_files": [str(p) for p in rule_files],
        "scrape_configs": [dict(c) for c in scrape_configs],
    }


# --- The running server -----------------------------------------------------------------------


class PrometheusStartError(RuntimeError):
    """Prometheus exited or did not become ready; the message names its log file."""


class Sample(TypedDict):
    """One series of an instant vector: its labels and value."""

    labels: dict[str, str]
    value: float


@dataclass
class RunningPrometheus:
    """A started server: its URL, its files, and small PromQL helpers for tests."""

    url: str
    config_path: Path
    log_path: Path
    process: ManagedProcess
    http: httpx.Client = field(repr=False)

    def query(self, expr: str) -> list[Sample]:
        """An instant query's vector; an error answer raises, naming the expression."""
        answer = self.http.get("/api/v1/query", params={"query": expr})
        body = answer.json()
        if answer.status_code != 200 or body.get("status") != "success":
            raise AssertionError(f"query {expr!r} failed ({answer.status_code}): {answer.text}")
        data = body["data"]
        if data["resultType"] != "vector":
            raise AssertionError(f"query {expr!r} gave a {data['resultType']}, not a vector")
        return [
            Sample(labels=dict(r["metric"]), value=float(r["value"][1])) for r in data["result"]
        ]

    def wait_for(
        self,
        expr: str,
        holds: Callable[[list[Sample]], bool] = bool,
        *,
        timeout: float = 60.0,
    ) -> list[Sample]:
        """Poll `expr` until `holds(vector)` (by default: a non-empty vector)."""
        try:
            return poll(
                f"PromQL {expr!r}", lambda: self.query(expr), holds, timeout=timeout, interval=0.5
            )
        except DeadlineExceeded as e:
            raise DeadlineExceeded(f"{e}\ntargets: {self.targets_summary()}") from None

    def targets(self) -> list[dict[str, Any]]:
        """The active targets (`/api/v1/targets`): labels, health and last error of each."""
        answer = self.http.get("/api/v1/targets", params={"state": "active"})
        answer.raise_for_status()
        active: list[dict[str, Any]] = answer.json()["data"]["activeTargets"]
        return active

    def targets_summary(self) -> str:
        return json.dumps(
            [
                {k: t.get(k) for k in ("scrapeUrl", "health", "lastError", "labels")}
                for t in self.targets()
            ]
        )

    def reload(self) -> None:
        """Reread the config file and rule files (`POST /-/reload`, enabled at start)."""
        self.http.post("/-/reload").raise_for_status()


def _is_ready(http: httpx.Client) -> bool:
    try:
        return http.get("/-/ready", timeout=2).status_code == 200
    except httpx.HTTPError:
        return False


@contextlib.contextmanager
def running_prometheus(
    config: Mapping[str, Any],
    work_dir: Path,
    *,
    install: PrometheusInstall | None = None,
    ready_timeout: float = 60.0,
) -> Iterator[RunningPrometheus]:
    """Prometheus with `config` (see `prometheus_config`) on a free 127.0.0.1 port, its data,
    config and log under `work_dir`; ready (``/-/ready``) on entry, stopped on exit."""
    install = install or ensure_installed()
    work_dir.mkdir(parents=True, exist_ok=True)
    config_path = work_dir / "prometheus.yml"
    config_path.write_text(yaml.safe_dump(dict(config), sort_keys=False))
    port = free_loopback_port()
    url = f"http://{LOOPBACK}:{port}"
    process = ManagedProcess(
        "prometheus",
        [
            str(install.prometheus),
            f"--config.file={config_path}",
            f"--storage.tsdb.path={work_dir / 'data'}",
            f"--web.listen-address={LOOPBACK}:{port}",
            "--web.enable-lifecycle",
            "--log.level=info",
        ],
        work_dir / "prometheus.log",
    )
    process.start()
    http = httpx.Client(base_url=url, timeout=10)
    try:

        def ready() -> bool:
            if not process.running():
                raise PrometheusStartError(
                    f"prometheus exited before /-/ready; log {process.log_path}:\n"
                    + process.log_tail()
                )
            return _is_ready(http)

        try:
            poll("prometheus /-/ready", ready, bool, timeout=ready_timeout, interval=0.1)
        except DeadlineExceeded:
            raise PrometheusStartError(
                f"prometheus not ready after {ready_timeout:g}s; log {process.log_path}:\n"
                + process.log_tail()
            ) from None
        yield RunningPrometheus(url, config_path, process.log_path, process, http)
    finally:
        http.close()
        process.stop()


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m modelfleet_dev.prometheus_server install``: build what is missing, print paths."""
    import argparse

    parser = argparse.ArgumentParser(prog="python -m modelfleet_dev.prometheus_server")
    parser.add_argument("command", choices=["install"])
    parser.parse_args(argv)
    ensure_installed()
    for tool in Tool:
        print(f"{tool.value}: {_tool_path(tool)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
