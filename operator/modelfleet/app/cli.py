"""The `modelfleet` console script: one entry point, one subcommand per job.

Subcommands are plug-ins (entry-point group `modelfleet.commands`), so each package brings its
own: the operator `operator` and `crd`, the bundle builder `bundle`, the dev tooling `demo`.
An image offers exactly the commands whose package it holds: the operator image has no
`bundle` (no scikit-learn) and no `demo`. A named subcommand loads only its own plug-in: loading
them all made `modelfleet operator` import the bundle builder, the dev tooling, kubesim and numpy
(VmHWM 97.7 MB against 73.2 MB for the operator alone; issue 11). `modelfleet --help`, and a name
no plug-in has, load them all to list them.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Iterator, Sequence
from importlib.metadata import entry_points
from typing import Protocol, cast

COMMAND_GROUP = "modelfleet.commands"


class Command(Protocol):
    """What a plug-in exports: its name, a one-line help, its flags and how to run it."""

    name: str
    help: str

    def add_arguments(self, parser: argparse.ArgumentParser) -> None: ...

    def run(self, args: argparse.Namespace) -> int: ...


def _missing_top_level(error: ModuleNotFoundError) -> bool:
    """True when the plug-in's own package (or its stack) is not in this image at all."""
    return error.name is not None and "." not in error.name


def available_commands(only: str | None = None) -> Iterator[Command]:
    """The plug-ins whose modules import here, sorted by name; a broken plug-in still raises.
    `only`: just the plug-in of that name (none if no plug-in has it)."""
    points = sorted(entry_points(group=COMMAND_GROUP), key=lambda p: p.name)
    for point in points:
        if only is not None and point.name != only:
            continue
        try:
            command = cast(Command, point.load())
        except ModuleNotFoundError as error:
            if _missing_top_level(error):
                continue
            raise
        yield command


def build_parser(only: str | None = None) -> argparse.ArgumentParser:
    """The parser with every available subcommand, or with just `only` when it is available."""
    parser = argparse.ArgumentParser(
        prog="modelfleet", description="Kubernetes-native fleet manager for per-well model bundles"
    )
    sub = parser.add_subparsers(dest="command", required=True)
    commands = list(available_commands(only)) if only is not None else []
    for command in commands or available_commands():
        command.add_arguments(sub.add_parser(command.name, help=command.help))
        sub.choices[command.name].set_defaults(run=command.run)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args_in = list(sys.argv[1:] if argv is None else argv)
    named = args_in[0] if args_in and not args_in[0].startswith("-") else None
    args = build_parser(only=named).parse_args(args_in)
    return int(args.run(args))


if __name__ == "__main__":
    sys.exit(main())
