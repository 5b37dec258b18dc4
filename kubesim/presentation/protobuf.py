"""Decoding of the Kubernetes protobuf bodies that kubectl's typed clients send.

Why this exists: kubectl 1.32's generators (``kubectl create configmap|secret|namespace|
serviceaccount``) send their request body as ``application/vnd.kubernetes.protobuf`` and do not
fall back to JSON, so an API server that only reads JSON breaks them; so does the DeleteOptions
body of client-go's typed deletes (Helm's uninstall deleting its release Secret). kubesim answers in JSON
(clients accept it) and decodes protobuf bodies for those few kinds only, from the field numbers
of ``k8s.io/api/core/v1/generated.proto`` and ``k8s.io/apimachinery/pkg/apis/meta/v1/
generated.proto``. Anything else still gets 415, with a message that names the kind.
Docs: https://kubernetes.io/docs/reference/using-api/api-concepts/#protobuf-encoding
"""

from __future__ import annotations

import base64
from collections.abc import Callable, Iterator
from typing import Any, Final

__all__ = ["MAGIC", "ProtobufError", "decode_object"]

MAGIC: Final = b"k8s\x00"


class ProtobufError(ValueError):
    pass


def _varint(buf: bytes, pos: int) -> tuple[int, int]:
    result = shift = 0
    while True:
        if pos >= len(buf):
            raise ProtobufError("truncated varint")
        byte = buf[pos]
        pos += 1
        result |= (byte & 0x7F) << shift
        if not byte & 0x80:
            return result, pos
        shift += 7


def _fields(buf: bytes) -> Iterator[tuple[int, int, Any]]:
    """(field number, wire type, value: int or bytes)."""
    pos = 0
    while pos < len(buf):
        key, pos = _varint(buf, pos)
        number, wire = key >> 3, key & 7
        if wire == 0:
            value, pos = _varint(buf, pos)
            yield number, wire, value
        elif wire == 2:
            length, pos = _varint(buf, pos)
            yield number, wire, buf[pos : pos + length]
            pos += length
        elif wire == 1:
            yield number, wire, buf[pos : pos + 8]
            pos += 8
        elif wire == 5:
            yield number, wire, buf[pos : pos + 4]
            pos += 4
        else:
            raise ProtobufError(f"unsupported wire type {wire}")


def _str(value: Any) -> str:
    return bytes(value).decode()


def _map(entry: bytes, binary: bool = False) -> tuple[str, Any]:
    key = ""
    value: Any = b"" if binary else ""
    for number, _, raw in _fields(entry):
        if number == 1:
            key = _str(raw)
        elif number == 2:
            value = bytes(raw) if binary else _str(raw)
    return key, value


def _owner_reference(buf: bytes) -> dict[str, Any]:
    names = {1: "kind", 3: "name", 4: "uid", 5: "apiVersion"}
    out: dict[str, Any] = {}
    for number, _, raw in _fields(buf):
        if number in names:
            out[names[number]] = _str(raw)
        elif number == 6:
            out["controller"] = bool(raw)
        elif number == 7:
            out["blockOwnerDeletion"] = bool(raw)
    return out


def _object_meta(buf: bytes) -> dict[str, Any]:
    strings = {1: "name", 2: "generateName", 3: "namespace", 5: "uid", 6: "resourceVersion"}
    meta: dict[str, Any] = {}
    for number, _, raw in _fields(buf):
        if number in strings:
            meta[strings[number]] = _str(raw)
        elif number == 11:
            key, value = _map(raw)
            meta.setdefault("labels", {})[key] = value
        elif number == 12:
            key, value = _map(raw)
            meta.setdefault("annotations", {})[key] = value
        elif number == 13:
            meta.setdefault("ownerReferences", []).append(_owner_reference(raw))
        elif number == 14:
            meta.setdefault("finalizers", []).append(_str(raw))
    return meta


def _config_map(buf: bytes) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for number, _, raw in _fields(buf):
        if number == 1:
            out["metadata"] = _object_meta(raw)
        elif number == 2:
            key, value = _map(raw)
            out.setdefault("data", {})[key] = value
        elif number == 3:
            key, value = _map(raw, binary=True)
            out.setdefault("binaryData", {})[key] = base64.b64encode(value).decode()
        elif number == 4:
            out["immutable"] = bool(raw)
    return out


def _secret(buf: bytes) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for number, _, raw in _fields(buf):
        if number == 1:
            out["metadata"] = _object_meta(raw)
        elif number == 2:
            key, value = _map(raw, binary=True)
            out.setdefault("data", {})[key] = base64.b64encode(value).decode()
        elif number == 3:
            out["type"] = _str(raw)
        elif number == 4:
            key, value = _map(raw)
            out.setdefault("stringData", {})[key] = value
        elif number == 5:
            out["immutable"] = bool(raw)
    return out


def _namespace(buf: bytes) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for number, _, raw in _fields(buf):
        if number == 1:
            out["metadata"] = _object_meta(raw)
    return out


def _service_account(buf: bytes) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for number, _, raw in _fields(buf):
        if number == 1:
            out["metadata"] = _object_meta(raw)
        elif number == 4:
            out["automountServiceAccountToken"] = bool(raw)
    return out


def _delete_options(buf: bytes) -> dict[str, Any]:
    """meta/v1 DeleteOptions: what client-go's typed clients (Helm's release Secrets) send."""
    out: dict[str, Any] = {}
    for number, _, value in _fields(buf):
        if number == 1:
            # int64 as a two's complement varint
            out["gracePeriodSeconds"] = value - (1 << 64) if value >= 1 << 63 else value
        elif number == 2:
            pre = {
                ("uid", "resourceVersion")[sub - 1]: _str(text)
                for sub, _, text in _fields(value)
                if sub in (1, 2)
            }
            out["preconditions"] = pre
        elif number == 3:
            out["orphanDependents"] = bool(value)
        elif number == 4:
            out["propagationPolicy"] = _str(value)
        elif number == 5:
            out.setdefault("dryRun", []).append(_str(value))
    return out


_DECODERS: Final[dict[tuple[str, str], Callable[[bytes], dict[str, Any]]]] = {
    ("v1", "DeleteOptions"): _delete_options,
    ("meta.k8s.io/v1", "DeleteOptions"): _delete_options,
    ("v1", "ConfigMap"): _config_map,
    ("v1", "Secret"): _secret,
    ("v1", "Namespace"): _namespace,
    ("v1", "ServiceAccount"): _service_account,
}


def decode_object(body: bytes) -> dict[str, Any]:
    """The JSON form of a protobuf-encoded object; ProtobufError for what kubesim cannot read."""
    if not body.startswith(MAGIC):
        raise ProtobufError("missing the k8s protobuf envelope prefix")
    api_version = kind = ""
    raw = b""
    for number, _, value in _fields(body[len(MAGIC) :]):
        if number == 1:
            for sub, _, text in _fields(value):
                if sub == 1:
                    api_version = _str(text)
                elif sub == 2:
                    kind = _str(text)
        elif number == 2:
            raw = bytes(value)
    decoder = _DECODERS.get((api_version, kind))
    if decoder is None:
        raise ProtobufError(
            f"kubesim reads protobuf only for {sorted({k for _, k in _DECODERS})}, not {api_version} {kind}"
        )
    obj = decoder(raw)
    return {"apiVersion": api_version, "kind": kind, **obj}
