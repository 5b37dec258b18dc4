"""The kubeconfig kubesim writes, so kubectl, kopf and the ``kubernetes`` client find it.

Why this exists: every client discovers a cluster through a kubeconfig file; kubesim serves
plain HTTP on loopback (no TLS: there is nothing to protect on 127.0.0.1 and no CA to manage),
with a token user that clients send and kubesim accepts. Names are all ``kubesim``.
Docs: https://kubernetes.io/docs/concepts/configuration/organize-cluster-access-kubeconfig/
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Final

import yaml

__all__ = ["KUBESIM_NAME", "kubeconfig_document", "write_kubeconfig"]

KUBESIM_NAME: Final = "kubesim"
_TOKEN: Final = "kubesim-token"


def kubeconfig_document(url: str, namespace: str = "default") -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": KUBESIM_NAME, "cluster": {"server": url}}],
        "users": [{"name": KUBESIM_NAME, "user": {"token": _TOKEN}}],
        "contexts": [
            {
                "name": KUBESIM_NAME,
                "context": {"cluster": KUBESIM_NAME, "user": KUBESIM_NAME, "namespace": namespace},
            }
        ],
        "current-context": KUBESIM_NAME,
        "preferences": {},
    }


def write_kubeconfig(path: Path, url: str, namespace: str = "default") -> Path:
    """Write atomically (a reader never sees half a file), mode 0600 like kubectl's own."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(yaml.safe_dump(kubeconfig_document(url, namespace), sort_keys=False))
    os.chmod(tmp, 0o600)
    tmp.replace(path)
    return path
