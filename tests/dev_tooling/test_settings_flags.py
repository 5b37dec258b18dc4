"""settings_flags derives one argparse flag per settings field, and reads them back: from a
pydantic-settings class (the operator) and from a settings dataclass (the runtime)."""

from __future__ import annotations

import argparse
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, ClassVar

import pytest
from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from settings_flags import (
    Flag,
    SettingsError,
    add_settings_arguments,
    load_settings,
    setting,
    settings_from_args,
)


class ExampleSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="EXAMPLE_", use_attribute_docstrings=True)

    port: int = 8080
    """Listen port."""

    root: Path | None = None
    """Where files are."""

    tags: Annotated[list[str], Flag("--tag", "-t", group="selection")] = Field(default_factory=list)
    """A tag (repeatable)."""

    everything: Annotated[bool, Flag("--everything", group="selection")] = False
    """Every tag."""


def parse(*argv: str) -> ExampleSettings:
    parser = argparse.ArgumentParser()
    add_settings_arguments(parser, ExampleSettings)
    return settings_from_args(ExampleSettings, parser.parse_args(argv))


def test_a_field_becomes_a_typed_flag_with_its_docstring_and_default_as_help() -> None:
    parser = argparse.ArgumentParser()
    add_settings_arguments(parser, ExampleSettings)
    text = " ".join(parser.format_help().split())
    assert "--port PORT Listen port (default: 8080)." in text
    assert parse("--port", "9000").port == 9000
    assert parse("--root", "/srv").root == Path("/srv")


def test_a_list_is_a_repeated_flag_and_a_group_excludes_its_members() -> None:
    assert parse("-t", "a", "--tag", "b").tags == ["a", "b"]
    assert parse("--everything").everything is True
    with pytest.raises(SystemExit):
        parse("--tag", "a", "--everything")


def test_the_environment_is_the_default_and_a_flag_replaces_it(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("EXAMPLE_PORT", "7000")
    monkeypatch.setenv("EXAMPLE_TAGS", '["from-env"]')
    assert parse() == ExampleSettings(port=7000, tags=["from-env"])
    assert parse("--tag", "from-flag").tags == ["from-flag"]  # replaced, not appended


def test_a_field_of_a_type_no_flag_can_carry_is_refused() -> None:
    class Nested(BaseSettings):
        limits: dict[str, int] = Field(default_factory=dict)

    with pytest.raises(TypeError, match=r"Nested\.limits"):
        add_settings_arguments(argparse.ArgumentParser(), Nested)


@dataclass(frozen=True, kw_only=True)
class ExampleDataclass:
    """The same declaration as a settings dataclass (the runtime's kind: no pydantic)."""

    env_prefix: ClassVar[str] = "EXAMPLE_"

    port: int = setting(8080, "Listen port.")
    root: Path | None = setting(None, "Where files are.")
    verbose: bool = setting(False, "Say more.")
    mode: Annotated[str, Flag("--mode", "-m", choices=("fast", "safe"))] = setting("safe", "Mode.")


def parse_dataclass(*argv: str) -> ExampleDataclass:
    parser = argparse.ArgumentParser()
    add_settings_arguments(parser, ExampleDataclass)
    return settings_from_args(ExampleDataclass, parser.parse_args(argv))


def test_a_dataclass_field_becomes_the_same_flag_with_its_description() -> None:
    parser = argparse.ArgumentParser()
    add_settings_arguments(parser, ExampleDataclass)
    text = " ".join(parser.format_help().split())
    assert "--port PORT Listen port (default: 8080)." in text
    assert "--mode {fast,safe}, -m {fast,safe} Mode (default: safe)." in text
    assert parse_dataclass("--port", "9000", "--verbose", "-m", "fast") == ExampleDataclass(
        port=9000, verbose=True, mode="fast"
    )
    assert parse_dataclass("--root", "/srv").root == Path("/srv")


def test_a_dataclass_reads_the_environment_under_its_prefix_and_a_flag_wins(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("EXAMPLE_PORT", "7000")
    monkeypatch.setenv("example_verbose", "yes")
    monkeypatch.setenv("EXAMPLE_ROOT", "/data")
    assert parse_dataclass() == ExampleDataclass(port=7000, verbose=True, root=Path("/data"))
    assert parse_dataclass("--port", "7001").port == 7001


@pytest.mark.parametrize(
    ("variable", "value", "message"),
    [
        ("EXAMPLE_PORT", "x", "EXAMPLE_PORT='x': expected an integer"),
        ("EXAMPLE_VERBOSE", "perhaps", "EXAMPLE_VERBOSE='perhaps': expected a boolean"),
        ("EXAMPLE_MODE", "slow", "EXAMPLE_MODE='slow': must be one of ['fast', 'safe']"),
    ],
)
def test_a_refused_environment_value_names_its_variable(
    monkeypatch: pytest.MonkeyPatch, variable: str, value: str, message: str
) -> None:
    monkeypatch.setenv(variable, value)
    with pytest.raises(SettingsError, match=re.escape(message)):
        load_settings(ExampleDataclass)


def test_load_settings_reads_a_given_mapping_instead_of_the_environment() -> None:
    assert load_settings(ExampleDataclass, {"EXAMPLE_MODE": "fast"}).mode == "fast"
