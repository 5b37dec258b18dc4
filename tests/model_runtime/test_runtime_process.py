"""`model-runtime serve` as a process: signals behave as a Kubernetes pod needs them to."""

from __future__ import annotations

import json
import re
import signal
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from runtime_harness import write_annotations

from bundle_builder.building import BuiltBundle
from model_runtime.annotations import BUNDLE_DIGEST_ANNOTATION, BUNDLE_URI_ANNOTATION
from modelfleet_dev.api_poller import wait_until


class RuntimeProcess:
    def __init__(self, log: Path, *args: str) -> None:
        self.log = log
        self.process = subprocess.Popen(
            [sys.executable, "-m", "model_runtime.cli", "serve", "--port", "0", *args],
            stdout=subprocess.DEVNULL,
            stderr=log.open("w"),
        )
        match: list[str] = []

        def listening() -> bool:
            assert self.process.poll() is None, self.log.read_text()
            found = re.search(r"listening on http://127\.0\.0\.1:(\d+)", self.log.read_text())
            if found:
                match.append(found.group(1))
            return bool(found)

        wait_until("the listening line", listening, timeout=20)
        self.port = int(match[0])
        self.url = f"http://127.0.0.1:{self.port}"

    def digest(self) -> str | None:
        bundle = httpx.get(f"{self.url}/v2").json()["bundle"]
        return bundle["digest"] if bundle else None


@pytest.fixture
def processes() -> Iterator[list[RuntimeProcess]]:
    started: list[RuntimeProcess] = []
    yield started
    for runtime in started:
        if runtime.process.poll() is None:
            runtime.process.kill()
            runtime.process.wait(timeout=10)


def test_sigterm_stops_accepting_drains_the_in_flight_request_and_exits_0(
    tmp_path: Path, small_bundle: BuiltBundle, processes: list[RuntimeProcess]
) -> None:
    runtime = RuntimeProcess(tmp_path / "log", "--bundle", str(small_bundle.path))
    processes.append(runtime)
    wait_until("ready", lambda: runtime.digest() == small_bundle.digest, timeout=20)

    body = json.dumps(
        {
            "inputs": [
                {
                    "name": "sensors",
                    "shape": [1, 7],
                    "datatype": "FP32",
                    "data": [1, 2, 3, 4, 5, 6, 7],
                }
            ]
        }
    ).encode()
    head = (
        f"POST /v2/models/gas-lock-01d/infer HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
        f"Content-Length: {len(body)}\r\n\r\n"
    ).encode()
    with socket.create_connection(("127.0.0.1", runtime.port)) as in_flight:
        in_flight.sendall(head + body[:10])  # the request is in flight: headers read, body pending
        # The scrape counts itself: 2 = the scrape + our pending request.
        in_flight_gauge = "modelfleet_runtime_requests_in_flight 2.0"
        wait_until(
            "request in flight", lambda: in_flight_gauge in httpx.get(f"{runtime.url}/metrics").text
        )
        runtime.process.send_signal(signal.SIGTERM)

        def refuses_new_connections() -> bool:
            try:
                socket.create_connection(("127.0.0.1", runtime.port), timeout=0.5).close()
                return False
            except OSError:
                return True

        wait_until("the listener to close", refuses_new_connections, timeout=10)
        assert runtime.process.poll() is None, "must wait for the in-flight request"
        in_flight.sendall(body[10:])
        response = in_flight.recv(65536).decode()
    assert response.startswith("HTTP/1.1 200"), response
    assert runtime.process.wait(timeout=20) == 0
    assert "drained; exiting" in runtime.log.read_text()


def test_sighup_reloads_from_the_annotations_file(
    tmp_path: Path,
    small_bundle: BuiltBundle,
    second_bundle: BuiltBundle,
    processes: list[RuntimeProcess],
) -> None:
    volume = tmp_path / "podinfo"
    visible = write_annotations(volume, {BUNDLE_URI_ANNOTATION: str(small_bundle.path)})
    # A poll period far beyond the test: only SIGHUP can trigger the swap.
    runtime = RuntimeProcess(
        tmp_path / "log", "--annotations-file", str(visible), "--poll-interval", "3600"
    )
    processes.append(runtime)
    wait_until("first bundle", lambda: runtime.digest() == small_bundle.digest, timeout=20)
    write_annotations(
        volume,
        {
            BUNDLE_URI_ANNOTATION: str(second_bundle.path),
            BUNDLE_DIGEST_ANNOTATION: second_bundle.digest,
        },
    )
    runtime.process.send_signal(signal.SIGHUP)
    wait_until(
        "the swap after SIGHUP", lambda: runtime.digest() == second_bundle.digest, timeout=20
    )
    assert httpx.get(f"{runtime.url}/v2/health/ready").status_code == 200
    runtime.process.send_signal(signal.SIGTERM)
    assert runtime.process.wait(timeout=20) == 0


def test_serve_without_a_bundle_source_is_a_usage_error() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "model_runtime.cli", "serve"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert (
        result.returncode == 2 and "give --bundle URI or --annotations-file PATH" in result.stderr
    )


def test_serving_never_imports_the_training_stack(small_bundle: BuiltBundle) -> None:
    """The runtime image ships without scikit-learn, skl2onnx, onnx and rich (docs/images.md)."""
    script = f"""
import sys
class Block:
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in {{"sklearn", "skl2onnx", "onnx", "rich", "kopf", "kubernetes"}}:
            raise ImportError("blocked " + name)
sys.meta_path.insert(0, Block())
import model_runtime.cli, model_runtime.server, model_runtime.hotswap
from model_runtime.bundle_state import load_bundle
print(load_bundle({str(small_bundle.path)!r}).digest)
"""
    result = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == small_bundle.digest
