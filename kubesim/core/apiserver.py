"""The API semantics of kube-apiserver, independent of HTTP: create, read, update, patch, delete,
list and watch with the metadata rules clients rely on.

Why this exists: the HTTP handlers, the simulated kubelet and the garbage collector must all
write through one path so that resourceVersions, generation, status-subresource rules,
finalizers and watch events are identical whoever writes. This module is that path; it raises
``ApiError`` with the apiserver's Status for every refusal.
Docs: https://kubernetes.io/docs/reference/using-api/api-concepts/ and
https://github.com/kubernetes/community/blob/master/contributors/devel/sig-architecture/api-conventions.md#metadata
"""

from __future__ import annotations

import base64
import binascii
import bisect
import json
import random
import re
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Final

from kubesim.core.kinds import (
    ClusterIPAllocator,
    crd_decode_error,
    crd_resource_defs,
    event_core_to_v1,
    event_v1_to_core,
    prepare_create,
    strategic_schema,
    validate_kind,
    validate_update,
)
from kubesim.core.registry import Registry, ResourceDef
from kubesim.core.selectors import FieldSelector, LabelSelector
from kubesim.core.store import Store, StoredObject
from kubesim.core.watch import Watcher
from kubesim.fields import apply, managed_fields, patching
from kubesim.schema.validation import validate_metadata
from kubesim.wire.errors import ApiError, StatusCause, field_forbidden, field_invalid
from kubesim.wire.jsonwire import clone, decode, encode

__all__ = ["MAX_OBJECT_BYTES", "ApiServer", "ListResult", "rfc3339"]

# etcd's default request limit (--max-request-bytes 1.5 MiB) bounds one stored object.
MAX_OBJECT_BYTES: Final = 1536 * 1024
CRD_STORAGE: Final = "apiextensions.k8s.io/customresourcedefinitions"
# kube-apiserver puts this finalizer on every CRD: deleting one first deletes its objects.
CRD_CLEANUP_FINALIZER: Final = "customresourcecleanup.apiextensions.k8s.io"
NAMESPACE_STORAGE: Final = "/namespaces"
POD_STORAGE: Final = "/pods"
#: The ServiceAccount every namespace gets and pods run as unless they name another.
DEFAULT_SERVICE_ACCOUNT: Final = "default"
_GENERATE_CHARS: Final = "bcdfghjklmnpqrstvwxz2456789"
DEFAULT_NAMESPACES: Final = ("default", "kube-system", "kube-public", "kube-node-lease")
NODE_NAME: Final = "kubesim-node"


def rfc3339(ts: float) -> str:
    return datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


@dataclass
class ListResult:
    items: list[StoredObject]
    resource_version: int
    continue_token: str | None
    remaining: int | None


@dataclass
class WriteResult:
    entry: StoredObject
    warnings: list[str]
    # DELETE only: False when the object is only marked (finalizers or grace period pending).
    deleted: bool = True
    # Server-side apply only: the apply created the object (201).
    created: bool = False


class ApiServer:
    """Owns the store and the registry; every write in kubesim goes through here."""

    def __init__(
        self,
        store: Store | None = None,
        registry: Registry | None = None,
        *,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.store = store or Store()
        self.registry = registry or Registry()
        self.clock = clock
        self.ips = ClusterIPAllocator()
        self._bootstrap()

    def _bootstrap(self) -> None:
        ns_def = self.resource("", "v1", "namespaces")
        for name in DEFAULT_NAMESPACES:
            self.create(ns_def, "", {"metadata": {"name": name}})
        node_def = self.resource("", "v1", "nodes")
        self.create(
            node_def,
            "",
            {
                "metadata": {
                    "name": NODE_NAME,
                    "labels": {"kubernetes.io/hostname": NODE_NAME, "kubernetes.io/os": "linux"},
                },
                "spec": {},
            },
        )
        node = self.get(node_def, "", NODE_NAME).copy()
        node["status"] = {
            "addresses": [
                {"type": "InternalIP", "address": "127.0.0.1"},
                {"type": "Hostname", "address": NODE_NAME},
            ],
            "conditions": [
                {
                    "type": "Ready",
                    "status": "True",
                    "reason": "KubeletReady",
                    "message": "kubesim simulated kubelet",
                    "lastHeartbeatTime": rfc3339(self.clock()),
                    "lastTransitionTime": rfc3339(self.clock()),
                }
            ],
            "nodeInfo": {
                "kubeletVersion": "v1.32.0-kubesim",
                "operatingSystem": "linux",
                "architecture": "amd64",
            },
        }
        self.replace(node_def, "", NODE_NAME, node, subresource="status")

    # -- lookups ---------------------------------------------------------------------------------

    def resource(self, group: str, version: str, plural: str) -> ResourceDef:
        rdef = self.registry.lookup(group, version, plural)
        if rdef is None:
            raise ApiError.resource_not_found()
        return rdef

    def now(self) -> str:
        return rfc3339(self.clock())

    def render(self, rdef: ResourceDef, entry: StoredObject) -> bytes:
        """The bytes of ``entry`` as ``rdef``'s group/version serves it."""
        if rdef.storage == "/events" and rdef.group:
            return encode(event_core_to_v1(entry.obj))
        if entry.obj.get("apiVersion") != rdef.api_version:
            obj = dict(entry.obj)
            obj["apiVersion"] = rdef.api_version
            return encode(obj)
        return entry.raw

    def view(self, rdef: ResourceDef, entry: StoredObject) -> dict[str, Any]:
        if rdef.storage == "/events" and rdef.group:
            return event_core_to_v1(entry.obj)
        if entry.obj.get("apiVersion") != rdef.api_version:
            obj = dict(entry.obj)
            obj["apiVersion"] = rdef.api_version
            return obj
        return entry.obj

    def needs_render(self, rdef: ResourceDef) -> bool:
        return bool(rdef.storage == "/events" and rdef.group) or rdef.crd_name is not None

    def get(self, rdef: ResourceDef, namespace: str, name: str) -> StoredObject:
        entry = self.store.get(rdef.storage, namespace if rdef.namespaced else "", name)
        if entry is None:
            raise ApiError.not_found(rdef.group, rdef.plural, name)
        return entry

    # -- list and watch --------------------------------------------------------------------------

    def _matcher(
        self, rdef: ResourceDef, namespace: str, label_selector: str, field_selector: str
    ) -> tuple[Callable[[StoredObject], bool], LabelSelector, FieldSelector]:
        labels = (
            LabelSelector.parse(label_selector) if label_selector else LabelSelector.everything()
        )
        fields = (
            FieldSelector.parse(field_selector, rdef.field_labels)
            if field_selector
            else FieldSelector()
        )
        converted = rdef.storage == "/events" and bool(rdef.group)
        ns = namespace if rdef.namespaced else ""
        label_empty = labels.empty()
        field_empty = fields.empty()

        def matches(entry: StoredObject) -> bool:
            if ns and entry.namespace != ns:
                return False
            if not label_empty and not labels.matches(entry.labels):
                return False
            if not field_empty:
                obj = event_core_to_v1(entry.obj) if converted else entry.obj
                if not fields.matches(obj):
                    return False
            return True

        return matches, labels, fields

    def list_objects(
        self,
        rdef: ResourceDef,
        namespace: str,
        *,
        label_selector: str = "",
        field_selector: str = "",
        limit: int = 0,
        continue_token: str = "",
        resource_version: str = "",
        resource_version_match: str = "",
    ) -> ListResult:
        """A list, consistent at one resourceVersion.

        The first page reads the current state. Later pages (continue) and
        ``resourceVersionMatch=Exact`` read the state *at* the token's resourceVersion,
        rebuilt from the watch history, like the apiserver's snapshot reads; a resourceVersion
        older than the history window answers 410 Expired.
        """
        matches, labels, fields = self._matcher(rdef, namespace, label_selector, field_selector)
        coll = self.store.collection(rdef.storage)
        ns = (namespace or None) if rdef.namespaced else None
        list_rv = self.store.resource_version
        start: tuple[str, str] | None = None
        snapshot = False
        if continue_token:
            list_rv, start = _decode_continue(continue_token)
            snapshot = True
            if list_rv < coll.evicted_rv:
                raise ApiError.expired(
                    "The provided continue parameter is too old to display a consistent list "
                    "result. You can start a new list without the continue parameter, or use the "
                    "continue token in this response to retrieve the remainder of the results. "
                    "Continuing with the provided token results in an inconsistent list - objects "
                    "that were created, modified, or deleted between the time the first chunk was "
                    "returned and now may show up in the list."
                )
        elif resource_version_match == "Exact":
            wanted = _parse_rv(resource_version)
            if wanted is None:
                raise ApiError.bad_request("resourceVersionMatch=Exact requires a resourceVersion")
            if wanted < coll.evicted_rv:
                raise ApiError.too_old_resource_version(wanted, coll.evicted_rv + 1)
            if wanted > list_rv:
                raise ApiError(
                    504, "Timeout", f"Too large resource version: {wanted}, current: {list_rv}"
                )
            list_rv, snapshot = wanted, True
        # Versions at list_rv of objects changed since (None: did not exist then).
        past: dict[tuple[str, str], StoredObject | None] = {}
        if snapshot:
            # Newest first, stopping at list_rv: the earliest change of a key wins (its "old").
            for event in reversed(coll.history):
                if event.rv <= list_rv:
                    break
                past[(event.obj.namespace, event.obj.name)] = event.old
        # Indexes: labels with required key=value pairs, then the namespace, then everything.
        required = labels.required_equalities()
        by_field = fields.required_equalities()
        if "metadata.name" in by_field:
            wanted_name = by_field["metadata.name"]
            if ns is not None or not rdef.namespaced:
                keys = [(ns or "", wanted_name)]
            else:
                keys = [k for k in coll.sorted_keys() if k[1] == wanted_name]
        elif required:
            keys = coll.keys_with_labels(required, ns)
        elif ns is not None:
            keys = coll.keys_in(ns)
        else:
            keys = coll.sorted_keys()
        if past:
            extra = {k for k in past if ns is None or k[0] == ns}
            keys = sorted(set(keys) | extra)
        if start is not None:
            keys = keys[bisect.bisect_right(keys, start) :]
        items: list[StoredObject] = []
        next_token: str | None = None
        remaining: int | None = None
        for i, key in enumerate(keys):
            entry = past[key] if key in past else coll.get(*key)
            if entry is None or not matches(entry):
                continue
            if limit and len(items) >= limit:
                next_token = _encode_continue(list_rv, (items[-1].namespace, items[-1].name))
                # Like the apiserver: unknown (unset) when selectors filter the list.
                remaining = len(keys) - i if labels.empty() and fields.empty() else None
                break
            items.append(entry)
        return ListResult(items, list_rv, next_token, remaining)

    def watch(
        self,
        rdef: ResourceDef,
        namespace: str,
        *,
        label_selector: str = "",
        field_selector: str = "",
        resource_version: str = "",
        send_initial_events: bool = False,
    ) -> tuple[Watcher, Callable[[], None]]:
        """Start a watch; returns the watcher and a function that detaches it."""
        matches, _, _ = self._matcher(rdef, namespace, label_selector, field_selector)
        transform: Callable[[str, StoredObject], bytes] | None = None
        if self.needs_render(rdef):

            def transform(type_: str, entry: StoredObject) -> bytes:
                return (
                    b'{"type":"'
                    + type_.encode()
                    + b'","object":'
                    + self.render(rdef, entry)
                    + b"}\n"
                )

        watcher = Watcher(matches, transform=transform)
        coll = self.store.collection(rdef.storage)
        rv = _parse_rv(resource_version)
        if rv is None or rv == 0 or send_initial_events:
            ns = (namespace or None) if rdef.namespaced else None
            keys = coll.keys_in(ns) if ns else coll.sorted_keys()
            for key in keys:
                entry = coll.get(*key)
                if entry is not None:
                    watcher.initial(entry)
            watcher.last_rv = self.store.resource_version
        else:
            for event in self.store.events_since(rdef.storage, rv):
                watcher.offer(event)
            watcher.last_rv = max(watcher.last_rv, rv)
        coll.listeners.append(watcher.offer)

        def detach() -> None:
            watcher.close()
            if watcher.offer in coll.listeners:
                coll.listeners.remove(watcher.offer)

        return watcher, detach

    # -- writes ------------------------------------------------------------------------------------

    def _check_body(self, rdef: ResourceDef, namespace: str, body: Any) -> dict[str, Any]:
        if not isinstance(body, dict):
            raise ApiError.bad_request(
                f"the object provided is unrecognized (must be of type {rdef.kind})"
            )
        api_version = body.get("apiVersion")
        if api_version and api_version != rdef.api_version:
            raise ApiError.bad_request(
                f"the API version in the data ({api_version}) does not match the expected API "
                f"version ({rdef.api_version})"
            )
        kind = body.get("kind")
        if kind and kind != rdef.kind:
            raise ApiError.bad_request(
                f"the kind in the data ({kind}) does not match the expected kind ({rdef.kind})"
            )
        meta = body.get("metadata")
        if meta is None:
            meta = body["metadata"] = {}
        if not isinstance(meta, dict):
            raise ApiError.bad_request("metadata must be an object")
        if rdef.namespaced:
            body_ns = meta.get("namespace")
            if body_ns and namespace and body_ns != namespace:
                raise ApiError.bad_request(
                    "the namespace of the provided object does not match the namespace sent on the request"
                )
            meta["namespace"] = namespace or body_ns or ""
        else:
            meta.pop("namespace", None)
        if rdef.group == "apiextensions.k8s.io" and rdef.plural == "customresourcedefinitions":
            undecodable = crd_decode_error(body)
            if undecodable is not None:
                raise ApiError.bad_request(undecodable)
        rest = {k: v for k, v in body.items() if k not in ("apiVersion", "kind", "metadata")}
        out: dict[str, Any] = {
            "apiVersion": rdef.api_version,
            "kind": rdef.kind,
            "metadata": meta,
            **rest,
        }
        if rdef.storage == "/events" and rdef.group:
            out = event_v1_to_core(out)
        return out

    def _check_namespace(self, rdef: ResourceDef, namespace: str) -> None:
        if not rdef.namespaced:
            return
        ns = self.store.get(NAMESPACE_STORAGE, "", namespace)
        if ns is None:
            raise ApiError.not_found("", "namespaces", namespace)
        if ns.obj["metadata"].get("deletionTimestamp"):
            raise ApiError(
                403,
                "Forbidden",
                f'{rdef.plural} "{namespace}" is forbidden: unable to create new content in '
                f"namespace {namespace} because it is being terminated",
                {"name": namespace, "group": rdef.group, "kind": rdef.plural},
                [
                    StatusCause(
                        "NamespaceTerminating",
                        f"namespace {namespace} is being terminated",
                        "metadata.namespace",
                    )
                ],
            )

    def _admit(
        self,
        rdef: ResourceDef,
        obj: dict[str, Any],
        old: dict[str, Any] | None,
        field_validation: str,
        warnings: list[str],
    ) -> dict[str, Any]:
        """Schema defaulting/pruning/validation, metadata and kind validation; raises 422."""
        meta = obj["metadata"]
        causes: list[StatusCause] = []
        if rdef.schema is not None:
            # Metadata, apiVersion and kind are the apiserver's, never pruned by a CRD schema.
            keep: dict[str, Any] = {
                k: obj[k] for k in ("metadata", "apiVersion", "kind") if k in obj
            }
            admitted, schema_causes, unknown = rdef.schema.admit(
                obj, old, strict_unknown=field_validation != "Ignore"
            )
            obj = admitted
            obj.update(keep)
            causes.extend(schema_causes)
            if unknown:
                if field_validation == "Strict":
                    raise ApiError.bad_request(
                        "strict decoding error: "
                        + ", ".join(f'unknown field "{p}"' for p in unknown)
                    )
                if field_validation in ("", "Warn"):
                    warnings.extend(f'unknown field "{p}"' for p in unknown)
        name_rule = "subdomain"
        if rdef.group == "" and rdef.plural in ("namespaces",):
            name_rule = "label"
        elif rdef.group == "" and rdef.plural == "services":
            name_rule = "dns1035"
        causes[:0] = validate_metadata(meta, name_rule=name_rule, namespaced=rdef.namespaced)
        causes.extend(validate_kind(rdef, obj))
        if causes:
            raise ApiError.invalid(rdef.group, rdef.kind, str(meta.get("name", "")), causes)
        return obj

    def _size_check(self, obj: dict[str, Any]) -> None:
        if len(encode(obj)) > MAX_OBJECT_BYTES:
            raise ApiError.request_entity_too_large("etcdserver: request is too large")

    def create(
        self,
        rdef: ResourceDef,
        namespace: str,
        body: Any,
        *,
        dry_run: bool = False,
        field_validation: str = "",
        field_manager: str | None = None,
        applied_fields: list[dict[str, Any]] | None = None,
    ) -> WriteResult:
        obj = self._check_body(rdef, namespace, body)
        meta = obj["metadata"]
        warnings: list[str] = []
        if meta.get("resourceVersion"):
            raise ApiError.bad_request("resourceVersion should not be set on objects to be created")
        if not meta.get("name") and meta.get("generateName"):
            meta["name"] = str(meta["generateName"]) + "".join(
                random.choice(_GENERATE_CHARS) for _ in range(5)
            )
        for key in ("deletionTimestamp", "deletionGracePeriodSeconds", "managedFields", "selfLink"):
            meta.pop(key, None)
        meta["uid"] = str(uuid.uuid4())
        meta["creationTimestamp"] = self.now()
        if rdef.has_generation:
            meta["generation"] = 1
        else:
            meta.pop("generation", None)
        if rdef.crd_name is not None:
            crd = self.store.get(CRD_STORAGE, "", rdef.crd_name)
            if crd is not None and crd.obj["metadata"].get("deletionTimestamp"):
                raise ApiError(
                    405,
                    "MethodNotAllowed",
                    "create not allowed while custom resource definition is terminating",
                    {"group": rdef.group, "kind": rdef.plural},
                )
        prepare_create(rdef, obj, self.ips)
        obj = self._admit(rdef, obj, None, field_validation, warnings)
        self._check_namespace(rdef, meta.get("namespace", ""))
        if rdef.storage == POD_STORAGE:
            self._check_service_account(obj)
        ns = meta.get("namespace", "") if rdef.namespaced else ""
        if self.store.get(rdef.storage, ns, meta["name"]) is not None:
            raise ApiError.already_exists(rdef.group, rdef.plural, meta["name"])
        if rdef.storage == CRD_STORAGE:
            self._check_crd_conflicts(obj)
            finalizers = meta.setdefault("finalizers", [])
            if CRD_CLEANUP_FINALIZER not in finalizers:
                finalizers.append(CRD_CLEANUP_FINALIZER)
        self._own_fields(rdef, None, obj, None, field_manager, None, applied_fields)
        self._size_check(obj)
        if dry_run:
            return WriteResult(_DryRun(obj), warnings)  # type: ignore[arg-type]
        entry = self.store.create(rdef.storage, obj)
        if rdef.storage == CRD_STORAGE:
            entry = self._establish_crd(entry)
        if rdef.storage == NAMESPACE_STORAGE:
            self._create_default_service_account(meta["name"])
        return WriteResult(entry, warnings)

    def _create_default_service_account(self, namespace: str) -> None:
        """kube-controller-manager's serviceaccounts controller: every namespace gets `default`
        (at once here; a real cluster has a short window where pods are refused for lack of it)."""
        account_def = self.resource("", "v1", "serviceaccounts")
        if self.store.get(account_def.storage, namespace, DEFAULT_SERVICE_ACCOUNT) is None:
            self.create(account_def, namespace, {"metadata": {"name": DEFAULT_SERVICE_ACCOUNT}})

    def _check_service_account(self, pod: dict[str, Any]) -> None:
        """The ServiceAccount admission plugin: a pod's service account must exist."""
        meta = pod["metadata"]
        namespace = meta.get("namespace", "")
        account = (pod.get("spec") or {}).get("serviceAccountName") or DEFAULT_SERVICE_ACCOUNT
        storage = self.resource("", "v1", "serviceaccounts").storage
        if self.store.get(storage, namespace, account) is None:
            raise ApiError(
                403,
                "Forbidden",
                f'pods "{meta.get("name", "")}" is forbidden: error looking up service account '
                f'{namespace}/{account}: serviceaccount "{account}" not found',
                {"name": meta.get("name", ""), "kind": "pods"},
            )

    def replace(
        self,
        rdef: ResourceDef,
        namespace: str,
        name: str,
        body: Any,
        *,
        subresource: str | None = None,
        dry_run: bool = False,
        field_validation: str = "",
        field_manager: str | None = None,
    ) -> WriteResult:
        old = self.get(rdef, namespace, name)
        obj = self._check_body(rdef, namespace, body)
        meta = obj["metadata"]
        if meta.get("name") and meta["name"] != name:
            raise ApiError.bad_request(
                "the name of the object ("
                f"{meta['name']}) does not match the name on the URL ({name})"
            )
        meta["name"] = name
        wanted_rv = meta.get("resourceVersion")
        if wanted_rv and str(wanted_rv) != str(old.rv):
            raise ApiError.conflict(rdef.group, rdef.plural, name)
        return self._update(rdef, old, obj, subresource, dry_run, field_validation, field_manager)

    def patch(
        self,
        rdef: ResourceDef,
        namespace: str,
        name: str,
        content_type: str,
        patch: Any,
        *,
        subresource: str | None = None,
        dry_run: bool = False,
        field_validation: str = "",
        field_manager: str | None = None,
    ) -> WriteResult:
        old = self.get(rdef, namespace, name)
        current = decode(self.render(rdef, old))
        if content_type == "application/json-patch+json":
            if not isinstance(patch, list):
                raise ApiError.bad_request(
                    "json: cannot unmarshal object into Go value of type jsonpatch.Patch"
                )
            new = patching.apply_json_patch(current, patch)
        elif content_type == "application/merge-patch+json":
            if not isinstance(patch, dict):
                raise ApiError.bad_request("error decoding patch: the patch must be a JSON object")
            new = patching.apply_merge_patch(current, patch)
        elif content_type == "application/strategic-merge-patch+json":
            if not rdef.strategic:
                raise ApiError.unsupported_media_type(
                    content_type,
                    [
                        "application/json-patch+json",
                        "application/merge-patch+json",
                        "application/apply-patch+yaml",
                    ],
                )
            if not isinstance(patch, dict):
                raise ApiError.bad_request("error decoding patch: the patch must be a JSON object")
            new = patching.apply_strategic_merge_patch(current, patch, strategic_schema(rdef))
        else:
            strategic = ["application/strategic-merge-patch+json"] if rdef.strategic else []
            raise ApiError.unsupported_media_type(
                content_type,
                [
                    "application/json-patch+json",
                    "application/merge-patch+json",
                    *strategic,
                    apply.APPLY_PATCH,
                ],
            )
        if not isinstance(new, dict):
            raise ApiError.bad_request("the patch did not produce an object")
        obj = self._check_body(rdef, namespace, new)
        meta = obj["metadata"]
        if meta.get("name") != name:
            raise ApiError.bad_request("metadata.name may not be changed by a patch")
        wanted_rv = meta.get("resourceVersion")
        if wanted_rv and str(wanted_rv) != str(old.rv):
            raise ApiError.conflict(rdef.group, rdef.plural, name)
        return self._update(rdef, old, obj, subresource, dry_run, field_validation, field_manager)

    def _update(
        self,
        rdef: ResourceDef,
        old: StoredObject,
        obj: dict[str, Any],
        subresource: str | None,
        dry_run: bool,
        field_validation: str,
        field_manager: str | None = None,
        applied_fields: list[dict[str, Any]] | None = None,
    ) -> WriteResult:
        warnings: list[str] = []
        sent_fields = None
        old_obj = old.obj
        old_meta = old_obj["metadata"]
        if subresource == "status":
            if not rdef.has_status:
                raise ApiError.resource_not_found()
            # The status endpoint changes status only: everything else comes from the stored
            # object (customresource statusStrategy.PrepareForUpdate, pod statusStrategy).
            status = obj.get("status")
            obj = old.copy()
            if status is None:
                obj.pop("status", None)
            else:
                obj["status"] = status
            if rdef.storage == "/events" and rdef.group:
                obj = event_v1_to_core(obj)
        elif subresource is not None:
            raise ApiError.method_not_allowed(rdef.group, f"{rdef.plural}/{subresource}", "update")
        else:
            meta = obj["metadata"]
            for key in (
                "uid",
                "creationTimestamp",
                "deletionTimestamp",
                "deletionGracePeriodSeconds",
                "generation",
            ):
                if key in old_meta:
                    meta[key] = old_meta[key]
                else:
                    meta.pop(key, None)
            sent_fields = meta.pop("managedFields", None)
            if rdef.has_status:
                if "status" in old_obj:
                    obj["status"] = old_obj["status"]
                else:
                    obj.pop("status", None)
            if rdef.group == "" and rdef.plural == "services":
                spec = obj.setdefault("spec", {})
                old_spec = old_obj.get("spec", {})
                if not spec.get("clusterIP") and old_spec.get("clusterIP"):
                    spec["clusterIP"] = old_spec["clusterIP"]
                    spec.setdefault("clusterIPs", old_spec.get("clusterIPs"))
            if rdef.group == "" and rdef.plural == "namespaces":
                obj["spec"] = old_obj.get("spec", {})
            if rdef.group == "" and rdef.plural == "pods":
                self._check_pod_update(old_obj, obj)
        meta = obj["metadata"]
        if old_meta.get("deletionTimestamp"):
            added = set(meta.get("finalizers") or []) - set(old_meta.get("finalizers") or [])
            if added:
                raise ApiError.invalid(
                    rdef.group,
                    rdef.kind,
                    old.name,
                    [
                        field_forbidden(
                            "metadata.finalizers",
                            "no new finalizers can be added if the object is being deleted, found new finalizers "
                            + json.dumps(sorted(added)),
                        )
                    ],
                )
        obj = self._admit(rdef, obj, old_obj, field_validation, warnings)
        update_causes = validate_update(rdef, obj, old_obj)
        if update_causes:
            raise ApiError.invalid(rdef.group, rdef.kind, old.name, update_causes)
        if rdef.has_generation:
            skip = {"metadata", "status"} if rdef.has_status else {"metadata"}
            skip |= {"apiVersion", "kind"}
            changed = any(obj.get(k) != old_obj.get(k) for k in (set(obj) | set(old_obj)) - skip)
            meta["generation"] = int(old_meta.get("generation", 1)) + (1 if changed else 0)
        self._own_fields(
            rdef, old_obj, obj, subresource, field_manager, sent_fields, applied_fields
        )
        self._size_check(obj)
        meta.pop("resourceVersion", None)
        if _same_content(obj, old_obj):
            # A no-op write does not bump resourceVersion nor emit an event (apiserver
            # short-circuits unchanged objects in GuaranteedUpdate).
            return WriteResult(old, warnings)
        if dry_run:
            return WriteResult(_DryRun(obj), warnings)  # type: ignore[arg-type]
        if (
            meta.get("deletionTimestamp")
            and not meta.get("finalizers")
            and not (
                rdef.storage == NAMESPACE_STORAGE and (obj.get("spec") or {}).get("finalizers")
            )
            and not (rdef.storage == POD_STORAGE and meta.get("deletionGracePeriodSeconds"))
        ):
            # The last finalizer is gone: the object is removed now.
            self.store.update(rdef.storage, obj)
            entry = self.store.delete(rdef.storage, old.namespace, old.name)
            self._after_delete(rdef, entry)
            return WriteResult(entry, warnings, deleted=True)
        entry = self.store.update(rdef.storage, obj)
        if (
            rdef.storage == CRD_STORAGE
            and subresource is None
            and not meta.get("deletionTimestamp")
        ):
            entry = self._establish_crd(entry)
        return WriteResult(entry, warnings)

    # -- field ownership and server-side apply (kubesim.fields) ----------------------------------

    def _own_fields(
        self,
        rdef: ResourceDef,
        old_obj: dict[str, Any] | None,
        obj: dict[str, Any],
        subresource: str | None,
        field_manager: str | None,
        sent: Any,
        applied: list[dict[str, Any]] | None,
    ) -> None:
        """metadata.managedFields of a write: an apply's, else the updater takes what it changed.
        Writes without a manager (kubesim's own kubelet and controllers) leave them as they are."""
        meta = obj["metadata"]
        if applied is not None:
            entries: Any = applied
        else:
            live = (old_obj or {}).get("metadata", {}).get("managedFields")
            entries = managed_fields.base_entries(sent, live)
            if field_manager is None and old_obj is not None and subresource is None:
                entries = managed_fields.forget_removed(
                    entries, old_obj, obj, self.shape(rdef), has_status=rdef.has_status
                )
            elif field_manager is not None:
                key = managed_fields.ManagerKey(
                    field_manager, "Update", rdef.api_version, subresource or ""
                )
                if old_obj is None:
                    entries = managed_fields.track_create(
                        obj, self.shape(rdef), key, self.now(), has_status=rdef.has_status
                    )
                else:
                    entries = managed_fields.track_update(
                        entries,
                        old_obj,
                        obj,
                        self.shape(rdef),
                        key,
                        self.now(),
                        has_status=rdef.has_status,
                        canonical=entries is live,
                    )
        if entries:
            meta["managedFields"] = entries
        else:
            meta.pop("managedFields", None)

    def shape(self, rdef: ResourceDef) -> managed_fields.ObjectShape:
        crd_schema = rdef.raw_schema if rdef.crd_name is not None else None
        return managed_fields.shape_for(rdef.group, rdef.version, rdef.kind, crd_schema)

    def apply(
        self,
        rdef: ResourceDef,
        namespace: str,
        name: str,
        body: Any,
        *,
        field_manager: str,
        force: bool = False,
        subresource: str | None = None,
        dry_run: bool = False,
        field_validation: str = "",
    ) -> WriteResult:
        """Server-side apply (PATCH application/apply-patch+yaml): creates the object if absent."""
        config = apply.check_configuration(body, rdef.kind, name)
        key = managed_fields.ManagerKey(field_manager, "Apply", rdef.api_version, subresource or "")
        existing = self.store.get(rdef.storage, namespace if rdef.namespaced else "", name)
        if existing is None:
            if subresource is not None:
                raise ApiError.not_found(rdef.group, rdef.plural, name)
            result = apply.apply_configuration(
                {},
                config,
                self.shape(rdef),
                key,
                force=force,
                now=self.now(),
                has_status=rdef.has_status,
            )
            written = self.create(
                rdef,
                namespace,
                result.obj,
                dry_run=dry_run,
                field_validation=field_validation,
                applied_fields=result.managed_fields,
            )
            written.created = True
            return written
        wanted_rv = (config.get("metadata") or {}).get("resourceVersion")
        if wanted_rv and str(wanted_rv) != str(existing.rv):
            raise ApiError.conflict(rdef.group, rdef.plural, name)
        result = apply.apply_configuration(
            decode(self.render(rdef, existing)),
            config,
            self.shape(rdef),
            key,
            force=force,
            now=self.now(),
            subresource=subresource,
            has_status=rdef.has_status,
        )
        obj = self._check_body(rdef, namespace, result.obj)
        return self._update(
            rdef,
            existing,
            obj,
            subresource,
            dry_run,
            field_validation,
            applied_fields=result.managed_fields,
        )

    def _check_pod_update(self, old: dict[str, Any], new: dict[str, Any]) -> None:
        """Pod spec is immutable except images, activeDeadlineSeconds and added tolerations."""
        old_spec = clone(old.get("spec") or {})
        new_spec = clone(new.get("spec") or {})
        for spec in (old_spec, new_spec):
            for key in ("containers", "initContainers"):
                for container in spec.get(key) or []:
                    if isinstance(container, dict):
                        container.pop("image", None)
            spec.pop("activeDeadlineSeconds", None)
            spec.pop("tolerations", None)
        if old_spec != new_spec:
            raise ApiError.invalid(
                "",
                "Pod",
                old["metadata"]["name"],
                [
                    field_forbidden(
                        "spec",
                        "pod updates may not change fields other than `spec.containers[*].image`,"
                        "`spec.initContainers[*].image`,`spec.activeDeadlineSeconds`,"
                        "`spec.tolerations` (only additions to existing tolerations),"
                        "`spec.terminationGracePeriodSeconds` (allow it to be set to 1 if it was "
                        "previously negative)",
                    )
                ],
            )

    # -- deletion ----------------------------------------------------------------------------------

    def delete(
        self,
        rdef: ResourceDef,
        namespace: str,
        name: str,
        options: dict[str, Any] | None = None,
        *,
        dry_run: bool = False,
    ) -> WriteResult:
        """Delete now, or mark with deletionTimestamp while finalizers or a grace period run."""
        options = options or {}
        old = self.get(rdef, namespace, name)
        if rdef.storage == NAMESPACE_STORAGE and name in ("default", "kube-system", "kube-public"):
            raise ApiError.forbidden("", "namespaces", name, "this namespace may not be deleted")
        pre = options.get("preconditions") or {}
        if pre.get("uid") and pre["uid"] != old.uid:
            raise ApiError.conflict(
                rdef.group,
                rdef.plural,
                name,
                f"Precondition failed: UID in precondition: {pre['uid']}, UID in object meta: {old.uid}",
            )
        if pre.get("resourceVersion") and str(pre["resourceVersion"]) != str(old.rv):
            raise ApiError.conflict(
                rdef.group,
                rdef.plural,
                name,
                f"Precondition failed: ResourceVersion in precondition: {pre['resourceVersion']}, "
                f"ResourceVersion in object meta: {old.rv}",
            )
        propagation = options.get("propagationPolicy")
        if propagation is None and options.get("orphanDependents") is not None:
            propagation = "Orphan" if options["orphanDependents"] else "Background"
        propagation = propagation or "Background"
        if propagation not in ("Background", "Foreground", "Orphan"):
            raise ApiError.invalid(
                rdef.group,
                rdef.kind,
                name,
                [
                    field_invalid(
                        "propagationPolicy",
                        propagation,
                        "propagationPolicy must be Background, Foreground or Orphan",
                    )
                ],
            )
        obj = old.copy()
        meta = obj["metadata"]
        finalizers: list[str] = list(meta.get("finalizers") or [])
        if propagation == "Foreground" and "foregroundDeletion" not in finalizers:
            finalizers.append("foregroundDeletion")
        if propagation == "Orphan" and "orphan" not in finalizers:
            finalizers.append("orphan")
        grace = 0
        if rdef.storage == POD_STORAGE:
            spec = obj.get("spec") or {}
            requested = options.get("gracePeriodSeconds")
            grace = int(
                requested
                if requested is not None
                else spec.get("terminationGracePeriodSeconds", 30)
            )
            phase = (obj.get("status") or {}).get("phase")
            if not spec.get("nodeName") or phase in ("Succeeded", "Failed"):
                # An unscheduled or terminated pod has no kubelet to wait for.
                grace = 0
        namespace_pending = rdef.storage == NAMESPACE_STORAGE and bool(
            (obj.get("spec") or {}).get("finalizers")
        )
        if dry_run:
            return WriteResult(old, [], deleted=not (finalizers or grace or namespace_pending))
        if meta.get("deletionTimestamp"):
            # Already being deleted: a shorter grace period may still be requested.
            current = meta.get("deletionGracePeriodSeconds")
            if rdef.storage == POD_STORAGE and current is not None and grace < current:
                meta["deletionGracePeriodSeconds"] = grace
                meta["deletionTimestamp"] = rfc3339(self.clock() + grace)
                if grace == 0 and not finalizers:
                    self.store.update(rdef.storage, obj)
                    return WriteResult(self.store.delete(rdef.storage, old.namespace, old.name), [])
                return WriteResult(self.store.update(rdef.storage, obj), [], deleted=False)
            if finalizers != list(meta.get("finalizers") or []):
                meta["finalizers"] = finalizers
                return WriteResult(self.store.update(rdef.storage, obj), [], deleted=False)
            return WriteResult(old, [], deleted=False)
        if finalizers or grace > 0 or namespace_pending:
            meta["deletionTimestamp"] = rfc3339(self.clock() + grace)
            meta["deletionGracePeriodSeconds"] = grace
            if finalizers:
                meta["finalizers"] = finalizers
            if rdef.storage == NAMESPACE_STORAGE:
                obj.setdefault("status", {})["phase"] = "Terminating"
            return WriteResult(self.store.update(rdef.storage, obj), [], deleted=False)
        entry = self.store.delete(rdef.storage, old.namespace, old.name)
        self._after_delete(rdef, entry)
        return WriteResult(entry, [])

    def finish_deletion(self, rdef: ResourceDef, entry: StoredObject) -> StoredObject | None:
        """Remove an object whose grace period or finalizers are done (kubelet, GC)."""
        current = self.store.get(rdef.storage, entry.namespace, entry.name)
        if current is None or current.uid != entry.uid:
            return None
        gone = self.store.delete(rdef.storage, entry.namespace, entry.name)
        self._after_delete(rdef, gone)
        return gone

    def _after_delete(self, rdef: ResourceDef, entry: StoredObject) -> None:
        if rdef.storage == CRD_STORAGE:
            self._unserve_crd(entry)
        elif rdef.storage == "/services":
            ip = (entry.obj.get("spec") or {}).get("clusterIP")
            if ip and ip != "None":
                self.ips.release(str(ip))

    # -- CRDs ------------------------------------------------------------------------------------

    def _check_crd_conflicts(self, crd: dict[str, Any]) -> None:
        spec = crd["spec"]
        for version in spec.get("versions") or []:
            existing = self.registry.lookup(
                spec["group"], version.get("name", ""), spec["names"]["plural"]
            )
            if existing is not None and existing.crd_name is None:
                raise ApiError.invalid(
                    "apiextensions.k8s.io",
                    "CustomResourceDefinition",
                    crd["metadata"]["name"],
                    [
                        field_invalid(
                            "spec.group", spec["group"], "conflicts with a built-in resource"
                        )
                    ],
                )

    def _establish_crd(self, entry: StoredObject) -> StoredObject:
        """Serve the CRD's resources at once and report Established/NamesAccepted."""
        crd = entry.obj
        crd_name = entry.name
        self.registry.remove_crd(crd_name)
        defs = crd_resource_defs(crd)
        for rdef in defs:
            self.registry.add(rdef)
        versions = [v["name"] for v in crd["spec"].get("versions") or [] if v.get("served", True)]
        self.registry.set_preferred_versions(crd["spec"]["group"], _kube_version_order(versions))
        storage_version = next(
            (v["name"] for v in crd["spec"]["versions"] if v.get("storage")),
            versions[0] if versions else "",
        )
        names = crd["spec"]["names"]
        now = self.now()
        status = {
            "acceptedNames": {
                k: v
                for k, v in names.items()
                if k in ("kind", "listKind", "plural", "singular", "shortNames", "categories")
            },
            "conditions": [
                {
                    "type": "NamesAccepted",
                    "status": "True",
                    "reason": "NoConflicts",
                    "message": "no conflicts found",
                    "lastTransitionTime": now,
                },
                {
                    "type": "Established",
                    "status": "True",
                    "reason": "InitialNamesAccepted",
                    "message": "the initial names have been accepted",
                    "lastTransitionTime": now,
                },
            ],
            "storedVersions": [storage_version],
        }
        old_status = crd.get("status") or {}
        if old_status.get("conditions"):
            for cond, old_cond in zip(status["conditions"], old_status["conditions"], strict=False):
                if (
                    isinstance(cond, dict)
                    and isinstance(old_cond, dict)
                    and old_cond.get("type") == cond["type"]
                ):
                    cond["lastTransitionTime"] = old_cond.get("lastTransitionTime", now)
            stored = list(old_status.get("storedVersions") or [])
            if storage_version not in stored:
                stored.append(storage_version)
            status["storedVersions"] = stored
        if old_status == status:
            return entry
        obj = entry.copy()
        obj["status"] = status
        return self.store.update(CRD_STORAGE, obj)

    def _unserve_crd(self, entry: StoredObject) -> None:
        removed = self.registry.remove_crd(entry.name)
        for storage in {r.storage for r in removed}:
            coll = self.store.collection(storage)
            for key in list(coll.sorted_keys()):
                if coll.get(*key) is not None:
                    self.store.delete(storage, *key)
            self.store.forget_collection(storage)


class _DryRun:
    """What a dryRun=All write returns: the object as it would be stored, never stored."""

    def __init__(self, obj: dict[str, Any]) -> None:
        self.obj = obj
        self.raw = encode(obj)
        meta = obj["metadata"]
        self.name = meta["name"]
        self.namespace = meta.get("namespace", "")
        self.uid = meta.get("uid", "")
        self.labels = meta.get("labels") or {}
        self.rv = 0


def _same_content(a: dict[str, Any], b: dict[str, Any]) -> bool:
    ma = {k: v for k, v in a["metadata"].items() if k != "resourceVersion"}
    mb = {k: v for k, v in b["metadata"].items() if k != "resourceVersion"}
    if ma != mb:
        return False
    return all(a.get(k) == b.get(k) for k in (set(a) | set(b)) - {"metadata"})


def _parse_rv(text: str) -> int | None:
    if not text:
        return None
    try:
        return int(text)
    except ValueError:
        raise ApiError.bad_request(f"invalid resource version: {text}") from None


def _encode_continue(rv: int, start: tuple[str, str]) -> str:
    raw = json.dumps({"v": "meta.k8s.io/v1", "rv": rv, "start": f"{start[0]}/{start[1]}"})
    return base64.urlsafe_b64encode(raw.encode()).decode()


def _decode_continue(token: str) -> tuple[int, tuple[str, str]]:
    try:
        data = json.loads(base64.urlsafe_b64decode(token.encode()))
        ns, _, name = str(data["start"]).partition("/")
        return int(data["rv"]), (ns, name)
    except (ValueError, KeyError, TypeError, binascii.Error):
        raise ApiError.bad_request(
            "continue key is not valid: incorrect encoded start resourceVersion (version meta.k8s.io/v1)"
        ) from None


def _kube_version_order(versions: list[str]) -> list[str]:
    """Kubernetes version priority: GA > beta > alpha, higher numbers first."""

    def key(v: str) -> tuple[int, int, int, str]:
        m = re.fullmatch(r"v(\d+)(?:(alpha|beta)(\d+))?", v)
        if not m:
            return (3, 0, 0, v)
        stage = {"": 0, "beta": 1, "alpha": 2}[m.group(2) or ""]
        return (stage, -int(m.group(1)), -int(m.group(3) or 0), v)

    return sorted(versions, key=key)
