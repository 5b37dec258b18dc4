"""The executor: one action failing, however it fails, fails only its own well; an Event POST
the client retried after its first attempt was stored counts as posted."""

from __future__ import annotations

import dataclasses
import logging
from typing import Any

import pytest

from modelfleet.api.spec import RuntimeSpec
from modelfleet.io.execution import ActionOutcome, FleetExecutor, FleetRef
from modelfleet.io.kube import ClientSettings, KubeApiError
from modelfleet.logic.actions import Action, CreatePod, action_well
from modelfleet.logic.revisions import revision_of, well_target

from .test_planning import make_spec

FLEET = FleetRef("fleet", "esp", "uid-esp")


class RecordingClient:
    """The client's verbs the executor uses for pods and events; `fail` answers AlreadyExists."""

    def __init__(self, fail_events: bool = False) -> None:
        self.settings = ClientSettings()
        self.created: list[dict[str, Any]] = []
        self.fail_events = fail_events

    async def create(self, path: str, resource: str, body: dict[str, Any]) -> dict[str, Any]:
        if resource == "events" and self.fail_events:
            raise KubeApiError(409, "AlreadyExists", f'events "{body["metadata"]["name"]}" exists')
        self.created.append(body)
        return body


async def test_an_action_that_crashes_fails_its_well_and_the_others_go_on() -> None:
    spec = make_spec(3)
    revision = revision_of(spec)
    targets = [well_target(revision, well) for well in spec.wells]
    # A target whose revision has no runtime: building its pod raises KeyError, not an API error.
    broken = dataclasses.replace(targets[1], revision="no-such-revision")
    actions: list[Action] = [CreatePod(targets[0]), CreatePod(broken), CreatePod(targets[2])]
    client = RecordingClient()
    executor = FleetExecutor(client)
    outcomes: dict[str, ActionOutcome] = {}

    def done(action: Action, outcome: ActionOutcome) -> None:
        outcomes[action_well(action)] = outcome

    runtimes: dict[str, RuntimeSpec] = {revision.name: revision.runtime}
    await executor.execute(FLEET, actions, runtimes, {}, on_done=done)
    assert sorted(outcomes) == ["w00000", "w00001", "w00002"], "every action was reported"
    assert outcomes["w00001"].failed
    assert not outcomes["w00000"].failed and not outcomes["w00002"].failed
    assert len(client.created) == 2


async def test_an_event_the_client_already_stored_is_not_reported_lost(
    caplog: pytest.LogCaptureFixture,
) -> None:
    executor = FleetExecutor(RecordingClient(fail_events=True))
    with caplog.at_level(logging.WARNING):
        await executor.post_event(FLEET, "Normal", "RolloutStarted", "rolling out")
    assert "not posted" not in caplog.text
