"""The manifest parser (msgspec): what it writes it reads back, byte for byte; any JSON spelling
of a manifest is the same manifest; and whatever it refuses, it refuses as BundleInvalidError
naming the field (`models.3.horizon_days: ...`), never with another exception."""

from __future__ import annotations

import json
import re
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from model_runtime.errors import BundleInvalidError
from model_runtime.manifest import (
    BundleManifest,
    DriftThresholds,
    HistogramStatistics,
    InputFile,
    ModelEntry,
    Parity,
    PredictionStatistics,
    Provenance,
    ReferenceStatistics,
    TensorSpec,
    parse_manifest,
    to_plain,
)

#: Manifests are big draws: fewer examples, and no "slow generation" failure on a busy machine.
LARGE = settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])

names = st.from_regex(r"\A[a-z0-9][a-z0-9_.-]{0,12}\Z")
texts = st.text(max_size=12)
words = st.text(min_size=1, max_size=12)
sha256s = st.binary(min_size=32, max_size=32).map(bytes.hex)
numbers = st.floats(allow_nan=False, allow_infinity=False, width=64)
fractions = st.floats(min_value=0.0, max_value=1.0)
above_zero = st.floats(min_value=1e-9, max_value=1e9)
small_ints = st.integers(min_value=-(2**53), max_value=2**53)
positive = st.integers(min_value=1, max_value=10**9)
files = st.lists(st.from_regex(r"\A[a-z0-9_-]{1,8}(\.onnx)?\Z"), min_size=1, max_size=3).map(
    "/".join
)
json_scalars = st.none() | st.booleans() | small_ints | numbers | texts

tensors = st.builds(
    TensorSpec,
    name=words,
    datatype=st.sampled_from(["FP32", "FP64", "INT64", "INT32", "BOOL", "BYTES"]),
    shape=st.lists(st.integers(min_value=1, max_value=64) | st.just(-1), max_size=3),
)
histograms = st.builds(
    HistogramStatistics,
    count=st.integers(min_value=0, max_value=10**9),
    missing_rate=fractions,
    min=st.none() | numbers,
    max=st.none() | numbers,
    edges=st.lists(numbers, max_size=4),
    frequencies=st.lists(fractions, max_size=5),
)


@st.composite
def drift_thresholds(draw: st.DrawFn) -> DriftThresholds:
    warn, drift = sorted((draw(above_zero), draw(above_zero)))
    return DriftThresholds(warn=warn, drift=drift)


entries = st.builds(
    ModelEntry,
    name=names,
    file=files,
    sha256=sha256s,
    kind=words,
    failure_mode=st.none() | words,
    horizon_days=st.none() | positive,
    task=st.none() | st.sampled_from(["classification", "regression"]),
    features=st.none() | st.lists(words, max_size=3),
    inputs=st.lists(tensors, min_size=1, max_size=2),
    outputs=st.lists(tensors, min_size=1, max_size=2),
    classes=st.lists(small_ints, max_size=3),
    parity_max_abs_diff=st.floats(min_value=0.0, max_value=1e9),
    prediction_reference=st.none()
    | st.builds(
        PredictionStatistics,
        label_frequencies=st.none() | st.dictionaries(texts, fractions, max_size=3),
        outputs=st.dictionaries(texts, histograms, max_size=2),
    ),
)


@st.composite
def manifests(draw: st.DrawFn) -> BundleManifest:
    models = draw(st.lists(entries, min_size=1, max_size=3, unique_by=lambda e: e.name))
    return BundleManifest(
        well=draw(words),
        version=draw(words),
        models=models,
        parity=draw(
            st.builds(
                Parity,
                tolerance=above_zero,
                metric=st.sampled_from(["max_abs_probability_diff", "max_output_divergence"]),
                holdout_rows=positive,
            )
        ),
        provenance=draw(
            st.builds(
                Provenance,
                packages=st.dictionaries(texts, texts, max_size=3),
                training_data_sha256=st.none() | sha256s,
                training_rows=st.none() | positive,
                features=st.lists(words, max_size=3),
                parameters=st.dictionaries(
                    texts, st.dictionaries(texts, json_scalars, max_size=3), max_size=2
                ),
                seed=st.none() | small_ints,
                created_at=words,
                inputs=st.none()
                | st.dictionaries(
                    texts,
                    st.builds(
                        InputFile,
                        file=st.none() | words,
                        sha256=st.none() | sha256s,
                        trusted_types=st.none() | st.lists(words, max_size=2),
                    ),
                    max_size=2,
                ),
                source_revision=st.none() | words,
            )
        ),
        reference=draw(
            st.none()
            | st.builds(
                ReferenceStatistics,
                sample_rows=positive,
                sample_sha256=sha256s,
                bins=positive,
                features=st.dictionaries(texts, histograms, max_size=3),
                drift_thresholds=st.none() | drift_thresholds(),
            )
        ),
    )


@LARGE
@given(manifest=manifests())
def test_a_written_manifest_reads_back_the_same_byte_for_byte(manifest: BundleManifest) -> None:
    written = manifest.to_canonical_bytes()
    read = parse_manifest(written)
    assert read == manifest
    assert read.to_canonical_bytes() == written
    assert read.digest() == manifest.digest()


@LARGE
@given(manifest=manifests(), indent=st.none() | st.integers(0, 4), reverse=st.booleans())
def test_any_json_spelling_is_the_same_manifest(
    manifest: BundleManifest, indent: int | None, reverse: bool
) -> None:
    def reordered(value: Any) -> Any:
        if isinstance(value, dict):
            items = [(k, reordered(v)) for k, v in value.items()]
            return dict(reversed(items) if reverse else items)
        if isinstance(value, list):
            return [reordered(v) for v in value]
        return value

    spelled = json.dumps(reordered(to_plain(manifest)), indent=indent).encode()
    assert parse_manifest(spelled) == manifest
    assert parse_manifest(spelled).digest() == manifest.digest()


def test_none_is_left_out_of_struct_fields_but_kept_as_data() -> None:
    provenance = Provenance(
        packages={}, features=[], parameters={"m": {"max_depth": None}}, created_at="0"
    )
    assert to_plain(provenance) == {
        "packages": {},
        "features": [],
        "parameters": {"m": {"max_depth": None}},
        "created_at": "0",
    }


@given(body=st.binary(max_size=300) | st.text(max_size=300).map(str.encode))
def test_any_bytes_parse_or_are_refused_as_an_invalid_bundle(body: bytes) -> None:
    try:
        parse_manifest(body)
    except BundleInvalidError as exc:
        assert exc.message.startswith(("manifest.json is invalid: ", "manifest.json is not valid"))


#: (what is done to models[i], the problem named after `models.<i>.`)
BREAKAGES: list[tuple[str, Any, str]] = [
    ("horizon_days", 0, r"horizon_days: Expected `int` >= 1"),
    ("name", "Not A Name", r"name: Expected `str` matching regex"),
    ("sha256", "ABC", r"sha256: must be 64 lowercase hex characters"),
    ("file", "../escape.onnx", r"file: must be a relative path inside the bundle"),
    ("inputs", [], r"inputs: Expected `array` of length >= 1"),
    ("surprise", 1, r"surprise: unknown field"),
    ("kind", None, r"kind: Expected `str`, got `null`"),
]


@pytest.mark.parametrize(("field", "value", "problem"), BREAKAGES)
@LARGE
@given(manifest=manifests(), data=st.data())
def test_a_broken_field_is_refused_naming_its_path(
    manifest: BundleManifest, data: st.DataObject, field: str, value: Any, problem: str
) -> None:
    plain = to_plain(manifest)
    index = data.draw(st.integers(0, len(plain["models"]) - 1))
    plain["models"][index][field] = value
    with pytest.raises(BundleInvalidError) as refused:
        parse_manifest(json.dumps(plain).encode())
    assert re.search(
        rf"manifest\.json is invalid: models\.{index}\.{problem}", refused.value.message
    )


@LARGE
@given(manifest=manifests())
def test_a_missing_field_and_a_duplicate_model_are_named(manifest: BundleManifest) -> None:
    plain = to_plain(manifest)
    del plain["models"][0]["sha256"]
    with pytest.raises(BundleInvalidError, match=r"models\.0\.sha256: missing required field"):
        parse_manifest(json.dumps(plain).encode())
    plain = to_plain(manifest)
    plain["models"].append(plain["models"][0])
    with pytest.raises(BundleInvalidError, match=r"models: duplicate model name"):
        parse_manifest(json.dumps(plain).encode())


@LARGE
@given(manifest=manifests())
def test_a_constructed_manifest_is_checked_before_it_is_written(manifest: BundleManifest) -> None:
    """A constructor checks no constraint (msgspec): `to_canonical_bytes` does, as parsing."""
    entry = manifest.models[0]
    broken = ModelEntry(**{**to_struct_fields(entry), "horizon_days": 0})
    bad = BundleManifest(**{**to_struct_fields(manifest), "models": [broken]})
    with pytest.raises(BundleInvalidError, match=r"models\.0\.horizon_days: Expected `int` >= 1"):
        bad.to_canonical_bytes()


def test_a_constructed_int_is_written_as_the_float_its_field_is() -> None:
    """As pydantic did: a builder's 0 for a float field is written (and digested) as 0.0."""
    histogram = HistogramStatistics(count=1, missing_rate=0, edges=[1], frequencies=[0, 1, 0])
    entry = ModelEntry(
        name="m",
        file="models/m.onnx",
        sha256="0" * 64,
        kind="tree",
        inputs=[TensorSpec(name="x", datatype="FP32", shape=[-1, 1])],
        outputs=[TensorSpec(name="y", datatype="FP32", shape=[-1])],
        classes=[],
        parity_max_abs_diff=0,
        prediction_reference=PredictionStatistics(outputs={"value": histogram}),
    )
    manifest = BundleManifest(
        well="w",
        version="1",
        models=[entry],
        parity=Parity(tolerance=1, holdout_rows=1),
        provenance=Provenance(packages={}, features=[], parameters={}, created_at="0"),
    )
    written = json.loads(manifest.to_canonical_bytes())
    assert written["parity"]["tolerance"] == 1.0
    assert isinstance(written["parity"]["tolerance"], float)
    assert written["models"][0]["prediction_reference"]["outputs"]["value"]["edges"] == [1.0]
    assert b'"missing_rate":0.0' in manifest.to_canonical_bytes()


def to_struct_fields(value: Any) -> dict[str, Any]:
    return {name: getattr(value, name) for name in value.__struct_fields__}
