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
from tests.fake_go import install_fake_go


@pytest.fixture
def fake_go(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The fake Go's calls file (one line a build), with the cache under tmp_path."""
    monkeypatch.setenv("MODELFLEET_K8S_CACHE", str(tmp_path / "cache"))
    return install_fake_go(tmp_path, monkeypatch)


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
