"""Record which (verb, group, resource, subresource, namespace) every client asks kubesim for,
the way kube-apiserver's audit log and RBAC authorizer see a request.

Why this exists: the chart's RBAC must grant the operator exactly what it calls. The operator
makes its calls through two clients (its own httpx client and kopf's aiohttp session), so the
only place that sees both is the API server. `request_attributes` maps a request to RBAC's
attributes like the apiserver's RequestInfoFactory (watch = GET with ?watch, a collection GET is
list, POST to `pods/NAME:PORT/proxy/...` is create on pods/proxy); `recording_kubesim` starts
kubesim in a thread with every request recorded before kubesim handles it.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Callable, Coroutine, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from aiohttp import web

from kubesim.harness.cluster import KubeSim
from kubesim.harness.testing import KubeSimThread, kubesim_in_thread
from kubesim.node.kubelet import KubeletConfig
from modelfleet_dev.kubesim_runtime import SimulatedModelRuntime

VERBS_BY_METHOD = {"POST": "create", "PUT": "update", "PATCH": "patch"}


@dataclass(frozen=True)
class RequestAttributes:
    """What RBAC authorizes: a resource request, or a non-resource path (discovery, /version)."""

    user_agent: str
    verb: str
    group: str = ""
    resource: str = ""
    subresource: str = ""
    namespace: str | None = None
    path: str = ""  # non-resource requests only

    @property
    def is_resource_request(self) -> bool:
        return self.resource != ""

    @property
    def rbac_resource(self) -> str:
        """`pods/status`: the resource string RBAC rules name."""
        return f"{self.resource}/{self.subresource}" if self.subresource else self.resource


def request_attributes(
    method: str, path: str, query: Mapping[str, str], user_agent: str
) -> RequestAttributes:
    """RBAC's view of one HTTP request (k8s.io/apiserver RequestInfoFactory, simplified)."""
    parts = [p for p in path.split("/") if p]
    if parts[:2] == ["api", "v1"]:
        group, rest = "", parts[2:]
    elif parts[:1] == ["apis"] and len(parts) >= 3:
        group, rest = parts[1], parts[3:]
    else:
        rest = []
    if not rest:  # /api, /apis, /apis/g/v, /version, /openapi/...: discovery
        return RequestAttributes(user_agent, method.lower(), path=path)
    namespace: str | None = None
    if rest[0] == "namespaces" and len(rest) >= 3:
        namespace, rest = rest[1], rest[2:]
    resource = rest[0]
    name = rest[1] if len(rest) > 1 else ""
    subresource = rest[2] if len(rest) > 2 else ""
    if ":" in name and not subresource:  # pods/NAME:PORT with no /proxy: still the proxy
        subresource = "proxy"
    if method == "GET":
        watching = query.get("watch") in ("1", "true", "True")
        verb = "watch" if watching else ("get" if name else "list")
    elif method == "DELETE":
        verb = "delete" if name else "deletecollection"
    else:
        verb = VERBS_BY_METHOD.get(method, method.lower())
    if subresource == "proxy":
        # RBAC authorizes proxy by the HTTP verb: POST -> create, GET -> get.
        verb = {"GET": "get"}.get(method, verb)
    if resource == "namespaces" and name and not subresource and namespace is None:
        namespace = name
    return RequestAttributes(user_agent, verb, group, resource, subresource, namespace)


Handler = Callable[[web.Request], Coroutine[Any, Any, web.StreamResponse]]


class AuditLog:
    """Requests seen by kubesim, in order; thread-safe (kubesim's loop writes, tests read)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._records: list[RequestAttributes] = []

    def record(self, attributes: RequestAttributes) -> None:
        with self._lock:
            self._records.append(attributes)

    def records(self) -> list[RequestAttributes]:
        with self._lock:
            return list(self._records)

    def wrap(self, handler: Handler) -> Handler:
        async def audited(request: web.Request) -> web.StreamResponse:
            self.record(
                request_attributes(
                    request.method,
                    request.path,
                    request.query,
                    request.headers.get("User-Agent", ""),
                )
            )
            return await handler(request)

        return audited


@contextlib.contextmanager
def recording_kubesim(
    tmp_path: Path, log: AuditLog, *, kubelet: KubeletConfig | None = None
) -> Iterator[KubeSimThread]:
    """kubesim in a thread (kubesim.harness.testing.kubesim_in_thread), every HTTP request recorded into
    `log` before kubesim handles it."""

    def audit(sim: KubeSim) -> None:
        # The app's catch-all route is bound to http.handle when the server starts.
        sim.http.handle = log.wrap(sim.http.handle)  # type: ignore[method-assign,assignment]

    with kubesim_in_thread(
        tmp_path,
        kubelet=kubelet,
        container_runtimes=[SimulatedModelRuntime],
        before_start=audit,
    ) as ks:
        yield ks
