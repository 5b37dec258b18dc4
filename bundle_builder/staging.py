"""Bundles are written into a staging directory beside their target and renamed into place.

The rename is the commit point: a reader sees either no bundle or a whole one. When two
writers race for one target, exactly one rename wins; the loser gets FileExistsError (the
kernel reports that race as ENOTEMPTY or EEXIST, depending on timing) and its staging copy
is removed by its caller.
"""

from __future__ import annotations

import errno
from pathlib import Path


def prepare_target(out: Path) -> None:
    """Refuse a target that holds anything: a bundle is never written over another."""
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise FileExistsError(f"--out {out} exists and is not an empty directory")


def move_into_place(staging: Path, out: Path) -> None:
    """Rename the finished `staging` directory to `out` (absent or an empty directory).

    No check-then-rename: the rename itself refuses a non-empty `out`, so a writer that
    filled `out` after our caller's early prepare_target still cannot be overwritten.
    """
    if out.exists() and not out.is_dir():
        raise FileExistsError(f"{out} exists and is not a directory")
    try:
        if out.is_dir():
            out.rmdir()  # only an empty directory; a filled one raises ENOTEMPTY
        staging.rename(out)
    except OSError as exc:
        if exc.errno in (errno.ENOTEMPTY, errno.EEXIST):
            raise FileExistsError(f"{out} was written by another writer meanwhile") from exc
        raise
