"""Reading what a data scientist hands over: fitted estimators (joblib/pickle or skops) and a sample.

Unpickling runs code by design, so it happens here, on the data scientist's side, and never in
production (the runtime loads ONNX and JSON only). `.skops` files are loaded with skops' safe
loader: types beyond skops' defaults must be trusted by name (`--trust`), and are recorded.
"""

from __future__ import annotations

import hashlib
import pickle
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bundle_builder.errors import ModelFileError, SampleError

PICKLE_SUFFIXES = (".joblib", ".pkl", ".pickle")
SKOPS_SUFFIX = ".skops"
CSV_SUFFIXES = (".csv",)
PARQUET_SUFFIXES = (".parquet", ".pq")


@dataclass(frozen=True)
class LoadedEstimator:
    estimator: Any
    file: str | None  # the file's name (not its path: bundles must not depend on where it lay)
    sha256: str | None
    trusted_types: tuple[str, ...] = field(default=())


@dataclass(frozen=True)
class LoadedSample:
    frame: Any  # pandas.DataFrame
    file: str | None
    sha256: str


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def _require_sklearn_estimator(estimator: Any, where: str) -> None:
    from sklearn.base import BaseEstimator

    if not isinstance(estimator, BaseEstimator):
        raise ModelFileError(
            f"{where} holds a {type(estimator).__module__}.{type(estimator).__qualname__}, "
            "not a scikit-learn estimator or pipeline"
        )


def load_estimator(
    path: Path, *, model: str, trusted_types: tuple[str, ...] = ()
) -> LoadedEstimator:
    """The fitted estimator in `path`, or ModelFileError naming `model` and the file."""
    where = f"model {model!r}: {path}"
    if not path.is_file():
        raise ModelFileError(f"{where} does not exist or is not a file")
    suffix = path.suffix.lower()
    used_trust: tuple[str, ...] = ()
    if suffix == SKOPS_SUFFIX:
        import skops.io

        try:
            untrusted = sorted(skops.io.get_untrusted_types(file=path))
        except Exception as exc:  # skops raises zipfile/json/its own errors on a bad file
            raise ModelFileError(f"{where} is not a readable .skops file: {exc}") from exc
        refused = [t for t in untrusted if t not in trusted_types]
        if refused:
            raise ModelFileError(
                f"{where} contains types skops does not trust by default: {', '.join(refused)}; "
                "review them and pass --trust TYPE for each to load it"
            )
        used_trust = tuple(untrusted)
        try:
            estimator = skops.io.load(path, trusted=list(untrusted))
        except Exception as exc:
            raise ModelFileError(f"{where} cannot be loaded by skops: {exc}") from exc
    elif suffix in PICKLE_SUFFIXES:
        import joblib

        try:
            estimator = joblib.load(path)
        except (pickle.UnpicklingError, EOFError, ValueError, KeyError, IndexError) as exc:
            raise ModelFileError(f"{where} is not a readable pickle/joblib file: {exc}") from exc
        except (ModuleNotFoundError, AttributeError, ImportError) as exc:
            raise ModelFileError(
                f"{where} needs code this environment does not have ({exc}); "
                "pack where the model was fitted, or save it with skops"
            ) from exc
    else:
        raise ModelFileError(
            f"{where}: unknown file type {suffix!r}; expected {', '.join(PICKLE_SUFFIXES)} or {SKOPS_SUFFIX}"
        )
    _require_sklearn_estimator(estimator, where)
    return LoadedEstimator(
        estimator=estimator, file=path.name, sha256=file_sha256(path), trusted_types=used_trust
    )


def load_sample(path: Path) -> LoadedSample:
    """The sample as a DataFrame (CSV or Parquet); SampleError when unreadable or empty."""
    import pandas as pd

    if not path.is_file():
        raise SampleError(f"sample {path} does not exist or is not a file")
    suffix = path.suffix.lower()
    try:
        if suffix in CSV_SUFFIXES:
            frame = pd.read_csv(path)
        elif suffix in PARQUET_SUFFIXES:
            frame = pd.read_parquet(path)
        else:
            raise SampleError(
                f"sample {path}: unknown file type {suffix!r}; expected .csv or .parquet"
            )
    except SampleError:
        raise
    except pd.errors.EmptyDataError as exc:
        raise SampleError(f"sample {path} is empty") from exc
    except Exception as exc:  # pandas/pyarrow parser errors have no common base
        raise SampleError(f"sample {path} cannot be read: {exc}") from exc
    if len(frame) == 0:
        raise SampleError(f"sample {path} has a header but no rows")
    return LoadedSample(frame=frame, file=path.name, sha256=file_sha256(path))
