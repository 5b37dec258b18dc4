"""What can be known about the two container images without a Docker engine.

Why this exists: CI has no Docker daemon, so the images cannot be built there. What matters in
them can still be checked: the Dockerfile's structure (stages, pinned bases, non-root user,
COPY sources that exist) and, above all, that each image's entrypoint imports with only that
image's dependencies. For the latter, `isolated_site` lays out a directory holding only the
distributions an image would install (its requirements' transitive closure, taken from this
venv), and the entrypoint is imported by an interpreter started with `-S` (no site-packages)
on that directory alone: no download, about a second per image.
"""

from __future__ import annotations

import importlib.metadata as metadata
import re
import shlex
import tomllib
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

from packaging.markers import default_environment
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

ROOT = Path(__file__).resolve().parents[2]

#: The dependency split the images need (proposed for pyproject.toml, see docs/images.md):
#: the shared core every image has, and one extra per image.
PROPOSED_CORE = ("pydantic>=2.7", "httpx>=0.27", "prometheus-client>=0.20", "pyyaml>=6", "rich>=13")
PROPOSED_EXTRAS: dict[str, tuple[str, ...]] = {
    "operator": ("kopf>=1.37", "kubernetes>=30", "aiohttp>=3.9"),
    "runtime": ("numpy>=1.26", "onnxruntime>=1.18", "aiohttp>=3.9"),
    "build": (
        "numpy>=1.26",
        "onnxruntime>=1.18",
        "scikit-learn>=1.4",
        "skl2onnx>=1.17",
        "onnx>=1.16",
    ),
    "kubesim": ("cel-python>=0.5", "aiohttp>=3.9"),
}


@dataclass
class Stage:
    base: str
    name: str | None
    instructions: list[tuple[str, str]] = field(default_factory=list)

    def all(self, keyword: str) -> list[str]:
        return [args for kw, args in self.instructions if kw == keyword]


def parse_dockerfile(path: Path) -> list[Stage]:
    """Stages with their instructions (continuation lines joined, comments dropped), ARGs
    declared before the first FROM substituted into FROM lines."""
    text = re.sub(r"\\\n", " ", path.read_text(encoding="utf-8"))
    global_args: dict[str, str] = {}
    stages: list[Stage] = []
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        keyword, _, args = line.partition(" ")
        keyword, args = keyword.upper(), args.strip()
        if keyword == "ARG" and not stages:
            arg, _, default = args.partition("=")
            global_args[arg] = default
        elif keyword == "FROM":
            words = args.split()
            base = re.sub(
                r"\$\{(\w+)\}|\$(\w+)", lambda m: global_args[m.group(1) or m.group(2)], words[0]
            )
            stage_name = words[2] if len(words) == 3 and words[1].upper() == "AS" else None
            stages.append(Stage(base=base, name=stage_name))
        elif stages:
            stages[-1].instructions.append((keyword, args))
    return stages


def copy_sources(stage: Stage) -> list[str]:
    """Context paths a stage COPYs (not those copied from another stage)."""
    sources: list[str] = []
    for args in stage.all("COPY"):
        words = shlex.split(args)
        if any(w.startswith("--from=") for w in words):
            continue
        paths = [w for w in words if not w.startswith("--")]
        sources.extend(paths[:-1])
    return sources


def is_pinned(image: str) -> bool:
    """Pinned by digest, or by an exact version tag (x.y.z...), never latest or a moving major."""
    if "@sha256:" in image:
        return True
    _, _, tag = image.rpartition(":")
    return bool(re.match(r"^\d+\.\d+\.\d+", tag))


def pyproject() -> dict[str, object]:
    return tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))


def image_requirements(extra: str) -> list[str]:
    """What `pip install .[extra]` installs: pyproject's split once it has the extra, else the
    proposed one (so the split is proven before it is applied)."""
    project = pyproject()["project"]
    assert isinstance(project, dict)
    extras = project.get("optional-dependencies") or {}
    if extra in extras:
        return [*project["dependencies"], *extras[extra]]
    return [*PROPOSED_CORE, *PROPOSED_EXTRAS[extra]]


def closure(requirements: Iterable[str]) -> set[str]:
    """Canonical names of the distributions pip would install for `requirements` (markers
    evaluated for this interpreter, extras followed), resolved against this venv."""
    environment: dict[str, str] = {key: str(value) for key, value in default_environment().items()}
    seen: set[str] = set()
    pending = [(Requirement(text), "") for text in requirements]
    while pending:
        requirement, extra = pending.pop()
        if requirement.marker and not requirement.marker.evaluate({**environment, "extra": extra}):
            continue
        name = canonicalize_name(requirement.name)
        key = f"{name}[{','.join(sorted(requirement.extras))}]"
        if key in seen:
            continue
        seen.add(key)
        for text in metadata.requires(requirement.name) or []:
            child = Requirement(text)
            if child.marker is None or any(
                child.marker.evaluate({**environment, "extra": wanted})
                for wanted in ("", *requirement.extras)
            ):
                pending.append((child, next(iter(requirement.extras), "")))
    return {key.partition("[")[0] for key in seen}


def isolated_site(distributions: Iterable[str], target: Path) -> Path:
    """Symlink the top-level modules and metadata of `distributions` (from this venv) into
    `target`; returns it. Only these are importable from it."""
    target.mkdir(parents=True, exist_ok=True)
    for name in distributions:
        dist = metadata.distribution(name)
        for file in dist.files or []:
            top = file.parts[0]
            if top.endswith(".data") or top == ".." or top.startswith("__"):
                continue
            if len(file.parts) == 1 and not top.endswith((".py", ".so", ".pth")):
                continue
            if top.endswith(".pth"):
                continue
            source = Path(str(dist.locate_file(top)))
            link = target / top
            if source.exists() and not link.exists():
                link.symlink_to(source)
    return target
