"""The chart renders and lints with real Helm, for its defaults and for every example country,
and what it renders is what a production operator needs (args, probes, hardening, peering)."""

from __future__ import annotations

import re
from typing import Any

import helm_python as helm
import kubernetes_validate
import pytest
import yaml

from .chart_rendering import (
    CHART_DIR,
    COUNTRY_VALUES,
    EXAMPLES_DIR,
    KUBERNETES_VERSION,
    ROOT,
    Rendered,
    country_values,
    render,
    scenario_values,
)

#: Custom resources: not in kubernetes-validate's built-in schemas. The ModelDeployment and
#: kopf peerings are checked against their CRDs by kubesim (test_chart_on_kubesim.py).
CUSTOM_KINDS = {
    "ModelDeployment",
    "KopfPeering",
    "ClusterKopfPeering",
    "ServiceMonitor",
    "PodMonitor",
    "PrometheusRule",
}


def test_lint_reports_no_errors(scenario: str) -> None:
    values = scenario_values(scenario)
    result = helm.lint(CHART_DIR, values, strict=True, kube_version=KUBERNETES_VERSION)
    assert result["errors"] == [], result
    # Severity 1 is INFO (e.g. "icon is recommended"); warnings (2) and errors (>= 3) fail.
    assert [m for m in result["messages"] if m["severity"] > 1] == [], result["messages"]


def test_every_rendered_object_is_valid_against_the_kubernetes_schemas(rendered: Rendered) -> None:
    checked = 0
    for obj in rendered.objects:
        if obj["kind"] in CUSTOM_KINDS:
            continue
        try:
            kubernetes_validate.validate(obj, KUBERNETES_VERSION, strict=True)
        except kubernetes_validate.ValidationError as exc:
            pytest.fail(
                f"{obj['kind']}/{obj['metadata']['name']} is invalid for Kubernetes {KUBERNETES_VERSION}: {exc}"
            )
        checked += 1
    assert (
        checked >= 5
    )  # Deployment, ServiceAccount, Service, a Role or ClusterRole and its binding


def test_crds_in_the_chart_are_the_generated_crd_byte_for_byte() -> None:
    # The chart keeps a copy (Helm cannot reach outside the chart directory); the copy must be
    # exactly `modelfleet crd`'s output, regenerated with: cp crds/modeldeployment.yaml charts/modelfleet/crds/
    chart_copy = (CHART_DIR / "crds" / "modeldeployment.yaml").read_bytes()
    generated = (ROOT / "crds" / "modeldeployment.yaml").read_bytes()
    assert chart_copy == generated, "run: cp crds/modeldeployment.yaml charts/modelfleet/crds/"


def test_chart_ships_the_modeldeployment_and_kopf_peering_crds(chart: helm.Chart) -> None:
    names = {
        doc["metadata"]["name"] for crd in chart.crds for doc in yaml.safe_load_all(crd["data"])
    }
    assert names == {
        "modeldeployments.modelfleet.dev",
        "kopfpeerings.kopf.dev",
        "clusterkopfpeerings.kopf.dev",
    }


def test_values_schema_is_the_generated_one() -> None:
    import importlib.util

    spec = importlib.util.spec_from_file_location(
        "values_schema", CHART_DIR / "schema" / "values_schema.py"
    )
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    committed = (CHART_DIR / "values.schema.json").read_text(encoding="utf-8")
    assert committed == module.render_values_schema(), (
        "values.schema.json is out of date: run python charts/modelfleet/schema/values_schema.py"
    )


def undocumented_values(values_yaml: str) -> list[str]:
    """Dotted paths of leaf values with no `# --` comment above them or above a parent (the
    helm-docs convention: a documented map documents its contents)."""
    lines = values_yaml.splitlines()
    undocumented: list[str] = []
    parents: list[tuple[int, str, bool]] = []  # (indent, key, documented)
    for number, line in enumerate(lines):
        match = re.match(r"^( *)([A-Za-z][\w.-]*):(.*)$", line)
        if not match:
            continue
        indent, key, rest = len(match.group(1)), match.group(2), match.group(3).strip()
        parents = [p for p in parents if p[0] < indent]
        comments: list[str] = []
        for above in reversed(lines[:number]):
            if not above.strip().startswith("#"):
                break
            comments.append(above.strip())
        documented = any(c.startswith("# --") for c in comments) or any(p[2] for p in parents)
        if rest and not documented:
            undocumented.append(".".join([p[1] for p in parents] + [key]))
        parents.append((indent, key, documented))
    return undocumented


def test_every_value_has_a_doc_comment() -> None:
    text = (CHART_DIR / "values.yaml").read_text(encoding="utf-8")
    assert undocumented_values(text) == [], "values without a `# --` comment"


def test_doc_comment_check_finds_an_undocumented_value() -> None:
    sample = "image:\n  # -- Repository.\n  repository: x\n  tag: y\n# -- All of it.\nresources:\n  limits: {}\n"
    assert undocumented_values(sample) == ["image.tag"]


def test_example_well_lists_are_what_the_generator_writes() -> None:
    import importlib.util

    spec = importlib.util.spec_from_file_location(
        "generate_wells", EXAMPLES_DIR / "generate_wells.py"
    )
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    for country, (count, fields) in module.EXAMPLES.items():
        committed = (EXAMPLES_DIR / country / "wells.yaml").read_text(encoding="utf-8")
        assert committed == module.render_wells(country, count, fields), (
            f"examples/{country}/wells.yaml is stale: python examples/generate_wells.py {country} "
            f"--count {count} --fields {fields} --out examples/{country}/wells.yaml"
        )


@pytest.mark.parametrize(
    ("country", "wells", "replicas"), [("fr", 12, 1), ("us", 300, 2), ("no", 4000, 2)]
)
def test_each_country_installs_its_whole_fleet_in_one_release(
    chart: helm.Chart, country: str, wells: int, replicas: int
) -> None:
    release = render(
        chart, country_values(country), release=f"fleet-{country}", namespace=f"fleet-{country}"
    )
    fleet = release.one("ModelDeployment")
    assert fleet["metadata"]["namespace"] == f"fleet-{country}"
    assert len(fleet["spec"]["wells"]) == wells
    assert len({w["id"] for w in fleet["spec"]["wells"]}) == wells
    assert release.one("Deployment")["spec"]["replicas"] == replicas


def test_countries_differ_in_version_and_rollout_policy(chart: helm.Chart) -> None:
    specs = {
        country: render(chart, country_values(country), release="r", namespace="ns").one(
            "ModelDeployment"
        )["spec"]
        for country in COUNTRY_VALUES
    }
    assert len({s["model"]["version"] for s in specs.values()}) == 3
    assert len({yaml.safe_dump(s["rollout"]) for s in specs.values()}) == 3
    assert specs["fr"]["rollout"]["canary"] == {"wells": 2}
    assert "selector" in specs["us"]["rollout"]["canary"]


def _container(release: Rendered) -> dict[str, Any]:
    containers: list[dict[str, Any]] = release.one("Deployment")["spec"]["template"]["spec"][
        "containers"
    ]
    assert len(containers) == 1
    return containers[0]


def test_operator_runs_hardened_with_probes_on_kopf_liveness_and_resources(
    rendered: Rendered,
) -> None:
    pod = rendered.one("Deployment")["spec"]["template"]["spec"]
    container = _container(rendered)
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["securityContext"]["runAsUser"] != 0
    assert pod["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
    hardening = container["securityContext"]
    assert hardening["allowPrivilegeEscalation"] is False
    assert hardening["readOnlyRootFilesystem"] is True
    assert hardening["capabilities"]["drop"] == ["ALL"]
    liveness_arg = next(a for a in container["args"] if a.startswith("--liveness="))
    port = {p["name"]: p["containerPort"] for p in container["ports"]}["health"]
    assert liveness_arg == f"--liveness=http://0.0.0.0:{port}/healthz"
    for probe in ("startupProbe", "livenessProbe", "readinessProbe"):
        assert container[probe]["httpGet"] == {"path": "/healthz", "port": "health"}
    assert container["resources"]["requests"]["memory"]
    assert container["resources"]["limits"]["memory"]


def test_operator_watches_the_release_namespace_by_default(chart: helm.Chart) -> None:
    release = render(chart, {}, release="fleet-fr", namespace="fleet-fr")
    args = _container(release)["args"]
    assert args[0] == "operator"
    assert "--namespace=fleet-fr" in args
    assert "--standalone" in args
    assert release.one("Role")["metadata"]["namespace"] == "fleet-fr"
    assert release.of_kind("KopfPeering") == []


def test_several_watched_namespaces_get_a_role_each(chart: helm.Chart) -> None:
    values = {"operator": {"watchNamespaces": ["fleet-fr", "fleet-fr-pilot"]}}
    release = render(chart, values, release="fleet-fr", namespace="modelfleet-system")
    args = _container(release)["args"]
    assert [a for a in args if a.startswith("--namespace=")] == [
        "--namespace=fleet-fr",
        "--namespace=fleet-fr-pilot",
    ]
    roles = {r["metadata"]["namespace"] for r in release.of_kind("Role")}
    bindings = {b["metadata"]["namespace"] for b in release.of_kind("RoleBinding")}
    assert roles == bindings == {"fleet-fr", "fleet-fr-pilot"}
    for binding in release.of_kind("RoleBinding"):
        assert binding["subjects"][0]["namespace"] == "modelfleet-system"


def test_more_than_one_replica_elects_a_leader_through_kopf_peering(chart: helm.Chart) -> None:
    namespaced = render(
        chart, {"operator": {"replicas": 2}}, release="fleet-us", namespace="fleet-us"
    )
    args = _container(namespaced)["args"]
    assert "--peering=fleet-us-modelfleet" in args and "--standalone" not in args
    peering = namespaced.one("KopfPeering")
    assert peering["metadata"] == {
        **peering["metadata"],
        "name": "fleet-us-modelfleet",
        "namespace": "fleet-us",
    }
    assert namespaced.one("Deployment")["spec"]["strategy"]["type"] == "RollingUpdate"
    cluster = render(
        chart,
        {"operator": {"replicas": 2, "allNamespaces": True}},
        release="fleet-no",
        namespace="fleet-no",
    )
    assert cluster.one("ClusterKopfPeering")["metadata"]["name"] == "fleet-no-modelfleet"
    assert "--all-namespaces" in _container(cluster)["args"]


def test_one_replica_is_replaced_not_surged(chart: helm.Chart) -> None:
    # Two unpaused operators (old and surge pod) would both act on the fleet.
    release = render(chart, {}, release="r", namespace="ns")
    assert release.one("Deployment")["spec"]["strategy"] == {"type": "Recreate"}


def test_all_namespaces_uses_a_cluster_role_and_no_namespaced_roles(chart: helm.Chart) -> None:
    release = render(chart, {"operator": {"allNamespaces": True}}, release="r", namespace="ns")
    assert release.of_kind("Role") == [] and release.of_kind("RoleBinding") == []
    binding = release.one("ClusterRoleBinding")
    assert binding["roleRef"]["name"] == release.one("ClusterRole")["metadata"]["name"]
    assert binding["subjects"] == [
        {"kind": "ServiceAccount", "name": "r-modelfleet", "namespace": "ns"}
    ]


def test_image_is_pinned_by_digest_when_given(chart: helm.Chart) -> None:
    digest = "sha256:" + "ab" * 32
    release = render(chart, {"image": {"digest": digest}}, release="r", namespace="ns")
    assert _container(release)["image"] == f"ghcr.io/modelfleet/operator@{digest}"
    assert (
        _container(render(chart, {}, release="r", namespace="ns"))["image"]
        == "ghcr.io/modelfleet/operator:0.1.0"
    )


def test_metrics_service_selects_the_operator_on_its_metrics_port(rendered: Rendered) -> None:
    services = [
        s for s in rendered.of_kind("Service") if s["metadata"]["name"].endswith("-metrics")
    ]
    if not services:  # metrics.service.enabled: false
        return
    [service] = services
    selector = rendered.one("Deployment")["spec"]["selector"]["matchLabels"]
    assert service["spec"]["selector"] == selector
    assert service["spec"]["ports"][0]["targetPort"] == "metrics"


def test_optional_objects_are_rendered_only_when_enabled(chart: helm.Chart) -> None:
    bare = render(chart, {}, release="r", namespace="ns")
    for kind in ("ServiceMonitor", "PodDisruptionBudget", "NetworkPolicy", "ModelDeployment"):
        assert bare.of_kind(kind) == [], kind
    full = render(
        chart,
        {
            "metrics": {"serviceMonitor": {"enabled": True}},
            "podDisruptionBudget": {"enabled": True},
            "networkPolicy": {"enabled": True},
        },
        release="r",
        namespace="ns",
    )
    assert full.one("ServiceMonitor")["spec"]["endpoints"][0]["port"] == "metrics"
    assert full.one("PodDisruptionBudget")["spec"]["minAvailable"] == 1


def test_network_policy_lets_well_pods_accept_only_their_port(chart: helm.Chart) -> None:
    values = {
        "networkPolicy": {
            "enabled": True,
            "runtimePort": 8081,
            "runtimeFrom": [{"namespaceSelector": {"matchLabels": {"team": "analytics"}}}],
            "apiServerCIDRs": ["127.0.0.1/32"],
        }
    }
    release = render(chart, values, release="r", namespace="fleet-fr")
    policies = {p["metadata"]["name"]: p["spec"] for p in release.of_kind("NetworkPolicy")}
    wells = policies["r-modelfleet-wells"]
    assert wells["podSelector"] == {
        "matchExpressions": [{"key": "modelfleet.dev/deployment", "operator": "Exists"}]
    }
    assert wells["policyTypes"] == ["Ingress"]
    [rule] = wells["ingress"]
    assert rule["ports"] == [{"port": 8081, "protocol": "TCP"}]
    operator_peer = rule["from"][0]["podSelector"]["matchLabels"]
    assert operator_peer == release.one("Deployment")["spec"]["selector"]["matchLabels"]
    assert {"ipBlock": {"cidr": "127.0.0.1/32"}} in rule["from"]
    operator = policies["r-modelfleet-operator"]
    assert sorted(p["ports"][0]["port"] for p in operator["ingress"]) == ["health", "metrics"]


def test_notes_tell_the_user_what_to_run_next(rendered: Rendered, scenario: str) -> None:
    assert "kubectl -n" in rendered.notes and "get mdep" in rendered.notes
    assert "/metrics" in rendered.notes
    if scenario in COUNTRY_VALUES:
        assert "get mdep esp-failure" in rendered.notes


def test_rbac_grants_no_wildcard(rendered: Rendered) -> None:
    for role in rendered.of_kind("Role") + rendered.of_kind("ClusterRole"):
        for rule in role["rules"]:
            for field in ("apiGroups", "resources", "verbs"):
                assert "*" not in rule.get(field, []), (role["metadata"]["name"], rule)
            assert "nonResourceURLs" not in rule and "resourceNames" not in rule


def test_operator_args_parse_with_the_real_cli(rendered: Rendered) -> None:
    from modelfleet.app.cli import build_parser

    container = _container(rendered)
    args = build_parser().parse_args(container["args"])
    assert args.command == "operator"
    ports = {p["name"]: p["containerPort"] for p in container["ports"]}
    assert args.metrics_port == ports["metrics"]
    assert args.liveness == f"http://0.0.0.0:{ports['health']}/healthz"
    replicas = rendered.one("Deployment")["spec"]["replicas"]
    assert (args.peering is not None) == (replicas > 1)
    assert args.standalone is (None if replicas > 1 else True)


def test_helm_test_checks_the_operator_metrics_through_the_service(rendered: Rendered) -> None:
    pods = [
        p
        for p in rendered.of_kind("Pod")
        if p["metadata"]["annotations"].get("helm.sh/hook") == "test"
    ]
    services = [
        s for s in rendered.of_kind("Service") if s["metadata"]["name"].endswith("-metrics")
    ]
    if not services:
        assert pods == [], "a metrics test without a metrics Service"
        return
    [pod] = pods
    [service] = services
    container = pod["spec"]["containers"][0]
    assert container["image"] == _container(rendered)["image"]
    script = container["command"][-1]
    port = service["spec"]["ports"][0]["port"]
    assert (
        f"http://{service['metadata']['name']}.{service['metadata']['namespace']}.svc:{port}/metrics"
        in script
    )
    assert "modelfleet_operator_" in script
    assert container["securityContext"]["allowPrivilegeEscalation"] is False
    assert pod["spec"]["securityContext"]["runAsNonRoot"] is True
    # Its labels are the release's, but never the operator's selector: the metrics Service must
    # not send traffic to the test pod.
    selector = rendered.one("Deployment")["spec"]["selector"]["matchLabels"]
    assert not selector.items() <= pod["metadata"]["labels"].items()
