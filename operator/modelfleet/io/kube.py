"""The operator's one door to the Kubernetes API: async, rate-limited, retrying, counted.

Credentials and the server address come from the `kubernetes` client's own config loaders (a
kubeconfig, or the in-cluster service account), so we parse nothing ourselves; requests go
through one shared aiohttp session so thousands of writes stay on the event loop instead of a
thread per call. (aiohttp, which kopf already uses, was measured against httpx's AsyncClient
here: at 1,000 concurrent pod writes httpx spent most of the operator's CPU in its connection
pool bookkeeping; see docs/benchmarks.md.) Every call passes a client-side token bucket (QPS/burst, like client-go's),
honours 429 Retry-After, and retries 5xx and transport errors with capped backoff. HTTP errors
are mapped once to `KubeApiError` carrying the apiserver's Status.
"""

from __future__ import annotations

import asyncio
import importlib.metadata
import logging
import random
import ssl
import time
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass
from typing import Any

import aiohttp
import orjson
from prometheus_client import Counter, Histogram

logger = logging.getLogger("modelfleet.io.kube")

try:
    _VERSION = importlib.metadata.version("modelfleet")
except importlib.metadata.PackageNotFoundError:  # run from a source tree
    _VERSION = "0.0.0"
USER_AGENT = f"modelfleet-operator/{_VERSION}"

API_CALLS = Counter(
    "modelfleet_operator_api_calls_total",
    "Kubernetes API calls made by the operator",
    ["verb", "resource", "code"],
)
API_LATENCY = Histogram(
    "modelfleet_operator_api_call_duration_seconds",
    "Latency of Kubernetes API calls made by the operator",
    ["verb", "resource"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
)
API_CONNECTIONS = Counter(
    "modelfleet_operator_api_connections_total",
    "Connections the operator's API client took for its requests: new (a TCP connect and, "
    "over https, a TLS handshake) or reused (kept alive from an earlier request)",
    ["connection"],
)

#: Seconds an idle connection stays in the pool for reuse. kube-apiserver closes idle HTTP/1.1
#: connections after 90 s; aiohttp's default of 15 s closed them between a roll-out's waves and
#: whenever the request rate fell, so the next burst paid a TLS handshake per connection.
KEEPALIVE_SECONDS = 60.0

MERGE_PATCH = "application/merge-patch+json"
STRATEGIC_PATCH = "application/strategic-merge-patch+json"
RETRYABLE = {429, 500, 502, 503, 504}


class KubeApiError(Exception):
    """An error Status from the apiserver (or a transport failure, code 0)."""

    def __init__(self, code: int, reason: str, message: str, retry_after: float | None = None):
        super().__init__(f"{code} {reason}: {message}")
        self.code = code
        self.reason = reason
        self.message = message
        self.retry_after = retry_after

    @property
    def not_found(self) -> bool:
        return self.code == 404

    @property
    def already_exists(self) -> bool:
        return self.code == 409 and self.reason == "AlreadyExists"

    @property
    def conflict(self) -> bool:
        return self.code == 409 and self.reason != "AlreadyExists"


class TokenBucket:
    """client-go's flowcontrol token bucket: `qps` tokens a second, at most `burst` saved."""

    def __init__(self, qps: float, burst: int) -> None:
        self.qps = qps
        self.burst = max(1, burst)
        self._tokens = float(self.burst)
        self._stamp = time.monotonic()
        self._lock = asyncio.Lock()

    async def acquire(self) -> None:
        if self.qps <= 0:
            return  # unlimited
        async with self._lock:
            now = time.monotonic()
            self._tokens = min(self.burst, self._tokens + (now - self._stamp) * self.qps)
            self._stamp = now
            if self._tokens < 1:
                wait = (1 - self._tokens) / self.qps
                await asyncio.sleep(wait)
                self._stamp = time.monotonic()
                self._tokens = 0.0
            else:
                self._tokens -= 1


@dataclass(frozen=True)
class ClientSettings:
    qps: float = 50.0
    burst: int = 100
    concurrency: int = 32
    max_retries: int = 8
    timeout: float = 30.0


@dataclass(frozen=True)
class Connection:
    host: str
    headers: Mapping[str, str]
    verify: str | bool
    cert: tuple[str, str] | None

    def tls(self) -> ssl.SSLContext | bool:
        """The TLS settings of every client of this connection: the CA to trust and the client
        certificate to present (httpx 0.28 ignores `cert=` beside a CA path, so clients take
        this context, not the parts)."""
        if not self.host.startswith("https"):
            return False
        context = ssl.create_default_context(
            cafile=self.verify if isinstance(self.verify, str) else None
        )
        if self.verify is False:
            context.check_hostname = False
            context.verify_mode = ssl.CERT_NONE
        if self.cert:
            context.load_cert_chain(*self.cert)
        return context


def load_connection(kubeconfig: str | None = None, context: str | None = None) -> Connection:
    """Kubeconfig (explicit, $KUBECONFIG or ~/.kube/config) or in-cluster service account."""
    from kubernetes import client, config  # heavy import, only at start-up

    configuration = client.Configuration()
    try:
        config.load_kube_config(  # type: ignore[no-untyped-call]
            config_file=kubeconfig, context=context, client_configuration=configuration
        )
    except (config.ConfigException, FileNotFoundError, TypeError):
        config.load_incluster_config(client_configuration=configuration)  # type: ignore[no-untyped-call]
    headers: dict[str, str] = {}
    # The client keeps the token (already "Bearer ...") under BearerToken since v24; older
    # clients used "authorization". Missing it makes every request anonymous (a token
    # kubeconfig, or the service account in a pod).
    token = configuration.get_api_key_with_prefix("BearerToken", alias="authorization")
    if token:
        headers["Authorization"] = token
    verify: str | bool = configuration.ssl_ca_cert or configuration.verify_ssl
    cert = (
        (configuration.cert_file, configuration.key_file)
        if configuration.cert_file and configuration.key_file
        else None
    )
    return Connection(
        host=configuration.host.rstrip("/"), headers=headers, verify=verify, cert=cert
    )


def context_namespace(kubeconfig: str | None, context: str | None) -> str:
    """The namespace of the kubeconfig context (or of the service account in a pod)."""
    from kubernetes import config

    try:
        contexts, active = config.list_kube_config_contexts(  # type: ignore[no-untyped-call]
            config_file=kubeconfig
        )
        if context:
            active = next(c for c in contexts if c["name"] == context)
        return str(active.get("context", {}).get("namespace") or "default")
    except (config.ConfigException, FileNotFoundError, StopIteration, TypeError):
        try:
            with open("/var/run/secrets/kubernetes.io/serviceaccount/namespace") as f:
                return f.read().strip()
        except OSError:
            return "default"


@dataclass
class ConnectionCounts:
    """How the client's requests got their connection: `new` ones cost a TCP connect and, over
    https, a TLS handshake; `reused` ones came from the keep-alive pool."""

    new: int = 0
    reused: int = 0


class KubeClient:
    """Minimal typed verbs over the REST API, for the few kinds the operator touches."""

    def __init__(self, connection: Connection, settings: ClientSettings | None = None) -> None:
        self.settings = settings or ClientSettings()
        self.connection = connection
        self.connections = ConnectionCounts()
        self._bucket = TokenBucket(self.settings.qps, self.settings.burst)
        self._slots = asyncio.Semaphore(self.settings.concurrency)
        self._session: aiohttp.ClientSession | None = None

    def _connection_trace(self) -> aiohttp.TraceConfig:
        trace = aiohttp.TraceConfig()

        async def opened(*_: Any) -> None:
            self.connections.new += 1
            API_CONNECTIONS.labels("new").inc()

        async def reused(*_: Any) -> None:
            self.connections.reused += 1
            API_CONNECTIONS.labels("reused").inc()

        trace.on_connection_create_end.append(opened)
        trace.on_connection_reuseconn.append(reused)
        return trace

    @property
    def _http(self) -> aiohttp.ClientSession:
        # Created lazily: a session belongs to the loop it was made in.
        if self._session is None:
            ssl_context = self.connection.tls()
            self._session = aiohttp.ClientSession(
                base_url=self.connection.host,
                # The User-Agent names the operator in audit logs and, before its first "/", is
                # the field manager of every write (metadata.managedFields).
                headers={
                    "Accept": "application/json",
                    "User-Agent": USER_AGENT,
                    **self.connection.headers,
                },
                timeout=aiohttp.ClientTimeout(total=self.settings.timeout),
                # No connection limit here: requests are bounded by `_slots`, and a watch holds
                # its connection for minutes (with a limit of `concurrency`, each watch took a
                # request's connection and requests queued with slots free).
                connector=aiohttp.TCPConnector(
                    limit=0, keepalive_timeout=KEEPALIVE_SECONDS, ssl=ssl_context
                ),
                trace_configs=[self._connection_trace()],
            )
        return self._session

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()

    async def request(
        self,
        verb: str,
        path: str,
        *,
        resource: str,
        body: Any = None,
        params: Mapping[str, str] | None = None,
        content_type: str = "application/json",
    ) -> Any:
        """One API call with rate limiting and retries; the decoded JSON answer."""
        method = {
            "create": "POST",
            "get": "GET",
            "list": "GET",
            "patch": "PATCH",
            "delete": "DELETE",
            "update": "PUT",
            "proxy": "POST",
        }[verb]
        content = None if body is None else orjson.dumps(body)
        headers = {"Content-Type": content_type} if content is not None else None
        attempt = 0
        while True:
            attempt += 1
            await self._bucket.acquire()
            started = time.perf_counter()
            try:
                async with (
                    self._slots,
                    self._http.request(
                        method, path, data=content, params=params, headers=headers
                    ) as response,
                ):
                    status, raw, retry_after = (
                        response.status,
                        await response.read(),
                        response.headers.get("Retry-After"),
                    )
            except (aiohttp.ClientError, TimeoutError) as exc:
                API_CALLS.labels(verb, resource, "error").inc()
                if attempt > self.settings.max_retries:
                    raise KubeApiError(0, "TransportError", str(exc)) from exc
                await asyncio.sleep(_backoff(attempt))
                continue
            API_LATENCY.labels(verb, resource).observe(time.perf_counter() - started)
            API_CALLS.labels(verb, resource, str(status)).inc()
            if status < 400:
                return orjson.loads(raw) if raw else None
            error = _error_from(status, raw, retry_after)
            if status in RETRYABLE and attempt <= self.settings.max_retries:
                delay = error.retry_after if error.retry_after is not None else _backoff(attempt)
                logger.debug("retrying %s %s in %.2fs: %s", method, path, delay, error)
                await asyncio.sleep(delay)
                continue
            raise error

    # ------------------------------------------------------------------------- typed verbs
    async def get(self, path: str, resource: str) -> dict[str, Any]:
        result: dict[str, Any] = await self.request("get", path, resource=resource)
        return result

    async def create(self, path: str, resource: str, body: Mapping[str, Any]) -> dict[str, Any]:
        result: dict[str, Any] = await self.request("create", path, resource=resource, body=body)
        return result

    async def merge_patch(
        self, path: str, resource: str, patch: Mapping[str, Any]
    ) -> dict[str, Any]:
        result: dict[str, Any] = await self.request(
            "patch", path, resource=resource, body=patch, content_type=MERGE_PATCH
        )
        return result

    async def delete(
        self, path: str, resource: str, *, uid: str | None = None, propagation: str | None = None
    ) -> Any:
        options: dict[str, Any] = {"apiVersion": "v1", "kind": "DeleteOptions"}
        if uid:
            options["preconditions"] = {"uid": uid}
        if propagation:
            options["propagationPolicy"] = propagation
        return await self.request("delete", path, resource=resource, body=options)

    async def strategic_patch(
        self, path: str, resource: str, patch: Mapping[str, Any]
    ) -> dict[str, Any]:
        result: dict[str, Any] = await self.request(
            "patch", path, resource=resource, body=patch, content_type=STRATEGIC_PATCH
        )
        return result

    async def proxy_get(self, path: str) -> tuple[int, Any]:
        """GET through the apiserver's pod proxy (RBAC: get pods/proxy, a read)."""
        return await self._proxy("GET", path, None)

    async def proxy_post(self, path: str, body: Mapping[str, Any]) -> tuple[int, Any]:
        """POST through the apiserver's pod proxy (RBAC: create pods/proxy)."""
        return await self._proxy("POST", path, body)

    async def _proxy(
        self, method: str, path: str, body: Mapping[str, Any] | None
    ) -> tuple[int, Any]:
        """The pod's own status and decoded body, no retries (a 5xx from the pod is an answer,
        not an apiserver hiccup)."""
        await self._bucket.acquire()
        verb = "get" if method == "GET" else "proxy"
        content = None if body is None else orjson.dumps(body)
        headers = None if body is None else {"Content-Type": "application/json"}
        try:
            async with (
                self._slots,
                self._http.request(method, path, data=content, headers=headers) as response,
            ):
                status, raw = response.status, await response.read()
        except (aiohttp.ClientError, TimeoutError) as exc:
            API_CALLS.labels(verb, "pods/proxy", "error").inc()
            return 0, {"error": str(exc)}
        API_CALLS.labels(verb, "pods/proxy", str(status)).inc()
        try:
            return status, orjson.loads(raw)
        except ValueError:
            return status, {"error": raw[:500].decode(errors="replace")}

    async def list_with_version(
        self, path: str, resource: str, *, label_selector: str | None = None
    ) -> tuple[list[dict[str, Any]], str]:
        """All items (paginated) and the list's resourceVersion, to start a watch from."""
        items: list[dict[str, Any]] = []
        params: dict[str, str] = {"limit": "500"}
        if label_selector:
            params["labelSelector"] = label_selector
        while True:
            page = await self.request("list", path, resource=resource, params=params)
            items.extend(page.get("items") or [])
            meta = page.get("metadata") or {}
            if not meta.get("continue"):
                return items, str(meta.get("resourceVersion") or "")
            params["continue"] = meta["continue"]

    async def watch(
        self,
        path: str,
        resource: str,
        *,
        resource_version: str,
        label_selector: str | None = None,
        timeout_seconds: int = 300,
    ) -> AsyncIterator[dict[str, Any]]:
        """Watch events (dicts with type and object) until the server ends the stream."""
        params = {
            "watch": "true",
            "allowWatchBookmarks": "true",
            "resourceVersion": resource_version,
            "timeoutSeconds": str(timeout_seconds),
        }
        if label_selector:
            params["labelSelector"] = label_selector
        await self._bucket.acquire()
        timeout = aiohttp.ClientTimeout(total=None, sock_read=timeout_seconds + 30)
        async with self._http.get(path, params=params, timeout=timeout) as response:
            API_CALLS.labels("watch", resource, str(response.status)).inc()
            if response.status >= 400:
                raw = await response.read()
                raise _error_from(response.status, raw, response.headers.get("Retry-After"))
            # Lines split here, not by aiohttp's readline: that refuses lines above its buffer's
            # high-water mark (512 KiB with aiohttp 3.14), and one event carries a whole object
            # (a ConfigMap inventory holds up to 1 MiB, more once JSON-escaped).
            pending = b""
            async for chunk in response.content.iter_any():
                *lines, pending = (pending + chunk).split(b"\n")
                for line in lines:
                    if line.strip():
                        yield orjson.loads(line)
            if pending.strip():
                yield orjson.loads(pending)

    async def list(
        self, path: str, resource: str, *, label_selector: str | None = None
    ) -> list[dict[str, Any]]:
        items, _version = await self.list_with_version(
            path, resource, label_selector=label_selector
        )
        return items


def _backoff(attempt: int) -> float:
    return float(min(5.0, 0.05 * 2 ** (attempt - 1)) * (0.5 + random.random()))


def _error_from(code: int, raw: bytes, retry_after_header: str | None) -> KubeApiError:
    reason, message = "", raw[:500].decode(errors="replace")
    try:
        status = orjson.loads(raw)
        reason = status.get("reason") or ""
        message = status.get("message") or message
    except (ValueError, AttributeError):
        pass
    retry_after: float | None = None
    if retry_after_header is not None:
        try:
            retry_after = float(retry_after_header)
        except ValueError:
            retry_after = 1.0
    return KubeApiError(code, reason, message, retry_after)


# ------------------------------------------------------------------------------ resource paths


def namespaced(group_version: str, namespace: str, plural: str, name: str | None = None) -> str:
    base = "/api/v1" if group_version == "v1" else f"/apis/{group_version}"
    path = f"{base}/namespaces/{namespace}/{plural}"
    return f"{path}/{name}" if name else path
