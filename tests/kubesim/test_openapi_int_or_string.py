"""How a custom resource's int-or-string field is published and what kubectl explain makes of it.

Docs: https://kubernetes.io/docs/tasks/extend-kubernetes/custom-resources/custom-resource-definitions/#intorstring
("In Validation Schema Publishing, x-kubernetes-int-or-string: true is unfolded to one of the two
patterns shown above"). kubectl's explain template guesses a type from ``type`` alone, so on a real
1.32 cluster such a field prints as ``<Object>`` (kubernetes/kubernetes#130946), and so it does here.
"""

from __future__ import annotations

import json
import subprocess
import urllib.request
from pathlib import Path
from typing import Any

import pytest
import yaml

from kubesim.harness.testing import kubesim_in_thread
from tests.kubesim.conftest import run_kubectl

pytestmark = pytest.mark.skipif(
    subprocess.run(["which", "kubectl"], capture_output=True).returncode != 0,
    reason="kubectl not installed",
)

LIMITS_CRD: dict[str, Any] = {
    "apiVersion": "apiextensions.k8s.io/v1",
    "kind": "CustomResourceDefinition",
    "metadata": {"name": "limits.kubesim.test"},
    "spec": {
        "group": "kubesim.test",
        "scope": "Namespaced",
        "names": {"kind": "Limit", "plural": "limits", "singular": "limit"},
        "versions": [
            {
                "name": "v1",
                "served": True,
                "storage": True,
                "schema": {
                    "openAPIV3Schema": {
                        "type": "object",
                        "properties": {
                            "spec": {
                                "type": "object",
                                "properties": {
                                    "maxUnavailable": {
                                        "x-kubernetes-int-or-string": True,
                                        "description": "A count or a percentage.",
                                    }
                                },
                            }
                        },
                    }
                },
            }
        ],
    },
}


def test_int_or_string_is_published_unfolded_and_explained_as_kubectl_does(tmp_path: Path) -> None:
    with kubesim_in_thread(tmp_path) as sim:
        run_kubectl(
            sim.kubeconfig, tmp_path / "cache", "apply", "-f", "-", stdin=yaml.safe_dump(LIMITS_CRD)
        )
        with urllib.request.urlopen(sim.url + "/openapi/v3/apis/kubesim.test/v1") as reply:
            document = json.load(reply)
        limit = document["components"]["schemas"]["test.kubesim.v1.Limit"]
        field = limit["properties"]["spec"]["properties"]["maxUnavailable"]
        assert field["anyOf"] == [{"type": "integer"}, {"type": "string"}]
        assert field["x-kubernetes-int-or-string"] is True
        explained = run_kubectl(
            sim.kubeconfig, tmp_path / "cache", "explain", "limits.spec.maxUnavailable"
        ).stdout
        assert "FIELD: maxUnavailable <Object>" in explained
        assert "A count or a percentage." in explained
        # Both forms are accepted by the server and by kubectl's client-side view of the schema.
        for value in (2, "20%"):
            limit_object = {
                "apiVersion": "kubesim.test/v1",
                "kind": "Limit",
                "metadata": {"name": f"l{value}".replace("%", "p")},
                "spec": {"maxUnavailable": value},
            }
            run_kubectl(
                sim.kubeconfig,
                tmp_path / "cache",
                "apply",
                "-f",
                "-",
                stdin=yaml.safe_dump(limit_object),
            )
