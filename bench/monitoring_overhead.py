"""Monitoring's cost on the request path: the same runtime with and without it, in one run.

Two `model-runtime serve` processes on one 100-model bundle (built with reference statistics):
monitoring on (the defaults: window 1000 rows, min 200) and off (`--monitoring-window-rows 0`).
Cases: one model's `/infer` and the whole-well endpoint (100 models), 1 row, 1 and 8
connections. Each case is driven by wrk against both sides, for `--rounds` rounds in ABBA order
(on off, then off on) so outside load falls on both alike. Two figures per run:

- wrk's p50 latency (wall clock: on a machine shared with other jobs it moves with their load);
- the server process's CPU time per request (utime + stime from /proc over the measured wrk
  run, divided by its requests): what the request costs the runtime, barely touched by others'
  load, so it shows a few percent where wall-clock latency cannot.

First, the same comparison in process without HTTP: `DataPlane.infer` / `infer_well` on the
bundle loaded twice (monitor on, off), alternated by batches, timed in thread CPU time. The
budget (issue 15): at most 5% on single-row latency and on the whole-well endpoint. The monitored
runtime's `/v2/monitoring` is read at the end (its windows counted the rows), and the load
average is printed.

Usage: .venv/bin/python bench/monitoring_overhead.py [--rounds 3] [--seconds 5] [--models 100]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent))
from runtime_throughput import (  # the sibling bench's wrk driver and process helpers
    MODEL,
    ROOT,
    SINGLE_ROW_BODY,
    WELL,
    WRK_SCRIPT,
    ensure_wrk,
    running,
    wait_http,
)

from modelfleet_dev.ports import free_loopback_port

WORK = ROOT / "build" / "bench-monitoring"
CASES = (
    ("/infer 1 row, c=1", "infer", 1),
    ("/infer 1 row, c=8", "infer", 8),
    ("/v2/well/infer 100 models 1 row, c=1", "well", 1),
    ("/v2/well/infer 100 models 1 row, c=8", "well", 8),
)
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


@dataclass(frozen=True)
class Run:
    requests: int
    p50_ms: float
    cpu_us_per_request: float


def process_cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS  # utime, stime


def wrk_measure(wrk: str, url: str, connections: int, seconds: float, pid: int) -> Run:
    body_file = WORK / "single-row.json"
    body_file.write_text(json.dumps(SINGLE_ROW_BODY))
    script = WORK / "post.lua"
    script.write_text(WRK_SCRIPT)
    env = {**os.environ, "BENCH_BODY_FILE": str(body_file)}

    def once(duration: float) -> dict[str, Any]:
        command = [wrk, "-t1", f"-c{connections}", f"-d{duration:g}s", "-s", str(script), url]
        out = subprocess.run(
            command, env=env, capture_output=True, text=True, timeout=duration + 30, check=True
        ).stdout
        line = next(x for x in out.splitlines() if x.startswith("WRK_RESULT "))
        parsed: dict[str, Any] = json.loads(line.removeprefix("WRK_RESULT "))
        if parsed["non_2xx"] or parsed["socket_errors"]:
            raise RuntimeError(f"{url}: {parsed}")
        return parsed

    once(1)  # warm-up
    cpu = process_cpu_seconds(pid)
    got = once(seconds)
    spent = process_cpu_seconds(pid) - cpu
    return Run(got["requests"], got["p50_us"] / 1000, spent / got["requests"] * 1e6)


def in_process(bundle_dir: Path, model: str, rounds: int) -> list[dict[str, Any]]:
    """Thread CPU microseconds per data-plane call, with and without monitoring."""
    from model_runtime.bundle_state import BundleState, load_bundle
    from model_runtime.dataplane import DataPlane
    from model_runtime.metrics import RuntimeMetrics
    from model_runtime.monitoring.config import MONITORING_OFF, MonitoringConfig

    planes = {}
    for side, config in (("on", MonitoringConfig()), ("off", MONITORING_OFF)):
        state = BundleState(RuntimeMetrics(), monitoring=config)
        state.current = load_bundle(str(bundle_dir), monitoring=config)
        planes[side] = DataPlane(state)
    body = json.dumps(SINGLE_ROW_BODY).encode()
    calls = (
        ("/infer 1 row", lambda plane: plane.infer(model, body), 512),
        ("/v2/well/infer 100 models 1 row", lambda plane: plane.infer_well(body), 128),
    )
    found = []
    for label, call, batch in calls:
        per_side: dict[str, list[float]] = {"on": [], "off": []}
        for round_ in range(rounds * 4):
            for side in ("on", "off") if round_ % 2 == 0 else ("off", "on"):
                started = time.thread_time()
                for _ in range(batch):
                    call(planes[side])
                per_side[side].append((time.thread_time() - started) / batch * 1e6)
        on, off = statistics.median(per_side["on"]), statistics.median(per_side["off"])
        found.append({"case": label, "on_us": on, "off_us": off, "ratio": on / off})
        print(f"in process {label}: {on:.1f} / {off:.1f} us = {on / off:.3f}", file=sys.stderr)
    return found


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--seconds", type=float, default=5.0, help="wrk duration per run")
    parser.add_argument("--models", type=int, default=100)
    args = parser.parse_args()
    WORK.mkdir(parents=True, exist_ok=True)
    from bundle_builder.building import build_bundle

    bundle_dir = WORK / f"bundle-{args.models}"
    if not (bundle_dir / "manifest.json").exists():
        started = time.perf_counter()
        build_bundle(WELL, bundle_dir, models=args.models)
        print(f"built the bundle in {time.perf_counter() - started:.0f}s", file=sys.stderr)
    wrk = ensure_wrk()
    if wrk is None:
        print("wrk is needed (apt-get install wrk)", file=sys.stderr)
        return 2
    load_start = os.getloadavg()
    figures_in_process = in_process(bundle_dir, MODEL, args.rounds)
    sides = {"on": [], "off": ["--monitoring-window-rows", "0"]}
    urls: dict[str, str] = {}
    pids: dict[str, int] = {}
    runs: dict[tuple[str, str], list[Run]] = {}
    with ExitStack() as stack:
        for side, flags in sides.items():
            port = free_loopback_port()
            command = [sys.executable, "-m", "model_runtime.cli", "serve", "--bundle"]
            command += [str(bundle_dir), "--port", str(port), "--log-level", "WARNING", *flags]
            process = stack.enter_context(running(command, WORK / f"runtime-{side}.log"))
            wait_http(f"http://127.0.0.1:{port}/v2/health/ready", 120, process)
            urls[side], pids[side] = f"http://127.0.0.1:{port}", process.pid
        for round_ in range(args.rounds):
            for label, path, connections in CASES:
                endpoint = f"/v2/models/{MODEL}/infer" if path == "infer" else "/v2/well/infer"
                for side in ("on", "off") if round_ % 2 == 0 else ("off", "on"):
                    run = wrk_measure(
                        wrk, urls[side] + endpoint, connections, args.seconds, pids[side]
                    )
                    runs.setdefault((side, label), []).append(run)
                    print(
                        f"{side} {label}: {run.requests} requests, p50 {run.p50_ms:.3f} ms, "
                        f"{run.cpu_us_per_request:.0f} us CPU/request",
                        file=sys.stderr,
                    )
        report = httpx.get(urls["on"] + "/v2/monitoring").json()
        summary_off = httpx.get(urls["off"] + "/v2").json().get("monitoring")
    load_end = os.getloadavg()
    rows = min(m["rows"] for m in report["models"].values())
    print(
        f"\nmonitored runtime: the emptiest model window holds {rows} rows (window {report['window_rows']})"
    )
    print(f"unmonitored runtime's /v2 summary: {summary_off}")
    print(f"load average (1 min, 2 cores): {load_start[0]:.1f} at start, {load_end[0]:.1f} at end")
    print("\n| in process, no HTTP | on us CPU/call | off us CPU/call | on/off |")
    print("| --- | ---: | ---: | ---: |")
    for figure in figures_in_process:
        print(
            f"| {figure['case']} | {figure['on_us']:.1f} | {figure['off_us']:.1f} | {figure['ratio']:.3f} |"
        )
    print(
        "\n| over HTTP (wrk) | on/off server CPU per request | on / off us | "
        "on/off p50 latency (per round) |"
    )
    print("| --- | ---: | ---: | ---: |")
    cases = []
    for label, _, _ in CASES:
        on, off = runs[("on", label)], runs[("off", label)]
        cpu_on = statistics.median(r.cpu_us_per_request for r in on)
        cpu_off = statistics.median(r.cpu_us_per_request for r in off)
        p50 = statistics.median(a.p50_ms / b.p50_ms for a, b in zip(on, off, strict=True))
        per_round = ", ".join(f"{a.p50_ms / b.p50_ms:.2f}" for a, b in zip(on, off, strict=True))
        print(
            f"| {label} | {cpu_on / cpu_off:.3f} | {cpu_on:.0f} / {cpu_off:.0f} | "
            f"{p50:.3f} ({per_round}) |"
        )
        cases.append(
            {
                "case": label,
                "cpu_ratio": cpu_on / cpu_off,
                "cpu_us_on": cpu_on,
                "cpu_us_off": cpu_off,
                "p50_ratio_median": p50,
                "runs_on": [r.__dict__ for r in on],
                "runs_off": [r.__dict__ for r in off],
            }
        )
    (WORK / "results.json").write_text(
        json.dumps(
            {
                "load_start": load_start,
                "load_end": load_end,
                "in_process": figures_in_process,
                "http": cases,
            },
            indent=2,
        )
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
