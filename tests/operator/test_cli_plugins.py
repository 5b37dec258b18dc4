"""`modelfleet NAME` loads only NAME's plug-in: the operator does not carry the bundle builder,
the dev tooling, kubesim and numpy in its memory (they cost it ~24 MB of RSS at start)."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from modelfleet.app.cli import build_parser

OTHER_STACKS = ("bundle_builder", "modelfleet_dev", "kubesim", "numpy")

PROBE = """
import json, sys
from modelfleet.app.cli import main
try:
    main(sys.argv[1:])
except SystemExit:
    pass
print(json.dumps(sorted({m.split(".")[0] for m in sys.modules})), file=sys.stderr)
"""


def imported_by(*argv: str) -> set[str]:
    """Top-level packages imported by `modelfleet ARGV` in a fresh interpreter."""
    done = subprocess.run(
        [sys.executable, "-c", PROBE, *argv], capture_output=True, text=True, timeout=120
    )
    return set(json.loads(done.stderr.strip().splitlines()[-1]))


def test_the_operator_subcommand_imports_no_other_plug_ins_stack() -> None:
    modules = imported_by("operator", "--help")
    assert "modelfleet" in modules
    assert not modules & set(OTHER_STACKS)


def test_the_top_level_help_and_an_unknown_name_still_list_every_command() -> None:
    assert set(OTHER_STACKS[:2]) <= imported_by("--help")
    parser = build_parser(only="no-such-command")
    with pytest.raises(SystemExit):
        parser.parse_args(["no-such-command"])
    sub = next(a for a in parser._actions if a.dest == "command")
    assert {"operator", "crd", "bundle", "demo"} <= set(sub.choices or {})


def test_a_named_subcommand_parses_as_with_every_plug_in_loaded() -> None:
    argv = ["crd", "--help"]
    only = build_parser(only="crd")
    sub = next(a for a in only._actions if a.dest == "command")
    assert set(sub.choices or {}) == {"crd"}
    with pytest.raises(SystemExit):
        only.parse_args(argv)
    full = build_parser().parse_args(["operator", "--standalone"])
    assert full == build_parser(only="operator").parse_args(["operator", "--standalone"])
