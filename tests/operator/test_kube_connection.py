"""The operator's connection carries the kubeconfig's credentials: a bearer token (a token
kubeconfig, or a pod's service account) must reach every request, or the operator is anonymous."""

from __future__ import annotations

from pathlib import Path

import yaml

from modelfleet.io.kube import load_connection


def test_a_token_kubeconfig_gives_every_request_its_bearer_token(tmp_path: Path) -> None:
    kubeconfig = tmp_path / "kubeconfig"
    kubeconfig.write_text(
        yaml.safe_dump(
            {
                "apiVersion": "v1",
                "kind": "Config",
                "clusters": [{"name": "c", "cluster": {"server": "https://127.0.0.1:6443"}}],
                "users": [{"name": "u", "user": {"token": "s3cr3t-token"}}],
                "contexts": [{"name": "ctx", "context": {"cluster": "c", "user": "u"}}],
                "current-context": "ctx",
            }
        ),
        encoding="utf-8",
    )
    connection = load_connection(str(kubeconfig))
    assert connection.host == "https://127.0.0.1:6443"
    assert connection.headers.get("Authorization") == "Bearer s3cr3t-token"
