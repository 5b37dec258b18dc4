"""Operator at scale on the real control plane, side by side with the Deployment and
StatefulSet controllers (``bench/operator_scale.py --cluster real``, issue 13).

Why this exists: on kubesim the operator was measured against our own simulator. Here the peer
is what a platform team would otherwise run, on the same apiserver in the same run:
kube-controller-manager's Deployment controller and StatefulSet controller (Parallel), with the
same client rate as the operator (its ``--qps/--burst`` equal to kube-controller-manager's
``--kube-api-qps/--kube-api-burst``).

Per client rate, three fresh clusters (``modelfleet_dev.real_cluster``: etcd, kube-apiserver,
kube-controller-manager, kube-scheduler, kwok, the runtime responder), one per group of sides, so
each group's etcd size, request counters and peak RSS are its own:

1. ``modelfleet`` then ``modelfleet_inplace``: the operator applies N wells -> all Ready (gate
   confirmed); 60 s of steady state; readiness flips (status freshness); a runtime-image change
   at maxUnavailable 10% (pods recreated: the start delay applies to every wave); then, as the
   ``modelfleet_inplace`` side (peak RSS and CPU reset), a model-version change (bundles swapped
   in place, pods kept);
2. ``deployment``: N replicas -> all Ready; a template change at maxUnavailable 10%, maxSurge 0;
3. ``statefulset``: N replicas, podManagementPolicy Parallel -> all Ready; a template change at
   maxUnavailable 10% (beta field; checked that the apiserver kept it).

Every pod starts after the same delay D (the responder, the harness's kubelet: ``ClusterOptions.
pod_start_delay_s``). Requests come from kube-apiserver's own ``apiserver_request_total``
(a delta per phase, every client: the controllers, the scheduler, kwok and the responder as
the kubelet), CPU seconds and peak RSS (VmHWM, reset through /proc/PID/clear_refs at each side's
start) from /proc, the etcd database size from etcd's /metrics. Unavailable pods are counted at
every pod watch event. kube-scheduler gets a high client limit on every side (it binds pods for
all of them; it is not what is compared).

Everything connects to 127.0.0.1 and the harness's own pod network namespace only.
"""

from __future__ import annotations

import itertools
import json
import math
import os
import re
import statistics
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Final

import httpx
import yaml

from modelfleet.api.spec import DIGESTS_KEY, BundleConfirmation, RuntimeSpec
from modelfleet.logic.revisions import WellTarget
from modelfleet.logic.wellpod import BUNDLE_CONDITION, LABEL_WELL, desired_pod
from modelfleet_dev.api_poller import wait_until
from modelfleet_dev.local_cluster import start_operator
from modelfleet_dev.real_cluster.cluster import (
    ClusterOptions,
    RealCluster,
    Role,
    client_tls,
    running_real_cluster,
)
from modelfleet_dev.simulated_runtime import BUNDLE_URI_ANNOTATION

ROOT = Path(__file__).resolve().parents[1]
CRD = ROOT / "crds" / "modeldeployment.yaml"
NS = "default"
NAME = "fleet"
MD_COLLECTION = f"/apis/modelfleet.dev/v1alpha1/namespaces/{NS}/modeldeployments"
DEPLOY_COLLECTION = f"/apis/apps/v1/namespaces/{NS}/deployments"
STS_COLLECTION = f"/apis/apps/v1/namespaces/{NS}/statefulsets"
PODS = f"/api/v1/namespaces/{NS}/pods"
SERVICES = f"/api/v1/namespaces/{NS}/services"
PEER_LABEL = "bench.modelfleet.dev/peer"
WRITE_VERBS = frozenset({"POST", "PUT", "PATCH", "DELETE", "DELETECOLLECTION", "APPLY"})
CLK_TCK = os.sysconf("SC_CLK_TCK")
SIDES = ("modelfleet", "modelfleet_inplace", "deployment", "statefulset")
#: Roles whose CPU and RSS each side reports (the operator is added as "operator").
#: Above this many wells, ReadinessProbe's expected digests go in ConfigMaps (digestsFrom):
#: inline, 10,000 of them would pass the object's 1.5 MiB with the wells.
INLINE_DIGESTS_MAX = 5_000

MEASURED_ROLES = (
    Role.KUBE_APISERVER,
    Role.ETCD,
    Role.KUBE_CONTROLLER_MANAGER,
    Role.KUBE_SCHEDULER,
    Role.KWOK,
    Role.RESPONDER,
)


def log(*parts: object) -> None:
    import sys

    print(time.strftime("%H:%M:%S"), *parts, file=sys.stderr, flush=True)


# ------------------------------------------------------------------------- private network

_CLONE_NEWNET = 0x40000000


def enter_private_network() -> None:
    """This process (and every process it starts) in a network namespace of its own, with
    only a loopback: the harness's pod network route (10.244.0.0/16, fixed) then lives here,
    so the bench runs beside another real cluster on the machine (the e2e suite's, say) and
    nothing it starts can reach anything but its own loopback and pod network. Must run
    before any thread starts (a namespace is per thread; new threads inherit it)."""
    import ctypes
    import subprocess

    libc = ctypes.CDLL(None, use_errno=True)
    if libc.unshare(_CLONE_NEWNET) != 0:
        raise OSError(ctypes.get_errno(), "unshare(CLONE_NEWNET) (needs root)")
    subprocess.run(["ip", "link", "set", "lo", "up"], check=True)


# ------------------------------------------------------------------------------ measurements


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLK_TCK  # utime + stime


def peak_rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def reset_peak_rss(pid: int) -> None:
    """VmHWM back to the current RSS (Linux: writing 5 to clear_refs)."""
    Path(f"/proc/{pid}/clear_refs").write_text("5")


class ProcessMeter:
    """CPU seconds and peak RSS of named processes from a starting point."""

    def __init__(self, pids: dict[str, int]) -> None:
        self.pids = pids
        for pid in pids.values():
            reset_peak_rss(pid)
        self.cpu0 = {name: cpu_seconds(pid) for name, pid in pids.items()}

    def read(self) -> dict[str, dict[str, float]]:
        return {
            name: {
                "cpu_s": round(cpu_seconds(pid) - self.cpu0[name], 2),
                "peak_rss_mb": round(peak_rss_mb(pid), 1),
            }
            for name, pid in self.pids.items()
        }


_REQUEST = re.compile(r"^apiserver_request_total\{(?P<labels>[^}]*)\} (?P<value>\S+)$")
_LABEL = re.compile(r'(\w+)="([^"]*)"')

RequestCounts = dict[tuple[str, str, str], float]  # (verb, resource[/subresource], code)


def apiserver_requests(http: httpx.Client) -> RequestCounts:
    """kube-apiserver's apiserver_request_total, by verb, resource/subresource and code."""
    counts: RequestCounts = {}
    text = http.get("/metrics", timeout=60).text
    for line in text.splitlines():
        m = _REQUEST.match(line)
        if not m:
            continue
        labels = dict(_LABEL.findall(m["labels"]))
        resource = labels.get("resource", "")
        if not resource:
            continue  # /healthz, /metrics, discovery
        if labels.get("subresource"):
            resource += "/" + labels["subresource"]
        key = (labels.get("verb", ""), resource, labels.get("code", ""))
        counts[key] = counts.get(key, 0.0) + float(m["value"])
    return counts


def requests_delta(after: RequestCounts, before: RequestCounts) -> dict[str, float]:
    """'VERB resource' -> requests in between (every code)."""
    out: dict[str, float] = {}
    for key, value in after.items():
        d = value - before.get(key, 0.0)
        if d:
            name = f"{key[0]} {key[1]}"
            out[name] = out.get(name, 0.0) + d
    return dict(sorted(out.items()))


def throttled(after: RequestCounts, before: RequestCounts) -> float:
    """429s (API Priority and Fairness refusing) in between."""
    return sum(v - before.get(k, 0.0) for k, v in after.items() if k[2] == "429")


def per_pod(delta: dict[str, float], pods: int) -> dict[str, float]:
    return {k: round(v / pods, 3) for k, v in delta.items()}


def writes(delta: dict[str, float]) -> float:
    return sum(v for k, v in delta.items() if k.split()[0] in WRITE_VERBS)


def etcd_db_bytes(cluster: RealCluster) -> dict[str, int]:
    text = httpx.get(f"{cluster.etcd_url}/metrics", timeout=10).text
    out = {}
    for line in text.splitlines():
        for metric in (
            "etcd_mvcc_db_total_size_in_bytes",
            "etcd_mvcc_db_total_size_in_use_in_bytes",
        ):
            if line.startswith(metric + " "):
                out[metric.removeprefix("etcd_mvcc_")] = int(float(line.split()[1]))
    return out


def percentile(values: list[float], p: float) -> float:
    ordered = sorted(values)
    if not ordered:
        return float("nan")
    return ordered[min(len(ordered) - 1, max(0, math.ceil(p / 100 * len(ordered)) - 1))]


# ---------------------------------------------------------------------------------- profiles


class ApiserverProfile:
    """kube-apiserver's CPU profile over one phase, as consecutive 5 s pprof captures
    (``<dir>/<label>-NNN.pb.gz``; ``go tool pprof -top <dir>/<label>-*`` merges them). The
    last capture may run up to 5 s past the phase. No-op without a directory."""

    CHUNK_SECONDS: Final = 5

    def __init__(self, connect: ClientFactory, directory: Path | None, label: str) -> None:
        self.connect = connect
        self.directory = directory
        self.label = label
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> ApiserverProfile:
        if self.directory is not None:
            self.directory.mkdir(parents=True, exist_ok=True)
            self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(self.CHUNK_SECONDS * 4)

    def _run(self) -> None:
        assert self.directory is not None
        with self.connect() as http:
            for index in itertools.count():
                if self._stop.is_set():
                    return
                try:
                    r = http.get(
                        "/debug/pprof/profile",
                        params={"seconds": str(self.CHUNK_SECONDS)},
                        timeout=self.CHUNK_SECONDS * 4,
                    )
                except httpx.HTTPError as exc:
                    log(f"apiserver profile {self.label}: {exc!r}")
                    self._stop.wait(1.0)  # a starved or stopping apiserver: no tight loop
                    continue
                if r.status_code != 200:
                    log(f"apiserver profile {self.label}: HTTP {r.status_code} {r.text[:200]}")
                    return
                (self.directory / f"{self.label}-{index:03d}.pb.gz").write_bytes(r.content)


# ----------------------------------------------------------------------------------- watches


ClientFactory = Callable[[], httpx.Client]


class ObjectWatch:
    """Follows one named object through a watch; waiters are woken at every change."""

    def __init__(self, connect: ClientFactory, collection: str, name: str) -> None:
        self.connect = connect
        self.collection = collection
        self.selector = f"metadata.name={name}"
        self.obj: dict[str, Any] = {}
        self.cond = threading.Condition()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> ObjectWatch:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(10)

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                self._follow()
            except httpx.HTTPError as exc:  # a starved apiserver drops streams: resume
                log(f"{self.collection} watch: {exc!r}; again")
                time.sleep(0.5)

    def _follow(self) -> None:
        with self.connect() as http:
            rv = ""
            while not self._stop.is_set():
                if not rv:
                    listing = http.get(
                        self.collection, params={"fieldSelector": self.selector}
                    ).json()
                    rv = listing["metadata"]["resourceVersion"]
                    if listing["items"]:  # a relist after a lost stream: its latest state
                        with self.cond:
                            self.obj = listing["items"][0]
                            self.cond.notify_all()
                params = {
                    "watch": "1",
                    "resourceVersion": rv,
                    "timeoutSeconds": "2",
                    "fieldSelector": self.selector,
                    "allowWatchBookmarks": "true",
                }
                with http.stream("GET", self.collection, params=params, timeout=None) as stream:
                    for line in stream.iter_lines():
                        if not line:
                            continue
                        event = json.loads(line)
                        if event["type"] == "ERROR":
                            rv = ""  # expired: relist
                            break
                        rv = event["object"]["metadata"]["resourceVersion"]
                        if event["type"] in ("ADDED", "MODIFIED"):
                            with self.cond:
                                self.obj = event["object"]
                                self.cond.notify_all()

    def wait(self, check: Callable[[dict[str, Any]], bool], timeout: float) -> float:
        """Block until check(object) holds; time.perf_counter() when it was seen."""
        deadline = time.monotonic() + timeout
        with self.cond:
            while not (self.obj and check(self.obj)):
                if not self._thread.is_alive():
                    raise RuntimeError(f"{self.collection}: the watch thread died")
                left = deadline - time.monotonic()
                if left <= 0:
                    status = json.dumps(self.obj.get("status") or {})[:600]
                    raise TimeoutError(f"{self.collection}: never matched; status {status}")
                self.cond.wait(min(left, 1.0))
            return time.perf_counter()


def pod_is_ready(event_type: str, pod: dict[str, Any]) -> bool:
    if event_type == "DELETED" or pod["metadata"].get("deletionTimestamp"):
        return False
    conditions = (pod.get("status") or {}).get("conditions") or []
    return any(c["type"] == "Ready" and c["status"] == "True" for c in conditions)


class UnavailablePodsWatch:
    """Pods of a label selector from a list then a watch: `max_unavailable` is the most of
    `expected` without a ready, undeleted pod at any event (a well's pod for the operator,
    keyed by well label; any pod of the controller otherwise)."""

    def __init__(
        self, connect: ClientFactory, selector: str, expected: int, budget: int = 0
    ) -> None:
        self.connect = connect
        self.selector = selector
        self.expected = expected
        self.budget = budget
        #: The first events at which more than `budget` were unavailable: what changed, for
        #: telling a controller's overrun from a pod flipping under it.
        self.over_budget: list[dict[str, Any]] = []
        #: Ready pods that turned not ready while nobody was deleting them: unavailability that
        #: no controller decided (a kubelet's, here kwok's or the responder's, own write).
        self.ready_lost: list[dict[str, Any]] = []
        self.ready: set[str] = set()
        #: perf_counter() at the first event with `expected` pods ready (None: not yet).
        self.all_ready_at: float | None = None
        self.max_unavailable = 0
        self.samples = 0
        self.errors: list[BaseException] = []
        self._armed = threading.Event()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> UnavailablePodsWatch:
        self._thread.start()
        if not self._armed.wait(120):
            raise TimeoutError("pod list not read within 120 s")
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(10)
        if self.errors:
            raise RuntimeError(f"pod watch failed: {self.errors[0]!r}") from self.errors[0]

    def _key(self, pod: dict[str, Any]) -> str:
        meta = pod["metadata"]
        return str((meta.get("labels") or {}).get(LABEL_WELL) or meta["uid"])

    def _apply(self, event_type: str, pod: dict[str, Any]) -> None:
        key = self._key(pod)
        if pod_is_ready(event_type, pod):
            self.ready.add(key)
        elif key in self.ready:
            self.ready.discard(key)
            if event_type == "MODIFIED" and not pod["metadata"].get("deletionTimestamp"):
                self._record(self.ready_lost, event_type, pod, self.expected - len(self.ready))

    def _record(
        self, into: list[dict[str, Any]], event_type: str, pod: dict[str, Any], unavailable: int
    ) -> None:
        if len(into) >= 40:
            return
        meta, status = pod["metadata"], pod.get("status") or {}
        into.append(
            {
                "at": round(time.perf_counter(), 3),
                "unavailable": unavailable,
                "event": event_type,
                "pod": meta["name"],
                "deleting": bool(meta.get("deletionTimestamp")),
                "phase": status.get("phase"),
                "conditions": {c["type"]: c["status"] for c in status.get("conditions") or []},
                "managers": [
                    (m.get("manager"), m.get("subresource"), m.get("time"))
                    for m in meta.get("managedFields") or []
                ],
            }
        )

    def _run(self) -> None:
        try:
            with self.connect() as http:
                listing = http.get(PODS, params={"labelSelector": self.selector}).json()
                for pod in listing["items"]:
                    self._apply("ADDED", pod)
                rv = listing["metadata"]["resourceVersion"]
                self._armed.set()
                while not self._stop.is_set():
                    params = {
                        "labelSelector": self.selector,
                        "watch": "1",
                        "resourceVersion": rv,
                        "timeoutSeconds": "2",
                        "allowWatchBookmarks": "true",
                    }
                    with http.stream("GET", PODS, params=params, timeout=None) as stream:
                        for line in stream.iter_lines():
                            if not line:
                                continue
                            event = json.loads(line)
                            if event["type"] == "ERROR":
                                raise RuntimeError(f"watch ERROR: {event['object']}")
                            rv = event["object"]["metadata"]["resourceVersion"]
                            if event["type"] == "BOOKMARK":
                                continue
                            self._apply(event["type"], event["object"])
                            self.samples += 1
                            unavailable = max(0, self.expected - len(self.ready))
                            self.max_unavailable = max(self.max_unavailable, unavailable)
                            if self.all_ready_at is None and len(self.ready) >= self.expected:
                                self.all_ready_at = time.perf_counter()
                            if self.budget and unavailable > self.budget:
                                self._record(
                                    self.over_budget, event["type"], event["object"], unavailable
                                )
        except BaseException as exc:
            self.errors.append(exc)
            self._armed.set()


def _stamp(value: str | None) -> float | None:
    if not value:
        return None
    from datetime import datetime

    return datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp()


def pod_timeline(http: httpx.Client, selector: str) -> dict[str, dict[str, float]]:
    """Where a pod's way to Ready went, from its own timestamps (1 s resolution): created ->
    scheduled (PodScheduled) -> started (kwok's pod-start after D: the container's startedAt)
    -> containers ready (the responder's probe, then kwok's ContainersReady) and the gate
    (the operator's condition) -> Ready; p50/p90/max seconds of each step over the pods."""
    pods = http.get(PODS, params={"labelSelector": selector}).json()["items"]
    steps: dict[str, list[float]] = {}

    def add(step: str, start: float | None, end: float | None) -> None:
        if start is not None and end is not None:
            steps.setdefault(step, []).append(end - start)

    for pod in pods:
        status = pod.get("status") or {}
        cond = {
            c["type"]: _stamp(c.get("lastTransitionTime")) for c in status.get("conditions") or []
        }
        created = _stamp(pod["metadata"].get("creationTimestamp"))
        running = ((status.get("containerStatuses") or [{}])[0].get("state") or {}).get("running")
        started = _stamp((running or {}).get("startedAt"))
        both = [t for t in (cond.get("ContainersReady"), cond.get(BUNDLE_CONDITION)) if t]
        add("created_to_scheduled", created, cond.get("PodScheduled"))
        add("scheduled_to_started", cond.get("PodScheduled"), started)
        add("started_to_containers_ready", started, cond.get("ContainersReady"))
        add("started_to_gate", started, cond.get(BUNDLE_CONDITION))
        add("last_of_both_to_ready", max(both) if both else None, cond.get("Ready"))
        add("created_to_ready", created, cond.get("Ready"))
    return {
        step: {
            "p50": round(statistics.median(v), 1),
            "p90": round(percentile(v, 90), 1),
            "max": round(max(v), 1),
        }
        for step, v in steps.items()
    }


def fleet_milestones(http: httpx.Client, selector: str, origin: str) -> dict[str, float]:
    """Seconds from the applied object's creationTimestamp (`origin`) to its first and last pod
    created and its last pod Ready: where a side's time to Ready went before, during and after
    its pod creates (the apiserver's clock for all four, 1 s resolution)."""
    pods = http.get(PODS, params={"labelSelector": selector}).json()["items"]
    zero = _stamp(origin)
    created = [_stamp(p["metadata"].get("creationTimestamp")) for p in pods]
    ready = [
        _stamp(c.get("lastTransitionTime"))
        for p in pods
        for c in (p.get("status") or {}).get("conditions") or []
        if c.get("type") == "Ready" and c.get("status") == "True"
    ]
    times = {
        "first_pod_created": min((t for t in created if t is not None), default=None),
        "last_pod_created": max((t for t in created if t is not None), default=None),
        "last_pod_ready": max((t for t in ready if t is not None), default=None),
    }
    if zero is None:
        return {}
    return {k: round(t - zero, 1) for k, t in times.items() if t is not None}


# ------------------------------------------------------------------------------------ results


@dataclass
class SideResult:
    side: str
    wells: int
    qps: float
    burst: int
    start_delay_s: float
    time_to_ready_s: float = 0.0
    rollout_time_s: float = 0.0
    rollout_ideal_s: float = 0.0
    rollout_ratio: float = 0.0
    rollout_waves: int = 0
    max_unavailable: int = 0
    max_unavailable_seen: int = 0
    unavailable_samples: int = 0
    over_budget_events: list[dict[str, Any]] = field(default_factory=list)
    ready_lost_events: list[dict[str, Any]] = field(default_factory=list)  # first 40
    pod_timeline: dict[str, dict[str, dict[str, float]]] = field(default_factory=dict)  # phase
    milestones: dict[str, dict[str, float]] = field(default_factory=dict)  # phase -> ...
    # apply: seconds to the bench's own watch seeing every pod Ready (time_to_ready_s minus
    # this is how late the controller's status said so)
    pods_ready_s: float = 0.0
    apply_cpu_s: dict[str, float] = field(default_factory=dict)  # process -> CPU s to all Ready
    requests_per_pod: dict[str, dict[str, float]] = field(default_factory=dict)  # phase -> ...
    writes_per_pod: dict[str, float] = field(default_factory=dict)  # phase -> apiserver writes
    throttled_429: dict[str, float] = field(default_factory=dict)  # phase -> 429s
    etcd: dict[str, int] = field(default_factory=dict)
    processes: dict[str, dict[str, float]] = field(default_factory=dict)
    peak_rss_mb: float = 0.0  # the operator's (ours only)
    operator_calls: dict[str, dict[str, float]] = field(default_factory=dict)  # phase -> ...
    # phase -> "verb resource code" -> calls (a 409 or a 503 is a call too)
    operator_calls_by_code: dict[str, dict[str, float]] = field(default_factory=dict)
    # phase -> "new" (a TLS handshake each) / "reused" -> connections the operator's client took
    operator_connections: dict[str, dict[str, float]] = field(default_factory=dict)
    steady_window_s: float = 0.0
    steady_writes: float = 0.0  # the operator's own writes (its /metrics)
    steady_apiserver_writes: dict[str, float] = field(default_factory=dict)  # everyone's
    status_freshness_p50_s: float = 0.0
    status_freshness_p99_s: float = 0.0
    status_freshness_samples: int = 0
    confirmation: str = ""  # ours: spec.runtime.bundleConfirmation
    notes: list[str] = field(default_factory=list)


def rollout_budget(res: SideResult, delay: float) -> None:
    """maxUnavailable 10% rounds down (as the Deployment controller rounds it); waves x D."""
    res.max_unavailable = max(1, res.wells * 10 // 100)
    res.rollout_waves = math.ceil(res.wells / res.max_unavailable)
    res.rollout_ideal_s = res.rollout_waves * delay


# ------------------------------------------------------------------------------------ cluster


@dataclass
class Session:
    cluster: RealCluster
    http: httpx.Client
    connect: ClientFactory
    profile_dir: Path | None = None  # kube-apiserver's CPU profiles per phase, if given

    def profile(self, label: str) -> ApiserverProfile:
        return ApiserverProfile(self.connect, self.profile_dir, label)


@contextmanager
def fresh_cluster(
    qps: float,
    burst: int,
    delay: float,
    nodes: int,
    say: Callable[[str], None],
    profile_dir: Path | None = None,
) -> Iterator[Session]:
    options = ClusterOptions(
        nodes=nodes,
        kcm_qps=int(qps),
        kcm_burst=burst,
        scheduler_qps=5000,
        scheduler_burst=5000,
        pod_start_delay_s=delay,
        start_timeout=300,
        progress=say,
        apiserver_profiling=profile_dir is not None,
    )
    with running_real_cluster(options) as cluster:
        assert cluster.pki is not None
        tls = client_tls(cluster.pki.ca_cert, cluster.pki.admin.cert, cluster.pki.admin.key)

        def connect() -> httpx.Client:
            return httpx.Client(base_url=cluster.server, verify=tls, timeout=120)

        with connect() as http:
            yield Session(cluster, http, connect, profile_dir)


def role_pids(cluster: RealCluster) -> dict[str, int]:
    return {p.role.value: p.pid for p in cluster.processes if p.role in MEASURED_ROLES and p.pid}


def install_crd(http: httpx.Client) -> None:
    r = http.post(
        "/apis/apiextensions.k8s.io/v1/customresourcedefinitions",
        json=yaml.safe_load(CRD.read_text()),
    )
    assert r.status_code in (201, 409), r.text[:500]

    def established() -> bool:
        crd = http.get(
            "/apis/apiextensions.k8s.io/v1/customresourcedefinitions/modeldeployments.modelfleet.dev"
        ).json()
        conditions = (crd.get("status") or {}).get("conditions") or []
        served = http.get(MD_COLLECTION).status_code == 200
        return served and any(
            c["type"] == "Established" and c["status"] == "True" for c in conditions
        )

    wait_until("the CRD established and served", established, timeout=60, interval=0.2)


def merge_patch(http: httpx.Client, path: str, patch: dict[str, Any]) -> dict[str, Any]:
    r = http.patch(
        path, content=json.dumps(patch), headers={"Content-Type": "application/merge-patch+json"}
    )
    r.raise_for_status()
    return dict(r.json())


# ------------------------------------------------------------------------------ our two sides


_CALL = re.compile(
    r'^modelfleet_operator_api_calls_total\{code="([^"]*)",resource="([^"]*)",verb="([^"]*)"\} (\S+)$'
)
_CONNECTIONS = re.compile(
    r'^modelfleet_operator_api_connections_total\{connection="([^"]*)"\} (\S+)$'
)
_OP_WRITES = {"create", "patch", "delete", "update"}
_CONNECTION_KEY = "connections "


def operator_calls(metrics_url: str) -> dict[str, float]:
    return parse_operator_metrics(httpx.get(metrics_url, timeout=10).text)


def parse_operator_metrics(text: str) -> dict[str, float]:
    """The operator's counters: API calls as "verb resource code", connections its client took
    as "connections new" / "connections reused"."""
    calls: dict[str, float] = {}
    for line in text.splitlines():
        if m := _CALL.match(line):
            code, resource, verb, value = m.groups()
            calls[f"{verb} {resource} {code}"] = float(value)
        elif m := _CONNECTIONS.match(line):
            calls[_CONNECTION_KEY + m.group(1)] = float(m.group(2))
    return calls


def calls_delta(after: dict[str, float], before: dict[str, float]) -> dict[str, float]:
    return {k: v - before.get(k, 0.0) for k, v in sorted(after.items()) if v - before.get(k, 0.0)}


def record_calls(side: SideResult, phase: str, delta: dict[str, float]) -> None:
    """A phase's delta of operator_calls into the side: by request, by code, connections."""
    by_code = {k: v for k, v in delta.items() if not k.startswith(_CONNECTION_KEY)}
    by_request: dict[str, float] = {}
    for key, value in by_code.items():
        request = key.rsplit(" ", 1)[0]
        by_request[request] = by_request.get(request, 0.0) + value
    side.operator_calls[phase] = by_request
    side.operator_calls_by_code[phase] = by_code
    side.operator_connections[phase] = {
        k.removeprefix(_CONNECTION_KEY): v
        for k, v in delta.items()
        if k.startswith(_CONNECTION_KEY)
    }


def md_available(
    wells: int, generation: int = 0, model_version: str = ""
) -> Callable[[dict[str, Any]], bool]:
    def check(obj: dict[str, Any]) -> bool:
        s = obj.get("status") or {}
        return (
            s.get("observedGeneration", 0) >= generation
            and s.get("readyWells") == wells
            and s.get("updatedWells") == wells
            and s.get("availableWells") == wells
            and s.get("phase") == "Available"
            and str(s.get("model", "")).endswith(model_version)
        )

    return check


def ready_wells_wait(md: ObjectWatch, timeout: float) -> Callable[[int], float]:
    """`operator_scale.flip_freshness`'s wait, on the ModelDeployment this watch follows."""

    def wait(expected: int) -> float:
        return md.wait(lambda o: (o.get("status") or {}).get("readyWells") == expected, timeout)

    return wait


def create_digests_config_map(http: httpx.Client, name: str, digests: dict[str, str]) -> None:
    r = http.post(
        f"/api/v1/namespaces/{NS}/configmaps",
        json={
            "apiVersion": "v1",
            "kind": "ConfigMap",
            "metadata": {"name": name},
            "data": {DIGESTS_KEY: yaml.safe_dump(digests)},
        },
    )
    assert r.status_code == 201, r.text[:300]


def run_ours(
    s: Session,
    workdir: Path,
    *,
    wells: int,
    qps: float,
    burst: int,
    delay: float,
    concurrency: int,
    steady_s: float,
    flips: int,
    bundle_uri: str,
    confirmation: BundleConfirmation,
    digests: dict[str, str],
    rollouts: bool = True,
) -> list[SideResult]:
    """`digests`: each version's bundle digest (every well's, here); with ReadinessProbe the
    fleet names them, since the probe confirms only an expected digest."""
    from operator_scale import by_reference, deployment, flip_freshness, well_id

    recreate = SideResult("modelfleet", wells, qps, burst, delay)
    inplace = SideResult("modelfleet_inplace", wells, qps, burst, delay)
    by_probe = confirmation is BundleConfirmation.READINESS_PROBE

    def expected(version: str) -> dict[str, str]:
        return {well_id(i): digests[version] for i in range(wells)}

    # A fleet whose digests would not fit in its object (docs/operations.md) names its wells
    # and digests in ConfigMaps, as a user's would: `by_reference`, and one more for 2.0.0.
    by_configmaps = by_probe and wells > INLINE_DIGESTS_MAX
    bundles = workdir / "bundles"

    def expect(version: str) -> dict[str, Any]:
        """The model fields naming `version`'s digests."""
        if not by_configmaps:
            return {"digests": expected(version)}
        return {"digestsFrom": [{"configMap": f"{NAME}-{version}-digests"}]}

    for side in (recreate, inplace):
        side.confirmation = confirmation.value
    install_crd(s.http)
    limits = ("--qps", str(qps), "--burst", str(burst), "--concurrency", str(concurrency))
    process, metrics_port = start_operator(
        s.cluster.kubeconfig, workdir, namespace=NS, extra_args=limits
    )
    metrics = f"http://127.0.0.1:{metrics_port}/metrics"
    try:
        wait_until(
            f"the operator's pod watch (log {process.log_path})",
            lambda: any(k.startswith("watch pods ") for k in operator_calls(metrics)),
            timeout=120,
            interval=0.2,
        )
        pids = {**role_pids(s.cluster), "operator": process.pid}
        selector = "modelfleet.dev/deployment"
        with (
            ObjectWatch(s.connect, MD_COLLECTION, NAME) as md,
            UnavailablePodsWatch(s.connect, selector, wells) as apply_pods,
        ):
            meter = ProcessMeter(pids)
            req0, calls0 = apiserver_requests(s.http), operator_calls(metrics)
            body = deployment(wells, "1.0.0", bundle_uri, maxUnavailable="10%")
            if by_probe:
                body["spec"]["runtime"] = {"bundleConfirmation": confirmation.value}
            if by_configmaps:
                # Made before the apply's meters start: inventory, not the apply's requests.
                by_reference(s.http, body, bundles, "1.0.0")
                create_digests_config_map(s.http, f"{NAME}-2.0.0-digests", expected("2.0.0"))
                req0, calls0 = apiserver_requests(s.http), operator_calls(metrics)
                meter = ProcessMeter(pids)
                recreate.notes.append("wellsFrom and digestsFrom ConfigMaps (by_reference)")
            elif by_probe:
                body["spec"]["model"].update(expect("1.0.0"))
            with s.profile(f"{qps:g}-modelfleet-ready"):
                started = time.perf_counter()
                r = s.http.post(MD_COLLECTION, json=body)
                assert r.status_code == 201, r.text[:500]
                done = md.wait(md_available(wells), timeout=7200)
            recreate.time_to_ready_s = inplace.time_to_ready_s = done - started
            if apply_pods.all_ready_at is not None:
                recreate.pods_ready_s = round(apply_pods.all_ready_at - started, 2)
            recreate.apply_cpu_s = {k: v["cpu_s"] for k, v in meter.read().items()}
            time.sleep(1.0)
            req1, calls1 = apiserver_requests(s.http), operator_calls(metrics)
            ready_delta = requests_delta(req1, req0)
            for side in (recreate, inplace):
                side.requests_per_pod["ready"] = per_pod(ready_delta, wells)
                side.writes_per_pod["ready"] = round(writes(ready_delta) / wells, 3)
                side.throttled_429["ready"] = throttled(req1, req0)
                record_calls(side, "ready", calls_delta(calls1, calls0))
            inplace.notes.append(
                "time_to_ready_s and the ready phase are the modelfleet side's apply"
            )
            log(f"[{qps:g}] modelfleet: {wells} wells Ready in {recreate.time_to_ready_s:.1f}s")
            recreate.pod_timeline["ready"] = pod_timeline(s.http, selector)
            recreate.milestones["ready"] = fleet_milestones(
                s.http, selector, r.json()["metadata"]["creationTimestamp"]
            )
            log(f"[{qps:g}] modelfleet milestones: {recreate.milestones['ready']}")
            log(f"[{qps:g}] modelfleet pod timeline: {recreate.pod_timeline['ready']}")
            if steady_s > 0:
                time.sleep(2.0)  # the last events of the apply
                req_a, calls_a = apiserver_requests(s.http), operator_calls(metrics)
                time.sleep(steady_s)
                req_b, calls_b = apiserver_requests(s.http), operator_calls(metrics)
                recreate.steady_window_s = steady_s
                op_delta = calls_delta(calls_b, calls_a)
                recreate.steady_writes = sum(
                    v for k, v in op_delta.items() if k.split()[0] in _OP_WRITES
                )
                every = requests_delta(req_b, req_a)
                recreate.steady_apiserver_writes = {
                    k: v for k, v in every.items() if k.split()[0] in WRITE_VERBS
                }
                log(
                    f"[{qps:g}] steady {steady_s:.0f}s: operator writes {recreate.steady_writes}, "
                    f"apiserver writes {recreate.steady_apiserver_writes}"
                )
            if flips > 0 and by_probe:
                # The flip writes the gate; a probe-confirmed pod has none, and a flip of its
                # Ready the responder (the kubelet) undoes at once. The path from a pod event
                # to the fleet's status is the same in both modes: the gate run measures it.
                recreate.notes.append("status freshness: not measured with ReadinessProbe")
            elif flips > 0:
                delays = flip_freshness(s.http, ready_wells_wait(md, timeout=120), wells, flips)
                recreate.status_freshness_p50_s = round(statistics.median(delays), 3)
                recreate.status_freshness_p99_s = round(percentile(delays, 99), 3)
                recreate.status_freshness_samples = len(delays)
                log(
                    f"[{qps:g}] freshness p50 {recreate.status_freshness_p50_s}s "
                    f"p99 {recreate.status_freshness_p99_s}s"
                )
            if rollouts:
                # Recreate: a runtime image change, pods deleted and created, D per wave.
                rollout_budget(recreate, delay)
                image = "ghcr.io/modelfleet/model-runtime:bench-2"
                _our_rollout(
                    s, md, recreate, metrics, selector, {"spec": {"runtime": {"image": image}}}
                )
            recreate.processes = meter.read()
            recreate.peak_rss_mb = recreate.processes["operator"]["peak_rss_mb"]
            recreate.etcd = etcd_db_bytes(s.cluster)
            if not rollouts:
                recreate.notes.append("roll-outs not run (--no-rollouts)")
                return [recreate]
            # In place: a model version change, pods kept, bundles swapped; its own meters.
            meter = ProcessMeter(pids)
            rollout_budget(inplace, 0.0)
            inplace.notes.append(
                "in place: pods are kept, so the start delay does not apply; the responder "
                "reloads 2 s after the annotations change (the kubelet's refresh)"
            )
            inplace.rollout_ideal_s = inplace.rollout_waves * 2.0
            _our_rollout(
                s,
                md,
                inplace,
                metrics,
                selector,
                {
                    "spec": {
                        "model": {
                            "version": "2.0.0",
                            **(expect("2.0.0") if by_probe else {}),
                        }
                    }
                },
                model_version="2.0.0",
            )
            inplace.processes = meter.read()
            inplace.peak_rss_mb = inplace.processes["operator"]["peak_rss_mb"]
            inplace.etcd = etcd_db_bytes(s.cluster)
    finally:
        process.stop(timeout=30)
    return [recreate, inplace]


def _our_rollout(
    s: Session,
    md: ObjectWatch,
    res: SideResult,
    metrics: str,
    selector: str,
    patch: dict[str, Any],
    *,
    model_version: str = "",
) -> None:
    with (
        UnavailablePodsWatch(s.connect, selector, res.wells, res.max_unavailable) as pods,
        s.profile(f"{res.qps:g}-{res.side}-rollout"),
    ):
        req0, calls0 = apiserver_requests(s.http), operator_calls(metrics)
        started = time.perf_counter()
        generation = merge_patch(s.http, f"{MD_COLLECTION}/{NAME}", patch)["metadata"]["generation"]
        done = md.wait(md_available(res.wells, generation, model_version), timeout=7200)
        res.rollout_time_s = round(done - started, 2)
        time.sleep(1.0)
        res.max_unavailable_seen = pods.max_unavailable
        res.unavailable_samples = pods.samples
        res.over_budget_events = pods.over_budget
        res.ready_lost_events = pods.ready_lost
        req1, calls1 = apiserver_requests(s.http), operator_calls(metrics)
    delta = requests_delta(req1, req0)
    res.requests_per_pod["rollout"] = per_pod(delta, res.wells)
    res.writes_per_pod["rollout"] = round(writes(delta) / res.wells, 3)
    res.throttled_429["rollout"] = throttled(req1, req0)
    record_calls(res, "rollout", calls_delta(calls1, calls0))
    if not model_version:  # recreated: every pod is new; in place keeps the apply's pods
        res.pod_timeline["rollout"] = pod_timeline(s.http, selector)
    res.rollout_ratio = (
        round(res.rollout_time_s / res.rollout_ideal_s, 3) if res.rollout_ideal_s else 0.0
    )
    log(
        f"[{res.qps:g}] {res.side}: roll-out {res.rollout_time_s:.1f}s / ideal "
        f"{res.rollout_ideal_s:.0f}s; max unavailable {res.max_unavailable_seen}/{res.max_unavailable}"
    )


# -------------------------------------------------------------------------- the two peers


def peer_template(name: str, bundle_uri: str) -> dict[str, Any]:
    """The pod the peers run: the operator's own well pod (image, probes, ports, env,
    resources) with one bundle for every pod (what a Deployment can express) and without the
    readiness gate; the responder loads the bundle and plays the readiness probe for it as for
    ours, so both sides pay the same kubelet work and only the gate differs."""
    from operator_scale import well_id

    wid = well_id(0)
    pod = desired_pod(
        deployment=name,
        deployment_uid="00000000-0000-0000-0000-000000000000",
        target=WellTarget(
            wid, "peer", "peer", "1.0.0", bundle_uri.format(version="1.0.0", well=wid), None
        ),
        runtime=RuntimeSpec(),
    )
    spec = dict(pod["spec"])
    for key in ("readinessGates", "hostname", "subdomain"):
        spec.pop(key, None)
    annotations = {BUNDLE_URI_ANNOTATION: pod["metadata"]["annotations"][BUNDLE_URI_ANNOTATION]}
    return {"metadata": {"labels": {PEER_LABEL: name}, "annotations": annotations}, "spec": spec}


def peer_manifest(kind: str, name: str, replicas: int, bundle_uri: str) -> dict[str, Any]:
    spec: dict[str, Any] = {
        "replicas": replicas,
        "selector": {"matchLabels": {PEER_LABEL: name}},
        "template": peer_template(name, bundle_uri),
    }
    if kind == "Deployment":
        spec["strategy"] = {
            "type": "RollingUpdate",
            "rollingUpdate": {"maxUnavailable": "10%", "maxSurge": 0},
        }
    else:
        spec["serviceName"] = name
        spec["podManagementPolicy"] = "Parallel"
        spec["updateStrategy"] = {
            "type": "RollingUpdate",
            "rollingUpdate": {"maxUnavailable": "10%"},
        }
    return {"apiVersion": "apps/v1", "kind": kind, "metadata": {"name": name}, "spec": spec}


def peer_service(kind: str, name: str) -> dict[str, Any]:
    """The Service a platform team runs with each peer: the StatefulSet's governing headless
    Service (its serviceName: without it the pods' stable names resolve to nothing), a
    ClusterIP Service in front of the Deployment. Ours makes its headless Service itself, so
    the endpoints controllers follow every pod's readiness on every side."""
    spec: dict[str, Any] = {
        "selector": {PEER_LABEL: name},
        "ports": [{"name": "http", "port": 8080, "targetPort": 8080, "protocol": "TCP"}],
    }
    if kind == "StatefulSet":
        spec["clusterIP"] = "None"
    return {"apiVersion": "v1", "kind": "Service", "metadata": {"name": name}, "spec": spec}


def peer_done(kind: str, replicas: int, generation: int) -> Callable[[dict[str, Any]], bool]:
    def check(obj: dict[str, Any]) -> bool:
        st = obj.get("status") or {}
        every = (
            st.get("observedGeneration", 0) >= generation
            and st.get("replicas") == replicas
            and st.get("readyReplicas") == replicas
            and st.get("updatedReplicas") == replicas
            and st.get("availableReplicas") == replicas
        )
        if kind == "StatefulSet":
            every = every and st.get("currentRevision") == st.get("updateRevision")
        return bool(every)

    return check


def run_peer(
    s: Session,
    kind: str,
    *,
    wells: int,
    qps: float,
    burst: int,
    delay: float,
    bundle_uri: str,
    rollouts: bool = True,
) -> SideResult:
    side = "deployment" if kind == "Deployment" else "statefulset"
    collection = DEPLOY_COLLECTION if kind == "Deployment" else STS_COLLECTION
    name = f"{NAME}-{side}"
    res = SideResult(side, wells, qps, burst, delay)
    selector = f"{PEER_LABEL}={name}"
    meter = ProcessMeter(role_pids(s.cluster))
    service = s.http.post(SERVICES, json=peer_service(kind, name))
    assert service.status_code == 201, service.text[:500]
    res.notes.append(
        "with its Service, as ours has its headless one: "
        + ("governing, headless" if kind == "StatefulSet" else "ClusterIP")
    )
    with (
        ObjectWatch(s.connect, collection, name) as watch,
        UnavailablePodsWatch(s.connect, selector, wells) as apply_pods,
    ):
        req0 = apiserver_requests(s.http)
        with s.profile(f"{qps:g}-{side}-ready"):
            started = time.perf_counter()
            r = s.http.post(collection, json=peer_manifest(kind, name, wells, bundle_uri))
            assert r.status_code == 201, r.text[:500]
            created = r.json()
            done = watch.wait(
                peer_done(kind, wells, created["metadata"]["generation"]), timeout=7200
            )
        res.time_to_ready_s = round(done - started, 2)
        if apply_pods.all_ready_at is not None:
            res.pods_ready_s = round(apply_pods.all_ready_at - started, 2)
        res.apply_cpu_s = {k: v["cpu_s"] for k, v in meter.read().items()}
        time.sleep(1.0)
        req1 = apiserver_requests(s.http)
        delta = requests_delta(req1, req0)
        res.requests_per_pod["ready"] = per_pod(delta, wells)
        res.writes_per_pod["ready"] = round(writes(delta) / wells, 3)
        res.throttled_429["ready"] = throttled(req1, req0)
        log(f"[{qps:g}] {side}: {wells} replicas Ready in {res.time_to_ready_s:.1f}s")
        res.pod_timeline["ready"] = pod_timeline(s.http, selector)
        log(f"[{qps:g}] {side} pod timeline: {res.pod_timeline['ready']}")
        res.milestones["ready"] = fleet_milestones(
            s.http, selector, created["metadata"]["creationTimestamp"]
        )
        log(f"[{qps:g}] {side} milestones: {res.milestones['ready']}")
        rollout_budget(res, delay)
        kept = ((created["spec"].get("updateStrategy") or {}).get("rollingUpdate") or {}).get(
            "maxUnavailable"
        )
        if not rollouts:
            res.notes.append("roll-out not run (--no-rollouts)")
        elif kind == "StatefulSet" and kept is None:
            res.notes.append(
                "the apiserver dropped updateStrategy.rollingUpdate.maxUnavailable "
                "(MaxUnavailableStatefulSet off): one pod at a time, roll-out not run"
            )
        else:
            with (
                UnavailablePodsWatch(s.connect, selector, wells, res.max_unavailable) as pods,
                s.profile(f"{qps:g}-{side}-rollout"),
            ):
                req0 = apiserver_requests(s.http)
                started = time.perf_counter()
                patch = {"spec": {"template": {"metadata": {"annotations": {"bench/rev": "2"}}}}}
                generation = merge_patch(s.http, f"{collection}/{name}", patch)["metadata"][
                    "generation"
                ]
                done = watch.wait(peer_done(kind, wells, generation), timeout=7200)
                res.rollout_time_s = round(done - started, 2)
                time.sleep(1.0)
                res.max_unavailable_seen = pods.max_unavailable
                res.unavailable_samples = pods.samples
                res.over_budget_events = pods.over_budget
                res.ready_lost_events = pods.ready_lost
                req1 = apiserver_requests(s.http)
            delta = requests_delta(req1, req0)
            res.pod_timeline["rollout"] = pod_timeline(s.http, selector)
            res.requests_per_pod["rollout"] = per_pod(delta, wells)
            res.writes_per_pod["rollout"] = round(writes(delta) / wells, 3)
            res.throttled_429["rollout"] = throttled(req1, req0)
            res.rollout_ratio = round(res.rollout_time_s / res.rollout_ideal_s, 3)
            log(
                f"[{qps:g}] {side}: roll-out {res.rollout_time_s:.1f}s / ideal "
                f"{res.rollout_ideal_s:.0f}s; max unavailable {res.max_unavailable_seen}/{res.max_unavailable}"
            )
    res.processes = meter.read()
    res.etcd = etcd_db_bytes(s.cluster)
    return res


# ------------------------------------------------------------------------ inventory limits


def inventory_limits(s: Session) -> dict[str, Any]:
    """What the real apiserver accepts for a fleet by reference: the most wells (40-character
    ids, 3 labels, as `yaml.safe_dump` writes wells.yaml) in one ConfigMap, and the largest
    object etcd stores (a ControllerRevision holding a digest per well, as the operator's),
    each with the refusal one step above (server-side dry run for the ConfigMap; a real create
    and delete for the ControllerRevision, since dry run skips etcd)."""

    def wells_yaml(n: int) -> str:
        wells = [
            {
                "id": f"{'ca' if i % 2 else 'us'}-{'x' * 26}-w{i:08d}",
                "labels": {"country": "ca", "field": f"field-{i // 500:03d}", "lift": "esp"},
            }
            for i in range(n)
        ]
        return yaml.dump(wells, Dumper=yaml.CSafeDumper)  # what safe_dump writes, in C

    def configmap_ok(n: int) -> tuple[bool, str]:
        body = {
            "apiVersion": "v1",
            "kind": "ConfigMap",
            "metadata": {"name": "limit-probe"},
            "data": {"wells.yaml": wells_yaml(n)},
        }
        r = s.http.post(f"/api/v1/namespaces/{NS}/configmaps", params={"dryRun": "All"}, json=body)
        return r.status_code == 201, r.text[:300]

    def revision_ok(n: int) -> tuple[bool, str]:
        digests = {f"ca-{'x' * 26}-w{i:08d}": "sha256:" + "0" * 64 for i in range(n)}
        body = {
            "apiVersion": "apps/v1",
            "kind": "ControllerRevision",
            "metadata": {"name": f"limit-probe-{n}"},
            "revision": 1,
            "data": {"model": {"digests": digests}},
        }
        r = s.http.post(f"/apis/apps/v1/namespaces/{NS}/controllerrevisions", json=body)
        if r.status_code == 201:
            s.http.delete(f"/apis/apps/v1/namespaces/{NS}/controllerrevisions/limit-probe-{n}")
        return r.status_code == 201, r.text[:300]

    out: dict[str, Any] = {}
    for what, ok, lo, hi in (
        ("configmap_wells", configmap_ok, 1000, 40000),
        ("controllerrevision_digests", revision_ok, 1000, 40000),
    ):
        refusal = ""
        while hi - lo > max(1, lo // 200):  # to 0.5%
            mid = (lo + hi) // 2
            accepted, text = ok(mid)
            if accepted:
                lo = mid
            else:
                hi, refusal = mid, text
        out[what] = {"accepted": lo, "refused": hi, "refusal": refusal}
        log(f"limits: {what} accepted {lo}, refused {hi}: {refusal[:160]}")
    return out


# ----------------------------------------------------------------------------------- driver


def run(
    *,
    wells: int,
    qps_settings: list[float],
    burst_factor: float,
    delay: float,
    concurrency: int,
    steady_s: float,
    flips: int,
    nodes: int,
    workdir: Path,
    sides: list[str],
    limits: bool,
    json_path: Path | None,
    confirmation: BundleConfirmation = BundleConfirmation.READINESS_GATE,
    profile_dir: Path | None = None,
    repeats: int = 1,
    rollouts: bool = True,
) -> dict[str, Any]:
    """`repeats` > 1 runs every side that many times per client rate, on a fresh cluster each,
    in ABBA order (drift on the machine falls on both sides alike); each side then reports its
    medians (`combine_repeats`) and the run entry each repeat's ratio to the Deployment."""
    from operator_scale import prepare_bundles

    from model_runtime.manifest import manifest_digest

    enter_private_network()
    versions = ["1.0.0", "2.0.0"]
    bundle_uri = prepare_bundles(workdir / "bundles", versions, wells)["bundleUri"]
    digests = {
        v: manifest_digest((workdir / "bundles" / "real" / v / "manifest.json").read_bytes())
        for v in versions
    }
    payload: dict[str, Any] = {
        "cluster": "real",
        "machine": {"cpus": os.cpu_count(), "loadavg_start": os.getloadavg()},
        "settings": {
            "wells": wells,
            "qps": qps_settings,
            "burst_factor": burst_factor,
            "start_delay_s": delay,
            "concurrency": concurrency,
            "steady_s": steady_s,
            "flips": flips,
            "nodes": nodes,
            "scheduler_qps": 5000,
            "bundle_confirmation": confirmation.value,
            "repeats": repeats,
            "rollouts": rollouts,
        },
        "runs": [],
    }

    def say(line: str) -> None:
        log(line)

    def save() -> None:
        payload["machine"]["loadavg_end"] = os.getloadavg()
        if json_path is not None:
            json_path.write_text(json.dumps(payload, indent=1) + "\n")

    for qps in qps_settings:
        burst = max(1, round(qps * burst_factor))
        run_entry: dict[str, Any] = {"qps": qps, "burst": burst, "sides": {}, "loadavg": []}
        payload["runs"].append(run_entry)
        # Cluster groups in the order --sides names them (peers first fits a short window).
        groups = list(
            dict.fromkeys("modelfleet" if x.startswith("modelfleet") else x for x in sides)
        )
        measured: dict[str, list[dict[str, Any]]] = {}
        for repeat in range(repeats):
            for group in groups if repeat % 2 == 0 else groups[::-1]:
                with fresh_cluster(qps, burst, delay, nodes, say, profile_dir) as s:
                    if group == "modelfleet":
                        results = run_ours(
                            s,
                            workdir,
                            wells=wells,
                            qps=qps,
                            burst=burst,
                            delay=delay,
                            concurrency=concurrency,
                            steady_s=steady_s,
                            flips=flips,
                            bundle_uri=bundle_uri,
                            confirmation=confirmation,
                            digests=digests,
                            rollouts=rollouts,
                        )
                        if limits and "limits" not in payload:
                            payload["limits"] = inventory_limits(s)
                    else:
                        kind = {"deployment": "Deployment", "statefulset": "StatefulSet"}[group]
                        results = [
                            run_peer(
                                s,
                                kind,
                                wells=wells,
                                qps=qps,
                                burst=burst,
                                delay=delay,
                                bundle_uri=bundle_uri,
                                rollouts=rollouts,
                            )
                        ]
                for res in results:
                    measured.setdefault(res.side, []).append(asdict(res))
                run_entry["loadavg"].append(os.getloadavg())
                run_entry["sides"] = {k: combine_repeats(v) for k, v in measured.items()}
                if repeats > 1:
                    run_entry["ratios_to_deployment"] = paired_ratios(measured)
                save()
    save()
    return payload


_MEDIAN_FIELDS = ("time_to_ready_s", "rollout_time_s", "pods_ready_s")


def combine_repeats(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """One side's figures over its repeats: the median time to Ready, roll-out time and pod
    watch's Ready, the worst unavailability and steady writes seen in any, each repeat's own in
    `repeats`; the rest (requests, CPU, milestones) from the repeat at the median time to
    Ready. One run is itself."""
    if len(runs) == 1:
        return runs[0]
    by_ready = sorted(runs, key=lambda r: r["time_to_ready_s"])
    side = dict(by_ready[(len(by_ready) - 1) // 2])
    for key in _MEDIAN_FIELDS:
        side[key] = round(statistics.median(r[key] for r in runs), 2)
    side["max_unavailable_seen"] = max(r["max_unavailable_seen"] for r in runs)
    side["steady_writes"] = max(r["steady_writes"] for r in runs)
    if side["rollout_ideal_s"]:
        side["rollout_ratio"] = round(side["rollout_time_s"] / side["rollout_ideal_s"], 3)
    side["repeats"] = [
        {key: r[key] for key in (*_MEDIAN_FIELDS, "max_unavailable_seen")} for r in runs
    ]
    side["notes"] = [
        *side["notes"],
        f"median of {len(runs)} runs (ABBA order); requests, CPU and milestones from the run "
        "at the median time to Ready",
    ]
    return side


def paired_ratios(measured: dict[str, list[dict[str, Any]]]) -> dict[str, dict[str, Any]]:
    """Each repeat's time to Ready and roll-out time over the Deployment's of the same repeat
    (ABBA order: with two groups the pair ran back to back), and their medians, for every
    other side."""
    peer = measured.get("deployment") or []
    out: dict[str, dict[str, Any]] = {}
    for side, runs in measured.items():
        if side == "deployment":
            continue
        pairs = list(zip(runs, peer, strict=False))
        ratios: dict[str, Any] = {}
        for key in ("time_to_ready_s", "rollout_time_s"):
            each = [round(a[key] / b[key], 3) for a, b in pairs if a[key] and b[key]]
            ratios[key] = {
                "each": each,
                "median": round(statistics.median(each), 3) if each else None,
            }
        out[side] = ratios
    return out


def table(payload: dict[str, Any]) -> str:
    rows: list[tuple[str, Callable[[dict[str, Any]], str]]] = [
        ("time to all Ready, s", lambda r: f"{r['time_to_ready_s']:.1f}"),
        ("roll-out s / ideal s", lambda r: f"{r['rollout_time_s']:.1f}/{r['rollout_ideal_s']:.0f}"),
        ("roll-out / ideal", lambda r: f"{r['rollout_ratio']:.2f}"),
        (
            "max unavailable seen/allowed",
            lambda r: f"{r['max_unavailable_seen']}/{r['max_unavailable']}",
        ),
        (
            "apiserver writes/pod ready|roll",
            lambda r: "/".join(f"{v:.2f}" for v in r["writes_per_pod"].values()),
        ),
        ("429s ready|roll", lambda r: "/".join(f"{v:.0f}" for v in r["throttled_429"].values())),
        (
            "apiserver CPU s",
            lambda r: f"{r['processes'].get('kube-apiserver', {}).get('cpu_s', 0):.0f}",
        ),
        (
            "apiserver peak RSS MB",
            lambda r: f"{r['processes'].get('kube-apiserver', {}).get('peak_rss_mb', 0):.0f}",
        ),
        (
            "etcd CPU s / peak MB",
            lambda r: "{cpu_s:.0f}/{peak_rss_mb:.0f}".format(
                **r["processes"].get("etcd", {"cpu_s": 0, "peak_rss_mb": 0})
            ),
        ),
        ("controller CPU s / peak MB", _controller_cell),
        ("etcd db MB", lambda r: f"{r['etcd'].get('db_total_size_in_bytes', 0) / 1e6:.1f}"),
        (
            "steady writes (operator)",
            lambda r: f"{r['steady_writes']:.0f}" if r["steady_window_s"] else "-",
        ),
        (
            "freshness p50/p99 s",
            lambda r: (
                f"{r['status_freshness_p50_s']:.2f}/{r['status_freshness_p99_s']:.2f}"
                if r["status_freshness_samples"]
                else "-"
            ),
        ),
    ]
    lines = []
    for run_entry in payload["runs"]:
        sides = [run_entry["sides"][k] for k in SIDES if k in run_entry["sides"]]
        lines.append(
            f"qps {run_entry['qps']:g} / burst {run_entry['burst']}, {payload['settings']['wells']} pods"
        )
        lines.append(" " * 34 + "".join(f"{r['side']:>20}" for r in sides))
        for name, cell in rows:
            lines.append(f"{name:<34}" + "".join(f"{cell(r):>20}" for r in sides))
        for side, ratios in (run_entry.get("ratios_to_deployment") or {}).items():
            lines.append(f"{side} / deployment, each repeat: {_ratio_line(ratios)}")
    return "\n".join(lines)


def _controller_cell(r: dict[str, Any]) -> str:
    who = "operator" if r["side"].startswith("modelfleet") else "kube-controller-manager"
    p = r["processes"].get(who, {"cpu_s": 0, "peak_rss_mb": 0})
    return f"{p['cpu_s']:.0f}/{p['peak_rss_mb']:.0f}"


def plot(payload: dict[str, Any], path: Path, kubesim: dict[str, float] | None = None) -> None:
    """Time to all Ready and roll-out time per side, one group of bars per client rate
    (kubesim's operator figures beside them when given)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    colours = {
        "modelfleet": "tab:blue",
        "modelfleet_inplace": "tab:cyan",
        "deployment": "tab:orange",
        "statefulset": "tab:green",
    }
    fig, axes = plt.subplots(1, 2, figsize=(10, 4), sharey=False)
    for ax, key, title in (
        (axes[0], "time_to_ready_s", "apply -> all Ready"),
        (axes[1], "rollout_time_s", "roll-out at maxUnavailable 10%"),
    ):
        labels = []
        for g, run_entry in enumerate(payload["runs"]):
            labels.append(f"qps {run_entry['qps']:g}")
            present = [k for k in SIDES if k in run_entry["sides"]]
            for i, side in enumerate(present):
                value = run_entry["sides"][side][key]
                if key == "time_to_ready_s" and side == "modelfleet_inplace":
                    continue
                ax.bar(
                    g + i * 0.2 - 0.3,
                    value,
                    0.18,
                    color=colours[side],
                    label=side if g == 0 else None,
                )
        if kubesim and key in kubesim:
            ax.axhline(
                kubesim[key], color="tab:gray", ls="--", label="kubesim, same commit and pods"
            )
        if key == "rollout_time_s":
            ideal = payload["runs"][0]["sides"].get("deployment", {}).get("rollout_ideal_s")
            if ideal:
                ax.axhline(ideal, color="black", ls=":", label="ideal: waves x D")
        ax.set_xticks(range(len(labels)), labels)
        ax.set_ylabel("seconds")
        ax.set_title(title, fontsize=10)
        ax.legend(fontsize=7)
    fig.suptitle(
        f"{payload['settings']['wells']} pods on the real control plane (kwok, "
        f"start delay {payload['settings']['start_delay_s']:g} s, 2 shared cores)",
        fontsize=10,
    )
    fig.tight_layout()
    fig.savefig(path, dpi=110)


Cell = Callable[[dict[str, Any]], str]


def _proc(who: str, key: str) -> Cell:
    return lambda side: f"{side['processes'][who][key]:.0f}" if who in side["processes"] else "-"


def _ours(cell: Cell) -> Cell:
    return lambda side: cell(side) if side["side"].startswith("modelfleet") else ""


def _freshness(side: dict[str, Any]) -> str:
    if not side["status_freshness_samples"]:
        return "-"
    return f"{side['status_freshness_p50_s']:.2f} / {side['status_freshness_p99_s']:.2f}"


def _wave_cell(side: dict[str, Any]) -> str:
    """A wave's time against the part of it a new pod spends from its create to Ready (the
    start delay D, the kubelet's start and probe); the rest is the controller's turn-around:
    seeing pods Ready, deleting the next wave, their kubelet ending them, creating the new."""
    step = ((side["pod_timeline"].get("rollout") or {}).get("created_to_ready") or {}).get("p50")
    if not side["rollout_waves"] or not side["rollout_time_s"] or step is None:
        return "-"
    return f"{side['rollout_time_s'] / side['rollout_waves']:.1f} / {step:.1f}"


MARKDOWN_ROWS: list[tuple[str, Cell]] = [
    ("apply -> all Ready, s", lambda r: f"{r['time_to_ready_s']:.1f}"),
    ("roll-out, s", lambda r: f"{r['rollout_time_s']:.1f}"),
    ("roll-out ideal (waves x D), s", lambda r: f"{r['rollout_ideal_s']:.0f}"),
    ("roll-out / ideal", lambda r: f"{r['rollout_ratio']:.2f}"),
    ("roll-out: per wave / a new pod's created -> Ready p50, s", _wave_cell),
    (
        "max unavailable seen / allowed",
        lambda r: f"{r['max_unavailable_seen']} / {r['max_unavailable']}",
    ),
    (
        "apiserver writes per pod: ready / roll-out",
        lambda r: " / ".join(f"{v:.2f}" for v in r["writes_per_pod"].values()),
    ),
    (
        "429s: ready / roll-out",
        lambda r: " / ".join(f"{v:.0f}" for v in r["throttled_429"].values()),
    ),
    *[
        (f"{who} {what}", _proc(who, key))
        for who in ("kube-apiserver", "etcd", "kube-controller-manager", "operator")
        for what, key in (("CPU s", "cpu_s"), ("peak RSS, MB", "peak_rss_mb"))
    ],
    ("etcd db, MB", lambda r: f"{r['etcd'].get('db_total_size_in_bytes', 0) / 1e6:.1f}"),
    (
        "steady state: operator writes (window, s)",
        _ours(
            lambda r: (
                f"{r['steady_writes']:.0f} ({r['steady_window_s']:.0f})"
                if r["steady_window_s"]
                else "-"
            )
        ),
    ),
    (
        "apply: every pod Ready (the bench's pod watch), s",
        # The in-place side shares its apply with `modelfleet`: it has no watch of its own.
        lambda r: f"{r['pods_ready_s']:.1f}" if r["pods_ready_s"] else "-",
    ),
    (
        "apply: first pod created / last created / last Ready, s",
        lambda r: " / ".join(f"{v:.0f}" for v in r["milestones"].get("ready", {}).values()) or "-",
    ),
    ("status freshness p50 / p99, s", _ours(_freshness)),
]


def markdown(payload: dict[str, Any]) -> str:
    """The comparison as docs/benchmarks.md shows it: one table per client rate."""
    out = []
    for run_entry in payload["runs"]:
        sides = [run_entry["sides"][k] for k in SIDES if k in run_entry["sides"]]
        loads = ", ".join(f"{la[0]:.1f}" for la in run_entry["loadavg"])
        out.append(
            f"**{payload['settings']['wells']:,} pods, qps {run_entry['qps']:g} / burst "
            f"{run_entry['burst']}** (load average after each cluster: {loads})\n"
        )
        out.append("| | " + " | ".join(f"`{r['side']}`" for r in sides) + " |")
        out.append("| --- |" + " ---: |" * len(sides))
        rows = MARKDOWN_ROWS + (REPEAT_ROWS if any("repeats" in r for r in sides) else [])
        for name, cell in rows:
            out.append(f"| {name} | " + " | ".join(cell(side) for side in sides) + " |")
        out.append("")
        for side, ratios in (run_entry.get("ratios_to_deployment") or {}).items():
            out.append(f"`{side}` / `deployment`, each repeat's pair: " + _ratio_line(ratios))
            out.append("")
    return "\n".join(out)


def _each(key: str, spec: str = ".1f") -> Cell:
    return lambda side: ", ".join(format(r[key], spec) for r in side.get("repeats", [])) or "-"


REPEAT_ROWS: list[tuple[str, Cell]] = [
    ("apply -> all Ready, each repeat, s", _each("time_to_ready_s")),
    ("roll-out, each repeat, s", _each("rollout_time_s")),
    ("max unavailable, each repeat", _each("max_unavailable_seen", ".0f")),
]


def _ratio_line(ratios: dict[str, Any]) -> str:
    parts = []
    for key, what in (("time_to_ready_s", "time to Ready"), ("rollout_time_s", "roll-out")):
        got = ratios.get(key) or {}
        if got.get("each"):
            each = ", ".join(f"{x:.2f}" for x in got["each"])
            parts.append(f"{what} {each} (median **{got['median']:.2f}**)")
    return "; ".join(parts) or "-"
