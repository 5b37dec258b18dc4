"""The HTTP face of kubesim: kube-apiserver's URL layout, content negotiation and streaming.

Why this exists: kopf, the ``kubernetes`` client and kubectl talk HTTP with conventions of their
own (discovery documents, ``as=Table`` and ``as=PartialObjectMetadataList`` content negotiation,
chunked watch streams of JSON lines, ``Warning`` headers, Status bodies on every error). This
module maps those conventions onto ``ApiServer`` calls and nothing more: no semantics live here.
Docs: https://kubernetes.io/docs/reference/using-api/api-concepts/
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, Final

import yaml
from aiohttp import web

from kubesim.core.apiserver import ApiServer, ListResult, WriteResult
from kubesim.core.registry import ResourceDef
from kubesim.core.store import StoredObject
from kubesim.fields.apply import APPLY_PATCH, validate_patch_options
from kubesim.fields.managed_fields import manager_from_request
from kubesim.http.faults import FaultConfig, FaultPlan
from kubesim.presentation import openapi
from kubesim.presentation.protobuf import ProtobufError, decode_object
from kubesim.presentation.tables import PrinterColumn, render_table
from kubesim.wire.errors import ApiError
from kubesim.wire.jsonwire import decode, encode

__all__ = ["MAX_BODY_BYTES", "HttpConfig", "build_app"]

log = logging.getLogger("kubesim.http")

MAX_BODY_BYTES: Final = 3 * 1024 * 1024
VERSION_INFO: Final = {
    "major": "1",
    "minor": "32",
    "gitVersion": "v1.32.0-kubesim",
    "gitCommit": "0000000000000000000000000000000000000000",
    "gitTreeState": "clean",
    "buildDate": "2026-01-01T00:00:00Z",
    "goVersion": "go1.23.0",
    "compiler": "gc",
    "platform": "linux/amd64",
}
_JSON: Final = "application/json"
AGGREGATED_DISCOVERY: Final = "application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList"

PodProxy = Callable[[StoredObject, str, str, web.Request], Awaitable[web.StreamResponse]]


@dataclass
class HttpConfig:
    bookmark_interval: float = 10.0
    default_watch_timeout: float = 1800.0


def _json_response(
    body: bytes, status: int = 200, warnings: list[str] | None = None
) -> web.Response:
    resp = web.Response(body=body, status=status, content_type=_JSON)
    for warning in warnings or []:
        resp.headers.add("Warning", f'299 - "{warning}"')
    return resp


def _error_response(err: ApiError) -> web.Response:
    resp = web.Response(body=encode(err.to_status()), status=err.code, content_type=_JSON)
    if err.retry_after:
        resp.headers["Retry-After"] = str(err.retry_after)
    return resp


def _bool(value: str | None) -> bool:
    return value is not None and value.lower() in ("1", "true", "yes")


@dataclass
class _Target:
    """A parsed resource URL."""

    rdef: ResourceDef
    namespace: str
    name: str
    subresource: str | None
    rest: str  # path after the subresource (proxy)


class KubeHttp:
    def __init__(
        self,
        api: ApiServer,
        faults: FaultConfig,
        config: HttpConfig,
        server_address: Callable[[], str],
    ) -> None:
        self.api = api
        self.faults = faults
        self.config = config
        self.server_address = server_address
        self.pod_proxy: PodProxy | None = None
        self.pod_log: Callable[[StoredObject], bytes] | None = None
        self._watchers: set[Any] = set()
        self.active_watches = 0
        self.requests = 0

    def close_watches(self) -> None:
        """End every open watch (shutdown): their handlers return instead of being cancelled."""
        for watcher in list(self._watchers):
            watcher.close()

    # -- entry -----------------------------------------------------------------------------------

    async def handle(self, request: web.Request) -> web.StreamResponse:
        self.requests += 1
        if log.isEnabledFor(logging.DEBUG):
            log.debug("%s %s", request.method, request.path_qs)
        try:
            return await self._dispatch(request)
        except ApiError as err:
            return _error_response(err)
        except (ConnectionResetError, asyncio.CancelledError):
            raise
        except Exception as exc:
            log.exception("kubesim: %s %s failed", request.method, request.path_qs)
            return _error_response(ApiError.internal_error(f"{type(exc).__name__}: {exc}"))

    async def _dispatch(self, request: web.Request) -> web.StreamResponse:
        path = request.path.rstrip("/") or "/"
        parts = [p for p in path.split("/") if p]
        method = request.method
        if not parts:
            return _json_response(encode({"paths": sorted(self._root_paths())}))
        head = parts[0]
        if head == "version" and len(parts) == 1:
            return _json_response(encode(VERSION_INFO))
        if head in ("healthz", "readyz", "livez"):
            return web.Response(text="ok")
        if head == "openapi":
            return self._openapi(request, parts[1:])
        if head in ("api", "apis") and len(parts) == 1 and _wants_aggregated(request):
            aggregated = self.api.registry.aggregated_discovery(core=head == "api")
            return web.Response(
                body=encode(aggregated), headers={"Content-Type": AGGREGATED_DISCOVERY}
            )
        if head == "api":
            if len(parts) == 1:
                return _json_response(encode(self.api.registry.api_versions(self.server_address())))
            if parts[1] != "v1":
                raise ApiError.resource_not_found()
            return await self._resource_request(request, method, "", "v1", parts[2:])
        if head == "apis":
            if len(parts) == 1:
                return _json_response(encode(self.api.registry.api_group_list()))
            group = parts[1]
            if len(parts) == 2:
                doc = self.api.registry.api_group(group)
                if doc is None:
                    raise ApiError.resource_not_found()
                return _json_response(encode(doc))
            return await self._resource_request(request, method, group, parts[2], parts[3:])
        raise ApiError.resource_not_found()

    def _root_paths(self) -> list[str]:
        paths = ["/api", "/api/v1", "/apis", "/version", "/healthz", "/openapi/v2", "/openapi/v3"]
        for group, version in self.api.registry.group_versions():
            if group:
                paths += [f"/apis/{group}", f"/apis/{group}/{version}"]
        return paths

    def _openapi(self, request: web.Request, parts: list[str]) -> web.Response:
        registry = self.api.registry
        if parts == ["v3"]:
            return _json_response(
                encode(openapi.openapi_v3_index(registry.group_versions(), registry.all()))
            )
        if parts and parts[0] == "v3":
            if parts[1:2] == ["api"] and parts[2:] == ["v1"]:
                group, version = "", "v1"
            elif parts[1:2] == ["apis"] and len(parts) == 4:
                group, version = parts[2], parts[3]
            else:
                raise ApiError.resource_not_found()
            if not registry.has_group_version(group, version):
                raise ApiError.resource_not_found()
            rdefs = [r for r in registry.all() if r.group == group and r.version == version]
            doc = _without_strategic_merge_for_crds(
                openapi.openapi_v3_document(group, version, rdefs), rdefs
            )
            resp = _json_response(encode(doc))
            resp.headers["Cache-Control"] = (
                "public, immutable" if "hash" in request.query else "no-cache"
            )
            return resp
        if parts == ["v2"]:
            if "application/com.github.proto-openapi.spec.v2" in request.headers.get("Accept", ""):
                return web.Response(
                    body=openapi.openapi_v2_protobuf(),
                    headers={"Content-Type": openapi.OPENAPI_V2_PROTOBUF},
                )
            return _json_response(encode(openapi.openapi_v2_document(registry.all())))
        raise ApiError.resource_not_found()

    # -- URL parsing -------------------------------------------------------------------------------

    def _parse(self, group: str, version: str, rest: list[str]) -> _Target | None:
        registry = self.api.registry
        if not rest:
            return None
        namespace = ""
        if rest[0] == "namespaces" and len(rest) >= 3 and rest[2] not in ("status", "finalize"):
            namespace = rest[1]
            rest = rest[2:]
        plural = rest[0]
        rdef = registry.lookup(group, version, plural)
        if rdef is None:
            raise ApiError.resource_not_found()
        if namespace and not rdef.namespaced:
            raise ApiError.resource_not_found()
        name = rest[1] if len(rest) > 1 else ""
        sub = rest[2] if len(rest) > 2 else None
        tail = "/".join(rest[3:])
        return _Target(rdef, namespace, name, sub, tail)

    # -- resource requests ---------------------------------------------------------------------

    async def _resource_request(
        self, request: web.Request, method: str, group: str, version: str, rest: list[str]
    ) -> web.StreamResponse:
        registry = self.api.registry
        if not registry.has_group_version(group, version):
            raise ApiError.resource_not_found()
        if not rest:
            doc = registry.resource_list(group, version)
            if doc is None:
                raise ApiError.resource_not_found()
            return _json_response(encode(doc))
        target = self._parse(group, version, rest)
        assert target is not None
        rdef = target.rdef
        query = request.query
        watching = _bool(query.get("watch"))
        if method == "GET":
            verb = "watch" if watching else ("get" if target.name else "list")
        else:
            verb = {
                "POST": "create",
                "PUT": "update",
                "PATCH": "patch",
                "DELETE": "delete" if target.name else "deletecollection",
            }.get(method, method.lower())
        plan = (
            self.faults.plan(verb, rdef.plural, rdef.group, target.name)
            if self.faults.rules
            else FaultPlan()
        )
        if plan.latency:
            await asyncio.sleep(plan.latency)
        if plan.error is not None:
            raise plan.error

        if target.subresource in ("proxy", "log") or (target.name and ":" in target.name):
            return await self._pod_extras(request, target)
        if target.subresource not in (None, "status"):
            raise ApiError.resource_not_found()
        if target.subresource == "status" and not rdef.has_status:
            raise ApiError.resource_not_found()

        dry_run = query.get("dryRun") == "All"
        if "dryRun" in query and query.get("dryRun") not in ("All",):
            raise ApiError.bad_request(f"unsupported dryRun value: {query.get('dryRun')}")
        field_validation = query.get("fieldValidation", "")
        if field_validation not in ("", "Strict", "Warn", "Ignore"):
            raise ApiError.bad_request(
                f"fieldValidation must be one of Ignore, Warn, or Strict, got {field_validation}"
            )
        ns = target.namespace
        manager = manager_from_request(
            query.get("fieldManager", ""), request.headers.get("User-Agent", "")
        )

        if method == "GET":
            if watching:
                return await self._watch(request, target, plan)
            if target.name:
                entry = self.api.get(rdef, ns, target.name)
                return self._object_response(request, rdef, entry)
            result = self.api.list_objects(
                rdef,
                ns,
                label_selector=query.get("labelSelector", ""),
                field_selector=query.get("fieldSelector", ""),
                limit=_int_param(query, "limit"),
                continue_token=query.get("continue", ""),
                resource_version=query.get("resourceVersion", ""),
                resource_version_match=query.get("resourceVersionMatch", ""),
            )
            return self._list_response(request, rdef, result)
        if method == "POST":
            if target.name:
                raise ApiError.method_not_allowed(rdef.group, rdef.plural, "create")
            body = await self._body(request, rdef)
            written = self.api.create(
                rdef,
                ns,
                body,
                dry_run=dry_run,
                field_validation=field_validation,
                field_manager=manager,
            )
            return self._object_response(request, rdef, written.entry, 201, written.warnings)
        if method == "PUT":
            if not target.name:
                raise ApiError.method_not_allowed(rdef.group, rdef.plural, "update")
            body = await self._body(request, rdef)
            written = self.api.replace(
                rdef,
                ns,
                target.name,
                body,
                subresource=target.subresource,
                dry_run=dry_run,
                field_validation=field_validation,
                field_manager=manager,
            )
            return self._object_response(request, rdef, written.entry, 200, written.warnings)
        if method == "PATCH":
            if not target.name:
                raise ApiError.method_not_allowed(rdef.group, rdef.plural, "patch")
            content_type = request.content_type
            is_apply = content_type == APPLY_PATCH
            validate_patch_options(is_apply, query.get("fieldManager", ""), query.get("force"))
            if is_apply:
                written = self.api.apply(
                    rdef,
                    ns,
                    target.name,
                    await self._body(request, rdef),
                    field_manager=manager,
                    force=_bool(query.get("force")),
                    subresource=target.subresource,
                    dry_run=dry_run,
                    field_validation=field_validation,
                )
                status = 201 if written.created else 200
                return self._object_response(request, rdef, written.entry, status, written.warnings)
            patch = await self._body(request, rdef, allow_list=True)
            written = self.api.patch(
                rdef,
                ns,
                target.name,
                content_type,
                patch,
                subresource=target.subresource,
                dry_run=dry_run,
                field_validation=field_validation,
                field_manager=manager,
            )
            return self._object_response(request, rdef, written.entry, 200, written.warnings)
        if method == "DELETE":
            options = await self._delete_options(request)
            if not target.name:
                return await self._delete_collection(request, rdef, ns, options, dry_run)
            written = self.api.delete(rdef, ns, target.name, options, dry_run=dry_run)
            return self._deleted_response(request, rdef, written, options)
        raise ApiError(
            405,
            "MethodNotAllowed",
            "the server does not allow this method on the requested resource",
        )

    async def _body(self, request: web.Request, rdef: ResourceDef, allow_list: bool = False) -> Any:
        raw = await _read_body(request)
        content_type = request.content_type
        if content_type in ("application/yaml", "application/apply-patch+yaml"):
            # kubectl and Helm send apply patches as JSON (which is YAML): orjson reads a
            # 250 kB body in milliseconds where PyYAML takes about a second.
            with contextlib.suppress(ValueError):
                return decode(raw)
            try:
                return yaml.safe_load(raw)
            except yaml.YAMLError as exc:
                raise ApiError.bad_request(f"error converting YAML to JSON: {exc}") from None
        if content_type == "application/vnd.kubernetes.protobuf":
            try:
                return decode_object(raw)
            except ProtobufError as exc:
                raise ApiError(
                    415,
                    "UnsupportedMediaType",
                    f"{content_type} is unsupported here ({exc}); send application/json",
                ) from None
        try:
            return decode(raw)
        except ValueError as exc:
            raise ApiError.bad_request(
                f"the object provided is unrecognized (must be of type {rdef.kind}): couldn't get "
                f"version/kind; json parse error: {exc}"
            ) from None

    async def _delete_options(self, request: web.Request) -> dict[str, Any]:
        options: dict[str, Any] = {}
        if request.can_read_body:
            raw = await _read_body(request)
            if raw.strip():
                try:
                    if request.content_type == "application/vnd.kubernetes.protobuf":
                        parsed = decode_object(raw)
                    else:
                        parsed = decode(raw)
                except ValueError as exc:
                    raise ApiError.bad_request(f"invalid DeleteOptions: {exc}") from None
                if isinstance(parsed, dict):
                    options.update(parsed)
        query = request.query
        if "propagationPolicy" in query:
            options["propagationPolicy"] = query["propagationPolicy"]
        if "gracePeriodSeconds" in query:
            options["gracePeriodSeconds"] = _int_param(query, "gracePeriodSeconds")
        if "orphanDependents" in query:
            options["orphanDependents"] = _bool(query["orphanDependents"])
        return options

    async def _delete_collection(
        self,
        request: web.Request,
        rdef: ResourceDef,
        namespace: str,
        options: dict[str, Any],
        dry_run: bool,
    ) -> web.Response:
        result = self.api.list_objects(
            rdef,
            namespace,
            label_selector=request.query.get("labelSelector", ""),
            field_selector=request.query.get("fieldSelector", ""),
        )
        deleted: list[bytes] = []
        for entry in result.items:
            with contextlib.suppress(ApiError):
                written = self.api.delete(
                    rdef, entry.namespace, entry.name, dict(options), dry_run=dry_run
                )
                deleted.append(self.api.render(rdef, written.entry))
        body = (
            b'{"kind":"'
            + rdef.list_kind.encode()
            + b'","apiVersion":"'
            + rdef.api_version.encode()
            + b'","metadata":{"resourceVersion":"'
            + str(self.api.store.resource_version).encode()
            + b'"},"items":['
            + b",".join(deleted)
            + b"]}"
        )
        return _json_response(body)

    # -- responses ---------------------------------------------------------------------------------

    def _accepts(self, request: web.Request) -> str:
        accept = request.headers.get("Accept", "")
        for clause in accept.split(","):
            params = {
                p.strip().split("=", 1)[0]: p.strip().split("=", 1)[-1]
                for p in clause.split(";")[1:]
            }
            if params.get("as") == "Table" and params.get("g") == "meta.k8s.io":
                return "Table"
            if (
                params.get("as") in ("PartialObjectMetadata", "PartialObjectMetadataList")
                and params.get("g") == "meta.k8s.io"
            ):
                return "PartialObjectMetadata"
            media = clause.split(";")[0].strip()
            if media in (_JSON, "*/*", "application/*", "application/yaml", ""):
                return "json"
        return "json"

    def _table(
        self, request: web.Request, rdef: ResourceDef, entries: list[StoredObject]
    ) -> dict[str, Any]:
        columns = (
            [PrinterColumn.from_crd(c) for c in rdef.printer_columns]
            if rdef.printer_columns is not None
            else None
        )
        objects = [self.api.view(rdef, e) for e in entries]
        include = request.query.get("includeObject", "Metadata")
        return render_table(objects, columns, kind_hint=rdef.kind, include_object=include)

    def _object_response(
        self,
        request: web.Request,
        rdef: ResourceDef,
        entry: StoredObject,
        status: int = 200,
        warnings: list[str] | None = None,
    ) -> web.Response:
        mode = self._accepts(request)
        if mode == "Table":
            table = self._table(request, rdef, [entry])
            table.setdefault("metadata", {})["resourceVersion"] = str(entry.rv)
            return _json_response(encode(table), status, warnings)
        if mode == "PartialObjectMetadata":
            return _json_response(encode(_partial(self.api.view(rdef, entry))), status, warnings)
        return _json_response(self.api.render(rdef, entry), status, warnings)

    def _list_response(
        self, request: web.Request, rdef: ResourceDef, result: ListResult
    ) -> web.Response:
        meta: dict[str, Any] = {"resourceVersion": str(result.resource_version)}
        if result.continue_token:
            meta["continue"] = result.continue_token
            if result.remaining is not None:
                meta["remainingItemCount"] = result.remaining
        mode = self._accepts(request)
        if mode == "Table":
            table = self._table(request, rdef, result.items)
            table["metadata"] = {**table.get("metadata", {}), **meta}
            return _json_response(encode(table))
        if mode == "PartialObjectMetadata":
            doc = {
                "kind": "PartialObjectMetadataList",
                "apiVersion": "meta.k8s.io/v1",
                "metadata": meta,
                "items": [_partial(self.api.view(rdef, e)) for e in result.items],
            }
            return _json_response(encode(doc))
        if self.api.needs_render(rdef):
            items = [self.api.render(rdef, e) for e in result.items]
        else:
            items = [e.raw for e in result.items]
        body = b"".join(
            [
                b'{"kind":"',
                rdef.list_kind.encode(),
                b'","apiVersion":"',
                rdef.api_version.encode(),
                b'","metadata":',
                encode(meta),
                b',"items":[',
                b",".join(items),
                b"]}",
            ]
        )
        return _json_response(body)

    def _deleted_response(
        self,
        request: web.Request,
        rdef: ResourceDef,
        written: WriteResult,
        options: dict[str, Any],
    ) -> web.Response:
        entry = written.entry
        if not written.deleted:
            # Marked for deletion only (finalizers, a pod's grace period): the object, 200 as
            # kube-apiserver answers; 202 only when the request set orphanDependents=false.
            accepted = options.get("orphanDependents") is False
            return self._object_response(request, rdef, entry, 202 if accepted else 200)
        if rdef.group == "" and rdef.plural in ("pods", "services", "namespaces"):
            return self._object_response(request, rdef, entry, 200)
        status = {
            "kind": "Status",
            "apiVersion": "v1",
            "metadata": {},
            "status": "Success",
            "details": {
                "name": entry.name,
                "group": rdef.group,
                "kind": rdef.plural,
                "uid": entry.uid,
            },
        }
        return _json_response(encode(status))

    # -- watch -------------------------------------------------------------------------------------

    async def _watch(
        self, request: web.Request, target: _Target, plan: FaultPlan
    ) -> web.StreamResponse:
        rdef = target.rdef
        query = request.query
        label_selector = query.get("labelSelector", "")
        field_selector = query.get("fieldSelector", "")
        if target.name:
            field_selector = ",".join(
                filter(None, [field_selector, f"metadata.name={target.name}"])
            )
        timeout = float(_int_param(query, "timeoutSeconds") or self.config.default_watch_timeout)
        bookmarks = _bool(query.get("allowWatchBookmarks"))
        send_initial = _bool(query.get("sendInitialEvents"))
        table = self._accepts(request) == "Table"
        resp = web.StreamResponse(status=200, headers={"Content-Type": _JSON})
        resp.enable_chunked_encoding()
        if plan.gone:
            await resp.prepare(request)
            err = ApiError.expired(
                f"too old resource version: {query.get('resourceVersion', '0')} (kubesim injected fault)"
            )
            await resp.write(b'{"type":"ERROR","object":' + encode(err.to_status()) + b"}\n")
            await resp.write_eof()
            return resp
        try:
            watcher, detach = self.api.watch(
                rdef,
                target.namespace,
                label_selector=label_selector,
                field_selector=field_selector,
                resource_version=query.get("resourceVersion", ""),
                send_initial_events=send_initial,
            )
        except ApiError as err:
            if err.code != 410:
                raise
            # kube-apiserver answers a watch from a compacted resourceVersion with 200 and one
            # ERROR event carrying the 410 Status.
            await resp.prepare(request)
            await resp.write(b'{"type":"ERROR","object":' + encode(err.to_status()) + b"}\n")
            await resp.write_eof()
            return resp
        if send_initial and bookmarks:
            watcher.bookmark(
                rdef.api_version,
                rdef.kind,
                self.api.store.resource_version,
                {"k8s.io/initial-events-end": "true"},
            )
        self.active_watches += 1
        self._watchers.add(watcher)
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        if plan.drop_watch_after is not None:
            deadline = min(deadline, loop.time() + plan.drop_watch_after)
        next_bookmark = loop.time() + self.config.bookmark_interval
        try:
            await resp.prepare(request)
            while True:
                now = loop.time()
                if now >= deadline:
                    break
                wait = deadline - now
                if bookmarks:
                    wait = min(wait, max(0.0, next_bookmark - now))
                batch = await watcher.next_batch(wait)
                if watcher.closed and not batch:
                    break
                if bookmarks and loop.time() >= next_bookmark:
                    if not batch:
                        watcher.bookmark(rdef.api_version, rdef.kind, max(watcher.last_rv, 1))
                        batch = await watcher.next_batch(0)
                    next_bookmark = loop.time() + self.config.bookmark_interval
                if not batch:
                    continue
                if table:
                    batch = [self._table_line(request, rdef, line) for line in batch]
                await resp.write(b"".join(batch))
            if plan.drop_watch_after is None and bookmarks:
                watcher.bookmark(rdef.api_version, rdef.kind, max(watcher.last_rv, 1))
                await resp.write(b"".join(await watcher.next_batch(0)))
            if plan.drop_watch_after is not None:
                # A dropped connection: no clean end of stream.
                if request.transport is not None:
                    request.transport.close()
                return resp
            with contextlib.suppress(ConnectionResetError):
                await resp.write_eof()
        except ConnectionResetError:
            pass  # the client went away; nothing to tell it
        finally:
            detach()
            self._watchers.discard(watcher)
            self.active_watches -= 1
        return resp

    def _table_line(self, request: web.Request, rdef: ResourceDef, line: bytes) -> bytes:
        event: dict[str, Any] = decode(line)
        if event["type"] in ("ERROR", "BOOKMARK"):
            return line
        obj = event["object"]
        entry = StoredObject(obj, int(obj["metadata"].get("resourceVersion", "0") or 0))
        table = self._table(request, rdef, [entry])
        table.setdefault("metadata", {})["resourceVersion"] = obj["metadata"].get(
            "resourceVersion", ""
        )
        type_: str = event["type"]
        return b'{"type":"' + type_.encode() + b'","object":' + encode(table) + b"}\n"

    # -- pods: proxy and log -----------------------------------------------------------------------

    async def _pod_extras(self, request: web.Request, target: _Target) -> web.StreamResponse:
        rdef = target.rdef
        if not (rdef.group == "" and rdef.plural == "pods"):
            raise ApiError.resource_not_found()
        name, _, port = target.name.partition(":")
        entry = self.api.get(rdef, target.namespace, name)
        if target.subresource == "log":
            text = self.pod_log(entry) if self.pod_log is not None else b""
            return web.Response(body=text, content_type="text/plain")
        if target.subresource != "proxy":
            raise ApiError.resource_not_found()
        if self.pod_proxy is None:
            raise ApiError(503, "ServiceUnavailable", f'no endpoints available for pod "{name}"')
        return await self.pod_proxy(entry, port, target.rest, request)


def _wants_aggregated(request: web.Request) -> bool:
    """kubectl >= 1.30 asks ``/api`` and ``/apis`` for aggregated discovery first (v2)."""
    for clause in request.headers.get("Accept", "").split(","):
        params = {p.strip() for p in clause.split(";")[1:]}
        if {"g=apidiscovery.k8s.io", "v=v2", "as=APIGroupDiscoveryList"} <= params:
            return True
    return False


def _without_strategic_merge_for_crds(
    doc: dict[str, Any], rdefs: list[ResourceDef]
) -> dict[str, Any]:
    """kubectl apply picks strategic merge when a PATCH operation advertises it; custom resources
    must not (kube-apiserver answers 415 for them), so kubectl falls back to merge patch."""
    kinds = {r.kind for r in rdefs if r.crd_name is not None}
    if not kinds:
        return doc
    paths: dict[str, Any] = {}
    for path, item in (doc.get("paths") or {}).items():
        op = item.get("patch") if isinstance(item, dict) else None
        gvk = (op or {}).get("x-kubernetes-group-version-kind") or {}
        content = ((op or {}).get("requestBody") or {}).get("content") or {}
        if (
            op is None
            or gvk.get("kind") not in kinds
            or "application/strategic-merge-patch+json" not in content
        ):
            paths[path] = item
            continue
        body = {
            **op["requestBody"],
            "content": {k: v for k, v in content.items() if "strategic" not in k},
        }
        paths[path] = {**item, "patch": {**op, "requestBody": body}}
    return {**doc, "paths": paths}


async def _read_body(request: web.Request) -> bytes:
    """The whole body, refusing more than kube-apiserver's 3 MiB with its 413."""
    chunks: list[bytes] = []
    total = 0
    while True:
        chunk = await request.content.read(1 << 16)
        if not chunk:
            break
        total += len(chunk)
        if total > MAX_BODY_BYTES:
            raise ApiError.request_entity_too_large(f"limit is {MAX_BODY_BYTES}")
        chunks.append(chunk)
    return b"".join(chunks)


def _partial(obj: dict[str, Any]) -> dict[str, Any]:
    return {
        "kind": "PartialObjectMetadata",
        "apiVersion": "meta.k8s.io/v1",
        "metadata": obj["metadata"],
    }


def _int_param(query: Any, key: str) -> int:
    value = query.get(key)
    if value in (None, ""):
        return 0
    try:
        number = int(value)
    except ValueError:
        raise ApiError.bad_request(
            f"invalid value for {key}: {value!r} is not an integer"
        ) from None
    if number < 0 and key != "gracePeriodSeconds":
        raise ApiError.bad_request(f"invalid value for {key}: {number} must not be negative")
    return number


def build_app(http: KubeHttp) -> web.Application:
    # The body limit is enforced by KubeHttp with an apiserver-shaped 413.
    app = web.Application(client_max_size=MAX_BODY_BYTES * 2)
    app.router.add_route("*", "/{tail:.*}", http.handle)
    return app
