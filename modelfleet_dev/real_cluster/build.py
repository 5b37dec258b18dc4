"""Build the pinned control-plane binaries from Go modules into a cache outside the tree.

Why this exists: the machines reach the Go module proxy but no release site, so every binary
(kube-apiserver, kube-controller-manager, kube-scheduler, kubectl, etcd, kwok) is compiled from
the small tool modules under ``cluster/go/``. A cold build takes tens of minutes on two cores, so
the results are cached by Kubernetes version (``~/.cache/modelfleet/k8s/v1.37.2/bin``) the way
``pinned_go_build`` keeps every pinned Go build: a manifest of sha256s, and a binary rebuilt only
when it is missing, changed on disk, or built from another recipe. The manifest is also what tells the harness and the tests that a build is
complete (they skip cleanly otherwise).
"""

from __future__ import annotations

import enum
import os
from collections.abc import Callable
from pathlib import Path
from typing import Final

from modelfleet_dev import pinned_go_build
from modelfleet_dev.pinned_go_build import BuildError, GoBinary, find_go

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


class Component(enum.StrEnum):
    """A binary the harness needs; its value is the file name in the cache's bin/ folder."""

    ETCD = "etcd"
    KUBE_APISERVER = "kube-apiserver"
    KUBE_CONTROLLER_MANAGER = "kube-controller-manager"
    KUBE_SCHEDULER = "kube-scheduler"
    KUBECTL = "kubectl"
    KWOK = "kwok"


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


def _from_cluster_go(
    component: Component, module_dir: str, package: str, version: str, ldflags: str
) -> GoBinary:
    """`component` built in the module ``cluster/go/<module_dir>`` (its manifest entry records
    that folder)."""
    return GoBinary(
        name=component.value,
        package=package,
        source_dir=CLUSTER_DIR / "go" / module_dir,
        version=version,
        ldflags=ldflags,
        module=f"cluster/go/{module_dir}",
    )


_BINARIES: Final[dict[Component, GoBinary]] = {
    Component(binary.name): binary
    for binary in (
        # Smallest first: a broken toolchain shows up in one minute, not after kube-apiserver.
        _from_cluster_go(
            Component.KWOK,
            "kwok",
            "sigs.k8s.io/kwok/cmd/kwok",
            KWOK_VERSION,
            # consts.Version already reads 0.8.0 in the module; stamped anyway so a bump of the
            # module without this constant is caught by `kwok --version`.
            f"-s -w -X sigs.k8s.io/kwok/pkg/consts.Version={KWOK_VERSION.removeprefix('v')}",
        ),
        _from_cluster_go(
            Component.ETCD,
            "etcd",
            "go.etcd.io/etcd/server/v3",
            ETCD_VERSION,
            # etcd's Version comes from the api module it is built with (3.7.3 through the
            # go.mod); GitSHA says where the binary came from instead of "Not provided".
            "-s -w -X go.etcd.io/etcd/api/v3/version.GitSHA=modelfleet-gomod",
        ),
        *(
            _from_cluster_go(
                component,
                "kubernetes",
                f"k8s.io/kubernetes/cmd/{component.value}",
                KUBERNETES_VERSION,
                _K8S_LDFLAGS,
            )
            for component in (
                Component.KUBE_APISERVER,
                Component.KUBE_CONTROLLER_MANAGER,
                Component.KUBE_SCHEDULER,
                Component.KUBECTL,
            )
        ),
    )
}


def cache_dir() -> Path:
    """The version-keyed cache (``MODELFLEET_K8S_CACHE`` overrides the root, for tests)."""
    root = os.environ.get("MODELFLEET_K8S_CACHE")
    base = Path(root) if root else Path.home() / ".cache" / "modelfleet" / "k8s"
    return base / KUBERNETES_VERSION


def binary_path(component: Component) -> Path:
    return pinned_go_build.binary_path(cache_dir(), component.value)


def missing_binaries() -> list[Component]:
    """Components not built (or not matching the manifest): empty when the cache is complete."""
    return [Component(b.name) for b in pinned_go_build.stale(_BINARIES.values(), cache_dir())]


def build(
    components: list[Component] | None = None,
    *,
    progress: Callable[[str], None] = print,
) -> list[Component]:
    """Build what is missing (all components by default); returns those it built.

    Idempotent: a current binary is only hashed. Each build logs to ``logs/build-<name>.log``
    in the cache, and a failure names the component and that log.
    """
    wanted = components or list(_BINARIES)
    todo = [
        Component(b.name)
        for b in pinned_go_build.stale((_BINARIES[c] for c in wanted), cache_dir())
    ]
    for c in wanted:
        if c not in todo:
            progress(f"[build] {c.value}: up to date ({binary_path(c)})")
    if todo:
        pinned_go_build.build_binaries(
            [_BINARIES[c] for c in todo],
            cache_dir(),
            label="build",
            cold_hint="a cold Kubernetes build takes tens of minutes",
            progress=progress,
        )
    return todo
