"""A fake Go toolchain for the builders' tests: fast, no network, no compiler.

`go env GOVERSION` says ``go-fake``; `go build ... -o OUT PKG` writes ``built PKG`` to OUT and
appends one line, its working directory and arguments, to the calls file; with
``FAKE_GO_FAIL`` set a build prints ``compile error: boom`` and exits 2.
"""

from __future__ import annotations

from pathlib import Path

import pytest

FAKE_GO = """#!/bin/sh
if [ "$1" = env ]; then echo go-fake; exit 0; fi
if [ -n "$FAKE_GO_FAIL" ]; then echo "compile error: boom" >&2; exit 2; fi
echo "$(pwd) $*" >> "$FAKE_GO_CALLS"
out=""
while [ $# -gt 0 ]; do
  if [ "$1" = -o ]; then out="$2"; shift; fi
  pkg="$1"; shift
done
echo "built $pkg" > "$out"
"""


def install_fake_go(directory: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The fake Go in `directory`, named by MODELFLEET_GO; returns its calls file (one line a
    build)."""
    directory.mkdir(parents=True, exist_ok=True)
    go = directory / "go"
    go.write_text(FAKE_GO)
    go.chmod(0o755)
    calls = directory / "calls"
    calls.touch()
    monkeypatch.setenv("MODELFLEET_GO", str(go))
    monkeypatch.setenv("FAKE_GO_CALLS", str(calls))
    return calls
