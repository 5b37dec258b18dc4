"""Generate the ModelDeployment CustomResourceDefinition from the pydantic models.

`crds/modeldeployment.yaml` is the output of `modelfleet crd` and is never edited by hand; a test
regenerates it and fails on drift. The conversion turns pydantic's JSON Schema into a
*structural* OpenAPI v3 schema, the form the apiserver requires: every node typed, no `$ref`,
no `anyOf` except the int-or-string idiom, nullable optionals expressed as "not required".
"""

from __future__ import annotations

import json
from typing import Any

import yaml

from modelfleet.api import spec

#: Root-level rules: only the root may read metadata.name.
ROOT_VALIDATIONS: list[dict[str, str]] = [
    {
        "rule": "!has(self.spec.wells) || self.spec.wells.all(w, size(self.metadata.name) + size(w.id) <= 62)",
        "message": "metadata.name + '-' + a well id must fit in 63 characters: the pod name is "
        "the well's hostname; shorten the ModelDeployment name or the well ids",
        "fieldPath": ".spec.wells",
    }
]

PRINTER_COLUMNS: list[dict[str, Any]] = [
    {
        "name": "Model",
        "type": "string",
        "jsonPath": ".status.model",
        "description": "Model name@version in spec",
    },
    {
        "name": "Wells",
        "type": "integer",
        "jsonPath": ".status.wells",
        "description": "Wells in spec",
    },
    {
        "name": "Ready",
        "type": "integer",
        "jsonPath": ".status.readyWells",
        "description": "Wells whose pod is ready",
    },
    {
        "name": "Up-to-date",
        "type": "integer",
        "jsonPath": ".status.updatedWells",
        "description": "Wells serving the update revision",
    },
    {
        "name": "Available",
        "type": "integer",
        "jsonPath": ".status.availableWells",
        "description": "Wells ready for at least minReadySeconds",
    },
    {"name": "Phase", "type": "string", "jsonPath": ".status.phase", "description": "Fleet phase"},
    {
        "name": "Drifting",
        "type": "integer",
        "jsonPath": ".status.monitoring.wellsOverThreshold",
        "description": "Wells whose data drifts beyond spec.monitoring.thresholds (-o wide)",
        "priority": 1,
    },
    {"name": "Age", "type": "date", "jsonPath": ".metadata.creationTimestamp"},
]

_DROP_KEYS = {"title", "$defs"}


class _Converter:
    def __init__(self, defs: dict[str, Any]) -> None:
        self.defs = defs

    def convert(self, node: dict[str, Any]) -> dict[str, Any]:
        node = dict(node)
        if "$ref" in node:
            target = self.defs[node.pop("$ref").rsplit("/", 1)[-1]]
            merged = {**target, **node}  # a field's own description wins over its type's
            return self.convert(merged)
        if "allOf" in node and len(node["allOf"]) == 1:
            inner = node.pop("allOf")[0]
            return self.convert({**inner, **node})
        if "anyOf" in node:
            return self._convert_any_of(node)
        out: dict[str, Any] = {}
        for key, value in node.items():
            if key in _DROP_KEYS:
                continue
            if key == "properties":
                out["properties"] = {name: self.convert(sub) for name, sub in value.items()}
            elif key in ("items", "additionalProperties") and isinstance(value, dict):
                out[key] = self.convert(value)
            elif key == "const":
                out["enum"] = [value]
            elif key == "default" and value is None:
                continue
            elif key in ("exclusiveMinimum", "exclusiveMaximum") and not isinstance(value, bool):
                # JSON Schema 2020 gives the bound itself; OpenAPI v3.0 (the apiserver's) a
                # bound in minimum / maximum and a boolean beside it.
                out["minimum" if key == "exclusiveMinimum" else "maximum"] = value
                out[key] = True
            elif key == "description":
                out[key] = " ".join(value.split())  # docstrings wrap; kubectl explain re-wraps
            else:
                out[key] = value
        if "type" not in out and "x-kubernetes-int-or-string" not in out:
            raise ValueError(f"untyped schema node cannot be structural: {node}")
        return out

    def _convert_any_of(self, node: dict[str, Any]) -> dict[str, Any]:
        options = node.pop("anyOf")
        non_null = [o for o in options if o.get("type") != "null"]
        if node.get("x-kubernetes-int-or-string"):
            out = {k: v for k, v in node.items() if k not in _DROP_KEYS}
            if "description" in out:
                out["description"] = " ".join(out["description"].split())
            return out  # the marker alone types the node; CEL checks the percent form
        if len(non_null) == 1:
            return self.convert({**non_null[0], **node})
        raise ValueError(f"union cannot be expressed structurally: {options}")


def _camel_case_default(value: Any) -> Any:
    """Model defaults as the apiserver should apply them (camelCase keys, JSON values)."""
    if hasattr(value, "model_dump"):
        return value.model_dump(by_alias=True, exclude_none=True, mode="json")
    return value


def openapi_schema() -> dict[str, Any]:
    """The structural openAPIV3Schema of ModelDeployment."""
    raw = spec.ModelDeploymentSpec.model_json_schema(by_alias=True, mode="validation")
    status_raw = spec.ModelDeploymentStatus.model_json_schema(by_alias=True, mode="serialization")
    converter = _Converter({**raw.get("$defs", {}), **status_raw.get("$defs", {})})
    spec_schema = converter.convert(raw)
    status_schema = converter.convert(status_raw)
    # Sub-objects default to {} so the apiserver fills in their own defaults; rollout's default
    # is spelt out in full because kube-apiserver checks a default against the CEL rules of its
    # schema as it stands, before nested defaults (its rules read maxUnavailable, maxSurge and
    # progressDeadlineSeconds: `{}` makes the CRD itself refused with "no such key").
    spec_schema["properties"]["runtime"]["default"] = {}
    spec_schema["properties"]["rollout"]["default"] = _camel_case_default(spec.RolloutPolicy())
    spec_schema["properties"]["runtime"]["properties"]["resources"]["default"] = (
        _camel_case_default(spec.RuntimeSpec().resources)
    )
    status_schema.pop("required", None)
    schema = {
        "type": "object",
        "description": (spec.ModelDeployment.__doc__ or "").strip(),
        "required": ["spec"],
        "properties": {
            "apiVersion": {"type": "string", "description": "modelfleet.dev/v1alpha1"},
            "kind": {"type": "string", "description": "ModelDeployment"},
            "spec": spec_schema,
            "status": status_schema,
        },
        "x-kubernetes-validations": ROOT_VALIDATIONS,
    }
    # Types used twice (ConfigMapRef) share nodes; a copy keeps YAML anchors out of the CRD.
    result: dict[str, Any] = json.loads(json.dumps(schema))
    return result


def custom_resource_definition() -> dict[str, Any]:
    """The complete apiextensions.k8s.io/v1 CustomResourceDefinition."""
    return {
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {
            "name": f"{spec.PLURAL}.{spec.GROUP}",
            "labels": {"app.kubernetes.io/part-of": "modelfleet"},
        },
        "spec": {
            "group": spec.GROUP,
            "scope": "Namespaced",
            "names": {
                "kind": spec.KIND,
                "listKind": f"{spec.KIND}List",
                "plural": spec.PLURAL,
                "singular": spec.SINGULAR,
                "shortNames": list(spec.SHORT_NAMES),
                "categories": list(spec.CATEGORIES),
            },
            "versions": [
                {
                    "name": spec.VERSION,
                    "served": True,
                    "storage": True,
                    "subresources": {"status": {}},
                    "additionalPrinterColumns": PRINTER_COLUMNS,
                    "schema": {"openAPIV3Schema": openapi_schema()},
                }
            ],
        },
    }


HEADER = "# Generated by `modelfleet crd` from operator/modelfleet/api/spec.py. Do not edit.\n"


def render_crd_yaml() -> str:
    return HEADER + yaml.safe_dump(custom_resource_definition(), sort_keys=False, width=100)


def render_reference_markdown() -> str:
    """docs/reference.md: every field of the resource with its type, default and description."""
    schema = openapi_schema()
    lines = [
        "# ModelDeployment reference",
        "",
        "Generated by `modelfleet crd --reference docs/reference.md` from the same models as the CRD;",
        "`kubectl explain modeldeployment.<path>` prints the same descriptions.",
        "",
        f"`apiVersion: {spec.GROUP}/{spec.VERSION}`, `kind: {spec.KIND}`, short name "
        f"`{spec.SHORT_NAMES[0]}`, category `{spec.CATEGORIES[0]}`.",
        "",
        "| field | type | default | description |",
        "| --- | --- | --- | --- |",
    ]

    def type_of(node: dict[str, Any]) -> str:
        if node.get("x-kubernetes-int-or-string"):
            return "int or string"
        kind = str(node.get("type", ""))
        if kind == "array":
            return f"[]{type_of(node.get('items') or {})}"
        if kind == "object" and "additionalProperties" in node:
            return f"map[string]{type_of(node['additionalProperties'])}"
        return kind

    def walk(node: dict[str, Any], path: str) -> None:
        for name, sub in (node.get("properties") or {}).items():
            here = f"{path}.{name}"
            default = sub.get("default")
            shown = "" if default is None or default == {} else f"`{json.dumps(default)}`"
            required = " (required)" if name in (node.get("required") or []) else ""
            desc = str(sub.get("description", "")).replace("|", "\\|")
            lines.append(f"| `{here}`{required} | {type_of(sub)} | {shown} | {desc} |")
            walk(sub, here)
            items = sub.get("items")
            if isinstance(items, dict):
                walk(items, here + "[]")

    walk(schema["properties"]["spec"], "spec")
    walk(schema["properties"]["status"], "status")
    return "\n".join(lines) + "\n"
