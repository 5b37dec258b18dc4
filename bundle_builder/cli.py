"""`modelfleet bundle build|verify`: the command-line face of building.py and model_runtime's
verification.

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

from bundle_builder.building import ProgressCallback

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
            TextColumn("training"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
            TextColumn("{task.description}"),
            console=Console(stderr=True),
            transient=False,
        ) as bar:
            task = bar.add_task("", total=total)
            yield lambda done, _total, name: bar.update(task, completed=done, description=name)
        return

    def log_line(done: int, total_: int, name: str) -> None:
        if done % _LOG_EVERY == 0 or done == total_:
            print(f"built {done}/{total_} models (last: {name})", file=sys.stderr, flush=True)

    yield log_line


def _build(args: argparse.Namespace) -> int:
    from bundle_builder.building import build_bundle
    from model_runtime.errors import ParityError

    started = time.perf_counter()
    try:
        with _progress(args.models, args.quiet) as progress:
            built = build_bundle(
                args.well,
                Path(args.out),
                models=args.models,
                version=args.version,
                seed=args.seed,
                progress=progress,
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


class BundleCommand:
    name = "bundle"
    help = "build and verify per-well model bundles"

    def add_arguments(self, parser: argparse.ArgumentParser) -> None:
        bundle_sub = parser.add_subparsers(dest="bundle_command", required=True)
        build = bundle_sub.add_parser(
            "build",
            help="train a well's models, convert them to ONNX, check parity, write a bundle",
        )
        build.add_argument("--well", required=True, help="well id (DNS-1123 label), e.g. fr-0001")
        build.add_argument(
            "--out", required=True, help="output directory (must not exist or be empty)"
        )
        build.add_argument("--models", type=int, default=100, help="number of models (default 100)")
        build.add_argument("--version", default="1.0.0", help="model version label (default 1.0.0)")
        build.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
        build.add_argument("--quiet", action="store_true", help="no progress bar")
        build.set_defaults(bundle_run=_build)
        verify = bundle_sub.add_parser(
            "verify", help="check every digest and that every model loads; print the bundle digest"
        )
        verify.add_argument(
            "source", metavar="PATH_OR_URI", help="directory, .tar.gz, file:// or http(s)://"
        )
        verify.set_defaults(bundle_run=_verify)

    def run(self, args: argparse.Namespace) -> int:
        result: int = args.bundle_run(args)
        return result


COMMAND = BundleCommand()
