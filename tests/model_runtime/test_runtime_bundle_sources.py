"""Loading bundles from disk, tarballs and HTTP; every kind of corrupt bundle is refused precisely."""

from __future__ import annotations

import functools
import hashlib
import io
import json
import re
import shutil
import tarfile
import threading
from collections.abc import Iterator
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from bundle_builder.building import BuiltBundle
from model_runtime.bundle_state import load_bundle
from model_runtime.errors import (
    BundleInvalidError,
    BundleTooLargeError,
    BundleUnreachableError,
    LoadFailureReason,
)
from model_runtime.manifest import canonical_json
from model_runtime.sources import SourceLimits
from modelfleet_dev.ports import free_loopback_port


def make_tarball(bundle: Path, target: Path, prefix: str = "") -> Path:
    with tarfile.open(target, "w:gz") as tar:
        for path in sorted(bundle.rglob("*")):
            if path.is_file():
                tar.add(path, arcname=prefix + str(path.relative_to(bundle)))
    return target


def add_member(
    tar: tarfile.TarFile,
    name: str,
    data: bytes = b"x",
    kind: bytes = tarfile.REGTYPE,
    link: str = "",
) -> None:
    info = tarfile.TarInfo(name)
    info.type = kind
    info.linkname = link
    info.size = len(data) if kind == tarfile.REGTYPE else 0
    tar.addfile(info, io.BytesIO(data) if kind == tarfile.REGTYPE else None)


def rewrite_manifest(bundle: Path, edit: object) -> None:
    manifest = json.loads((bundle / "manifest.json").read_bytes())
    edit(manifest)  # type: ignore[operator]
    (bundle / "manifest.json").write_bytes(canonical_json(manifest))


@pytest.fixture
def bundle_copy(tmp_path: Path, small_bundle: BuiltBundle) -> Path:
    return shutil.copytree(small_bundle.path, tmp_path / "bundle")


@pytest.fixture
def http_root(tmp_path: Path) -> Iterator[tuple[Path, str]]:
    """A static file server on loopback, as a bundle store would be."""
    root = tmp_path / "www"
    root.mkdir()

    class Quiet(SimpleHTTPRequestHandler):
        def log_message(self, format: str, *args: object) -> None:
            pass

    httpd = ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(Quiet, directory=str(root)))
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield root, f"http://127.0.0.1:{httpd.server_address[1]}"
    httpd.shutdown()
    httpd.server_close()


# -- sources that work --------------------------------------------------------------------


@pytest.mark.parametrize("form", ["path", "file_uri", "manifest_path"])
def test_a_local_directory_loads_by_path_or_file_uri(small_bundle: BuiltBundle, form: str) -> None:
    uri = {
        "path": str(small_bundle.path),
        "file_uri": f"file://{small_bundle.path}",
        "manifest_path": str(small_bundle.path / "manifest.json"),
    }[form]
    bundle = load_bundle(uri, expected_digest=small_bundle.digest)
    assert bundle.digest == small_bundle.digest and len(bundle.sessions) == 8


@pytest.mark.parametrize("prefix", ["", "fr-0001-v1/"])
def test_a_tarball_loads_with_or_without_a_top_directory(
    tmp_path: Path, small_bundle: BuiltBundle, prefix: str
) -> None:
    tarball = make_tarball(small_bundle.path, tmp_path / "b.tar.gz", prefix)
    assert load_bundle(f"file://{tarball}").digest == small_bundle.digest


def test_a_directory_and_a_tarball_load_over_http(
    tmp_path: Path, small_bundle: BuiltBundle, http_root: tuple[Path, str]
) -> None:
    root, base = http_root
    shutil.copytree(small_bundle.path, root / "fr-0001" / "1.0.0")
    make_tarball(small_bundle.path, root / "fr-0001.tar.gz")
    assert load_bundle(f"{base}/fr-0001/1.0.0/").digest == small_bundle.digest
    assert load_bundle(f"{base}/fr-0001/1.0.0/manifest.json").digest == small_bundle.digest
    assert load_bundle(f"{base}/fr-0001.tar.gz", small_bundle.digest).digest == small_bundle.digest


# -- corrupt bundles ----------------------------------------------------------------------


def test_a_file_whose_digest_does_not_match_is_refused(bundle_copy: Path) -> None:
    victim = bundle_copy / "models" / "gas-lock-01d.onnx"
    data = bytearray(victim.read_bytes())
    data[len(data) // 2] ^= 0xFF
    victim.write_bytes(bytes(data))
    with pytest.raises(
        BundleInvalidError,
        match=r"model 'gas-lock-01d': file models/gas-lock-01d.onnx has sha256 [0-9a-f]{64}, manifest says",
    ):
        load_bundle(str(bundle_copy))


def test_a_truncated_onnx_file_with_a_matching_digest_fails_in_onnxruntime(
    bundle_copy: Path,
) -> None:
    victim = bundle_copy / "models" / "pump-wear-01d.onnx"
    truncated = victim.read_bytes()[:200]
    victim.write_bytes(truncated)

    def fix_digest(manifest: dict[str, list[dict[str, str]]]) -> None:
        for entry in manifest["models"]:
            if entry["name"] == "pump-wear-01d":
                entry["sha256"] = hashlib.sha256(truncated).hexdigest()

    rewrite_manifest(bundle_copy, fix_digest)
    with pytest.raises(
        BundleInvalidError,
        match=re.escape("model 'pump-wear-01d': onnxruntime cannot load models/pump-wear-01d.onnx"),
    ):
        load_bundle(str(bundle_copy))


def test_a_missing_model_file_is_refused_naming_it(bundle_copy: Path) -> None:
    (bundle_copy / "models" / "sand-ingress-01d.onnx").unlink()
    with pytest.raises(BundleInvalidError, match=r"sand-ingress-01d.*missing"):
        load_bundle(str(bundle_copy))


def test_a_missing_model_file_in_a_tarball_is_refused_naming_it(
    tmp_path: Path, bundle_copy: Path
) -> None:
    (bundle_copy / "models" / "sand-ingress-01d.onnx").unlink()
    with pytest.raises(
        BundleInvalidError,
        match=re.escape("model 'sand-ingress-01d': file models/sand-ingress-01d.onnx is missing"),
    ):
        load_bundle(str(make_tarball(bundle_copy, tmp_path / "b.tgz")))


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b"{not json", "manifest.json is not valid JSON"),
        (b"[]", "manifest.json is invalid"),
        (b'{"well": "w"}', "version: missing required field"),
    ],
)
def test_an_invalid_manifest_is_refused_naming_the_problem(
    bundle_copy: Path, content: bytes, message: str
) -> None:
    (bundle_copy / "manifest.json").write_bytes(content)
    with pytest.raises(BundleInvalidError, match=message):
        load_bundle(str(bundle_copy))


def test_a_manifest_field_of_the_wrong_type_is_named(bundle_copy: Path) -> None:
    rewrite_manifest(bundle_copy, lambda m: m["models"][0].update(horizon_days="soon"))
    with pytest.raises(BundleInvalidError, match=r"models\.0\.horizon_days"):
        load_bundle(str(bundle_copy))


def test_a_manifest_pointing_outside_the_bundle_is_refused(bundle_copy: Path) -> None:
    rewrite_manifest(bundle_copy, lambda m: m["models"][0].update(file="../../etc/passwd"))
    with pytest.raises(BundleInvalidError, match="relative path inside the bundle"):
        load_bundle(str(bundle_copy))


def test_a_digest_other_than_the_expected_one_is_refused(small_bundle: BuiltBundle) -> None:
    with pytest.raises(
        BundleInvalidError, match=f"has digest {small_bundle.digest}, expected sha256:{'0' * 64}"
    ):
        load_bundle(str(small_bundle.path), expected_digest="sha256:" + "0" * 64)


@pytest.mark.parametrize(
    ("name", "kind", "link", "message"),
    [
        ("../evil.txt", tarfile.REGTYPE, "", "escapes the bundle directory"),
        ("models/../../evil.txt", tarfile.REGTYPE, "", "escapes the bundle directory"),
        ("/etc/evil.txt", tarfile.REGTYPE, "", "absolute path"),
        ("models/link.onnx", tarfile.SYMTYPE, "/etc/passwd", "is a link"),
        ("models/hard.onnx", tarfile.LNKTYPE, "manifest.json", "is a link"),
        ("dev", tarfile.CHRTYPE, "", "not a regular file"),
    ],
)
def test_a_tarball_member_that_could_escape_is_refused(
    tmp_path: Path, small_bundle: BuiltBundle, name: str, kind: bytes, link: str, message: str
) -> None:
    tarball = tmp_path / "evil.tar.gz"
    with tarfile.open(tarball, "w:gz") as tar:
        for path in sorted(small_bundle.path.rglob("*.*")):
            tar.add(path, arcname=str(path.relative_to(small_bundle.path)))
        add_member(tar, name, kind=kind, link=link)
    with pytest.raises(BundleInvalidError, match=message):
        load_bundle(str(tarball))
    assert not (tmp_path / "evil.txt").exists() and not (tmp_path.parent / "evil.txt").exists()


def test_a_file_that_is_not_a_tarball_is_refused(tmp_path: Path) -> None:
    bogus = tmp_path / "bundle.tar.gz"
    bogus.write_bytes(b"\x1f\x8b garbage")
    with pytest.raises(BundleInvalidError, match=re.escape("not a readable .tar.gz")):
        load_bundle(str(bogus))


def test_an_unreachable_url_is_reported_as_unreachable() -> None:
    port = free_loopback_port()  # nothing listens there
    with pytest.raises(
        BundleUnreachableError,
        match=f"GET http://127.0.0.1:{port}/b/manifest.json failed: ConnectError",
    ) as failure:
        load_bundle(f"http://127.0.0.1:{port}/b/")
    assert failure.value.reason is LoadFailureReason.UNREACHABLE


def test_an_http_404_is_reported_as_unreachable(http_root: tuple[Path, str]) -> None:
    _, base = http_root
    with pytest.raises(BundleUnreachableError, match="answered HTTP 404"):
        load_bundle(f"{base}/nothing-here/")


def test_a_missing_local_path_is_unreachable(tmp_path: Path) -> None:
    with pytest.raises(BundleUnreachableError, match="does not exist"):
        load_bundle(f"file://{tmp_path}/nope")


def test_an_unsupported_scheme_is_refused() -> None:
    # s3://, az:// and gs:// are read (tests/bundle_builder/test_push.py, against real servers).
    with pytest.raises(BundleInvalidError, match="unsupported bundle URI scheme 'ftp'"):
        load_bundle("ftp://host/bundle")


def test_size_limits_bound_every_source(
    tmp_path: Path, small_bundle: BuiltBundle, http_root: tuple[Path, str]
) -> None:
    tiny = SourceLimits(max_file_bytes=1000)
    with pytest.raises(BundleTooLargeError, match="over the limit of 1000"):
        load_bundle(str(small_bundle.path), limits=tiny)
    with pytest.raises(BundleTooLargeError, match="over the limit of 1000"):
        load_bundle(str(make_tarball(small_bundle.path, tmp_path / "b.tgz")), limits=tiny)
    root, base = http_root
    shutil.copytree(small_bundle.path, root / "b")
    with pytest.raises(BundleTooLargeError):
        load_bundle(f"{base}/b/", limits=SourceLimits(max_total_bytes=5000))
