"""Errors shaped exactly like kube-apiserver's ``metav1.Status`` failures.

Why this exists: clients branch on the ``reason``, ``code`` and ``details`` of a failed
request (kopf retries on 409/429/5xx, ``kubectl`` prints ``message`` verbatim, the
``kubernetes`` client raises ``ApiException`` carrying the body). kubesim must therefore answer
with the same Status body the apiserver sends, built in one place.

The message formats follow ``k8s.io/apimachinery/pkg/api/errors/errors.go`` (``NewNotFound``,
``NewConflict``, ``NewInvalid`` ...) and ``k8s.io/apimachinery/pkg/util/validation/field/errors.go``
(``Error.ErrorBody`` for the per-field cause messages).
Docs: https://kubernetes.io/docs/reference/using-api/api-concepts/#api-response-status-codes
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from typing import Any, Final

__all__ = [
    "ApiError",
    "StatusCause",
    "field_duplicate",
    "field_forbidden",
    "field_invalid",
    "field_not_supported",
    "field_required",
    "field_too_long",
    "field_too_many",
    "field_type_invalid",
    "format_bad_value",
    "qualified",
]

# Cause reasons (metav1.CauseType values used by field.ErrorType).
FIELD_VALUE_REQUIRED: Final = "FieldValueRequired"
FIELD_VALUE_INVALID: Final = "FieldValueInvalid"
FIELD_VALUE_NOT_SUPPORTED: Final = "FieldValueNotSupported"
FIELD_VALUE_DUPLICATE: Final = "FieldValueDuplicate"
FIELD_VALUE_TOO_LONG: Final = "FieldValueTooLong"
FIELD_VALUE_TOO_MANY: Final = "FieldValueTooMany"
FIELD_VALUE_TYPE_INVALID: Final = "FieldValueTypeInvalid"
FIELD_VALUE_FORBIDDEN: Final = "FieldValueForbidden"
FIELD_VALUE_NOT_FOUND: Final = "FieldValueNotFound"

# The human text of each cause reason (field.ErrorType.String()).
_TYPE_TEXT: Final[dict[str, str]] = {
    FIELD_VALUE_REQUIRED: "Required value",
    FIELD_VALUE_INVALID: "Invalid value",
    FIELD_VALUE_NOT_SUPPORTED: "Unsupported value",
    FIELD_VALUE_DUPLICATE: "Duplicate value",
    FIELD_VALUE_TOO_LONG: "Too long",
    FIELD_VALUE_TOO_MANY: "Too many",
    FIELD_VALUE_TYPE_INVALID: "Invalid value",
    FIELD_VALUE_FORBIDDEN: "Forbidden",
    FIELD_VALUE_NOT_FOUND: "Not found",
}


class _Omit:
    """Marker for "no bad value to print" (field.omitValue in apimachinery)."""

    def __repr__(self) -> str:
        return "<omit>"


OMIT: Final = _Omit()


@dataclass(frozen=True)
class StatusCause:
    """One ``details.causes[]`` entry: ``reason`` is the cause type, ``field`` the JSON path."""

    reason: str
    message: str
    field: str

    def to_dict(self) -> dict[str, str]:
        # metav1.StatusCause serialises the reason under the key "reason" and omits empty ones.
        out: dict[str, str] = {}
        if self.reason:
            out["reason"] = self.reason
        if self.message:
            out["message"] = self.message
        if self.field:
            out["field"] = self.field
        return out

    def error_text(self) -> str:
        """``field.Error.Error()``: ``<field>: <body>`` (what ``invalid`` aggregates)."""
        return f"{self.field}: {self.message}" if self.field else self.message


def format_bad_value(value: Any) -> str:
    """Render a bad value the way ``field.Error.ErrorBody`` does.

    Go prints numbers and booleans bare (``5``, ``true``), strings quoted (``"x"``), ``nil`` as
    ``null`` and everything else (maps, slices) as JSON (``{"id":"w1"}``).
    """
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        if math.isfinite(value) and value == int(value) and abs(value) < 1e21:
            return str(int(value))
        return repr(value)
    if isinstance(value, str):
        return json.dumps(value, ensure_ascii=False)
    try:
        return json.dumps(value, separators=(",", ":"), ensure_ascii=False, sort_keys=True)
    except (TypeError, ValueError):
        return repr(value)


def _body(reason: str, value: Any, detail: str) -> str:
    text = _TYPE_TEXT.get(reason, reason)
    # Required, Forbidden, TooLong and Internal never print the bad value in apimachinery.
    if (
        reason in (FIELD_VALUE_REQUIRED, FIELD_VALUE_FORBIDDEN, FIELD_VALUE_TOO_LONG)
        or value is OMIT
    ):
        body = text
    else:
        body = f"{text}: {format_bad_value(value)}"
    if detail:
        body += f": {detail}"
    return body


def field_required(path: str, detail: str = "") -> StatusCause:
    return StatusCause(FIELD_VALUE_REQUIRED, _body(FIELD_VALUE_REQUIRED, OMIT, detail), path)


def field_invalid(path: str, value: Any, detail: str) -> StatusCause:
    return StatusCause(FIELD_VALUE_INVALID, _body(FIELD_VALUE_INVALID, value, detail), path)


def field_type_invalid(path: str, value: Any, detail: str) -> StatusCause:
    return StatusCause(
        FIELD_VALUE_TYPE_INVALID, _body(FIELD_VALUE_TYPE_INVALID, value, detail), path
    )


def field_not_supported(path: str, value: Any, supported: list[Any]) -> StatusCause:
    detail = ""
    if supported:
        # NotSupported quotes fmt.Sprint(v) for every value, numbers included.
        detail = "supported values: " + ", ".join(
            json.dumps(v if isinstance(v, str) else format_bad_value(v), ensure_ascii=False)
            for v in supported
        )
    return StatusCause(
        FIELD_VALUE_NOT_SUPPORTED, _body(FIELD_VALUE_NOT_SUPPORTED, value, detail), path
    )


def field_duplicate(path: str, value: Any) -> StatusCause:
    return StatusCause(FIELD_VALUE_DUPLICATE, _body(FIELD_VALUE_DUPLICATE, value, ""), path)


def field_too_long(path: str, max_length: int) -> StatusCause:
    unit = "byte" if max_length == 1 else "bytes"
    detail = f"may not be more than {max_length} {unit}" if max_length >= 0 else "value is too long"
    return StatusCause(FIELD_VALUE_TOO_LONG, _body(FIELD_VALUE_TOO_LONG, OMIT, detail), path)


def field_too_many(path: str, actual: int, max_items: int) -> StatusCause:
    unit = "item" if max_items == 1 else "items"
    detail = f"must have at most {max_items} {unit}" if max_items >= 0 else "has too many items"
    return StatusCause(FIELD_VALUE_TOO_MANY, _body(FIELD_VALUE_TOO_MANY, actual, detail), path)


def field_forbidden(path: str, detail: str) -> StatusCause:
    return StatusCause(FIELD_VALUE_FORBIDDEN, _body(FIELD_VALUE_FORBIDDEN, OMIT, detail), path)


def qualified(name: str, group: str) -> str:
    """``schema.GroupResource.String()`` / ``GroupKind.String()``: ``pods``, ``widgets.example.com``."""
    return f"{name}.{group}" if group else name


@dataclass(eq=False)
class ApiError(Exception):
    """A failed API call; ``to_status()`` is the body kube-apiserver would send."""

    code: int
    reason: str
    message: str
    details: dict[str, Any] | None = None
    causes: list[StatusCause] = field(default_factory=list)
    retry_after: int | None = None

    def __post_init__(self) -> None:
        Exception.__init__(self, self.message)

    def __str__(self) -> str:
        return self.message

    def to_status(self) -> dict[str, Any]:
        status: dict[str, Any] = {
            "kind": "Status",
            "apiVersion": "v1",
            "metadata": {},
            "status": "Failure",
            "message": self.message,
            "reason": self.reason,
        }
        details: dict[str, Any] = {}
        for key in ("name", "group", "kind", "uid"):
            value = (self.details or {}).get(key)
            if value:
                details[key] = value
        if self.causes:
            details["causes"] = [c.to_dict() for c in self.causes]
        if self.retry_after:
            details["retryAfterSeconds"] = self.retry_after
        if details or self.details is not None:
            status["details"] = details
        status["code"] = self.code
        return status

    # -- constructors mirroring k8s.io/apimachinery/pkg/api/errors -------------------------------

    @classmethod
    def not_found(cls, group: str, resource: str, name: str) -> ApiError:
        return cls(
            404,
            "NotFound",
            f"{qualified(resource, group)} {_quote(name)} not found",
            {"name": name, "group": group, "kind": resource},
        )

    @classmethod
    def resource_not_found(cls) -> ApiError:
        """Unknown path or resource type (``NewGenericServerResponse(404, ...)``)."""
        return cls(404, "NotFound", "the server could not find the requested resource", {})

    @classmethod
    def already_exists(cls, group: str, resource: str, name: str) -> ApiError:
        return cls(
            409,
            "AlreadyExists",
            f"{qualified(resource, group)} {_quote(name)} already exists",
            {"name": name, "group": group, "kind": resource},
        )

    @classmethod
    def conflict(
        cls,
        group: str,
        resource: str,
        name: str,
        detail: str = "the object has been modified; please apply your changes to the latest version and try again",
    ) -> ApiError:
        return cls(
            409,
            "Conflict",
            f"Operation cannot be fulfilled on {qualified(resource, group)} {_quote(name)}: {detail}",
            {"name": name, "group": group, "kind": resource},
        )

    @classmethod
    def invalid(cls, group: str, kind: str, name: str, causes: list[StatusCause]) -> ApiError:
        """422 Invalid; the message aggregates causes like ``utilerrors.NewAggregate``.

        One cause prints bare, several print as ``[a, b]``; identical messages are printed once.
        """
        texts: list[str] = []
        for cause in causes:
            text = cause.error_text()
            if text not in texts:
                texts.append(text)
        prefix = f"{qualified(kind, group)} {_quote(name)} is invalid"
        if not texts:
            message = prefix
        elif len(texts) == 1:
            message = f"{prefix}: {texts[0]}"
        else:
            message = f"{prefix}: [{', '.join(texts)}]"
        return cls(
            422, "Invalid", message, {"name": name, "group": group, "kind": kind}, list(causes)
        )

    @classmethod
    def bad_request(cls, message: str) -> ApiError:
        return cls(400, "BadRequest", message)

    @classmethod
    def gone(cls, message: str) -> ApiError:
        return cls(410, "Gone", message)

    @classmethod
    def expired(cls, message: str) -> ApiError:
        """What a watch or list from a compacted resourceVersion gets (``NewResourceExpired``)."""
        return cls(410, "Expired", message)

    @classmethod
    def too_old_resource_version(cls, requested: int, oldest: int) -> ApiError:
        # etcd3 watcher: "too old resource version: %d (%d)"
        return cls.expired(f"too old resource version: {requested} ({oldest})")

    @classmethod
    def method_not_allowed(cls, group: str, resource: str, action: str) -> ApiError:
        return cls(
            405,
            "MethodNotAllowed",
            f"{action} is not supported on resources of kind {_quote(qualified(resource, group))}",
            {"group": group, "kind": resource},
        )

    @classmethod
    def too_many_requests(cls, message: str, retry_after: int) -> ApiError:
        return cls(429, "TooManyRequests", message, {}, [], retry_after)

    @classmethod
    def internal_error(cls, message: str) -> ApiError:
        return cls(
            500,
            "InternalError",
            f"Internal error occurred: {message}",
            {},
            [StatusCause("", message, "")],
        )

    @classmethod
    def unsupported_media_type(cls, content_type: str, accepted: list[str]) -> ApiError:
        # NewUnsupportedMediaType / the negotiation error of apiserver's handlers.
        if content_type:
            message = f"{content_type} is unsupported; accepted media types include: "
        else:
            message = (
                "the body of the request was in an unknown format - accepted media types include: "
            )
        return cls(415, "UnsupportedMediaType", message + ", ".join(accepted))

    @classmethod
    def request_entity_too_large(cls, message: str) -> ApiError:
        return cls(413, "RequestEntityTooLarge", f"Request entity too large: {message}")

    @classmethod
    def forbidden(cls, group: str, resource: str, name: str, message: str) -> ApiError:
        return cls(
            403,
            "Forbidden",
            f"{qualified(resource, group)} {_quote(name)} is forbidden: {message}",
            {"name": name, "group": group, "kind": resource},
        )


def _quote(text: str) -> str:
    """Go's ``%q`` for the plain names we print (JSON quoting matches it for printable text)."""
    return json.dumps(text, ensure_ascii=False)
