"""The conformance suite: the same tests against kubesim and against a real apiserver.

Why this exists: kubesim's fidelity is defined by behaviour a real kube-apiserver shows. Each test
here talks to a cluster only through a kubeconfig (no kubesim internals), so it runs unchanged on
both: without KUBECONFIG a fresh kubesim per module; with KUBECONFIG set, that cluster (the
e2e suite's mechanism: `python -m modelfleet_dev.real_cluster test -- tests/kubesim/conformance`
starts a real control plane and sets it). A test that fails on one of the two is a fidelity
bug (in kubesim) or a wrong expectation (in the test).
"""

from __future__ import annotations

import base64
import os
import ssl
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from kubesim.harness.testing import kubesim_in_thread

EXTERNAL_KUBECONFIG = os.environ.get("KUBECONFIG") or None


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers",
        "conformance: talks to the cluster only through a kubeconfig; runs on kubesim and on a "
        "real apiserver (KUBECONFIG)",
    )


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    here = Path(__file__).parent
    for item in items:
        if here in item.path.parents:
            item.add_marker(pytest.mark.conformance)


@dataclass
class ConformanceCluster:
    """A cluster reached through its kubeconfig: admin requests and credential-less ones."""

    kubeconfig: Path
    real: bool  # a real apiserver (True) or kubesim (False): for messages only, never for paths
    server: str
    trust: ssl.SSLContext | None
    admin: httpx.Client

    def anonymous(self) -> httpx.Client:
        return httpx.Client(base_url=self.server, verify=self.trust or False, timeout=30)


def _client_from_kubeconfig(
    path: Path, scratch: Path
) -> tuple[str, ssl.SSLContext | None, httpx.Client]:
    config: dict[str, Any] = yaml.safe_load(path.read_text())
    context_name = config.get("current-context")
    context = next(c["context"] for c in config["contexts"] if c["name"] == context_name)
    cluster = next(c["cluster"] for c in config["clusters"] if c["name"] == context["cluster"])
    user = next(
        (
            u.get("user") or {}
            for u in config.get("users") or []
            if u["name"] == context.get("user")
        ),
        {},
    )
    server = str(cluster["server"])
    headers: dict[str, str] = {}
    if not server.startswith("https://"):
        return server, None, httpx.Client(base_url=server, timeout=30)

    def materialise(data_key: str, file_key: str, source: dict[str, Any], name: str) -> str | None:
        if source.get(data_key):
            target = scratch / name
            target.write_bytes(base64.b64decode(source[data_key]))
            return str(target)
        return str(source[file_key]) if source.get(file_key) else None

    ca = materialise("certificate-authority-data", "certificate-authority", cluster, "ca.crt")
    trust = ssl.create_default_context(cafile=ca)
    context_tls = ssl.create_default_context(cafile=ca)
    cert = materialise("client-certificate-data", "client-certificate", user, "client.crt")
    key = materialise("client-key-data", "client-key", user, "client.key")
    if cert and key:
        context_tls.load_cert_chain(cert, key)
    if user.get("token"):
        headers["Authorization"] = f"Bearer {user['token']}"
    return (
        server,
        trust,
        httpx.Client(base_url=server, verify=context_tls, headers=headers, timeout=30),
    )


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ConformanceCluster]:
    scratch = Path(tempfile.mkdtemp(dir=tmp_path_factory.getbasetemp()))
    if EXTERNAL_KUBECONFIG is not None:
        kubeconfig = Path(EXTERNAL_KUBECONFIG)
        server, trust, admin = _client_from_kubeconfig(kubeconfig, scratch)
        with admin:
            yield ConformanceCluster(kubeconfig, True, server, trust, admin)
        return
    with kubesim_in_thread(tmp_path_factory.mktemp("kubesim"), run_kubelet=False) as sim:
        server, trust, admin = _client_from_kubeconfig(sim.kubeconfig, scratch)
        with admin:
            yield ConformanceCluster(sim.kubeconfig, False, server, trust, admin)
