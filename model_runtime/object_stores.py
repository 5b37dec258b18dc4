"""Object stores the fleet reads bundles from: `s3://`, `az://` (Azure Blob), `gs://`, via obstore.

One library for all three (obstore, the Python face of Rust's `object_store`): one wheel of about
16 MB with no Python dependencies, against fsspec + s3fs + adlfs + gcsfs, which pull in
aiobotocore/botocore, the Azure SDK and google-auth (tens of MB and many packages) into the
runtime image. Credentials and endpoints come from each cloud's standard environment variables
(AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY / AWS_ENDPOINT_URL / AWS_REGION;
AZURE_STORAGE_CONNECTION_STRING or AZURE_STORAGE_ACCOUNT_NAME / AZURE_STORAGE_ACCOUNT_KEY /
AZURE_STORAGE_ENDPOINT; GOOGLE_SERVICE_ACCOUNT / GOOGLE_APPLICATION_CREDENTIALS / GOOGLE_BASE_URL), which a pod
gets from the Secret its ModelDeployment names. An `http://` endpoint is allowed only when an
endpoint is set explicitly (emulators, in-cluster gateways); cloud endpoints are https.

Reads are streamed and size-bounded: the declared size is checked before the body is read, and
the bytes actually received are counted against the same limit.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

OBJECT_STORE_SCHEMES = ("s3", "az", "gs")
_CHUNK = 1024 * 1024


class ObjectStoreError(Exception):
    """The store could not be reached, refused the credentials, or lacks the object."""

    def __init__(self, message: str, *, not_found: bool = False) -> None:
        super().__init__(message)
        self.message = message
        self.not_found = not_found


class ObjectTooLargeError(ObjectStoreError):
    pass


@dataclass(frozen=True)
class StoreLocation:
    """A store (bucket or container) and the prefix of a bundle inside it."""

    uri: str
    store: Any  # obstore.store.ObjectStore
    prefix: str  # '' or 'a/b/' (always ends with '/')

    def key(self, relative: str) -> str:
        return self.prefix + relative

    def url(self, relative: str) -> str:
        return self.uri.rstrip("/") + "/" + relative


def _parse_connection_string(value: str) -> dict[str, str]:
    parts = dict(p.split("=", 1) for p in value.split(";") if "=" in p)
    config: dict[str, str] = {}
    if "AccountName" in parts:
        config["account_name"] = parts["AccountName"]
    if "AccountKey" in parts:
        config["account_key"] = parts["AccountKey"]
    if "BlobEndpoint" in parts:
        config["endpoint"] = parts["BlobEndpoint"]
    if "SharedAccessSignature" in parts:
        config["sas_key"] = parts["SharedAccessSignature"]
    return config


def open_location(uri: str, timeout_seconds: float = 30.0) -> StoreLocation:
    """The store and prefix of `uri`; ObjectStoreError when the URI or configuration is wrong."""
    from obstore.store import AzureStore, GCSStore, S3Store

    parts = urlsplit(uri)
    scheme, bucket = parts.scheme, parts.netloc
    if scheme not in OBJECT_STORE_SCHEMES:
        raise ObjectStoreError(f"{uri!r} is not an object-store URI (s3://, az://, gs://)")
    if not bucket:
        raise ObjectStoreError(f"{uri!r} names no bucket or container")
    prefix = parts.path.strip("/")
    prefix = prefix + "/" if prefix else ""
    client: Any = {  # obstore.store.ClientConfig (a TypedDict)
        "timeout": f"{timeout_seconds:g}s",
        "connect_timeout": f"{min(timeout_seconds, 10.0):g}s",
    }
    try:
        store: Any
        if scheme == "s3":
            endpoint = os.environ.get("AWS_ENDPOINT_URL_S3") or os.environ.get("AWS_ENDPOINT_URL")
            config: Any = {}  # S3Config
            if endpoint:
                config["endpoint"] = endpoint
                client["allow_http"] = endpoint.startswith("http://")
                # An explicit endpoint is a gateway or an emulator: path-style, no IMDS lookup.
                config["virtual_hosted_style_request"] = False
            config.setdefault(
                "region",
                os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION") or "us-east-1",
            )
            store = S3Store(bucket, config=config, client_options=client)
        elif scheme == "az":
            config = {}
            connection = os.environ.get("AZURE_STORAGE_CONNECTION_STRING")
            if connection:
                config.update(_parse_connection_string(connection))
            endpoint = config.get("endpoint") or os.environ.get("AZURE_STORAGE_ENDPOINT")
            if endpoint:
                config["endpoint"] = endpoint
                client["allow_http"] = endpoint.startswith("http://")
            store = AzureStore(bucket, config=config, client_options=client)
        else:
            base_url = os.environ.get("GOOGLE_BASE_URL")
            if base_url:  # an emulator or a gateway, set explicitly
                client["allow_http"] = base_url.startswith("http://")
            store = GCSStore(bucket, client_options=client)
    except Exception as exc:  # obstore raises its own configuration errors
        raise ObjectStoreError(f"cannot configure the store for {uri!r}: {exc}") from exc
    return StoreLocation(uri=uri, store=store, prefix=prefix)


def describe_error(exc: BaseException) -> str:
    """obstore's error, short: its kind, what it did, the HTTP status (not the response XML)."""
    from obstore.exceptions import PermissionDeniedError, UnauthenticatedError

    lines = str(exc).strip().splitlines()
    text = lines[0] if lines else ""
    status = re.search(r"^(.*?status code: \d+[A-Za-z ]*)", text)
    if status:
        text = status.group(1).strip()
    if isinstance(exc, PermissionDeniedError | UnauthenticatedError):
        return f"the store refused the credentials ({type(exc).__name__}: {text})"
    return f"{type(exc).__name__}: {text}"


def _is_not_found(exc: BaseException) -> bool:
    from obstore.exceptions import NotFoundError

    return isinstance(exc, NotFoundError | FileNotFoundError)


def read_object(location: StoreLocation, relative: str, limit: int) -> bytes:
    """The object's bytes, streamed; ObjectTooLargeError beyond `limit` (declared or actual)."""
    import obstore

    key = location.key(relative)
    url = location.url(relative)
    try:
        result = obstore.get(location.store, key)
        size = int(result.meta["size"])
        if size > limit:
            raise ObjectTooLargeError(f"{url}: {size} bytes, over the limit of {limit}")
        chunks: list[bytes] = []
        received = 0
        for chunk in result.stream(min_chunk_size=_CHUNK):
            received += len(chunk)
            if received > limit:
                raise ObjectTooLargeError(f"{url}: more than {limit} bytes; refused")
            chunks.append(bytes(chunk))
        return b"".join(chunks)
    except ObjectStoreError:
        raise
    except Exception as exc:  # obstore's error family, plus transport errors
        if _is_not_found(exc):
            raise ObjectStoreError(f"{url} does not exist", not_found=True) from exc
        raise ObjectStoreError(f"GET {url} failed: {describe_error(exc)}") from exc
