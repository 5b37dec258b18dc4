"""The demo's fleet as data: well ids, bundle keys, the ModelDeployment manifest. Pure.

Why this exists: the demo and the e2e suite tell the same story (a fleet on version 1, a
roll-out to version 2, a broken version 3, then with monitoring on a version 4 that its canary's
analysis stops), so the fleet they create is defined once, here,
with no I/O: what wells exist, which of them run the real runtime, which bundles each needs,
and the manifest applied with kubectl.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass

from modelfleet.api.spec import (
    ResourceList,
    ResourceRequirements,
    RolloutPolicy,
    RuntimeSpec,
    Well,
)
from modelfleet_dev import fleet_manifest
from modelfleet_dev.bundle_cache import BundleKey
from modelfleet_dev.fleet_manifest import MODEL_NAME, ModelDeploymentManifest

DEPLOYMENT_NAME = "esp"
VERSIONS = ("1.0.0", "2.0.0", "3.0.0")
MONITORED_VERSION = "4.0.0"
"""The monitoring chapter's version: trained on another simulated history of each well."""
ALL_VERSIONS = (*VERSIONS, MONITORED_VERSION)
CANARY_LABEL = ("ring", "canary")
"""The well label the monitoring chapter's rollout.canary.selector picks the canary by."""
COUNTRIES = ("no", "nl", "dk")


def well_ids(count: int) -> list[str]:
    """no-0001, nl-0002, dk-0003, no-0004...: ids carry their country, as field names do."""
    return [f"{COUNTRIES[i % len(COUNTRIES)]}-{i + 1:04d}" for i in range(count)]


def country_of(well: str) -> str:
    return well.split("-", 1)[0]


def version_seed(version: str) -> int:
    """Each version is trained with its own seed, so versions differ in their models. The seed
    also draws each well's simulated history (its operating point), so live rows drawn with one
    version's seed look like that version's reference data and not like another's."""
    return ALL_VERSIONS.index(version) + 1 if version in ALL_VERSIONS else 0


@dataclass(frozen=True)
class FleetPlan:
    """Which wells exist, which run the real runtime, and how many models each bundle has."""

    wells: tuple[str, ...]
    real_wells: tuple[str, ...]
    fleet_models: int = 1
    real_models: int = 3

    @classmethod
    def of(
        cls, wells: int, real_wells: int = 3, fleet_models: int = 1, real_models: int = 3
    ) -> FleetPlan:
        if wells < 1:
            raise ValueError(f"--wells must be at least 1, got {wells}")
        ids = well_ids(wells)
        # The last wells run the real runtime: kubesim hands out pod IPs in creation order
        # from 127.1.0.1 in every instance, so the first IPs are the ones most likely to be
        # taken by another kubesim on the same host (see the kubesim note in docs/tour.md).
        real = ids[len(ids) - min(real_wells, wells) :] if real_wells > 0 else []
        return cls(tuple(ids), tuple(real), fleet_models, real_models)

    def models_for(self, well: str) -> int:
        return self.real_models if well in self.real_wells else self.fleet_models

    def bundle_keys(self, versions: Sequence[str] = VERSIONS) -> list[BundleKey]:
        return [
            BundleKey(well, version, self.models_for(well), version_seed(version))
            for version in versions
            for well in self.wells
        ]

    def run_selector(self) -> str:
        """kubesim's kubelet runs pods of these wells as real `model-runtime` processes."""
        return f"modelfleet.dev/well in ({','.join(self.real_wells)})"

    @property
    def broken_well(self) -> str:
        """The well whose version-3 upload is wrong: a real-runtime well when there is one,
        so the refusal comes from the real runtime's digest check."""
        return self.real_wells[1] if len(self.real_wells) > 1 else self.wells[0]

    @property
    def canary_well(self) -> str | None:
        """The monitoring chapter's canary: a real-runtime well (its runtime measures)."""
        return self.real_wells[0] if len(self.real_wells) > 1 else None

    @property
    def drifting_well(self) -> str | None:
        """The well whose sensor drifts in the monitoring chapter: not the canary."""
        return self.real_wells[-1] if len(self.real_wells) > 1 else None


def model_deployment(
    *,
    name: str,
    namespace: str,
    wells: Sequence[str],
    version: str,
    bundle_uri: str,
    digests: Mapping[str, str] | None = None,
    pins: Mapping[str, str] | None = None,
    canary_wells: Collection[str] = (),
    max_unavailable: int | str = "10%",
    progress_deadline_seconds: int = 20,
) -> ModelDeploymentManifest:
    """The demo's ModelDeployment: each well labelled with its country (and `ring: canary` for
    `canary_wells`), small pod requests, automatic rollback after a short progress deadline."""
    pinned = pins or {}

    def labels(well: str) -> dict[str, str]:
        ring = dict([CANARY_LABEL]) if well in canary_wells else {}
        return {"country": country_of(well), **ring}

    return fleet_manifest.model_deployment(
        name,
        namespace=namespace,
        version=version,
        bundle_uri=bundle_uri,
        model=MODEL_NAME,
        digests=digests or None,
        wells=[Well(id=w, labels=labels(w), pin=pinned.get(w)) for w in wells],
        runtime=RuntimeSpec(
            resources=ResourceRequirements(requests=ResourceList(cpu="50m", memory="128Mi"))
        ),
        rollout=RolloutPolicy(
            max_unavailable=max_unavailable,
            progress_deadline_seconds=progress_deadline_seconds,
            auto_rollback=True,
        ),
    )
