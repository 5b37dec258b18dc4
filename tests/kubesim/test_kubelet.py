"""The simulated kubelet: phases, conditions, readiness gates, profiles, process pods."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from kubesim.harness.cluster import KubeSim
from kubesim.harness.testing import run_kubesim
from kubesim.node.kubelet import KubeletConfig
from tests.kubesim.conftest import Http, eventually, pod

PODS = "/api/v1/namespaces/default/pods"
LIFECYCLE = "https://kubernetes.io/docs/concepts/workloads/pods/pod-lifecycle/"


def _conditions(p: dict[str, Any]) -> dict[str, str]:
    return {c["type"]: c["status"] for c in p.get("status", {}).get("conditions", [])}


async def _get(http: Http, name: str) -> dict[str, Any]:
    body: dict[str, Any] = await http.ok("GET", f"{PODS}/{name}")
    return body


async def test_instant_profile_reaches_running_ready_in_one_write(
    http: Http, kubesim: KubeSim
) -> None:
    """Pods go Pending -> Running with PodScheduled, Initialized, ContainersReady, Ready conditions,
    a podIP from 127.0.0.0/8 (never 127.0.0.1), hostIP and containerStatuses; instant = one write.
    https://kubernetes.io/docs/concepts/workloads/pods/pod-lifecycle/#pod-conditions"""
    rv = (await http.ok("GET", PODS))["metadata"]["resourceVersion"]
    await http.ok("POST", PODS, pod("i1"))
    await http.ok("POST", PODS, pod("i2"))
    await kubesim.settle()
    events = await http.watch_lines(
        f"{PODS}?watch=1&resourceVersion={rv}&fieldSelector=metadata.name%3Di1", 2
    )
    assert [e["type"] for e in events] == ["ADDED", "MODIFIED"]
    assert events[0]["object"]["status"]["phase"] == "Pending"
    p = events[1]["object"]
    assert p["status"]["phase"] == "Running" and p["spec"]["nodeName"] == "kubesim-node"
    assert _conditions(p) | {"PodScheduled": "True"} == {
        "PodReadyToStartContainers": "True",
        "Initialized": "True",
        "Ready": "True",
        "ContainersReady": "True",
        "PodScheduled": "True",
    }
    cs = p["status"]["containerStatuses"][0]
    assert cs["ready"] and cs["restartCount"] == 0 and "running" in cs["state"]
    ips = {p["status"]["podIP"], (await _get(http, "i2"))["status"]["podIP"]}
    assert len(ips) == 2 and all(ip.startswith("127.") and ip != "127.0.0.1" for ip in ips)
    assert p["status"]["hostIP"] == "127.0.0.1"


async def test_readiness_gates_hold_ready_until_condition_true_and_are_preserved(
    http: Http, kubesim: KubeSim
) -> None:
    """Ready = all containers ready AND every readinessGates conditionType True in status.conditions;
    the gate condition is written by someone else through pods/status and kept by the kubelet.
    https://kubernetes.io/docs/concepts/workloads/pods/pod-lifecycle/#pod-readiness-gate"""
    await http.ok(
        "POST", PODS, pod("gated", readinessGates=[{"conditionType": "kubesim.test/gate"}])
    )
    await kubesim.settle()
    p = await _get(http, "gated")
    assert _conditions(p)["ContainersReady"] == "True" and _conditions(p)["Ready"] == "False"
    conditions = p["status"]["conditions"] + [{"type": "kubesim.test/gate", "status": "True"}]
    await http.ok(
        "PATCH",
        f"{PODS}/gated/status",
        {"status": {"conditions": conditions}},
        content_type="application/merge-patch+json",
    )

    async def ready() -> bool:
        return _conditions(await _get(http, "gated")).get("Ready") == "True"

    await eventually(ready)
    assert _conditions(await _get(http, "gated"))["kubesim.test/gate"] == "True"


async def test_delay_profile_keeps_pods_pending_then_running(tmp_path: Path) -> None:
    """A delay profile: Pending (ContainerCreating) until the delay passed, then Running.
    https://kubernetes.io/docs/concepts/workloads/pods/pod-lifecycle/#container-state-waiting"""
    async with (
        run_kubesim(tmp_path, kubelet=KubeletConfig(delay_seconds=0.4, jitter_seconds=0.1)) as sim,
        aiohttp.ClientSession() as session,
    ):
        http = Http(session, sim.url)
        await http.ok("POST", PODS, pod("slow"))
        await sim.settle()
        p = await _get(http, "slow")
        assert p["status"]["phase"] == "Pending"
        assert (
            p["status"]["containerStatuses"][0]["state"]["waiting"]["reason"] == "ContainerCreating"
        )

        async def running() -> bool:
            return bool((await _get(http, "slow"))["status"]["phase"] == "Running")

        await eventually(running, timeout=5)


async def test_crash_loop_selector_and_failure_rate(tmp_path: Path) -> None:
    """Crash-looping containers: waiting CrashLoopBackOff, restartCount grows, never Ready.
    https://kubernetes.io/docs/concepts/workloads/pods/pod-lifecycle/#container-restarts"""
    config = KubeletConfig(crash_loop_selector="crash=yes", crash_backoff_seconds=0.05)
    async with run_kubesim(tmp_path, kubelet=config) as sim, aiohttp.ClientSession() as session:
        http = Http(session, sim.url)
        await http.ok("POST", PODS, pod("bad", {"crash": "yes"}))
        await http.ok("POST", PODS, pod("good"))

        async def restarted() -> bool:
            cs = (await _get(http, "bad"))["status"].get("containerStatuses") or [{}]
            return bool(cs[0].get("restartCount", 0) >= 2)

        await eventually(restarted)
        bad = await _get(http, "bad")
        assert (
            bad["status"]["containerStatuses"][0]["state"]["waiting"]["reason"]
            == "CrashLoopBackOff"
        )
        assert _conditions(bad)["Ready"] == "False"
        assert _conditions(await _get(http, "good"))["Ready"] == "True"
    async with (
        run_kubesim(tmp_path / "all", kubelet=KubeletConfig(failure_rate=1.0)) as sim,
        aiohttp.ClientSession() as session,
    ):
        http = Http(session, sim.url)
        await http.ok("POST", PODS, pod("f"))
        await sim.settle()
        assert _conditions(await _get(http, "f"))["Ready"] == "False"


_SERVER = r"""
import http.server, os, sys, signal
ann = sys.argv[2]
class H(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        body = (open(ann).read() + "\n" + os.environ["POD_NAME"] + " " + os.environ["GREETING"]).encode()
        self.send_response(200); self.end_headers(); self.wfile.write(body)
    def log_message(self, *a): pass
signal.signal(signal.SIGTERM, lambda *a: sys.exit(0))
http.server.HTTPServer((sys.argv[1], 8080), H).serve_forever()
"""


@pytest.mark.kubelet
async def test_process_pod_runs_command_with_env_downward_files_probe_and_stops_on_delete(
    tmp_path: Path,
) -> None:
    """Pods matching run_selector run their command: env (value, fieldRef, $(VAR)), downward-API
    annotation files (key="value" lines), readiness from the httpGet readinessProbe; deletion
    stops the process within the grace period.
    https://kubernetes.io/docs/concepts/workloads/pods/downward-api/#downwardapi-volume-files"""
    config = KubeletConfig(
        run_selector="run=process", annotation_refresh_delay=0.1, work_dir=tmp_path / "kubelet"
    )
    async with run_kubesim(tmp_path, kubelet=config) as sim, aiohttp.ClientSession() as session:
        http = Http(session, sim.url)
        body = pod("proc", {"run": "process"})
        body["metadata"]["annotations"] = {"a": 'say "hi"'}
        body["spec"]["containers"] = [
            {
                "name": "main",
                "image": "local/python",
                "command": [sys.executable, "-c", _SERVER],
                "args": ["$(POD_IP)", "/etc/podinfo/annotations"],
                "env": [
                    {"name": "POD_IP", "valueFrom": {"fieldRef": {"fieldPath": "status.podIP"}}},
                    {"name": "POD_NAME", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}},
                    {"name": "GREETING", "value": "hello $(POD_NAME)"},
                ],
                "ports": [{"containerPort": 8080, "name": "http"}],
                "readinessProbe": {"httpGet": {"path": "/", "port": "http"}, "periodSeconds": 1},
                "volumeMounts": [{"name": "podinfo", "mountPath": "/etc/podinfo"}],
            }
        ]
        body["spec"]["volumes"] = [
            {
                "name": "podinfo",
                "downwardAPI": {
                    "items": [
                        {"path": "annotations", "fieldRef": {"fieldPath": "metadata.annotations"}}
                    ]
                },
            }
        ]
        await http.ok("POST", PODS, body)

        async def ready() -> bool:
            return _conditions(await _get(http, "proc")).get("Ready") == "True"

        await eventually(ready, timeout=15)
        answer = (await http.get(f"{PODS}/proc/proxy/")).body.decode()
        assert answer == 'a="say \\"hi\\""\nproc hello proc'
        await http.ok(
            "PATCH",
            f"{PODS}/proc",
            {"metadata": {"annotations": {"a": "b"}}},
            content_type="application/merge-patch+json",
        )

        async def refreshed() -> bool:
            return bool((await http.get(f"{PODS}/proc/proxy/")).body.decode().startswith('a="b"'))

        await eventually(refreshed)
        await http.request("DELETE", f"{PODS}/proc?gracePeriodSeconds=5")
        await eventually(lambda: sim.store.get("/pods", "default", "proc") is None, timeout=8)


_UNHEALTHY = r"""
import http.server, sys
class H(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        self.send_response(500 if self.path == "/live" else 200); self.end_headers()
    def log_message(self, *a): pass
http.server.HTTPServer((sys.argv[1], 8080), H).serve_forever()
"""


@pytest.mark.kubelet
async def test_process_pod_failing_liveness_probe_is_restarted(tmp_path: Path) -> None:
    """A container failing its livenessProbe failureThreshold times is killed and restarted
    (restartCount increments).
    https://kubernetes.io/docs/tasks/configure-pod-container/configure-liveness-readiness-startup-probes/"""
    config = KubeletConfig(
        run_selector="run=process", work_dir=tmp_path / "kubelet", crash_backoff_seconds=0.05
    )
    async with run_kubesim(tmp_path, kubelet=config) as sim, aiohttp.ClientSession() as session:
        http = Http(session, sim.url)
        body = pod("sick", {"run": "process"})
        body["spec"]["containers"] = [
            {
                "name": "main",
                "image": "local/python",
                "command": [sys.executable, "-c", _UNHEALTHY, "$(POD_IP)"],
                "env": [
                    {"name": "POD_IP", "valueFrom": {"fieldRef": {"fieldPath": "status.podIP"}}}
                ],
                "livenessProbe": {
                    "httpGet": {"path": "/live", "port": 8080},
                    "periodSeconds": 1,
                    "failureThreshold": 2,
                },
            }
        ]
        await http.ok("POST", PODS, body)

        async def restarted() -> bool:
            statuses = (await _get(http, "sick"))["status"].get("containerStatuses") or [{}]
            return bool(statuses[0].get("restartCount", 0) >= 1)

        await eventually(restarted, timeout=15)
        await http.request("DELETE", f"{PODS}/sick?gracePeriodSeconds=1")
        await eventually(lambda: sim.store.get("/pods", "default", "sick") is None, timeout=8)


_SLOW_START = r"""
import http.server, sys, time
time.sleep(1.5)  # e.g. loading a large model bundle before listening
class H(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        self.send_response(200); self.end_headers()
    def log_message(self, *a): pass
http.server.HTTPServer((sys.argv[1], 8080), H).serve_forever()
"""


@pytest.mark.kubelet
async def test_startup_probe_holds_liveness_until_a_slow_container_listens(tmp_path: Path) -> None:
    """While a startupProbe has not succeeded, liveness and readiness probes do not run, so a
    slow-starting container is not killed; each probe keeps its own periodSeconds.
    https://kubernetes.io/docs/concepts/configuration/liveness-readiness-startup-probes/#startup-probe"""
    config = KubeletConfig(
        run_selector="run=process", work_dir=tmp_path / "kubelet", crash_backoff_seconds=0.05
    )
    async with run_kubesim(tmp_path, kubelet=config) as sim, aiohttp.ClientSession() as session:
        http = Http(session, sim.url)
        body = pod("slow", {"run": "process"})
        probe = {"httpGet": {"path": "/", "port": 8080}}
        body["spec"]["containers"] = [
            {
                "name": "main",
                "image": "local/python",
                "command": [sys.executable, "-c", _SLOW_START, "$(POD_IP)"],
                "env": [
                    {"name": "POD_IP", "valueFrom": {"fieldRef": {"fieldPath": "status.podIP"}}}
                ],
                # Without the startupProbe this liveness probe (0.1 s apart at the test's time scale,
                # threshold 1) would kill the container before it listens.
                "startupProbe": {**probe, "periodSeconds": 1, "failureThreshold": 60},
                "livenessProbe": {**probe, "periodSeconds": 1, "failureThreshold": 1},
                "readinessProbe": {**probe, "periodSeconds": 1},
            }
        ]
        await http.ok("POST", PODS, body)

        async def ready() -> bool:
            return _conditions(await _get(http, "slow")).get("Ready") == "True"

        await eventually(ready, timeout=20)
        statuses = (await _get(http, "slow"))["status"]["containerStatuses"]
        assert statuses[0]["restartCount"] == 0
        await http.request("DELETE", f"{PODS}/slow?gracePeriodSeconds=1")
        await eventually(lambda: sim.store.get("/pods", "default", "slow") is None, timeout=8)


_PRINT_FILE = r"""
import sys, time
print(open(sys.argv[1]).read(), flush=True)
time.sleep(60)
"""


@pytest.mark.kubelet
async def test_process_pod_mount_paths_are_rewritten_once_even_when_tmp_is_mounted(
    tmp_path: Path,
) -> None:
    """A container sees its volumes at their mountPath; kubesim maps each mountPath in the
    command to the pod's host directory exactly once (a /tmp emptyDir beside a downward-API
    volume, with the kubelet's own directory under /tmp).
    https://kubernetes.io/docs/concepts/workloads/pods/downward-api/"""
    config = KubeletConfig(run_selector="run=process", work_dir=tmp_path / "kubelet")
    async with run_kubesim(tmp_path, kubelet=config) as sim, aiohttp.ClientSession() as session:
        http = Http(session, sim.url)
        body = pod("reader", {"run": "process"})
        body["metadata"]["annotations"] = {"modelfleet.dev/bundle-uri": "file:///b/w1"}
        body["spec"]["volumes"] = [
            {
                "name": "podinfo",
                "downwardAPI": {
                    "items": [
                        {"path": "annotations", "fieldRef": {"fieldPath": "metadata.annotations"}}
                    ]
                },
            },
            {"name": "tmp", "emptyDir": {}},
        ]
        body["spec"]["containers"] = [
            {
                "name": "main",
                "image": "local/python",
                # "python", not sys.executable: the interpreter may itself live under /tmp (a CI
                # clone), and in a container /tmp/... means the mounted volume.
                "command": ["python", "-c", _PRINT_FILE, "/etc/podinfo/annotations"],
                "volumeMounts": [
                    {"name": "podinfo", "mountPath": "/etc/podinfo"},
                    {"name": "tmp", "mountPath": "/tmp"},
                ],
            }
        ]
        await http.ok("POST", PODS, body)

        async def printed() -> bool:
            async with session.get(f"{sim.url}{PODS}/reader/log") as resp:
                return 'modelfleet.dev/bundle-uri="file:///b/w1"' in await resp.text()

        await eventually(printed, timeout=15)
        await http.request("DELETE", f"{PODS}/reader?gracePeriodSeconds=1")
