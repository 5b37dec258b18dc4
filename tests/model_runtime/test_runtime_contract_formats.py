"""The runtime contract's formats and parsers: what the runtime, the operator and the simulated
runtime write and read about a pod's bundle."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from runtime_contract import (
    GATE_MESSAGE_LIMIT,
    GateBundle,
    GateReason,
    LoadAttempt,
    LoadFailureReason,
    LoadRequestError,
    ManifestNotJsonError,
    canonical_json,
    manifest_digest,
    normalize_digest,
    parse_gate_message,
    parse_load_request,
    refused_message,
    served_message,
)

ROOT = Path(__file__).resolve().parents[2]

#: URIs and digests as annotations hold them: no whitespace.
tokens = st.text(
    st.characters(blacklist_categories=("Zs", "Zl", "Zp", "Cc", "Cs")), min_size=1, max_size=80
)
gate_statuses = st.sampled_from(["True", "False", "Unknown"])


@given(digest=tokens, uri=tokens, status=gate_statuses)
def test_a_served_message_names_its_digest_and_uri(digest: str, uri: str, status: str) -> None:
    assert parse_gate_message(status, served_message(digest, uri)) == GateBundle(uri, digest)


@given(uri=tokens, error=st.text(max_size=2000), status=st.sampled_from(["False", "Unknown"]))
def test_a_refused_message_names_its_uri(uri: str, error: str, status: str) -> None:
    message = refused_message(uri, error)
    assert len(message) <= GATE_MESSAGE_LIMIT
    named = parse_gate_message(status, message)
    if not message.startswith("serving "):  # a URI spelled like the served form stays ambiguous
        assert named == GateBundle(uri, None)


@given(uri=tokens, error=st.text(max_size=100))
def test_a_true_gate_names_no_refused_bundle(uri: str, error: str) -> None:
    message = refused_message(uri, error)
    if not message.startswith("serving "):
        assert parse_gate_message("True", message) == GateBundle(None, None)


@given(status=gate_statuses, message=st.text())
def test_any_gate_message_parses(status: str, message: str) -> None:
    assert isinstance(parse_gate_message(status, message), GateBundle)


def test_only_an_unreachable_source_makes_an_unreachable_gate() -> None:
    assert {reason: GateReason.for_failure(reason) for reason in LoadFailureReason} == {
        LoadFailureReason.BUNDLE_INVALID: GateReason.BUNDLE_INVALID,
        LoadFailureReason.UNREACHABLE: GateReason.UNREACHABLE,
        LoadFailureReason.TOO_LARGE: GateReason.BUNDLE_INVALID,
        LoadFailureReason.NO_BUNDLE_URI: GateReason.BUNDLE_INVALID,
    }


def test_every_failure_reason_has_its_status() -> None:
    assert {reason.value: reason.http_status for reason in LoadFailureReason} == {
        "BundleInvalid": 422,
        "Unreachable": 502,
        "TooLarge": 413,
        "NoBundleUri": 422,
    }
    assert LoadFailureReason.parse("Unreachable") is LoadFailureReason.UNREACHABLE
    assert LoadFailureReason.parse("Forbidden") is None
    assert LoadFailureReason.parse(None) is None


def test_a_load_attempt_is_json_with_plain_strings() -> None:
    attempt = LoadAttempt.failed("file:///b", LoadFailureReason.TOO_LARGE, "too big", None)
    assert json.loads(json.dumps(attempt.to_json())) == {
        "uri": "file:///b",
        "ok": False,
        "error": "too big",
        "reason": "TooLarge",
        "digest": None,
    }
    assert type(attempt.to_json()["reason"]) is str


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4)
    ),
    max_leaves=20,
)


@given(manifest=st.dictionaries(st.text(max_size=8), json_values, max_size=6))
def test_the_digest_does_not_depend_on_the_json_spelling(manifest: dict[str, object]) -> None:
    spelled = json.dumps(manifest, indent=2, ensure_ascii=True).encode()
    reversed_keys = json.dumps(dict(reversed(list(manifest.items())))).encode()
    assert manifest_digest(spelled) == manifest_digest(reversed_keys)
    assert manifest_digest(spelled) == manifest_digest(canonical_json(manifest))


def test_a_manifest_that_is_not_json_has_no_digest() -> None:
    with pytest.raises(ManifestNotJsonError, match=r"manifest\.json is not valid JSON"):
        manifest_digest(b'{"well": ')
    with pytest.raises(ManifestNotJsonError):
        manifest_digest(b"\xff\xfe")


@given(hex_digest=st.text("0123456789abcdefABCDEF", min_size=1, max_size=64))
def test_a_digest_normalizes_to_one_form(hex_digest: str) -> None:
    normal = normalize_digest(hex_digest)
    assert normal == "sha256:" + hex_digest.lower()
    assert normalize_digest(normal) == normal == normalize_digest(f" SHA256:{hex_digest} ")


@given(body=st.binary(max_size=200))
def test_any_load_request_body_parses_or_is_refused_with_a_reason(body: bytes) -> None:
    try:
        request = parse_load_request(body)
    except LoadRequestError as exc:
        assert str(exc)
    else:
        assert request["uri"] and isinstance(request["uri"], str)


@given(uri=st.text(min_size=1), digest=st.none() | tokens)
def test_a_load_request_round_trips(uri: str, digest: str | None) -> None:
    body = json.dumps({"uri": uri, "digest": digest}).encode()
    assert parse_load_request(body) == {"uri": uri, "digest": digest}


def test_the_contract_imports_with_the_standard_library_alone(tmp_path: Path) -> None:
    # -S: no site-packages, -E: no PYTHONPATH; only the repository root is importable.
    program = (
        f"import sys; sys.path.insert(0, {str(ROOT)!r}); import runtime_contract, runtime_contract.wire\n"
        "names = {m.split('.')[0] for m in sys.modules}\n"
        "foreign = names - set(sys.stdlib_module_names) - {'runtime_contract', '__main__'}\n"
        "assert not foreign, sorted(foreign)"
    )
    done = subprocess.run(
        [sys.executable, "-S", "-E", "-c", program],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
