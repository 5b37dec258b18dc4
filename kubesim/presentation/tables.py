"""Server-side printing: ``meta.k8s.io/v1`` Tables for ``kubectl get``.

Why this exists: ``kubectl get`` asks for ``Accept: application/json;as=Table;v=v1;g=meta.k8s.io``
and prints whatever columns the server returns; for custom resources those come from the CRD's
``additionalPrinterColumns`` (JSONPath), for built-ins from the apiserver's printers. Dates are
turned into ages by the server (``ConvertToHumanReadableDateType``), not by kubectl.

Follows ``k8s.io/apiextensions-apiserver/pkg/registry/customresource/tableconvertor``,
``k8s.io/kubernetes/pkg/printers/internalversion/printers.go`` and
``k8s.io/apimachinery/pkg/util/duration.HumanDuration``.
Docs: https://kubernetes.io/docs/reference/using-api/api-concepts/#receiving-resources-as-tables
and https://kubernetes.io/docs/tasks/extend-kubernetes/custom-resources/custom-resource-definitions/#additional-printer-columns
"""

from __future__ import annotations

import datetime
import json
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Final

__all__ = [
    "JsonPath",
    "PrinterColumn",
    "human_duration",
    "partial_object_metadata",
    "render_table",
]

NAME_DESCRIPTION: Final = (
    "Name must be unique within a namespace. Is required when creating resources, although some "
    "resources may allow a client to request the generation of an appropriate name automatically. "
    "Name is primarily intended for creation idempotence and configuration definition. Cannot be "
    "updated. More info: https://kubernetes.io/docs/concepts/overview/working-with-objects/names#names"
)
CREATION_DESCRIPTION: Final = (
    "CreationTimestamp is a timestamp representing the server time when this object was created. "
    "It is not guaranteed to be set in happens-before order across separate operations. Clients may "
    "not set this value. It is represented in RFC3339 form and is in UTC.\n\nPopulated by the system. "
    "Read-only. Null for lists. More info: "
    "https://git.k8s.io/community/contributors/devel/sig-architecture/api-conventions.md#metadata"
)

# --------------------------------------------------------------------------------------------
# Durations
# --------------------------------------------------------------------------------------------


def human_duration(seconds: float) -> str:
    """``duration.HumanDuration``: ``45s``, ``5m10s``, ``3h``, ``2d4h``, ``1y30d``."""
    whole = int(seconds)
    if whole < -1:
        return "<invalid>"
    if whole < 0:
        return "0s"
    if whole < 120:
        return f"{whole}s"
    minutes = whole // 60
    if minutes < 10:
        rest = whole % 60
        return f"{minutes}m" if rest == 0 else f"{minutes}m{rest}s"
    if minutes < 180:
        return f"{minutes}m"
    hours = whole // 3600
    if hours < 8:
        rest = minutes % 60
        return f"{hours}h" if rest == 0 else f"{hours}h{rest}m"
    if hours < 48:
        return f"{hours}h"
    if hours < 24 * 8:
        rest = hours % 24
        return f"{hours // 24}d" if rest == 0 else f"{hours // 24}d{rest}h"
    if hours < 24 * 365 * 2:
        return f"{hours // 24}d"
    if hours < 24 * 365 * 8:
        days = (hours // 24) % 365
        return f"{hours // 24 // 365}y" if days == 0 else f"{hours // 24 // 365}y{days}d"
    return f"{hours // 24 // 365}y"


def _parse_time(text: Any) -> datetime.datetime | None:
    if not isinstance(text, str) or not text:
        return None
    try:
        parsed = datetime.datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=datetime.UTC)


def _since(text: Any, now: datetime.datetime) -> str:
    """``translateTimestampSince``: ``<unknown>`` for a missing time."""
    when = _parse_time(text)
    if when is None:
        return "<unknown>"
    return human_duration((now - when).total_seconds())


# --------------------------------------------------------------------------------------------
# kubectl-style JSONPath (k8s.io/client-go/util/jsonpath), the subset printer columns use
# --------------------------------------------------------------------------------------------

_FILTER: Final = re.compile(r"^\?\(@((?:\.[^=!<>\s]+)*)\s*(==|!=|<=|>=|<|>)?\s*(.*?)\)$")


def _parse_literal(text: str) -> Any:
    text = text.strip()
    if len(text) >= 2 and text[0] == text[-1] and text[0] in "\"'":
        return text[1:-1]
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        return text


class JsonPath:
    """A parsed JSONPath such as ``.status.conditions[?(@.type=="Ready")].status``."""

    def __init__(self, expression: str) -> None:
        text = expression.strip()
        if text.startswith("{") and text.endswith("}"):
            text = text[1:-1]
        if text.startswith("$"):
            text = text[1:]
        self.expression = expression
        self.steps = self._parse(text)

    @staticmethod
    def _parse(text: str) -> list[tuple[str, Any]]:
        steps: list[tuple[str, Any]] = []
        i = 0
        while i < len(text):
            ch = text[i]
            if ch == ".":
                if text[i + 1 : i + 2] == ".":
                    raise ValueError(f"recursive descent is not supported in {text!r}")
                j = i + 1
                name = ""
                while j < len(text) and text[j] not in ".[":
                    if text[j] == "\\" and j + 1 < len(text):
                        name += text[j + 1]
                        j += 2
                        continue
                    name += text[j]
                    j += 1
                if name == "*":
                    steps.append(("wildcard", None))
                elif name:
                    steps.append(("field", name))
                i = j
            elif ch == "[":
                depth, j = 0, i
                while j < len(text):
                    if text[j] == "[":
                        depth += 1
                    elif text[j] == "]":
                        depth -= 1
                        if depth == 0:
                            break
                    j += 1
                if j >= len(text):
                    raise ValueError(f"unclosed [ in {text!r}")
                inner = text[i + 1 : j].strip()
                i = j + 1
                if inner == "*":
                    steps.append(("wildcard", None))
                elif inner.startswith("?"):
                    match = _FILTER.match(inner)
                    if match is None:
                        raise ValueError(f"unsupported filter {inner!r}")
                    path = [p for p in match.group(1).split(".") if p]
                    op = match.group(2)
                    value = _parse_literal(match.group(3)) if op else None
                    steps.append(("filter", (path, op, value)))
                elif inner[:1] in "'\"":
                    steps.append(("field", inner[1:-1]))
                elif ":" in inner:
                    start, _, end = inner.partition(":")
                    steps.append(
                        ("slice", (int(start) if start else None, int(end) if end else None))
                    )
                else:
                    steps.append(("index", int(inner)))
            else:
                # A leading name without a dot ("metadata.name").
                j = i
                while j < len(text) and text[j] not in ".[":
                    j += 1
                steps.append(("field", text[i:j]))
                i = j
        return steps

    def find(self, data: Any) -> list[Any]:
        """All matches (missing keys yield no match, like ``AllowMissingKeys(true)``)."""
        current = [data]
        for kind, arg in self.steps:
            following: list[Any] = []
            for value in current:
                if kind == "field":
                    if isinstance(value, Mapping) and arg in value:
                        following.append(value[arg])
                elif kind == "index":
                    if isinstance(value, list) and -len(value) <= arg < len(value):
                        following.append(value[arg])
                elif kind == "slice":
                    if isinstance(value, list):
                        following.extend(value[arg[0] : arg[1]])
                elif kind == "wildcard":
                    if isinstance(value, list):
                        following.extend(value)
                    elif isinstance(value, Mapping):
                        following.extend(value.values())
                elif kind == "filter" and isinstance(value, list):
                    following.extend(item for item in value if _filter_matches(item, *arg))
            current = following
        return current


def _filter_matches(item: Any, path: list[str], op: str | None, expected: Any) -> bool:
    value: Any = item
    for part in path:
        if not isinstance(value, Mapping) or part not in value:
            return False
        value = value[part]
    if op is None:
        return True
    if op == "==":
        return bool(value == expected or str(value) == str(expected))
    if op == "!=":
        return not (value == expected or str(value) == str(expected))
    try:
        left, right = float(value), float(expected)
    except (TypeError, ValueError):
        return False
    return {"<": left < right, "<=": left <= right, ">": left > right, ">=": left >= right}[op]


def _print_value(value: Any) -> str:
    """How the jsonpath printer writes one result (strings raw, the rest as Go/JSON text)."""
    if isinstance(value, str):
        return value
    if isinstance(value, bool):
        return "true" if value else "false"
    if value is None:
        return "<nil>"
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    if isinstance(value, int | float):
        return str(value)
    return json.dumps(value, separators=(",", ":"))


# --------------------------------------------------------------------------------------------
# Columns
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class PrinterColumn:
    """One ``additionalPrinterColumns`` entry of a CRD version."""

    name: str
    type: str
    json_path: str
    format: str = ""
    description: str = ""
    priority: int = 0

    @classmethod
    def from_crd(cls, column: Mapping[str, Any]) -> PrinterColumn:
        path = str(column.get("jsonPath") or column.get("JSONPath") or "")
        return cls(
            name=str(column["name"]),
            type=str(column.get("type") or "string"),
            json_path=path,
            format=str(column.get("format") or ""),
            description=str(column.get("description") or "")
            or f"Custom resource definition column (in JSONPath format): {path}",
            priority=int(column.get("priority") or 0),
        )

    def definition(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "type": self.type,
            "format": self.format,
            "description": self.description,
            "priority": self.priority,
        }


def _name_column() -> dict[str, Any]:
    return {
        "name": "Name",
        "type": "string",
        "format": "name",
        "description": NAME_DESCRIPTION,
        "priority": 0,
    }


def _column(
    name: str, kind: str = "string", description: str = "", priority: int = 0, fmt: str = ""
) -> dict[str, Any]:
    return {
        "name": name,
        "type": kind,
        "format": fmt,
        "description": description,
        "priority": priority,
    }


def _age_column() -> dict[str, Any]:
    return _column("Age", "string", CREATION_DESCRIPTION)


def _cell_for_json_value(column_type: str, value: Any, now: datetime.datetime) -> Any:
    """``cellForJSONValue`` of the CRD table convertor."""
    if value is None:
        return None
    if column_type == "integer":
        if isinstance(value, bool):
            return None
        if isinstance(value, int | float):
            return int(value)
        return None
    if column_type == "number":
        if isinstance(value, bool) or not isinstance(value, int | float):
            return None
        return float(value)
    if column_type == "boolean":
        return value if isinstance(value, bool) else None
    if column_type == "string":
        return value if isinstance(value, str) else None
    if column_type == "date":
        if isinstance(value, str):
            if _parse_time(value) is None:
                return "<invalid>"
            return _since(value, now)
        return None
    return None


# --------------------------------------------------------------------------------------------
# Built-in printers (pkg/printers/internalversion)
# --------------------------------------------------------------------------------------------


def _meta(obj: Mapping[str, Any]) -> Mapping[str, Any]:
    meta = obj.get("metadata")
    return meta if isinstance(meta, Mapping) else {}


def _pod_row(
    pod: Mapping[str, Any], now: datetime.datetime
) -> tuple[list[Any], list[dict[str, Any]]]:
    spec = pod.get("spec") or {}
    status = pod.get("status") or {}
    meta = _meta(pod)
    # Sidecars (init containers with restartPolicy Always) count as containers of the pod.
    sidecars = {
        c.get("name")
        for c in spec.get("initContainers") or []
        if c.get("restartPolicy") == "Always"
    }
    total = len(spec.get("containers") or []) + len(sidecars)
    ready = 0
    restarts = 0
    last_restart: datetime.datetime | None = None
    reason = status.get("phase") or ""
    if status.get("reason"):
        reason = status["reason"]
    for condition in status.get("conditions") or []:
        if condition.get("type") == "PodScheduled" and condition.get("reason") == "SchedulingGated":
            reason = "SchedulingGated"

    initializing = False
    init_statuses = status.get("initContainerStatuses") or []
    init_specs = spec.get("initContainers") or []
    for index, container in enumerate(init_statuses):
        restarts += int(container.get("restartCount") or 0)
        state = container.get("state") or {}
        terminated, waiting = state.get("terminated"), state.get("waiting")
        if terminated and terminated.get("exitCode") == 0:
            continue
        if container.get("name") in sidecars and container.get("started"):
            if container.get("ready"):
                ready += 1
            continue
        if terminated:
            if terminated.get("reason"):
                reason = "Init:" + terminated["reason"]
            elif terminated.get("signal"):
                reason = f"Init:Signal:{terminated['signal']}"
            else:
                reason = f"Init:ExitCode:{terminated.get('exitCode')}"
        elif waiting and waiting.get("reason") and waiting["reason"] != "PodInitializing":
            reason = "Init:" + waiting["reason"]
        else:
            reason = f"Init:{index}/{len(init_specs)}"
        initializing = True
        break

    pod_initialized = any(
        c.get("type") == "Initialized" and c.get("status") == "True"
        for c in status.get("conditions") or []
    )
    if not initializing or pod_initialized:
        restarts = sum(
            int(c.get("restartCount") or 0) for c in init_statuses if c.get("name") in sidecars
        )
        has_running = False
        for container in reversed(status.get("containerStatuses") or []):
            restarts += int(container.get("restartCount") or 0)
            finished = _parse_time(
                ((container.get("lastState") or {}).get("terminated") or {}).get("finishedAt")
            )
            if finished is not None and (last_restart is None or finished > last_restart):
                last_restart = finished
            state = container.get("state") or {}
            waiting, terminated = state.get("waiting"), state.get("terminated")
            if waiting and waiting.get("reason"):
                reason = waiting["reason"]
            elif terminated and terminated.get("reason"):
                reason = terminated["reason"]
            elif terminated:
                reason = (
                    f"Signal:{terminated['signal']}"
                    if terminated.get("signal")
                    else f"ExitCode:{terminated.get('exitCode')}"
                )
            elif container.get("ready") and state.get("running") is not None:
                has_running = True
                ready += 1
        if reason == "Completed" and has_running:
            conditions = status.get("conditions") or []
            pod_ready = any(
                c.get("type") == "Ready" and c.get("status") == "True" for c in conditions
            )
            reason = "Running" if pod_ready else "NotReady"

    if meta.get("deletionTimestamp") and status.get("reason") == "NodeLost":
        reason = "Unknown"
    elif meta.get("deletionTimestamp"):
        reason = "Terminating"

    restarts_text = str(restarts)
    if restarts and last_restart is not None:
        restarts_text = f"{restarts} ({human_duration((now - last_restart).total_seconds())} ago)"

    pod_ip = (status.get("podIPs") or [{}])[0].get("ip") or status.get("podIP") or ""
    gates = spec.get("readinessGates") or []
    gates_text = "<none>"
    if gates:
        true_types = {
            c.get("type") for c in status.get("conditions") or [] if c.get("status") == "True"
        }
        gates_text = f"{sum(1 for g in gates if g.get('conditionType') in true_types)}/{len(gates)}"
    cells = [
        meta.get("name", ""),
        f"{ready}/{total}",
        reason,
        restarts_text,
        _since(meta.get("creationTimestamp"), now),
        pod_ip or "<none>",
        spec.get("nodeName") or "<none>",
        status.get("nominatedNodeName") or "<none>",
        gates_text,
    ]
    row_conditions: list[dict[str, Any]] = []
    phase = status.get("phase")
    if phase in ("Succeeded", "Failed"):
        row_conditions = [
            {
                "type": "Completed",
                "status": "True",
                "reason": phase,
                "message": f"The pod has {phase.lower()}.",
            }
        ]
    return cells, row_conditions


_POD_COLUMNS: Final = [
    _name_column(),
    _column(
        "Ready", description="The aggregate readiness state of this pod for accepting traffic."
    ),
    _column("Status", description="The aggregate status of the containers in this pod."),
    _column(
        "Restarts",
        description="The number of times the containers in this pod have been restarted and when the last container in this pod has restarted.",
    ),
    _age_column(),
    _column(
        "IP",
        description="podIP address allocated to the pod. Routable at least within the cluster. Empty if not yet allocated.",
        priority=1,
    ),
    _column(
        "Node", description="NodeName indicates in which node this pod is scheduled.", priority=1
    ),
    _column(
        "Nominated Node",
        description="nominatedNodeName is set when this pod preempts other pods on the node, but it cannot be scheduled right away as preemption victims receive their graceful termination periods.",
        priority=1,
    ),
    _column(
        "Readiness Gates",
        description="If specified, all readiness gates will be evaluated for pod readiness.",
        priority=1,
    ),
]


def _service_ports(spec: Mapping[str, Any]) -> str:
    parts = []
    for port in spec.get("ports") or []:
        protocol = port.get("protocol") or "TCP"
        if port.get("nodePort"):
            parts.append(f"{port.get('port')}:{port['nodePort']}/{protocol}")
        else:
            parts.append(f"{port.get('port')}/{protocol}")
    return ",".join(parts) or "<none>"


def _service_external_ip(svc: Mapping[str, Any]) -> str:
    spec = svc.get("spec") or {}
    kind = spec.get("type") or "ClusterIP"
    external = list(spec.get("externalIPs") or [])
    if kind == "ExternalName":
        return str(spec.get("externalName") or "<none>")
    if kind == "LoadBalancer":
        ingress = ((svc.get("status") or {}).get("loadBalancer") or {}).get("ingress") or []
        addresses = [
            i.get("ip") or i.get("hostname") for i in ingress if i.get("ip") or i.get("hostname")
        ]
        addresses += external
        return ",".join(addresses) if addresses else "<pending>"
    return ",".join(external) if external else "<none>"


def _selector_text(selector: Mapping[str, Any] | None) -> str:
    if not selector:
        return "<none>"
    return ",".join(f"{k}={v}" for k, v in sorted(selector.items()))


def _service_row(svc: Mapping[str, Any], now: datetime.datetime) -> list[Any]:
    spec = svc.get("spec") or {}
    meta = _meta(svc)
    return [
        meta.get("name", ""),
        spec.get("type") or "ClusterIP",
        (spec.get("clusterIPs") or [spec.get("clusterIP")])[0] or "<none>",
        _service_external_ip(svc),
        _service_ports(spec),
        _since(meta.get("creationTimestamp"), now),
        _selector_text(spec.get("selector")),
    ]


_SERVICE_COLUMNS: Final = [
    _name_column(),
    _column("Type", description="type determines how the Service is exposed."),
    _column(
        "Cluster-IP",
        description="clusterIP is the IP address of the service and is usually assigned randomly.",
    ),
    _column(
        "External-IP",
        description="externalIPs is a list of IP addresses for which nodes in the cluster will also accept traffic for this service.",
    ),
    _column("Port(s)", description="The list of ports that are exposed by this service."),
    _age_column(),
    _column(
        "Selector",
        description="Route service traffic to pods with label keys and values matching this selector.",
        priority=1,
    ),
]


def _event_row(event: Mapping[str, Any], now: datetime.datetime) -> list[Any]:
    meta = _meta(event)
    # events.k8s.io/v1 names the same fields differently (regarding, note, deprecated*).
    involved = event.get("involvedObject") or event.get("regarding") or {}
    source = event.get("source") or event.get("deprecatedSource") or {}
    first = (
        event.get("firstTimestamp")
        or event.get("deprecatedFirstTimestamp")
        or event.get("eventTime")
    )
    last = (
        event.get("lastTimestamp") or event.get("deprecatedLastTimestamp") or event.get("eventTime")
    )
    series = event.get("series") or {}
    if series.get("lastObservedTime"):
        last = series["lastObservedTime"]
    count = event.get("count") or event.get("deprecatedCount") or series.get("count") or 1
    source_text = ", ".join(
        p
        for p in (
            source.get("component") or event.get("reportingController") or "",
            source.get("host") or "",
        )
        if p
    )
    kind = str(involved.get("kind") or "").lower()
    return [
        _since(last, now),
        event.get("type") or "",
        event.get("reason") or "",
        f"{kind}/{involved.get('name', '')}",
        involved.get("fieldPath") or "",
        source_text,
        (event.get("message") or event.get("note") or "").strip(),
        _since(first, now),
        int(count),
        meta.get("name", ""),
    ]


_EVENT_COLUMNS: Final = [
    _column("Last Seen", description="Last Seen"),
    _column(
        "Type",
        description="Type of this event (Normal, Warning), new types could be added in the future",
    ),
    _column(
        "Reason",
        description="This should be a short, machine understandable string that gives the reason for the transition into the object's current status.",
    ),
    _column("Object", description="The object that this event is about."),
    _column("Subobject", description="The field of the object this event is about.", priority=1),
    _column("Source", description="The component reporting this event.", priority=1),
    _column("Message", description="A human-readable description of the status of this operation."),
    _column("First Seen", description="First Seen", priority=1),
    _column("Count", description="The number of times this event has occurred.", priority=1),
    _column("Name", description=NAME_DESCRIPTION, priority=1, fmt="name"),
]


def _owner_controller(obj: Mapping[str, Any]) -> str:
    for ref in _meta(obj).get("ownerReferences") or []:
        if ref.get("controller"):
            api_version = str(ref.get("apiVersion") or "")
            group = api_version.split("/")[0] if "/" in api_version else ""
            kind = str(ref.get("kind") or "").lower()
            return f"{kind}.{group}/{ref.get('name')}" if group else f"{kind}/{ref.get('name')}"
    return "<none>"


_Printer = tuple[list[dict[str, Any]], Callable[[Mapping[str, Any], datetime.datetime], list[Any]]]

_BUILTIN_PRINTERS: Final[dict[str, _Printer]] = {
    "Service": (_SERVICE_COLUMNS, _service_row),
    "Event": (_EVENT_COLUMNS, _event_row),
    "Namespace": (
        [
            _name_column(),
            _column("Status", description="The status of the namespace"),
            _age_column(),
        ],
        lambda o, now: [
            _meta(o).get("name", ""),
            (o.get("status") or {}).get("phase") or "",
            _since(_meta(o).get("creationTimestamp"), now),
        ],
    ),
    "ConfigMap": (
        [
            _name_column(),
            _column("Data", "string", "Data contains the configuration data"),
            _age_column(),
        ],
        lambda o, now: [
            _meta(o).get("name", ""),
            len(o.get("data") or {}) + len(o.get("binaryData") or {}),
            _since(_meta(o).get("creationTimestamp"), now),
        ],
    ),
    "Secret": (
        [
            _name_column(),
            _column("Type", description="The type of the secret"),
            _column("Data", "string", "The number of entries in the secret"),
            _age_column(),
        ],
        lambda o, now: [
            _meta(o).get("name", ""),
            o.get("type") or "Opaque",
            len(o.get("data") or {}),
            _since(_meta(o).get("creationTimestamp"), now),
        ],
    ),
    "Lease": (
        [_name_column(), _column("Holder", description="The holder of the lease"), _age_column()],
        lambda o, now: [
            _meta(o).get("name", ""),
            (o.get("spec") or {}).get("holderIdentity") or "",
            _since(_meta(o).get("creationTimestamp"), now),
        ],
    ),
    "ControllerRevision": (
        [
            _name_column(),
            _column("Controller", description="Controller of the object"),
            _column(
                "Revision",
                "integer",
                "Revision indicates the revision of the state represented by Data.",
            ),
            _age_column(),
        ],
        lambda o, now: [
            _meta(o).get("name", ""),
            _owner_controller(o),
            o.get("revision"),
            _since(_meta(o).get("creationTimestamp"), now),
        ],
    ),
    "CustomResourceDefinition": (
        [_name_column(), _column("Created At", "date", CREATION_DESCRIPTION)],
        lambda o, now: [_meta(o).get("name", ""), _meta(o).get("creationTimestamp")],
    ),
}

# Every built-in kubesim serves has a printer above, so an unknown kind is a custom resource of a
# CRD without additionalPrinterColumns: the apiserver then shows Name and an Age column.
_CRD_DEFAULT_COLUMNS: Final = [
    PrinterColumn("Age", "date", ".metadata.creationTimestamp", "", CREATION_DESCRIPTION)
]


# --------------------------------------------------------------------------------------------
# Table rendering
# --------------------------------------------------------------------------------------------


def partial_object_metadata(obj: Mapping[str, Any]) -> dict[str, Any]:
    """The ``PartialObjectMetadata`` the apiserver embeds for ``includeObject=Metadata``."""
    return {
        "kind": "PartialObjectMetadata",
        "apiVersion": "meta.k8s.io/v1",
        "metadata": dict(_meta(obj)),
    }


def _row_object(obj: Mapping[str, Any], include_object: str) -> dict[str, Any] | None:
    if include_object == "None":
        return None
    if include_object == "Object":
        return dict(obj)
    return partial_object_metadata(obj)


def render_table(
    objects: list[dict[str, Any]],
    columns: list[PrinterColumn] | None,
    *,
    kind_hint: str,
    include_object: str = "Metadata",
    now: datetime.datetime | None = None,
) -> dict[str, Any]:
    """A ``meta.k8s.io/v1`` Table of ``objects``.

    ``columns`` are a CRD's printer columns; ``None`` selects the built-in printer of
    ``kind_hint``, and for a kind without one (a CRD that declared no columns) or ``[]`` the
    apiserver's default Name + Age columns.
    ``include_object`` is the request's ``includeObject`` (``Object``, ``Metadata`` (default),
    ``None``). The caller fills ``metadata.resourceVersion`` and ``metadata.continue``.
    """
    moment = now or datetime.datetime.now(datetime.UTC)
    rows: list[dict[str, Any]] = []
    if columns is None and kind_hint != "Pod" and kind_hint not in _BUILTIN_PRINTERS:
        columns = []
    if columns is not None:
        effective = columns or _CRD_DEFAULT_COLUMNS
        definitions = [_name_column(), *(c.definition() for c in effective)]
        paths = [JsonPath(c.json_path) for c in effective]
        for obj in objects:
            cells: list[Any] = [_meta(obj).get("name", "")]
            for column, path in zip(effective, paths, strict=True):
                found = path.find(obj)
                if not found:
                    cells.append(None)
                elif column.type == "string":
                    cells.append(_print_value(found[0]))
                else:
                    cells.append(_cell_for_json_value(column.type, found[0], moment))
            rows.append(_row(cells, obj, include_object))
    elif kind_hint == "Pod":
        definitions = [dict(c) for c in _POD_COLUMNS]
        for obj in objects:
            cells, conditions = _pod_row(obj, moment)
            row = _row(cells, obj, include_object)
            if conditions:
                row["conditions"] = conditions
            rows.append(row)
    else:
        printer_columns, printer = _BUILTIN_PRINTERS[kind_hint]
        definitions = [dict(c) for c in printer_columns]
        rows = [_row(printer(obj, moment), obj, include_object) for obj in objects]
    return {
        "kind": "Table",
        "apiVersion": "meta.k8s.io/v1",
        "metadata": {},
        "columnDefinitions": definitions,
        "rows": rows,
    }


def _row(cells: list[Any], obj: Mapping[str, Any], include_object: str) -> dict[str, Any]:
    row: dict[str, Any] = {"cells": cells}
    embedded = _row_object(obj, include_object)
    if embedded is not None:
        row["object"] = embedded
    return row
