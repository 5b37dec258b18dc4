"""A pure model of the cluster and the runtimes, for planner tests without any server.

It applies plan actions to pod facts the way the apiserver, the kubelet and the runtime would:
created pods start Pending, a kubelet tick makes chosen pods run, deleted pods vanish on the
next tick. A started runtime loads its annotated bundle in `runtime_load_seconds` (0: at once)
and only then passes its readiness probe (containers ready); one that refuses its bundle (a URI
in `bad_uris`, a digest that does not match) never does, and one whose bundle store hangs (a
URI in `hung_uris`) never answers. ConfirmBundle records what the runtime answers: nothing
while it is still loading, BundleInvalid for a refusal. `confirms` counts the reads per well.
"""

from __future__ import annotations

import dataclasses
import hashlib
from collections import Counter
from collections.abc import Iterable, Mapping

from modelfleet.api.spec import ModelDeploymentSpec
from modelfleet.logic.actions import Action, ConfirmBundle, CreatePod, DeletePod, RetargetPod
from modelfleet.logic.availability import is_available
from modelfleet.logic.planning import FleetInput, FleetPlan, RolloutState, plan_fleet
from modelfleet.logic.revisions import Revision, revision_of
from modelfleet.logic.wellpod import BundleReport, WellPod, served_message


def digest_of(uri: str) -> str:
    return "sha256:" + hashlib.sha256(uri.encode()).hexdigest()


class FleetModel:
    def __init__(self, spec: ModelDeploymentSpec, *, name: str = "esp") -> None:
        self.name = name
        self.spec = spec
        self.pods: dict[str, WellPod] = {}
        self.now = 1000.0
        self.state = RolloutState()
        self.revisions: dict[str, Revision] = {}
        self.bad_uris: set[str] = set()
        self.hung_uris: set[str] = set()
        self.runtime_load_seconds = 0.0
        self.confirms: Counter[str] = Counter()
        self.last_plan: FleetPlan | None = None
        self._uid = 0

    # ------------------------------------------------------------------ planning
    def plan(self, in_flight: Mapping[str, Action] | None = None) -> FleetPlan:
        update = revision_of(self.spec)
        self.revisions.setdefault(update.name, update)
        current = self.revisions.get(self.state.current_revision or "")
        wells = {w.id for w in self.spec.wells}
        plan = plan_fleet(
            FleetInput(
                wells=self.spec.wells,
                update=update,
                current=current,
                policy=self.spec.rollout,
                state=self.state,
                pods={w: p for w, p in self.pods.items() if w in wells},
                stray_pods=[p for w, p in self.pods.items() if w not in wells],
                now=self.now,
                in_flight=in_flight or {},
            )
        )
        self.state = plan.state
        self.last_plan = plan
        return plan

    # ------------------------------------------------------------------ execution
    def apply(self, actions: Iterable[Action]) -> None:
        for action in actions:
            if isinstance(action, CreatePod):
                assert action.target.well not in self.pods, (
                    f"duplicate pod for {action.target.well}"
                )
                t = action.target
                self._uid += 1
                self.pods[t.well] = WellPod(
                    name=f"{self.name}-{t.well}",
                    uid=str(self._uid),
                    well=t.well,
                    revision=t.revision,
                    template_hash=t.template_hash,
                    bundle_uri=t.bundle_uri,
                    bundle_digest=t.bundle_digest,
                    version=t.version,
                    deleting=False,
                    phase="Pending",
                    pod_ip=None,
                    ready=False,
                    ready_since=None,
                    containers_ready=False,
                    started_at=None,
                    bundle=None,
                    problem=None,
                )
            elif isinstance(action, DeletePod):
                pod = self.pods[action.well]
                assert pod.uid == action.uid
                self.pods[action.well] = dataclasses.replace(pod, deleting=True, ready=False)
            elif isinstance(action, RetargetPod):
                pod = self.pods[action.target.well]
                t = action.target
                self.pods[t.well] = dataclasses.replace(
                    pod,
                    revision=t.revision,
                    bundle_uri=t.bundle_uri,
                    bundle_digest=t.bundle_digest,
                    version=t.version,
                )
            elif isinstance(action, ConfirmBundle):
                self._confirm(action)

    def accepts(self, uri: str, digest: str | None) -> bool:
        """The runtime loads this bundle (and this digest, if one is expected)."""
        refused = uri in self.bad_uris or uri in self.hung_uris
        return not refused and digest in (None, digest_of(uri))

    def _loading(self, pod: WellPod) -> bool:
        """The runtime is still busy with its start-up load: it has nothing to report."""
        if pod.started_at is None or pod.bundle_uri in self.hung_uris:
            return True
        return not pod.containers_ready and self.now - pod.started_at < self.runtime_load_seconds

    def _confirm(self, action: ConfirmBundle) -> None:
        pod = self.pods[action.well]
        self.confirms[action.well] += 1
        if self._loading(pod):
            return
        if action.uri in self.bad_uris:
            report = BundleReport(
                "False", "BundleInvalid", "digest mismatch", self.now, None, action.uri
            )
            pod = dataclasses.replace(pod, bundle=report, ready=False, ready_since=None)
        else:
            digest = digest_of(action.uri)
            if action.digest is not None and action.digest != digest:
                report = BundleReport(
                    "False", "BundleInvalid", "digest mismatch", self.now, None, action.uri
                )
            else:
                report = BundleReport(
                    "True",
                    "BundleServed",
                    served_message(digest, action.uri),
                    self.now,
                    digest,
                    action.uri,
                )
            ready = pod.containers_ready and report.status == "True"
            pod = dataclasses.replace(
                pod,
                bundle=report,
                ready=ready,
                ready_since=(pod.ready_since or self.now) if ready else None,
            )
        self.pods[action.well] = pod

    def tick(self, seconds: float = 1.0, run: Iterable[str] | None = None) -> None:
        """The kubelet: removes deleted pods, starts the chosen (default: all) pending pods."""
        self.now += seconds
        chosen = set(run) if run is not None else None
        for well, pod in list(self.pods.items()):
            if pod.deleting:
                del self.pods[well]
            elif pod.phase == "Pending" and (chosen is None or well in chosen):
                started = dataclasses.replace(
                    pod, phase="Running", pod_ip="127.1.0.1", started_at=self.now
                )
                self.pods[well] = self._probed(started)
            elif pod.phase == "Running" and not pod.containers_ready:
                self.pods[well] = self._probed(pod)

    def _probed(self, pod: WellPod) -> WellPod:
        """The kubelet's readiness probe: it passes once the runtime has loaded its bundle."""
        assert pod.started_at is not None
        loaded = self.now - pod.started_at >= self.runtime_load_seconds
        if loaded and self.accepts(pod.bundle_uri, pod.bundle_digest):
            return dataclasses.replace(pod, containers_ready=True)
        return pod

    def step(self, run: Iterable[str] | None = None) -> FleetPlan:
        plan = self.plan()
        self.apply(plan.actions)
        self.tick(run=run)
        return plan

    # ------------------------------------------------------------------ observation
    def unavailable(self) -> int:
        mr = self.spec.rollout.min_ready_seconds
        return sum(not is_available(self.pods.get(w.id), self.now, mr) for w in self.spec.wells)

    def converge(self, max_steps: int = 10_000) -> int:
        for i in range(max_steps):
            plan = self.step()
            if not plan.actions and plan.complete:
                return i
        raise AssertionError(f"no convergence in {max_steps} steps: {self.last_plan}")
