"""`modelfleet bundle push` to file://, S3 (moto's server) and Azure Blob (Azurite), and the
runtime reading the same URIs: streamed, size-bounded, digest-verified."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from bundle_builder.errors import PublishError
from bundle_builder.packing import PackedBundle, pack_bundle
from bundle_builder.publishing import push_bundle
from model_runtime.bundle_state import load_bundle
from model_runtime.errors import BundleTooLargeError, BundleUnreachableError
from model_runtime.object_stores import open_location
from model_runtime.sources import SourceLimits
from modelfleet_dev.object_store_servers import (
    AzureServer,
    S3Server,
    azurite_server,
    moto_s3_server,
)
from tests.bundle_builder.conftest import FEATURES, Notebook, run_bundle_command

BUCKET = "bundles"


@pytest.fixture(scope="module")
def packed(notebook: Notebook, tmp_path_factory: pytest.TempPathFactory) -> PackedBundle:
    return pack_bundle(
        "fr-0001",
        "2026.12.1",
        notebook.models,
        notebook.sample,
        tmp_path_factory.mktemp("b") / "v1",
    )


@pytest.fixture(scope="module")
def other(notebook: Notebook, tmp_path_factory: pytest.TempPathFactory) -> PackedBundle:
    """A different bundle (another version) for the refuse-to-overwrite checks."""
    return pack_bundle(
        "fr-0001",
        "2026.12.2",
        {"gas-lock": notebook.models["gas-lock"]},
        notebook.sample,
        tmp_path_factory.mktemp("b") / "v2",
    )


@pytest.fixture(scope="module")
def s3_server() -> Iterator[S3Server]:
    with moto_s3_server() as server:
        server.create_bucket(BUCKET)
        yield server


@pytest.fixture(scope="module")
def azure_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[AzureServer]:
    with azurite_server(tmp_path_factory.mktemp("azurite")) as server:
        server.create_container(BUCKET)
        yield server


def _keys_under(uri: str) -> list[str]:
    import obstore

    location = open_location(uri)
    found: list[str] = []
    for batch in obstore.list(location.store, prefix=location.prefix or None):
        found.extend(str(meta["path"]) for meta in batch)
    return found


def _serves_sklearns_predictions(uri: str, digest: str, notebook: Notebook) -> None:
    serving = load_bundle(uri, expected_digest=digest)
    rows = notebook.sample.loc[:, list(FEATURES)].to_numpy(np.float64)
    _labels, probabilities = serving.sessions["motor-overheat"].run(rows)
    expected = notebook.models["motor-overheat"].predict_proba(notebook.sample)
    np.testing.assert_allclose(probabilities, expected, atol=1e-5)


def _push_and_read(
    uri: str, packed: PackedBundle, other: PackedBundle, notebook: Notebook, capsys: Any
) -> None:
    assert run_bundle_command("push", str(packed.path), uri) == 0
    assert capsys.readouterr().out.strip() == packed.digest
    _serves_sklearns_predictions(uri, packed.digest, notebook)
    # Pushing the same bundle again is a no-op; a different one over it is refused.
    assert push_bundle(packed.path, uri).already_there
    with pytest.raises(PublishError, match=r"already holds bundle sha256:.*refusing to replace"):
        push_bundle(other.path, uri)
    _serves_sklearns_predictions(uri, packed.digest, notebook)


def test_push_to_a_file_uri(
    packed: PackedBundle, other: PackedBundle, notebook: Notebook, tmp_path: Path, capsys: Any
) -> None:
    _push_and_read(f"file://{tmp_path}/esp/fr-0001", packed, other, notebook, capsys)
    assert not list(tmp_path.glob("esp/.*"))  # no staging left


def test_push_to_s3_and_the_runtime_reads_it(
    s3_server: S3Server,
    packed: PackedBundle,
    other: PackedBundle,
    notebook: Notebook,
    monkeypatch: pytest.MonkeyPatch,
    capsys: Any,
) -> None:
    for name, value in s3_server.environment().items():
        monkeypatch.setenv(name, value)
    uri = f"s3://{BUCKET}/esp/fr-0001/2026.12.1"
    _push_and_read(uri, packed, other, notebook, capsys)
    assert sorted(_keys_under(uri)) == sorted(
        [f"esp/fr-0001/2026.12.1/{e.file}" for e in packed.manifest.models]
        + ["esp/fr-0001/2026.12.1/manifest.json"]
    )


# The first use on a machine installs Azurite from npm (minutes on a busy machine).
@pytest.mark.timeout(1200)
def test_push_to_azurite_and_the_runtime_reads_it(
    azure_server: AzureServer,
    packed: PackedBundle,
    other: PackedBundle,
    notebook: Notebook,
    monkeypatch: pytest.MonkeyPatch,
    capsys: Any,
) -> None:
    for name, value in azure_server.environment().items():
        monkeypatch.setenv(name, value)
    _push_and_read(f"az://{BUCKET}/esp/fr-0001/2026.12.1", packed, other, notebook, capsys)


@pytest.mark.timeout(1200)
def test_refused_credentials_leave_nothing_under_the_target(
    azure_server: AzureServer, packed: PackedBundle, monkeypatch: pytest.MonkeyPatch
) -> None:
    uri = f"az://{BUCKET}/esp/fr-0002/2026.12.1"
    monkeypatch.setenv(
        "AZURE_STORAGE_CONNECTION_STRING", azure_server.connection_string(key="d3Jvbmcga2V5")
    )
    with pytest.raises(PublishError, match=r"refused the credentials"):
        push_bundle(packed.path, uri)
    with pytest.raises(BundleUnreachableError, match=r"refused the credentials"):
        load_bundle(uri)
    monkeypatch.setenv("AZURE_STORAGE_CONNECTION_STRING", azure_server.connection_string())
    assert _keys_under(uri) == []


def test_a_store_failing_midway_leaves_no_bundle_visible(
    s3_server: S3Server, packed: PackedBundle, monkeypatch: pytest.MonkeyPatch
) -> None:
    import obstore

    for name, value in s3_server.environment().items():
        monkeypatch.setenv(name, value)
    uri = f"s3://{BUCKET}/esp/fr-0003/2026.12.1"
    real_put = obstore.put
    calls = {"n": 0}

    def put_then_fail(store: Any, path: str, data: Any, **kwargs: Any) -> Any:
        calls["n"] += 1
        if calls["n"] == 2:
            raise ConnectionResetError("connection reset by peer (the store went away)")
        return real_put(store, path, data, **kwargs)

    monkeypatch.setattr(obstore, "put", put_then_fail)
    with pytest.raises(PublishError, match=r"failed after [0-2] of 3 files \(manifest not written"):
        push_bundle(packed.path, uri)
    assert _keys_under(uri) == []


def test_runtime_store_reads_are_size_bounded_and_missing_bundles_named(
    s3_server: S3Server, packed: PackedBundle, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name, value in s3_server.environment().items():
        monkeypatch.setenv(name, value)
    uri = f"s3://{BUCKET}/esp/fr-0004/2026.12.1"
    push_bundle(packed.path, uri)
    with pytest.raises(BundleTooLargeError, match=r"over the limit of 1000"):
        load_bundle(uri, limits=SourceLimits(max_file_bytes=1000))
    with pytest.raises(
        BundleUnreachableError, match=r"fr-0404/2026.12.1/manifest.json does not exist"
    ):
        load_bundle(f"s3://{BUCKET}/esp/fr-0404/2026.12.1")


async def test_the_simulated_runtime_reads_the_same_store_uris(
    s3_server: S3Server, packed: PackedBundle, monkeypatch: pytest.MonkeyPatch
) -> None:
    from modelfleet_dev.simulated_runtime import ManifestCache, SimulatedLoadError

    for name, value in s3_server.environment().items():
        monkeypatch.setenv(name, value)
    uri = f"s3://{BUCKET}/esp/fr-0005/2026.12.1"
    push_bundle(packed.path, uri)
    cache = ManifestCache()
    assert (await cache.get(uri, packed.digest)).digest == packed.digest
    with pytest.raises(SimulatedLoadError, match=r"fr-0505/2026.12.1/manifest.json does not exist"):
        await cache.get(f"s3://{BUCKET}/esp/fr-0505/2026.12.1")


def test_the_runtime_reads_a_tarball_from_a_store(
    s3_server: S3Server, packed: PackedBundle, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    import tarfile

    import obstore

    for name, value in s3_server.environment().items():
        monkeypatch.setenv(name, value)
    tarball = tmp_path / "fr-0006.tar.gz"
    with tarfile.open(tarball, "w:gz") as tar:
        tar.add(packed.path, arcname="fr-0006")
    location = open_location(f"s3://{BUCKET}/tarballs")
    obstore.put(location.store, location.key("fr-0006.tar.gz"), tarball.read_bytes())
    serving = load_bundle(f"s3://{BUCKET}/tarballs/fr-0006.tar.gz", expected_digest=packed.digest)
    assert sorted(serving.sessions) == sorted(m.name for m in packed.manifest.models)
