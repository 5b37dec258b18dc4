"""`model-runtime serve`'s flags are derived from RuntimeSettings: the names and defaults the
operator's pod template uses, the environment under them, and the flag above the environment."""

from __future__ import annotations

import argparse
from pathlib import Path

import pytest

from model_runtime.cli import build_parser, main
from model_runtime.settings import RuntimeSettings
from settings_flags import settings_fields, settings_from_args

#: Every flag `model-runtime serve` has always had, with its default.
FLAG_DEFAULTS = {
    "--bundle": None,
    "--host": "127.0.0.1",
    "--port": 8080,
    "--annotations-file": None,
    # bundleConfirmation ReadinessProbe (issue 13): the operator passes it.
    "--ready-requires-annotated-bundle": False,
    "--poll-interval": 2.0,
    "--retry-interval": 5.0,
    "--drain-timeout": 25.0,
    "--max-body-bytes": 8 * 1024 * 1024,
    "--log-level": "INFO",
    # Functional monitoring (issue 15), and per-model request labels made opt-in with it.
    "--metrics-per-model": False,
    "--monitoring-window-rows": 1000,
    "--monitoring-min-rows": 200,
    "--monitoring-thresholds": "convention",
    "--monitoring-detail": False,
    "--monitoring-max-rows-per-second": 250.0,
}


def serve(*argv: str) -> RuntimeSettings:
    return settings_from_args(RuntimeSettings, build_parser().parse_args(["serve", *argv]))


def test_every_flag_keeps_its_name_and_default() -> None:
    sub = next(a for a in build_parser()._actions if isinstance(a, argparse._SubParsersAction))
    defaults = {
        action.option_strings[0]: action.default
        for action in sub.choices["serve"]._actions
        if action.option_strings and action.dest != "help"
    }
    assert defaults == FLAG_DEFAULTS


def test_every_setting_has_a_description() -> None:
    for field in settings_fields(RuntimeSettings):
        assert field.description, f"{field.name} has no description"


def test_the_pod_templates_arguments_parse_into_settings() -> None:
    settings = serve(
        "--host", "10.0.0.7", "--port", "8080", "--annotations-file", "/etc/podinfo/annotations"
    )
    assert settings.host == "10.0.0.7"
    assert settings.annotations_file == Path("/etc/podinfo/annotations")
    assert settings.poll_interval == 2.0


def test_the_environment_sets_defaults_and_a_flag_wins(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MODELFLEET_RUNTIME_PORT", "9001")
    monkeypatch.setenv("MODELFLEET_RUNTIME_BUNDLE", "file:///bundles/w1")
    assert serve().port == 9001
    assert serve().bundle == "file:///bundles/w1"
    assert serve("--port", "9002").port == 9002


def test_the_environment_reads_booleans_paths_and_floats(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MODELFLEET_RUNTIME_METRICS_PER_MODEL", "true")
    monkeypatch.setenv("MODELFLEET_RUNTIME_ANNOTATIONS_FILE", "/etc/podinfo/annotations")
    monkeypatch.setenv("MODELFLEET_RUNTIME_POLL_INTERVAL", "0.5")
    monkeypatch.setenv("MODELFLEET_RUNTIME_MONITORING_THRESHOLDS", "calibrated")
    settings = serve()
    assert settings.metrics_per_model is True
    assert settings.annotations_file == Path("/etc/podinfo/annotations")
    assert settings.poll_interval == 0.5
    assert settings.monitoring().thresholds.value == "calibrated"


@pytest.mark.parametrize(
    ("variable", "value", "message"),
    [
        (
            "MODELFLEET_RUNTIME_PORT",
            "eighty",
            "MODELFLEET_RUNTIME_PORT='eighty': expected an integer",
        ),
        ("MODELFLEET_RUNTIME_MONITORING_DETAIL", "maybe", "MODELFLEET_RUNTIME_MONITORING_DETAIL"),
        (
            "MODELFLEET_RUNTIME_MONITORING_THRESHOLDS",
            "strict",
            "must be one of ['convention', 'calibrated']",
        ),
    ],
)
def test_a_bad_environment_value_is_refused_naming_the_variable(
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    variable: str,
    value: str,
    message: str,
) -> None:
    monkeypatch.setenv(variable, value)
    assert main(["serve", "--bundle", "/nowhere"]) == 2
    assert message in capsys.readouterr().err


def test_a_bad_flag_value_is_refused_naming_the_flag(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        serve("--monitoring-thresholds", "strict")
    assert "--monitoring-thresholds: invalid choice: 'strict'" in capsys.readouterr().err
