"""The tests' Prometheus harness: a warm install builds nothing, a config Prometheus refuses
fails the start naming the log, and a ready server answers PromQL on what it scraped."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from modelfleet_dev.prometheus_pytest import StartPrometheus
from modelfleet_dev.prometheus_server import (
    PrometheusInstall,
    PrometheusStartError,
    ensure_installed,
    prometheus_config,
    running_prometheus,
    static_scrape_config,
)


def test_a_warm_install_only_checks_its_binaries(prometheus_install: PrometheusInstall) -> None:
    said: list[str] = []
    assert ensure_installed(progress=said.append) == prometheus_install
    assert said == []


def test_a_refused_config_fails_the_start_and_names_the_log(
    prometheus_install: PrometheusInstall, tmp_path: Path
) -> None:
    config = prometheus_config([])
    config["scrape_configs"] = [{"job_name": "x", "no_such_field": True}]
    with (
        pytest.raises(PrometheusStartError, match=str(tmp_path / "prometheus.log")) as raised,
        running_prometheus(config, tmp_path, install=prometheus_install),
    ):
        pass
    assert "no_such_field" in str(raised.value)


def test_prometheus_scrapes_itself_and_answers_promql(start_prometheus: StartPrometheus) -> None:
    # Its own /metrics on its own port: the target is added once the port is known (reload).
    prometheus = start_prometheus(prometheus_config([]))
    own = prometheus.url.removeprefix("http://")
    config = prometheus_config([static_scrape_config("self", [own], scrape_interval=0.5)])
    prometheus.config_path.write_text(yaml.safe_dump(config))
    prometheus.reload()
    [up] = prometheus.wait_for('up{job="self"} == 1', timeout=30)
    assert up["labels"]["instance"] == own
