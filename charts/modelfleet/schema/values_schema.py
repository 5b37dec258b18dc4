"""Generate the chart's values.schema.json: hand-written for the chart's own knobs, derived from
the CRD for everything under `fleet` (model, wells, runtime, rollout).

Why generated: the `fleet.*` values become a ModelDeployment spec, and a hand-copied schema would
drift from the CRD the apiserver enforces. Deriving it from `crds/modeldeployment.yaml` (itself
generated from operator/modelfleet/api/spec.py) makes a wrong fleet value fail at `helm install`
with the value's path, instead of at apply time. The JSON Schema differs from the CRD's
structural schema where Helm must be stricter: every object is closed
(`additionalProperties: false`, so an unknown roll-out key is an error, not silently pruned) and
int-or-string fields become an explicit `anyOf`. CEL rules (x-kubernetes-validations) have no
JSON Schema equivalent; the apiserver still checks them.

    python charts/modelfleet/schema/values_schema.py          # rewrite values.schema.json
    python charts/modelfleet/schema/values_schema.py --check  # exit 1 when it is out of date
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

import yaml

CHART = Path(__file__).resolve().parents[1]
CRD = CHART / "crds" / "modeldeployment.yaml"
OUTPUT = CHART / "values.schema.json"

# Mirrors modelfleet.api.spec.PERCENT_OR_INT (the chart must not import the operator package).
PERCENT_OR_INT = r"^(100|[1-9]?[0-9])%$"
DNS1123_LABEL = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$"
K8S_NAME = r"^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$"
DURATION = r"^[0-9]+(ms|s|m|h)$"

JsonSchema = dict[str, Any]


def _string(description: str, **extra: Any) -> JsonSchema:
    return {"type": "string", "description": description, **extra}


def _integer(description: str, minimum: int, maximum: int) -> JsonSchema:
    return {"type": "integer", "description": description, "minimum": minimum, "maximum": maximum}


def _boolean(description: str) -> JsonSchema:
    return {"type": "boolean", "description": description}


def _map(description: str) -> JsonSchema:
    """A free-form Kubernetes map (labels, annotations, selectors): string values only."""
    return {
        "type": "object",
        "description": description,
        "additionalProperties": {"type": "string"},
    }


def _quantities(description: str) -> JsonSchema:
    """Resource amounts: Kubernetes quantities, written as strings (128Mi) or numbers (1)."""
    return {
        "type": "object",
        "description": description,
        "additionalProperties": {"type": ["string", "number"]},
    }


def _opaque_object(description: str) -> JsonSchema:
    """A Kubernetes structure passed through verbatim (affinity, securityContext...); the
    apiserver validates it, the chart only checks its type."""
    return {"type": "object", "description": description}


def _opaque_list(description: str) -> JsonSchema:
    return {"type": "array", "description": description, "items": {"type": "object"}}


def _closed(
    description: str, properties: dict[str, JsonSchema], required: list[str] | None = None
) -> JsonSchema:
    schema: JsonSchema = {
        "type": "object",
        "description": description,
        "additionalProperties": False,
        "properties": properties,
    }
    if required:
        schema["required"] = required
    return schema


def _port(description: str) -> JsonSchema:
    return _integer(description, 1, 65535)


# ----------------------------------------------------------------------------- from the CRD


def crd_spec_schema(crd: dict[str, Any]) -> JsonSchema:
    """The ModelDeployment spec schema of the CRD's storage version."""
    version = next(v for v in crd["spec"]["versions"] if v.get("storage"))
    spec: JsonSchema = version["schema"]["openAPIV3Schema"]["properties"]["spec"]
    return spec


def _draft7_exclusive_bounds(node: JsonSchema) -> JsonSchema:
    """OpenAPI 3.0 (the CRD) marks a bound exclusive with a boolean beside it; JSON Schema
    draft-07 (Helm) wants the bound as the value and rejects the whole schema otherwise. The
    bound keeps its key's place, so both spellings of a CRD give the same file."""
    flags = {"minimum": "exclusiveMinimum", "maximum": "exclusiveMaximum"}
    out: JsonSchema = {}
    for key, value in node.items():
        if key in flags.values() and isinstance(value, bool):
            continue
        flag = flags.get(key)
        if flag is not None and node.get(flag) is True:
            out[flag] = value
        else:
            out[key] = value
    return out


def to_json_schema(node: Any) -> Any:
    """A CRD structural schema node as a closed JSON Schema node (recursively)."""
    if isinstance(node, list):
        return [to_json_schema(item) for item in node]
    if not isinstance(node, dict):
        return node
    out: JsonSchema = {}
    for key, value in node.items():
        if key.startswith("x-kubernetes-"):
            continue
        if key in ("properties",):
            out[key] = {name: to_json_schema(child) for name, child in value.items()}
        else:
            out[key] = to_json_schema(value)
    out = _draft7_exclusive_bounds(out)
    if node.get("x-kubernetes-int-or-string"):
        out.pop("type", None)
        out["anyOf"] = [
            {"type": "integer", "minimum": 0},
            {"type": "string", "pattern": PERCENT_OR_INT},
        ]
    closable = out.get("type") == "object" and "properties" in out
    if (
        closable
        and "additionalProperties" not in out
        and not node.get("x-kubernetes-preserve-unknown-fields")
    ):
        out["additionalProperties"] = False
    return out


def fleet_schema(spec: JsonSchema) -> JsonSchema:
    """`fleet`: the chart's own keys plus the spec's fields, strict, required only when enabled."""
    properties = {name: to_json_schema(child) for name, child in spec["properties"].items()}
    model = properties["model"]
    model_required = model.pop("required", [])
    wells = properties["wells"]
    wells.pop("default", None)
    # An empty wellsFrom means "none" in values (the template leaves it out of the spec).
    properties["wellsFrom"].pop("minItems", None)
    history = properties["revisionHistoryLimit"]
    history["type"] = ["integer", "null"]
    history.pop("default", None)
    for key in ("runtime", "rollout"):
        properties[key].pop("default", None)
    fleet = _closed(
        "The country's ModelDeployment, rendered when enabled (its spec fields, checked here "
        "against the CRD schema).",
        {
            "enabled": _boolean("Render the ModelDeployment."),
            "name": _string(
                "ModelDeployment name (DNS-1123 label). Pods are <name>-<well>, so the name plus "
                "the longest well id must stay within 62 characters (the CRD checks it).",
                pattern=DNS1123_LABEL,
                minLength=1,
                maxLength=62,
            ),
            "labels": _map("Extra labels on the ModelDeployment."),
            "annotations": _map("Extra annotations on the ModelDeployment."),
            **properties,
        },
        required=["enabled", "name"],
    )
    fleet["if"] = {"properties": {"enabled": {"const": True}}, "required": ["enabled"]}
    fleet["then"] = {
        "required": ["model", "wells"],
        "properties": {"model": {"required": model_required}},
        # Inline wells are required unless the fleet reads them from ConfigMaps.
        "if": {"properties": {"wellsFrom": {"maxItems": 0}}},
        "then": {"properties": {"wells": {"minItems": 1}}},
    }
    return fleet


# -------------------------------------------------------------------------- the chart's knobs


def _ratio(description: str) -> JsonSchema:
    return {"type": "number", "description": description, "minimum": 0, "maximum": 1}


def monitoring_schema() -> JsonSchema:
    """`monitoring`: the well pods' PodMonitor, the alert rules and the Grafana dashboard."""
    return _closed(
        "Functional monitoring of the well pods: scrape, alerts, dashboard.",
        {
            "podMonitor": _closed(
                "Prometheus Operator PodMonitor for the well pods' runtime /metrics.",
                {
                    "enabled": _boolean("Create the PodMonitor."),
                    "interval": _string("Scrape interval.", pattern=DURATION),
                    "scrapeTimeout": _string("Scrape timeout.", pattern=DURATION),
                    "labels": _map("Extra labels on the PodMonitor."),
                },
                required=["enabled"],
            ),
            "prometheusRule": _closed(
                "Prometheus Operator PrometheusRule with the fleet's alerts.",
                {
                    "enabled": _boolean("Create the PrometheusRule."),
                    "labels": _map("Extra labels on the PrometheusRule."),
                    "alertLabels": _map("Extra labels on every alert."),
                    "degradedFor": _string("Degraded this long fires.", pattern=DURATION),
                    "driftFor": _string("Drifting this long fires.", pattern=DURATION),
                    "fleetDriftingRatio": _ratio("Share of wells drifting for the fleet alert."),
                    "missingRate": _ratio("Worst missing rate that fires."),
                    "outOfRangeRate": _ratio("Worst out-of-reference-range rate that fires."),
                    "dataQualityFor": _string(
                        "Data quality bad this long fires.", pattern=DURATION
                    ),
                    "staleSeconds": _integer("Seconds without a row: stale.", 1, 31_536_000),
                    "staleFor": _string("Stale this long fires.", pattern=DURATION),
                    "insufficientDataFor": _string(
                        "Below the minimum rows this long fires.", pattern=DURATION
                    ),
                    "metricsMissingFor": _string("Unscrapeable this long fires.", pattern=DURATION),
                    "bundleRefusedFor": _string("Refused this long fires.", pattern=DURATION),
                },
                required=["enabled"],
            ),
            "dashboard": _closed(
                "Grafana dashboard in a ConfigMap for Grafana's sidecar.",
                {
                    "enabled": _boolean("Create the dashboard ConfigMap."),
                    "namespace": _string(
                        "Namespace of the ConfigMap; empty means the release namespace.",
                        pattern=r"^([a-z0-9]([-a-z0-9]*[a-z0-9])?)?$",
                        maxLength=63,
                    ),
                    "labels": _map("Labels the Grafana sidecar selects on."),
                    "annotations": _map("Annotations on the ConfigMap."),
                },
                required=["enabled"],
            ),
        },
        required=["podMonitor", "prometheusRule", "dashboard"],
    )


def chart_schema(fleet: JsonSchema) -> JsonSchema:
    resources = _closed(
        "Resources of the operator container.",
        {
            "requests": _quantities("Requested resources, e.g. {cpu: 100m, memory: 256Mi}."),
            "limits": _quantities("Resource limits, e.g. {memory: 512Mi}."),
        },
    )
    return {
        "$schema": "https://json-schema.org/draft-07/schema#",
        "title": "modelfleet chart values",
        "type": "object",
        "additionalProperties": False,
        "required": ["image", "operator", "serviceAccount", "rbac", "metrics", "fleet"],
        "properties": {
            "nameOverride": _string("Override of the chart name in resource names.", maxLength=63),
            "fullnameOverride": _string("Override of the full resource name prefix.", maxLength=63),
            "image": _closed(
                "The operator image.",
                {
                    "repository": _string("Image repository.", minLength=1),
                    "tag": _string("Image tag; empty means appVersion."),
                    "digest": {
                        "type": "string",
                        "description": "Image digest, pins the image.",
                        "pattern": r"^(sha256:[a-f0-9]{64})?$",
                    },
                    "pullPolicy": {
                        "type": "string",
                        "description": "Image pull policy.",
                        "enum": ["Always", "IfNotPresent", "Never"],
                    },
                },
                required=["repository", "pullPolicy"],
            ),
            "imagePullSecrets": _opaque_list("Secrets to pull the operator image."),
            "operator": _closed(
                "How the operator runs.",
                {
                    "replicas": _integer("Operator replicas; above 1 enables kopf peering.", 1, 5),
                    "watchNamespaces": {
                        "type": "array",
                        "description": "Namespaces watched; empty means the release namespace.",
                        "uniqueItems": True,
                        "items": {"type": "string", "pattern": DNS1123_LABEL, "maxLength": 63},
                    },
                    "allNamespaces": _boolean("Watch every namespace (cluster-wide RBAC)."),
                    "qps": {
                        "type": "number",
                        "description": "Client-side request rate; 0 disables the limit.",
                        "minimum": 0,
                    },
                    "burst": _integer("Burst above qps.", 1, 100000),
                    "concurrency": _integer("API requests in flight at most.", 1, 1024),
                    "metricsPort": _port("Port of /metrics."),
                    "healthPort": _port("Port of kopf's /healthz."),
                    "peeringName": _string(
                        "kopf peering object name; empty means the full name.",
                        pattern=r"^([a-z0-9]([-a-z0-9.]*[a-z0-9])?)?$",
                        maxLength=253,
                    ),
                    "verbose": _boolean("Debug logging."),
                    "extraArgs": {
                        "type": "array",
                        "description": "Extra arguments of `modelfleet operator`.",
                        "items": {"type": "string"},
                    },
                    "extraEnv": _opaque_list("Extra environment variables (EnvVar objects)."),
                },
                required=["replicas", "allNamespaces", "metricsPort", "healthPort"],
            ),
            "resources": resources,
            "podSecurityContext": _opaque_object("Pod securityContext of the operator."),
            "securityContext": _opaque_object("Container securityContext of the operator."),
            "podLabels": _map("Extra labels on the operator pods."),
            "podAnnotations": _map("Extra annotations on the operator pods."),
            "nodeSelector": _map("Node labels the operator pods need."),
            "tolerations": _opaque_list("Tolerations of the operator pods."),
            "affinity": _opaque_object("Affinity of the operator pods."),
            "priorityClassName": _string("PriorityClass of the operator pods."),
            "serviceAccount": _closed(
                "The operator's ServiceAccount.",
                {
                    "create": _boolean("Create the ServiceAccount."),
                    "name": _string(
                        "ServiceAccount name.", pattern=r"^([a-z0-9]([-a-z0-9.]*[a-z0-9])?)?$"
                    ),
                    "annotations": _map("Annotations on the ServiceAccount."),
                },
                required=["create"],
            ),
            "rbac": _closed(
                "RBAC of the operator.",
                {
                    "create": _boolean("Create the Roles/ClusterRoles and bindings."),
                    "clusterScanning": _boolean(
                        "Namespaced mode: also let kopf list/watch namespaces and CRDs."
                    ),
                },
                required=["create"],
            ),
            "metrics": _closed(
                "The operator's Prometheus metrics.",
                {
                    "service": _closed(
                        "Service in front of /metrics.",
                        {
                            "enabled": _boolean("Create the metrics Service."),
                            "type": {
                                "type": "string",
                                "description": "Service type.",
                                "enum": ["ClusterIP", "NodePort", "LoadBalancer"],
                            },
                            "port": _port("Service port."),
                            "annotations": _map("Annotations on the Service."),
                        },
                        required=["enabled"],
                    ),
                    "serviceMonitor": _closed(
                        "Prometheus Operator ServiceMonitor.",
                        {
                            "enabled": _boolean("Create the ServiceMonitor."),
                            "interval": _string("Scrape interval.", pattern=DURATION),
                            "scrapeTimeout": _string("Scrape timeout.", pattern=DURATION),
                            "labels": _map("Extra labels on the ServiceMonitor."),
                        },
                        required=["enabled"],
                    ),
                },
                required=["service", "serviceMonitor"],
            ),
            "monitoring": monitoring_schema(),
            "podDisruptionBudget": _closed(
                "PodDisruptionBudget of the operator.",
                {
                    "enabled": _boolean("Create the PodDisruptionBudget."),
                    "minAvailable": _integer("Operator pods kept during disruptions.", 0, 5),
                },
            ),
            "networkPolicy": _closed(
                "NetworkPolicies for the operator and the well pods.",
                {
                    "enabled": _boolean("Create the NetworkPolicies."),
                    "metricsFrom": _opaque_list("Peers allowed to scrape the operator."),
                    "runtimePort": _port("Port the well pods listen on."),
                    "runtimeFrom": _opaque_list("Peers allowed to call the well pods."),
                    "apiServerCIDRs": {
                        "type": "array",
                        "description": "CIDRs of the apiservers (pod proxy traffic).",
                        "items": {"type": "string", "pattern": r"^[0-9a-fA-F:.]+/[0-9]{1,3}$"},
                    },
                },
            ),
            "fleet": fleet,
            # Helm adds this key for subcharts/globals; accept it so `--set global.x` works.
            "global": {"type": "object", "description": "Helm global values (unused)."},
        },
    }


def build_values_schema() -> JsonSchema:
    crd = yaml.safe_load(CRD.read_text(encoding="utf-8"))
    return chart_schema(fleet_schema(crd_spec_schema(crd)))


def render_values_schema() -> str:
    return json.dumps(build_values_schema(), indent=2, ensure_ascii=False) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--check", action="store_true", help="exit 1 if the file is out of date")
    args = parser.parse_args(argv)
    text = render_values_schema()
    if args.check:
        if OUTPUT.read_text(encoding="utf-8") != text:
            print(
                f"{OUTPUT} is out of date: run python {Path(__file__).relative_to(Path.cwd())}",
                file=sys.stderr,
            )
            return 1
        return 0
    OUTPUT.write_text(text, encoding="utf-8")
    print(f"wrote {OUTPUT}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
