"""Operator at scale: 1,000 to 10,000 wells under one ModelDeployment, on kubesim.

Why this exists: a worldwide roll-out puts 10,000+ wells under one ModelDeployment; this script
measures what that costs the operator and the API server, against targets in docs/benchmarks.md
("Operator at scale"). kubesim and the operator each run as their own process, so the operator's
RSS and CPU are its own (read from /proc); the load generator, the watches that time things and
the raw-capacity client run in this process.

Per well count, three kubesim processes are used in turn:
1. raw capacity: a plain aiohttp client creates the same pods the operator would, as fast as it
   can (64 in flight); its pods/s is the limit the operator is compared with;
2. instant kubelet + operator: apply -> all wells Ready, API requests by verb/resource, 60 s of
   steady state (operator writes from its /metrics, all writes from kubesim's resourceVersion),
   status freshness (readiness-gate flips through pods/status), peak RSS, CPU seconds;
3. kubelet start delay D + operator: a runtime-image change (pods are recreated, so D applies to
   every wave) at maxUnavailable 10%, timed against waves x D, with unavailable wells sampled at
   every pod event.

Bundles: one real bundle per model version is built (bundle_builder.building, 1 model each) and
every well's directory is a symlink to it; kubesim's simulated runtime reads only manifest.json
and the operator sees one distinct bundle URI per well either way (see docs/benchmarks.md).

Run: ``.venv/bin/python bench/operator_scale.py [--wells 1000,5000,10000] [--json FILE]``.
Everything binds and connects to 127.0.0.1 only.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import os
import re
import signal
import statistics
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import httpx
import yaml

from modelfleet.api.spec import BundleConfirmation, RolloutPolicy, RuntimeSpec, Well
from modelfleet.logic.revisions import WellTarget
from modelfleet.logic.wellpod import BUNDLE_CONDITION, desired_pod
from modelfleet_dev import fleet_manifest
from modelfleet_dev.api_poller import wait_until
from modelfleet_dev.fleet_manifest import ModelDeploymentManifest
from modelfleet_dev.local_cluster import kubeconfig_server, start_kubesim, start_operator
from modelfleet_dev.pod_readiness_watch import UnavailableWellsWatch

ROOT = Path(__file__).resolve().parents[1]
CRD = ROOT / "crds" / "modeldeployment.yaml"
NS = "default"
MD_PATH = f"/apis/modelfleet.dev/v1alpha1/namespaces/{NS}/modeldeployments"
NAME = "fleet"
WRITE_VERBS = {"create", "patch", "delete", "update", "proxy"}
CLK_TCK = os.sysconf("SC_CLK_TCK")


def kwok_nodes(asked: int, wells: int) -> int:
    """--nodes, or (0) Nodes for the wells plus a quarter: a recreate roll-out's terminating
    pods hold their IPs while the replacements start."""
    from modelfleet_dev.real_cluster.cluster import nodes_for

    return asked or nodes_for(math.ceil(wells * 1.25), at_least=4)


def log(*parts: object) -> None:
    print(time.strftime("%H:%M:%S"), *parts, file=sys.stderr, flush=True)


# --------------------------------------------------------------------------------- processes


@contextmanager
def kubesim_process(workdir: Path, kubelet: str) -> Iterator[tuple[str, Path, int]]:
    """`python -m kubesim serve` in its own process (as the demo starts it, with the simulated
    model runtime); yields (url, kubeconfig, pid)."""
    process = start_kubesim(workdir, kubelet=kubelet)
    kubeconfig = workdir / "kubeconfig"
    try:
        yield kubeconfig_server(kubeconfig), kubeconfig, process.pid
    finally:
        process.stop(timeout=20)


@dataclass
class OperatorProcess:
    pid: int
    metrics_url: str


@contextmanager
def operator_process(
    kubeconfig: Path, workdir: Path, *, qps: float, burst: int, concurrency: int
) -> Iterator[OperatorProcess]:
    """`modelfleet operator` in its own process, yielded once its pod informer's watch is open."""
    limits = ("--qps", str(qps), "--burst", str(burst), "--concurrency", str(concurrency))
    process, metrics_port = start_operator(kubeconfig, workdir, namespace=NS, extra_args=limits)
    op = OperatorProcess(process.pid, f"http://127.0.0.1:{metrics_port}/metrics")
    try:
        wait_until(
            f"the operator's pod watch (log {process.log_path})",
            lambda: any(k[0] == "watch" and k[1] == "pods" for k in api_calls(op)),
            timeout=60,
            interval=0.1,
        )
        yield op
    finally:
        process.stop(timeout=30)


def peak_rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLK_TCK  # utime + stime


_CALL = re.compile(
    r'^modelfleet_operator_api_calls_total\{code="([^"]*)",resource="([^"]*)",verb="([^"]*)"\} (\S+)$'
)


def api_calls(op: OperatorProcess) -> dict[tuple[str, str, str], float]:
    """(verb, resource, code) -> count, from the operator's /metrics."""
    calls: dict[tuple[str, str, str], float] = {}
    for line in httpx.get(op.metrics_url, timeout=10).text.splitlines():
        m = _CALL.match(line)
        if m:
            code, resource, verb, value = m.groups()
            calls[(verb, resource, code)] = float(value)
    return calls


def calls_delta(
    after: dict[tuple[str, str, str], float], before: dict[tuple[str, str, str], float]
) -> dict[str, float]:
    """'verb resource' -> calls in between (all codes)."""
    out: dict[str, float] = {}
    for key, value in after.items():
        d = value - before.get(key, 0.0)
        if d:
            name = f"{key[0]} {key[1]}"
            out[name] = out.get(name, 0.0) + d
    return dict(sorted(out.items()))


def writes(delta: dict[str, float]) -> float:
    return sum(v for k, v in delta.items() if k.split()[0] in WRITE_VERBS)


# ----------------------------------------------------------------------------------- bundles


def prepare_bundles(cache: Path, versions: list[str], wells: int) -> dict[str, str]:
    """One real bundle per version; <cache>/links/<version>/<well> -> it. Returns the template."""
    from bundle_builder.building import build_bundle

    for version in versions:
        real = cache / "real" / version
        if not (real / "manifest.json").exists():
            started = time.perf_counter()
            build_bundle("w00000", real, models=1, version=version)
            log(f"built bundle {version} in {time.perf_counter() - started:.1f}s")
        links = cache / "links" / version
        links.mkdir(parents=True, exist_ok=True)
        for i in range(wells):
            link = links / well_id(i)
            if not link.is_symlink():
                link.symlink_to(real, target_is_directory=True)
    return {"bundleUri": f"file://{cache}/links/{{version}}/{{well}}"}


def well_id(i: int) -> str:
    return f"w{i:05d}"


def deployment(
    wells: int, version: str, bundle_uri: str, **rollout: Any
) -> ModelDeploymentManifest:
    return fleet_manifest.model_deployment(
        NAME,
        namespace=NS,
        version=version,
        bundle_uri=bundle_uri,
        wells=[well_id(i) for i in range(wells)],
        rollout=RolloutPolicy.model_validate(rollout) if rollout else None,
    )


WELLS_PER_CONFIG_MAP = 5_000  # 3 labels each: ~0.45 MB of wells.yaml, well under 1 MiB


def by_reference(
    http: httpx.Client, body: dict[str, Any], bundles: Path, version: str
) -> dict[str, int]:
    """--inventory configmap: the fleet's wells, with 3 labels each, in ConfigMaps of
    WELLS_PER_CONFIG_MAP wells, and a digest per well in one more (YAML, as `kubectl create
    configmap --from-file` stores it); `body` is changed to name them. Returns their sizes."""
    from model_runtime.manifest import manifest_digest

    digest = manifest_digest((bundles / "real" / version / "manifest.json").read_bytes())
    lifts = ("esp", "gas-lift", "rod-pump")
    wells = [
        {
            "id": w["id"],
            "labels": {
                "country": ("ca", "us", "no")[i % 3],
                "field": f"field-{i // 500:03d}",
                "lift": lifts[i % 3],
            },
        }
        for i, w in enumerate(body["spec"].pop("wells"))
    ]
    maps = {
        f"{NAME}-wells-{k}": {
            "wells.yaml": yaml.safe_dump(wells[k * WELLS_PER_CONFIG_MAP :][:WELLS_PER_CONFIG_MAP])
        }
        for k in range(math.ceil(len(wells) / WELLS_PER_CONFIG_MAP))
    }
    digests = f"{NAME}-{version}-digests"
    maps[digests] = {"digests.yaml": yaml.safe_dump({w["id"]: digest for w in wells})}
    sizes = {}
    for name, data in maps.items():
        r = http.post(
            f"/api/v1/namespaces/{NS}/configmaps",
            json={
                "apiVersion": "v1",
                "kind": "ConfigMap",
                "metadata": {"name": name},
                "data": data,
            },
        )
        assert r.status_code == 201, r.text[:300]
        sizes[f"configmap/{name}"] = sum(len(v.encode()) for v in data.values())
    body["spec"]["wellsFrom"] = [{"configMap": n} for n in maps if n != digests]
    body["spec"]["model"]["digestsFrom"] = [{"configMap": digests}]
    return sizes


def stored_sizes(http: httpx.Client) -> dict[str, int]:
    """Bytes of the ModelDeployment and its ControllerRevisions as stored (compact JSON)."""
    sizes = {}
    for path in (MD_PATH, f"/apis/apps/v1/namespaces/{NS}/controllerrevisions"):
        for item in http.get(path).json()["items"]:
            kind = item["kind"] if "kind" in item else path.rsplit("/", 1)[-1]
            item["metadata"].pop("managedFields", None)
            sizes[f"{kind.lower()}/{item['metadata']['name']}"] = len(
                json.dumps(item, separators=(",", ":")).encode()
            )
    return sizes


# ------------------------------------------------------------------------------------ watches


class DeploymentWatch:
    """Follows the ModelDeployment through a watch; waiters are woken at every status change."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.status: dict[str, Any] = {}
        self.history: list[tuple[float, int, int]] = []  # (perf_counter, updated, available)
        self.cond = threading.Condition()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> DeploymentWatch:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(5)

    def _run(self) -> None:
        with httpx.Client(base_url=self.url, timeout=None) as http:
            rv = http.get(MD_PATH).json()["metadata"]["resourceVersion"]
            while not self._stop.is_set():
                params = {"watch": "1", "resourceVersion": rv, "timeoutSeconds": "1"}
                with http.stream("GET", MD_PATH, params=params) as stream:
                    for line in stream.iter_lines():
                        if not line:
                            continue
                        event = json.loads(line)
                        obj = event["object"]
                        rv = obj["metadata"]["resourceVersion"]
                        if event["type"] in ("ADDED", "MODIFIED"):
                            with self.cond:
                                self.status = obj.get("status") or {}
                                self.history.append(
                                    (
                                        time.perf_counter(),
                                        int(self.status.get("updatedWells") or 0),
                                        int(self.status.get("availableWells") or 0),
                                    )
                                )
                                self.cond.notify_all()

    def wait(self, check: Callable[[dict[str, Any]], bool], timeout: float) -> float:
        """Block until check(status) holds; returns time.perf_counter() when it was seen."""
        deadline = time.monotonic() + timeout
        with self.cond:
            while not check(self.status):
                left = deadline - time.monotonic()
                if left <= 0:
                    raise TimeoutError(f"status never matched; last: {_short(self.status)}")
                self.cond.wait(min(left, 1.0))
            return time.perf_counter()


def _short(status: dict[str, Any]) -> str:
    keys = ("phase", "wells", "readyWells", "updatedWells", "availableWells", "model")
    return json.dumps({k: status.get(k) for k in keys})


# ----------------------------------------------------------------------------- measurements


def raw_pod(i: int, bundle_uri: str) -> dict[str, Any]:
    """The pod the operator would create for well i (same template, same bundle URI, so the
    simulated kubelet does the same work), without an owner (kubesim's GC would collect a pod
    owned by a deployment that does not exist)."""
    wid = well_id(i)
    uri = bundle_uri.replace("{version}", "1.0.0").replace("{well}", wid)
    body = desired_pod(
        deployment=NAME,
        deployment_uid="00000000-0000-0000-0000-000000000000",
        target=WellTarget(wid, "rev", "tmpl", "1.0.0", uri, None),
        runtime=RuntimeSpec(),
    )
    del body["metadata"]["ownerReferences"]
    return body


async def _raw_creates(url: str, wells: int, bundle_uri: str, concurrency: int) -> float:
    bodies = [json.dumps(raw_pod(i, bundle_uri)).encode() for i in range(wells)]
    queue = list(range(wells))
    connector = aiohttp.TCPConnector(limit=concurrency)
    async with aiohttp.ClientSession(connector=connector) as session:

        async def worker() -> None:
            while queue:
                i = queue.pop()
                async with session.post(
                    f"{url}/api/v1/namespaces/{NS}/pods",
                    data=bodies[i],
                    headers={"Content-Type": "application/json"},
                ) as resp:
                    await resp.read()
                    if resp.status != 201:
                        raise RuntimeError(f"raw create {i}: HTTP {resp.status}")

        started = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(concurrency)))
        return time.perf_counter() - started


def raw_capacity(workdir: Path, wells: int, bundle_uri: str) -> tuple[float, float]:
    """Seconds kubesim (instant kubelet) needs for `wells` pod creates from a plain client,
    and kubesim's CPU seconds meanwhile."""
    with kubesim_process(workdir, "instant") as (url, _kc, pid):
        cpu0 = cpu_seconds(pid)
        seconds = asyncio.run(_raw_creates(url, wells, bundle_uri, 64))
        return seconds, _until_idle(pid) - cpu0


def _until_idle(pid: int) -> float:
    """kubesim's CPU seconds once it has gone idle (its kubelet finishes after the creates)."""
    last = cpu_seconds(pid)
    for _ in range(600):
        time.sleep(0.5)
        now = cpu_seconds(pid)
        if now - last < 0.05:
            return now
        last = now
    return last


def current_rv(http: httpx.Client) -> int:
    """kubesim's resourceVersion is one counter for all kinds, +1 per stored write."""
    return int(
        http.get("/api/v1/namespaces", params={"limit": "1"}).json()["metadata"]["resourceVersion"]
    )


def install_crd(http: httpx.Client) -> None:
    r = http.post(
        "/apis/apiextensions.k8s.io/v1/customresourcedefinitions",
        json=yaml.safe_load(CRD.read_text()),
    )
    assert r.status_code in (201, 409), r.text
    time.sleep(0.3)


ReadyWellsWait = Callable[[int], float]
"""Blocks until the ModelDeployment's status.readyWells reads the count given; returns
time.perf_counter() when that was seen."""


def flip_freshness(
    http: httpx.Client, wait_ready_wells: ReadyWellsWait, wells: int, flips: int
) -> list[float]:
    """Seconds from a pods/status write that flips one pod's readiness gate to the
    ModelDeployment's readyWells reflecting it (both directions), on kubesim and on the real
    cluster (bench/operator_scale_real.py) alike."""
    delays: list[float] = []
    for k in range(flips):
        wid = well_id((k * 7919) % wells)
        path = f"/api/v1/namespaces/{NS}/pods/{NAME}-{wid}/status"
        pod = http.get(path.removesuffix("/status")).json()
        original = next(c for c in pod["status"]["conditions"] if c["type"] == BUNDLE_CONDITION)
        # Shaped like a refusal of the pod's own bundle (its URI first), which the operator
        # lets stand; a gate of unknown meaning it would re-verify and restore at once.
        uri = pod["metadata"]["annotations"]["modelfleet.dev/bundle-uri"]
        flipped = {
            **original,
            "status": "False",
            "reason": "BenchFlip",
            "message": f"{uri}: readiness flipped by bench/operator_scale.py",
        }
        for condition, expected in ((flipped, wells - 1), (original, wells)):
            started = time.perf_counter()
            r = http.patch(
                path,
                content=json.dumps({"status": {"conditions": [condition]}}),
                headers={"Content-Type": "application/strategic-merge-patch+json"},
            )
            r.raise_for_status()
            delays.append(wait_ready_wells(expected) - started)
    return delays


def _ready_wells_is(expected: int) -> Callable[[dict[str, Any]], bool]:
    return lambda status: status.get("readyWells") == expected


def percentile(values: list[float], p: float) -> float:
    ordered = sorted(values)
    if not ordered:
        return float("nan")
    index = min(len(ordered) - 1, max(0, math.ceil(p / 100 * len(ordered)) - 1))
    return ordered[index]


@dataclass
class Result:
    wells: int
    time_to_ready_s: float = 0.0
    raw_create_s: float = 0.0
    raw_create_ratio: float = 0.0  # operator wells/s divided by raw creates/s
    api_calls_initial: dict[str, float] = field(default_factory=dict)
    writes_per_well: float = 0.0
    steady_writes: float = 0.0  # operator writes over the steady window (its /metrics)
    steady_store_writes: int = 0  # every stored write over the window (kubesim's rv)
    steady_window_s: float = 0.0
    peak_rss_mb: float = 0.0
    cpu_s_initial: float = 0.0
    cpu_s_total: float = 0.0
    kubesim_cpu_s_initial: float = 0.0  # kubesim's CPU from apply to all Ready
    raw_kubesim_cpu_s: float = 0.0  # kubesim's CPU for the raw creates, kubelet included
    status_freshness_p50_s: float = 0.0
    status_freshness_p99_s: float = 0.0
    status_freshness_samples: int = 0
    rollout_delay_s: float = 0.0
    rollout_waves: int = 0
    rollout_time_s: float = 0.0
    rollout_ideal_s: float = 0.0
    rollout_time_ratio: float = 0.0
    max_unavailable: int = 0
    max_unavailable_seen: int = 0
    unavailable_samples: int = 0
    api_calls_rollout: dict[str, float] = field(default_factory=dict)
    rollout_writes_per_well: float = 0.0
    rollout_peak_rss_mb: float = 0.0
    inplace_time_s: float = 0.0  # model version change, instant kubelet, maxUnavailable 10%
    inplace_max_unavailable_seen: int = 0
    api_calls_inplace: dict[str, float] = field(default_factory=dict)
    inplace_writes_per_well: float = 0.0
    rollout_timeline: list[tuple[float, int, int]] = field(default_factory=list)
    qps: float = 0.0
    burst: int = 0
    max_requests_in_1s: float = 0.0
    notes: list[str] = field(default_factory=list)
    inventory: str = "inline"  # or "configmap": wellsFrom + digestsFrom (--inventory)
    inventory_bytes: dict[str, int] = field(default_factory=dict)


def measure_ready(
    workdir: Path,
    wells: int,
    bundle_uri: str,
    res: Result,
    *,
    qps: float,
    burst: int,
    concurrency: int,
    steady_s: float,
    flips: int,
    inplace: bool,
    inventory: str = "inline",
) -> None:
    with (
        kubesim_process(workdir, "instant") as (url, kc, sim_pid),
        httpx.Client(base_url=url, timeout=60) as http,
    ):
        install_crd(http)
        with operator_process(kc, workdir, qps=qps, burst=burst, concurrency=concurrency) as op:
            with DeploymentWatch(url) as md:
                body = deployment(wells, "1.0.0", bundle_uri)
                if inventory == "configmap":
                    res.inventory = inventory
                    res.inventory_bytes = by_reference(http, body, workdir / "bundles", "1.0.0")
                before = api_calls(op)
                cpu0, sim_cpu0 = cpu_seconds(op.pid), cpu_seconds(sim_pid)
                rate = RateSampler(op)
                started = time.perf_counter()
                r = http.post(MD_PATH, json=body)
                assert r.status_code == 201, r.text
                done = md.wait(
                    lambda s: (
                        s.get("readyWells") == wells
                        and s.get("availableWells") == wells
                        and s.get("phase") == "Available"
                    ),
                    timeout=3600,
                )
                res.time_to_ready_s = done - started
                rate.stop()
                res.max_requests_in_1s = rate.max_per_second
                res.cpu_s_initial = cpu_seconds(op.pid) - cpu0
                res.kubesim_cpu_s_initial = cpu_seconds(sim_pid) - sim_cpu0
                time.sleep(1.0)  # let the last status write and event land before counting
                after = api_calls(op)
                res.api_calls_initial = calls_delta(after, before)
                res.writes_per_well = writes(res.api_calls_initial) / wells
                log(
                    f"{wells} wells ready in {res.time_to_ready_s:.1f}s "
                    f"(qps {qps}); calls {res.api_calls_initial}"
                )
                if inventory == "configmap":
                    res.inventory_bytes.update(stored_sizes(http))
                    log(f"object sizes (bytes): {res.inventory_bytes}")
                if steady_s > 0:
                    rv0, calls0 = current_rv(http), api_calls(op)
                    time.sleep(steady_s)
                    rv1, calls1 = current_rv(http), api_calls(op)
                    res.steady_window_s = steady_s
                    res.steady_writes = writes(calls_delta(calls1, calls0))
                    res.steady_store_writes = rv1 - rv0
                    log(
                        f"steady {steady_s:.0f}s: operator writes {res.steady_writes}, "
                        f"store writes {res.steady_store_writes}"
                    )
                if flips > 0:
                    delays = flip_freshness(
                        http, lambda n: md.wait(_ready_wells_is(n), timeout=60), wells, flips
                    )
                    res.status_freshness_p50_s = statistics.median(delays)
                    res.status_freshness_p99_s = percentile(delays, 99)
                    res.status_freshness_samples = len(delays)
                    log(
                        f"freshness p50 {res.status_freshness_p50_s:.3f}s "
                        f"p99 {res.status_freshness_p99_s:.3f}s"
                    )
                if inplace:
                    measure_inplace(http, op, md, url, wells, res)
            res.peak_rss_mb = peak_rss_mb(op.pid)
            res.cpu_s_total = cpu_seconds(op.pid) - cpu0


def roll_out(
    http: httpx.Client,
    md: DeploymentWatch,
    patch: dict[str, Any],
    wells: int,
    *,
    model_version: str = "",
) -> tuple[float, float]:
    """Merge-patch the fleet, then wait until the patched generation is available on every
    well (and serves `model_version`, when given); (perf_counter at the patch, when done)."""
    started = time.perf_counter()
    answer = http.patch(
        f"{MD_PATH}/{NAME}",
        content=json.dumps(patch),
        headers={"Content-Type": "application/merge-patch+json"},
    )
    answer.raise_for_status()
    generation = answer.json()["metadata"]["generation"]
    done = md.wait(
        lambda s: (
            s.get("observedGeneration") == generation
            and s.get("updatedWells") == wells
            and s.get("availableWells") == wells
            and s.get("phase") == "Available"
            and str(s.get("model", "")).endswith(model_version)
        ),
        timeout=3600,
    )
    return started, done


def measure_inplace(
    http: httpx.Client,
    op: OperatorProcess,
    md: DeploymentWatch,
    url: str,
    wells: int,
    res: Result,
) -> None:
    """Model version 1.0.0 -> 2.0.0 at maxUnavailable 10%: pods stay, bundles are swapped."""
    with UnavailableWellsWatch(url, [well_id(i) for i in range(wells)], NS) as sampler:
        before = api_calls(op)
        patch = {"spec": {"model": {"version": "2.0.0"}, "rollout": {"maxUnavailable": "10%"}}}
        started, done = roll_out(http, md, patch, wells, model_version="2.0.0")
        res.inplace_time_s = done - started
        time.sleep(1.0)
        res.inplace_max_unavailable_seen = sampler.max_unavailable
        res.api_calls_inplace = calls_delta(api_calls(op), before)
        res.inplace_writes_per_well = writes(res.api_calls_inplace) / wells
    log(
        f"in-place version roll-out {res.inplace_time_s:.1f}s; max unavailable "
        f"{res.inplace_max_unavailable_seen}; calls {res.api_calls_inplace}"
    )


class RateSampler:
    """Samples the operator's request counter every second: the most requests in any 1 s."""

    def __init__(self, op: OperatorProcess) -> None:
        self.op = op
        self.max_per_second = 0.0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        last = sum(api_calls(self.op).values())
        while not self._stop.wait(1.0):
            now = sum(api_calls(self.op).values())
            self.max_per_second = max(self.max_per_second, now - last)
            last = now

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(5)


def measure_rollout(
    workdir: Path, wells: int, bundle_uri: str, res: Result, *, delay: float, concurrency: int
) -> None:
    """Runtime-image change (pods recreated) at maxUnavailable 10%, kubelet start delay D."""
    with (
        kubesim_process(workdir, f"delay={delay}") as (url, kc, _pid),
        httpx.Client(base_url=url, timeout=60) as http,
    ):
        install_crd(http)
        with operator_process(kc, workdir, qps=0, burst=100, concurrency=concurrency) as op:
            with DeploymentWatch(url) as md:
                body = deployment(wells, "1.0.0", bundle_uri, maxUnavailable="10%")
                r = http.post(MD_PATH, json=body)
                assert r.status_code == 201, r.text
                md.wait(
                    lambda s: s.get("availableWells") == wells and s.get("phase") == "Available",
                    timeout=3600,
                )
                time.sleep(1.0)
                res.max_unavailable = max(1, wells * 10 // 100)
                res.rollout_waves = math.ceil(wells / res.max_unavailable)
                res.rollout_delay_s = delay
                res.rollout_ideal_s = res.rollout_waves * delay
                with UnavailableWellsWatch(url, [well_id(i) for i in range(wells)], NS) as sampler:
                    before = api_calls(op)
                    image = "ghcr.io/modelfleet/model-runtime:bench-2"
                    patch = {"spec": {"runtime": {"image": image}}}
                    started, done = roll_out(http, md, patch, wells)
                    res.rollout_time_s = done - started
                    res.rollout_timeline = [
                        (round(t - started, 2), u, a) for t, u, a in md.history if t >= started
                    ]
                    time.sleep(1.0)
                    res.max_unavailable_seen = sampler.max_unavailable
                    res.unavailable_samples = sampler.samples
                    res.api_calls_rollout = calls_delta(api_calls(op), before)
                    res.rollout_writes_per_well = writes(res.api_calls_rollout) / wells
                res.rollout_time_ratio = res.rollout_time_s / res.rollout_ideal_s
                log(
                    f"roll-out {res.rollout_time_s:.1f}s vs ideal {res.rollout_ideal_s:.1f}s; "
                    f"max unavailable {res.max_unavailable_seen}/{res.max_unavailable}; "
                    f"calls {res.api_calls_rollout}"
                )
            res.rollout_peak_rss_mb = peak_rss_mb(op.pid)


# -------------------------------------------------------------------------------- object size


def object_size_report(wells: int) -> dict[str, Any]:
    """Bytes of a realistic ModelDeployment: ids, 3 labels, a digest per well; JSON as stored."""
    import hashlib

    countries = ("ca", "us", "no")
    spec_wells = [
        Well(
            id=f"{countries[i % 3]}-pad{i // 8:04d}-w{i:05d}",
            labels={
                "country": countries[i % 3],
                "field": f"field-{i // 500:03d}",
                "lift": "esp" if i % 4 else "gas-lift",
            },
        )
        for i in range(wells)
    ]
    digests = {w.id: "sha256:" + hashlib.sha256(w.id.encode()).hexdigest() for w in spec_wells}

    def stored_bytes(digests: dict[str, str] | None) -> int:
        body = fleet_manifest.model_deployment(
            "esp-failure-worldwide",
            namespace="modelfleet",
            version="2026.11.3",
            bundle_uri="https://models.example.com/esp/{version}/{well}/",
            wells=spec_wells,
            digests=digests,
        )
        return len(json.dumps(body, separators=(",", ":")).encode())

    without, size = stored_bytes(None), stored_bytes(digests)
    return {
        "wells": wells,
        "bytes": size,
        "bytes_without_digests": without,
        "limit_bytes": 1536 * 1024,
        "fraction_of_limit": size / (1536 * 1024),
        "max_wells_at_this_density": int(1536 * 1024 / (size / wells)),
    }


# ----------------------------------------------------------------------------------- reporting


def table(results: list[Result]) -> str:
    rows: list[tuple[str, Callable[[Result], str]]] = [
        ("wells", lambda r: f"{r.wells}"),
        ("time to ready (s)", lambda r: f"{r.time_to_ready_s:.1f}"),
        ("raw creates (s)", lambda r: f"{r.raw_create_s:.1f}"),
        ("operator rate / raw rate", lambda r: f"{r.raw_create_ratio:.2f}"),
        ("writes per well (initial)", lambda r: f"{r.writes_per_well:.3f}"),
        (
            "steady writes (operator/store)",
            lambda r: f"{r.steady_writes:.0f}/{r.steady_store_writes}",
        ),
        ("peak RSS (MB)", lambda r: f"{max(r.peak_rss_mb, r.rollout_peak_rss_mb):.0f}"),
        ("CPU s (initial / whole run)", lambda r: f"{r.cpu_s_initial:.1f}/{r.cpu_s_total:.1f}"),
        (
            "kubesim CPU s (raw / initial)",
            lambda r: f"{r.raw_kubesim_cpu_s:.1f}/{r.kubesim_cpu_s_initial:.1f}",
        ),
        ("roll-out s / ideal s", lambda r: f"{r.rollout_time_s:.1f}/{r.rollout_ideal_s:.1f}"),
        ("roll-out ratio", lambda r: f"{r.rollout_time_ratio:.2f}"),
        (
            "max unavailable seen / allowed",
            lambda r: f"{r.max_unavailable_seen}/{r.max_unavailable}",
        ),
        ("writes per well (roll-out)", lambda r: f"{r.rollout_writes_per_well:.3f}"),
        ("in-place version roll-out (s)", lambda r: f"{r.inplace_time_s:.1f}"),
        ("writes per well (in-place)", lambda r: f"{r.inplace_writes_per_well:.3f}"),
        ("max unavailable (in-place)", lambda r: f"{r.inplace_max_unavailable_seen}"),
        (
            "status freshness p50/p99 (s)",
            lambda r: f"{r.status_freshness_p50_s:.3f}/{r.status_freshness_p99_s:.3f}",
        ),
        ("most requests in 1 s", lambda r: f"{r.max_requests_in_1s:.0f}"),
    ]
    width = max(len(name) for name, _ in rows)
    lines = []
    for name, cell in rows:
        lines.append(f"{name:<{width}}  " + "  ".join(f"{cell(r):>12}" for r in results))
    return "\n".join(lines)


def plot(results: list[Result], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    wells = [r.wells for r in results]
    fig, ax1 = plt.subplots(figsize=(7, 4))
    ax1.plot(
        wells,
        [r.time_to_ready_s for r in results],
        "o-",
        color="tab:blue",
        label="operator: apply -> all Ready",
    )
    ax1.plot(
        wells,
        [r.raw_create_s for r in results],
        "s--",
        color="tab:gray",
        label="kubesim raw creates (limit)",
    )
    ax1.set_xlabel("wells under one ModelDeployment")
    ax1.set_ylabel("seconds")
    ax2 = ax1.twinx()
    ax2.plot(
        wells,
        [max(r.peak_rss_mb, r.rollout_peak_rss_mb) for r in results],
        "^-",
        color="tab:red",
        label="operator peak RSS",
    )
    ax2.set_ylabel("MB")
    handles = ax1.get_legend_handles_labels()[0] + ax2.get_legend_handles_labels()[0]
    ax1.legend(handles, [str(h.get_label()) for h in handles], loc="upper left", fontsize=8)
    ax1.set_title("modelfleet operator at scale (kubesim, instant kubelet, 2 cores)")
    fig.tight_layout()
    fig.savefig(path, dpi=110)


def _exit_on_sigterm(signum: int, frame: object) -> None:
    # SIGTERM (kill, a timeout) unwinds like Ctrl-C: every `finally` stops what it started.
    # Without it the operator, in a session of its own, outlived a killed run.
    raise SystemExit(128 + signum)


def main(argv: list[str] | None = None) -> int:
    signal.signal(signal.SIGTERM, _exit_on_sigterm)
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--wells", default="1000,5000,10000")
    parser.add_argument("--json", type=Path, help="write results here")
    parser.add_argument("--plot", type=Path, help="write the time/RSS plot here (PNG)")
    parser.add_argument("--qps", type=float, default=0.0, help="operator --qps (0: no limit)")
    parser.add_argument("--burst", type=int, default=100)
    parser.add_argument("--concurrency", type=int, default=64)
    parser.add_argument("--steady", type=float, default=60.0, help="steady-state window, s")
    parser.add_argument(
        "--flips",
        type=int,
        default=25,
        help="readiness flips (each timed twice: to False and back)",
    )
    parser.add_argument(
        "--delay",
        type=float,
        default=10.0,
        help="kubelet start delay D for the roll-out, s (0 skips the roll-out)",
    )
    parser.add_argument("--skip-raw", action="store_true")
    parser.add_argument(
        "--inplace",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="also time an in-place model version roll-out (instant kubelet)",
    )
    parser.add_argument("--skip-ready", action="store_true", help="roll-out measurement only")
    parser.add_argument(
        "--inventory",
        choices=("inline", "configmap"),
        default="inline",
        help="wells inline, or in ConfigMaps with 3 labels and a digest each",
    )
    parser.add_argument("--workdir", type=Path, default=Path(tempfile.gettempdir()) / "opscale")
    parser.add_argument(
        "--cluster",
        choices=("kubesim", "real"),
        default="kubesim",
        help="kubesim (the figures above), or the real control plane side by side with the "
        "Deployment and StatefulSet controllers (bench/operator_scale_real.py)",
    )
    real = parser.add_argument_group("--cluster real")
    real.add_argument(
        "--rates",
        default="50,500",
        help="client rates: the operator's --qps and kube-controller-manager's --kube-api-qps",
    )
    real.add_argument("--burst-factor", type=float, default=2.0, help="burst = qps x this")
    real.add_argument(
        "--nodes",
        type=int,
        default=0,
        help="kwok Nodes, 250 pods each (0: enough for the wells and a roll-out's terminating "
        "pods, at least 4)",
    )
    real.add_argument("--sides", default="modelfleet,modelfleet_inplace,deployment,statefulset")
    real.add_argument(
        "--limits",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="probe the largest wells ConfigMap and ControllerRevision the apiserver stores",
    )
    real.add_argument(
        "--confirmation",
        choices=[c.value for c in BundleConfirmation],
        default=BundleConfirmation.READINESS_GATE.value,
        help="our fleet's spec.runtime.bundleConfirmation (ReadinessProbe: the fleet names "
        "every well's digest, and status freshness is not measured)",
    )
    real.add_argument(
        "--apiserver-profile",
        type=Path,
        metavar="DIR",
        help="save kube-apiserver's CPU profile of each side's apply and roll-out here "
        "(5 s pprof captures; merge with `go tool pprof -top DIR/500-modelfleet-ready-*`)",
    )
    real.add_argument(
        "--repeats",
        type=int,
        default=1,
        help="run every side this many times per rate, in ABBA order, and report medians and "
        "each repeat's ratio to the Deployment (one run's times drift with the machine)",
    )
    real.add_argument(
        "--rollouts",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="after the apply, the roll-outs (--no-rollouts: the apply to all Ready only)",
    )
    args = parser.parse_args(argv)
    if args.cluster == "real":
        return main_real(args)
    counts = [int(x) for x in args.wells.split(",")]
    args.workdir.mkdir(parents=True, exist_ok=True)
    bundle_uri = prepare_bundles(args.workdir / "bundles", ["1.0.0", "2.0.0"], max(counts))[
        "bundleUri"
    ]
    results: list[Result] = []
    for wells in counts:
        res = Result(wells, qps=args.qps, burst=args.burst)
        if not args.skip_raw:
            res.raw_create_s, res.raw_kubesim_cpu_s = raw_capacity(args.workdir, wells, bundle_uri)
            log(f"raw: {wells} creates in {res.raw_create_s:.1f}s")
        if not args.skip_ready:
            measure_ready(
                args.workdir,
                wells,
                bundle_uri,
                res,
                qps=args.qps,
                burst=args.burst,
                concurrency=args.concurrency,
                steady_s=args.steady,
                flips=args.flips,
                inplace=args.inplace,
                inventory=args.inventory,
            )
        if res.raw_create_s and res.time_to_ready_s:
            res.raw_create_ratio = res.raw_create_s / res.time_to_ready_s
        if args.delay > 0:
            measure_rollout(
                args.workdir, wells, bundle_uri, res, delay=args.delay, concurrency=args.concurrency
            )
        results.append(res)
        if args.json:  # after every count: a long run that dies keeps what it measured
            write_json(args.json, results, args)
    print(table(results))
    if args.plot:
        plot(results, args.plot)
    return 0


def main_real(args: argparse.Namespace) -> int:
    import operator_scale_real

    wells = [int(x) for x in args.wells.split(",")]
    if len(wells) != 1:
        raise SystemExit("--cluster real takes one --wells count (each runs the four sides)")
    args.workdir.mkdir(parents=True, exist_ok=True)
    payload = operator_scale_real.run(
        wells=wells[0],
        qps_settings=[float(x) for x in args.rates.split(",")],
        burst_factor=args.burst_factor,
        delay=args.delay,
        concurrency=args.concurrency,
        steady_s=args.steady,
        flips=args.flips,
        nodes=kwok_nodes(args.nodes, wells[0]),
        workdir=args.workdir,
        sides=args.sides.split(","),
        limits=args.limits,
        json_path=args.json,
        confirmation=BundleConfirmation(args.confirmation),
        profile_dir=args.apiserver_profile,
        repeats=args.repeats,
        rollouts=args.rollouts,
    )
    print(operator_scale_real.table(payload))
    print()
    print(operator_scale_real.markdown(payload))
    if args.plot:
        operator_scale_real.plot(payload, args.plot)
    return 0


def write_json(path: Path, results: list[Result], args: argparse.Namespace) -> None:
    payload = {
        "machine": {"cpus": os.cpu_count(), "loadavg": os.getloadavg()},
        "settings": {
            "qps": args.qps,
            "burst": args.burst,
            "concurrency": args.concurrency,
            "steady_s": args.steady,
            "flips": args.flips,
            "delay_s": args.delay,
        },
        "object_size": object_size_report(10_000),
        "results": [asdict(r) for r in results],
    }
    path.write_text(json.dumps(payload, indent=1) + "\n")


if __name__ == "__main__":
    sys.exit(main())
