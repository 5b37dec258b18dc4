"""Render the chart the way `helm install` would, with real Helm (helm-python-sdk's libhelm).

Why this exists: every chart test needs the same steps (load the chart, merge the country's
values files like repeated `-f`, validate them against values.schema.json, render, split the
manifests into objects), and they must match what Helm itself does, not a re-implementation.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import helm_python as helm
import yaml

ROOT = Path(__file__).resolve().parents[2]
CHART_DIR = ROOT / "charts" / "modelfleet"
EXAMPLES_DIR = ROOT / "examples"

#: Kubernetes version the rendered objects are validated against: the newest schema set
#: kubernetes-validate ships (1.37.0 in kubernetes-validate 1.37.0).
KUBERNETES_VERSION = "1.37.0"

#: Each example country: its values files, in `helm install -f ... -f ...` order.
COUNTRY_VALUES: dict[str, tuple[str, ...]] = {
    "fr": ("fr/values.yaml",),
    "us": ("us/values.yaml", "us/wells.yaml"),
    "no": ("no/values.yaml", "no/wells.yaml"),
}

KubeObject = dict[str, Any]

CI_DIR = CHART_DIR / "ci"


def scenarios() -> list[str]:
    """Value scenarios every chart test runs on: the defaults, the chart's ci/*-values.yaml
    (chart-testing's convention) and the example countries."""
    ci = sorted(
        f"ci/{path.name.removesuffix('-values.yaml')}" for path in CI_DIR.glob("*-values.yaml")
    )
    return ["default", *ci, *COUNTRY_VALUES]


def scenario_values(scenario: str) -> dict[str, Any]:
    if scenario == "default":
        return {}
    if scenario.startswith("ci/"):
        return values_from_files([CI_DIR / f"{scenario.removeprefix('ci/')}-values.yaml"])
    return country_values(scenario)


def scenario_namespace(scenario: str) -> str:
    """The release namespace (and release name) a scenario is installed into."""
    return "fleet-" + scenario.replace("ci/", "ci-")


def merge_values(base: Mapping[str, Any], override: Mapping[str, Any]) -> dict[str, Any]:
    """Helm's merge of successive -f files: maps merge key by key, anything else is replaced."""
    merged = dict(base)
    for key, value in override.items():
        current = merged.get(key)
        if isinstance(value, Mapping) and isinstance(current, Mapping):
            merged[key] = merge_values(current, value)
        else:
            merged[key] = value
    return merged


def values_from_files(paths: Iterable[Path]) -> dict[str, Any]:
    values: dict[str, Any] = {}
    for path in paths:
        values = merge_values(values, helm.values_from_yaml(path.read_text(encoding="utf-8")))
    return values


def country_values(country: str) -> dict[str, Any]:
    return values_from_files(EXAMPLES_DIR / name for name in COUNTRY_VALUES[country])


class UniqueKeyLoader(yaml.SafeLoader):
    """A YAML loader refusing duplicate keys: PyYAML keeps the last one silently, while the
    apiserver's strict decoding (kubectl's default) rejects the object."""

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
        keys = [self.construct_object(key, deep=deep) for key, _ in node.value]
        duplicates = sorted({str(k) for k in keys if keys.count(k) > 1})
        if duplicates:
            raise yaml.constructor.ConstructorError(
                None, None, f"duplicate keys {duplicates}", node.start_mark
            )
        return super().construct_mapping(node, deep=deep)


@dataclass(frozen=True)
class Rendered:
    """One rendered release: its objects (templates only, crds/ apart) and its NOTES."""

    objects: list[KubeObject]
    notes: str
    crds: list[KubeObject]

    def of_kind(self, kind: str) -> list[KubeObject]:
        return [obj for obj in self.objects if obj["kind"] == kind]

    def one(self, kind: str) -> KubeObject:
        found = self.of_kind(kind)
        assert len(found) == 1, f"expected one {kind}, rendered {len(found)}"
        return found[0]


def render(
    chart: helm.Chart, values: Mapping[str, Any], *, release: str, namespace: str
) -> Rendered:
    """Validate `values` against the schema (as install does), then render the templates."""
    chart.validate_schema(dict(values))
    manifests = chart.render(dict(values), name=release, namespace=namespace, is_install=True)
    objects: list[KubeObject] = []
    notes = ""
    for path, text in sorted(manifests.items()):
        if path.endswith("NOTES.txt"):
            notes = text
            continue
        objects.extend(doc for doc in yaml.load_all(text, Loader=UniqueKeyLoader) if doc)
    crds = [doc for crd in chart.crds for doc in yaml.safe_load_all(crd["data"]) if doc]
    return Rendered(objects=objects, notes=notes, crds=crds)
