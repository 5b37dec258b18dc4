"""Fault injection (per verb and resource) and the ``python -m kubesim serve`` entry point."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import aiohttp
import pytest
import yaml

from kubesim.harness.cluster import KubeSim
from kubesim.harness.testing import run_kubesim
from kubesim.http.faults import FaultConfig, FaultKind, FaultRule, parse_fault_rule
from kubesim.node.kubelet import KubeletConfig
from tests.kubesim.conftest import Http

CMS = "/api/v1/namespaces/default/configmaps"


async def test_injected_throttle_is_429_with_retry_after(tmp_path: Path) -> None:
    """API Priority and Fairness rejects with 429 and a Retry-After header.
    https://kubernetes.io/docs/concepts/cluster-administration/flow-control/#diagnostics"""
    faults = FaultConfig(
        [FaultRule(FaultKind.THROTTLE, verb="list", resource="configmaps", retry_after=3, times=1)]
    )
    async with (
        run_kubesim(tmp_path, faults=faults, run_kubelet=False) as sim,
        aiohttp.ClientSession() as s,
    ):
        http = Http(s, sim.url)
        reply = await http.get(CMS)
        assert reply.status == 429 and reply.headers["Retry-After"] == "3"
        assert reply.body["details"]["retryAfterSeconds"] == 3
        assert (await http.get(CMS)).status == 200  # times=1
        assert (await http.get("/api/v1/namespaces/default/secrets")).status == 200


async def test_injected_500_conflict_and_latency(tmp_path: Path) -> None:
    """Injected 500 InternalError, 409 Conflict on writes, and added latency, per verb/resource.
    https://kubernetes.io/docs/reference/using-api/api-concepts/#api-response-status-codes"""
    faults = FaultConfig()
    async with (
        run_kubesim(tmp_path, faults=faults, run_kubelet=False) as sim,
        aiohttp.ClientSession() as s,
    ):
        http = Http(s, sim.url)
        faults.add(FaultRule(FaultKind.ERROR, verb="create", resource="configmaps", times=1))
        reply = await http.post(CMS, {"metadata": {"name": "a"}})
        assert reply.status == 500 and reply.body["reason"] == "InternalError"
        faults.add(FaultRule(FaultKind.CONFLICT, verb="patch", times=1))
        await http.ok("POST", CMS, {"metadata": {"name": "a"}})
        reply = await http.patch(f"{CMS}/a", {"data": {"x": "1"}})
        assert reply.status == 409 and reply.body["reason"] == "Conflict"
        faults.clear()
        faults.add(FaultRule(FaultKind.LATENCY, verb="get", latency_seconds=0.3))
        loop = asyncio.get_running_loop()
        started = loop.time()
        await http.ok("GET", f"{CMS}/a")
        assert loop.time() - started >= 0.3


async def test_injected_watch_drop_and_forced_gone(tmp_path: Path) -> None:
    """Dropped watch connections end the stream early; a forced 410 sends an ERROR Expired event.
    https://kubernetes.io/docs/reference/using-api/api-concepts/#410-gone-responses"""
    faults = FaultConfig(
        [
            FaultRule(FaultKind.GONE, verb="watch", times=1),
            FaultRule(FaultKind.DROP_WATCH, verb="watch", drop_after_seconds=0.2),
        ]
    )
    async with (
        run_kubesim(tmp_path, faults=faults, run_kubelet=False) as sim,
        aiohttp.ClientSession() as s,
    ):
        http = Http(s, sim.url)
        rv = (await http.ok("GET", CMS))["metadata"]["resourceVersion"]
        events = await http.watch_lines(f"{CMS}?watch=1&resourceVersion={rv}", 3)
        assert events[0]["type"] == "ERROR" and events[0]["object"]["code"] == 410
        loop = asyncio.get_running_loop()
        started = loop.time()
        with contextlib.suppress(aiohttp.ClientPayloadError):  # cut mid-stream, as intended
            await http.watch_lines(f"{CMS}?watch=1&resourceVersion={rv}&timeoutSeconds=30", 100)
        assert loop.time() - started < 5


def test_fault_rule_and_kubelet_profile_parse_from_cli_text() -> None:
    """CLI syntax for --fault and --kubelet (kubesim's own, no apiserver counterpart)."""
    rule = parse_fault_rule("kind=throttle,verb=list,resource=pods,probability=0.5,retry_after=2")
    assert (rule.kind, rule.verb, rule.resource, rule.probability, rule.retry_after) == (
        FaultKind.THROTTLE,
        "list",
        "pods",
        0.5,
        2,
    )
    with pytest.raises(ValueError, match="needs kind"):
        parse_fault_rule("verb=list")
    profile = KubeletConfig.parse("delay=1.5,jitter=0.5,crash_loop=app in (a,b),refresh=3")
    assert (
        profile.delay_seconds,
        profile.jitter_seconds,
        profile.crash_loop_selector,
        profile.annotation_refresh_delay,
    ) == (1.5, 0.5, "app in (a,b)", 3.0)
    assert KubeletConfig.parse("instant") == KubeletConfig()


def test_cli_serve_writes_kubeconfig_and_stops_on_sigterm(tmp_path: Path) -> None:
    """``python -m kubesim serve --kubeconfig FILE`` serves until SIGTERM; kubectl accepts the file."""
    kubeconfig = tmp_path / "kc.yaml"
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "kubesim",
            "serve",
            "--kubeconfig",
            str(kubeconfig),
            "--kubelet",
            "instant",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    try:
        deadline = time.monotonic() + 15
        while not kubeconfig.exists():
            assert time.monotonic() < deadline and proc.poll() is None, (
                proc.stderr.read() if proc.stderr else ""
            )
            time.sleep(0.05)
        config = yaml.safe_load(kubeconfig.read_text())
        assert config["current-context"] == "kubesim"
        assert config["clusters"][0]["cluster"]["server"].startswith("http://127.0.0.1:")
        out = subprocess.run(
            [
                "kubectl",
                f"--kubeconfig={kubeconfig}",
                f"--cache-dir={tmp_path / 'cache'}",
                "get",
                "ns",
                "-o",
                "name",
            ],
            capture_output=True,
            text=True,
            timeout=30,
        )
        assert "namespace/default" in out.stdout, out.stderr
    finally:
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=10)
        assert proc.returncode == 0, err


@pytest.mark.kubesim(
    faults=FaultConfig([FaultRule(FaultKind.ERROR, verb="get", resource="secrets")])
)
async def test_kubesim_marker_configures_the_fixture(kubesim: KubeSim) -> None:
    """``@pytest.mark.kubesim(...)`` passes kubelet/faults to the fixture (harness contract)."""
    async with aiohttp.ClientSession() as session:
        http = Http(session, kubesim.url)
        assert (await http.get("/api/v1/namespaces/default/secrets/x")).status == 500
        assert (await http.get(f"{CMS}/x")).status == 404
