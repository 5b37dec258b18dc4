"""CustomResourceDefinition bodies for the tests: one version (v1), served and stored.

Why this exists: kubesim's own tests, the conformance suite (run on kubesim and on the real
kube-apiserver) and the chart's tests on either cluster all create small CRDs of their own; they
are built here, one way, and differ only in what the test is about (group, kind, schema, scope).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Literal

CRDS_PATH = "/apis/apiextensions.k8s.io/v1/customresourcedefinitions"


def crd_body(
    group: str,
    kind: str,
    schema: Mapping[str, Any],
    *,
    plural: str | None = None,
    scope: Literal["Namespaced", "Cluster"] = "Namespaced",
    names: Mapping[str, Any] | None = None,
    version: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """A CRD serving `kind` in `group`/v1 with `schema` (its openAPIV3Schema), named
    ``<plural>.<group>`` (`plural` defaults to the kind in lower case with an s). `names` adds to
    its names (singular, listKind, shortNames), `version` to its one version (subresources,
    additionalPrinterColumns)."""
    plural = plural or kind.lower() + "s"
    return {
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {"name": f"{plural}.{group}"},
        "spec": {
            "group": group,
            "scope": scope,
            "names": {"kind": kind, "plural": plural, **(names or {})},
            "versions": [
                {
                    "name": "v1",
                    "served": True,
                    "storage": True,
                    **(version or {}),
                    "schema": {"openAPIV3Schema": dict(schema)},
                }
            ],
        },
    }


def spec_schema(spec: Mapping[str, Any]) -> dict[str, Any]:
    """An openAPIV3Schema whose one property is `spec`, with the schema given."""
    return {"type": "object", "properties": {"spec": dict(spec)}}


def open_spec_schema() -> dict[str, Any]:
    """An openAPIV3Schema with a `spec` object of any fields (x-kubernetes-preserve-unknown-fields)."""
    return spec_schema({"type": "object", "x-kubernetes-preserve-unknown-fields": True})


def prometheus_operator_crd(kind: str) -> dict[str, Any]:
    """A Prometheus Operator CRD (monitoring.coreos.com/v1: ServiceMonitor, PodMonitor,
    PrometheusRule), reduced to what the API needs to serve it; a cluster with the Prometheus
    Operator has the real ones."""
    return crd_body(
        "monitoring.coreos.com",
        kind,
        open_spec_schema(),
        names={"singular": kind.lower(), "listKind": f"{kind}List"},
    )
