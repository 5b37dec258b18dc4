"""`modelfleet bundle pack-fleet FLEET.yaml`: pack many wells at once, in parallel, resumably.

The fleet file names, for each well, its sample and its model files (globs allowed; `{well}` in
any path is replaced by the well id); paths are relative to the fleet file:

    version: 2026.12.1
    sourceRevision: 0123abc          # optional, recorded in every bundle
    sample: samples/{well}.csv        # default for every well
    models: ["models/{well}/*.joblib", "pump-wear=shared/wear.joblib"]
    wells:
      - fr-0001
      - {well: fr-0002, sample: samples/fr-0002-cleaned.parquet}

A model given as a glob is named after its file (stem); NAME=PATH names it explicitly. Each
well's bundle goes to OUT/<well>. A bundle already there that was packed from the same inputs
(same version, revision, tolerance and file digests) is skipped, so an interrupted run resumes
where it stopped. `digests.yaml` (well -> digest, the format `spec.model.digestsFrom` reads) is
written last, atomically, and only when every well is packed.
"""

from __future__ import annotations

import glob
import multiprocessing
import os
import shutil
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated

import msgspec
import yaml

from bundle_builder.errors import PackError
from bundle_builder.inputs import file_sha256
from bundle_builder.packing import PACK_TOLERANCE, pack_files
from model_runtime.manifest import (
    MANIFEST_FILE,
    manifest_digest,
    parse_manifest,
    validation_problem,
)

DIGESTS_FILE = "digests.yaml"


class _FleetModel(msgspec.Struct, frozen=True, forbid_unknown_fields=True, kw_only=True):
    """msgspec, as the manifest (model_runtime.manifest): unknown keys refused."""


class WellEntry(_FleetModel, frozen=True, kw_only=True):
    well: Annotated[str, msgspec.Meta(min_length=1)]
    sample: str | None = None
    models: list[str] | None = None


class FleetFile(_FleetModel, frozen=True, kw_only=True):
    version: Annotated[str, msgspec.Meta(min_length=1)]
    source_revision: str | None = msgspec.field(default=None, name="sourceRevision")
    sample: str | None = None
    models: list[str] = msgspec.field(default_factory=list)
    features: list[str] | None = None
    trust: list[str] = msgspec.field(default_factory=list)
    tolerance: Annotated[float, msgspec.Meta(gt=0.0)] = PACK_TOLERANCE
    wells: Annotated[list[str | WellEntry], msgspec.Meta(min_length=1)]


@dataclass(frozen=True)
class WellJob:
    """Everything one worker process needs to pack one well (picklable, paths resolved)."""

    well: str
    version: str
    models: dict[str, Path]
    sample: Path
    out: Path
    features: tuple[str, ...] | None
    trust: tuple[str, ...]
    source_revision: str | None
    tolerance: float


@dataclass(frozen=True)
class WellResult:
    well: str
    digest: str | None
    skipped: bool
    models: int
    error: str | None = None


def load_fleet(path: Path) -> FleetFile:
    try:
        raw = yaml.safe_load(path.read_text())
    except (OSError, yaml.YAMLError) as exc:
        raise PackError(f"fleet file {path} cannot be read: {exc}") from exc
    try:
        return msgspec.convert(raw, FleetFile)
    except msgspec.ValidationError as exc:
        raise PackError(f"fleet file {path} is invalid: {validation_problem(exc)}") from exc


def _resolve_models(patterns: list[str], base: Path, well: str) -> dict[str, Path]:
    models: dict[str, Path] = {}
    for pattern in patterns:
        name, sep, spec = pattern.partition("=")
        if not sep:
            spec, name = pattern, ""
        spec = spec.replace("{well}", well)
        full = spec if os.path.isabs(spec) else str(base / spec)
        if name:
            found = [Path(full)]
        else:
            found = [Path(p) for p in sorted(glob.glob(full))]
            if not found:
                raise PackError(f"well {well!r}: model pattern {pattern!r} matches no file")
        for file in found:
            model = name or file.stem
            if model in models:
                raise PackError(f"well {well!r}: model {model!r} is given twice ({file})")
            models[model] = file
    if not models:
        raise PackError(f"well {well!r}: no models (set models: for the fleet or the well)")
    return models


def plan_fleet(fleet_path: Path, out: Path) -> list[WellJob]:
    """One job per well, every path resolved and every glob expanded (errors name the well)."""
    fleet = load_fleet(fleet_path)
    base = fleet_path.parent
    jobs: list[WellJob] = []
    seen: set[str] = set()
    for item in fleet.wells:
        entry = WellEntry(well=item) if isinstance(item, str) else item
        if entry.well in seen:
            raise PackError(f"fleet file {fleet_path}: well {entry.well!r} is listed twice")
        seen.add(entry.well)
        sample = entry.sample or fleet.sample
        if sample is None:
            raise PackError(
                f"well {entry.well!r}: no sample (set sample: for the fleet or the well)"
            )
        sample = sample.replace("{well}", entry.well)
        jobs.append(
            WellJob(
                well=entry.well,
                version=fleet.version,
                models=_resolve_models(entry.models or fleet.models, base, entry.well),
                sample=Path(sample) if os.path.isabs(sample) else base / sample,
                out=out / entry.well,
                features=tuple(fleet.features) if fleet.features else None,
                trust=tuple(fleet.trust),
                source_revision=fleet.source_revision,
                tolerance=fleet.tolerance,
            )
        )
    return jobs


def _already_packed(job: WellJob) -> str | None:
    """The digest of the bundle at job.out if it was packed from exactly these inputs."""
    manifest_path = job.out / MANIFEST_FILE
    if not manifest_path.is_file():
        return None
    raw = manifest_path.read_bytes()
    manifest = parse_manifest(raw)
    inputs = manifest.provenance.inputs or {}
    wanted = {f"model:{name}": file_sha256(path) for name, path in job.models.items()}
    wanted["sample"] = file_sha256(job.sample)
    recorded = {key: value.sha256 for key, value in inputs.items()}
    same = (
        manifest.well == job.well
        and manifest.version == job.version
        and manifest.provenance.source_revision == job.source_revision
        and manifest.parity.tolerance == job.tolerance
        and recorded == wanted
    )
    if not same:
        raise PackError(
            f"well {job.well!r}: {job.out} holds a bundle packed from other inputs; "
            "remove it (or pack to another --out) to repack"
        )
    return manifest_digest(raw)


def pack_well(job: WellJob) -> WellResult:
    """Pack one well (in a worker process); errors come back as a result, never half a bundle."""
    try:
        for stale in job.out.parent.glob(f".{job.out.name}.packing-*"):
            shutil.rmtree(stale, ignore_errors=True)  # left by an interrupted run
        existing = _already_packed(job)
        if existing is not None:
            return WellResult(job.well, existing, skipped=True, models=len(job.models))
        packed = pack_files(
            job.well,
            job.version,
            job.models,
            job.sample,
            job.out,
            features=job.features,
            trusted_types=job.trust,
            source_revision=job.source_revision,
            tolerance=job.tolerance,
        )
        return WellResult(job.well, packed.digest, skipped=False, models=len(job.models))
    except (PackError, FileExistsError, OSError) as exc:
        return WellResult(job.well, None, skipped=False, models=len(job.models), error=str(exc))


def write_digests(out: Path, digests: dict[str, str]) -> Path:
    target = out / DIGESTS_FILE
    staging = out / f".{DIGESTS_FILE}.tmp-{os.getpid()}"
    staging.write_text(yaml.safe_dump(dict(sorted(digests.items())), default_flow_style=False))
    staging.replace(target)
    return target


def _import_packing_stack() -> None:
    import onnxruntime  # noqa: F401
    import pandas  # noqa: F401
    import skl2onnx  # noqa: F401
    import sklearn.pipeline  # noqa: F401


def pack_fleet(
    fleet_path: Path,
    out: Path,
    *,
    jobs: int = 1,
    progress: Callable[[WellResult, int, int], None] | None = None,
) -> list[WellResult]:
    """Pack every well of the fleet file into OUT/<well>; write OUT/digests.yaml if all succeed."""
    if jobs < 1:
        raise PackError(f"--jobs must be at least 1, got {jobs}")
    planned = plan_fleet(fleet_path, out)
    out.mkdir(parents=True, exist_ok=True)
    results: list[WellResult] = []
    if jobs == 1:
        for job in planned:
            results.append(pack_well(job))
            if progress is not None:
                progress(results[-1], len(results), len(planned))
    else:
        _import_packing_stack()
        # fork: every worker starts with scikit-learn, skl2onnx and onnxruntime already imported.
        context = multiprocessing.get_context("fork")
        with ProcessPoolExecutor(max_workers=jobs, mp_context=context) as pool:
            futures = [pool.submit(pack_well, job) for job in planned]
            for future in as_completed(futures):
                results.append(future.result())
                if progress is not None:
                    progress(results[-1], len(results), len(planned))
    results.sort(key=lambda r: r.well)
    if all(r.digest is not None for r in results):
        write_digests(out, {r.well: r.digest for r in results if r.digest is not None})
    return results
