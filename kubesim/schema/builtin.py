"""The built-in Kubernetes 1.32 definitions, from the JSON schemas ``kubernetes-validate`` ships.

Why this exists: field management needs the built-in kinds' list types (containers merged by
``name``, ports by ``containerPort`` and ``protocol``) and the OpenAPI documents publish the
built-in definitions; both read them here, in kubernetes-validate's JSON-schema form (``$ref`` to
``#/$defs/<name>``), the same generation as the ``kubectl`` on the machine image.
"""

from __future__ import annotations

import functools
import json
import os
from pathlib import Path
from typing import Any, Final

__all__ = ["KUBERNETES_VERSION", "builtin_definition_name", "builtin_definitions"]

KUBERNETES_VERSION: Final = "v1.32.0"


def _schema_dir() -> Path | None:
    try:
        import kubernetes_validate
    except ImportError:  # pragma: no cover - the package is a declared dependency
        return None
    root = Path(os.path.dirname(kubernetes_validate.__file__)) / "kubernetes-json-schema"
    wanted = root / f"{KUBERNETES_VERSION}-local"
    if wanted.is_dir():
        return wanted
    candidates = sorted(p for p in root.glob("v*-local") if p.is_dir())
    return candidates[-1] if candidates else None


@functools.cache
def _raw_definitions() -> dict[str, Any]:
    directory = _schema_dir()
    if directory is None:
        return {}
    with open(directory / "_definitions.json", encoding="utf-8") as handle:
        data = json.load(handle)
    defs = data.get("$defs") or data.get("definitions") or {}
    assert isinstance(defs, dict)
    return defs


def builtin_definitions() -> dict[str, Any]:
    """The Kubernetes 1.32 definitions in kubernetes-validate's JSON-schema form (``$ref`` to
    ``#/$defs/<name>``), with their list types: what kubesim.fields.managed_fields walks."""
    return _raw_definitions()


@functools.cache
def _definition_names_by_gvk() -> dict[tuple[str, str, str], str]:
    index: dict[tuple[str, str, str], str] = {}
    for name, definition in _raw_definitions().items():
        for gvk in definition.get("x-kubernetes-group-version-kind") or []:
            key = (gvk.get("group", ""), gvk.get("version", ""), gvk.get("kind", ""))
            index.setdefault(key, name)
    return index


def builtin_definition_name(group: str, version: str, kind: str) -> str | None:
    """The OpenAPI definition name of a built-in kind (``io.k8s.api.core.v1.Pod``)."""
    return _definition_names_by_gvk().get((group, version, kind))
