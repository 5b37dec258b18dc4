"""The builder without Go or Kubernetes: a fake toolchain checks its contract (fast, no root).

Missing toolchain and failed builds give one error naming the component and its log; a second
build does nothing; a binary changed on disk is rebuilt.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from modelfleet_dev.real_cluster.build import (
    BuildError,
    Component,
    binary_path,
    build,
    cache_dir,
    missing_binaries,
)

FAKE_GO = """#!/bin/sh
if [ "$1" = env ]; then echo go-fake; exit 0; fi
if [ -n "$FAKE_GO_FAIL" ]; then echo "compile error: boom" >&2; exit 2; fi
out=""
while [ $# -gt 0 ]; do
  if [ "$1" = -o ]; then out="$2"; shift; fi
  pkg="$1"; shift
done
echo "built $pkg" > "$out"
echo "$pkg" >> "$FAKE_GO_CALLS"
"""


@pytest.fixture
def fake_go(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    go = tmp_path / "go"
    go.write_text(FAKE_GO)
    go.chmod(0o755)
    calls = tmp_path / "calls"
    calls.touch()
    monkeypatch.setenv("MODELFLEET_GO", str(go))
    monkeypatch.setenv("MODELFLEET_K8S_CACHE", str(tmp_path / "cache"))
    monkeypatch.setenv("FAKE_GO_CALLS", str(calls))
    return calls


def test_no_toolchain_is_one_clear_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MODELFLEET_GO", str(tmp_path / "no-such-go"))
    monkeypatch.setenv("MODELFLEET_K8S_CACHE", str(tmp_path / "cache"))
    with pytest.raises(BuildError, match="no Go toolchain"):
        build(progress=lambda _: None)


def test_failed_build_names_component_and_log(
    fake_go: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("FAKE_GO_FAIL", "1")
    with pytest.raises(BuildError) as caught:
        build(progress=lambda _: None)
    log = cache_dir() / "logs" / "build-kwok.log"
    assert "building kwok failed" in str(caught.value)
    assert str(log) in str(caught.value)
    assert "boom" in log.read_text()
    assert not binary_path(Component.KWOK).exists()


def test_build_is_idempotent_and_rebuilds_a_changed_binary(fake_go: Path) -> None:
    lines: list[str] = []
    built = build(progress=lines.append)
    assert set(built) == set(Component)
    assert missing_binaries() == []
    assert build(progress=lines.append) == []
    assert len(fake_go.read_text().splitlines()) == len(Component)
    binary_path(Component.KUBECTL).write_text("tampered")
    assert missing_binaries() == [Component.KUBECTL]
    assert build(progress=lines.append) == [Component.KUBECTL]
    manifest = (cache_dir() / "manifest.json").read_text()
    assert "k8s.io/component-base/version.gitVersion=v1.37.2" in manifest
    assert any("up to date" in line for line in lines)
