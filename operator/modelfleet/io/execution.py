"""Carrying a plan out: the API writes for one ModelDeployment, concurrent and bounded.

Nothing here decides anything: the planner chose the actions. Each write's answer (the object
as stored) is handed back so the caller's pod cache is ahead of the watch and the next plan
does not repeat a write whose event has not arrived yet. Benign races (a pod already created,
already gone, replaced under us) are absorbed: the next observation tells the truth.
"""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

from modelfleet.api.spec import GROUP, KIND, VERSION, RuntimeSpec
from modelfleet.io.kube import KubeApiError, KubeClient, namespaced
from modelfleet.logic.actions import (
    Action,
    ConfirmBundle,
    CreatePod,
    DeletePod,
    RetargetPod,
    action_well,
)
from modelfleet.logic.fleet_status import rfc3339
from modelfleet.logic.revisions import Revision
from modelfleet.logic.wellpod import (
    BUNDLE_CONDITION,
    LABEL_DEPLOYMENT,
    LABEL_REVISION,
    WellPod,
    desired_pod,
    headless_service,
    owner_reference,
    refused_message,
    served_message,
    target_metadata_patch,
)
from runtime_contract import BUNDLE_LOAD_PATH, SERVER_METADATA_PATH, GateReason, LoadFailureReason

logger = logging.getLogger("modelfleet.io.execution")


@dataclass(frozen=True)
class FleetRef:
    namespace: str
    name: str
    uid: str


@dataclass
class ActionOutcome:
    """What came of one action, handed to the caller as soon as it is known."""

    stored: list[dict[str, Any]]  # pod bodies as the apiserver answered
    gone: list[str]  # well ids whose pod no longer exists
    inconclusive: int = 0  # bundle confirmations to retry soon
    failed: bool = False  # an API error other than a benign race (logged)


class FleetExecutor:
    def __init__(
        self,
        client: KubeClient,
        clock: Callable[[], float] = time.time,
        in_flight: int | None = None,
    ) -> None:
        self.client = client
        self.clock = clock
        # A little above the client's concurrency, so its slots never wait for a body.
        self.in_flight = in_flight or 2 * client.settings.concurrency
        self._in_flight = asyncio.Semaphore(self.in_flight)

    async def execute(
        self,
        fleet: FleetRef,
        actions: Sequence[Action],
        runtime: Mapping[str, RuntimeSpec],
        pods: Mapping[str, WellPod],
        on_done: Callable[[Action, ActionOutcome], None],
    ) -> None:
        """Run the actions concurrently, at most `in_flight` at a time across all calls; each
        action's outcome goes to `on_done` as soon as it is known, so the caller acts on one
        well without waiting for the other 9,999.

        Bounded here, not only in the client: the client's own limit is taken after a request
        body is built, so 10,000 actions started at once held 10,000 pod bodies (and then
        10,000 answers) in memory. One action failing, however it fails, fails only its well.
        """
        pending = iter(actions)

        async def worker() -> None:
            for action in pending:
                one = ActionOutcome(stored=[], gone=[])
                async with self._in_flight:
                    try:
                        await self._one(fleet, action, runtime, pods, one)
                    except KubeApiError as exc:
                        logger.warning(
                            "%s/%s: %s failed: %s",
                            fleet.namespace,
                            fleet.name,
                            type(action).__name__,
                            exc,
                        )
                        one.failed = True
                    except Exception:  # a bug or an unexpected answer: this well only
                        logger.exception(
                            "%s/%s: %s for well %s crashed",
                            fleet.namespace,
                            fleet.name,
                            type(action).__name__,
                            action_well(action),
                        )
                        one.failed = True
                    if one.failed and isinstance(action, ConfirmBundle):
                        one.inconclusive += 1
                on_done(action, one)

        workers = max(1, min(self.in_flight, len(actions)))
        await asyncio.gather(*(worker() for _ in range(workers)))

    async def _one(
        self,
        fleet: FleetRef,
        action: Action,
        runtime: Mapping[str, RuntimeSpec],
        pods: Mapping[str, WellPod],
        result: ActionOutcome,
    ) -> None:
        ns = fleet.namespace
        if isinstance(action, CreatePod):
            body = desired_pod(
                deployment=fleet.name,
                deployment_uid=fleet.uid,
                target=action.target,
                runtime=runtime[action.target.revision],
            )
            try:
                result.stored.append(
                    await self.client.create(namespaced("v1", ns, "pods"), "pods", body)
                )
            except KubeApiError as exc:
                if not exc.already_exists:
                    raise
        elif isinstance(action, DeletePod):
            try:
                answer = await self.client.delete(
                    namespaced("v1", ns, "pods", action.name), "pods", uid=action.uid
                )
            except KubeApiError as exc:
                if exc.not_found or exc.conflict:  # already gone, or replaced meanwhile
                    result.gone.append(action.well)
                    return
                raise
            if isinstance(answer, dict) and answer.get("kind") == "Pod":
                result.stored.append(answer)
            else:
                result.gone.append(action.well)
        elif isinstance(action, RetargetPod):
            try:
                result.stored.append(
                    await self.client.merge_patch(
                        namespaced("v1", ns, "pods", action.name),
                        "pods",
                        target_metadata_patch(action.target, swaps_bundle=action.swaps_bundle),
                    )
                )
            except KubeApiError as exc:
                if not exc.not_found:
                    raise
        else:
            stored = await self._confirm(fleet, action, runtime, pods)
            if stored is None:
                result.inconclusive += 1
            else:
                result.stored.append(stored)

    async def _confirm(
        self,
        fleet: FleetRef,
        action: ConfirmBundle,
        runtime: Mapping[str, RuntimeSpec],
        pods: Mapping[str, WellPod],
    ) -> dict[str, Any] | None:
        """Learn which bundle the pod's runtime serves (through the apiserver's pod proxy) and
        record it in the pod's readiness-gate condition.

        A pod with no verdict yet (just created) loads its annotated bundle by itself at start,
        so reading its server metadata (GET /v2: a read, not a write) is enough. A pod whose
        annotations moved on (an in-place swap), or whose runtime reports another bundle, is
        asked to load it (POST .../bundle/load, idempotent): the downward-API file would reach
        it only at the kubelet's next sync, tens of seconds later.
        """
        pod = pods[action.well]
        rt = runtime.get(pod.revision)
        port = rt.port if rt is not None else RuntimeSpec().port
        proxy = namespaced("v1", fleet.namespace, "pods", f"{action.name}:{port}") + "/proxy"
        verdict: Verdict | Literal["nudge"] | None = "nudge"
        if pod.bundle is None:
            code, answer = await self.client.proxy_get(proxy + SERVER_METADATA_PATH)
            verdict = verdict_from_metadata(code, answer, action)
        if verdict == "nudge":
            code, answer = await self.client.proxy_post(
                proxy + BUNDLE_LOAD_PATH, {"uri": action.uri, "digest": action.digest}
            )
            verdict = verdict_from_load(code, answer, action)
        if not isinstance(verdict, tuple):
            logger.debug("bundle of %s not confirmed yet (%s): %s", action.name, code, answer)
            return None
        status, reason, message = verdict
        now = rfc3339(self.clock())
        previous = pod.bundle.status if pod.bundle else None
        condition = {
            "type": BUNDLE_CONDITION,
            "status": status,
            "reason": reason,
            "message": message,
            "lastProbeTime": now,
        }
        if previous != status:
            condition["lastTransitionTime"] = now
        try:
            return await self.client.strategic_patch(
                namespaced("v1", fleet.namespace, "pods", action.name) + "/status",
                "pods/status",
                {"status": {"conditions": [condition]}},
            )
        except KubeApiError as exc:
            if exc.not_found:
                return None
            raise

    # --------------------------------------------------------------------- fleet-level objects
    async def ensure_service(self, fleet: FleetRef, port: int) -> None:
        path = namespaced("v1", fleet.namespace, "services", fleet.name)
        try:
            await self.client.get(path, "services")
            return
        except KubeApiError as exc:
            if not exc.not_found:
                raise
        try:
            await self.client.create(
                namespaced("v1", fleet.namespace, "services"),
                "services",
                headless_service(fleet.name, fleet.uid, port),
            )
        except KubeApiError as exc:
            if not exc.already_exists:
                raise

    async def list_revisions(self, fleet: FleetRef) -> dict[str, dict[str, Any]]:
        items = await self.client.list(
            namespaced("apps/v1", fleet.namespace, "controllerrevisions"),
            "controllerrevisions",
            label_selector=f"{LABEL_DEPLOYMENT}={fleet.name}",
        )
        owned = {}
        for item in items:
            refs = item.get("metadata", {}).get("ownerReferences") or []
            if any(r.get("uid") == fleet.uid for r in refs):
                owned[item["metadata"]["labels"][LABEL_REVISION]] = item
        return owned

    async def record_revision(
        self, fleet: FleetRef, revision: Revision, number: int
    ) -> dict[str, Any]:
        body: dict[str, Any] = {
            "apiVersion": "apps/v1",
            "kind": "ControllerRevision",
            "metadata": {
                "name": f"{fleet.name}-{revision.name}",
                "labels": {LABEL_DEPLOYMENT: fleet.name, LABEL_REVISION: revision.name},
                "ownerReferences": [owner_reference(fleet.name, fleet.uid)],
            },
            "data": revision.data(),
            "revision": number,
        }
        path = namespaced("apps/v1", fleet.namespace, "controllerrevisions")
        try:
            return await self.client.create(path, "controllerrevisions", body)
        except KubeApiError as exc:
            if not exc.already_exists:
                raise
            return await self.client.get(
                f"{path}/{body['metadata']['name']}", "controllerrevisions"
            )

    async def delete_revision(self, fleet: FleetRef, name: str) -> None:
        try:
            await self.client.delete(
                namespaced("apps/v1", fleet.namespace, "controllerrevisions", name),
                "controllerrevisions",
            )
        except KubeApiError as exc:
            if not exc.not_found:
                raise

    async def read_config_map(self, namespace: str, name: str) -> dict[str, Any] | None:
        try:
            return await self.client.get(
                namespaced("v1", namespace, "configmaps", name), "configmaps"
            )
        except KubeApiError as exc:
            if not exc.not_found:
                raise
            return None

    async def write_status(self, fleet: FleetRef, status: Mapping[str, Any]) -> dict[str, Any]:
        return await self.client.merge_patch(
            namespaced(f"{GROUP}/{VERSION}", fleet.namespace, "modeldeployments", fleet.name)
            + "/status",
            "modeldeployments/status",
            {"status": status},
        )

    async def post_event(self, fleet: FleetRef, etype: str, reason: str, message: str) -> None:
        now = rfc3339(self.clock())
        body = {
            "apiVersion": "v1",
            "kind": "Event",
            "metadata": {
                "name": f"{fleet.name}.{uuid.uuid4().hex[:16]}",
                "namespace": fleet.namespace,
            },
            "involvedObject": {
                "apiVersion": f"{GROUP}/{VERSION}",
                "kind": KIND,
                "name": fleet.name,
                "namespace": fleet.namespace,
                "uid": fleet.uid,
            },
            "reason": reason,
            "message": message[:1024],
            "type": etype,
            "source": {"component": "modelfleet-operator"},
            "reportingComponent": "modelfleet.dev/operator",
            "firstTimestamp": now,
            "lastTimestamp": now,
            "count": 1,
        }
        try:
            await self.client.create(namespaced("v1", fleet.namespace, "events"), "events", body)
        except KubeApiError as exc:  # an event lost is not worth failing a reconcile
            if exc.already_exists:
                # The client retried a POST whose first attempt was stored (a timeout or a
                # 5xx after the write): the name is this call's own, so that is our Event.
                return
            logger.warning(
                "event %s for %s/%s not posted: %s", reason, fleet.namespace, fleet.name, exc
            )


# ------------------------------------------------------------------------------ bundle verdicts

#: (gate condition status, reason, message) to record for a pod's bundle.
Verdict = tuple[str, str, str]


def _served(bundle: Mapping[str, Any]) -> Verdict:
    message = served_message(str(bundle.get("digest") or ""), str(bundle.get("uri")))
    return "True", GateReason.BUNDLE_SERVED, message


def _refused(uri: str, reason: LoadFailureReason, error: Any) -> Verdict:
    return "False", GateReason.for_failure(reason), refused_message(uri, str(error or ""))


def _serving(bundle: Any, action: ConfirmBundle) -> dict[str, Any] | None:
    """The runtime's bundle report when it is the action's bundle (and digest, if expected)."""
    if (
        isinstance(bundle, dict)
        and bundle.get("uri") == action.uri
        and (not action.digest or bundle.get("digest") == action.digest)
    ):
        return bundle
    return None


def verdict_from_metadata(
    code: int, answer: Any, action: ConfirmBundle
) -> Verdict | Literal["nudge"] | None:
    """What a runtime's server metadata (GET /v2) says about the pod's annotated bundle.

    None: no answer yet (unreachable, or still loading its first bundle): ask again later.
    "nudge": it serves or last tried another bundle: ask it to load this one.
    """
    if code != 200 or not isinstance(answer, dict):
        return None
    bundle, last = answer.get("bundle"), answer.get("lastLoad")
    serving = _serving(bundle, action)
    if serving is not None:
        return _served(serving)
    # Every load-failure reason is a verdict on the bundle, not a failure to reach the pod.
    if isinstance(last, dict) and last.get("uri") == action.uri and not last.get("ok"):
        reason = LoadFailureReason.parse(last.get("reason"))
        if reason is not None:
            return _refused(action.uri, reason, last.get("error"))
    if bundle is None and last is None:
        return None
    return "nudge"


def verdict_from_load(code: int, answer: Any, action: ConfirmBundle) -> Verdict | None:
    """What a runtime's answer to a load request says; None: ask again later."""
    if code == 200 and isinstance(answer, dict) and isinstance(answer.get("bundle"), dict):
        serving = _serving(answer["bundle"], action)
        # Answered about another bundle (a newer request won): ask again later.
        return _served(serving) if serving is not None else None
    # The API server's own refusals (kind Status) carry reasons too, none of them the runtime's.
    if isinstance(answer, dict) and answer.get("kind") != "Status":
        reason = LoadFailureReason.parse(answer.get("reason"))
        if reason is not None:
            return _refused(action.uri, reason, answer.get("error"))
    return None
