"""The `modelfleet` console script: one entry point, one subcommand per job.

Each subcommand imports its implementation lazily, so `modelfleet operator` never
loads onnxruntime or scikit-learn and `modelfleet bundle` never loads kopf.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence


def _add_bundle_commands(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    bundle = sub.add_parser("bundle", help="build and verify per-well model bundles")
    bundle_sub = bundle.add_subparsers(dest="bundle_command", required=True)

    build = bundle_sub.add_parser(
        "build", help="train a well's models, convert them to ONNX, check parity, write a bundle"
    )
    build.add_argument("--well", required=True, help="well id (DNS-1123 label), e.g. fr-0001")
    build.add_argument("--out", required=True, help="output directory (must not exist or be empty)")
    build.add_argument("--models", type=int, default=100, help="number of models (default 100)")
    build.add_argument("--version", default="1.0.0", help="model version label (default 1.0.0)")
    build.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    build.add_argument("--quiet", action="store_true", help="no progress bar")

    verify = bundle_sub.add_parser(
        "verify", help="check every digest and that every model loads; print the bundle digest"
    )
    verify.add_argument(
        "source", metavar="PATH_OR_URI", help="directory, .tar.gz, file:// or http(s)://"
    )


def _add_crd_command(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    crd = sub.add_parser(
        "crd", help="write the ModelDeployment CRD generated from the pydantic models"
    )
    crd.add_argument(
        "--out", default="crds/modeldeployment.yaml", help="file to write, - for stdout"
    )
    crd.add_argument(
        "--check", action="store_true", help="exit 1 if the file differs from the models"
    )
    crd.add_argument(
        "--reference", metavar="FILE", help="also write the field reference (Markdown) to FILE"
    )


def _run_crd_command(args: argparse.Namespace) -> int:
    from pathlib import Path

    from modelfleet.crd import render_crd_yaml, render_reference_markdown

    text = render_crd_yaml()
    if args.reference:
        reference = Path(args.reference)
        if args.check:
            if (
                not reference.exists()
                or reference.read_text(encoding="utf-8") != render_reference_markdown()
            ):
                print(
                    f"{reference} is out of date: run `modelfleet crd --reference {reference}`",
                    file=sys.stderr,
                )
                return 1
        else:
            reference.write_text(render_reference_markdown(), encoding="utf-8")
            print(f"wrote {reference}")
    if args.out == "-":
        sys.stdout.write(text)
        return 0
    path = Path(args.out)
    if args.check:
        current = path.read_text(encoding="utf-8") if path.exists() else ""
        if current != text:
            print(f"{path} is out of date: run `modelfleet crd --out {path}`", file=sys.stderr)
            return 1
        return 0
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    print(f"wrote {path}")
    return 0


def _add_demo_command(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    demo = sub.add_parser(
        "demo",
        help="run the whole system locally (kubesim, operator, real bundles) and tell its story",
    )
    from modelfleet.demo import add_demo_arguments

    add_demo_arguments(demo)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="modelfleet", description="Kubernetes-native fleet manager for per-well model bundles"
    )
    sub = parser.add_subparsers(dest="command", required=True)
    _add_bundle_commands(sub)
    _add_crd_command(sub)
    operator = sub.add_parser(
        "operator", help="run the operator against the current kubeconfig's cluster"
    )
    from modelfleet.operator_main import add_operator_arguments

    add_operator_arguments(operator)
    _add_demo_command(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.command == "bundle":
        from model_runtime.bundle_cli import run_bundle_command

        return run_bundle_command(args)
    if args.command == "crd":
        return _run_crd_command(args)
    if args.command == "operator":
        from modelfleet.operator_main import main_from_args

        return main_from_args(args)
    if args.command == "demo":
        from modelfleet.demo import main_from_args as run_demo_command

        return run_demo_command(args)
    raise AssertionError(f"unhandled command {args.command!r}")


if __name__ == "__main__":
    sys.exit(main())
