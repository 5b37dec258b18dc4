"""The ModelDeployment CRD: generated from the models, documented, enforced at admission.

Admission cases run against kubesim, which evaluates the CRD's structural schema and CEL rules
the way kube-apiserver does (422 Invalid, one cause per field, the rule's message):
https://kubernetes.io/docs/tasks/extend-kubernetes/custom-resources/custom-resource-definitions/#validation
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from kubesim.harness.testing import KubeSimThread, kubesim_in_thread
from modelfleet.api.crd import render_crd_yaml, render_reference_markdown

from .cluster_harness import CRD, MD_PATH, Api

Mutation = Callable[[dict[str, Any]], None]


def test_committed_crd_is_generated_from_the_models() -> None:
    assert CRD.read_text() == render_crd_yaml(), (
        "crds/modeldeployment.yaml drifted: run `modelfleet crd`"
    )


def test_reference_doc_is_generated_from_the_models() -> None:
    reference = CRD.parents[1] / "docs" / "reference.md"
    assert reference.read_text() == render_reference_markdown(), (
        "docs/reference.md drifted: run `modelfleet crd --reference docs/reference.md`"
    )


def test_every_field_has_a_description() -> None:
    schema = yaml.safe_load(CRD.read_text())["spec"]["versions"][0]["schema"]["openAPIV3Schema"]
    missing: list[str] = []

    def walk(node: dict[str, Any], path: str) -> None:
        for name, sub in (node.get("properties") or {}).items():
            here = f"{path}.{name}" if path else name
            if not sub.get("description") and here not in ("apiVersion", "kind"):
                missing.append(here)
            walk(sub, here)
        if isinstance(node.get("items"), dict):
            walk(node["items"], path + "[]")

    walk(schema["properties"]["spec"], "spec")
    walk(schema["properties"]["status"], "status")
    assert missing == []


def valid() -> dict[str, Any]:
    return {
        "apiVersion": "modelfleet.dev/v1alpha1",
        "kind": "ModelDeployment",
        "metadata": {"name": "esp", "namespace": "default"},
        "spec": {
            "model": {
                "name": "esp-failure",
                "version": "2026.11.2",
                "bundleUri": "http://127.0.0.1:9000/{version}/{well}/",
            },
            "wells": [{"id": "fr-0001", "labels": {"zone": "north"}}, {"id": "fr-0002"}],
        },
    }


def setter(path: str, value: Any) -> Mutation:
    def mutate(obj: dict[str, Any]) -> None:
        *parents, last = path.split(".")
        node: Any = obj
        for part in parents:
            node = node[int(part)] if part.isdigit() else node.setdefault(part, {})
        if value is DELETE:
            del node[last]
        elif last.isdigit():
            node[int(last)] = value
        else:
            node[last] = value

    return mutate


DELETE = object()

# (case id, mutation, expected cause field, substring of the cause message)
INVALID: list[tuple[str, Mutation, str, str]] = [
    ("no-spec", setter("spec", DELETE), "spec", "Required value"),
    ("no-model", setter("spec.model", DELETE), "spec.model", "Required value"),
    ("no-model-name", setter("spec.model.name", DELETE), "spec.model.name", "Required value"),
    ("model-name-uppercase", setter("spec.model.name", "ESP"), "spec.model.name", "should match"),
    ("model-name-too-long", setter("spec.model.name", "e" * 64), "spec.model.name", "63"),
    ("no-version", setter("spec.model.version", DELETE), "spec.model.version", "Required value"),
    (
        "version-with-space",
        setter("spec.model.version", "2026 11"),
        "spec.model.version",
        "should match",
    ),
    (
        "no-bundle-uri",
        setter("spec.model.bundleUri", DELETE),
        "spec.model.bundleUri",
        "Required value",
    ),
    (
        "bundle-uri-ftp",
        setter("spec.model.bundleUri", "ftp://x/{well}"),
        "spec.model.bundleUri",
        "should match",
    ),
    (
        "bundle-uri-without-well",
        setter("spec.model.bundleUri", "http://x/{version}/"),
        "spec.model.bundleUri",
        "must contain {well}",
    ),
    (
        "bundle-uri-unknown-placeholder",
        setter("spec.model.bundleUri", "http://x/{wel}/{well}"),
        "spec.model.bundleUri",
        "should match",
    ),
    (
        "digest-not-sha256",
        setter("spec.model.digests", {"fr-0001": "md5:abc"}),
        "spec.model.digests.fr-0001",
        "should match",
    ),
    (
        "digest-key-not-well-id",
        setter("spec.model.digests", {"FR_1": "sha256:" + "a" * 64}),
        "spec.model.digests",
        "digests keys must be well ids",
    ),
    ("no-wells", setter("spec.wells", DELETE), "spec.wells", "set wells, wellsFrom or both"),
    (
        "wells-from-empty",
        setter("spec.wellsFrom", []),
        "spec.wellsFrom",
        "should have at least 1 items",
    ),
    (
        "wells-from-name-invalid",
        setter("spec.wellsFrom", [{"configMap": "FR_Wells"}]),
        "spec.wellsFrom[0].configMap",
        "should match",
    ),
    (
        "wells-from-without-name",
        setter("spec.wellsFrom", [{}]),
        "spec.wellsFrom[0].configMap",
        "Required value",
    ),
    (
        "wells-from-duplicate",
        setter("spec.wellsFrom", [{"configMap": "fr-wells"}, {"configMap": "fr-wells"}]),
        "spec.wellsFrom[1]",
        "Duplicate value",
    ),
    (
        "wells-from-too-many",
        setter("spec.wellsFrom", [{"configMap": f"fr-wells-{i}"} for i in range(65)]),
        "spec.wellsFrom",
        "must have at most 64 items",
    ),
    (
        "digests-and-digests-from",
        setter(
            "spec.model",
            {
                "name": "esp-failure",
                "version": "2026.11.2",
                "bundleUri": "http://127.0.0.1:9000/{version}/{well}/",
                "digests": {"fr-0001": "sha256:" + "a" * 64},
                "digestsFrom": [{"configMap": "esp-2026.11.2-digests"}],
            },
        ),
        "spec.model.digestsFrom",
        "set digests or digestsFrom, not both",
    ),
    (
        "digests-from-name-invalid",
        setter("spec.model.digestsFrom", [{"configMap": "esp digests"}]),
        "spec.model.digestsFrom[0].configMap",
        "should match",
    ),
    ("wells-not-a-list", setter("spec.wells", "fr-0001"), "spec.wells", "must be of type array"),
    ("well-id-uppercase", setter("spec.wells.0.id", "FR-1"), "spec.wells[0].id", "should match"),
    ("well-id-too-long", setter("spec.wells.0.id", "w" * 41), "spec.wells[0].id", "40"),
    ("well-id-duplicate", setter("spec.wells.1.id", "fr-0001"), "spec.wells[1]", "Duplicate value"),
    (
        "well-without-id",
        setter("spec.wells.1", {"labels": {"a": "b"}}),
        "spec.wells[1].id",
        "Required value",
    ),
    (
        "well-label-too-long",
        setter("spec.wells.0.labels", {"zone": "z" * 64}),
        "spec.wells[0].labels.zone",
        "63",
    ),
    ("well-pin-invalid", setter("spec.wells.0.pin", "v 1"), "spec.wells[0].pin", "should match"),
    (
        "port-too-low",
        setter("spec.runtime.port", 80),
        "spec.runtime.port",
        "greater than or equal to 1024",
    ),
    (
        "port-too-high",
        setter("spec.runtime.port", 70000),
        "spec.runtime.port",
        "less than or equal to 65535",
    ),
    (
        "cpu-not-a-quantity",
        setter("spec.runtime.resources", {"requests": {"cpu": "lots"}}),
        "spec.runtime.resources.requests.cpu",
        "should match",
    ),
    (
        "env-name-invalid",
        setter("spec.runtime.env", [{"name": "1 BAD", "value": "x"}]),
        "spec.runtime.env[0].name",
        "should match",
    ),
    (
        "toleration-operator-unknown",
        setter("spec.runtime.tolerations", [{"key": "k", "operator": "Maybe"}]),
        "spec.runtime.tolerations[0].operator",
        "Unsupported value",
    ),
    ("image-empty", setter("spec.runtime.image", ""), "spec.runtime.image", "at least 1"),
    (
        "max-unavailable-over-100-percent",
        setter("spec.rollout.maxUnavailable", "150%"),
        "spec.rollout.maxUnavailable",
        "percentage from 0% to 100%",
    ),
    (
        "max-unavailable-negative",
        setter("spec.rollout.maxUnavailable", -1),
        "spec.rollout.maxUnavailable",
        "non-negative integer",
    ),
    (
        "max-unavailable-word",
        setter("spec.rollout.maxUnavailable", "ten"),
        "spec.rollout.maxUnavailable",
        "percentage",
    ),
    (
        "max-unavailable-and-surge-zero",
        setter("spec.rollout.maxUnavailable", 0),
        "spec.rollout.maxUnavailable",
        "cannot both be 0",
    ),
    (
        "max-surge-nonzero",
        setter("spec.rollout.maxSurge", 1),
        "spec.rollout.maxSurge",
        "maxSurge must be 0",
    ),
    (
        "canary-both-kinds",
        setter("spec.rollout.canary", {"wells": 1, "selector": {"matchLabels": {"zone": "north"}}}),
        "spec.rollout.canary",
        "exactly one",
    ),
    ("canary-empty", setter("spec.rollout.canary", {}), "spec.rollout.canary", "exactly one"),
    (
        "canary-zero-wells",
        setter("spec.rollout.canary", {"wells": 0}),
        "spec.rollout.canary.wells",
        "greater than or equal to 1",
    ),
    (
        "canary-operator-unknown",
        setter(
            "spec.rollout.canary",
            {
                "selector": {
                    "matchExpressions": [{"key": "zone", "operator": "Like", "values": ["n"]}]
                }
            },
        ),
        "spec.rollout.canary.selector.matchExpressions[0].operator",
        "Unsupported value",
    ),
    (
        "canary-in-without-values",
        setter(
            "spec.rollout.canary",
            {"selector": {"matchExpressions": [{"key": "zone", "operator": "In"}]}},
        ),
        "spec.rollout.canary.selector.matchExpressions[0].values",
        "must be non-empty for In",
    ),
    (
        "progress-deadline-zero",
        setter("spec.rollout.progressDeadlineSeconds", 0),
        "spec.rollout.progressDeadlineSeconds",
        "greater than or equal to 1",
    ),
    (
        "min-ready-not-below-deadline",
        setter("spec.rollout", {"minReadySeconds": 700}),
        "spec.rollout.progressDeadlineSeconds",
        "greater than minReadySeconds",
    ),
    (
        "paused-not-boolean",
        setter("spec.rollout.paused", "yes"),
        "spec.rollout.paused",
        "must be of type boolean",
    ),
    (
        "auto-rollback-string",
        setter("spec.rollout.autoRollback", "true"),
        "spec.rollout.autoRollback",
        "must be of type boolean",
    ),
    (
        "history-limit-negative",
        setter("spec.revisionHistoryLimit", -1),
        "spec.revisionHistoryLimit",
        "greater than or equal to 0",
    ),
    (
        "pod-name-too-long",
        setter("metadata.name", "e" * 56),
        "spec.wells",
        "must fit in 63 characters",
    ),
]


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[KubeSimThread]:
    with kubesim_in_thread(tmp_path_factory.mktemp("crd"), run_kubelet=False) as ks:
        Api(ks.url).install_crd()
        yield ks


def test_valid_manifest_is_admitted_with_defaults(cluster: KubeSimThread) -> None:
    api = Api(cluster.url)
    r = api.create(MD_PATH, {**valid(), "metadata": {"name": "ok", "namespace": "default"}})
    assert r.status_code == 201, r.text
    spec = r.json()["spec"]
    assert spec["rollout"] == {
        "maxUnavailable": "10%",
        "maxSurge": 0,
        "paused": False,
        "progressDeadlineSeconds": 600,
        "minReadySeconds": 0,
        "autoRollback": True,
    }
    assert spec["revisionHistoryLimit"] == 10
    assert spec["runtime"]["port"] == 8080
    assert spec["runtime"]["resources"]["requests"] == {"cpu": "50m", "memory": "96Mi"}


def test_wells_from_config_maps_alone_is_admitted(cluster: KubeSimThread) -> None:
    body = valid()
    body["metadata"]["name"] = "by-reference"
    del body["spec"]["wells"]
    body["spec"]["wellsFrom"] = [{"configMap": "fr-wells-a"}, {"configMap": "fr-wells-b"}]
    body["spec"]["model"]["digestsFrom"] = [{"configMap": "esp-2026.11.2-digests"}]
    r = Api(cluster.url).create(MD_PATH, body)
    assert r.status_code == 201, r.text
    assert "wells" not in r.json()["spec"]  # no default: "neither" stays detectable


def test_ten_thousand_wells_are_admitted(cluster: KubeSimThread) -> None:
    api = Api(cluster.url)
    body = valid()
    body["metadata"]["name"] = "big"
    body["spec"]["wells"] = [{"id": f"w-{i:05d}", "labels": {"zone": "z1"}} for i in range(10_000)]
    r = api.create(MD_PATH, body)
    assert r.status_code == 201, r.text[:500]
    too_many = copy.deepcopy(body)
    too_many["metadata"]["name"] = "too-big"
    too_many["spec"]["wells"].append({"id": "w-10000"})
    r = api.create(MD_PATH, too_many)
    assert r.status_code == 422
    assert any(c["field"] == "spec.wells" for c in r.json()["details"]["causes"])


@pytest.mark.parametrize(
    ("case", "mutate", "field", "message"), INVALID, ids=[c[0] for c in INVALID]
)
def test_invalid_manifest_is_rejected_naming_the_field(
    cluster: KubeSimThread, case: str, mutate: Mutation, field: str, message: str
) -> None:
    body = valid()
    mutate(body)
    body["metadata"]["name"] = body["metadata"]["name"] if case == "pod-name-too-long" else case
    r = Api(cluster.url).create(MD_PATH, body)
    assert r.status_code == 422, r.text
    status = r.json()
    assert status["reason"] == "Invalid"
    causes = status["details"]["causes"]
    matching = [c for c in causes if c["field"] == field and message in c["message"]]
    assert matching, f"no cause at {field} containing {message!r}: {causes}"


def test_at_least_forty_invalid_cases() -> None:
    assert len(INVALID) >= 40


def test_crd_file_is_the_one_in_crds(tmp_path: Path) -> None:
    assert CRD.parent.name == "crds" and CRD.exists()


def _defaults_with_rules(node: Any, path: str = "") -> Iterator[tuple[str, dict[str, Any], str]]:
    if isinstance(node, dict):
        default = node.get("default")
        for rule in node.get("x-kubernetes-validations") or []:
            if isinstance(default, dict):
                yield path, default, rule["rule"]
        for key, value in node.items():
            yield from _defaults_with_rules(value, f"{path}.{key}")
    elif isinstance(node, list):
        for value in node:
            yield from _defaults_with_rules(value, path)


def test_every_object_default_satisfies_the_cel_rules_beside_it() -> None:
    """kube-apiserver evaluates a default against the rules of its schema before nested defaults
    apply: a rule reading `self.x` on a default without `x` gets the whole CRD refused ("no such
    key"; kubesim accepted it)."""
    import re

    crd = yaml.safe_load(render_crd_yaml())
    checked = 0
    for path, default, rule in _defaults_with_rules(crd):
        for key in re.findall(r"self\.(\w+)", rule):
            if f"has(self.{key})" not in rule:
                assert key in default, f"{path}: default {default} lacks {key!r} read by {rule!r}"
                checked += 1
    assert checked >= 3, "the rollout rules were checked"
