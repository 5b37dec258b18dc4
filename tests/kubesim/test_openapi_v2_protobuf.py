"""`/openapi/v2` in protobuf, the form client-go asks for when kubectl's validation (and Helm's,
which is kubectl's code) falls back from v3 for a kind the server does not publish.

Docs: https://kubernetes.io/docs/concepts/overview/kubernetes-api/#openapi-v2 ("/openapi/v2 ...
Accept: application/com.github.proto-openapi.spec.v2@v1.0+protobuf").
"""

from __future__ import annotations

import urllib.request
from pathlib import Path

import helm_python as helm
import pytest

from kubesim.harness.testing import kubesim_in_thread


def test_openapi_v2_answers_protobuf_when_asked(tmp_path: Path) -> None:
    with kubesim_in_thread(tmp_path, run_kubelet=False) as sim:
        request = urllib.request.Request(
            sim.url + "/openapi/v2",
            headers={"Accept": "application/com.github.proto-openapi.spec.v2@v1.0+protobuf"},
        )
        with urllib.request.urlopen(request) as reply:
            body = reply.read()
            assert (
                reply.headers["Content-Type"]
                == "application/com.github.proto-openapi.spec.v2.v1.0+protobuf"
            )
        # gnostic openapi_v2.Document: field 1 swagger = "2.0", field 2 info.
        assert body.startswith(b"\x0a\x032.0\x12")


def test_helm_names_the_missing_crd_for_a_kind_kubesim_does_not_serve(tmp_path: Path) -> None:
    """With no schema for the kind in v3, Helm validates against v2 and then fails on the REST
    mapping, with the message a real cluster gives (not a protobuf parse error)."""
    chart = tmp_path / "chart"
    (chart / "templates").mkdir(parents=True)
    (chart / "Chart.yaml").write_text("apiVersion: v2\nname: probe\nversion: 0.1.0\n")
    (chart / "templates" / "monitor.yaml").write_text(
        "apiVersion: monitoring.coreos.com/v1\nkind: ServiceMonitor\nmetadata:\n  name: probe\nspec: {}\n"
    )
    with kubesim_in_thread(tmp_path, run_kubelet=False) as sim:
        config = helm.Config(kubeconfig_path=str(sim.kubeconfig), namespace="default")
        try:
            with pytest.raises(helm.HelmReleaseError) as failed:
                config.install(str(chart), "probe", {}, namespace="default", timeout=30)
        finally:
            config.close()
    assert 'no matches for kind "ServiceMonitor" in version "monitoring.coreos.com/v1"' in str(
        failed.value
    )
    assert "ensure CRDs are installed first" in str(failed.value)
