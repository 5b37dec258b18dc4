"""The `modelfleet` console script: one entry point, one subcommand per job.

Subcommands are plug-ins (entry-point group `modelfleet.commands`), so each package brings its
own: the operator `operator` and `crd`, the bundle builder `bundle`, the dev tooling `demo`.
An image offers exactly the commands whose package it holds: the operator image has no
`bundle` (no scikit-learn) and no `demo`. Each plug-in imports its heavy stack only when run.
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


def available_commands() -> Iterator[Command]:
    """The plug-ins whose modules import here, sorted by name; a broken plug-in still raises."""
    for point in sorted(entry_points(group=COMMAND_GROUP), key=lambda p: p.name):
        try:
            command = cast(Command, point.load())
        except ModuleNotFoundError as error:
            if _missing_top_level(error):
                continue
            raise
        yield command


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="modelfleet", description="Kubernetes-native fleet manager for per-well model bundles"
    )
    sub = parser.add_subparsers(dest="command", required=True)
    for command in available_commands():
        command.add_arguments(sub.add_parser(command.name, help=command.help))
        sub.choices[command.name].set_defaults(run=command.run)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return int(args.run(args))


if __name__ == "__main__":
    sys.exit(main())
