"""Bundles built once per test session (building is the slow part), and a running server."""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import pytest
from runtime_harness import RunningServer

from bundle_builder.building import BuiltBundle, build_bundle
from bundle_builder.sensors import generate_history
from model_runtime.manifest import BundleManifest

SMALL_MODELS = 8


@pytest.fixture(scope="session")
def small_bundle(tmp_path_factory: pytest.TempPathFactory) -> BuiltBundle:
    return build_bundle(
        "fr-0001",
        tmp_path_factory.mktemp("bundles") / "fr-0001-v1",
        models=SMALL_MODELS,
        version="1.0.0",
    )


@pytest.fixture(scope="session")
def second_bundle(tmp_path_factory: pytest.TempPathFactory) -> BuiltBundle:
    """Same well, next version: what a roll-out swaps in."""
    return build_bundle(
        "fr-0001",
        tmp_path_factory.mktemp("bundles") / "fr-0001-v2",
        models=6,
        version="2.0.0",
        seed=1,
    )


@pytest.fixture
def server(small_bundle: BuiltBundle) -> Iterator[RunningServer]:
    with RunningServer(str(small_bundle.path)) as running:
        running.wait_serving(small_bundle.digest)
        yield running


@pytest.fixture(scope="module")
def shared_server(small_bundle: BuiltBundle) -> Iterator[RunningServer]:
    """For read-only tests (conformance, bad input): one server per module."""
    with RunningServer(str(small_bundle.path)) as running:
        running.wait_serving(small_bundle.digest)
        yield running


@pytest.fixture
def sensor_rows() -> list[list[float]]:
    return [
        [85.0, 190.0, 95.0, 42.0, 2.5, 55.0, 450.0],
        [84.0, 180.0, 104.0, 47.0, 3.1, 55.0, 430.0],
        [70.0, 170.0, 99.0, 35.0, 4.5, 54.0, 380.0],
    ]


@pytest.fixture(scope="module")
def manifest(small_bundle: BuiltBundle) -> BundleManifest:
    return small_bundle.manifest


@pytest.fixture(scope="module")
def history() -> np.ndarray:
    """The sensor history fr-0001's bundles were trained on (their reference data)."""
    return generate_history("fr-0001", 0).features.astype(np.float32)
