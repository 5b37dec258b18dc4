"""The ModelDeployment resource: the one source of truth for its spec and status.

The operator parses custom resources into these models, and `crds/modeldeployment.yaml` is
generated from them (`modelfleet crd`), so the schema the apiserver enforces and the types the
operator reads cannot drift apart. Every field carries a docstring: it becomes the field's
description in the CRD, which is what `kubectl explain` prints.
"""

from __future__ import annotations

import enum
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, model_validator
from pydantic.alias_generators import to_camel

GROUP = "modelfleet.dev"
VERSION = "v1alpha1"
KIND = "ModelDeployment"
PLURAL = "modeldeployments"
SINGULAR = "modeldeployment"
SHORT_NAMES = ("mdep",)
CATEGORIES = ("modelfleet",)

#: Inline wells per ModelDeployment. The bound keeps the per-well CEL rule under its cost limit;
#: the apiserver's object size limit (1.5 MiB) bites first once every well has a digest (about
#: 8,600 realistic wells, see docs/benchmarks.md): larger fleets use wellsFrom / digestsFrom.
MAX_WELLS = 10_000
#: Wells per fleet, inline and from ConfigMaps together. Set by the ControllerRevision, which
#: records every well's expected digest so a rollback restores exactly what was served: 12,000
#: digests of the longest well ids (40 characters) take 1.40 MB of its 1.5 MiB.
MAX_FLEET_WELLS = 12_000
#: ConfigMaps one fleet may read its wells (or its digests) from.
MAX_INVENTORY_SOURCES = 64
#: The ConfigMap keys an inventory is read from.
WELLS_KEY = "wells.yaml"
DIGESTS_KEY = "digests.yaml"
MAX_UNHEALTHY_REPORTED = 20

DNS1123_LABEL = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$"
DNS1123_SUBDOMAIN = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$"
PERCENT_OR_INT = r"^(100|[1-9]?[0-9])%$"
VERSION_PATTERN = r"^[A-Za-z0-9]([A-Za-z0-9._+-]{0,61}[A-Za-z0-9])?$"
DIGEST_PATTERN = r"^sha256:[a-f0-9]{64}$"
BUNDLE_URI_PATTERN = r"^(file|https?|s3|az|gs)://([^{}\s]|\{well\}|\{version\})+$"

WellId = Annotated[str, StringConstraints(min_length=1, max_length=40, pattern=DNS1123_LABEL)]
ModelVersion = Annotated[
    str, StringConstraints(min_length=1, max_length=63, pattern=VERSION_PATTERN)
]
Digest = Annotated[str, StringConstraints(pattern=DIGEST_PATTERN)]
IntOrPercent = Annotated[
    int | Annotated[str, StringConstraints(pattern=PERCENT_OR_INT)],
    Field(
        json_schema_extra={
            "x-kubernetes-int-or-string": True,
            "x-kubernetes-validations": [
                {
                    "rule": f"type(self) == int ? self >= 0 : self.matches('{PERCENT_OR_INT}')",
                    "message": "must be a non-negative integer or a percentage from 0% to 100%, e.g. 10%",
                }
            ],
        }
    ),
]
Quantity = Annotated[
    str, StringConstraints(pattern=r"^[0-9]+(\.[0-9]+)?(m|k|M|G|T|Ki|Mi|Gi|Ti)?$", max_length=32)
]


class _Resource(BaseModel):
    """Kubernetes field names (camelCase) on the wire, snake_case in Python."""

    model_config = ConfigDict(
        alias_generator=to_camel,
        populate_by_name=True,
        use_attribute_docstrings=True,
        extra="ignore",
        frozen=True,
    )


# ---------------------------------------------------------------------------------------- spec


class ConfigMapRef(_Resource):
    """A ConfigMap in the ModelDeployment's namespace."""

    config_map: Annotated[
        str, StringConstraints(min_length=1, max_length=253, pattern=DNS1123_SUBDOMAIN)
    ]
    """Name of the ConfigMap."""


#: A bounded list of ConfigMaps, each named at most once (the apiserver rejects duplicates).
ConfigMapRefs = Annotated[
    list[ConfigMapRef],
    Field(
        min_length=1,
        max_length=MAX_INVENTORY_SOURCES,
        json_schema_extra={
            "x-kubernetes-list-type": "map",
            "x-kubernetes-list-map-keys": ["configMap"],
        },
    ),
]


class ModelSource(_Resource):
    """Which model the wells serve and where each well's bundle comes from."""

    model_config = ConfigDict(
        json_schema_extra={
            "x-kubernetes-validations": [
                {
                    "rule": "self.bundleUri.contains('{well}')",
                    "message": "bundleUri must contain {well}: every well has its own bundle",
                    "fieldPath": ".bundleUri",
                },
                {
                    "rule": "!has(self.digests) || self.digests.all(k, k.matches('^[a-z0-9]([-a-z0-9]*[a-z0-9])?$'))",
                    "message": "digests keys must be well ids (DNS-1123 labels)",
                    "fieldPath": ".digests",
                },
                {
                    "rule": "!(has(self.digests) && has(self.digestsFrom))",
                    "message": "set digests or digestsFrom, not both: one source of truth per version",
                    "fieldPath": ".digestsFrom",
                },
            ]
        }
    )

    name: Annotated[str, StringConstraints(min_length=1, max_length=63, pattern=DNS1123_LABEL)]
    """Model family name, e.g. esp-failure. Shown as MODEL (name@version) by kubectl get."""

    version: ModelVersion
    """Model version every well serves unless the well is pinned, e.g. 2026.11.2. Changing it
    starts a roll-out."""

    bundle_uri: Annotated[
        str, StringConstraints(min_length=8, max_length=2048, pattern=BUNDLE_URI_PATTERN)
    ]
    """Template of a well's bundle location (file://, http://, https://, or an object store:
    s3://bucket/..., az://container/... (Azure Blob), gs://bucket/...; a directory or a
    .tar.gz). {well} is replaced by the well id and {version} by the model version, e.g.
    az://bundles/esp/{version}/{well}. Must contain {well}: every well has its own bundle.
    Object-store credentials come from runtime.credentialsSecret."""

    digests: dict[str, Digest] | None = Field(
        default=None, json_schema_extra={"maxProperties": MAX_WELLS}
    )
    """Optional expected bundle digest per well id (sha256:<64 hex>, the sha256 of the bundle's
    canonical manifest) for this version. A well whose bundle does not match is refused with
    reason BundleInvalid and keeps serving its previous bundle. Exclusive with digestsFrom."""

    digests_from: ConfigMapRefs | None = None
    """ConfigMaps holding the expected digests instead of digests (for fleets too large to list
    them inline): key digests.yaml, a YAML or JSON mapping of well id to sha256:<64 hex>, the
    same meaning as digests (one ConfigMap holds about 11,000 digests). Several ConfigMaps are
    merged; a well id in two of them is an
    error. Ids of wells outside the fleet are ignored, so one ConfigMap per version
    (esp-2026.11.2-digests) can serve several fleets. While one is missing or invalid, no pod of
    the fleet is changed and status says Degraded (InventoryNotFound / InventoryInvalid)."""


class Well(_Resource):
    """One well: it gets exactly one inference pod."""

    id: WellId
    """Well id, a DNS-1123 label of at most 40 characters. The well's pod is named
    <deployment>-<id>."""

    labels: dict[str, Annotated[str, StringConstraints(max_length=63)]] | None = Field(
        default=None, max_length=32
    )
    """Labels of the well (region, field, pump type...), used by rollout.canary.selector."""

    pin: ModelVersion | None = None
    """Model version this well keeps serving whatever spec.model.version says. Remove the pin
    to let the well follow the fleet."""


class EnvVar(_Resource):
    """An environment variable of the runtime container."""

    name: Annotated[
        str,
        StringConstraints(min_length=1, max_length=253, pattern=r"^[-._a-zA-Z][-._a-zA-Z0-9]*$"),
    ]
    """Variable name."""

    value: Annotated[str, StringConstraints(max_length=4096)] = ""
    """Variable value."""


class ResourceList(_Resource):
    """Amounts of CPU and memory (Kubernetes quantities such as 50m, 128Mi)."""

    cpu: Quantity | None = None
    """CPU, e.g. 50m (0.05 core) or 1."""

    memory: Quantity | None = None
    """Memory, e.g. 128Mi."""

    ephemeral_storage: Quantity | None = Field(default=None, alias="ephemeral-storage")
    """Local scratch space, e.g. 1Gi (bundles are unpacked to an emptyDir)."""


class ResourceRequirements(_Resource):
    """CPU and memory for the runtime container, as in a pod's resources."""

    requests: ResourceList | None = None
    """Minimum resources the scheduler reserves, e.g. {cpu: 50m, memory: 96Mi}."""

    limits: ResourceList | None = None
    """Maximum resources the container may use."""


class Toleration(_Resource):
    """A pod toleration, copied verbatim to every well pod."""

    key: str | None = None
    """Taint key the toleration applies to; empty matches all keys."""

    operator: Literal["Exists", "Equal"] | None = None
    """Exists or Equal (default Equal)."""

    value: str | None = None
    """Taint value to match when operator is Equal."""

    effect: Literal["NoSchedule", "PreferNoSchedule", "NoExecute"] | None = None
    """Taint effect to match; empty matches all effects."""

    toleration_seconds: int | None = None
    """How long a NoExecute taint is tolerated."""


class LocalObjectReference(_Resource):
    """A reference to a Secret in the same namespace."""

    name: Annotated[str, StringConstraints(min_length=1, max_length=253)]
    """Name of the Secret."""


class BundleConfirmation(enum.StrEnum):
    """How a well pod's Ready comes to mean "serves the bundle its annotations name"."""

    READINESS_GATE = "ReadinessGate"
    READINESS_PROBE = "ReadinessProbe"


class RuntimeSpec(_Resource):
    """How each well's inference pod runs."""

    image: Annotated[str, StringConstraints(min_length=1, max_length=512)] = (
        "ghcr.io/modelfleet/model-runtime:0.1.0"
    )
    """Container image of the model runtime. Changing it recreates the pods."""

    port: Annotated[int, Field(ge=1024, le=65535)] = 8080
    """Port the runtime listens on (Open Inference Protocol V2 over HTTP)."""

    resources: ResourceRequirements = Field(
        default_factory=lambda: ResourceRequirements(
            requests=ResourceList(cpu="50m", memory="96Mi"), limits=ResourceList(memory="256Mi")
        )
    )
    """Resources of the runtime container."""

    env: list[EnvVar] | None = Field(default=None, max_length=64)
    """Extra environment variables of the runtime container."""

    node_selector: dict[str, str] | None = None
    """Node labels a well pod must be scheduled on."""

    tolerations: list[Toleration] | None = Field(default=None, max_length=32)
    """Tolerations of every well pod."""

    image_pull_secrets: list[LocalObjectReference] | None = Field(default=None, max_length=8)
    """Secrets used to pull the runtime image."""

    credentials_secret: (
        Annotated[str, StringConstraints(min_length=1, max_length=253, pattern=DNS1123_SUBDOMAIN)]
        | None
    ) = None
    """Name of a Secret (in the fleet's namespace) whose keys become environment variables of
    every well pod (envFrom): the object-store credentials the runtime reads bundleUri with,
    under each store's standard names (AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY,
    AWS_ENDPOINT_URL; AZURE_STORAGE_CONNECTION_STRING or AZURE_STORAGE_ACCOUNT_NAME and
    AZURE_STORAGE_ACCOUNT_KEY; GOOGLE_SERVICE_ACCOUNT). Changing it recreates the pods."""

    bundle_confirmation: BundleConfirmation | None = None
    """How a pod confirms the bundle it serves. ReadinessGate (the default): the operator reads
    each started runtime's digest through the apiserver's pod proxy and sets the pod's
    modelfleet.dev/bundle-current readiness gate, three API calls a pod. ReadinessProbe: the
    runtime passes its readiness probe only while it serves the bundle and digest its
    annotations name, so Ready is the confirmation and a pod costs one call (its create). The
    probe confirms only what a pod was created with: a well without an expected digest, and a
    pod swapped in place, are still confirmed through the proxy (then recorded in a condition
    that is not a readiness gate). Unset is ReadinessGate, so a fleet made before this field
    keeps its pods. Changing it recreates the pods."""


class LabelSelectorRequirement(_Resource):
    """One requirement of a label selector."""

    model_config = ConfigDict(
        json_schema_extra={
            "x-kubernetes-validations": [
                {
                    "rule": "self.operator in ['In', 'NotIn'] ? (has(self.values) && size(self.values) > 0) : (!has(self.values) || size(self.values) == 0)",
                    "message": "values must be non-empty for In and NotIn, and empty for Exists and DoesNotExist",
                    "fieldPath": ".values",
                }
            ]
        }
    )

    key: Annotated[str, StringConstraints(min_length=1, max_length=317)]
    """Label key."""

    operator: Literal["In", "NotIn", "Exists", "DoesNotExist"]
    """In, NotIn, Exists or DoesNotExist."""

    values: list[Annotated[str, StringConstraints(max_length=63)]] | None = Field(
        default=None, max_length=64
    )
    """Values for In and NotIn; must be empty for Exists and DoesNotExist."""


class LabelSelector(_Resource):
    """Selects wells by their labels (metav1.LabelSelector semantics)."""

    match_labels: dict[str, str] | None = None
    """Labels a well must carry, all of them."""

    match_expressions: list[LabelSelectorRequirement] | None = Field(default=None, max_length=16)
    """Requirements a well's labels must meet, all of them."""


class Canary(_Resource):
    """Which wells take a new revision first. Set exactly one of wells or selector."""

    model_config = ConfigDict(
        json_schema_extra={
            "x-kubernetes-validations": [
                {
                    "rule": "has(self.wells) != has(self.selector)",
                    "message": "set exactly one of canary.wells or canary.selector",
                }
            ]
        }
    )

    wells: Annotated[int, Field(ge=1, le=MAX_FLEET_WELLS)] | None = None
    """Number of wells updated first (the first ones in fleet order: spec.wells, then each
    wellsFrom ConfigMap in turn)."""

    selector: LabelSelector | None = None
    """Label selector on well labels choosing the canary wells."""


class ComparisonOperator(enum.StrEnum):
    """How a measured value must compare with its threshold for the check to pass."""

    LESS_THAN = "LessThan"
    LESS_OR_EQUAL = "LessOrEqual"
    GREATER_THAN = "GreaterThan"
    GREATER_OR_EQUAL = "GreaterOrEqual"


#: The placeholder an analysis query names the canary wells with: replaced by an anchored regex
#: alternation of their ids (e.g. `fr-0001|fr-0002`), for `well=~"{{wells}}"`.
WELLS_PLACEHOLDER = "{{wells}}"
#: ... and the fleet's own labels (well ids are unique in a fleet, not across fleets).
NAMESPACE_PLACEHOLDER = "{{namespace}}"
FLEET_PLACEHOLDER = "{{fleet}}"
MAX_ANALYSIS_QUERIES = 8
#: Series of one analysis answer kept in status (the offending ones first).
MAX_ANALYSIS_RESULTS = 10
#: Worst wells status.monitoring lists.
MAX_WORST_WELLS = 20


class AnalysisQuery(_Resource):
    """One PromQL query whose every series must meet the threshold."""

    name: Annotated[str, StringConstraints(min_length=1, max_length=63, pattern=DNS1123_LABEL)]
    """Name of the check, shown in status and in the rollback message."""

    query: Annotated[str, StringConstraints(min_length=1, max_length=4096, pattern=r"\S")]
    """PromQL instant query. {{wells}} is replaced by a regex matching exactly the canary wells,
    {{namespace}} and {{fleet}} by the fleet's namespace and name, e.g.
    max by (well, model) (modelfleet_runtime_prediction_psi_worst{namespace="{{namespace}}",
    fleet="{{fleet}}", well=~"{{wells}}"}). Every series of the answer is a measurement, labels kept: each must
    meet the threshold. An empty answer, NaN or an infinite value is inconclusive (the roll-out
    holds); a query Prometheus refuses (bad PromQL) is inconclusive too, with Prometheus' error
    in the condition: fix the spec and the analysis starts again."""

    operator: ComparisonOperator
    """LessThan, LessOrEqual, GreaterThan or GreaterOrEqual: how every value must compare
    with threshold to pass."""

    threshold: float
    """The value each series is compared with."""


class Analysis(_Resource):
    """Checks evaluated on the canary wells, through spec.monitoring's Prometheus, before the
    rest of the fleet is updated. Needs rollout.canary and spec.monitoring."""

    queries: list[AnalysisQuery] = Field(
        min_length=1,
        max_length=MAX_ANALYSIS_QUERIES,
        json_schema_extra={"x-kubernetes-list-type": "map", "x-kubernetes-list-map-keys": ["name"]},
    )
    """The checks; each name at most once. A measurement passes when every series of every
    query meets its threshold, fails when one series does not."""

    interval_seconds: Annotated[int, Field(ge=1, le=3600)] = 30
    """Seconds between two measurements."""

    measurements: Annotated[int, Field(ge=1, le=100)] = 3
    """Passing measurements needed, in a row, before the fleet proceeds past the canary (the
    analysis lasts at least measurements x intervalSeconds). One failing measurement fails the
    analysis: with autoRollback the fleet rolls back (reason AnalysisFailed). An inconclusive
    one restarts the count and holds the roll-out."""

    min_rows: Annotated[int, Field(ge=0, le=1_000_000)] = 100
    """Traffic guard: every canary well must report at least this many rows in its monitoring
    window (modelfleet_runtime_window_rows_min), else the measurement is inconclusive."""


class RolloutPolicy(_Resource):
    """How a new revision reaches the fleet."""

    model_config = ConfigDict(
        json_schema_extra={
            "x-kubernetes-validations": [
                {
                    "rule": "!(string(self.maxUnavailable) in ['0', '0%'] && string(self.maxSurge) in ['0', '0%'])",
                    "message": "maxUnavailable and maxSurge cannot both be 0: the roll-out could never replace a pod",
                    "fieldPath": ".maxUnavailable",
                },
                {
                    "rule": "string(self.maxSurge) in ['0', '0%']",
                    "message": "maxSurge must be 0: a well has one pod with a stable name, so no "
                    "replacement can run beside it; use maxUnavailable",
                    "fieldPath": ".maxSurge",
                },
                {
                    "rule": "!has(self.analysis) || has(self.canary)",
                    "message": "analysis needs a canary: it is evaluated on the canary wells",
                    "fieldPath": ".analysis",
                },
                {
                    "rule": "self.progressDeadlineSeconds > self.minReadySeconds",
                    "message": "progressDeadlineSeconds must be greater than minReadySeconds",
                    "fieldPath": ".progressDeadlineSeconds",
                },
            ]
        }
    )

    max_unavailable: IntOrPercent = "10%"
    """Maximum number of wells (or percent of the fleet, rounded down) that may be without a
    ready pod during a roll-out, counting wells that were already unavailable. A percent that
    rounds down to 0 allows 1; an explicit 0 is refused (the roll-out could not move)."""

    max_surge: IntOrPercent = 0
    """Extra pods above one per well during a roll-out. Must be 0: each well has exactly one pod
    with a stable name (its DNS hostname), so a replacement cannot run beside the pod it
    replaces. Kept for familiarity with Deployments; in-place bundle swaps need no surge."""

    canary: Canary | None = None
    """Wells that take a new revision first; the rest waits until they are available for
    minReadySeconds."""

    paused: bool = False
    """Freeze the roll-out: no pod is changed while true. Status still reflects the pods."""

    progress_deadline_seconds: Annotated[int, Field(ge=1, le=86400)] = 600
    """Seconds a roll-out may go without progress before it is reported Degraded
    (ProgressDeadlineExceeded) and, with autoRollback, rolled back."""

    min_ready_seconds: Annotated[int, Field(ge=0, le=3600)] = 0
    """Seconds a well's pod must be ready before the well counts as available."""

    auto_rollback: bool = True
    """When the progress deadline is exceeded, return the fleet to the last revision that was
    fully available. The spec keeps naming the failed version; status says RolledBack until the
    spec changes."""

    analysis: Analysis | None = None
    """Prometheus checks on the canary wells before the rest of the fleet is updated (needs
    canary and spec.monitoring). Failed: with autoRollback the fleet rolls back, reason
    AnalysisFailed, the measured value and the series' labels in the message. Inconclusive
    (Prometheus unreachable or erroring, an empty answer, NaN, too little traffic): the roll-out
    holds, never promotes, and the progress deadline does not run meanwhile."""

    @model_validator(mode="after")
    def _analysis_needs_canary(self) -> RolloutPolicy:
        # Mirrors the CEL rule above, for specs that reach the operator unchecked.
        if self.analysis is not None and self.canary is None:
            raise ValueError("analysis needs a canary: it is evaluated on the canary wells")
        return self


class SecretKeyRef(_Resource):
    """A key of a Secret in the ModelDeployment's namespace."""

    name: Annotated[str, StringConstraints(min_length=1, max_length=253, pattern=DNS1123_SUBDOMAIN)]
    """Name of the Secret."""

    key: Annotated[str, StringConstraints(min_length=1, max_length=253)] = "token"
    """Key holding the value."""


class PrometheusEndpoint(_Resource):
    """Where the operator reads the fleet's monitoring series."""

    address: Annotated[
        str, StringConstraints(min_length=8, max_length=2048, pattern=r"^https?://[^\s?#]+$")
    ]
    """Base URL of the Prometheus HTTP API, e.g. http://prometheus.monitoring.svc:9090 (the
    operator calls <address>/api/v1/query)."""

    bearer_token_secret: SecretKeyRef | None = None
    """Secret key holding a bearer token sent as Authorization: Bearer <token> (a proxy or a
    managed Prometheus in front of the API). Read at each query, so a rotated token is used at
    once."""

    timeout_seconds: Annotated[int, Field(ge=1, le=60)] = 5
    """Seconds one query may take; beyond it the answer counts as unreachable."""


class DriftThresholds(_Resource):
    """When a well counts as drifting, missing data or stale, for status.monitoring."""

    feature_psi: Annotated[float, Field(gt=0, le=100)] = 0.25
    """A well drifts when its worst feature PSI (modelfleet_runtime_feature_psi_worst) is
    above this (the PSI convention's 0.25)."""

    prediction_psi: Annotated[float, Field(gt=0, le=100)] = 0.25
    """... or its worst prediction PSI (modelfleet_runtime_prediction_psi_worst) is above this."""

    missing_rate: Annotated[float, Field(ge=0, le=1)] = 0.2
    """A well misses data when its worst per-feature missing rate is above this."""

    stale_seconds: Annotated[int, Field(ge=1, le=604800)] = 600
    """A well's data is stale when its stalest model saw no row for longer than this (a well
    that never saw a row counts too)."""


class MonitoringSpec(_Resource):
    """Read the fleet's functional-monitoring series from Prometheus into status.monitoring and
    the ModelsHealthy condition: one query per interval for the whole fleet, never one per pod.
    The series carry the fleet and well labels of the runtime's PodMonitor."""

    prometheus: PrometheusEndpoint
    """The Prometheus to query."""

    interval_seconds: Annotated[int, Field(ge=1, le=3600)] = 30
    """Seconds between two queries. Status is written only when the answer changes."""

    thresholds: DriftThresholds = Field(default_factory=DriftThresholds)
    """When a well counts as drifting, missing data or stale."""


class ModelDeploymentSpec(_Resource):
    """Desired state: one inference pod per well, serving the given model version."""

    model_config = ConfigDict(
        json_schema_extra={
            "x-kubernetes-validations": [
                {
                    "rule": "has(self.wells) || has(self.wellsFrom)",
                    "message": "set wells, wellsFrom or both: the fleet is their union",
                    "fieldPath": ".wells",
                },
                {
                    "rule": "!has(self.rollout) || !has(self.rollout.analysis) || has(self.monitoring)",
                    "message": "rollout.analysis needs spec.monitoring: its queries go to that Prometheus",
                    "fieldPath": ".rollout.analysis",
                },
            ]
        }
    )

    model: ModelSource
    """The model the wells serve and where the bundles are."""

    wells: list[Well] = Field(
        default_factory=list,
        max_length=MAX_WELLS,
        json_schema_extra={"x-kubernetes-list-type": "map", "x-kubernetes-list-map-keys": ["id"]},
    )
    """The wells of the fleet listed inline; each id at most once (the apiserver rejects
    duplicates). Set wells, wellsFrom or both."""

    wells_from: ConfigMapRefs | None = None
    """ConfigMaps holding more wells, for fleets too large to list inline (a ModelDeployment
    must fit in the apiserver's 1.5 MiB object limit): key wells.yaml, a YAML or JSON list of
    wells with the same fields as spec.wells items (id, labels, pin). Create one with kubectl
    create configmap NAME --from-file=wells.yaml. A ConfigMap holds at most 1 MiB of data (about
    12,000 wells with ids like ca-pad0123-w01234 and three labels, fewer with longer ids): split
    larger fleets over several. The fleet is spec.wells followed
    by each ConfigMap's wells in list order, at most 12,000 wells, each id once across all of
    them. While a ConfigMap is missing or invalid, no pod of the fleet is changed and status
    says Degraded (InventoryNotFound / InventoryInvalid); fixing it resumes the fleet."""

    runtime: RuntimeSpec = Field(default_factory=RuntimeSpec)
    """How each well's pod runs."""

    rollout: RolloutPolicy = Field(default_factory=RolloutPolicy)
    """Roll-out policy for new revisions."""

    revision_history_limit: Annotated[int, Field(ge=0, le=100)] = 10
    """How many old revisions (ControllerRevisions) to keep for rollback."""

    monitoring: MonitoringSpec | None = None
    """Functional monitoring: one Prometheus query per interval for the whole fleet (never one
    per pod) fills status.monitoring and the ModelsHealthy condition; rollout.analysis queries
    go to the same Prometheus. Without it the operator queries nothing."""

    @model_validator(mode="after")
    def _analysis_needs_monitoring(self) -> ModelDeploymentSpec:
        # Mirrors the CEL rule above.
        if self.rollout.analysis is not None and self.monitoring is None:
            raise ValueError(
                "rollout.analysis needs spec.monitoring: its queries go to that Prometheus"
            )
        return self


# -------------------------------------------------------------------------------------- status


class Phase(enum.StrEnum):
    PENDING = "Pending"
    PROGRESSING = "Progressing"
    AVAILABLE = "Available"
    DEGRADED = "Degraded"
    PAUSED = "Paused"


class ConditionType(enum.StrEnum):
    AVAILABLE = "Available"
    PROGRESSING = "Progressing"
    DEGRADED = "Degraded"
    MODELS_HEALTHY = "ModelsHealthy"
    """Only with spec.monitoring: what Prometheus says of the models' live data."""
    ANALYSIS = "AnalysisPassed"
    """Only while a roll-out has rollout.analysis: the canary analysis' verdict."""


class ModelsHealthReason(enum.StrEnum):
    """Why ModelsHealthy is what it is (the first that applies, in this order)."""

    PROMETHEUS_UNREACHABLE = "PrometheusUnreachable"
    """No answer: connection refused, timeout, a 5xx, or the token Secret unreadable."""
    PROMETHEUS_ERROR = "PrometheusError"
    """Prometheus answered with an error, or with something that is not the expected vector."""
    NO_DATA = "NoData"
    """No well of the fleet has monitoring series (no PodMonitor? monitoring off in the bundles?)."""
    DRIFTING = "Drifting"
    DATA_MISSING = "DataMissing"
    DATA_STALE = "DataStale"
    INSUFFICIENT_DATA = "InsufficientData"
    """Every reporting well has too few rows in its window for a verdict: neither healthy nor
    drifting."""
    AS_EXPECTED = "AsExpected"


class AnalysisPhase(enum.StrEnum):
    RUNNING = "Running"
    """Measuring: fewer passing measurements than required so far."""
    INCONCLUSIVE = "Inconclusive"
    """The last measurement could not decide: the roll-out holds."""
    SUCCESSFUL = "Successful"
    FAILED = "Failed"


class Reason(enum.StrEnum):
    MINIMUM_WELLS_AVAILABLE = "MinimumWellsAvailable"
    MINIMUM_WELLS_UNAVAILABLE = "MinimumWellsUnavailable"
    NEW_REVISION_AVAILABLE = "NewRevisionAvailable"
    ROLLING_OUT = "RollingOut"
    CANARY = "CanaryInProgress"
    PAUSED = "RolloutPaused"
    PROGRESS_DEADLINE_EXCEEDED = "ProgressDeadlineExceeded"
    ROLLED_BACK = "RolledBack"
    BUNDLE_INVALID = "BundleInvalid"
    INVENTORY_INVALID = "InventoryInvalid"
    INVENTORY_NOT_FOUND = "InventoryNotFound"
    SPEC_INVALID = "SpecInvalid"
    AS_EXPECTED = "AsExpected"
    WELLS_UNHEALTHY = "WellsUnhealthy"
    ANALYSIS_RUNNING = "AnalysisRunning"
    ANALYSIS_INCONCLUSIVE = "AnalysisInconclusive"
    ANALYSIS_FAILED = "AnalysisFailed"


class Condition(_Resource):
    """A condition in metav1.Condition shape."""

    type: str
    """Available, Progressing or Degraded."""

    status: Literal["True", "False", "Unknown"]
    """True, False or Unknown."""

    reason: str
    """One CamelCase word saying why."""

    message: str = ""
    """Human-readable detail."""

    last_transition_time: str
    """When status last changed (RFC 3339)."""

    observed_generation: int | None = None
    """metadata.generation the condition was computed for."""


class UnhealthyWell(_Resource):
    """A well whose pod is not serving the intended bundle."""

    well: str
    """Well id."""

    reason: str
    """Why, e.g. BundleInvalid, CrashLoopBackOff, NotReady, Pending."""

    message: str = ""
    """Detail from the pod or the runtime."""


class VersionCount(_Resource):
    """How many wells serve one model version and digest."""

    version: str
    """Model version."""

    revision: str
    """Revision hash of the pods serving it."""

    wells: int
    """Number of wells whose pod is ready on this revision."""


class WorstWell(_Resource):
    """A well among those whose data drifts most."""

    well: str
    """Well id."""

    model: str = ""
    """Model with the largest feature PSI in the well."""

    feature: str = ""
    """Its feature with the largest PSI."""

    psi: float
    """That PSI, rounded to 3 decimals."""


class MonitoringStatus(_Resource):
    """What Prometheus said of the fleet's live data at observedAt (spec.monitoring)."""

    observed_at: str | None = None
    """When Prometheus gave this answer (RFC 3339). The operator queries every intervalSeconds
    and writes only a different answer: the values have held since then."""

    wells_reporting: int = 0
    """Wells with monitoring series in Prometheus."""

    wells_over_threshold: int = 0
    """Wells whose worst feature or prediction PSI is above its threshold (DRIFTING column)."""

    wells_missing_data: int = 0
    """Wells whose worst missing rate is above thresholds.missingRate."""

    wells_stale: int = 0
    """Wells whose stalest model saw no row for longer than thresholds.staleSeconds."""

    wells_insufficient_data: int = 0
    """Wells with a model whose window holds too few rows for a verdict (neither drift nor
    healthy)."""

    worst_wells: list[WorstWell] | None = Field(default=None, max_length=MAX_WORST_WELLS)
    """Up to 20 wells with the largest feature PSI, largest first."""

    error: str | None = None
    """Why the last query gave no usable answer, if it did not (see ModelsHealthy)."""


class AnalysisResult(_Resource):
    """One series of an analysis query's answer."""

    query: str
    """The check's name."""

    value: str
    """The measured value as Prometheus gave it."""

    passed: bool
    """Whether it meets the threshold."""

    labels: dict[str, str] | None = None
    """The series' labels (well, model, ...)."""


class AnalysisStatus(_Resource):
    """The canary analysis of the update revision (rollout.analysis)."""

    revision: str
    """Revision analysed."""

    phase: AnalysisPhase
    """Running, Inconclusive, Successful or Failed."""

    successful_measurements: int = 0
    """Passing measurements in a row so far."""

    measured_at: str | None = None
    """When the last measurement was taken (RFC 3339)."""

    message: str = ""
    """What the last measurement found."""

    results: list[AnalysisResult] | None = Field(default=None, max_length=MAX_ANALYSIS_RESULTS)
    """Series of the last measurement (failing ones first), labels kept."""


class ModelDeploymentStatus(_Resource):
    """Observed state, written by the operator through the status subresource."""

    observed_generation: int | None = None
    """metadata.generation the operator last acted on."""

    model: str | None = None
    """Model name@version in spec (the MODEL column of kubectl get)."""

    wells: int = 0
    """Wells in spec."""

    ready_wells: int = 0
    """Wells whose pod is ready."""

    updated_wells: int = 0
    """Wells whose pod is on the update revision and serves its bundle."""

    available_wells: int = 0
    """Wells ready for at least minReadySeconds."""

    current_revision: str | None = None
    """Revision the fleet was last fully available on."""

    update_revision: str | None = None
    """Revision the fleet is moving to (equal to currentRevision at rest)."""

    phase: Phase = Phase.PENDING
    """Pending, Progressing, Available, Degraded or Paused."""

    conditions: list[Condition] | None = Field(
        default=None,
        json_schema_extra={"x-kubernetes-list-type": "map", "x-kubernetes-list-map-keys": ["type"]},
    )
    """Available, Progressing and Degraded, in metav1.Condition shape."""

    unhealthy_wells: list[UnhealthyWell] | None = Field(
        default=None, max_length=MAX_UNHEALTHY_REPORTED
    )
    """Up to 20 wells that are not healthy, with the reason."""

    versions: list[VersionCount] | None = Field(default=None, max_length=64)
    """Wells per model version and revision."""

    last_progress_time: str | None = None
    """When the current roll-out last made progress (RFC 3339); progressDeadlineSeconds counts
    from here."""

    rolled_back_from: str | None = None
    """Revision abandoned by an automatic rollback; the fleet stays on currentRevision until the
    spec changes again."""

    monitoring: MonitoringStatus | None = None
    """The fleet's functional monitoring as Prometheus last reported it (spec.monitoring)."""

    analysis: AnalysisStatus | None = None
    """The canary analysis of the current roll-out (rollout.analysis)."""


class ModelDeployment(_Resource):
    """A fleet of per-well model inference pods rolled out together."""

    api_version: Literal["modelfleet.dev/v1alpha1"] = "modelfleet.dev/v1alpha1"
    kind: Literal["ModelDeployment"] = "ModelDeployment"
    metadata: dict[str, Any] = Field(default_factory=dict)
    spec: ModelDeploymentSpec
    status: ModelDeploymentStatus | None = None


def render_bundle_uri(template: str, *, well: str, version: str) -> str:
    """Expand {well} and {version} in a bundle URI template."""
    return template.replace("{well}", well).replace("{version}", version)
