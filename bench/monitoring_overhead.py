"""Monitoring's cost on the request path: the same runtime with and without it, in one run.

Per round, two fresh `model-runtime serve` processes on one 100-model bundle (built with
reference statistics): monitoring on (the defaults: window 1000 rows, min 200) and off
(`--monitoring-window-rows 0`). Cases: one model's `/infer` and the whole-well endpoint
(100 models), 1 row, at 1 connection (wrk's p50 latency) and 8 (requests/s). Within a round
each case runs on both sides back to back, in alternating order (on off, off on, ...), and
the servers are started afresh each round, so outside load and a process's own luck (where
its sessions landed in memory) fall on both sides alike over the rounds. Per case: the median
over rounds of the round's on / off ratio, every round's ratio, and the server process's CPU
time per request (utime + stime from /proc over the measured run, divided by its requests):
what a request costs the runtime, barely touched by others' load.

First, the data plane alone, in process, without HTTP: `DataPlane.infer` / `infer_well` on
one loaded bundle, the same sessions with the monitor and without (so two loads' placement
cannot differ), alternated by batches of one fold's worth of requests (so each monitored batch
pays one fold), in thread CPU time per call. The budget (issue 15): at
most 5% on single-row latency and on the whole-well endpoint. The monitored runtime's
`/v2/monitoring` is read at the end of each round (its windows counted the rows), and the
load average is printed at the start and the end.

Usage: .venv/bin/python bench/monitoring_overhead.py [--rounds 5] [--seconds 5] [--models 100]
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from contextlib import ExitStack
from dataclasses import dataclass
from enum import Enum
from pathlib import Path
from typing import Any

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent))
from runtime_throughput import (  # the sibling bench's wrk driver and process helpers
    MODEL,
    MONITORING_OFF_FLAGS,
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
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")
SIDES = {"on": [], "off": list(MONITORING_OFF_FLAGS)}


class Figure(Enum):
    P50 = "p50 latency"  # lower is better: on / off > 1 is monitoring's cost
    THROUGHPUT = "requests/s"  # higher is better: on / off < 1 is monitoring's cost


@dataclass(frozen=True)
class Case:
    label: str
    endpoint: str
    connections: int
    figure: Figure


CASES = (
    Case("/infer 1 row, c=1", f"/v2/models/{MODEL}/infer", 1, Figure.P50),
    Case("/infer 1 row, c=8", f"/v2/models/{MODEL}/infer", 8, Figure.THROUGHPUT),
    Case("/v2/well/infer 100 models 1 row, c=1", "/v2/well/infer", 1, Figure.P50),
    Case("/v2/well/infer 100 models 1 row, c=8", "/v2/well/infer", 8, Figure.THROUGHPUT),
)


@dataclass(frozen=True)
class Run:
    requests: int
    seconds: float
    p50_ms: float
    cpu_us_per_request: float

    @property
    def requests_per_second(self) -> float:
        return self.requests / self.seconds

    def figure(self, figure: Figure) -> float:
        return self.p50_ms if figure is Figure.P50 else self.requests_per_second


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
    return Run(
        got["requests"],
        got["duration_us"] / 1e6,
        got["p50_us"] / 1000,
        spent / got["requests"] * 1e6,
    )


def in_process(bundle_dir: Path, model: str, rounds: int) -> list[dict[str, Any]]:
    """Thread CPU microseconds per data-plane call, the same sessions with and without a
    monitor, alternated by batches."""
    from model_runtime.bundle_state import BundleState, load_bundle
    from model_runtime.dataplane import DataPlane
    from model_runtime.metrics import RuntimeMetrics
    from model_runtime.monitoring.config import MonitoringConfig
    from model_runtime.monitoring.monitor import FOLD_ROWS, WELL_FOLD_ROWS

    config = MonitoringConfig()
    loaded = load_bundle(str(bundle_dir), monitoring=config)
    planes = {}
    for side in SIDES:
        state = BundleState(RuntimeMetrics(), monitoring=config)
        state.current = loaded if side == "on" else dataclasses.replace(loaded, monitor=None)
        planes[side] = DataPlane(state)
    body = json.dumps(SINGLE_ROW_BODY).encode()
    # A batch is one fold's worth of requests, so every monitored batch pays exactly one fold
    # (smaller batches would leave the folds out of the median).
    calls: tuple[tuple[str, Callable[[DataPlane], object], int], ...] = (
        ("/infer 1 row", lambda plane: plane.infer(model, body), FOLD_ROWS),
        ("/v2/well/infer 100 models 1 row", lambda plane: plane.infer_well(body), WELL_FOLD_ROWS),
    )
    found = []
    for label, call, batch in calls:
        for plane in planes.values():  # warm-up: a fold, caches
            for _ in range(batch):
                call(plane)
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


def start_sides(stack: ExitStack, bundle_dir: Path, round_: int) -> dict[str, tuple[str, int]]:
    """Both runtimes started at once, each waited for: side -> (base URL, pid)."""
    started = {}
    for side, flags in SIDES.items():
        port = free_loopback_port()
        command = [sys.executable, "-m", "model_runtime.cli", "serve", "--bundle"]
        command += [str(bundle_dir), "--port", str(port), "--log-level", "WARNING", *flags]
        log = WORK / f"runtime-{side}-{round_}.log"
        started[side] = (stack.enter_context(running(command, log)), port)
    sides = {}
    for side, (process, port) in started.items():
        wait_http(f"http://127.0.0.1:{port}/v2/health/ready", 300, process)
        sides[side] = (f"http://127.0.0.1:{port}", process.pid)
    return sides


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rounds", type=int, default=5)
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
    runs: dict[tuple[str, str], list[Run]] = {}
    windows: list[int] = []
    summary_off = None
    for round_ in range(args.rounds):
        with ExitStack() as stack:
            sides = start_sides(stack, bundle_dir, round_)
            for index, case in enumerate(CASES):
                order = ("on", "off") if (round_ + index) % 2 == 0 else ("off", "on")
                for side in order:
                    url, pid = sides[side]
                    run = wrk_measure(wrk, url + case.endpoint, case.connections, args.seconds, pid)
                    runs.setdefault((side, case.label), []).append(run)
                    print(
                        f"round {round_} {side} {case.label}: {run.requests_per_second:.0f}/s, "
                        f"p50 {run.p50_ms:.3f} ms, {run.cpu_us_per_request:.0f} us CPU/request",
                        file=sys.stderr,
                    )
            report = httpx.get(sides["on"][0] + "/v2/monitoring").json()
            windows.append(min(m["rows"] for m in report["models"].values()))
            summary_off = httpx.get(sides["off"][0] + "/v2").json().get("monitoring")
    load_end = os.getloadavg()
    print(f"\nmonitored runtime: the emptiest model window held {windows} rows (per round)")
    print(f"unmonitored runtime's /v2 summary: {summary_off}")
    print(f"load average (1 min, 2 cores): {load_start[0]:.2f} at start, {load_end[0]:.2f} at end")
    print("\n| in process, no HTTP | on, us CPU per call | off | on / off |")
    print("| --- | ---: | ---: | ---: |")
    for found in figures_in_process:
        print(
            f"| {found['case']} | {found['on_us']:.1f} | {found['off_us']:.1f} "
            f"| {found['ratio']:.3f} |"
        )
    print(
        f"\n| over HTTP, wrk, {args.rounds} rounds | figure | on / off, median (each round) "
        "| server CPU per request on / off, us | CPU on / off |"
    )
    print("| --- | --- | ---: | ---: | ---: |")
    cases = []
    for case in CASES:
        on, off = runs[("on", case.label)], runs[("off", case.label)]
        ratios = [
            a.figure(case.figure) / b.figure(case.figure) for a, b in zip(on, off, strict=True)
        ]
        cpu_on = statistics.median(r.cpu_us_per_request for r in on)
        cpu_off = statistics.median(r.cpu_us_per_request for r in off)
        each = ", ".join(f"{r:.3f}" for r in ratios)
        print(
            f"| {case.label} | {case.figure.value} | {statistics.median(ratios):.3f} ({each}) "
            f"| {cpu_on:.0f} / {cpu_off:.0f} | {cpu_on / cpu_off:.3f} |"
        )
        cases.append(
            {
                "case": case.label,
                "figure": case.figure.value,
                "ratio_median": statistics.median(ratios),
                "ratios": ratios,
                "cpu_us_on": cpu_on,
                "cpu_us_off": cpu_off,
                "runs_on": [dataclasses.asdict(r) for r in on],
                "runs_off": [dataclasses.asdict(r) for r in off],
            }
        )
    (WORK / "results.json").write_text(
        json.dumps(
            {
                "load_start": load_start,
                "load_end": load_end,
                "rounds": args.rounds,
                "seconds": args.seconds,
                "in_process": figures_in_process,
                "http": cases,
                "emptiest_window_rows": windows,
            },
            indent=2,
        )
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
