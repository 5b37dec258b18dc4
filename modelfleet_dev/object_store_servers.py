"""Real object-store servers on 127.0.0.1 free ports, for tests, benchmarks and examples:
moto (S3) and Azurite (Azure Blob).

moto's server mode comes from PyPI (the `dev` extra); Azurite from npm, installed on first use
into ~/.cache/modelfleet/azurite at a pinned version (the project's own files install it: a
clean CI machine needs nothing by hand). Servers are awaited through their own "listening" log
line, never by sleeping, and stopped by their process id.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from modelfleet_dev.ports import free_loopback_port

AZURITE_VERSION = "3.37.0"
AZURITE_HOME = Path.home() / ".cache" / "modelfleet" / "azurite"
# Azurite's well-known development account (public, documented by Microsoft for the emulator).
AZURITE_ACCOUNT = "devstoreaccount1"
AZURITE_KEY = (
    "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw=="
)
READY_TIMEOUT_SECONDS = 120.0


def _start_and_await(
    argv: list[str], ready: re.Pattern[str], env: dict[str, str]
) -> subprocess.Popen[str]:
    """Start `argv` and return once a line of its output matches `ready` (or fail with the log)."""
    process = subprocess.Popen(
        argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env
    )
    assert process.stdout is not None
    seen: list[str] = []
    listening = threading.Event()

    def pump() -> None:
        assert process.stdout is not None
        for line in process.stdout:
            seen.append(line)
            if ready.search(line):
                listening.set()
        listening.set()  # output closed: the process ended

    threading.Thread(target=pump, daemon=True).start()
    if not listening.wait(READY_TIMEOUT_SECONDS) or process.poll() is not None:
        process.kill()
        raise RuntimeError(f"{argv[0]} did not start: {''.join(seen)[-2000:]}")
    return process


def _stop(process: subprocess.Popen[str]) -> None:
    process.terminate()
    try:
        process.wait(timeout=10)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


def _loopback_env() -> dict[str, str]:
    env = dict(os.environ)
    for proxy in ("HTTP_PROXY", "HTTPS_PROXY", "http_proxy", "https_proxy", "ALL_PROXY"):
        env.pop(proxy, None)
    env["NO_PROXY"] = env["no_proxy"] = "127.0.0.1,localhost"
    env["AWS_EC2_METADATA_DISABLED"] = "true"
    return env


@dataclass(frozen=True)
class S3Server:
    endpoint: str
    access_key: str = "modelfleet-test"
    secret_key: str = "modelfleet-test-secret"

    def environment(self) -> dict[str, str]:
        """What a pod would get from its credentials Secret, pointed at this server."""
        return {
            "AWS_ENDPOINT_URL": self.endpoint,
            "AWS_ACCESS_KEY_ID": self.access_key,
            "AWS_SECRET_ACCESS_KEY": self.secret_key,
            "AWS_REGION": "us-east-1",
            "AWS_EC2_METADATA_DISABLED": "true",
        }

    def create_bucket(self, name: str) -> None:
        import boto3  # type: ignore[import-untyped]  # (no stubs; only creates the test bucket)

        client = boto3.client(
            "s3",
            endpoint_url=self.endpoint,
            aws_access_key_id=self.access_key,
            aws_secret_access_key=self.secret_key,
            region_name="us-east-1",
        )
        client.create_bucket(Bucket=name)


@contextmanager
def moto_s3_server() -> Iterator[S3Server]:
    port = free_loopback_port()
    process = _start_and_await(
        [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
        re.compile(rf"Running on http://127\.0\.0\.1:{port}"),
        _loopback_env(),
    )
    try:
        yield S3Server(endpoint=f"http://127.0.0.1:{port}")
    finally:
        _stop(process)


def ensure_azurite() -> Path:
    """The pinned azurite-blob executable, installed from npm on first use."""
    executable = AZURITE_HOME / "node_modules" / ".bin" / "azurite-blob"
    if not executable.exists():
        if shutil.which("npm") is None:
            raise RuntimeError("npm is needed to install Azurite (the Azure Storage emulator)")
        AZURITE_HOME.mkdir(parents=True, exist_ok=True)
        subprocess.run(
            [
                "npm",
                "install",
                "--prefix",
                str(AZURITE_HOME),
                "--no-audit",
                "--no-fund",
                "--loglevel=error",
                f"azurite@{AZURITE_VERSION}",
            ],
            check=True,
            timeout=900,
        )
    return executable


@dataclass(frozen=True)
class AzureServer:
    blob_endpoint: str
    account: str = AZURITE_ACCOUNT
    key: str = AZURITE_KEY

    def connection_string(self, key: str | None = None) -> str:
        return (
            f"DefaultEndpointsProtocol=http;AccountName={self.account};"
            f"AccountKey={key or self.key};BlobEndpoint={self.blob_endpoint};"
        )

    def environment(self, key: str | None = None) -> dict[str, str]:
        return {"AZURE_STORAGE_CONNECTION_STRING": self.connection_string(key)}

    def create_container(self, name: str) -> None:
        from azure.storage.blob import BlobServiceClient

        BlobServiceClient.from_connection_string(self.connection_string()).create_container(name)


@contextmanager
def azurite_server(workdir: Path) -> Iterator[AzureServer]:
    executable = ensure_azurite()
    port = free_loopback_port()
    process = _start_and_await(
        [
            str(executable),
            "--blobHost",
            "127.0.0.1",
            "--blobPort",
            str(port),
            "--location",
            str(workdir),
            "--skipApiVersionCheck",
            "--loose",
            "--disableTelemetry",
        ],
        re.compile(r"Blob service successfully listens on"),
        _loopback_env(),
    )
    try:
        yield AzureServer(blob_endpoint=f"http://127.0.0.1:{port}/{AZURITE_ACCOUNT}")
    finally:
        _stop(process)
