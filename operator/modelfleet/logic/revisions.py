"""Revisions: a content hash of everything that decides what a well's pod serves.

A revision covers the model section (name, version, bundle URI template, expected digests) and
the runtime section (image, port, resources, env, scheduling). Its data is recorded in an
apps/v1 ControllerRevision so a rollback restores exactly what was served, even after the spec
has moved on. From a revision and a well follows the well's target: which bundle, which pod
template. Pure functions on plain data.
"""

from __future__ import annotations

import functools
import hashlib
import json
from dataclasses import dataclass
from typing import Any

from modelfleet.api.spec import (
    ModelDeploymentSpec,
    ModelSource,
    RuntimeSpec,
    Well,
    render_bundle_uri,
)


def _canonical(obj: Any) -> bytes:
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


def short_hash(obj: Any, length: int = 10) -> str:
    """A stable label-safe hash of JSON data (like a Deployment's pod-template-hash)."""
    return hashlib.sha256(_canonical(obj)).hexdigest()[:length]


@dataclass(frozen=True)
class Revision:
    """One revision of a fleet: its hash and the spec sections it was computed from."""

    name: str
    model: ModelSource
    runtime: RuntimeSpec

    @functools.cached_property
    def template_hash(self) -> str:
        """Hash of the pod template part: a change here recreates pods."""
        return template_hash(self.runtime)

    def data(self) -> dict[str, Any]:
        """What a ControllerRevision stores (its `data` field)."""
        return _revision_data(self.model, self.runtime)

    @classmethod
    def from_data(cls, name: str, data: dict[str, Any]) -> Revision:
        return cls(
            name=name,
            model=ModelSource.model_validate(data["model"]),
            runtime=RuntimeSpec.model_validate(data["runtime"]),
        )


def template_hash(runtime: RuntimeSpec) -> str:
    return short_hash(_revision_data_runtime(runtime))


def _revision_data_runtime(runtime: RuntimeSpec) -> dict[str, Any]:
    return runtime.model_dump(by_alias=True, exclude_none=True, mode="json")


def revision_of(spec: ModelDeploymentSpec) -> Revision:
    """The revision a spec asks for. Wells and the roll-out policy are not part of it."""
    name = short_hash(_revision_data(spec.model, spec.runtime))
    return Revision(name=name, model=spec.model, runtime=spec.runtime)


def _revision_data(model: ModelSource, runtime: RuntimeSpec) -> dict[str, Any]:
    return {
        "model": model.model_dump(by_alias=True, exclude_none=True, mode="json"),
        "runtime": _revision_data_runtime(runtime),
    }


@dataclass(frozen=True)
class WellTarget:
    """What one well's pod should look like and serve."""

    well: str
    revision: str
    template_hash: str
    version: str
    bundle_uri: str
    bundle_digest: str | None


def well_target(revision: Revision, well: Well) -> WellTarget:
    """A pinned well keeps its pinned version (and has no expected digest in this revision)."""
    version = well.pin or revision.model.version
    digests = revision.model.digests or {}
    digest = None if well.pin and well.pin != revision.model.version else digests.get(well.id)
    return WellTarget(
        well=well.id,
        revision=revision.name,
        template_hash=revision.template_hash,
        version=version,
        bundle_uri=render_bundle_uri(revision.model.bundle_uri, well=well.id, version=version),
        bundle_digest=digest,
    )
