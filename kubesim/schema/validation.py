"""Object metadata validation with kube-apiserver's limits and messages.

Why this exists: the operator meets these limits in production (names, label syntax, the 256 KiB
annotation budget, hostnames for pods), so kubesim must refuse the same objects with the same
422 causes instead of silently storing what a real cluster would reject.
Docs: https://kubernetes.io/docs/concepts/overview/working-with-objects/names/ and
https://kubernetes.io/docs/concepts/overview/working-with-objects/labels/#syntax-and-character-set
"""

from __future__ import annotations

import re
from typing import Any, Final

from kubesim.wire.errors import StatusCause, field_invalid, field_required, field_too_long

__all__ = [
    "ANNOTATIONS_MAX_BYTES",
    "dns1035_label_errors",
    "dns1123_label_errors",
    "dns1123_subdomain_errors",
    "validate_metadata",
]

ANNOTATIONS_MAX_BYTES: Final = 256 * 1024

_LABEL_RE: Final = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
_SUBDOMAIN_RE: Final = re.compile(
    r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$"
)
_DNS1035_RE: Final = re.compile(r"^[a-z]([-a-z0-9]*[a-z0-9])?$")
_QUALIFIED_NAME_RE: Final = re.compile(r"^([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]$")
_LABEL_VALUE_RE: Final = re.compile(r"^(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?$")

_LABEL_MSG: Final = (
    "a lowercase RFC 1123 label must consist of lower case alphanumeric characters or '-', and "
    "must start and end with an alphanumeric character (e.g. 'my-name',  or '123-abc', regex "
    "used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?')"
)
_SUBDOMAIN_MSG: Final = (
    "a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or "
    "'.', and must start and end with an alphanumeric character (e.g. 'example.com', regex used "
    "for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*')"
)
_DNS1035_MSG: Final = (
    "a DNS-1035 label must consist of lower case alphanumeric characters or '-', start with an "
    "alphabetic character, and end with an alphanumeric character (e.g. 'my-name',  or "
    "'abc-123', regex used for validation is '[a-z]([-a-z0-9]*[a-z0-9])?')"
)


def dns1123_label_errors(value: str) -> list[str]:
    errors = []
    if len(value) > 63:
        errors.append("must be no more than 63 characters")
    if not _LABEL_RE.match(value):
        errors.append(_LABEL_MSG)
    return errors


def dns1123_subdomain_errors(value: str) -> list[str]:
    errors = []
    if len(value) > 253:
        errors.append("must be no more than 253 characters")
    if not _SUBDOMAIN_RE.match(value):
        errors.append(_SUBDOMAIN_MSG)
    return errors


def dns1035_label_errors(value: str) -> list[str]:
    errors = []
    if len(value) > 63:
        errors.append("must be no more than 63 characters")
    if not _DNS1035_RE.match(value):
        errors.append(_DNS1035_MSG)
    return errors


def _qualified_name_errors(key: str) -> list[str]:
    prefix, slash, name = key.rpartition("/")
    errors: list[str] = []
    if slash:
        if not prefix:
            errors.append("prefix part must be non-empty")
        else:
            errors.extend("prefix part " + e for e in dns1123_subdomain_errors(prefix))
    if not name:
        errors.append("name part must be non-empty")
    elif len(name) > 63:
        errors.append("name part must be no more than 63 characters")
    if name and not _QUALIFIED_NAME_RE.match(name):
        errors.append(
            "name part must consist of alphanumeric characters, '-', '_' or '.', and must start "
            "and end with an alphanumeric character (e.g. 'MyName',  or 'my.name',  or "
            "'123-abc', regex used for validation is '([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]')"
        )
    return errors


def validate_metadata(
    meta: dict[str, Any], *, name_rule: str = "subdomain", namespaced: bool = True
) -> list[StatusCause]:
    """Causes for invalid ``metadata`` (name syntax, labels, annotations size)."""
    causes: list[StatusCause] = []
    name = meta.get("name")
    if not name:
        causes.append(field_required("metadata.name", "name or generateName is required"))
    elif not isinstance(name, str):
        causes.append(field_invalid("metadata.name", name, "must be a string"))
    else:
        checker = {
            "subdomain": dns1123_subdomain_errors,
            "label": dns1123_label_errors,
            "dns1035": dns1035_label_errors,
        }[name_rule]
        for err in checker(name):
            causes.append(field_invalid("metadata.name", name, err))
    if namespaced and not meta.get("namespace"):
        causes.append(field_required("metadata.namespace", ""))
    labels = meta.get("labels") or {}
    if not isinstance(labels, dict):
        causes.append(field_invalid("metadata.labels", labels, "must be a map of strings"))
    else:
        for key, value in labels.items():
            for err in _qualified_name_errors(key):
                causes.append(field_invalid("metadata.labels", key, err))
            if not isinstance(value, str):
                causes.append(field_invalid(f"metadata.labels[{key}]", value, "must be a string"))
                continue
            if len(value) > 63:
                causes.append(
                    field_invalid("metadata.labels", value, "must be no more than 63 characters")
                )
            if not _LABEL_VALUE_RE.match(value):
                causes.append(
                    field_invalid(
                        "metadata.labels",
                        value,
                        "a valid label must be an empty string or consist of alphanumeric "
                        "characters, '-', '_' or '.', and must start and end with an alphanumeric "
                        "character (e.g. 'MyValue',  or 'my_value',  or '12345', regex used for "
                        "validation is '(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?')",
                    )
                )
    annotations = meta.get("annotations") or {}
    if not isinstance(annotations, dict):
        causes.append(
            field_invalid("metadata.annotations", annotations, "must be a map of strings")
        )
    else:
        total = 0
        for key, value in annotations.items():
            for err in _qualified_name_errors(str(key)):
                causes.append(field_invalid("metadata.annotations", key, err))
            total += len(str(key)) + len(str(value))
        if total > ANNOTATIONS_MAX_BYTES:
            causes.append(field_too_long("metadata.annotations", ANNOTATIONS_MAX_BYTES))
    causes.extend(_owner_reference_causes(meta.get("ownerReferences")))
    finalizers = meta.get("finalizers") or []
    for i, fin in enumerate(finalizers):
        if not isinstance(fin, str) or ("/" not in fin and fin not in _STANDARD_FINALIZERS):
            # kube-apiserver warns (not fails) on unqualified finalizer names since 1.27.
            continue
        for err in _qualified_name_errors(fin):
            causes.append(field_invalid(f"metadata.finalizers[{i}]", fin, err))
    return causes


_STANDARD_FINALIZERS: Final = frozenset({"orphan", "foregroundDeletion", "kubernetes"})


def _owner_reference_causes(refs: Any) -> list[StatusCause]:
    """``ValidateOwnerReferences``: every field set, at most one controller."""
    if refs is None:
        return []
    if not isinstance(refs, list):
        return [field_invalid("metadata.ownerReferences", refs, "must be a list")]
    causes: list[StatusCause] = []
    controllers: list[str] = []
    for ref in refs:
        if not isinstance(ref, dict):
            causes.append(field_invalid("metadata.ownerReferences", ref, "must be an object"))
            continue
        for key, what in (
            ("apiVersion", "version"),
            ("kind", "kind"),
            ("name", "name"),
            ("uid", "uid"),
        ):
            if not ref.get(key):
                causes.append(
                    field_invalid(
                        f"metadata.ownerReferences.{key}",
                        ref.get(key, ""),
                        f"{what} must not be empty",
                    )
                )
        if ref.get("controller"):
            controllers.append(f"{ref.get('kind')}/{ref.get('name')}")
    if len(controllers) > 1:
        causes.append(
            field_invalid(
                "metadata.ownerReferences",
                refs,
                'Only one reference can have Controller set to true. Found "true" in references for '
                + " and ".join(controllers),
            )
        )
    return causes
