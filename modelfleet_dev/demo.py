"""`modelfleet demo`: the whole system on one machine, told as a story a new user can follow.

Why this exists: it is the first thing a new user runs, so it must be the truth of the system,
not a scripted show. It starts kubesim (with its simulated kubelet) as a process, installs the
CRD with `kubectl apply`, runs the real operator as a process, builds real per-well bundles
(cached: builds are deterministic), serves them from a local HTTP model store and applies a
ModelDeployment. A few wells run the real `model-runtime` as processes, the others are
simulated by kubesim. Every number on screen is read back from the API, and every step ends
with the real `kubectl get mdep`. With KUBECONFIG set, the same story runs against that
cluster instead (no simulated kubelet there: every pod runs whatever the image runs).
"""

from __future__ import annotations

import contextlib
import json
import os
import shlex
import signal
import tempfile
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from types import FrameType
from typing import Any

import httpx
from rich.console import Console
from rich.markup import escape
from rich.panel import Panel
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TaskID,
    TextColumn,
    TimeElapsedColumn,
)
from rich.table import Table

from modelfleet.logic.planning import resolve_max_unavailable
from modelfleet.logic.wellpod import pod_name
from modelfleet_dev.api_poller import poll
from modelfleet_dev.bundle_cache import CachedBundle, default_cache_dir, ensure_bundles
from modelfleet_dev.demo_fleet import (
    ALL_VERSIONS,
    CANARY_LABEL,
    DEPLOYMENT_NAME,
    MONITORED_VERSION,
    VERSIONS,
    FleetPlan,
    model_deployment,
    version_seed,
)
from modelfleet_dev.demo_monitoring import (
    DRIFT_SD,
    DRIFT_SENSOR,
    PREDICTION_PSI_CHECK,
    PSI_THRESHOLD,
    RUNTIME_PORT,
    WELL_DRIFTING_ALERT,
    Alert,
    LiveFeed,
    alerts,
    firing,
    monitoring_prometheus_config,
    monitoring_spec,
    pod_targets,
    prediction_psi_analysis,
    write_rule_file,
)
from modelfleet_dev.fleet_manifest import MODEL_NAME
from modelfleet_dev.fleet_observer import FleetObserver, FleetSnapshot
from modelfleet_dev.kubectl import Kubectl, kubectl_binary
from modelfleet_dev.local_cluster import (
    CRD_PATH,
    LocalCluster,
    ManagedProcess,
    kubeconfig_server,
    running_local_cluster,
    start_operator,
)
from modelfleet_dev.model_store import ModelStore
from modelfleet_dev.prometheus_server import (
    PROMETHEUS_VERSION,
    BuildError,
    RunningPrometheus,
    Sample,
    cache_dir,
    ensure_installed,
    missing_tools,
    running_prometheus,
)
from runtime_contract import monitoring as contract

#: Two rows of ESP sensor readings (intake/discharge pressure bar, motor temperature C, motor
#: current A, vibration mm/s, frequency Hz, flow m3/d): a healthy pump and a hot, shaky one.
SAMPLE_ROWS = [
    [85.0, 190.0, 95.0, 42.0, 2.5, 55.0, 450.0],
    [84.0, 180.0, 131.0, 55.0, 7.9, 55.0, 310.0],
]
#: The monitoring chapter (its drift, runtime port and PSI threshold are demo_monitoring's, shared
#: with the e2e test): the feed's rate per well, how long the chart's drift alert waits before
#: firing (the chart's default is 15m), the operator's query interval and the canary analysis'
#: cadence. The runtimes keep their default window (1000 rows, 200 minimum).
FEED_ROWS_PER_SECOND = 100.0
ALERT_FOR = "5s"
MONITORING_INTERVAL_SECONDS = 2
ANALYSIS_INTERVAL_SECONDS = 2
ANALYSIS_MEASUREMENTS = 3
ANALYSIS_MIN_ROWS = 200


@dataclass(frozen=True)
class DemoOptions:
    wells: int = 300
    keep: bool = False
    real_wells: int = 3
    fleet_models: int = 1
    real_models: int = 3
    namespace: str = "default"
    max_unavailable: str = "10%"
    progress_deadline_seconds: int = 20
    cache_dir: Path | None = None
    work_dir: Path | None = None
    kubeconfig: str | None = None
    start_operator: bool = True
    build_processes: int | None = None
    monitoring: bool = True


@dataclass
class StepTimes:
    started: float
    marks: list[tuple[str, float]]

    def mark(self, step: str) -> None:
        self.marks.append((step, time.monotonic()))

    def table(self) -> Table:
        table = Table(title="wall time per step", show_header=True)
        table.add_column("step")
        table.add_column("seconds", justify="right")
        previous = self.started
        for step, at in self.marks:
            table.add_row(step, f"{at - previous:.1f}")
            previous = at
        table.add_row("total", f"{previous - self.started:.1f}", style="bold")
        return table


class Story:
    """The demo's narration: headings, commands as a user would type them, their output."""

    def __init__(self, console: Console, kubectl: Kubectl) -> None:
        self.console = console
        self.kubectl = kubectl
        self.step = 0

    def heading(self, title: str) -> None:
        self.step += 1
        self.console.rule(f"[bold]{self.step}. {title}")

    def say(self, text: str) -> None:
        self.console.print(text)

    def command(self, shown: str, output: str) -> None:
        self.console.print(f"[bold cyan]$ {escape(shown)}[/]", highlight=False)
        self.console.print(output.rstrip("\n"), markup=False, highlight=False)

    def kubectl_shown(self, *args: str, stdin: str | None = None) -> str:
        output = self.kubectl.text(*args, stdin=stdin)
        self.command("kubectl " + shlex.join(args), output)
        return output

    def get_mdep(self) -> str:
        return self.kubectl_shown("get", "mdep")


def _progress(console: Console) -> Progress:
    return Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("{task.fields[detail]}"),
        TimeElapsedColumn(),
        console=console,
    )


@contextlib.contextmanager
def _interrupt_on_signals() -> Iterator[None]:
    """SIGTERM unwinds like Ctrl-C, so the same finally blocks stop every process; and SIGINT
    does even when inherited ignored (a shell starts background jobs so, and Python then leaves
    it ignored: `kill -INT` would not stop the demo that says Ctrl-C does)."""

    def raise_interrupt(signum: int, frame: FrameType | None) -> None:
        raise KeyboardInterrupt

    previous = {sig: signal.signal(sig, raise_interrupt) for sig in (signal.SIGTERM, signal.SIGINT)}
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def run_demo(options: DemoOptions, console: Console | None = None) -> int:
    """Run the story; 0 when every step ended as the system promises, 1 otherwise."""
    if console is None:
        console = Console()
        if not console.is_terminal:  # piped to a file: keep kubectl's lines unwrapped
            console = Console(width=max(console.width, 120))
    if kubectl_binary() is None:
        console.print(
            "[red]modelfleet demo needs kubectl[/] on PATH or in $MODELFLEET_KUBECTL (every "
            "step shows real kubectl output); install it: "
            "https://kubernetes.io/docs/tasks/tools/#kubectl"
        )
        return 2
    work_dir = options.work_dir or Path(tempfile.mkdtemp(prefix="modelfleet-demo-"))
    work_dir.mkdir(parents=True, exist_ok=True)
    try:
        with _interrupt_on_signals():
            return _run(options, console, work_dir)
    except KeyboardInterrupt:
        console.print("\n[yellow]interrupted: everything the demo started is stopped[/]")
        return 130


def _run(options: DemoOptions, console: Console, work_dir: Path) -> int:
    plan = FleetPlan.of(
        options.wells, options.real_wells, options.fleet_models, options.real_models
    )
    monitored = _monitoring_chapter_runs(console, options, plan)
    versions = ALL_VERSIONS if monitored else VERSIONS
    times = StepTimes(time.monotonic(), [])
    console.print(
        Panel.fit(
            f"modelfleet demo: {len(plan.wells)} wells, one inference pod each, "
            f"{len(plan.real_wells)} of them running the real model-runtime\n"
            f"work dir (logs, manifests, kubeconfig): {work_dir}",
            title="modelfleet",
        )
    )
    store = ModelStore(MODEL_NAME)
    store.start()
    try:
        bundles = _build_bundles(console, plan, options, versions)
        times.mark("bundles")
        _publish(store, plan, bundles)
        with (
            _cluster(console, options, plan, work_dir) as (kubectl, kubeconfig, metrics_port),
            _prometheus(console, options, plan, kubeconfig, work_dir, monitored) as prometheus,
        ):
            times.mark("cluster" if prometheus is None else "cluster + prometheus")
            story = Story(console, kubectl)
            observer = FleetObserver(kubeconfig, options.namespace, DEPLOYMENT_NAME)
            try:
                ok = _tell(story, observer, plan, bundles, store, options, work_dir, times)
                if prometheus is not None:
                    ok = (
                        _monitor(story, observer, plan, prometheus, options, work_dir, times) and ok
                    )
                story.console.rule("[bold green]done" if ok else "[bold red]done, with failures")
            finally:
                observer.close()
            console.print(times.table())
            if options.keep:
                _keep(console, kubeconfig, options.namespace, metrics_port, prometheus)
            return 0 if ok else 1
    finally:
        store.stop()


def _build_bundles(
    console: Console, plan: FleetPlan, options: DemoOptions, versions: tuple[str, ...]
) -> dict[tuple[str, str], CachedBundle]:
    cache = options.cache_dir or default_cache_dir()
    keys = plan.bundle_keys(versions)
    started = time.monotonic()
    hits = 0
    console.rule("[bold]0. Bundles")
    console.print(
        f"Real bundles (trained, converted to ONNX, parity-checked): {len(plan.wells)} wells x "
        f"{len(versions)} versions; {plan.fleet_models} models per well, {plan.real_models} for "
        f"the real-runtime wells. Cache: {cache}"
    )
    with _progress(console) as progress:
        task = progress.add_task("building bundles", total=len(keys), detail="")

        def report(done: int, total: int, cached: int) -> None:
            nonlocal hits
            hits = cached
            progress.update(task, completed=done, detail=f"{cached} from cache")

        built = ensure_bundles(keys, cache, processes=options.build_processes, progress=report)
    console.print(
        f"{len(built)} bundles ready in {time.monotonic() - started:.1f}s "
        f"({hits} from the cache, {len(built) - hits} built)"
    )
    return {(key.version, key.well): bundle for key, bundle in built.items()}


def _publish(
    store: ModelStore, plan: FleetPlan, bundles: dict[tuple[str, str], CachedBundle]
) -> None:
    """Every bundle at its URI, except one: the version-3 upload of the broken well is a stale
    copy of its version-2 bundle, so its digest is not the one version 3's spec expects."""
    paths = {key: bundle.path for key, bundle in bundles.items()}
    paths[(VERSIONS[2], plan.broken_well)] = bundles[(VERSIONS[1], plan.broken_well)].path
    store.publish(paths)


@contextlib.contextmanager
def _cluster(
    console: Console, options: DemoOptions, plan: FleetPlan, work_dir: Path
) -> Iterator[tuple[Kubectl, Path, int | None]]:
    console.rule("[bold]Cluster")
    if options.kubeconfig:
        kubeconfig = Path(options.kubeconfig)
        console.print(
            f"KUBECONFIG is set: the story runs against {kubeconfig_server(kubeconfig)}.\n"
            "Without kubesim's simulated kubelet every pod runs the image's model-runtime, and "
            "pods must reach the model store on this machine's loopback."
        )
        kubectl = Kubectl(kubeconfig, work_dir / "kubectl-cache", options.namespace)
        _show(console, kubectl, "apply", "-f", str(CRD_PATH))
        kubectl.run("wait", "--for=condition=Established", "crd/modeldeployments.modelfleet.dev")
        operator: ManagedProcess | None = None
        metrics_port: int | None = None
        try:
            if options.start_operator:
                operator, metrics_port = start_operator(
                    kubeconfig, work_dir, namespace=options.namespace
                )
                console.print(f"operator running (pid {operator.pid}), log {operator.log_path}")
            yield kubectl, kubeconfig, metrics_port
            if not options.keep:  # leave someone else's cluster as it was
                _show(console, kubectl, "delete", "mdep", DEPLOYMENT_NAME, "--wait=false")
        finally:
            if operator is not None:
                operator.stop()
        return
    with running_local_cluster(work_dir, run_selector=plan.run_selector()) as cluster:
        _describe_local(console, cluster, plan)
        yield cluster.kubectl, cluster.kubeconfig, cluster.metrics_port


def _describe_local(console: Console, cluster: LocalCluster, plan: FleetPlan) -> None:
    operator_pid = cluster.operator.pid if cluster.operator else "-"
    console.print(
        f"kubesim serving {cluster.url} (pid {cluster.kubesim.pid}); its kubelet runs pods of "
        f"wells {', '.join(plan.real_wells)} as real model-runtime processes and simulates the "
        f"rest.\noperator: `modelfleet operator` (pid {operator_pid}), log "
        f"{cluster.operator.log_path if cluster.operator else '-'}"
    )
    console.print(f"[bold cyan]$ kubectl apply -f {CRD_PATH.relative_to(CRD_PATH.parents[1])}[/]")
    console.print(cluster.crd_applied.rstrip("\n"), markup=False, highlight=False)


def _show(console: Console, kubectl: Kubectl, *args: str) -> str:
    output = kubectl.text(*args)
    console.print(f"[bold cyan]$ kubectl {escape(shlex.join(args))}[/]", highlight=False)
    console.print(output.rstrip("\n"), markup=False, highlight=False)
    return output


def _tell(
    story: Story,
    observer: FleetObserver,
    plan: FleetPlan,
    bundles: dict[tuple[str, str], CachedBundle],
    store: ModelStore,
    options: DemoOptions,
    work_dir: Path,
    times: StepTimes,
) -> bool:
    wells = len(plan.wells)
    budget = resolve_max_unavailable(options.max_unavailable, wells)
    v1, v2, v3 = VERSIONS

    # -- the fleet comes up -----------------------------------------------------------------
    story.heading(f"The fleet comes up on {MODEL_NAME} {v1}")
    manifest = model_deployment(
        name=DEPLOYMENT_NAME,
        namespace=options.namespace,
        wells=plan.wells,
        version=v1,
        bundle_uri=store.uri_template(),
        canary_wells=[plan.canary_well] if plan.canary_well else [],
        max_unavailable=options.max_unavailable,
        progress_deadline_seconds=options.progress_deadline_seconds,
    )
    manifest_path = work_dir / "esp.yaml"
    manifest_path.write_text(json.dumps(manifest, indent=1))
    story.say(
        f"{manifest_path.name}: {wells} wells, bundleUri {store.uri_template()}, "
        f"maxUnavailable {options.max_unavailable} ({budget} wells), progressDeadlineSeconds "
        f"{options.progress_deadline_seconds}, autoRollback"
    )
    story.kubectl_shown("apply", "-f", str(manifest_path))
    _follow(story, observer, "wells available", lambda s: _available_on(s, v1, wells), wells, None)
    story.get_mdep()
    times.mark(f"fleet up ({v1})")

    # -- a real prediction ---------------------------------------------------------------------
    well = plan.real_wells[0] if plan.real_wells else plan.wells[0]
    story.heading(f"A real prediction from well {well} (Open Inference Protocol V2)")
    ok = _predict(story, observer, well, bundles[(v1, well)].digest)
    times.mark("prediction")

    # -- roll-out to version 2 -------------------------------------------------------------
    story.heading(f"Roll-out to {v2} in waves of at most {budget} wells (maxUnavailable)")
    patch = json.dumps({"spec": {"model": {"version": v2}}}, separators=(",", ":"))
    story.kubectl_shown("patch", "mdep", DEPLOYMENT_NAME, "--type", "merge", "-p", patch)
    _, worst = _follow(
        story,
        observer,
        "wells on " + v2,
        lambda s: _available_on(s, v2, wells),
        wells,
        budget,
        count=lambda s: int(s.get("updatedWells") or 0),
        snapshots=True,
    )
    story.get_mdep()
    within = worst <= budget
    ok = ok and within
    story.say(
        f"at most {worst} wells were without a ready pod at any sample "
        f"(budget {budget}): {'[green]within budget[/]' if within else '[red]over budget[/]'}"
    )
    ok = _predict(story, observer, well, bundles[(v2, well)].digest) and ok
    times.mark(f"roll-out ({v2})")

    # -- a broken version 3 ----------------------------------------------------------------
    broken = plan.broken_well
    story.heading(f"A broken {v3}: the bundle uploaded for {broken} is not the one trained")
    digests = {w: bundles[(v3, w)].digest for w in plan.wells}
    story.say(
        f"{v3}'s spec lists the expected digest of every well's bundle; the file served for "
        f"{broken} is a stale copy of {v2} (digest {bundles[(v2, broken)].digest[:19]}..., "
        f"expected {digests[broken][:19]}...)."
    )
    patch_path = work_dir / "esp-v3.json"
    patch_path.write_text(json.dumps({"spec": {"model": {"version": v3, "digests": digests}}}))
    story.kubectl_shown(
        "patch", "mdep", DEPLOYMENT_NAME, "--type", "merge", "--patch-file", str(patch_path)
    )
    invalid, _ = _follow(
        story,
        observer,
        f"{v3}: waiting for the runtime's verdict",
        lambda s: "BundleInvalid" in s.reasons(),
        wells,
        budget,
        count=lambda s: int(s.get("updatedWells") or 0),
        timeout=120,
    )
    for entry in invalid.get("unhealthyWells") or []:
        story.say(f"  unhealthy: {entry['well']} {entry['reason']}: {entry.get('message', '')}")
    story.get_mdep()
    story.say(
        f"The roll-out stalls; after progressDeadlineSeconds ({options.progress_deadline_seconds}s) "
        "without progress the operator declares it Degraded and rolls back."
    )
    final, _ = _follow(
        story,
        observer,
        f"rollback to {v2}",
        lambda s: (
            bool(s.get("rolledBackFrom"))
            and _all_on(s, v2, wells)
            and s.get("availableWells") == wells
            and s.get("updatedWells") == wells
        ),
        wells,
        budget,
        count=lambda s: s.pods_by_version.get(v2, 0),
        timeout=options.progress_deadline_seconds + 120,
    )
    story.get_mdep()
    for kind in ("Available", "Progressing", "Degraded"):
        cond = final.condition(kind)
        story.say(
            f"  {kind:<12} {cond.get('status', '?'):<6} {cond.get('reason', '')}: "
            f"{cond.get('message', '')}"
        )
    story.kubectl_shown(
        "get",
        "events",
        "--field-selector",
        "reason=RolledBack",
        "-o",
        "custom-columns=REASON:.reason,OBJECT:.involvedObject.name,MESSAGE:.message",
    )
    rolled_back = final.get("phase") == "Degraded" and _all_on(final, v2, wells)
    ok = ok and rolled_back
    ok = _predict(story, observer, well, bundles[(v2, well)].digest) and ok
    times.mark(f"broken {v3} + rollback")
    return ok


# -- Functional monitoring ---------------------------------------------------------------------


def _monitoring_chapter_runs(console: Console, options: DemoOptions, plan: FleetPlan) -> bool:
    """Whether the story ends with the monitoring chapter; says why when it does not."""
    if not options.monitoring:
        return False
    if plan.canary_well is None:
        console.print(
            "[yellow]the functional-monitoring chapter needs at least 2 real-runtime wells "
            f"(--real-wells {len(plan.real_wells)}): skipped[/]"
        )
        return False
    if options.kubeconfig and not options.start_operator:
        console.print(
            "[yellow]the functional-monitoring chapter points the operator at a Prometheus on "
            "this machine's loopback, which an operator inside the cluster cannot reach "
            "(--no-operator): skipped[/]"
        )
        return False
    return True


@contextlib.contextmanager
def _prometheus(
    console: Console,
    options: DemoOptions,
    plan: FleetPlan,
    kubeconfig: Path,
    work_dir: Path,
    monitored: bool,
) -> Iterator[RunningPrometheus | None]:
    """A real Prometheus for the monitoring chapter (built the project's way when missing),
    discovering the real-runtime wells' pods through the cluster's API; None without it."""
    if not monitored:
        yield None
        return
    console.rule("[bold]Prometheus")
    if missing_tools():
        console.print(
            f"Prometheus {PROMETHEUS_VERSION} is not installed: building it the way `make "
            f"prometheus` does (Go module cluster/go/prometheus, cached in {cache_dir()}; "
            "several minutes, once)"
        )
    try:
        install = ensure_installed(progress=lambda line: console.print(line, markup=False))
    except BuildError as exc:
        console.print(
            f"[yellow]no Prometheus, so no monitoring chapter:[/] {escape(str(exc))}\n"
            "Install Go (https://go.dev/dl/, or set MODELFLEET_GO) and run `make prometheus`, "
            "or run the demo with --no-monitoring."
        )
        yield None
        return
    rules = write_rule_file(work_dir / "prometheus" / "rules.yaml", {"driftFor": ALERT_FOR})
    config = monitoring_prometheus_config(
        kubeconfig, rules, namespaces=[options.namespace], wells=plan.real_wells
    )
    with running_prometheus(config, work_dir / "prometheus", install=install) as prometheus:
        console.print(
            f"prometheus {PROMETHEUS_VERSION} ({install.prometheus}) serving {prometheus.url}, "
            f"log {prometheus.log_path}"
        )
        yield prometheus


def _psi_table(samples: dict[str, dict[str, Sample]], wells: tuple[str, ...]) -> Table:
    table = Table(title="what Prometheus has of each real-runtime well", show_header=True)
    for column in ("well", "rows in window", "worst feature PSI", "worst prediction PSI"):
        table.add_column(column, justify="left" if column == "well" else "right")
    for well in wells:
        rows = samples["rows"].get(well)
        feature = samples["feature"].get(well)
        prediction = samples["prediction"].get(well)
        table.add_row(
            well,
            f"{rows['value']:.0f}" if rows else "-",
            f"{feature['value']:.3f} ({feature['labels'].get('feature', '?')})" if feature else "-",
            f"{prediction['value']:.3f}" if prediction else "-",
        )
    return table


def _by_well(prometheus: RunningPrometheus, expr: str) -> dict[str, Sample]:
    return {s["labels"].get("well", ""): s for s in prometheus.query(expr)}


def _monitoring_samples(prometheus: RunningPrometheus, fleet: str) -> dict[str, dict[str, Sample]]:
    sel = f'{{fleet="{fleet}"}}'
    return {
        "rows": _by_well(prometheus, contract.WINDOW_ROWS_MIN + sel),
        "feature": _by_well(prometheus, contract.FEATURE_PSI_WORST + sel),
        "prediction": _by_well(prometheus, contract.PREDICTION_PSI_WORST + sel),
    }


def _show_alerts(story: Story, prometheus: RunningPrometheus, found: list[Alert]) -> None:
    story.say(f"GET {prometheus.url}/api/v1/alerts (firing):")
    for alert in found:
        labels = ", ".join(
            f"{k}={v}" for k, v in sorted(alert["labels"].items()) if k not in ("alertname",)
        )
        story.console.print(
            f"  {alert['name']} [{alert['state']}] {{{labels}}}\n    {alert['summary']}",
            markup=False,
            highlight=False,
        )


def _condition_lines(story: Story, snapshot: FleetSnapshot, kinds: tuple[str, ...]) -> None:
    for kind in kinds:
        cond = snapshot.condition(kind)
        story.console.print(
            f"  {kind:<14} {cond.get('status', '?'):<7} {cond.get('reason', '')}: "
            f"{cond.get('message', '')}",
            markup=False,
            highlight=False,
        )


def _monitor(
    story: Story,
    observer: FleetObserver,
    plan: FleetPlan,
    prometheus: RunningPrometheus,
    options: DemoOptions,
    work_dir: Path,
    times: StepTimes,
) -> bool:
    """Chapters 5-7: the fleet watched, a sensor drifting, a version stopped by its canary."""
    canary, drifting = plan.canary_well, plan.drifting_well
    assert canary is not None and drifting is not None  # _monitoring_chapter_runs checked
    wells = len(plan.wells)
    v2, v4 = VERSIONS[1], MONITORED_VERSION
    real = plan.real_wells

    # -- the fleet under watch ----------------------------------------------------------------
    story.heading("Functional monitoring: Prometheus watches what the wells' models see")
    story.say(
        f"Prometheus discovers the pods of the real-runtime wells {', '.join(real)} through the "
        "API (kubernetes_sd_configs, relabelled as the chart's PodMonitor: fleet, well, "
        "namespace, pod) and evaluates the chart's alert rules (driftFor "
        f"{ALERT_FOR} here; 15m by default). kubesim's simulated wells export no /metrics.\n"
        f"The operator reads one query per {MONITORING_INTERVAL_SECONDS}s for the fleet "
        "(spec.monitoring); new versions go to the canary well "
        f"({CANARY_LABEL[0]}={CANARY_LABEL[1]}: {canary}) first, and its prediction PSI must "
        f"stay below {PSI_THRESHOLD} for {ANALYSIS_MEASUREMENTS} measurements "
        "(spec.rollout.analysis)."
    )
    patch = {
        "spec": {
            "monitoring": monitoring_spec(
                prometheus.url, interval_seconds=MONITORING_INTERVAL_SECONDS
            ),
            "rollout": {
                "canary": {"selector": {"matchLabels": dict([CANARY_LABEL])}},
                "analysis": prediction_psi_analysis(
                    threshold=PSI_THRESHOLD,
                    interval_seconds=ANALYSIS_INTERVAL_SECONDS,
                    measurements=ANALYSIS_MEASUREMENTS,
                    min_rows=ANALYSIS_MIN_ROWS,
                ),
            },
        }
    }
    patch_path = work_dir / "esp-monitoring.json"
    patch_path.write_text(json.dumps(patch, indent=2))
    story.command(f"cat {patch_path.name}", patch_path.read_text())
    story.kubectl_shown(
        "patch", "mdep", DEPLOYMENT_NAME, "--type", "merge", "--patch-file", str(patch_path)
    )
    targets = pod_targets(observer.pods(), real, RUNTIME_PORT)
    seed = version_seed(v2)
    story.say(
        f"sensor feed (modelfleet_dev.sensor_feed rows): {FEED_ROWS_PER_SECOND:.0f} rows/s to "
        f"each of {', '.join(f'{w} ({u})' for w, u in sorted(targets.items()))}, drawn from "
        f"the simulated history {v2} was trained on (seed {seed})"
    )
    ok = sorted(targets) == sorted(real)
    with LiveFeed(targets, seed=seed, rate=FEED_ROWS_PER_SECOND) as feed:
        fleet_sel = f'{{fleet="{DEPLOYMENT_NAME}"}}'
        prometheus.wait_for(
            f"{contract.PREDICTION_PSI_WORST}{fleet_sel}",
            lambda v: {s["labels"].get("well") for s in v} >= set(real),
            timeout=120,
        )
        healthy = observer.wait(
            "ModelsHealthy AsExpected, every real-runtime well with a verdict",
            lambda s: _watched(s, "AsExpected", len(real), over_threshold=0),
            timeout=60,
        )
        story.console.print(_psi_table(_monitoring_samples(prometheus, DEPLOYMENT_NAME), real))
        story.kubectl_shown("get", "mdep", "-o", "wide")
        _condition_lines(story, healthy, ("ModelsHealthy",))
        times.mark("monitoring on")

        # -- a sensor drifts ----------------------------------------------------------------
        story.heading(f"Well {drifting}'s motor temperature sensor drifts")
        story.say(
            f"The feed now sends {drifting}'s {DRIFT_SENSOR} {DRIFT_SD:g} standard deviations "
            "high; its window fills with rows its models never saw. Prometheus, every 2 s:"
        )
        feed.drift(drifting, DRIFT_SENSOR, DRIFT_SD)
        started = time.monotonic()
        shown: list[str] = []

        def sample() -> tuple[dict[str, Sample], list[Alert]]:
            return (
                _by_well(prometheus, f"{contract.FEATURE_PSI_WORST}{fleet_sel}"),
                firing(alerts(prometheus), WELL_DRIFTING_ALERT, well=drifting),
            )

        def show(last: tuple[dict[str, Sample], list[Alert]]) -> None:
            psi = last[0].get(drifting)
            if psi is None:
                return
            line = (
                f"  +{time.monotonic() - started:4.0f}s  {contract.FEATURE_PSI_WORST}"
                f'{{well="{drifting}",feature="{psi["labels"].get("feature")}"}} '
                f"{psi['value']:.3f}" + ("   alert firing" if last[1] else "")
            )
            if not shown or line.split("  ", 2)[-1] != shown[-1].split("  ", 2)[-1]:
                shown.append(line)
                story.console.print(line, markup=False, highlight=False)

        _, fired = poll(
            f"{WELL_DRIFTING_ALERT} firing for {drifting}",
            sample,
            lambda last: bool(last[1]),
            timeout=120,
            interval=2.0,
            on_sample=show,
        )
        _show_alerts(story, prometheus, fired)
        drift_seen = observer.wait(
            "ModelsHealthy Drifting",
            lambda s: s.condition("ModelsHealthy").get("reason") == "Drifting",
            timeout=60,
        )
        story.kubectl_shown("get", "mdep", "-o", "wide")
        _condition_lines(story, drift_seen, ("ModelsHealthy",))
        worst = (drift_seen.get("monitoring") or {}).get("worstWells") or []
        for entry in worst[:3]:
            story.say(
                f"  worst: {entry.get('well')} model {entry.get('model')} feature "
                f"{entry.get('feature')} PSI {entry.get('psi')}"
            )
        ok = ok and bool(worst) and worst[0].get("well") == drifting
        times.mark("drift seen")

        # -- a version its canary stops ----------------------------------------------------
        story.heading(f"{v4}: valid bundles, Ready pods, and predictions that do not fit")
        story.say(
            f"{v4} was trained on another simulated history of each well (seed "
            f"{version_seed(v4)}: other operating points). Its bundles load and pass every "
            "check; only the predictions on the canary's live rows say it does not fit."
        )
        version_patch = json.dumps(
            {"spec": {"model": {"version": v4, "digests": None}}}, separators=(",", ":")
        )
        story.kubectl_shown(
            "patch", "mdep", DEPLOYMENT_NAME, "--type", "merge", "-p", version_patch
        )
        final, _ = _follow(
            story,
            observer,
            f"{v4} on the canary {canary}: analysis",
            lambda s: (
                s.observed
                and s.condition("Progressing").get("reason") == "AnalysisFailed"
                and _all_on(s, v2, wells)
            ),
            wells,
            None,
            count=lambda s: s.pods_by_version.get(v2, 0),
            timeout=180,
        )
        story.kubectl_shown("get", "mdep", "-o", "wide")
        _condition_lines(story, final, ("Progressing", "Degraded"))
        analysis = final.get("analysis") or {}
        for result in (analysis.get("results") or [])[:3]:
            story.say(
                f"  analysis {analysis.get('phase')}: {result.get('query')} "
                f"{json.dumps(result.get('labels') or {}, sort_keys=True)} = {result.get('value')} "
                f"({'passed' if result.get('passed') else 'failed'})"
            )
        story.kubectl_shown(
            "get",
            "events",
            "--field-selector",
            "reason=AnalysisFailed",
            "-o",
            "custom-columns=REASON:.reason,OBJECT:.involvedObject.name,MESSAGE:.message",
        )
        back = observer.wait(
            f"the canary's window on {v2} again",
            lambda s: _watched(s, "Drifting", len(real), over_threshold=1),
            timeout=60,
        )
        story.say(
            f"Back on {v2}, the canary's runtime starts a new window; once it holds "
            f"{ANALYSIS_MIN_ROWS} rows its predictions fit again, and only {drifting} drifts:"
        )
        _condition_lines(story, back, ("ModelsHealthy",))
        times.mark(f"{v4} stopped by analysis")

        # -- the sensor is repaired ------------------------------------------------------------
        story.say(
            f"{drifting}'s sensor is repaired (the feed sends its rows as trained again); the "
            "window forgets the drifted rows as new ones come in:"
        )
        feed.drift(drifting, DRIFT_SENSOR, 0.0)
        repaired = observer.wait(
            "ModelsHealthy AsExpected again",
            lambda s: _watched(s, "AsExpected", len(real), over_threshold=0),
            timeout=120,
        )
        resolved = poll(
            f"{WELL_DRIFTING_ALERT} resolved",
            lambda: firing(alerts(prometheus), WELL_DRIFTING_ALERT, well=drifting),
            lambda still: not still,
            timeout=60,
            interval=1.0,
        )
        story.kubectl_shown("get", "mdep", "-o", "wide")
        _condition_lines(story, repaired, ("ModelsHealthy",))
        story.say(
            f"GET {prometheus.url}/api/v1/alerts: {WELL_DRIFTING_ALERT} for {drifting} "
            + ("resolved" if not resolved else "still firing")
        )
        rows_sent = feed.counts().rows_sent
        times.mark("sensor repaired")
    message = final.condition("Progressing").get("message", "")
    stopped = PREDICTION_PSI_CHECK in message and f'well="{canary}"' in message
    story.say(
        f"rows the feed sent: {', '.join(f'{w} {n}' for w, n in sorted(rows_sent.items()))}; "
        f"every pod back on {v2}: "
        + ("[green]yes[/]" if _all_on(final, v2, wells) and stopped else "[red]no[/]")
    )
    return ok and stopped and analysis.get("phase") == "Failed"


def _watched(s: FleetSnapshot, reason: str, reporting: int, *, over_threshold: int) -> bool:
    """ModelsHealthy says `reason`, with `reporting` wells reporting, each with a verdict (none
    below the window's minimum rows), `over_threshold` of them drifting."""
    seen = s.get("monitoring") or {}
    return (
        s.condition("ModelsHealthy").get("reason") == reason
        and seen.get("wellsReporting") == reporting
        and seen.get("wellsInsufficientData", 0) == 0
        and seen.get("wellsOverThreshold") == over_threshold
    )


def _available_on(s: FleetSnapshot, version: str, wells: int) -> bool:
    return (
        s.observed
        and s.get("phase") == "Available"
        and str(s.get("model", "")).endswith("@" + version)
        and s.get("availableWells") == wells
        and s.get("updatedWells") == wells
    )


def _all_on(s: FleetSnapshot, version: str, wells: int) -> bool:
    return s.pods_by_version.get(version, 0) == wells and s.ready_pods == wells


def _follow(
    story: Story,
    observer: FleetObserver,
    what: str,
    done: Any,
    wells: int,
    budget: int | None,
    *,
    count: Any = None,
    snapshots: bool = False,
    timeout: float = 300,
) -> tuple[FleetSnapshot, int]:
    """A progress bar fed by the API until `done`; returns the last snapshot and the most
    wells seen without a ready pod at any one sample."""
    counted = count or (lambda s: int(s.get("availableWells") or 0))
    worst = 0
    next_snapshot = 0.25
    with _progress(story.console) as progress:
        task: TaskID = progress.add_task(what, total=wells, detail="")

        def show(s: FleetSnapshot) -> None:
            nonlocal worst, next_snapshot
            worst = max(worst, s.unavailable)
            # Until the operator has seen the new spec, its counts describe the old one.
            n = counted(s) if s.observed else 0
            detail = f"{s.get('phase', 'Pending')}, ready {s.ready_pods}"
            if budget is not None:
                detail += f", unavailable {s.unavailable} (max {worst}, budget {budget})"
            progress.update(task, completed=n, detail=detail)
            if snapshots and wells and n / wells >= next_snapshot and n < wells:
                next_snapshot += 0.25
                line = story.kubectl.text("get", "mdep", "--no-headers")
                progress.console.print(
                    f"  [dim]kubectl get mdep:[/] {line.strip()}", highlight=False
                )

        snapshot = observer.wait(what, done, timeout, on_snapshot=show)
    return snapshot, worst


def _predict(story: Story, observer: FleetObserver, well: str, expected_digest: str) -> bool:
    pod = pod_name(DEPLOYMENT_NAME, well)
    body = {
        "id": "demo",
        "inputs": [{"name": "sensors", "shape": [2, 7], "datatype": "FP32", "data": SAMPLE_ROWS}],
    }
    story.say(
        f"POST /api/v1/namespaces/{observer.namespace}/pods/{pod}:{RUNTIME_PORT}/proxy/v2/well/infer"
        "  (through the apiserver's pod proxy)"
    )
    try:
        answer = observer.well_infer(pod, RUNTIME_PORT, body)
    except (RuntimeError, httpx.HTTPError) as exc:
        story.say(f"[red]no prediction:[/] {exc}")
        return False
    table = Table(title=f"{well}: failure risk per model ({answer.get('model_version')})")
    table.add_column("model")
    table.add_column("healthy pump", justify="right")
    table.add_column("hot, shaky pump", justify="right")
    for output in answer.get("outputs", []):
        data = output["data"]
        table.add_row(output["name"], f"{data[0]:.3f}", f"{data[1]:.3f}")
    story.console.print(table)
    served = answer.get("bundle_digest")
    match = served == expected_digest
    story.say(
        f"served bundle digest {served}\n"
        f"built bundle digest  {expected_digest}: "
        + ("[green]the same[/]" if match else "[red]DIFFERENT[/]")
    )
    return match


def _keep(
    console: Console,
    kubeconfig: Path,
    namespace: str,
    metrics_port: int | None,
    prometheus: RunningPrometheus | None,
) -> None:
    metrics = (
        f"curl -s http://127.0.0.1:{metrics_port}/metrics | grep modelfleet_"
        if metrics_port
        else ""
    )
    if prometheus is not None:
        metrics += (
            f"\nPrometheus: {prometheus.url} (curl -s {prometheus.url}/api/v1/alerts; "
            f"the feed stopped with the story)"
        )
    console.print(
        Panel.fit(
            f"export KUBECONFIG={kubeconfig}\n"
            "kubectl get mdep\n"
            f"kubectl describe mdep {DEPLOYMENT_NAME}\n"
            "kubectl get pods -l modelfleet.dev/deployment=esp | head\n"
            "kubectl explain modeldeployment.spec.rollout\n"
            f"kubectl patch mdep {DEPLOYMENT_NAME} --type merge -p "
            '\'{"spec":{"rollout":{"paused":true}}}\'\n' + metrics,
            title=f"still running (namespace {namespace}): Ctrl-C stops everything",
        )
    )
    stop = threading.Event()
    while not stop.wait(3600):
        pass


def add_demo_arguments(parser: Any) -> None:
    parser.add_argument(
        "--wells", type=int, default=DemoOptions.wells, help="wells in the fleet (default 300)"
    )
    parser.add_argument(
        "--keep",
        action="store_true",
        help="stay up after the story; print the kubeconfig path to explore with kubectl",
    )
    parser.add_argument(
        "--real-wells",
        type=int,
        default=DemoOptions.real_wells,
        help="wells whose pods run the real model-runtime process (default 3; kubesim only)",
    )
    parser.add_argument(
        "--cache-dir",
        type=Path,
        default=None,
        help="bundle cache (default ~/.cache/modelfleet/bundles)",
    )
    parser.add_argument(
        "--work-dir",
        type=Path,
        default=None,
        help="logs, manifests, kubeconfig (default: a new temp dir)",
    )
    parser.add_argument(
        "--no-monitoring",
        action="store_true",
        help="skip the functional-monitoring chapter (its Prometheus, sensor feed and analysis)",
    )
    parser.add_argument(
        "--no-operator",
        action="store_true",
        help="with KUBECONFIG set: the cluster already runs the operator (e.g. installed with Helm)",
    )


def options_from_args(args: Any) -> DemoOptions:
    return DemoOptions(
        wells=args.wells,
        keep=args.keep,
        real_wells=args.real_wells,
        cache_dir=args.cache_dir,
        work_dir=args.work_dir,
        kubeconfig=os.environ.get("KUBECONFIG") or None,
        start_operator=not args.no_operator,
        monitoring=not args.no_monitoring,
    )


def main_from_args(args: Any) -> int:
    return run_demo(options_from_args(args))


class DemoCommand:
    name = "demo"
    help = "run the whole system locally (kubesim, operator, real bundles) and tell its story"

    def add_arguments(self, parser: Any) -> None:
        add_demo_arguments(parser)

    def run(self, args: Any) -> int:
        return main_from_args(args)


COMMAND = DemoCommand()
