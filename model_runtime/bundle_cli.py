"""`modelfleet bundle build|verify`: the command-line face of building.py and verification.py.

Progress goes to stderr: a rich progress bar on a terminal, a plain line every 10 models
otherwise (CI logs), nothing with --quiet. Failures print one precise line and exit non-zero.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from model_runtime.building import ProgressCallback

_LOG_EVERY = 10


@contextmanager
def _progress(total: int, quiet: bool) -> Iterator[ProgressCallback | None]:
    if quiet:
        yield None
        return
    if sys.stderr.isatty():
        from rich.console import Console
        from rich.progress import (
            BarColumn,
            MofNCompleteColumn,
            Progress,
            TextColumn,
            TimeElapsedColumn,
        )

        with Progress(
            TextColumn("training"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
            TextColumn("{task.description}"), console=Console(stderr=True), transient=False,
        ) as bar:
            task = bar.add_task("", total=total)
            yield lambda done, _total, name: bar.update(task, completed=done, description=name)
        return

    def log_line(done: int, total_: int, name: str) -> None:
        if done % _LOG_EVERY == 0 or done == total_:
            print(f"built {done}/{total_} models (last: {name})", file=sys.stderr, flush=True)

    yield log_line


def _build(args: argparse.Namespace) -> int:
    from model_runtime.building import build_bundle
    from model_runtime.errors import ParityError

    started = time.perf_counter()
    try:
        with _progress(args.models, args.quiet) as progress:
            built = build_bundle(
                args.well, Path(args.out), models=args.models, version=args.version, seed=args.seed, progress=progress
            )
    except (ParityError, FileExistsError, ValueError) as exc:
        print(f"modelfleet bundle build: {exc}", file=sys.stderr)
        return 1
    print(
        f"wrote {built.path} ({len(built.manifest.models)} models, well {args.well}, version {args.version}) "
        f"in {time.perf_counter() - started:.1f}s",
        file=sys.stderr,
    )
    print(built.digest)
    return 0


def _verify(args: argparse.Namespace) -> int:
    from model_runtime.bundle_state import load_bundle
    from model_runtime.errors import BundleError

    try:
        bundle = load_bundle(args.source)
    except BundleError as exc:
        print(f"modelfleet bundle verify: {exc.reason.value}: {exc.message}", file=sys.stderr)
        return 1
    print(
        f"ok: {len(bundle.sessions)} models verified and loaded in {bundle.load_seconds:.3f}s "
        f"(well {bundle.manifest.well}, version {bundle.manifest.version})",
        file=sys.stderr,
    )
    print(bundle.digest)
    return 0


def run_bundle_command(args: argparse.Namespace) -> int:
    if args.bundle_command == "build":
        return _build(args)
    if args.bundle_command == "verify":
        return _verify(args)
    raise AssertionError(f"unhandled bundle command {args.bundle_command!r}")
