"""Runtime benchmark: our OIP server vs raw onnxruntime in-process vs MLServer, one machine.

What it measures, in one run (bounded in request count and in wall time):
- load + verify of a 100-model bundle (in-process, and process start to ready over HTTP);
- single-row infer on one model: requests/s and p50/p99 latency, at concurrency 1 and N;
- the whole-well endpoint (all 100 models, one row): same figures;
- raw onnxruntime in-process on the same inputs (the floor: no HTTP, no JSON);
- MLServer (`mlserver` + `mlserver-sklearn`, separate venv `.venv-mlserver`, created here if
  missing so its pins never meet ours) serving the same scikit-learn model with one worker,
  driven by the same load generator.

Everything listens on 127.0.0.1. Usage: .venv/bin/python bench/runtime_throughput.py [--quick]
"""

from __future__ import annotations

import argparse
import asyncio
import gc
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
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import numpy as np

from modelfleet_dev.ports import free_loopback_port

ROOT = Path(__file__).resolve().parent.parent
WORK = ROOT / "build" / "bench-runtime"
MLSERVER_VENV = ROOT / ".venv-mlserver"
WELL = "bench-0001"
MODEL = "motor-overheat-01d"  # model 0 of the bundle: a random forest
ROW = [85.0, 190.0, 95.0, 42.0, 2.5, 55.0, 450.0]
SINGLE_ROW_BODY = {
    "inputs": [{"name": "sensors", "shape": [1, 7], "datatype": "FP32", "data": ROW}]
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
        return f"| {self.name} | {self.rps:,.0f} | {self.pct(0.5):.3f} | {self.pct(0.99):.3f} | {self.errors} |"


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


def ensure_mlserver() -> Path:
    mlserver = MLSERVER_VENV / "bin" / "mlserver"
    if not mlserver.exists():
        print("creating .venv-mlserver (mlserver + mlserver-sklearn) ...", file=sys.stderr)
        subprocess.run([sys.executable, "-m", "venv", str(MLSERVER_VENV)], check=True)
        subprocess.run(
            [str(MLSERVER_VENV / "bin" / "pip"), "install", "-q", "mlserver", "mlserver-sklearn"],
            check=True,
        )
    # mlserver 1.7.1's inference workers call asyncio.get_event_loop() with no loop set, which
    # uvloop >= 0.22 turns into a RuntimeError (every worker dies at start): keep uvloop below.
    subprocess.run([str(MLSERVER_VENV / "bin" / "pip"), "install", "-q", "uvloop<0.22"], check=True)
    return mlserver


def mlserver_model_dir(target: Path, parallel_workers: int) -> tuple[Path, int]:
    """The same scikit-learn estimator as bundle model 0, retrained (builds are deterministic)."""
    import joblib  # type: ignore[import-untyped]

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


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true", help="fewer requests (smoke run)")
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("--skip-mlserver", action="store_true")
    args = parser.parse_args()
    scale = 0.2 if args.quick else 1.0
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

    # 3. our server
    port = free_loopback_port()
    cmd = [
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
    ]
    spawn = time.perf_counter()
    with running(cmd, WORK / "runtime.log") as process:
        wait_http(f"http://127.0.0.1:{port}/v2/health/ready", 60, process)
        figures["runtime_process_start_to_ready_s"] = time.perf_counter() - spawn
        infer = f"http://127.0.0.1:{port}/v2/models/{MODEL}/infer"
        well = f"http://127.0.0.1:{port}/v2/well/infer"
        for concurrency in (1, args.concurrency):
            results.append(
                drive(
                    f"model-runtime /infer 1 row, c={concurrency}",
                    infer,
                    SINGLE_ROW_BODY,
                    n_single,
                    concurrency,
                )
            )
        for concurrency in (1, args.concurrency):
            results.append(
                drive(
                    f"model-runtime /v2/well/infer 100 models, c={concurrency}",
                    well,
                    SINGLE_ROW_BODY,
                    n_well,
                    concurrency,
                )
            )
        rss = Path(f"/proc/{process.pid}/status").read_text()
        figures["runtime_rss_mib_100_models"] = (
            int(re.search(r"VmRSS:\s+(\d+)", rss).group(1)) / 1024
        )  # type: ignore[union-attr]

    # 4. MLServer, same model, same load generator; one worker
    if not args.skip_mlserver:
        mlserver = ensure_mlserver()
        body = {**SINGLE_ROW_BODY, "outputs": [{"name": "predict_proba"}]}
        for workers, label in (
            (1, "parallel_workers=1"),
            (0, "parallel_workers=0 (in the main process)"),
        ):
            model_dir, ml_port = mlserver_model_dir(WORK / f"mlserver-{workers}", workers)
            env = {**os.environ, "PYTHONUNBUFFERED": "1"}
            with running(
                [str(mlserver), "start", str(model_dir)], WORK / f"mlserver-{workers}.log", env=env
            ) as process:
                wait_http(f"http://127.0.0.1:{ml_port}/v2/models/{MODEL}/ready", 180, process)
                url = f"http://127.0.0.1:{ml_port}/v2/models/{MODEL}/infer"
                check = drive("check", url, body, 1, 1)
                if check.errors:
                    raise RuntimeError(
                        f"MLServer rejects the request; see {WORK}/mlserver-{workers}.log"
                    )
                for concurrency in (1, args.concurrency):
                    results.append(
                        drive(
                            f"MLServer {label} /infer 1 row, c={concurrency}",
                            url,
                            body,
                            n_single,
                            concurrency,
                        )
                    )

    # Last, so that thread pools created for the comparison cannot disturb the figures above.
    thread_table = onnxruntime_thread_settings(bundle_dir, n_single)

    figures["load_average_1min_at_end"] = os.getloadavg()[0]

    # report
    print("\n| what | requests/s | p50 ms | p99 ms | errors |\n| --- | ---: | ---: | ---: | ---: |")
    for result in results:
        print(result.row())
    print()
    print("\n".join(thread_table))
    print()
    for key, value in figures.items():
        print(f"- {key}: {value:.3f}")
    by_name = {r.name: r for r in results}
    ours = by_name[f"model-runtime /infer 1 row, c={args.concurrency}"]
    raw = by_name["onnxruntime in-process, 1 model, 1 row"]
    print(
        f"- model-runtime / raw onnxruntime requests/s (1 model, c={args.concurrency}): {ours.rps / raw.rps:.3f}"
    )
    for name, result in by_name.items():
        if name.startswith("MLServer") and name.endswith(f"c={args.concurrency}"):
            print(f"- model-runtime / {name} requests/s: {ours.rps / result.rps:.2f}x")
    (WORK / "results.json").write_text(
        json.dumps(
            {
                "figures": figures,
                "results": [
                    {
                        "name": r.name,
                        "rps": r.rps,
                        "p50_ms": r.pct(0.5),
                        "p99_ms": r.pct(0.99),
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
