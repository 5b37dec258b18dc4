"""The pinned Go build cache both builders share, with a fake Go: what a manifest entry records,
when a binary counts as current, what a failed build leaves, and the Prometheus install on it.

The entry's fields are pinned because caches built before stay valid only if they are read the
same way: a warm cache must never be rebuilt by a change of this code alone.
"""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import pytest

from modelfleet_dev import pinned_go_build, prometheus_server
from modelfleet_dev.pinned_go_build import BuildError, GoBinary
from tests.fake_go import install_fake_go


@pytest.fixture
def go_calls(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The fake Go's calls file: one line (directory and argv) a build."""
    return install_fake_go(tmp_path / "fake-go", monkeypatch)


def _binary(tmp_path: Path, name: str, **recipe: str) -> GoBinary:
    source = tmp_path / "src" / name
    source.mkdir(parents=True, exist_ok=True)
    fields = {"package": f"example.com/cmd/{name}", "version": "v1.2.3", "ldflags": "-s -w"}
    return GoBinary(name=name, source_dir=source, **(fields | recipe))


def _build(binaries: list[GoBinary], cache: Path) -> None:
    pinned_go_build.build_binaries(
        binaries, cache, label="test", cold_hint="cold", progress=lambda _: None
    )


def test_an_entry_records_the_file_and_the_recipe_tags_and_module_only_when_set(
    tmp_path: Path, go_calls: Path
) -> None:
    plain = _binary(tmp_path, "plain", module="cluster/go/plain")
    tagged = _binary(tmp_path, "tagged", tags="a,b")
    cache = tmp_path / "cache"
    _build([plain, tagged], cache)
    manifest = json.loads((cache / "manifest.json").read_text())
    common = {"sha256", "size", "package", "version", "ldflags", "go", "seconds"}
    assert set(manifest["plain"]) == common | {"module"}
    assert set(manifest["tagged"]) == common | {"tags"}
    assert manifest["plain"]["module"] == "cluster/go/plain"
    assert manifest["tagged"]["tags"] == "a,b"
    assert manifest["tagged"]["go"] == "go-fake"
    assert manifest["plain"]["size"] == (cache / "bin" / "plain").stat().st_size
    plain_call, tagged_call = go_calls.read_text().splitlines()
    assert plain_call.startswith(f"{plain.source_dir} build -p 2 -ldflags -s -w -o ")
    assert "-tags" not in plain_call
    assert tagged_call.startswith(f"{tagged.source_dir} build -p 2 -tags a,b -ldflags -s -w -o ")
    assert tagged_call.endswith(" example.com/cmd/tagged")


def test_a_built_binary_is_current_until_its_file_or_its_recipe_changes(
    tmp_path: Path, go_calls: Path
) -> None:
    built = _binary(tmp_path, "tool", tags="t", module="cluster/go/tool")
    cache = tmp_path / "cache"
    assert pinned_go_build.stale([built], cache) == [built]
    _build([built], cache)
    assert pinned_go_build.stale([built], cache) == []
    for changed in (
        replace(built, version="v1.2.4"),
        replace(built, ldflags="-s"),
        replace(built, tags=""),
        replace(built, package="example.com/cmd/other"),
        replace(built, module="cluster/go/other"),
    ):
        assert pinned_go_build.stale([changed], cache) == [changed]
    pinned_go_build.binary_path(cache, "tool").write_text("tampered")
    assert pinned_go_build.stale([built], cache) == [built]


def test_each_binary_is_recorded_as_it_is_built_and_a_failure_names_its_log(
    tmp_path: Path, go_calls: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    first, second = _binary(tmp_path, "first"), _binary(tmp_path, "second")
    cache = tmp_path / "cache"
    _build([first], cache)
    monkeypatch.setenv("FAKE_GO_FAIL", "1")
    with pytest.raises(BuildError) as caught:
        _build([second], cache)
    log = cache / "logs" / "build-second.log"
    assert "building second failed (exit 2)" in str(caught.value)
    assert str(log) in str(caught.value) and "boom" in str(caught.value)
    assert not pinned_go_build.binary_path(cache, "second").exists()
    assert list((cache / "bin").iterdir()) == [pinned_go_build.binary_path(cache, "first")]
    assert pinned_go_build.stale([first, second], cache) == [second]


def test_no_toolchain_is_one_clear_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MODELFLEET_GO", str(tmp_path / "no-such-go"))
    with pytest.raises(BuildError, match="no Go toolchain"):
        _build([_binary(tmp_path, "tool")], tmp_path / "cache")


def test_the_prometheus_install_is_built_once_with_its_tags_then_only_checked(
    tmp_path: Path, go_calls: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MODELFLEET_PROMETHEUS_CACHE", str(tmp_path / "prometheus"))
    said: list[str] = []
    install = prometheus_server.ensure_installed(progress=said.append)
    assert install.prometheus == tmp_path / "prometheus" / "3.16.0" / "bin" / "prometheus"
    assert prometheus_server.missing_tools() == []
    calls = go_calls.read_text().splitlines()
    assert len(calls) == len(prometheus_server.Tool)
    assert all(f" -tags {prometheus_server.BUILD_TAGS} " in call for call in calls)
    assert any("1/3 prometheus" in line for line in said)
    said.clear()
    assert prometheus_server.ensure_installed(progress=said.append) == install
    assert said == []
    assert len(go_calls.read_text().splitlines()) == len(prometheus_server.Tool)
