"""ModelDeployment manifests for tests, the demo and the benchmarks, built from the product's
own spec models.

Why this exists: every harness creates fleets; building them through `ModelDeploymentSpec`
(rather than each writing its own dict) means a manifest that the CRD would refuse fails here,
with pydantic naming the field, and a renamed field is renamed everywhere at once. The manifest
holds only what the caller set (the operator applies the defaults), in the wire's camelCase, as
`kubectl apply -f` and a POST take it.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any, TypedDict

from modelfleet.api.spec import (
    ConfigMapRef,
    ModelDeployment,
    ModelDeploymentSpec,
    ModelSource,
    RolloutPolicy,
    RuntimeSpec,
    Well,
)

#: The model family every harness fleet serves (the demo's ESP failure models).
MODEL_NAME = "esp-failure"


class ObjectMeta(TypedDict, total=False):
    name: str
    namespace: str


class ModelDeploymentManifest(TypedDict):
    """A ModelDeployment as JSON; `spec` holds the camelCase fields the caller set."""

    apiVersion: str
    kind: str
    metadata: ObjectMeta
    spec: dict[str, Any]


def file_bundle_uri(root: Path) -> str:
    """The bundle URI template of bundles laid out as <root>/<version>/<well> on local disk."""
    return f"file://{root}/{{version}}/{{well}}"


def model_deployment(
    name: str,
    *,
    version: str,
    bundle_uri: str,
    wells: Iterable[str | Well] | None = (),
    namespace: str | None = "default",
    model: str = MODEL_NAME,
    digests: Mapping[str, str] | None = None,
    wells_from: Sequence[str] = (),
    digests_from: Sequence[str] = (),
    rollout: RolloutPolicy | None = None,
    runtime: RuntimeSpec | None = None,
) -> ModelDeploymentManifest:
    """The manifest of one fleet: `wells` are ids or `Well`s (None leaves spec.wells out, for a
    fleet whose wells all come from ConfigMaps named in `wells_from`)."""
    source: dict[str, Any] = {"name": model, "version": version, "bundle_uri": bundle_uri}
    if digests is not None:
        source["digests"] = dict(digests)
    if digests_from:
        source["digests_from"] = [ConfigMapRef(config_map=n) for n in digests_from]
    spec: dict[str, Any] = {"model": ModelSource(**source)}
    if wells is not None:
        spec["wells"] = [Well(id=w) if isinstance(w, str) else w for w in wells]
    if wells_from:
        spec["wells_from"] = [ConfigMapRef(config_map=n) for n in wells_from]
    if rollout is not None:
        spec["rollout"] = rollout
    if runtime is not None:
        spec["runtime"] = runtime
    metadata: ObjectMeta = {"name": name}
    if namespace is not None:
        metadata["namespace"] = namespace
    resource = ModelDeployment(
        api_version="modelfleet.dev/v1alpha1",
        kind="ModelDeployment",
        metadata=dict(metadata),
        spec=ModelDeploymentSpec(**spec),
    )
    body = resource.model_dump(mode="json", by_alias=True, exclude_unset=True, exclude_none=True)
    return ModelDeploymentManifest(
        apiVersion=body["apiVersion"], kind=body["kind"], metadata=metadata, spec=body["spec"]
    )
