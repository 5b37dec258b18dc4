"""DeleteOptions in protobuf, as client-go's typed clients send them (Helm uninstall deletes its
release Secret that way).

Docs: https://kubernetes.io/docs/reference/using-api/api-concepts/#protobuf-encoding and the
field numbers of k8s.io/apimachinery/pkg/apis/meta/v1/generated.proto (DeleteOptions, Preconditions).
"""

from __future__ import annotations

from kubesim.presentation.protobuf import MAGIC, decode_object


def _field(number: int, payload: bytes) -> bytes:
    return bytes([number << 3 | 2, len(payload)]) + payload


def _varint_field(number: int, value: int) -> bytes:
    return bytes([number << 3, value])


def test_delete_options_decode_grace_preconditions_and_propagation() -> None:
    type_meta = _field(1, b"v1") + _field(2, b"DeleteOptions")
    options = (
        _varint_field(1, 0)
        + _field(2, _field(1, b"uid-1"))
        + _field(4, b"Foreground")
        + _field(5, b"All")
    )
    decoded = decode_object(MAGIC + _field(1, type_meta) + _field(2, options))
    assert decoded == {
        "apiVersion": "v1",
        "kind": "DeleteOptions",
        "gracePeriodSeconds": 0,
        "preconditions": {"uid": "uid-1"},
        "propagationPolicy": "Foreground",
        "dryRun": ["All"],
    }
