"""settings_flags derives one argparse flag per settings field, and reads them back."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Annotated

import pytest
from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from settings_flags import Flag, add_settings_arguments, settings_from_args


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
