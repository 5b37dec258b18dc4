"""A real Prometheus fed without runtimes: it scrapes a loopback exporter serving the runtime
contract's gauges with the pod labels (namespace, pod, well, fleet) the PodMonitor would add,
set by the test. Prometheus evaluates the operator's real PromQL over them.

The Prometheus binary comes from the dev harness (`modelfleet_dev.prometheus_server`, which
installs it pinned under ~/.cache/modelfleet/prometheus) or from $MODELFLEET_PROMETHEUS.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import httpx
import pytest
import yaml

from modelfleet_dev.api_poller import wait_until
from modelfleet_dev.ports import LOOPBACK, free_loopback_port

SCRAPE_INTERVAL = "500ms"

Labels = tuple[tuple[str, str], ...]


class SeriesExporter:
    """`/metrics` in the Prometheus text format, with the gauges the test sets."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._series: dict[tuple[str, Labels], str] = {}
        self.scrapes = 0
        exporter = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                body = exporter.render().encode()
                self.send_response(200)
                self.send_header("Content-Type", "text/plain; version=0.0.4")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *_: object) -> None:
                pass

        self._server = ThreadingHTTPServer((LOOPBACK, 0), Handler)
        self.address = f"{LOOPBACK}:{self._server.server_address[1]}"
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()

    def set(self, metric: str, value: float | str, **labels: str) -> None:
        with self._lock:
            self._series[(metric, tuple(sorted(labels.items())))] = str(value)

    def clear(self, **labels: str) -> None:
        """Drop every series carrying these labels (a pod gone, a well that stopped)."""
        with self._lock:
            for key in [k for k in self._series if set(labels.items()) <= set(k[1])]:
                del self._series[key]

    def render(self) -> str:
        with self._lock:
            self.scrapes += 1
            lines = []
            for (metric, labels), value in sorted(self._series.items()):
                text = ",".join(f'{k}="{v}"' for k, v in labels)
                lines.append(f"{metric}{{{text}}} {value}")
            return "\n".join(lines) + "\n"

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()


def prometheus_binary() -> str:
    explicit = os.environ.get("MODELFLEET_PROMETHEUS")
    if explicit:
        return explicit
    try:
        from modelfleet_dev import prometheus_server
    except ImportError:
        found = shutil.which("prometheus")
        if found is None:
            pytest.fail("no Prometheus: set MODELFLEET_PROMETHEUS or install the dev harness")
        return found
    return str(prometheus_server.ensure_prometheus())


class Prometheus:
    def __init__(self, url: str, exporter: SeriesExporter) -> None:
        self.url = url
        self.exporter = exporter
        self.http = httpx.Client(base_url=url, timeout=10)

    def value(self, promql: str) -> list[dict[str, object]]:
        answer = self.http.get("/api/v1/query", params={"query": promql}).json()
        result: list[dict[str, object]] = answer["data"]["result"]
        return result

    def queries_answered(self) -> float:
        """Instant queries Prometheus answered (its own counter), not counting ours."""
        text = self.http.get("/metrics").text
        total = 0.0
        for line in text.splitlines():
            if (
                line.startswith("prometheus_http_requests_total{")
                and 'handler="/api/v1/query"' in line
            ):
                total += float(line.rsplit(" ", 1)[1])
        return total

    def wait_scraped(self, promql: str, check: object = bool, timeout: float = 20.0) -> None:
        """Until `promql` answers what `check` accepts (the exporter's latest values scraped)."""
        assert callable(check)
        wait_until(f"Prometheus shows {promql}", lambda: check(self.value(promql)), timeout=timeout)


@contextlib.contextmanager
def running_prometheus(tmp: Path) -> Iterator[Prometheus]:
    exporter = SeriesExporter()
    port = free_loopback_port()
    config = tmp / "prometheus.yml"
    config.write_text(
        yaml.safe_dump(
            {
                "global": {"scrape_interval": SCRAPE_INTERVAL, "evaluation_interval": "1s"},
                "scrape_configs": [
                    {
                        "job_name": "runtimes",
                        "honor_labels": True,  # the exporter's pod labels, as relabelled
                        "static_configs": [{"targets": [exporter.address]}],
                    }
                ],
            }
        )
    )
    (tmp / "data").mkdir()
    process = subprocess.Popen(
        [
            prometheus_binary(),
            f"--config.file={config}",
            f"--storage.tsdb.path={tmp / 'data'}",
            f"--web.listen-address={LOOPBACK}:{port}",
            "--query.lookback-delta=3s",  # a cleared series disappears within seconds
        ],
        stdout=subprocess.DEVNULL,
        stderr=(tmp / "prometheus.log").open("wb"),
    )
    url = f"http://{LOOPBACK}:{port}"
    try:
        log = tmp / "prometheus.log"
        wait_until("Prometheus ready", lambda: _ready(url, process, log), timeout=30)
        prom = Prometheus(url, exporter)
        # Discovery hands the static target to the scraper after up to 5 s.
        prom.wait_scraped('up{job="runtimes"} == 1', timeout=60)
        yield prom
    finally:
        process.terminate()
        try:
            process.wait(10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        exporter.close()


def _ready(url: str, process: subprocess.Popen[bytes], log: Path) -> bool:
    if process.poll() is not None:
        raise RuntimeError(f"Prometheus exited: {log.read_text()[-2000:]}")
    try:
        return httpx.get(f"{url}/-/ready", timeout=1).status_code == 200
    except httpx.HTTPError:
        time.sleep(0.05)
        return False
