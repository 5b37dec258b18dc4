"""The Prometheus HTTP API client: one instant query, its answer parsed or the reason it failed.

One aiohttp session for every fleet (connections are pooled per Prometheus address). A query
never raises: it comes back as samples or as a `FailedQuery` saying whether Prometheus was
unreachable (connection refused, timeout, a 5xx without a Prometheus error body, the bearer
token's Secret unreadable) or answered with an error or an unexpected shape (bad PromQL:
Prometheus' own message is kept). The bearer token is read from its Secret at every query, so
a rotated token is used at once and no token is held between queries.
"""

from __future__ import annotations

import base64
import logging
from typing import Any

import aiohttp
import orjson

from modelfleet.api.spec import PrometheusEndpoint
from modelfleet.io.kube import KubeApiError, KubeClient, namespaced
from modelfleet.logic.analysis import QueryOutcome
from modelfleet.logic.fleet_monitoring import FailedQuery, QueryFailure
from modelfleet.logic.prometheus_answer import AnswerRefused, parse_answer

logger = logging.getLogger("modelfleet.io.prometheus")

#: Answers larger than this are refused (a query selecting every series of a big fleet).
MAX_ANSWER_BYTES = 8 * 1024 * 1024


class PrometheusClient:
    def __init__(self, kube: KubeClient | None = None) -> None:
        self.kube = kube  # reads bearer-token Secrets; None: endpoints with a token fail
        self._session: aiohttp.ClientSession | None = None
        self.queries = 0  # queries sent, for tests and the operator's own metrics

    @property
    def _http(self) -> aiohttp.ClientSession:
        if self._session is None:  # a session belongs to the loop it was made in
            self._session = aiohttp.ClientSession(
                headers={"Accept": "application/json", "User-Agent": "modelfleet-operator"}
            )
        return self._session

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()

    async def query(
        self, namespace: str, endpoint: PrometheusEndpoint, promql: str
    ) -> QueryOutcome:
        """`GET <address>/api/v1/query?query=...`: the samples, or why there are none."""
        headers: dict[str, str] = {}
        if endpoint.bearer_token_secret is not None:
            token = await self._token(namespace, endpoint)
            if isinstance(token, FailedQuery):
                return token
            headers["Authorization"] = f"Bearer {token}"
        url = endpoint.address.rstrip("/") + "/api/v1/query"
        self.queries += 1
        try:
            async with self._http.post(
                url,
                data={"query": promql},
                headers=headers,
                timeout=aiohttp.ClientTimeout(total=endpoint.timeout_seconds),
            ) as response:
                raw = await response.content.read(MAX_ANSWER_BYTES + 1)
                status = response.status
        except (aiohttp.ClientError, TimeoutError, OSError) as exc:
            return FailedQuery(
                QueryFailure.UNREACHABLE,
                f"Prometheus at {endpoint.address} unreachable: {type(exc).__name__}: {exc}",
            )
        if len(raw) > MAX_ANSWER_BYTES:
            return FailedQuery(
                QueryFailure.ERROR, f"answer larger than {MAX_ANSWER_BYTES} bytes refused"
            )
        body: Any
        try:
            body = orjson.loads(raw)
        except orjson.JSONDecodeError:
            body = None
        # Prometheus answers bad PromQL with 400 and a JSON error body, a query timeout with
        # 503 and one: read it whatever the status. Without one, a 5xx is unreachable.
        if not isinstance(body, dict) or "status" not in body:
            failure = QueryFailure.UNREACHABLE if status >= 500 else QueryFailure.ERROR
            text = raw[:200].decode("utf-8", "replace").strip()
            return FailedQuery(failure, f"Prometheus answered HTTP {status}: {text}")
        try:
            return parse_answer(body)
        except AnswerRefused as refused:
            return FailedQuery(QueryFailure.ERROR, refused.message)

    async def _token(self, namespace: str, endpoint: PrometheusEndpoint) -> str | FailedQuery:
        ref = endpoint.bearer_token_secret
        assert ref is not None
        where = f"Secret {namespace}/{ref.name} key {ref.key}"
        if self.kube is None:
            return FailedQuery(QueryFailure.UNREACHABLE, f"cannot read {where}: no API client")
        try:
            secret = await self.kube.get(
                namespaced("v1", namespace, "secrets", ref.name), "secrets"
            )
        except KubeApiError as exc:
            return FailedQuery(QueryFailure.UNREACHABLE, f"cannot read {where}: {exc}")
        encoded = (secret.get("data") or {}).get(ref.key)
        if not isinstance(encoded, str):
            return FailedQuery(QueryFailure.UNREACHABLE, f"{where} does not exist")
        try:
            return base64.b64decode(encoded, validate=True).decode().strip()
        except (ValueError, UnicodeDecodeError):
            return FailedQuery(QueryFailure.UNREACHABLE, f"{where} is not base64 text")
