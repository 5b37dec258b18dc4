"""Runtime benchmark: our OIP server vs a raw ASGI floor vs MLServer, one machine, one run.

What it measures, in one run (bounded in wall time):
- load + verify of a 100-model bundle (in-process, and process start to ready over HTTP);
- over HTTP, side by side (the three servers run at once; each case is driven against each
  server back to back, so outside load drifts over all of them alike): our runtime
  (`model-runtime serve`), a floor written here (a bare ASGI app on uvicorn: parse JSON, one
  onnxruntime run per model, dump JSON; no framework, no validation, no metrics) and MLServer
  (`mlserver` + `mlserver-sklearn`, one worker, the same scikit-learn model); `/infer` of one
  model and the whole-well endpoint (100 models), 1-row and 100-row bodies, 1 and 8 connections;
  every case also against our runtime with functional monitoring off
  (`--monitoring-window-rows 0`), so that monitoring's cost (issue 15's 5% budget) is measured
  on these same figures, and with every row binned (`--monitoring-max-rows-per-second 0`), so
  that its cost without sampling is too;
- raw onnxruntime in-process on the same inputs (no HTTP, no JSON).

The load generator is wrk (Debian's `wrk`, installed with apt-get when missing; 1 thread,
`-d 5s` after a 1 s warm-up; p50/p99 from its latency distribution, via a Lua `done` hook). If
wrk cannot be had, the Python aiohttp client below drives the same cases (it shares the cores
and is itself a bottleneck: its figures are not comparable with wrk's).

Peers live in venvs of their own under ~/.cache/modelfleet/bench-venvs (created here if missing)
so that their pins never meet ours. Everything listens on 127.0.0.1.
Usage: .venv/bin/python bench/runtime_throughput.py [--quick] [--skip-mlserver] [--python-client]
       .venv/bin/python bench/runtime_throughput.py --memory-table [--skip-floor]
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import hashlib
import json
import os
import re
import shutil
import signal
import statistics
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import numpy as np

from modelfleet_dev.ports import free_loopback_port

ROOT = Path(__file__).resolve().parent.parent
WORK = ROOT / "build" / "bench-runtime"
BENCH_VENVS = Path.home() / ".cache" / "modelfleet" / "bench-venvs"
MLSERVER_VENV = BENCH_VENVS / "mlserver"
FLOOR_VENV = BENCH_VENVS / "floor"
WELL = "bench-0001"
MONITORING_OFF = "model-runtime, monitoring off"
MONITORING_OFF_FLAGS = ("--monitoring-window-rows", "0")  # `model-runtime serve` unmonitored
# Every row binned, whatever the rate (`serve` samples above --monitoring-max-rows-per-second).
MONITORING_EVERY_ROW = "model-runtime, every row monitored"
MONITORING_EVERY_ROW_FLAGS = ("--monitoring-max-rows-per-second", "0")
MODEL = "motor-overheat-01d"  # model 0 of the bundle: a random forest
ROW = [85.0, 190.0, 95.0, 42.0, 2.5, 55.0, 450.0]
SINGLE_ROW_BODY = {
    "inputs": [{"name": "sensors", "shape": [1, 7], "datatype": "FP32", "data": ROW}]
}
# 100 distinct rows (values near ROW), so that no layer can answer from a cache.
HUNDRED_ROWS = [[round(v * (1 + (i % 10) / 100), 2) for v in ROW] for i in range(100)]
HUNDRED_ROW_BODY = {
    "inputs": [
        {
            "name": "sensors",
            "shape": [100, 7],
            "datatype": "FP32",
            "data": [v for row in HUNDRED_ROWS for v in row],
        }
    ]
}


@dataclass
class Result:
    name: str
    requests: int
    seconds: float
    latencies: list[float]
    errors: int = 0

    @property
    def rps(self) -> float:
        return self.requests / self.seconds

    def pct(self, q: float) -> float:
        ordered = sorted(self.latencies)
        return ordered[min(len(ordered) - 1, int(q * len(ordered)))] * 1000

    def row(self) -> str:
        return f"| {self.name} | {self.rps:,.0f} | {self.p50_ms:.3f} | {self.p99_ms:.3f} | {self.errors} |"

    @property
    def p50_ms(self) -> float:
        return self.pct(0.5)

    @property
    def p99_ms(self) -> float:
        return self.pct(0.99)


@dataclass
class WrkResult(Result):
    """A wrk run: wrk keeps the latency distribution, so percentiles come from it, not a list."""

    wrk_p50_ms: float = 0.0
    wrk_p99_ms: float = 0.0

    @property
    def p50_ms(self) -> float:
        return self.wrk_p50_ms

    @property
    def p99_ms(self) -> float:
        return self.wrk_p99_ms


# -- wrk ---------------------------------------------------------------------------------------

# Body and content type from the environment (wrk's Lua has os.getenv); one JSON line at the end.
WRK_SCRIPT = """
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
local file = io.open(os.getenv("BENCH_BODY_FILE"), "rb")
wrk.body = file:read("*a")
file:close()
done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    'WRK_RESULT {"requests": %d, "duration_us": %d, "p50_us": %d, "p99_us": %d, "non_2xx": %d, "socket_errors": %d}\\n',
    summary.requests, summary.duration, latency:percentile(50), latency:percentile(99),
    e.status, e.connect + e.read + e.write + e.timeout))
end
"""


def ensure_wrk() -> str | None:
    """wrk's path, installing Debian's package when missing (the bench runs as root)."""
    found = shutil.which("wrk")
    if found or not shutil.which("apt-get"):
        return found
    print("installing wrk (apt-get install -y wrk) ...", file=sys.stderr)
    if subprocess.run(["apt-get", "install", "-y", "wrk"], capture_output=True).returncode != 0:
        subprocess.run(["apt-get", "update"], capture_output=True)
        subprocess.run(["apt-get", "install", "-y", "wrk"], capture_output=True)
    return shutil.which("wrk")


def wrk_run(
    wrk: str, name: str, url: str, body: dict[str, Any], connections: int, seconds: float
) -> WrkResult:
    encoded = json.dumps(body).encode()
    # Named by content (str hashes vary per process): one file per distinct body across runs.
    body_file = WORK / f"body-{hashlib.sha256(encoded).hexdigest()[:12]}.json"
    body_file.write_bytes(encoded)
    script = WORK / "post.lua"
    script.write_text(WRK_SCRIPT)
    env = {**os.environ, "BENCH_BODY_FILE": str(body_file)}

    def once(duration: float) -> dict[str, Any]:
        out = subprocess.run(
            [wrk, "-t1", f"-c{connections}", f"-d{duration:g}s", "-s", str(script), url],
            env=env,
            capture_output=True,
            text=True,
            timeout=duration + 30,
            check=True,
        ).stdout
        line = next(x for x in out.splitlines() if x.startswith("WRK_RESULT "))
        parsed: dict[str, Any] = json.loads(line.removeprefix("WRK_RESULT "))
        return parsed

    once(1)  # warm-up: connections, caches, lazy paths
    got = once(seconds)
    return WrkResult(
        name,
        got["requests"],
        got["duration_us"] / 1e6,
        [],
        errors=got["non_2xx"] + got["socket_errors"],
        wrk_p50_ms=got["p50_us"] / 1000,
        wrk_p99_ms=got["p99_us"] / 1000,
    )


# -- load generator (the same for every server) ---------------------------------------------


async def _drive(url: str, body: bytes, count: int, concurrency: int, max_seconds: float) -> Result:
    latencies: list[float] = []
    errors = 0
    connector = aiohttp.TCPConnector(limit=concurrency)
    headers = {"Content-Type": "application/json"}
    async with aiohttp.ClientSession(connector=connector) as session:
        for _ in range(min(200, count)):  # warm-up: connections, caches, lazy paths
            async with session.post(url, data=body, headers=headers) as response:
                await response.read()
        remaining = iter(range(count))
        deadline = time.perf_counter() + max_seconds

        async def worker() -> None:
            nonlocal errors
            for _ in remaining:
                if time.perf_counter() > deadline:
                    return
                started = time.perf_counter()
                async with session.post(url, data=body, headers=headers) as response:
                    await response.read()
                    if response.status != 200:
                        errors += 1
                latencies.append(time.perf_counter() - started)

        started = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(concurrency)))
        elapsed = time.perf_counter() - started
    return Result("", len(latencies), elapsed, latencies, errors)


def drive(
    name: str, url: str, body: dict[str, Any], count: int, concurrency: int, max_seconds: float = 60
) -> Result:
    result = asyncio.run(_drive(url, json.dumps(body).encode(), count, concurrency, max_seconds))
    result.name = name
    return result


def in_process(name: str, call: Any, count: int, max_seconds: float = 30.0) -> Result:
    warm_until = time.perf_counter() + max_seconds / 5
    for _ in range(min(50, count)):
        call()
        if time.perf_counter() > warm_until:
            break
    latencies = []
    started = time.perf_counter()
    for _ in range(count):
        if time.perf_counter() - started > max_seconds:
            break
        t = time.perf_counter()
        call()
        latencies.append(time.perf_counter() - t)
    return Result(name, len(latencies), time.perf_counter() - started, latencies)


# -- servers ---------------------------------------------------------------------------------


def wait_http(url: str, timeout: float, process: subprocess.Popen[bytes]) -> float:
    import httpx

    started = time.perf_counter()
    while time.perf_counter() - started < timeout:
        if process.poll() is not None:
            raise RuntimeError(f"server exited with {process.returncode} before {url} answered")
        try:
            if httpx.get(url, timeout=1).status_code == 200:
                return time.perf_counter() - started
        except httpx.HTTPError:
            pass
        time.sleep(0.01)
    raise RuntimeError(f"{url} not ready after {timeout}s")


@contextmanager
def running(
    cmd: list[str], log: Path, env: dict[str, str] | None = None, cwd: Path | None = None
) -> Iterator[subprocess.Popen[bytes]]:
    with log.open("wb") as sink:
        process = subprocess.Popen(
            cmd, stdout=sink, stderr=subprocess.STDOUT, env=env, cwd=cwd, start_new_session=True
        )
    try:
        yield process
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGTERM)
            try:
                process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait()


# The floor: what serving these requests costs with no framework at all. It parses the JSON body,
# runs onnxruntime (the same session options as model_runtime/sessions.py) and dumps the JSON
# response; it checks nothing, so it is an upper bound for any real server in Python.
ASGI_FLOOR_APP = """
import json, os
from pathlib import Path

import numpy as np
import onnxruntime as ort
import orjson

BUNDLE = Path(os.environ["BENCH_BUNDLE_DIR"])
options = ort.SessionOptions()
options.intra_op_num_threads = 1
options.inter_op_num_threads = 1
options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
options.enable_cpu_mem_arena = False
options.enable_mem_pattern = False
options.add_session_config_entry("session.intra_op.allow_spinning", "0")
manifest = json.loads((BUNDLE / "manifest.json").read_text())
SESSIONS = {
    m["name"]: ort.InferenceSession(
        (BUNDLE / m["file"]).read_bytes(), options, providers=["CPUExecutionProvider"]
    )
    for m in manifest["models"]
}
HEADERS = [(b"content-type", b"application/json")]


async def read_body(receive):
    chunks = []
    while True:
        message = await receive()
        chunks.append(message.get("body", b""))
        if not message.get("more_body"):
            return b"".join(chunks)


async def app(scope, receive, send):
    if scope["type"] != "http":
        return
    path = scope["path"]
    if scope["method"] == "GET":
        body, status = b'{"ready": true}', 200
    else:
        tensor = orjson.loads(await read_body(receive))["inputs"][0]
        rows = np.asarray(tensor["data"], dtype=np.float32).reshape(tensor["shape"])
        if path == "/v2/well/infer":
            outputs = [
                {"name": name, "data": s.run(["probabilities"], {"sensors": rows})[0][:, 1].tolist()}
                for name, s in SESSIONS.items()
            ]
            body = orjson.dumps({"outputs": outputs})
        else:
            name = path.split("/")[3]
            label, probabilities = SESSIONS[name].run(["label", "probabilities"], {"sensors": rows})
            body = orjson.dumps(
                {
                    "model_name": name,
                    "outputs": [
                        {"name": "label", "shape": list(label.shape), "data": label.tolist()},
                        {
                            "name": "probabilities",
                            "shape": list(probabilities.shape),
                            "data": probabilities.ravel().tolist(),
                        },
                    ],
                }
            )
        status = 200
    await send({"type": "http.response.start", "status": status, "headers": HEADERS})
    await send({"type": "http.response.body", "body": body})
"""


def ensure_venv(venv: Path, packages: list[str]) -> Path:
    """A peer's own venv (never ours: its pins must not meet the project's), created if missing."""
    python = venv / "bin" / "python"
    if not python.exists():
        print(f"creating {venv} ({' '.join(packages)}) ...", file=sys.stderr)
        venv.parent.mkdir(parents=True, exist_ok=True)
        subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
        subprocess.run([str(venv / "bin" / "pip"), "install", "-q", *packages], check=True)
    return python


def ensure_asgi_floor() -> Path:
    # uvicorn[standard]: httptools and uvloop, the fastest uvicorn there is.
    return ensure_venv(FLOOR_VENV, ["uvicorn[standard]", "onnxruntime", "numpy", "orjson"])


def ensure_mlserver() -> Path:
    ensure_venv(MLSERVER_VENV, ["mlserver", "mlserver-sklearn"])
    mlserver = MLSERVER_VENV / "bin" / "mlserver"
    # mlserver 1.7.1's inference workers call asyncio.get_event_loop() with no loop set, which
    # uvloop >= 0.22 turns into a RuntimeError (every worker dies at start): keep uvloop below.
    subprocess.run([str(MLSERVER_VENV / "bin" / "pip"), "install", "-q", "uvloop<0.22"], check=True)
    return mlserver


def mlserver_model_dir(target: Path, parallel_workers: int) -> tuple[Path, int]:
    """The same scikit-learn estimator as bundle model 0, retrained (builds are deterministic)."""
    import joblib

    from bundle_builder.building import HOLDOUT_FRACTION, model_specs
    from bundle_builder.sensors import generate_history
    from bundle_builder.training import train

    spec = model_specs(100, 0)[0]
    history = generate_history(WELL, 0)
    order = np.random.default_rng(0).permutation(history.features.shape[0])
    train_idx = np.sort(order[int(history.features.shape[0] * HOLDOUT_FRACTION) :])
    estimator = train(
        spec,
        history.features[train_idx],
        history.labels(spec.failure_mode, spec.horizon_days)[train_idx],
    )
    shutil.rmtree(target, ignore_errors=True)
    (target / MODEL).mkdir(parents=True)
    joblib.dump(estimator, target / MODEL / "model.joblib")
    (target / MODEL / "model-settings.json").write_text(
        json.dumps(
            {
                "name": MODEL,
                "implementation": "mlserver_sklearn.SKLearnModel",
                "parameters": {"uri": "./model.joblib"},
            }
        )
    )
    port = free_loopback_port()
    (target / "settings.json").write_text(
        json.dumps(
            {
                "host": "127.0.0.1",
                "http_port": port,
                "grpc_port": free_loopback_port(),
                "metrics_port": free_loopback_port(),
                "parallel_workers": parallel_workers,
                "debug": False,
                "metrics_endpoint": None,
            }
        )
    )
    return target, port


def onnxruntime_thread_settings(bundle_dir: Path, count: int) -> list[str]:
    """Why sessions.py picks intra=1/inter=1/sequential: the alternatives, measured."""
    import onnxruntime as ort

    from model_runtime.sources import read_bundle
    from model_runtime.verification import verify_bundle

    verified = verify_bundle(read_bundle(str(bundle_dir)))
    row = np.asarray([ROW], dtype=np.float32)
    lines = [
        "| intra / inter / mode | 100 sessions created, s | 1 model 1 row p50 us | 100 models 1 row p50 us |",
        "| --- | ---: | ---: | ---: |",
    ]
    configs = [
        (1, 1, "sequential", True),
        (0, 0, "sequential", False),
        (2, 1, "sequential", False),
        (1, 2, "parallel", False),
        (0, 0, "parallel", False),
    ]
    for intra, inter, mode, no_spin in configs:
        options = ort.SessionOptions()
        options.intra_op_num_threads = intra
        options.inter_op_num_threads = inter
        options.execution_mode = (
            ort.ExecutionMode.ORT_SEQUENTIAL
            if mode == "sequential"
            else ort.ExecutionMode.ORT_PARALLEL
        )
        if no_spin:
            options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        started = time.perf_counter()
        sessions = [
            ort.InferenceSession(data, options, providers=["CPUExecutionProvider"])
            for data in verified.model_bytes.values()
        ]
        created = time.perf_counter() - started
        # Bounded in time: thread-pool configurations can be orders of magnitude slower here.
        one = in_process(
            "",
            lambda s=sessions[0]: s.run(["probabilities"], {"sensors": row}),
            count,
            max_seconds=3,
        )
        every = in_process(
            "",
            lambda ss=sessions: [s.run(["probabilities"], {"sensors": row}) for s in ss],
            200,
            max_seconds=3,
        )
        sessions.clear()  # free this configuration's thread pools before measuring the next one
        gc.collect()
        spin = ", no spinning" if no_spin else ""
        label = f"{intra or 'default'} / {inter or 'default'} / {mode}{spin}"
        lines.append(
            f"| {label} | {created:.3f} | {one.pct(0.5) * 1000:.1f} | {every.pct(0.5) * 1000:.0f} |"
        )
    return lines


# -- main ------------------------------------------------------------------------------------


# The HTTP server decision (docs/benchmarks.md, Runtime): the same hello handler (read the body,
# orjson-decode it, answer a small JSON) on aiohttp, on uvicorn (raw ASGI, httptools, uvloop) and
# on the runtime's own transport (model_runtime/http_server.py), every one on uvloop.
HELLO_AIOHTTP = """
import sys, orjson, uvloop
from aiohttp import web
async def hello(request):
    return web.json_response({"keys": len(orjson.loads(await request.read()))}, dumps=lambda o: orjson.dumps(o).decode())
async def ready(request):
    return web.json_response({"ready": True})
app = web.Application()
app.router.add_route("POST", "/v2/models/{model}/infer", hello)
app.router.add_route("GET", "/v2/health/ready", ready)
uvloop.install()
web.run_app(app, host="127.0.0.1", port=int(sys.argv[1]), access_log=None, print=None)
"""
HELLO_ASGI = """
import orjson
HEADERS = [(b"content-type", b"application/json")]
async def app(scope, receive, send):
    if scope["type"] != "http":
        return
    chunks = []
    while True:
        message = await receive()
        chunks.append(message.get("body", b""))
        if not message.get("more_body"):
            break
    post = scope["method"] == "POST"
    body = orjson.dumps({"keys": len(orjson.loads(b"".join(chunks)))} if post else {"ready": True})
    await send({"type": "http.response.start", "status": 200, "headers": HEADERS})
    await send({"type": "http.response.body", "body": body})
"""
HELLO_OWN = """
import asyncio, sys, orjson, uvloop
from model_runtime.http_server import HttpResponse, HttpServer
def hello(request):
    if request.method == "POST":
        return HttpResponse(200, orjson.dumps({"keys": len(orjson.loads(request.body))}), "application/json")
    return HttpResponse(200, orjson.dumps({"ready": True}), "application/json")
async def main():
    server = HttpServer(hello, lambda status, message: HttpResponse(status, message.encode(), "text/plain"), max_body_bytes=8 << 20)
    await server.start("127.0.0.1", int(sys.argv[1]))
    await asyncio.Event().wait()
uvloop.run(main())
"""


def transport_table(wrk: str, rounds: int, seconds: float, concurrency: int) -> list[str]:
    """The three transports started together, driven interleaved (A B C A B C ...)."""
    floor_python = ensure_asgi_floor()
    (WORK / "hello_aiohttp.py").write_text(HELLO_AIOHTTP)
    (WORK / "hello_asgi.py").write_text(HELLO_ASGI)
    (WORK / "hello_own.py").write_text(HELLO_OWN)
    commands = {
        "aiohttp 3.x web": [sys.executable, str(WORK / "hello_aiohttp.py")],
        "uvicorn, raw ASGI (httptools, uvloop)": [
            str(floor_python),
            "-m",
            "uvicorn",
            "hello_asgi:app",
            "--host",
            "127.0.0.1",
            "--log-level",
            "warning",
            "--no-access-log",
            "--port",
        ],
        "model_runtime.http_server": [sys.executable, str(WORK / "hello_own.py")],
    }
    lines = [
        f"| transport (hello handler), wrk -d {seconds:g}s | c | requests/s by round | p50 ms by round | RSS MiB |",
        "| --- | ---: | --- | --- | ---: |",
    ]
    with ExitStack() as stack:
        urls: dict[str, str] = {}
        pids: dict[str, int] = {}
        for name, command in commands.items():
            port = free_loopback_port()
            log = WORK / f"transport-{len(urls)}.log"
            env = {**os.environ, "PYTHONPATH": str(ROOT)}
            process = stack.enter_context(running([*command, str(port)], log, env=env, cwd=WORK))
            wait_http(f"http://127.0.0.1:{port}/v2/health/ready", 60, process)
            urls[name] = f"http://127.0.0.1:{port}/v2/models/m/infer"
            pids[name] = process.pid
        for connections in (1, concurrency):
            runs: dict[str, list[WrkResult]] = {name: [] for name in urls}
            for _ in range(rounds):
                for name, url in urls.items():
                    runs[name].append(
                        wrk_run(wrk, name, url, SINGLE_ROW_BODY, connections, seconds)
                    )
            for name, results in runs.items():
                rps = " / ".join(f"{r.rps:,.0f}" for r in results)
                p50 = " / ".join(f"{r.p50_ms:.3f}" for r in results)
                lines.append(
                    f"| {name} | {connections} | {rps} | {p50} | {rss_mib(pids[name]):.1f} |"
                )
    return lines


def oip_urls(port: int) -> dict[str, str]:
    """The two endpoints every case drives, on a server at 127.0.0.1:`port`."""
    base = f"http://127.0.0.1:{port}"
    return {"infer": f"{base}/v2/models/{MODEL}/infer", "well": f"{base}/v2/well/infer"}


def runtime_command(bundle_dir: Path, port: int, *extra: str) -> list[str]:
    """`model-runtime serve` as every part of this bench starts it: the pod's entry point, with
    no environment of its own (the pod template and the Dockerfile set none either)."""
    return [
        sys.executable,
        "-m",
        "model_runtime.cli",
        "serve",
        "--bundle",
        str(bundle_dir),
        "--port",
        str(port),
        "--log-level",
        "WARNING",
        *extra,
    ]


def floor_command(floor_python: Path, port: int) -> list[str]:
    return [
        str(floor_python),
        "-m",
        "uvicorn",
        "asgi_floor:app",
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--log-level",
        "warning",
        "--no-access-log",
    ]


MEMORY_MODELS = (1, 10, 100)
MEMORY_REQUESTS = 300


def memory_traffic(base: str, scrape: bool) -> None:
    """300 single-row /infer, 300 whole-well requests (every tenth with 100 rows), a scrape."""
    import httpx

    with httpx.Client(base_url=base, timeout=60) as client:
        for _ in range(MEMORY_REQUESTS):
            client.post(f"/v2/models/{MODEL}/infer", json=SINGLE_ROW_BODY).raise_for_status()
        for i in range(MEMORY_REQUESTS):
            body = HUNDRED_ROW_BODY if i % 10 == 0 else SINGLE_ROW_BODY
            client.post("/v2/well/infer", json=body).raise_for_status()
        if scrape:
            client.get("/metrics").raise_for_status()


def memory_table(bundles: dict[int, Path], floor: bool) -> list[str]:
    """RSS (VmRSS) of `model-runtime serve` when ready and after `memory_traffic`, for each
    bundle, monitoring on (the default) and off; the ASGI floor beside the largest bundle."""
    rows = [
        "| server | models | monitoring | ready MiB | after traffic MiB | threads |",
        "| --- | ---: | --- | ---: | ---: | ---: |",
    ]
    largest = max(bundles)
    for models, bundle_dir in sorted(bundles.items()):
        for monitoring, extra in (("on", ()), ("off", ("--monitoring-window-rows", "0"))):
            port = free_loopback_port()
            command = runtime_command(bundle_dir, port, *extra)
            with running(command, WORK / "runtime-memory.log") as process:
                ready, after, threads = measure_memory(
                    process, f"http://127.0.0.1:{port}", "/v2/health/ready", scrape=True
                )
            rows.append(
                f"| model-runtime | {models} | {monitoring} | {ready:.1f} | {after:.1f} | {threads} |"
            )
    if floor:
        floor_python = ensure_asgi_floor()
        (WORK / "asgi_floor.py").write_text(ASGI_FLOOR_APP)
        port = free_loopback_port()
        env = {**os.environ, "BENCH_BUNDLE_DIR": str(bundles[largest])}
        with running(
            floor_command(floor_python, port), WORK / "asgi-floor.log", env=env, cwd=WORK
        ) as process:
            ready, after, threads = measure_memory(
                process, f"http://127.0.0.1:{port}", "/", scrape=False
            )
        rows.append(f"| ASGI floor | {largest} | - | {ready:.1f} | {after:.1f} | {threads} |")
    return rows


def measure_memory(
    process: subprocess.Popen[bytes], base: str, ready_path: str, *, scrape: bool
) -> tuple[float, float, int]:
    """(RSS MiB once ready, RSS MiB after `memory_traffic`, threads) of one server."""
    wait_http(f"{base}{ready_path}", 60, process)
    ready = rss_mib(process.pid)
    memory_traffic(base, scrape=scrape)
    return ready, rss_mib(process.pid), len(list(Path(f"/proc/{process.pid}/task").iterdir()))


def rss_mib(pid: int) -> float:
    status = Path(f"/proc/{pid}/status").read_text()
    found = re.search(r"VmRSS:\s+(\d+)", status)
    return int(found.group(1)) / 1024 if found else float("nan")


@dataclass(frozen=True)
class Case:
    """One HTTP measurement, driven against every server that offers it."""

    label: str  # e.g. "/infer 1 row, c=8"
    path: str  # "infer" or "well"
    body: dict[str, Any]
    connections: int


def cases(concurrency: int) -> list[Case]:
    found = []
    for path, endpoint in (("infer", "/infer"), ("well", "/v2/well/infer 100 models")):
        for rows, body in ((1, SINGLE_ROW_BODY), (100, HUNDRED_ROW_BODY)):
            for connections in (1, concurrency):
                label = f"{endpoint} {rows} row{'s' if rows > 1 else ''}, c={connections}"
                found.append(Case(label, path, body, connections))
    return found


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true", help="shorter runs (smoke run)")
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("--seconds", type=float, default=5.0, help="wrk duration of each case")
    parser.add_argument("--skip-mlserver", action="store_true")
    parser.add_argument("--skip-thread-table", action="store_true")
    parser.add_argument("--python-client", action="store_true", help="do not use wrk")
    parser.add_argument(
        "--transport-table-only",
        action="store_true",
        help="only the HTTP server comparison (aiohttp, uvicorn, our transport), 3 rounds",
    )
    parser.add_argument(
        "--memory-table",
        action="store_true",
        help="only the memory table: serve's RSS with 1, 10 and 100 models, ready and after traffic",
    )
    parser.add_argument(
        "--skip-floor", action="store_true", help="memory table without the ASGI floor's row"
    )
    args = parser.parse_args()
    scale = 0.2 if args.quick else 1.0
    seconds = 2.0 if args.quick else args.seconds
    n_single, n_well = int(5000 * scale), int(2000 * scale)
    WORK.mkdir(parents=True, exist_ok=True)

    sys.path.insert(0, str(ROOT))
    from bundle_builder.building import build_bundle
    from model_runtime.bundle_state import load_bundle

    bundle_dir = WORK / "bundle"
    if not (bundle_dir / "manifest.json").exists():
        started = time.perf_counter()
        build_bundle(WELL, bundle_dir, models=100)
        print(f"built 100-model bundle in {time.perf_counter() - started:.1f}s", file=sys.stderr)

    if args.memory_table:
        load = os.getloadavg()[0]
        bundles = {100: bundle_dir}
        for models in MEMORY_MODELS[:-1]:
            bundles[models] = WORK / f"bundle-{models}"
            if not (bundles[models] / "manifest.json").exists():
                build_bundle(WELL, bundles[models], models=models)
        table = memory_table(bundles, floor=not args.skip_floor)
        print("\n".join(table))
        print(f"\n- load average (1 min) at start / end: {load:.2f} / {os.getloadavg()[0]:.2f}")
        return 0
    wrk = None if args.python_client else ensure_wrk()
    if args.transport_table_only:
        if wrk is None:
            raise SystemExit("the transport table needs wrk")
        load = os.getloadavg()[0]
        table = transport_table(wrk, 3, seconds, args.concurrency)
        print("\n".join(table))
        print(f"\n- load average (1 min) at start / end: {load:.2f} / {os.getloadavg()[0]:.2f}")
        return 0
    generator = "wrk 1 thread" if wrk else "Python aiohttp client"
    results: list[Result] = []
    figures: dict[str, Any] = {"load_average_1min_at_start": os.getloadavg()[0]}

    # 1. load + verify, in-process (fetch, sha256 of every file, 100 onnxruntime sessions)
    loads = []
    for _ in range(5):
        bundle = load_bundle(str(bundle_dir))
        loads.append(bundle.load_seconds)
    figures["load_verify_100_models_s_median_of_5"] = statistics.median(loads)

    # 2. raw onnxruntime in-process, same inputs
    row = np.asarray([ROW], dtype=np.float32)
    session = bundle.sessions[MODEL]
    results.append(
        in_process("onnxruntime in-process, 1 model, 1 row", lambda: session.run(row), n_single)
    )
    sessions = list(bundle.sessions.values())
    results.append(
        in_process(
            "onnxruntime in-process, 100 models, 1 row",
            lambda: [s.run(row, ("probabilities",)) for s in sessions],
            n_well,
        )
    )
    gc.collect()

    # 3. the servers, all started before any measurement and driven case by case
    servers: dict[str, dict[str, str]] = {}  # server name -> {"infer": url, "well": url}
    bodies: dict[str, Any] = {}  # server name -> body transform (MLServer names its output)
    with ExitStack() as stack:

        def start_runtime(name: str, log: str, *flags: str) -> subprocess.Popen[bytes]:
            """`serve` with `flags`, ready, in `servers` under `name`."""
            port = free_loopback_port()
            process = stack.enter_context(
                running(runtime_command(bundle_dir, port, *flags), WORK / log)
            )
            wait_http(f"http://127.0.0.1:{port}/v2/health/ready", 60, process)
            servers[name] = oip_urls(port)
            return process

        spawn = time.perf_counter()
        runtime = start_runtime("model-runtime", "runtime.log")
        figures["runtime_process_start_to_ready_s"] = time.perf_counter() - spawn
        # The same runtime with functional monitoring off, driven beside it on every case: the
        # monitoring budget (at most 5% on these figures) is read from the same run. And with
        # every row binned: what monitoring costs without its sampling.
        unmonitored = start_runtime(
            MONITORING_OFF, "runtime-monitoring-off.log", *MONITORING_OFF_FLAGS
        )
        every_row = start_runtime(
            MONITORING_EVERY_ROW, "runtime-every-row.log", *MONITORING_EVERY_ROW_FLAGS
        )

        floor_python = ensure_asgi_floor()
        (WORK / "asgi_floor.py").write_text(ASGI_FLOOR_APP)
        floor_port = free_loopback_port()
        floor = stack.enter_context(
            running(
                floor_command(floor_python, floor_port),
                WORK / "asgi-floor.log",
                env={**os.environ, "BENCH_BUNDLE_DIR": str(bundle_dir)},
                cwd=WORK,
            )
        )
        wait_http(f"http://127.0.0.1:{floor_port}/", 60, floor)
        servers["ASGI floor"] = oip_urls(floor_port)

        if not args.skip_mlserver:
            mlserver = ensure_mlserver()
            # One inference worker, MLServer's default (parallel_workers=1).
            model_dir, ml_port = mlserver_model_dir(WORK / "mlserver", 1)
            env = {**os.environ, "PYTHONUNBUFFERED": "1"}
            process = stack.enter_context(
                running([str(mlserver), "start", str(model_dir)], WORK / "mlserver.log", env=env)
            )
            wait_http(f"http://127.0.0.1:{ml_port}/v2/models/{MODEL}/ready", 180, process)
            url = f"http://127.0.0.1:{ml_port}/v2/models/{MODEL}/infer"
            bodies["MLServer"] = lambda body: {**body, "outputs": [{"name": "predict_proba"}]}
            if drive("check", url, bodies["MLServer"](SINGLE_ROW_BODY), 1, 1).errors:
                raise RuntimeError(f"MLServer rejects the request; see {WORK}/mlserver.log")
            servers["MLServer"] = {"infer": url}  # no whole-well endpoint

        for case in cases(args.concurrency):
            for server, urls in servers.items():
                if case.path not in urls:
                    continue
                body = bodies.get(server, lambda b: b)(case.body)
                name = f"{server} {case.label}"
                if wrk:
                    results.append(
                        wrk_run(wrk, name, urls[case.path], body, case.connections, seconds)
                    )
                else:
                    count = n_single if case.path == "infer" else n_well
                    results.append(drive(name, urls[case.path], body, count, case.connections))
                print(results[-1].row(), file=sys.stderr)
        figures["runtime_rss_mib_100_models_after_load"] = rss_mib(runtime.pid)
        figures["runtime_monitoring_off_rss_mib_100_models_after_load"] = rss_mib(unmonitored.pid)
        figures["runtime_every_row_rss_mib_100_models_after_load"] = rss_mib(every_row.pid)
        figures["asgi_floor_rss_mib_100_models_after_load"] = rss_mib(floor.pid)

    # Last, so that thread pools created for the comparison cannot disturb the figures above.
    thread_table = (
        [] if args.skip_thread_table else onnxruntime_thread_settings(bundle_dir, n_single)
    )

    figures["load_average_1min_at_end"] = os.getloadavg()[0]

    # report
    print(f"\nload generator: {generator}")
    print("\n| what | requests/s | p50 ms | p99 ms | errors |\n| --- | ---: | ---: | ---: | ---: |")
    for result in results:
        print(result.row())
    print()
    if thread_table:
        print("\n".join(thread_table))
        print()
    for key, value in figures.items():
        print(f"- {key}: {value:.3f}")
    by_name = {r.name: r for r in results}
    print(
        "\n| case | runtime / floor requests/s | runtime / floor p50 | runtime / MLServer requests/s "
        "| runtime p50 ms | monitoring on / off: p50 / requests/s "
        "| every row monitored / off: p50 / requests/s |"
    )
    print("| --- | ---: | ---: | ---: | ---: | ---: | ---: |")
    ratios = []
    for case in cases(args.concurrency):
        ours = by_name[f"model-runtime {case.label}"]
        floor_result = by_name[f"ASGI floor {case.label}"]
        ml = by_name.get(f"MLServer {case.label}")
        off = by_name.get(f"{MONITORING_OFF} {case.label}")
        every = by_name.get(f"{MONITORING_EVERY_ROW} {case.label}")
        ratio = {
            "case": case.label,
            "runtime_over_floor_rps": ours.rps / floor_result.rps,
            "runtime_over_floor_p50": ours.p50_ms / floor_result.p50_ms,
            "runtime_over_mlserver_rps": ours.rps / ml.rps if ml else None,
            "runtime_p50_ms": ours.p50_ms,
            "monitoring_on_over_off_p50": ours.p50_ms / off.p50_ms if off else None,
            "monitoring_on_over_off_rps": ours.rps / off.rps if off else None,
            "every_row_over_off_p50": every.p50_ms / off.p50_ms if every and off else None,
            "every_row_over_off_rps": every.rps / off.rps if every and off else None,
        }
        ratios.append(ratio)
        ml_text = f"{ratio['runtime_over_mlserver_rps']:.2f}x" if ml else "-"
        off_text = (
            f"{ratio['monitoring_on_over_off_p50']:.3f} / {ratio['monitoring_on_over_off_rps']:.3f}"
            if off
            else "-"
        )
        every_text = (
            f"{ratio['every_row_over_off_p50']:.3f} / {ratio['every_row_over_off_rps']:.3f}"
            if every and off
            else "-"
        )
        print(
            f"| {case.label} | {ratio['runtime_over_floor_rps']:.2f} | "
            f"{ratio['runtime_over_floor_p50']:.2f} | {ml_text} | {ours.p50_ms:.2f} | {off_text} "
            f"| {every_text} |"
        )
    (WORK / "results.json").write_text(
        json.dumps(
            {
                "load_generator": generator,
                "figures": figures,
                "ratios": ratios,
                "results": [
                    {
                        "name": r.name,
                        "rps": r.rps,
                        "p50_ms": r.p50_ms,
                        "p99_ms": r.p99_ms,
                        "errors": r.errors,
                    }
                    for r in results
                ],
            },
            indent=2,
        )
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
