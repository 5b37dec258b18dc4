"""Helpers for the kubesim conformance suite: a thin JSON client, kubectl, and a test CRD."""

from __future__ import annotations

import asyncio
import io
import json
import os
import subprocess
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import pytest_asyncio

from kubesim.harness.cluster import KubeSim
from tests.crd_bodies import crd_body

WIDGET_CRD: dict[str, Any] = crd_body(
    "kubesim.test",
    "Widget",
    {
        "type": "object",
        "properties": {
            "spec": {
                "type": "object",
                "required": ["size"],
                "properties": {
                    "size": {"type": "integer", "minimum": 0, "maximum": 10},
                    "color": {"type": "string", "enum": ["red", "blue"], "default": "red"},
                    "parts": {
                        "type": "array",
                        "x-kubernetes-list-type": "map",
                        "x-kubernetes-list-map-keys": ["id"],
                        "items": {
                            "type": "object",
                            "required": ["id"],
                            "properties": {"id": {"type": "string"}},
                        },
                    },
                },
                "x-kubernetes-validations": [
                    {"rule": "self.size != 7", "message": "size 7 is unlucky"}
                ],
            },
            "status": {
                "type": "object",
                "x-kubernetes-preserve-unknown-fields": True,
                "properties": {
                    "phase": {"type": "string"},
                    "conditions": {
                        "type": "array",
                        "items": {
                            "type": "object",
                            "x-kubernetes-preserve-unknown-fields": True,
                        },
                    },
                },
            },
        },
    },
    names={"singular": "widget", "shortNames": ["wd"]},
    version={
        "subresources": {"status": {}},
        "additionalPrinterColumns": [
            {"name": "Size", "type": "integer", "jsonPath": ".spec.size"},
            {"name": "Phase", "type": "string", "jsonPath": ".status.phase"},
            {"name": "Age", "type": "date", "jsonPath": ".metadata.creationTimestamp"},
        ],
    },
)
GADGET_CRD: dict[str, Any] = crd_body(
    "kubesim.test",
    "Gadget",
    {"type": "object", "x-kubernetes-preserve-unknown-fields": True},
    scope="Cluster",
    names={"singular": "gadget"},
)

WIDGETS = "/apis/kubesim.test/v1/namespaces/default/widgets"


def widget(name: str, size: int = 1, **spec: Any) -> dict[str, Any]:
    return {
        "apiVersion": "kubesim.test/v1",
        "kind": "Widget",
        "metadata": {"name": name},
        "spec": {"size": size, **spec},
    }


def pod(name: str, labels: dict[str, str] | None = None, **spec: Any) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name, "labels": labels or {}},
        "spec": {"containers": [{"name": "main", "image": "registry.local/app:1"}], **spec},
    }


@dataclass
class Reply:
    status: int
    body: Any
    headers: Any


class Http:
    """A minimal JSON client for raw apiserver requests."""

    def __init__(self, session: aiohttp.ClientSession, base: str) -> None:
        self.session = session
        self.base = base

    async def request(
        self,
        method: str,
        path: str,
        body: Any = None,
        *,
        content_type: str = "application/json",
        headers: dict[str, str] | None = None,
        raw: bytes | None = None,
    ) -> Reply:
        encoded = raw if raw is not None else (None if body is None else json.dumps(body).encode())
        data: Any = (
            io.BytesIO(encoded) if encoded is not None and len(encoded) > 1 << 20 else encoded
        )
        hdrs = {"Content-Type": content_type, **(headers or {})}
        async with self.session.request(method, self.base + path, data=data, headers=hdrs) as resp:
            text = await resp.read()
            try:
                parsed = json.loads(text) if text else None
            except ValueError:
                parsed = text
            return Reply(resp.status, parsed, resp.headers)

    async def get(self, path: str, **kw: Any) -> Reply:
        return await self.request("GET", path, **kw)

    async def post(self, path: str, body: Any, **kw: Any) -> Reply:
        return await self.request("POST", path, body, **kw)

    async def put(self, path: str, body: Any, **kw: Any) -> Reply:
        return await self.request("PUT", path, body, **kw)

    async def patch(
        self, path: str, body: Any, content_type: str = "application/merge-patch+json"
    ) -> Reply:
        return await self.request("PATCH", path, body, content_type=content_type)

    async def delete(self, path: str, body: Any = None) -> Reply:
        return await self.request("DELETE", path, body)

    async def ok(self, method: str, path: str, body: Any = None, **kw: Any) -> Any:
        reply = await self.request(method, path, body, **kw)
        assert reply.status < 300, (reply.status, reply.body)
        return reply.body

    async def watch_lines(
        self, path: str, count: int, timeout: float = 5.0
    ) -> list[dict[str, Any]]:
        """Read ``count`` events (or until the server ends the stream / timeout)."""
        events: list[dict[str, Any]] = []
        async with self.session.get(
            self.base + path, timeout=aiohttp.ClientTimeout(total=timeout)
        ) as resp:
            assert resp.status == 200, await resp.text()
            while len(events) < count:
                line = await resp.content.readline()
                if not line:
                    break
                events.append(json.loads(line))
        return events


@pytest_asyncio.fixture
async def http(kubesim: KubeSim) -> AsyncIterator[Http]:
    async with aiohttp.ClientSession() as session:
        yield Http(session, kubesim.url)


async def eventually(check: Callable[[], Any], timeout: float = 5.0, interval: float = 0.02) -> Any:
    """Poll ``check`` (sync or async) until it returns a truthy value; fail at the deadline."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    last: Any = None
    while loop.time() < deadline:
        last = check()
        if asyncio.iscoroutine(last):
            last = await last
        if last:
            return last
        await asyncio.sleep(interval)
    raise AssertionError(f"condition not met within {timeout}s (last: {last!r})")


@pytest.fixture(scope="session")
def kubectl_cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("kubectl-cache")


def run_kubectl(
    kubeconfig: Path,
    cache: Path,
    *args: str,
    stdin: str | None = None,
    check: bool = True,
    timeout: float = 30,
) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k != "KUBECONFIG"}
    proc = subprocess.run(
        ["kubectl", f"--kubeconfig={kubeconfig}", f"--cache-dir={cache}", *args],
        input=stdin,
        capture_output=True,
        text=True,
        timeout=timeout,
        env=env,
    )
    if check and proc.returncode != 0:
        raise AssertionError(
            f"kubectl {' '.join(args)} failed ({proc.returncode}):\n{proc.stdout}\n{proc.stderr}"
        )
    return proc
