"""Command-line flags derived from a settings declaration: one definition per setting.

Why this exists: the operator and the runtime are configured by flags (the chart and the pod
template pass them) and by environment variables (MODELFLEET_OPERATOR_*, MODELFLEET_RUNTIME_*).
Each setting is declared once, as a field with a description; `add_settings_arguments` walks
the fields and adds one argparse flag each (name, type, default and help from the field), and
`settings_from_args` turns the parsed flags back into the class. Precedence is the usual one: a
flag given on the command line, else the environment, else the field's default (the parser's
defaults are read from the environment when it is built).

Two kinds of declaration, read through one description of a field (`SettingField`):

- a pydantic-settings `BaseSettings` class (the operator): pydantic reads the environment and
  validates; the field's docstring (`use_attribute_docstrings`) is its description;
- a frozen dataclass with a `ClassVar` `env_prefix` (the runtime, which does without pydantic:
  issue 16, docs/architecture.md): each field made by `setting(default, "description")`, and
  `load_settings` reads `<env_prefix><FIELD>` from the environment, converting it by the field's
  type, an error naming the variable (`SettingsError`).

A field says how its flag differs from the plain `--field-name VALUE` with a `Flag` in its
`Annotated` metadata: other names (`-n`), a repeatable flag for a list, membership in a group
of mutually exclusive flags, the values it accepts. Booleans are switches (`--verbose`), lists
are repeated flags. Shared by both images' packages, so it imports nothing but the standard
library (pydantic's classes are recognized by their `model_fields`, not imported).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import types
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import (
    Annotated,
    Any,
    ClassVar,
    Protocol,
    TypeVar,
    Union,
    get_args,
    get_origin,
    get_type_hints,
)

Settings = TypeVar("Settings")

#: Value types a flag can carry: what argparse converts a word to.
SCALAR_TYPES: tuple[type, ...] = (str, int, float, Path)

#: The metadata key of a dataclass field's description (`setting`).
DESCRIPTION = "description"

_TRUE = ("1", "true", "yes", "on", "y", "t")
_FALSE = ("0", "false", "no", "off", "n", "f")


class SettingsError(ValueError):
    """A setting's value from the environment is not one it accepts; names the variable."""


@dataclass(frozen=True)
class Flag:
    """How a field's flag is spelled, when not `--field-name`: `Flag("--namespace", "-n")`.

    `group` names a set of mutually exclusive flags (each group is created once per parser).
    `metavar` is the value's name in --help. `choices` are the only values accepted (the flag's
    and the environment variable's).
    """

    names: tuple[str, ...] = ()
    group: str | None = None
    metavar: str | None = None
    choices: tuple[str, ...] | None = None

    def __init__(
        self,
        *names: str,
        group: str | None = None,
        metavar: str | None = None,
        choices: tuple[str, ...] | None = None,
    ) -> None:
        object.__setattr__(self, "names", names)
        object.__setattr__(self, "group", group)
        object.__setattr__(self, "metavar", metavar)
        object.__setattr__(self, "choices", choices)


@dataclass(frozen=True)
class SettingField:
    """One setting as both declarations describe it: its type without `Annotated`, and the
    `Annotated` metadata (where a `Flag` may be)."""

    name: str
    annotation: Any
    description: str | None
    metadata: tuple[Any, ...]


class _PydanticField(Protocol):
    annotation: Any
    description: str | None
    metadata: list[Any]


class EnvDataclass(Protocol):
    """A dataclass settings declaration: its fields from `setting`, its environment prefix."""

    env_prefix: ClassVar[str]
    __dataclass_fields__: ClassVar[dict[str, dataclasses.Field[Any]]]


def setting(default: Any, description: str) -> Any:
    """A dataclass settings field: its default and its description (the flag's --help)."""
    return dataclasses.field(default=default, metadata={DESCRIPTION: description})


def settings_fields(settings_class: type) -> list[SettingField]:
    """The fields of a pydantic-settings class or of a settings dataclass, in declaration order."""
    pydantic_fields: Mapping[str, _PydanticField] | None = getattr(
        settings_class, "model_fields", None
    )
    if pydantic_fields is not None:
        return [
            SettingField(name, field.annotation, field.description, tuple(field.metadata))
            for name, field in pydantic_fields.items()
        ]
    if not dataclasses.is_dataclass(settings_class):
        raise TypeError(f"{settings_class.__name__} is neither BaseSettings nor a dataclass")
    hints = get_type_hints(settings_class, include_extras=True)
    found = []
    for field in dataclasses.fields(settings_class):
        annotation, metadata = hints[field.name], ()
        if get_origin(annotation) is Annotated:
            annotation, *extras = get_args(annotation)
            metadata = tuple(extras)
        found.append(
            SettingField(field.name, annotation, field.metadata.get(DESCRIPTION), metadata)
        )
    return found


def flag_of(field: SettingField | _PydanticField) -> Flag:
    for item in field.metadata:
        if isinstance(item, Flag):
            return item
    return Flag()


def flag_names(name: str, field: SettingField | _PydanticField) -> tuple[str, ...]:
    """The field's flag names: its Flag's, or `--field-name`."""
    return flag_of(field).names or ("--" + name.replace("_", "-"),)


class _Repeated(argparse.Action):
    """A repeatable flag whose first use replaces the default list (argparse's "append" would
    add to it, so a namespace from the environment could not be overridden)."""

    def __call__(
        self,
        parser: argparse.ArgumentParser,
        namespace: argparse.Namespace,
        values: Any,
        option_string: str | None = None,
    ) -> None:
        items = getattr(namespace, self.dest)
        previous = [] if items is self.default else list(items)
        setattr(namespace, self.dest, [*previous, values])


def _without_none(annotation: Any) -> Any:
    """`X | None` -> X (the flag's type; None is only ever a default)."""
    if get_origin(annotation) in (Union, types.UnionType):
        members = [a for a in get_args(annotation) if a is not type(None)]
        if len(members) == 1:
            return members[0]
    return annotation


def _help(field: SettingField, default: Any) -> str:
    text = " ".join((field.description or "").split())
    if default in (None, False, [], ""):
        return text
    return f"{text.removesuffix('.')} (default: {default})."


def _instance(settings_class: type[Settings]) -> Settings:
    """The class's settings from the environment and the fields' defaults."""
    if hasattr(settings_class, "model_fields"):
        return settings_class()
    return load_settings(settings_class)


def add_settings_arguments(
    parser: argparse.ArgumentParser,
    settings_class: type[Settings],
    defaults: Settings | None = None,
) -> None:
    """One flag per field of `settings_class`, its default the field's value in `defaults`
    (default: the class instantiated here, so from the environment or the field's default)."""
    current = defaults if defaults is not None else _instance(settings_class)
    groups: dict[str, argparse._MutuallyExclusiveGroup] = {}
    for field in settings_fields(settings_class):
        name = field.name
        flag = flag_of(field)
        target: argparse.ArgumentParser | argparse._MutuallyExclusiveGroup = parser
        if flag.group is not None:
            if flag.group not in groups:
                groups[flag.group] = parser.add_mutually_exclusive_group()
            target = groups[flag.group]
        default = getattr(current, name)
        kind = _without_none(field.annotation)
        options: dict[str, Any] = {"dest": name, "default": default, "help": _help(field, default)}
        if kind is bool:
            options["action"] = "store_true"
        elif get_origin(kind) is list and get_args(kind)[0] in SCALAR_TYPES:
            options.update(action=_Repeated, type=get_args(kind)[0], default=list(default))
        elif kind in SCALAR_TYPES:
            options["type"] = kind
        else:
            raise TypeError(f"{settings_class.__name__}.{name}: no flag for type {kind!r}")
        if flag.metavar is not None:
            options["metavar"] = flag.metavar
        if flag.choices is not None:
            options["choices"] = flag.choices
        target.add_argument(*flag_names(name, field), **options)


def settings_from_args(settings_class: type[Settings], args: argparse.Namespace) -> Settings:
    """The settings the parsed flags say (flags carry env-or-default values for the rest)."""
    given = {
        field.name: getattr(args, field.name)
        for field in settings_fields(settings_class)
        if hasattr(args, field.name)
    }
    return settings_class(**given)


def _from_text(kind: Any, text: str) -> Any:
    """An environment variable's text as a value of the field's type (ValueError if not)."""
    if kind is bool:
        if text.strip().lower() in _TRUE:
            return True
        if text.strip().lower() in _FALSE:
            return False
        raise ValueError(f"expected a boolean ({'/'.join(_TRUE[:4])} or {'/'.join(_FALSE[:4])})")
    if get_origin(kind) is list and get_args(kind)[0] in SCALAR_TYPES:
        items = json.loads(text)
        if not isinstance(items, list):
            raise ValueError("expected a JSON list")
        return [_from_text(get_args(kind)[0], str(item)) for item in items]
    if kind is int:
        try:
            return int(text)
        except ValueError:
            raise ValueError("expected an integer") from None
    if kind is float:
        try:
            return float(text)
        except ValueError:
            raise ValueError("expected a number") from None
    if kind in (str, Path):
        return kind(text)
    raise TypeError(f"no environment variable for type {kind!r}")


def load_settings(
    settings_class: type[Settings], environ: Mapping[str, str] | None = None
) -> Settings:
    """A settings dataclass from the environment (`<env_prefix><FIELD>`, any case of FIELD as
    pydantic-settings accepts) and the fields' defaults."""
    prefix: str = settings_class.env_prefix  # type: ignore[attr-defined]
    source = os.environ if environ is None else environ
    upper = {key.upper(): value for key, value in source.items()}
    values: dict[str, Any] = {}
    for field in settings_fields(settings_class):
        variable = f"{prefix}{field.name}".upper()
        if variable not in upper:
            continue
        text = upper[variable]
        try:
            value = _from_text(_without_none(field.annotation), text)
        except ValueError as exc:
            reason = "not valid JSON" if isinstance(exc, json.JSONDecodeError) else str(exc)
            raise SettingsError(f"{variable}={text!r}: {reason}") from exc
        choices = flag_of(field).choices
        if choices is not None and value not in choices:
            raise SettingsError(f"{variable}={text!r}: must be one of {list(choices)}")
        values[field.name] = value
    return settings_class(**values)
