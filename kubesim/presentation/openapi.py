"""OpenAPI v3 (and a v2 fallback) documents describing what kubesim serves.

Why this exists: ``kubectl`` reads ``/openapi/v3`` for three things we rely on. With the default
``--validate=strict`` it decides whether the server does field validation by looking for the
``fieldValidation`` query parameter on the PATCH operation carrying the kind's
``x-kubernetes-group-version-kind`` (cli-runtime ``query_param_verifier_v3.go``); without it,
kubectl falls back to client-side validation against the schemas. ``kubectl apply`` looks up
strategic-merge patch metadata (``x-kubernetes-patch-merge-key``) for built-ins there, and
``kubectl explain`` prints the field descriptions.

Built-in definitions come from the real Kubernetes 1.32 JSON schemas shipped by the
``kubernetes-validate`` package (same generation as the ``kubectl`` on the machine image),
converted back to OpenAPI 3 form. Custom resources publish their CRD's ``openAPIV3Schema`` with
``metadata`` pointing at ObjectMeta, as the apiextensions-apiserver does.

Docs: https://kubernetes.io/docs/concepts/overview/kubernetes-api/#openapi-interface-definition
and https://kubernetes.io/docs/reference/using-api/api-concepts/#field-validation
"""

from __future__ import annotations

import copy
import hashlib
import json
import uuid
from collections.abc import Iterable, Mapping, Sequence
from typing import Any, Final, Protocol

from kubesim.schema.builtin import (
    KUBERNETES_VERSION,
    builtin_definition_name,
    builtin_definitions,
)
from kubesim.schema.structural import schema_generation

__all__ = [
    "OPENAPI_V2_PROTOBUF",
    "ServedResource",
    "openapi_v2_document",
    "openapi_v2_protobuf",
    "openapi_v3_document",
    "openapi_v3_index",
]

_OBJECT_META: Final = "io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta"
_LIST_META: Final = "io.k8s.apimachinery.pkg.apis.meta.v1.ListMeta"
_STATUS: Final = "io.k8s.apimachinery.pkg.apis.meta.v1.Status"
_PATCH: Final = "io.k8s.apimachinery.pkg.apis.meta.v1.Patch"
_DELETE_OPTIONS: Final = "io.k8s.apimachinery.pkg.apis.meta.v1.DeleteOptions"
_WATCH_EVENT: Final = "io.k8s.apimachinery.pkg.apis.meta.v1.WatchEvent"
# Changes whenever the process restarts, so kubectl's hash-keyed disk cache never serves a
# document from an earlier kubesim that happened to listen on the same port.
_PROCESS_TOKEN: Final = uuid.uuid4().hex


class ServedResource(Protocol):
    """What this module needs to know about one served resource (kubesim's ResourceDef)."""

    group: str
    version: str
    kind: str
    plural: str
    namespaced: bool
    has_status: bool
    raw_schema: dict[str, Any] | None


def _to_openapi(node: Any, ref_prefix: str) -> Any:
    """JSON-schema form (``type: [x, null]``, ``$defs``) back to the apiserver's OpenAPI form."""
    if isinstance(node, list):
        return [_to_openapi(item, ref_prefix) for item in node]
    if not isinstance(node, dict):
        return node
    if "oneOf" in node and sorted(
        (t["type"][0] if isinstance(t.get("type"), list) else t.get("type")) for t in node["oneOf"]
    ) == ["integer", "string"]:
        out_ios: dict[str, Any] = {k: v for k, v in node.items() if k != "oneOf"}
        out_ios.update(
            {"type": "string", "format": "int-or-string", "x-kubernetes-int-or-string": True}
        )
        return out_ios
    out: dict[str, Any] = {}
    for key, value in node.items():
        if key == "type" and isinstance(value, list):
            kinds = [v for v in value if v != "null"]
            if len(kinds) == 1:
                out["type"] = kinds[0]
            elif kinds:
                out["type"] = kinds
        elif key == "$ref" and isinstance(value, str):
            out["$ref"] = ref_prefix + value.rsplit("/", 1)[-1]
        elif key in ("properties", "patternProperties") and isinstance(value, dict):
            out[key] = {name: _to_openapi(sub, ref_prefix) for name, sub in value.items()}
        else:
            out[key] = _to_openapi(value, ref_prefix)
    if "$ref" in out and len(out) > 1:
        # A $ref ignores its siblings; the apiserver wraps it to keep the field description.
        ref = out.pop("$ref")
        out["allOf"] = [{"$ref": ref}]
    return out


def _strip_kind_enums(definition: dict[str, Any]) -> dict[str, Any]:
    # kubernetes-validate pins apiVersion/kind with enums; the apiserver's spec does not.
    props = definition.get("properties")
    if isinstance(props, dict):
        for key in ("apiVersion", "kind"):
            if isinstance(props.get(key), dict):
                props[key] = {k: v for k, v in props[key].items() if k != "enum"}
    return definition


def _refs(node: Any) -> Iterable[str]:
    if isinstance(node, dict):
        for key, value in node.items():
            if key == "$ref" and isinstance(value, str):
                yield value.rsplit("/", 1)[-1]
            else:
                yield from _refs(value)
    elif isinstance(node, list):
        for item in node:
            yield from _refs(item)


def _closure(names: Iterable[str], ref_prefix: str) -> dict[str, Any]:
    """The named definitions and everything they reference, in OpenAPI form."""
    raw = builtin_definitions()
    out: dict[str, Any] = {}
    pending = list(names)
    while pending:
        name = pending.pop()
        if name in out or name not in raw:
            continue
        out[name] = _strip_kind_enums(_to_openapi(copy.deepcopy(raw[name]), ref_prefix))
        pending.extend(_refs(raw[name]))
    return out


# --------------------------------------------------------------------------------------------
# Custom resource definitions
# --------------------------------------------------------------------------------------------


def _crd_definition_name(group: str, version: str, kind: str) -> str:
    # apiextensions-apiserver names them by the reversed group: com.example.v1.Widget
    reversed_group = ".".join(reversed(group.split("."))) if group else ""
    return f"{reversed_group}.{version}.{kind}" if reversed_group else f"{version}.{kind}"


def _unfold_int_or_string(node: Any) -> None:
    """Validation schema publishing unfolds ``x-kubernetes-int-or-string: true`` into
    ``anyOf: [{type: integer}, {type: string}]``, as apiextensions-apiserver's structural
    ``Unfold`` does (docs: CustomResourceDefinitions, "IntOrString"). kubectl explain still prints such a
    field as ``<Object>``: its type guess reads ``type`` only (kubernetes/kubernetes#130946)."""
    if isinstance(node, list):
        for item in node:
            _unfold_int_or_string(item)
        return
    if not isinstance(node, dict):
        return
    for value in node.values():
        _unfold_int_or_string(value)
    # A schema that already spells out one of the two allowed patterns is published as written.
    if (
        node.get("x-kubernetes-int-or-string") is True
        and "anyOf" not in node
        and "allOf" not in node
    ):
        node["anyOf"] = [{"type": "integer"}, {"type": "string"}]


def _crd_definition(resource: ServedResource, ref_prefix: str) -> dict[str, Any]:
    schema = copy.deepcopy(
        resource.raw_schema or {"type": "object", "x-kubernetes-preserve-unknown-fields": True}
    )
    _unfold_int_or_string(schema)
    props = schema.setdefault("properties", {})
    props["apiVersion"] = {
        "type": "string",
        "description": "APIVersion defines the versioned schema of this representation of an object. "
        "Servers should convert recognized schemas to the latest internal value, and may reject "
        "unrecognized values. More info: "
        "https://git.k8s.io/community/contributors/devel/sig-architecture/api-conventions.md#resources",
    }
    props["kind"] = {
        "type": "string",
        "description": "Kind is a string value representing the REST resource this object represents. "
        "Servers may infer this from the endpoint the client submits requests to. Cannot be "
        "updated. In CamelCase. More info: "
        "https://git.k8s.io/community/contributors/devel/sig-architecture/api-conventions.md#types-kinds",
    }
    props["metadata"] = {
        "allOf": [{"$ref": ref_prefix + _OBJECT_META}],
        "description": "Standard object's metadata. More info: "
        "https://git.k8s.io/community/contributors/devel/sig-architecture/api-conventions.md#metadata",
    }
    schema["x-kubernetes-group-version-kind"] = [
        {"group": resource.group, "kind": resource.kind, "version": resource.version}
    ]
    return schema


def _list_definition(item_ref: str, resource: ServedResource, ref_prefix: str) -> dict[str, Any]:
    return {
        "description": f"{resource.kind}List is a list of {resource.kind}",
        "type": "object",
        "required": ["items"],
        "properties": {
            "apiVersion": {"type": "string"},
            "items": {"type": "array", "items": {"$ref": ref_prefix + item_ref}},
            "kind": {"type": "string"},
            "metadata": {"allOf": [{"$ref": ref_prefix + _LIST_META}]},
        },
        "x-kubernetes-group-version-kind": [
            {"group": resource.group, "kind": f"{resource.kind}List", "version": resource.version}
        ],
    }


# --------------------------------------------------------------------------------------------
# Paths
# --------------------------------------------------------------------------------------------

_QUERY_DESCRIPTIONS: Final[dict[str, str]] = {
    "dryRun": "When present, indicates that modifications should not be persisted.",
    "fieldManager": "fieldManager is a name associated with the actor or entity that is making these changes.",
    "fieldValidation": "fieldValidation instructs the server on how to handle objects in the request "
    "(POST/PUT/PATCH) containing unknown or duplicate fields. Valid values are: - Ignore - Warn - Strict",
    "force": 'Force is going to "force" Apply requests.',
    "pretty": "If 'true', then the output is pretty printed.",
    "labelSelector": "A selector to restrict the list of returned objects by their labels.",
    "fieldSelector": "A selector to restrict the list of returned objects by their fields.",
    "limit": "limit is a maximum number of responses to return for a list call.",
    "continue": "The continue option should be set when retrieving more results from the server.",
    "resourceVersion": "resourceVersion sets a constraint on what resource versions a request may be served from.",
    "resourceVersionMatch": "resourceVersionMatch determines how resourceVersion is applied to list calls.",
    "timeoutSeconds": "Timeout for the list/watch call.",
    "watch": "Watch for changes to the described resources.",
    "allowWatchBookmarks": 'allowWatchBookmarks requests watch events with type "BOOKMARK".',
    "gracePeriodSeconds": "The duration in seconds before the object should be deleted.",
    "propagationPolicy": "Whether and how garbage collection will be performed.",
}
_QUERY_TYPES: Final[dict[str, str]] = {
    "limit": "integer",
    "timeoutSeconds": "integer",
    "gracePeriodSeconds": "integer",
    "watch": "boolean",
    "allowWatchBookmarks": "boolean",
    "force": "boolean",
}


def _query(*names: str) -> list[dict[str, Any]]:
    return [
        {
            "name": name,
            "in": "query",
            "description": _QUERY_DESCRIPTIONS[name],
            "schema": {"type": _QUERY_TYPES.get(name, "string"), "uniqueItems": True},
        }
        for name in names
    ]


def _path_param(name: str, description: str) -> dict[str, Any]:
    return {
        "name": name,
        "in": "path",
        "required": True,
        "description": description,
        "schema": {"type": "string", "uniqueItems": True},
    }


def _json_content(ref: str) -> dict[str, Any]:
    body = {"schema": {"$ref": ref}}
    return {"application/json": body, "application/yaml": body}


def _operation(
    action: str,
    operation_id: str,
    gvk: dict[str, str],
    ref_prefix: str,
    response_ref: str,
    parameters: list[dict[str, Any]],
    request_ref: str | None = None,
    patch_types: Sequence[str] = (),
) -> dict[str, Any]:
    op: dict[str, Any] = {
        "tags": [gvk["group"] or "core"],
        "operationId": operation_id,
        "parameters": parameters,
        "responses": {
            "200": {"description": "OK", "content": _json_content(ref_prefix + response_ref)},
            "401": {"description": "Unauthorized"},
        },
        "x-kubernetes-action": action,
        "x-kubernetes-group-version-kind": gvk,
    }
    if action == "post":
        op["responses"]["201"] = {
            "description": "Created",
            "content": _json_content(ref_prefix + response_ref),
        }
    if request_ref is not None:
        op["requestBody"] = {"content": _json_content(ref_prefix + request_ref), "required": True}
    if patch_types:
        patch_schema = {"schema": {"$ref": ref_prefix + _PATCH}}
        op["requestBody"] = {"content": dict.fromkeys(patch_types, patch_schema), "required": True}
    return op


def _camel(text: str) -> str:
    return text[:1].upper() + text[1:]


def _operation_id(verb: str, resource: ServedResource, suffix: str = "") -> str:
    group_part = (
        "".join(_camel(p) for p in resource.group.split(".")[:1]) if resource.group else "Core"
    )
    scope = "Namespaced" if resource.namespaced and verb not in ("listForAllNamespaces",) else ""
    return f"{verb}{group_part}{_camel(resource.version)}{scope}{resource.kind}{suffix}"


def _patch_types(resource: ServedResource) -> list[str]:
    """The PATCH bodies a resource accepts. kubectl apply computes a strategic merge patch only
    when the PATCH operation lists that type, so custom resources (which refuse it with 415)
    must not advertise it: kubectl then sends a JSON merge patch, as against kube-apiserver."""
    strategic = getattr(resource, "strategic", resource.raw_schema is None)
    types = [
        "application/apply-patch+yaml",
        "application/json-patch+json",
        "application/merge-patch+json",
    ]
    if strategic:
        types.append("application/strategic-merge-patch+json")
    return types


def _resource_paths(resource: ServedResource, definition: str, ref_prefix: str) -> dict[str, Any]:
    patch_types = _patch_types(resource)
    prefix = (
        f"/apis/{resource.group}/{resource.version}"
        if resource.group
        else f"/api/{resource.version}"
    )
    gvk = {"group": resource.group, "version": resource.version, "kind": resource.kind}
    list_def = f"{definition}List"
    scope_params: list[dict[str, Any]] = []
    collection = f"{prefix}/{resource.plural}"
    if resource.namespaced:
        collection = f"{prefix}/namespaces/{{namespace}}/{resource.plural}"
        scope_params = [
            _path_param("namespace", "object name and auth scope, such as for teams and projects")
        ]
    item = f"{collection}/{{name}}"
    name_param = [_path_param("name", f"name of the {resource.kind}")]
    write = _query("dryRun", "fieldManager", "fieldValidation")
    list_query = _query(
        "labelSelector",
        "fieldSelector",
        "limit",
        "continue",
        "resourceVersion",
        "resourceVersionMatch",
        "timeoutSeconds",
        "watch",
        "allowWatchBookmarks",
    )
    paths: dict[str, Any] = {
        collection: {
            "get": _operation(
                "list", _operation_id("list", resource), gvk, ref_prefix, list_def, list_query
            ),
            "post": _operation(
                "post",
                _operation_id("create", resource),
                gvk,
                ref_prefix,
                definition,
                write,
                definition,
            ),
            "delete": _operation(
                "deletecollection",
                _operation_id("deleteCollection", resource),
                gvk,
                ref_prefix,
                _STATUS,
                _query(
                    "labelSelector",
                    "fieldSelector",
                    "gracePeriodSeconds",
                    "propagationPolicy",
                    "dryRun",
                ),
            ),
            "parameters": [*scope_params, *_query("pretty")],
        },
        item: {
            "get": _operation(
                "get", _operation_id("read", resource), gvk, ref_prefix, definition, []
            ),
            "put": _operation(
                "put",
                _operation_id("replace", resource),
                gvk,
                ref_prefix,
                definition,
                write,
                definition,
            ),
            "patch": _operation(
                "patch",
                _operation_id("patch", resource),
                gvk,
                ref_prefix,
                definition,
                [*write, *_query("force")],
                patch_types=patch_types,
            ),
            "delete": _operation(
                "delete",
                _operation_id("delete", resource),
                gvk,
                ref_prefix,
                _STATUS,
                _query("gracePeriodSeconds", "propagationPolicy", "dryRun"),
                _DELETE_OPTIONS,
            ),
            "parameters": [*name_param, *scope_params, *_query("pretty")],
        },
    }
    if resource.has_status:
        paths[f"{item}/status"] = {
            "get": _operation(
                "get", _operation_id("read", resource, "Status"), gvk, ref_prefix, definition, []
            ),
            "put": _operation(
                "put",
                _operation_id("replace", resource, "Status"),
                gvk,
                ref_prefix,
                definition,
                write,
                definition,
            ),
            "patch": _operation(
                "patch",
                _operation_id("patch", resource, "Status"),
                gvk,
                ref_prefix,
                definition,
                [*write, *_query("force")],
                patch_types=patch_types,
            ),
            "parameters": [*name_param, *scope_params, *_query("pretty")],
        }
    if resource.namespaced:
        paths[f"{prefix}/{resource.plural}"] = {
            "get": _operation(
                "list",
                _operation_id("listForAllNamespaces", resource, "ForAllNamespaces"),
                gvk,
                ref_prefix,
                list_def,
                list_query,
            ),
            "parameters": _query("pretty"),
        }
    return paths


def _definition_for(resource: ServedResource, ref_prefix: str) -> tuple[str, dict[str, Any]]:
    """(definition name, definitions to publish) for one served resource."""
    builtin = (
        None
        if resource.raw_schema is not None
        else builtin_definition_name(resource.group, resource.version, resource.kind)
    )
    if builtin is not None:
        names = [builtin, f"{builtin}List", _STATUS, _PATCH, _DELETE_OPTIONS, _WATCH_EVENT]
        return builtin, _closure(names, ref_prefix)
    name = _crd_definition_name(resource.group, resource.version, resource.kind)
    definitions = _closure(
        [_OBJECT_META, _LIST_META, _STATUS, _PATCH, _DELETE_OPTIONS, _WATCH_EVENT], ref_prefix
    )
    definitions[name] = _crd_definition(resource, ref_prefix)
    definitions[f"{name}List"] = _list_definition(name, resource, ref_prefix)
    return name, definitions


# --------------------------------------------------------------------------------------------
# Documents
# --------------------------------------------------------------------------------------------


def _gv_path(group: str, version: str) -> str:
    return f"apis/{group}/{version}" if group else f"api/{version}"


def _document_hash(document: Mapping[str, Any]) -> str:
    # kube-apiserver publishes an uppercase hex SHA-512 of the document.
    return hashlib.sha512(json.dumps(document, sort_keys=True).encode()).hexdigest().upper()


def _fingerprint(resources: Sequence[ServedResource]) -> str:
    parts = [
        (r.group, r.version, r.kind, r.plural, r.namespaced, r.has_status, r.raw_schema)
        for r in resources
    ]
    return hashlib.sha256(json.dumps(parts, sort_keys=True, default=str).encode()).hexdigest()


_DOCUMENT_CACHE: dict[tuple[str, str, str], tuple[dict[str, Any], str]] = {}


def _cached_document(
    group: str, version: str, resources: Sequence[ServedResource]
) -> tuple[dict[str, Any], str]:
    selected = [r for r in resources if r.group == group and r.version == version]
    key = (group, version, _fingerprint(selected))
    cached = _DOCUMENT_CACHE.get(key)
    if cached is None:
        document = _build_document(selected)
        cached = (document, _document_hash(document))
        if len(_DOCUMENT_CACHE) > 256:
            _DOCUMENT_CACHE.clear()
        _DOCUMENT_CACHE[key] = cached
    return cached


def _build_document(resources: Sequence[ServedResource]) -> dict[str, Any]:
    ref_prefix = "#/components/schemas/"
    schemas: dict[str, Any] = {}
    paths: dict[str, Any] = {}
    for resource in resources:
        definition, definitions = _definition_for(resource, ref_prefix)
        schemas.update(definitions)
        paths.update(_resource_paths(resource, definition, ref_prefix))
    return {
        "openapi": "3.0.0",
        "info": {"title": "Kubernetes", "version": KUBERNETES_VERSION},
        "paths": paths,
        "components": {"schemas": dict(sorted(schemas.items()))},
    }


def openapi_v3_document(
    group: str, version: str, resources: Sequence[ServedResource]
) -> dict[str, Any]:
    """``/openapi/v3/api/v1`` or ``/openapi/v3/apis/<group>/<version>`` for these resources.

    Documents are cached by the content of the resources they describe; treat the result as
    read-only.
    """
    return _cached_document(group, version, resources)[0]


def openapi_v3_index(
    group_versions: Iterable[tuple[str, str]], resources: Sequence[ServedResource] | None = None
) -> dict[str, Any]:
    """``/openapi/v3``: one ``serverRelativeURL`` per group/version, with a content hash.

    Pass ``resources`` to hash the real documents (the hash must change when a CRD schema
    does, because kubectl caches documents by URL forever); without them the hash combines this
    process's identity with ``schema_generation()``, which changes whenever a CRD schema is
    compiled.
    """
    paths: dict[str, Any] = {}
    for group, version in group_versions:
        if resources is not None:
            digest = _cached_document(group, version, resources)[1]
        else:
            seed = f"{_PROCESS_TOKEN}/{schema_generation()}/{group}/{version}"
            digest = hashlib.sha512(seed.encode()).hexdigest().upper()
        path = _gv_path(group, version)
        paths[path] = {"serverRelativeURL": f"/openapi/v3/{path}?hash={digest}"}
    return {"paths": dict(sorted(paths.items()))}


def openapi_v2_document(resources: Sequence[ServedResource]) -> dict[str, Any]:
    """Swagger 2.0 (``/openapi/v2``) in JSON. kubectl 1.32 uses v3 whenever the server offers it
    and asks for v2 only as a fallback, in protobuf, so this is for other JSON clients."""
    ref_prefix = "#/definitions/"
    definitions: dict[str, Any] = {}
    paths: dict[str, Any] = {}
    for resource in resources:
        definition, defs = _definition_for(resource, ref_prefix)
        definitions.update(defs)
        for path, item in _resource_paths(resource, definition, ref_prefix).items():
            paths[path] = _v3_path_to_v2(item)
    return {
        "swagger": "2.0",
        "info": {"title": "Kubernetes", "version": KUBERNETES_VERSION},
        "paths": paths,
        "definitions": dict(sorted(definitions.items())),
    }


# kube-openapi answers the deprecated "...spec.v2@v1.0+protobuf" Accept with this type (Go's mime
# parser refuses the "@" in a Content-Type).
OPENAPI_V2_PROTOBUF: Final = "application/com.github.proto-openapi.spec.v2.v1.0+protobuf"


def _proto_string(field: int, text: str) -> bytes:
    data = text.encode()
    # Short strings only (a one-byte length), which is all this document holds.
    assert len(data) < 128
    return bytes([field << 3 | 2, len(data)]) + data


def openapi_v2_protobuf() -> bytes:
    """``/openapi/v2`` as client-go asks for it (gnostic ``openapi_v2.Document`` in protobuf):
    swagger "2.0" and info, without definitions or paths.

    Why no definitions: kubectl 1.32 (and Helm 4, which validates through kubectl's code) read
    v3 for every group-version the server publishes there and fall back to v2 only for kinds v3
    does not have, i.e. kinds the server does not serve, which a real v2 document lacks as well;
    for them the validator finds no schema and skips, and the apply then fails on the missing
    kind (Helm: "resource mapping not found ... ensure CRDs are installed first"), as on a real
    cluster. A JSON answer there breaks the client with "proto: cannot parse invalid wire-format
    data" instead."""
    info = _proto_string(1, "Kubernetes") + _proto_string(2, KUBERNETES_VERSION)
    return _proto_string(1, "2.0") + bytes([2 << 3 | 2, len(info)]) + info


def _v3_path_to_v2(item: Mapping[str, Any]) -> dict[str, Any]:
    def param(p: Mapping[str, Any]) -> dict[str, Any]:
        out = {k: v for k, v in p.items() if k != "schema"}
        out.update(p.get("schema") or {})
        return out

    converted: dict[str, Any] = {}
    for key, value in item.items():
        if key == "parameters":
            converted[key] = [param(p) for p in value]
            continue
        op = {k: v for k, v in value.items() if k not in ("requestBody", "responses", "parameters")}
        op["parameters"] = [param(p) for p in value.get("parameters", [])]
        body = value.get("requestBody")
        if body:
            schema = next(iter(body["content"].values()))["schema"]
            op["parameters"].append(
                {"name": "body", "in": "body", "required": True, "schema": schema}
            )
        op["consumes"] = list(body["content"]) if body else ["*/*"]
        op["produces"] = ["application/json", "application/yaml"]
        op["responses"] = {
            code: {
                "description": resp["description"],
                **(
                    {"schema": next(iter(resp["content"].values()))["schema"]}
                    if resp.get("content")
                    else {}
                ),
            }
            for code, resp in value["responses"].items()
        }
        converted[key] = op
    return converted
