"""What kube-apiserver does for specific kinds on create and update.

Why this exists: beyond generic metadata handling, some kinds have their own strategy in the
apiserver (pods get defaults and a fresh Pending status, services get a cluster IP, namespaces
start Active, events are one storage served under two API groups, CRDs become served resources).
Keeping those rules here leaves the generic write path free of kind checks.
Docs: https://kubernetes.io/docs/reference/kubernetes-api/ (per-kind reference pages)
"""

from __future__ import annotations

import ipaddress
from typing import Any, Final

from kubesim.core.registry import ResourceDef
from kubesim.fields.patching import STRATEGIC_SCHEMAS, StrategicSchema, strategic_schema_for
from kubesim.schema.structural import compile_schema, validate_structural
from kubesim.schema.validation import dns1123_label_errors, dns1123_subdomain_errors
from kubesim.wire.errors import (
    StatusCause,
    field_duplicate,
    field_forbidden,
    field_invalid,
    field_not_supported,
    field_required,
)

__all__ = [
    "ClusterIPAllocator",
    "crd_resource_defs",
    "event_core_to_v1",
    "event_v1_to_core",
    "prepare_create",
    "strategic_schema",
    "validate_kind",
    "validate_update",
]


class ClusterIPAllocator:
    """Service cluster IPs. They come from 127.96.0.0/16, not 10.96.0.0/12, because nothing
    kubesim hands out may ever be connectable outside loopback."""

    def __init__(self) -> None:
        self._net = ipaddress.ip_network("127.96.0.0/16")
        self._next = 1
        self._used: set[str] = set()

    def allocate(self) -> str:
        while True:
            ip = str(self._net[self._next % (self._net.num_addresses - 2) + 1])
            self._next += 1
            if ip not in self._used:
                self._used.add(ip)
                return ip

    def release(self, ip: str) -> None:
        self._used.discard(ip)


def _default_pod(obj: dict[str, Any], admission: bool = True) -> None:
    """Pod defaults; ``admission`` adds what admission plugins set on real pods only (service
    account, priority, default tolerations), not on pod templates."""
    spec = obj.setdefault("spec", {})
    spec.setdefault("restartPolicy", "Always")
    spec.setdefault("terminationGracePeriodSeconds", 30)
    spec.setdefault("dnsPolicy", "ClusterFirst")
    spec.setdefault("schedulerName", "default-scheduler")
    spec.setdefault("securityContext", {})
    if admission:
        spec.setdefault("enableServiceLinks", True)
        spec.setdefault("preemptionPolicy", "PreemptLowerPriority")
        spec.setdefault("priority", 0)
        spec.setdefault("serviceAccountName", "default")
        spec.setdefault("serviceAccount", spec["serviceAccountName"])
    for key in ("containers", "initContainers"):
        for container in spec.get(key) or []:
            if not isinstance(container, dict):
                continue
            container.setdefault("terminationMessagePath", "/dev/termination-log")
            container.setdefault("terminationMessagePolicy", "File")
            image = str(container.get("image", ""))
            latest = ":" not in image.rsplit("/", 1)[-1] or image.endswith(":latest")
            container.setdefault("imagePullPolicy", "Always" if latest else "IfNotPresent")
            container.setdefault("resources", {})
            for port in container.get("ports") or []:
                if isinstance(port, dict):
                    port.setdefault("protocol", "TCP")
            for probe_key in ("readinessProbe", "livenessProbe", "startupProbe"):
                probe = container.get(probe_key)
                if isinstance(probe, dict):
                    probe.setdefault("timeoutSeconds", 1)
                    probe.setdefault("periodSeconds", 10)
                    probe.setdefault("successThreshold", 1)
                    probe.setdefault("failureThreshold", 3)
                    http = probe.get("httpGet")
                    if isinstance(http, dict):
                        http.setdefault("scheme", "HTTP")
    if not admission:
        return
    spec.setdefault(
        "tolerations",
        [
            {
                "key": "node.kubernetes.io/not-ready",
                "operator": "Exists",
                "effect": "NoExecute",
                "tolerationSeconds": 300,
            },
            {
                "key": "node.kubernetes.io/unreachable",
                "operator": "Exists",
                "effect": "NoExecute",
                "tolerationSeconds": 300,
            },
        ],
    )


def _qos_class(spec: dict[str, Any]) -> str:
    requests = limits = False
    for container in spec.get("containers") or []:
        resources = container.get("resources") or {} if isinstance(container, dict) else {}
        requests = requests or bool(resources.get("requests"))
        limits = limits or bool(resources.get("limits"))
    return "Burstable" if requests or limits else "BestEffort"


def prepare_create(rdef: ResourceDef, obj: dict[str, Any], ips: ClusterIPAllocator) -> None:
    """Defaults and the initial status a new object gets from its kind's strategy."""
    if rdef.group == "" and rdef.plural == "pods":
        _default_pod(obj)
        obj["status"] = {"phase": "Pending", "qosClass": _qos_class(obj["spec"])}
    elif rdef.group == "" and rdef.plural == "services":
        spec = obj.setdefault("spec", {})
        spec.setdefault("type", "ClusterIP")
        spec.setdefault("sessionAffinity", "None")
        if spec.get("clusterIP") in (None, ""):
            spec["clusterIP"] = ips.allocate()
        spec.setdefault("clusterIPs", [spec["clusterIP"]])
        spec.setdefault("ipFamilies", ["IPv4"])
        spec.setdefault("ipFamilyPolicy", "SingleStack")
        spec.setdefault("internalTrafficPolicy", "Cluster")
        for port in spec.get("ports") or []:
            if isinstance(port, dict):
                port.setdefault("protocol", "TCP")
                port.setdefault("targetPort", port.get("port"))
        obj["status"] = {"loadBalancer": {}}
    elif rdef.group == "" and rdef.plural == "namespaces":
        obj.setdefault("spec", {})["finalizers"] = ["kubernetes"]
        obj["status"] = {"phase": "Active"}
        obj["metadata"].setdefault("labels", {})["kubernetes.io/metadata.name"] = obj["metadata"][
            "name"
        ]
    elif rdef.group == "apps" and rdef.plural == "deployments":
        spec = obj.setdefault("spec", {})
        spec.setdefault("replicas", 1)
        spec.setdefault("revisionHistoryLimit", 10)
        spec.setdefault("progressDeadlineSeconds", 600)
        spec.setdefault(
            "strategy",
            {
                "type": "RollingUpdate",
                "rollingUpdate": {"maxUnavailable": "25%", "maxSurge": "25%"},
            },
        )
        template_spec = (spec.get("template") or {}).get("spec")
        if isinstance(template_spec, dict):
            _default_pod({"spec": template_spec}, admission=False)
        obj["status"] = {}
    elif rdef.group == "apiextensions.k8s.io":
        spec = obj.setdefault("spec", {})
        names = spec.setdefault("names", {})
        if isinstance(names, dict) and names.get("kind"):
            names.setdefault("singular", str(names["kind"]).lower())
            names.setdefault("listKind", f"{names['kind']}List")
        for version in spec.get("versions") or []:
            if isinstance(version, dict):
                version.setdefault("served", True)
        obj["status"] = {}
    elif rdef.has_status:
        obj.pop("status", None)


def validate_kind(rdef: ResourceDef, obj: dict[str, Any]) -> list[StatusCause]:
    causes: list[StatusCause] = []
    spec = obj.get("spec")
    if rdef.group == "" and rdef.plural == "pods":
        if not isinstance(spec, dict):
            return [field_required("spec", "")]
        containers = spec.get("containers")
        if not containers:
            causes.append(field_required("spec.containers", ""))
        seen: set[str] = set()
        for i, container in enumerate(containers or []):
            if not isinstance(container, dict):
                causes.append(
                    field_invalid(f"spec.containers[{i}]", container, "must be an object")
                )
                continue
            name = container.get("name")
            if not name:
                causes.append(field_required(f"spec.containers[{i}].name", ""))
            else:
                for err in dns1123_label_errors(str(name)):
                    causes.append(field_invalid(f"spec.containers[{i}].name", name, err))
                if name in seen:
                    causes.append(field_duplicate(f"spec.containers[{i}].name", name))
                seen.add(str(name))
            if not container.get("image"):
                causes.append(field_required(f"spec.containers[{i}].image", ""))
        for key in ("hostname", "subdomain"):
            value = spec.get(key)
            if value:
                for err in dns1123_label_errors(str(value)):
                    causes.append(field_invalid(f"spec.{key}", value, err))
    elif rdef.group == "" and rdef.plural == "services":
        if not isinstance(spec, dict):
            return [field_required("spec", "")]
        for i, port in enumerate(spec.get("ports") or []):
            value = port.get("port") if isinstance(port, dict) else None
            if not isinstance(value, int) or not 1 <= value <= 65535:
                causes.append(
                    field_invalid(
                        f"spec.ports[{i}].port", value, "must be between 1 and 65535, inclusive"
                    )
                )
    elif rdef.group == "apiextensions.k8s.io":
        causes.extend(_validate_crd(obj))
    return causes


def strategic_schema(rdef: ResourceDef) -> Any:
    """Patch metadata for served built-ins that kubesim.fields.patching does not list
    (Deployment: its pod template merges like a Pod), else the metadata-only rules."""
    known = strategic_schema_for(rdef.group, rdef.version, rdef.kind)
    if known is not None:
        return known
    pod = STRATEGIC_SCHEMAS[("", "v1", "Pod")]
    meta = pod.child("metadata")
    if (rdef.group, rdef.kind) == ("apps", "Deployment"):
        template = StrategicSchema({"metadata": meta, "spec": pod.child("spec")})
        conditions = StrategicSchema({}, "merge", "type")
        return StrategicSchema(
            {
                "metadata": meta,
                "spec": StrategicSchema({"template": template}),
                "status": StrategicSchema({"conditions": conditions}),
            }
        )
    return StrategicSchema({"metadata": meta})


def validate_update(
    rdef: ResourceDef, obj: dict[str, Any], old: dict[str, Any]
) -> list[StatusCause]:
    """Update-only rules: immutable ConfigMaps/Secrets, a Service's cluster IP."""
    causes: list[StatusCause] = []
    if rdef.group == "" and rdef.plural in ("configmaps", "secrets") and old.get("immutable"):
        for key in ("data", "binaryData", "stringData"):
            if obj.get(key) != old.get(key) and not (key == "stringData" and not obj.get(key)):
                causes.append(field_forbidden(key, "field is immutable when `immutable` is set"))
        if not obj.get("immutable"):
            causes.append(
                field_forbidden("immutable", "field is immutable when `immutable` is set")
            )
    if rdef.group == "" and rdef.plural == "services":
        old_ip = (old.get("spec") or {}).get("clusterIP")
        new_ip = (obj.get("spec") or {}).get("clusterIP")
        if old_ip and new_ip and old_ip != new_ip:
            causes.append(field_invalid("spec.clusterIPs[0]", [new_ip], "may not change once set"))
    return causes


def _validate_crd(obj: dict[str, Any]) -> list[StatusCause]:
    causes: list[StatusCause] = []
    spec = obj.get("spec") or {}
    group = spec.get("group")
    names = spec.get("names") or {}
    plural = names.get("plural")
    if not group:
        causes.append(field_required("spec.group", ""))
    elif dns1123_subdomain_errors(group) or "." not in group:
        causes.append(
            field_invalid("spec.group", group, "should be a domain with at least one dot")
        )
    if not plural:
        causes.append(field_required("spec.names.plural", ""))
    if not names.get("kind"):
        causes.append(field_required("spec.names.kind", ""))
    if spec.get("scope") not in ("Namespaced", "Cluster"):
        causes.append(
            field_not_supported("spec.scope", spec.get("scope"), ["Cluster", "Namespaced"])
        )
    if plural and group and obj["metadata"].get("name") != f"{plural}.{group}":
        causes.append(
            field_invalid(
                "metadata.name",
                obj["metadata"].get("name"),
                'must be spec.names.plural+"."+spec.group',
            )
        )
    versions = spec.get("versions") or []
    if not versions:
        causes.append(
            field_required(
                "spec.versions", "must have exactly one version marked as storage version"
            )
        )
    elif sum(1 for v in versions if isinstance(v, dict) and v.get("storage")) != 1:
        causes.append(
            field_invalid(
                "spec.versions", versions, "must have exactly one version marked as storage version"
            )
        )
    for i, version in enumerate(versions):
        schema = ((version or {}).get("schema") or {}).get("openAPIV3Schema")
        if schema is None:
            causes.append(
                field_required(f"spec.versions[{i}].schema.openAPIV3Schema", "schemas are required")
            )
            continue
        for problem in validate_structural(schema):
            causes.append(field_invalid(f"spec.versions[{i}].schema.openAPIV3Schema", "", problem))
    return causes


#: JSONSchemaProps fields of Go type bool: a CRD body with anything else there fails to decode
#: (OpenAPI v3.0; e.g. JSON Schema 2020-12's numeric ``exclusiveMinimum``).
_SCHEMA_BOOL_FIELDS: Final = (
    "exclusiveMaximum",
    "exclusiveMinimum",
    "uniqueItems",
    "nullable",
    "x-kubernetes-preserve-unknown-fields",
    "x-kubernetes-embedded-resource",
    "x-kubernetes-int-or-string",
)
_SCHEMA_MAP_FIELDS: Final = ("properties", "patternProperties", "definitions")
_SCHEMA_LIST_FIELDS: Final = ("allOf", "anyOf", "oneOf")


def _go_json_kind(value: Any) -> str:
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, int | float):
        return "number"
    if isinstance(value, str):
        return "string"
    return "array" if isinstance(value, list) else "object"


def _schema_decode_error(schema: Any, go_path: str) -> str | None:
    """Go's ``json: cannot unmarshal`` for the first mistyped bool field (None if it decodes).

    The path is Go's: JSON field names from the CRD's root, map keys and list indexes left out.
    """
    if not isinstance(schema, dict):
        return None
    for name in _SCHEMA_BOOL_FIELDS:
        value = schema.get(name)
        if value is not None and not isinstance(value, bool):
            return (
                f"json: cannot unmarshal {_go_json_kind(value)} into Go struct field "
                f"JSONSchemaProps.{go_path}.{name} of type bool"
            )
    children: list[tuple[Any, str]] = []
    for name in _SCHEMA_MAP_FIELDS:
        if isinstance(schema.get(name), dict):
            children += [(sub, f"{go_path}.{name}") for sub in schema[name].values()]
    for name in _SCHEMA_LIST_FIELDS:
        if isinstance(schema.get(name), list):
            children += [(sub, f"{go_path}.{name}") for sub in schema[name]]
    for name in ("items", "additionalProperties", "not"):
        sub = schema.get(name)
        subs = sub if isinstance(sub, list) else [sub]
        children += [(item, f"{go_path}.{name}") for item in subs if isinstance(item, dict)]
    for sub, path in children:
        error = _schema_decode_error(sub, path)
        if error is not None:
            return error
    return None


def crd_decode_error(crd: dict[str, Any]) -> str | None:
    """Why kube-apiserver cannot decode this CRD body into its Go type (400), if it cannot."""
    spec = crd.get("spec")
    versions = spec.get("versions") if isinstance(spec, dict) else None
    for version in versions if isinstance(versions, list) else []:
        schema = ((version or {}).get("schema") or {}).get("openAPIV3Schema")
        error = _schema_decode_error(schema, "spec.versions.schema.openAPIV3Schema")
        if error is not None:
            return (
                'CustomResourceDefinition in version "v1" cannot be handled as a '
                f"CustomResourceDefinition: {error}"
            )
    return None


def crd_resource_defs(crd: dict[str, Any]) -> list[ResourceDef]:
    """The resources a CRD serves, one per served version, sharing one storage."""
    spec = crd["spec"]
    names = spec["names"]
    group = spec["group"]
    out: list[ResourceDef] = []
    for version in spec.get("versions") or []:
        if not version.get("served", True):
            continue
        raw_schema = (version.get("schema") or {}).get("openAPIV3Schema") or {}
        compiled = compile_schema(raw_schema)
        subresources = version.get("subresources") or {}
        out.append(
            ResourceDef(
                group,
                version["name"],
                names["kind"],
                names["plural"],
                names.get("singular") or names["kind"].lower(),
                spec.get("scope") == "Namespaced",
                short_names=list(names.get("shortNames") or []),
                categories=list(names.get("categories") or []),
                has_status="status" in subresources,
                strategic=False,
                has_generation=True,
                schema=compiled,
                raw_schema=raw_schema,
                printer_columns=version.get("additionalPrinterColumns"),
                crd_name=crd["metadata"]["name"],
                field_labels=frozenset(
                    {"metadata.name", "metadata.namespace"}
                    | {
                        str(f.get("jsonPath", "")).lstrip(".")
                        for f in version.get("selectableFields") or []
                    }
                ),
            )
        )
    return out


# -- events: one storage, two API groups --------------------------------------------------------
# kube-apiserver stores core/v1 Events and serves events.k8s.io/v1 by conversion; kubesim stores
# the core form and converts the events.k8s.io view on the way in and out.

_RENAMES_V1 = {
    "involvedObject": "regarding",
    "message": "note",
    "source": "deprecatedSource",
    "firstTimestamp": "deprecatedFirstTimestamp",
    "lastTimestamp": "deprecatedLastTimestamp",
    "count": "deprecatedCount",
    "reportingComponent": "reportingController",
}


def event_core_to_v1(obj: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {"kind": "Event", "apiVersion": "events.k8s.io/v1"}
    for key, value in obj.items():
        if key in ("kind", "apiVersion"):
            continue
        out[_RENAMES_V1.get(key, key)] = value
    return out


def event_v1_to_core(obj: dict[str, Any]) -> dict[str, Any]:
    back = {v: k for k, v in _RENAMES_V1.items()}
    out: dict[str, Any] = {"kind": "Event", "apiVersion": "v1"}
    for key, value in obj.items():
        if key in ("kind", "apiVersion"):
            continue
        out[back.get(key, key)] = value
    return out
