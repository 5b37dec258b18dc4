"""`modelfleet bundle build|verify`: the command-line face of building.py and model_runtime's
verification.

Progress goes to stderr: a rich progress bar on a terminal, a plain line every 10 models
otherwise (CI logs), nothing with --quiet. Failures print one precise line and exit non-zero.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from bundle_builder.building import ProgressCallback

_LOG_EVERY = 10


@contextmanager
def _progress(
    total: int, quiet: bool, label: str = "training", done_word: str = "built", unit: str = "models"
) -> Iterator[ProgressCallback | None]:
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
            TextColumn(label),
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
            print(f"{done_word} {done}/{total_} {unit} (last: {name})", file=sys.stderr, flush=True)

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


def _model_argument(value: str) -> tuple[str, Path]:
    name, sep, path = value.partition("=")
    if not sep or not name or not path:
        raise argparse.ArgumentTypeError(f"expected NAME=PATH, got {value!r}")
    return name, Path(path)


def _pack(args: argparse.Namespace) -> int:
    from bundle_builder.errors import PackError
    from bundle_builder.packing import pack_files

    started = time.perf_counter()
    model_files: dict[str, Path] = {}
    for name, path in args.model:
        if name in model_files:
            print(f"modelfleet bundle pack: model {name!r} given twice", file=sys.stderr)
            return 1
        model_files[name] = path
    features = tuple(f.strip() for f in args.features.split(",")) if args.features else None
    try:
        with _progress(len(model_files), args.quiet, "packing", "packed") as progress:
            packed = pack_files(
                args.well,
                args.version,
                model_files,
                Path(args.sample),
                Path(args.out),
                features=features,
                trusted_types=tuple(args.trust),
                source_revision=args.source_revision,
                tolerance=args.tolerance,
                progress=progress,
            )
    except (PackError, FileExistsError) as exc:
        print(f"modelfleet bundle pack: {exc}", file=sys.stderr)
        return 1
    print(
        f"wrote {packed.path} ({len(packed.manifest.models)} models, well {args.well}, "
        f"version {args.version}) in {time.perf_counter() - started:.1f}s",
        file=sys.stderr,
    )
    print(packed.digest)
    return 0


def _pack_fleet(args: argparse.Namespace) -> int:
    from bundle_builder.errors import PackError
    from bundle_builder.fleet import DIGESTS_FILE, WellResult, pack_fleet, plan_fleet

    started = time.perf_counter()

    failures: list[str] = []
    try:
        total = len(plan_fleet(Path(args.fleet), Path(args.out)))
        with _progress(total, args.quiet, "packing", "packed", "wells") as bar:

            def report(result: WellResult, done: int, total_: int) -> None:
                if result.error is not None:
                    failures.append(result.error)
                if bar is not None:
                    bar(done, total_, result.well + (" (skipped)" if result.skipped else ""))

            results = pack_fleet(Path(args.fleet), Path(args.out), jobs=args.jobs, progress=report)
    except PackError as exc:
        print(f"modelfleet bundle pack-fleet: {exc}", file=sys.stderr)
        return 1
    failed = [r for r in results if r.error is not None]
    packed = sum(1 for r in results if r.digest is not None and not r.skipped)
    skipped = sum(1 for r in results if r.skipped)
    models = sum(r.models for r in results if r.digest is not None and not r.skipped)
    print(
        f"{packed} wells packed ({models} models), {skipped} skipped, {len(failed)} failed "
        f"in {time.perf_counter() - started:.1f}s with {args.jobs} jobs",
        file=sys.stderr,
    )
    for result in failed:
        print(f"modelfleet bundle pack-fleet: {result.error}", file=sys.stderr)
    if failed:
        print(f"{DIGESTS_FILE} not written: fix the failures and run again", file=sys.stderr)
        return 1
    print(Path(args.out) / DIGESTS_FILE)
    return 0


def _push(args: argparse.Namespace) -> int:
    from bundle_builder.errors import PublishError
    from bundle_builder.publishing import push_bundle

    started = time.perf_counter()
    try:
        result = push_bundle(Path(args.directory), args.uri)
    except PublishError as exc:
        print(f"modelfleet bundle push: {exc}", file=sys.stderr)
        return 1
    what = "already there" if result.already_there else f"pushed {result.files} files + manifest"
    print(f"{result.uri}: {what} in {time.perf_counter() - started:.2f}s", file=sys.stderr)
    print(result.digest)
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
    help = "build, pack, publish and verify per-well model bundles"

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
        pack = bundle_sub.add_parser(
            "pack",
            help="convert your fitted scikit-learn models to ONNX, check parity on your sample, write a bundle",
        )
        pack.add_argument("--well", required=True, help="well id (DNS-1123 label), e.g. fr-0001")
        pack.add_argument("--version", required=True, help="model version label, e.g. 2026.12.1")
        pack.add_argument(
            "--model",
            action="append",
            required=True,
            type=_model_argument,
            metavar="NAME=PATH",
            help="a fitted estimator or pipeline (.joblib, .pkl or .skops); repeatable",
        )
        pack.add_argument(
            "--sample",
            required=True,
            help="holdout rows (CSV or Parquet) for parity and statistics",
        )
        pack.add_argument(
            "--features", help="input columns in order, for estimators fitted on arrays: a,b,c"
        )
        pack.add_argument(
            "--trust",
            action="append",
            default=[],
            metavar="TYPE",
            help="a type to trust when loading .skops files (skops lists the untrusted ones)",
        )
        pack.add_argument("--source-revision", help="revision of the code that fitted the models")
        pack.add_argument(
            "--tolerance", type=float, default=1e-5, help="parity tolerance (default 1e-5)"
        )
        pack.add_argument(
            "--out", required=True, help="output directory (must not exist or be empty)"
        )
        pack.add_argument("--quiet", action="store_true", help="no progress bar")
        pack.set_defaults(bundle_run=_pack)
        fleet = bundle_sub.add_parser(
            "pack-fleet",
            help="pack every well of a fleet file in parallel (resumable); write digests.yaml",
        )
        fleet.add_argument("fleet", metavar="FLEET.yaml", help="wells, their models and samples")
        fleet.add_argument("--out", required=True, help="directory of the bundles (OUT/<well>)")
        fleet.add_argument("--jobs", type=int, default=os.cpu_count() or 1, help="worker processes")
        fleet.add_argument("--quiet", action="store_true", help="no per-well progress lines")
        fleet.set_defaults(bundle_run=_pack_fleet)
        push = bundle_sub.add_parser(
            "push",
            help="verify a bundle and publish it (files first, manifest last); print its digest",
        )
        push.add_argument("directory", metavar="DIR", help="a bundle directory")
        push.add_argument(
            "uri",
            metavar="URI",
            help="file://, s3://bucket/prefix, az://container/prefix, gs://...",
        )
        push.set_defaults(bundle_run=_push)
        verify = bundle_sub.add_parser(
            "verify", help="check every digest and that every model loads; print the bundle digest"
        )
        verify.add_argument(
            "source",
            metavar="PATH_OR_URI",
            help="directory, .tar.gz, file://, http(s)://, s3://, az:// or gs://",
        )
        verify.set_defaults(bundle_run=_verify)

    def run(self, args: argparse.Namespace) -> int:
        result: int = args.bundle_run(args)
        return result


COMMAND = BundleCommand()
