"""`modelfleet operator`'s flags are derived from OperatorSettings: the names and defaults the
chart and the docs use, the environment under them, and the flag above the environment."""

from __future__ import annotations

import argparse

import pytest

from modelfleet.app.cli import build_parser
from modelfleet.app.settings import OperatorSettings
from settings_flags import flag_names, settings_from_args

#: Every flag `modelfleet operator` has always had, with its default (the chart passes them).
FLAG_DEFAULTS = {
    "--namespace": [],
    "--all-namespaces": False,
    "--kubeconfig": None,
    "--context": None,
    "--qps": 50.0,
    "--burst": 100,
    "--concurrency": 32,
    "--metrics-port": 9090,
    "--liveness": "http://0.0.0.0:8080/healthz",
    "--peering": None,
    "--standalone": None,
    "--verbose": False,
}
SHORT_FLAGS = {"-n": "--namespace", "-A": "--all-namespaces", "-v": "--verbose"}


def operator(*argv: str) -> OperatorSettings:
    return settings_from_args(OperatorSettings, build_parser().parse_args(["operator", *argv]))


def operator_parser() -> argparse.ArgumentParser:
    sub = next(a for a in build_parser()._actions if isinstance(a, argparse._SubParsersAction))
    parser: argparse.ArgumentParser = sub.choices["operator"]
    return parser


def test_every_flag_keeps_its_name_and_default() -> None:
    defaults = {
        action.option_strings[0]: action.default
        for action in operator_parser()._actions
        if action.option_strings and action.dest != "help"
    }
    assert defaults == FLAG_DEFAULTS
    for short, long in SHORT_FLAGS.items():
        (action,) = [a for a in operator_parser()._actions if short in a.option_strings]
        assert long in action.option_strings


def test_every_setting_has_a_flag_and_a_docstring() -> None:
    for name, field in OperatorSettings.model_fields.items():
        assert field.description, f"{name} has no docstring"
        assert flag_names(name, field)[0] in FLAG_DEFAULTS


def test_no_flags_give_the_defaults() -> None:
    settings = operator()
    assert settings == OperatorSettings()
    assert settings.client_settings().qps == 50.0
    assert settings.metrics_port == 9090 and settings.liveness == "http://0.0.0.0:8080/healthz"


def test_namespace_repeats_and_excludes_all_namespaces() -> None:
    assert operator("-n", "fleet-fr", "--namespace", "fleet-fr-pilot").namespaces == [
        "fleet-fr",
        "fleet-fr-pilot",
    ]
    assert operator("-A").all_namespaces
    with pytest.raises(SystemExit):
        build_parser().parse_args(["operator", "-A", "-n", "fleet-fr"])


def test_peering_and_standalone_exclude_each_other() -> None:
    assert operator("--standalone").standalone is True
    assert operator("--peering", "fleet-us").peering == "fleet-us"
    with pytest.raises(SystemExit):
        build_parser().parse_args(["operator", "--peering", "p", "--standalone"])


def test_a_negative_metrics_port_and_an_empty_liveness_url_disable_them() -> None:
    settings = operator("--metrics-port", "-1", "--liveness", "")
    assert settings.metrics_port is None and settings.liveness is None


def test_the_environment_sets_defaults_and_a_flag_wins(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MODELFLEET_OPERATOR_QPS", "7.5")
    monkeypatch.setenv("MODELFLEET_OPERATOR_NAMESPACES", '["from-env"]')
    assert operator().qps == 7.5
    assert operator().namespaces == ["from-env"]
    assert operator("--qps", "20").qps == 20.0
    assert operator("-n", "from-flag").namespaces == ["from-flag"]
