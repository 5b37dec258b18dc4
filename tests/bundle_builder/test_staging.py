"""A staged bundle is renamed into place whole, and never over a bundle another writer put there."""

from __future__ import annotations

from pathlib import Path

import pytest

from bundle_builder.staging import move_into_place


def _staged(root: Path, name: str, content: str) -> Path:
    staging = root / name
    staging.mkdir()
    (staging / "manifest.json").write_text(content)
    return staging


def test_staging_replaces_an_absent_or_empty_target(tmp_path: Path) -> None:
    absent, empty = tmp_path / "absent", tmp_path / "empty"
    empty.mkdir()
    move_into_place(_staged(tmp_path, ".a", "a"), absent)
    move_into_place(_staged(tmp_path, ".b", "b"), empty)
    assert (absent / "manifest.json").read_text() == "a"
    assert (empty / "manifest.json").read_text() == "b"
    assert not (tmp_path / ".a").exists() and not (tmp_path / ".b").exists()


def test_the_writer_that_lost_the_race_gets_file_exists_and_the_winner_stays(
    tmp_path: Path,
) -> None:
    out = tmp_path / "bundle"
    move_into_place(_staged(tmp_path, ".winner", "winner"), out)
    loser = _staged(tmp_path, ".loser", "loser")
    # The rename itself refuses (ENOTEMPTY on Linux): no check-then-rename window.
    with pytest.raises(FileExistsError, match="another writer"):
        move_into_place(loser, out)
    assert (out / "manifest.json").read_text() == "winner"
    assert (loser / "manifest.json").read_text() == "loser"  # the caller cleans its staging


def test_a_file_in_the_way_is_refused(tmp_path: Path) -> None:
    out = tmp_path / "bundle"
    out.write_text("not a bundle")
    with pytest.raises(FileExistsError, match="not a directory"):
        move_into_place(_staged(tmp_path, ".s", "s"), out)
    assert out.read_text() == "not a bundle"
