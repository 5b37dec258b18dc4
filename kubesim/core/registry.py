"""Which resources kubesim serves, and the discovery documents that advertise them.

Why this exists: every client starts by asking the server what it serves (`/api`, `/apis`,
`/api/v1`, `/apis/{group}/{version}`); kopf and kubectl resolve kinds, plurals, scopes and
subresources from those answers only. One registry holds the built-in resources and the ones
that CustomResourceDefinitions add at run time, so the discovery documents, the URL router and
the storage agree on a single definition per resource.
Docs: https://kubernetes.io/docs/reference/using-api/api-concepts/#discovery-api
"""

from __future__ import annotations

import base64
import hashlib
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

__all__ = ["BUILTINS", "Registry", "ResourceDef"]

_ALL_VERBS = ["create", "delete", "deletecollection", "get", "list", "patch", "update", "watch"]


@dataclass
class ResourceDef:
    """One served resource at one group/version."""

    group: str
    version: str
    kind: str
    plural: str
    singular: str
    namespaced: bool
    short_names: list[str] = field(default_factory=list)
    categories: list[str] = field(default_factory=list)
    has_status: bool = False
    # Built-in kinds accept strategic merge patches; custom resources do not (the apiserver
    # answers 415 for them).
    strategic: bool = False
    # metadata.generation is maintained for custom resources and a few built-ins.
    has_generation: bool = False
    field_labels: frozenset[str] = frozenset({"metadata.name", "metadata.namespace"})
    # Custom resources: the compiled schema (kubesim.schema.CompiledSchema) and printer columns.
    schema: Any = None
    raw_schema: dict[str, Any] | None = None
    printer_columns: list[dict[str, Any]] | None = None
    crd_name: str | None = None
    subresources: list[str] = field(default_factory=list)
    # Storage key shared by every version of the same group/plural (events share theirs across
    # core/v1 and events.k8s.io/v1 in kube-apiserver; kubesim converts on the way in and out).
    storage: str = ""

    def __post_init__(self) -> None:
        if not self.storage:
            self.storage = f"{self.group}/{self.plural}"
        if self.has_status and "status" not in self.subresources:
            self.subresources = ["status", *self.subresources]

    @property
    def api_version(self) -> str:
        return f"{self.group}/{self.version}" if self.group else self.version

    @property
    def list_kind(self) -> str:
        return f"{self.kind}List"

    def discovery_entries(self) -> list[dict[str, Any]]:
        digest = hashlib.sha256(f"{self.api_version}/{self.kind}".encode()).digest()
        entry: dict[str, Any] = {
            "name": self.plural,
            "singularName": self.singular,
            "namespaced": self.namespaced,
            "kind": self.kind,
            "verbs": list(_ALL_VERBS),
            "storageVersionHash": base64.b64encode(digest[:8]).decode(),
        }
        if self.short_names:
            entry["shortNames"] = list(self.short_names)
        if self.categories:
            entry["categories"] = list(self.categories)
        out = [entry]
        for sub in self.subresources:
            verbs = ["get", "patch", "update"] if sub == "status" else ["get", "create"]
            out.append(
                {
                    "name": f"{self.plural}/{sub}",
                    "singularName": "",
                    "namespaced": self.namespaced,
                    "kind": self.kind
                    if sub == "status"
                    else ("PodProxyOptions" if sub == "proxy" else "Pod"),
                    "verbs": verbs,
                }
            )
        return out


def _core(kind: str, plural: str, namespaced: bool = True, **kw: Any) -> ResourceDef:
    return ResourceDef("", "v1", kind, plural, kind.lower(), namespaced, strategic=True, **kw)


BUILTINS: list[ResourceDef] = [
    _core(
        "Namespace",
        "namespaces",
        namespaced=False,
        short_names=["ns"],
        has_status=True,
        field_labels=frozenset({"metadata.name", "status.phase"}),
    ),
    _core(
        "Pod",
        "pods",
        short_names=["po"],
        categories=["all"],
        has_status=True,
        subresources=["log", "proxy"],
        field_labels=frozenset(
            {
                "metadata.name",
                "metadata.namespace",
                "spec.nodeName",
                "spec.restartPolicy",
                "spec.schedulerName",
                "spec.serviceAccountName",
                "spec.hostNetwork",
                "status.phase",
                "status.podIP",
                "status.nominatedNodeName",
            }
        ),
    ),
    _core("Service", "services", short_names=["svc"], categories=["all"], has_status=True),
    _core("ConfigMap", "configmaps", short_names=["cm"]),
    _core(
        "Secret", "secrets", field_labels=frozenset({"metadata.name", "metadata.namespace", "type"})
    ),
    _core("ServiceAccount", "serviceaccounts", short_names=["sa"]),
    _core("Node", "nodes", namespaced=False, short_names=["no"], has_status=True),
    _core(
        "Event",
        "events",
        short_names=["ev"],
        field_labels=frozenset(
            {
                "metadata.name",
                "metadata.namespace",
                "involvedObject.kind",
                "involvedObject.namespace",
                "involvedObject.name",
                "involvedObject.uid",
                "involvedObject.apiVersion",
                "involvedObject.resourceVersion",
                "involvedObject.fieldPath",
                "reason",
                "reportingComponent",
                "source",
                "type",
            }
        ),
        storage="/events",
    ),
    ResourceDef(
        "events.k8s.io",
        "v1",
        "Event",
        "events",
        "event",
        True,
        short_names=["ev"],
        strategic=True,
        storage="/events",
        field_labels=frozenset(
            {
                "metadata.name",
                "metadata.namespace",
                "regarding.kind",
                "regarding.namespace",
                "regarding.name",
                "regarding.uid",
                "reason",
                "type",
            }
        ),
    ),
    ResourceDef("coordination.k8s.io", "v1", "Lease", "leases", "lease", True, strategic=True),
    ResourceDef(
        "apps",
        "v1",
        "ControllerRevision",
        "controllerrevisions",
        "controllerrevision",
        True,
        strategic=True,
    ),
    # Stored and served without a controller (kubesim runs no Deployment, RBAC, disruption or
    # network-policy controllers): charts and manifests apply as on a cluster, nothing acts on them.
    ResourceDef(
        "apps",
        "v1",
        "Deployment",
        "deployments",
        "deployment",
        True,
        short_names=["deploy"],
        categories=["all"],
        has_status=True,
        has_generation=True,
        strategic=True,
    ),
    ResourceDef("rbac.authorization.k8s.io", "v1", "Role", "roles", "role", True, strategic=True),
    ResourceDef(
        "rbac.authorization.k8s.io",
        "v1",
        "RoleBinding",
        "rolebindings",
        "rolebinding",
        True,
        strategic=True,
    ),
    ResourceDef(
        "rbac.authorization.k8s.io",
        "v1",
        "ClusterRole",
        "clusterroles",
        "clusterrole",
        False,
        strategic=True,
    ),
    ResourceDef(
        "rbac.authorization.k8s.io",
        "v1",
        "ClusterRoleBinding",
        "clusterrolebindings",
        "clusterrolebinding",
        False,
        strategic=True,
    ),
    ResourceDef(
        "policy",
        "v1",
        "PodDisruptionBudget",
        "poddisruptionbudgets",
        "poddisruptionbudget",
        True,
        short_names=["pdb"],
        has_status=True,
        has_generation=True,
        strategic=True,
    ),
    ResourceDef(
        "networking.k8s.io",
        "v1",
        "NetworkPolicy",
        "networkpolicies",
        "networkpolicy",
        True,
        short_names=["netpol"],
        strategic=True,
    ),
    ResourceDef(
        "apiextensions.k8s.io",
        "v1",
        "CustomResourceDefinition",
        "customresourcedefinitions",
        "customresourcedefinition",
        False,
        short_names=["crd", "crds"],
        categories=["api-extensions"],
        has_status=True,
        has_generation=True,
        strategic=True,
    ),
]


class Registry:
    """Resource definitions by group/version/plural, plus the discovery documents."""

    def __init__(self, builtins: Iterable[ResourceDef] = BUILTINS) -> None:
        self._by_gvr: dict[tuple[str, str, str], ResourceDef] = {}
        # Preferred version first per group, in registration order.
        self._group_versions: dict[str, list[str]] = {}
        self.generation = 0
        for rdef in builtins:
            self.add(rdef)

    def add(self, rdef: ResourceDef) -> None:
        self._by_gvr[(rdef.group, rdef.version, rdef.plural)] = rdef
        versions = self._group_versions.setdefault(rdef.group, [])
        if rdef.version not in versions:
            versions.append(rdef.version)
        self.generation += 1

    def remove_crd(self, crd_name: str) -> list[ResourceDef]:
        removed = [r for r in self._by_gvr.values() if r.crd_name == crd_name]
        for rdef in removed:
            del self._by_gvr[(rdef.group, rdef.version, rdef.plural)]
        for group in {r.group for r in removed}:
            left = {r.version for r in self._by_gvr.values() if r.group == group}
            self._group_versions[group] = [v for v in self._group_versions[group] if v in left]
            if not self._group_versions[group]:
                del self._group_versions[group]
        self.generation += 1
        return removed

    def set_preferred_versions(self, group: str, ordered: list[str]) -> None:
        self._group_versions[group] = ordered

    def lookup(self, group: str, version: str, plural: str) -> ResourceDef | None:
        rdef = self._by_gvr.get((group, version, plural))
        if rdef is None:
            # Clients may address a resource by its singular name or a short name? No: the
            # apiserver only serves the plural in URLs; kubectl resolves the rest via discovery.
            return None
        return rdef

    def by_kind(self, api_version: str, kind: str) -> ResourceDef | None:
        group, _, version = api_version.rpartition("/")
        for rdef in self._by_gvr.values():
            if rdef.group == group and rdef.version == version and rdef.kind == kind:
                return rdef
        return None

    def all(self) -> list[ResourceDef]:
        return list(self._by_gvr.values())

    def group_versions(self) -> list[tuple[str, str]]:
        return [(g, v) for g, versions in self._group_versions.items() for v in versions]

    def has_group_version(self, group: str, version: str) -> bool:
        return version in self._group_versions.get(group, [])

    # -- discovery documents -------------------------------------------------------------------

    def api_versions(self, server_address: str) -> dict[str, Any]:
        return {
            "kind": "APIVersions",
            "versions": ["v1"],
            "serverAddressByClientCIDRs": [
                {"clientCIDR": "0.0.0.0/0", "serverAddress": server_address}
            ],
        }

    def _group_doc(self, group: str) -> dict[str, Any]:
        versions = [
            {"groupVersion": f"{group}/{v}", "version": v} for v in self._group_versions[group]
        ]
        return {
            "name": group,
            "versions": versions,
            "preferredVersion": versions[0],
        }

    def api_group_list(self) -> dict[str, Any]:
        return {
            "kind": "APIGroupList",
            "apiVersion": "v1",
            "groups": [self._group_doc(g) for g in self._group_versions if g],
        }

    def api_group(self, group: str) -> dict[str, Any] | None:
        if not group or group not in self._group_versions:
            return None
        return {"kind": "APIGroup", "apiVersion": "v1", **self._group_doc(group)}

    def aggregated_discovery(self, core: bool) -> dict[str, Any]:
        """``apidiscovery.k8s.io/v2`` APIGroupDiscoveryList for ``/api`` (core) or ``/apis``."""
        items: list[dict[str, Any]] = []
        for group, versions in self._group_versions.items():
            if (group == "") != core:
                continue
            version_docs = []
            for version in versions:
                resources = []
                for rdef in self._by_gvr.values():
                    if rdef.group != group or rdef.version != version:
                        continue
                    kind = {"group": group, "version": version, "kind": rdef.kind}
                    doc: dict[str, Any] = {
                        "resource": rdef.plural,
                        "responseKind": kind,
                        "scope": "Namespaced" if rdef.namespaced else "Cluster",
                        "singularResource": rdef.singular,
                        "verbs": list(_ALL_VERBS),
                    }
                    if rdef.short_names:
                        doc["shortNames"] = list(rdef.short_names)
                    if rdef.categories:
                        doc["categories"] = list(rdef.categories)
                    subs = []
                    for entry in rdef.discovery_entries()[1:]:
                        subs.append(
                            {
                                "subresource": entry["name"].split("/", 1)[1],
                                "responseKind": {
                                    "group": group,
                                    "version": version,
                                    "kind": entry["kind"],
                                },
                                "verbs": entry["verbs"],
                            }
                        )
                    if subs:
                        doc["subresources"] = subs
                    resources.append(doc)
                version_docs.append(
                    {"version": version, "resources": resources, "freshness": "Current"}
                )
            items.append(
                {"metadata": {"name": group, "creationTimestamp": None}, "versions": version_docs}
            )
        return {
            "kind": "APIGroupDiscoveryList",
            "apiVersion": "apidiscovery.k8s.io/v2",
            "metadata": {},
            "items": items,
        }

    def resource_list(self, group: str, version: str) -> dict[str, Any] | None:
        if not self.has_group_version(group, version):
            return None
        resources: list[dict[str, Any]] = []
        for rdef in self._by_gvr.values():
            if rdef.group == group and rdef.version == version:
                resources.extend(rdef.discovery_entries())
        return {
            "kind": "APIResourceList",
            "apiVersion": "v1",
            "groupVersion": f"{group}/{version}" if group else version,
            "resources": resources,
        }
