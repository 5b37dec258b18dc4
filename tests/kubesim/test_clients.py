"""The kubernetes Python client and a minimal kopf operator against kubesim."""

from __future__ import annotations

import textwrap
import time
from pathlib import Path
from typing import Any

import pytest

from kubesim.harness.testing import KubeSimThread, kubeconfig_env
from tests.kubesim.conftest import WIDGET_CRD

kubernetes = pytest.importorskip("kubernetes")
kopf_testing = pytest.importorskip("kopf.testing")


def _client(sim: KubeSimThread) -> Any:
    return kubernetes.config.new_client_from_config(str(sim.kubeconfig))


def _wait(check: Any, timeout: float = 10.0) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = check()
        if value:
            return value
        time.sleep(0.05)
    raise AssertionError("condition not met in time")


def test_kubernetes_client_crud_list_watch_and_errors(kubesim_thread: KubeSimThread) -> None:
    """The official Python client: typed CRUD, list with selectors, watch, ApiException bodies.
    https://github.com/kubernetes-client/python/blob/master/kubernetes/README.md"""
    api = _client(kubesim_thread)
    core = kubernetes.client.CoreV1Api(api)
    core.create_namespaced_config_map(
        "default", {"metadata": {"name": "c1", "labels": {"app": "x"}}, "data": {"a": "1"}}
    )
    core.patch_namespaced_config_map("c1", "default", {"data": {"b": "2"}})
    assert core.read_namespaced_config_map("c1", "default").data == {"a": "1", "b": "2"}
    listed = core.list_namespaced_config_map("default", label_selector="app=x")
    assert [i.metadata.name for i in listed.items] == ["c1"]
    with pytest.raises(kubernetes.client.ApiException) as err:
        core.create_namespaced_config_map("default", {"metadata": {"name": "c1"}})
    assert err.value.status == 409
    core.delete_namespaced_config_map("c1", "default")
    watch = kubernetes.watch.Watch()
    seen = []
    for event in watch.stream(
        core.list_namespaced_config_map,
        "default",
        resource_version=listed.metadata.resource_version,
        timeout_seconds=2,
    ):
        seen.append((event["type"], event["object"].metadata.name))
        watch.stop()
    assert seen == [("DELETED", "c1")]
    custom = kubernetes.client.CustomObjectsApi(api)
    kubernetes.client.ApiextensionsV1Api(api).create_custom_resource_definition(WIDGET_CRD)
    body = {
        "apiVersion": "kubesim.test/v1",
        "kind": "Widget",
        "metadata": {"name": "w"},
        "spec": {"size": 1},
    }
    custom.create_namespaced_custom_object("kubesim.test", "v1", "default", "widgets", body)
    custom.patch_namespaced_custom_object_status(
        "kubesim.test", "v1", "default", "widgets", "w", {"status": {"phase": "Ok"}}
    )
    got = custom.get_namespaced_custom_object("kubesim.test", "v1", "default", "widgets", "w")
    assert got["status"] == {"phase": "Ok"}
    pod = {
        "metadata": {"name": "p"},
        "spec": {"containers": [{"name": "c", "image": "registry.local/x:1"}]},
    }
    core.create_namespaced_pod("default", pod)
    assert _wait(lambda: core.read_namespaced_pod("p", "default").status.phase == "Running")


OPERATOR = textwrap.dedent("""
    import kopf

    @kopf.on.startup()
    def configure(settings: kopf.OperatorSettings, **_):
        settings.watching.server_timeout = 10
        settings.posting.level = 100

    @kopf.on.create("kubesim.test", "v1", "widgets")
    def created(spec, **_):
        return {"seen": spec.get("size")}

    @kopf.on.update("kubesim.test", "v1", "widgets")
    def updated(spec, patch, **_):
        patch.status["observedSize"] = spec.get("size")

    @kopf.on.delete("kubesim.test", "v1", "widgets")
    def deleted(name, **_):
        print("OPERATOR-SAW-DELETE", name)
""")


def test_kopf_operator_sees_create_update_delete_and_patches_status(
    kubesim_thread: KubeSimThread, tmp_path: Path
) -> None:
    """kopf: list+watch, finalizers via JSON patch, status via merge patch on /status, deletion.
    https://kopf.readthedocs.io/en/stable/walkthrough/creation/"""
    operator = tmp_path / "operator.py"
    operator.write_text(OPERATOR)
    api = _client(kubesim_thread)
    kubernetes.client.ApiextensionsV1Api(api).create_custom_resource_definition(WIDGET_CRD)
    custom = kubernetes.client.CustomObjectsApi(api)
    args = ["run", "-A", "--standalone", str(operator)]

    def get() -> dict[str, Any]:
        obj: dict[str, Any] = custom.get_namespaced_custom_object(
            "kubesim.test", "v1", "default", "widgets", "w1"
        )
        return obj

    with (
        kubeconfig_env(kubesim_thread.kubeconfig),
        kopf_testing.KopfRunner(args, timeout=60) as runner,
    ):
        custom.create_namespaced_custom_object(
            "kubesim.test",
            "v1",
            "default",
            "widgets",
            {
                "apiVersion": "kubesim.test/v1",
                "kind": "Widget",
                "metadata": {"name": "w1"},
                "spec": {"size": 1},
            },
        )
        _wait(lambda: get().get("status", {}).get("created") == {"seen": 1})
        assert "kopf.zalando.org/KopfFinalizerMarker" in get()["metadata"]["finalizers"]
        custom.patch_namespaced_custom_object(
            "kubesim.test", "v1", "default", "widgets", "w1", {"spec": {"size": 2}}
        )
        _wait(lambda: get().get("status", {}).get("observedSize") == 2)
        custom.delete_namespaced_custom_object("kubesim.test", "v1", "default", "widgets", "w1")

        def gone() -> bool:
            try:
                get()
            except kubernetes.client.ApiException as exc:
                return bool(exc.status == 404)
            return False

        _wait(gone)
    assert runner.exit_code == 0, runner.output[-2000:]
    assert "OPERATOR-SAW-DELETE w1" in runner.output
