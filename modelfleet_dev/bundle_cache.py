"""Real per-well bundles, built in parallel once and kept in a content-addressed cache.

Why this exists: the demo and the e2e suite need hundreds to thousands of real bundles (trained,
converted to ONNX, parity-checked). Building is deterministic (same well, version, model count
and seed give the same bytes), so a bundle built once can be reused honestly: the cache key is
a hash of exactly those inputs (plus the builder's package version), and a hit is a directory
holding the manifest the builder wrote. Misses are built by a process pool, because training is
CPU-bound and the GIL would serialise it in threads.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import dataclass
from pathlib import Path

MANIFEST_FILE = "manifest.json"
#: Bump when the bundle builder changes in a way that changes its output.
CACHE_FORMAT = 4  # 4: built bundles carry reference statistics (monitoring)


@dataclass(frozen=True, order=True)
class BundleKey:
    """Everything a bundle build depends on."""

    well: str
    version: str
    models: int
    seed: int

    def cache_name(self) -> str:
        text = json.dumps(
            {
                "format": CACHE_FORMAT,
                "builder": _builder_version(),
                "well": self.well,
                "version": self.version,
                "models": self.models,
                "seed": self.seed,
            },
            sort_keys=True,
        )
        return hashlib.sha256(text.encode()).hexdigest()[:24]


def _builder_version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("modelfleet")
    except PackageNotFoundError:
        return "unknown"


@dataclass(frozen=True)
class CachedBundle:
    key: BundleKey
    path: Path
    digest: str


def default_cache_dir() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "modelfleet" / "bundles"


def bundle_digest(path: Path) -> str:
    """The digest of a built bundle: the builder writes manifest.json in canonical form, so
    the manifest digest is the sha256 of the file (model_runtime.manifest.manifest_digest)."""
    from model_runtime.manifest import manifest_digest

    return str(manifest_digest((path / MANIFEST_FILE).read_bytes()))


def _lookup(cache_dir: Path, key: BundleKey) -> CachedBundle | None:
    path = cache_dir / key.cache_name()
    if (path / MANIFEST_FILE).is_file():
        return CachedBundle(key, path, bundle_digest(path))
    return None


class BundleBuildError(RuntimeError):
    """A bundle could not be built; carries only text so it crosses process boundaries."""


def _build_one(cache_dir: Path, key: BundleKey) -> CachedBundle:
    from bundle_builder.building import build_bundle

    path = cache_dir / key.cache_name()
    found = _lookup(cache_dir, key)
    if found is not None:  # another process built it meanwhile
        return found
    try:
        built = build_bundle(key.well, path, models=key.models, version=key.version, seed=key.seed)
    except FileExistsError:
        # Two processes (a demo and a test, say) built the same key at once: the builder's
        # atomic rename let exactly one of them in, and that one is the cached bundle.
        raced = _lookup(cache_dir, key)
        if raced is None:
            raise
        return raced
    except Exception as exc:  # re-raised as text: some builder errors do not unpickle
        raise BundleBuildError(
            f"building the bundle of well {key.well} version {key.version} "
            f"({key.models} models, seed {key.seed}) failed: {type(exc).__name__}: {exc}"
        ) from None
    return CachedBundle(key, built.path, built.digest)


ProgressCallback = Callable[[int, int, int], None]
"""(done, total, cache_hits) after every bundle."""


def ensure_bundles(
    keys: Iterable[BundleKey],
    cache_dir: Path | None = None,
    *,
    processes: int | None = None,
    progress: ProgressCallback | None = None,
) -> dict[BundleKey, CachedBundle]:
    """Every key's bundle, from the cache or built now (in `processes` worker processes)."""
    root = cache_dir or default_cache_dir()
    root.mkdir(parents=True, exist_ok=True)
    wanted: Sequence[BundleKey] = sorted(set(keys))
    result: dict[BundleKey, CachedBundle] = {}
    missing: list[BundleKey] = []
    for key in wanted:
        found = _lookup(root, key)
        if found is None:
            missing.append(key)
        else:
            result[key] = found
    hits = len(result)
    if progress is not None:
        progress(len(result), len(wanted), hits)
    if not missing:
        return result
    workers = max(1, min(processes or os.cpu_count() or 1, len(missing)))
    if workers == 1:
        for key in missing:
            result[key] = _build_one(root, key)
            if progress is not None:
                progress(len(result), len(wanted), hits)
        return result
    with ProcessPoolExecutor(max_workers=workers) as pool:
        futures = [pool.submit(_build_one, root, key) for key in missing]
        try:
            for future in as_completed(futures):
                bundle = future.result()
                result[bundle.key] = bundle
                if progress is not None:
                    progress(len(result), len(wanted), hits)
        except BaseException:
            for future in futures:
                future.cancel()
            raise
    return result
