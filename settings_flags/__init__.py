"""Command-line flags derived from a pydantic-settings class: one definition per setting.

Why this exists: the operator and the runtime are configured by flags (the chart and the pod
template pass them) and by environment variables (MODELFLEET_OPERATOR_*, MODELFLEET_RUNTIME_*).
Each setting is declared once, as a field of a `BaseSettings` class with a docstring;
`add_settings_arguments` walks the fields and adds one argparse flag each (name, type, default
and help from the field), and `settings_from_args` turns the parsed flags back into the class.
Precedence is the usual one: a flag given on the command line, else the environment, else the
field's default (the parser's defaults are read from the environment when it is built).

A field says how its flag differs from the plain `--field-name VALUE` with a `Flag` in its
`Annotated` metadata: other names (`-n`), a repeatable flag for a list, membership in a group
of mutually exclusive flags. Booleans are switches (`--verbose`), lists are repeated flags.
Shared by both images' packages, so it imports nothing but pydantic and pydantic-settings.
"""

from __future__ import annotations

import argparse
import types
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar, Union, get_args, get_origin

from pydantic.fields import FieldInfo
from pydantic_settings import BaseSettings

Settings = TypeVar("Settings", bound=BaseSettings)

#: Value types a flag can carry: what argparse converts a word to.
SCALAR_TYPES: tuple[type, ...] = (str, int, float, Path)


@dataclass(frozen=True)
class Flag:
    """How a field's flag is spelled, when not `--field-name`: `Flag("--namespace", "-n")`.

    `group` names a set of mutually exclusive flags (each group is created once per parser).
    `metavar` is the value's name in --help.
    """

    names: tuple[str, ...] = ()
    group: str | None = None
    metavar: str | None = None

    def __init__(self, *names: str, group: str | None = None, metavar: str | None = None) -> None:
        object.__setattr__(self, "names", names)
        object.__setattr__(self, "group", group)
        object.__setattr__(self, "metavar", metavar)


def flag_of(field: FieldInfo) -> Flag:
    for item in field.metadata:
        if isinstance(item, Flag):
            return item
    return Flag()


def flag_names(name: str, field: FieldInfo) -> tuple[str, ...]:
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


def _help(field: FieldInfo, default: Any) -> str:
    text = " ".join((field.description or "").split())
    if default in (None, False, [], ""):
        return text
    return f"{text.removesuffix('.')} (default: {default})."


def add_settings_arguments(
    parser: argparse.ArgumentParser,
    settings_class: type[BaseSettings],
    defaults: BaseSettings | None = None,
) -> None:
    """One flag per field of `settings_class`, its default the field's value in `defaults`
    (default: the class instantiated here, so from the environment or the field's default)."""
    current = defaults if defaults is not None else settings_class()
    groups: dict[str, argparse._MutuallyExclusiveGroup] = {}
    for name, field in settings_class.model_fields.items():
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
        target.add_argument(*flag_names(name, field), **options)


def settings_from_args(settings_class: type[Settings], args: argparse.Namespace) -> Settings:
    """The settings the parsed flags say (flags carry env-or-default values for the rest)."""
    given = {
        name: getattr(args, name) for name in settings_class.model_fields if hasattr(args, name)
    }
    return settings_class(**given)
