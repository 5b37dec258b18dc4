"""A real Prometheus fed without runtimes: it scrapes a loopback exporter serving the runtime
contract's gauges with the pod labels (namespace, pod, well, fleet) the PodMonitor would add,
set by the test. Prometheus evaluates the operator's real PromQL over them.

Prometheus is the dev harness's (`modelfleet_dev.prometheus_server`: pinned, built under
~/.cache/modelfleet/prometheus by `make prometheus`, a prerequisite of `make test`).
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import httpx

from modelfleet_dev import prometheus_server
from modelfleet_dev.api_poller import wait_until
from modelfleet_dev.ports import LOOPBACK

SCRAPE_SECONDS = 0.5

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
    """The dev harness's pinned Prometheus scraping a fresh exporter every half second."""
    exporter = SeriesExporter()
    config = prometheus_server.prometheus_config(
        [
            prometheus_server.static_scrape_config(
                "runtimes",
                [exporter.address],
                scrape_interval=SCRAPE_SECONDS,
                honor_labels=True,  # the exporter's pod labels, as the PodMonitor relabels them
            )
        ]
    )
    try:
        with prometheus_server.running_prometheus(config, tmp) as running:
            prom = Prometheus(running.url, exporter)
            # Discovery hands the static target to the scraper after up to 5 s.
            prom.wait_scraped('up{job="runtimes"} == 1', timeout=60)
            yield prom
    finally:
        exporter.close()
