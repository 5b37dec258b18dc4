"""What the control loop needs from the API, as a protocol: the io layer's FleetExecutor is the
real one; tests drive the cache, the gatherer and the worker with a fake one and a fake clock."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any, Protocol

from modelfleet.api.spec import RuntimeSpec
from modelfleet.io.execution import ActionOutcome, FleetRef
from modelfleet.logic.actions import Action
from modelfleet.logic.revisions import Revision
from modelfleet.logic.wellpod import WellPod

Clock = Callable[[], float]


class ApiExecutor(Protocol):
    async def execute(
        self,
        fleet: FleetRef,
        actions: Sequence[Action],
        runtime: Mapping[str, RuntimeSpec],
        pods: Mapping[str, WellPod],
        on_done: Callable[[Action, ActionOutcome], None],
    ) -> None: ...

    async def ensure_service(self, fleet: FleetRef, port: int) -> None: ...

    async def list_revisions(self, fleet: FleetRef) -> dict[str, dict[str, Any]]: ...

    async def record_revision(
        self, fleet: FleetRef, revision: Revision, number: int
    ) -> dict[str, Any]: ...

    async def delete_revision(self, fleet: FleetRef, name: str) -> None: ...

    async def write_status(self, fleet: FleetRef, status: Mapping[str, Any]) -> dict[str, Any]: ...

    async def post_event(self, fleet: FleetRef, etype: str, reason: str, message: str) -> None: ...

    async def read_config_map(self, namespace: str, name: str) -> dict[str, Any] | None:
        """The ConfigMap, or None if it does not exist."""
        ...
