"""The responder on its own, without a control plane: each pod's IP answers with that pod's own
bundle, every pod is marked ready, and sockets in the pod network fail with the address named.

Needs root and iproute2 (a network namespace of the test's own), not the built binaries.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from modelfleet_dev.real_cluster.netns import NetnsBinder, NetworkError
from tests.real_cluster.measure_responder import pod_network

pytestmark = pytest.mark.skipif(
    os.geteuid() != 0 or shutil.which("ip") is None,
    reason="needs root and iproute2 (a network namespace)",
)
REPO = Path(__file__).resolve().parents[2]


def test_every_pod_ip_answers_with_its_own_bundle_once_every_pod_is_marked_ready() -> None:
    # The measurement waits until every pod's readiness patch has reached the fake apiserver.
    measure = ["--no-baseline", "--pods", "60", "--requests", "600", "--concurrency", "8"]
    run = subprocess.run(
        [sys.executable, "-m", "tests.real_cluster.measure_responder", *measure],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert run.returncode == 0, run.stderr[-2000:]
    figures = json.loads(run.stdout)["client_per_thread"]
    assert figures["requests_not_200"] == 0
    assert figures["pods_answering_another_bundle"] == 0


async def test_a_taken_pod_ip_and_port_is_a_network_error_naming_them() -> None:
    netns = f"mf-test-{os.getpid()}"
    with pod_network(netns):
        binder = NetnsBinder(netns)
        try:
            first = await binder.listen("10.244.1.7", 8000)
            try:
                assert first.getsockname() == ("10.244.1.7", 8000)
                with pytest.raises(NetworkError, match=r"10\.244\.1\.7:8000 in netns mf-test-"):
                    await binder.listen("10.244.1.7", 8000)
                # Outside the pod network's /16 nothing is local in the namespace.
                with pytest.raises(NetworkError, match=r"10\.245\.0\.1:8000"):
                    await binder.listen("10.245.0.1", 8000)
            finally:
                first.close()
        finally:
            binder.close()


async def test_a_missing_namespace_is_a_network_error() -> None:
    binder = NetnsBinder(f"mf-test-gone-{os.getpid()}")
    try:
        with pytest.raises(NetworkError, match=r"cannot enter netns mf-test-gone-"):
            await binder.listen("10.244.1.7", 8000)
    finally:
        binder.close()
