"""`modelfleet crd`: write the CRD (and the field reference) generated from the pydantic models,
or check that the committed copies match them."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path


class CrdCommand:
    name = "crd"
    help = "write the ModelDeployment CRD generated from the pydantic models"

    def add_arguments(self, parser: argparse.ArgumentParser) -> None:
        parser.add_argument(
            "--out", default="crds/modeldeployment.yaml", help="file to write, - for stdout"
        )
        parser.add_argument(
            "--check", action="store_true", help="exit 1 if the file differs from the models"
        )
        parser.add_argument(
            "--reference", metavar="FILE", help="also write the field reference (Markdown) to FILE"
        )

    def run(self, args: argparse.Namespace) -> int:
        from modelfleet.api.crd import render_crd_yaml, render_reference_markdown

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


COMMAND = CrdCommand()
