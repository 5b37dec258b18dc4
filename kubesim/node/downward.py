"""Downward-API volume files and environment, written the way the kubelet writes them.

Why this exists: ``model-runtime`` reads its desired bundle from a downward-API file of the pod's
annotations and relies on the kubelet's format and update protocol: ``key="value"`` lines with
Go ``strconv.Quote`` quoting, sorted by key, swapped atomically through a ``..data`` symlink so
a reader never sees half a file. Environment variables from ``fieldRef`` and ``$(VAR)``
expansion in command and args follow the kubelet's rules too. Pure functions plus one atomic
directory writer.
Docs: https://kubernetes.io/docs/concepts/workloads/pods/downward-api/ and
https://kubernetes.io/docs/tasks/inject-data-application/define-interdependent-environment-variables/
"""

from __future__ import annotations

import os
import re
import shutil
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

__all__ = [
    "expand_vars",
    "field_ref_value",
    "format_map_file",
    "go_quote",
    "write_atomic_dir",
]

_FIELD_KEY = re.compile(r"^metadata\.(annotations|labels)\['(.+)'\]$")


#: strconv.Quote's short escapes.
_GO_ESCAPES = {
    '"': '\\"',
    "\\": "\\\\",
    "\a": "\\a",
    "\b": "\\b",
    "\f": "\\f",
    "\n": "\\n",
    "\r": "\\r",
    "\t": "\\t",
    "\v": "\\v",
}


def go_quote(text: str) -> str:
    """Go's ``strconv.Quote``: printable runes as is, the rest escaped."""
    out = ['"']
    for ch in text:
        code = ord(ch)
        escaped = _GO_ESCAPES.get(ch)
        if escaped is not None:
            out.append(escaped)
        elif code < 0x20 or code == 0x7F:
            out.append(f"\\x{code:02x}")
        elif ch.isprintable() or ch == " ":
            out.append(ch)
        elif code <= 0xFFFF:
            out.append(f"\\u{code:04x}")
        else:
            out.append(f"\\U{code:08x}")
    out.append('"')
    return "".join(out)


def format_map_file(values: Mapping[str, str]) -> str:
    """The kubelet's ``formatMap``: sorted ``key="value"`` lines joined by newlines."""
    return "\n".join(f"{k}={go_quote(str(values[k]))}" for k in sorted(values))


def field_ref_value(pod: Mapping[str, Any], field_path: str) -> str | None:
    meta = pod.get("metadata") or {}
    status = pod.get("status") or {}
    spec = pod.get("spec") or {}
    simple = {
        "metadata.name": meta.get("name"),
        "metadata.namespace": meta.get("namespace"),
        "metadata.uid": meta.get("uid"),
        "spec.nodeName": spec.get("nodeName"),
        "spec.serviceAccountName": spec.get("serviceAccountName"),
        "status.podIP": status.get("podIP"),
        "status.hostIP": status.get("hostIP"),
    }
    if field_path in simple:
        value = simple[field_path]
        return None if value is None else str(value)
    if field_path in ("metadata.annotations", "metadata.labels"):
        key = field_path.split(".")[1]
        return format_map_file(meta.get(key) or {})
    match = _FIELD_KEY.match(field_path)
    if match:
        return str((meta.get(match.group(1)) or {}).get(match.group(2), ""))
    return None


def expand_vars(text: str, env: Mapping[str, str]) -> str:
    """``$(VAR)`` from ``env``; ``$$(VAR)`` stays literal ``$(VAR)``; unknown refs stay as is."""
    out: list[str] = []
    i = 0
    while i < len(text):
        if text.startswith("$$", i):
            out.append("$")
            i += 2
            continue
        if text.startswith("$(", i):
            end = text.find(")", i + 2)
            if end != -1:
                name = text[i + 2 : end]
                if name in env:
                    out.append(env[name])
                else:
                    out.append(text[i : end + 1])
                i = end + 1
                continue
        out.append(text[i])
        i += 1
    return "".join(out)


def write_atomic_dir(target: Path, files: Mapping[str, str]) -> None:
    """Write ``files`` under ``target`` like the kubelet's AtomicWriter.

    Files live in a fresh ``..<timestamp>`` directory; ``..data`` is swapped to point at it with
    a rename (atomic), and each visible name is a symlink through ``..data``.
    """
    target.mkdir(parents=True, exist_ok=True)
    stamp = f"..{time.strftime('%Y_%m_%d_%H_%M_%S')}.{time.monotonic_ns()}"
    fresh = target / stamp
    fresh.mkdir()
    for rel, content in files.items():
        path = fresh / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(content)
    data = target / "..data"
    old = os.readlink(data) if data.is_symlink() else None
    tmp_link = target / "..data_tmp"
    if tmp_link.is_symlink():
        tmp_link.unlink()
    os.symlink(stamp, tmp_link)
    os.replace(tmp_link, data)
    for rel in files:
        top = rel.split("/", 1)[0]
        link = target / top
        if not link.is_symlink():
            os.symlink(f"..data/{top}", link)
    if old and old != stamp:
        shutil.rmtree(target / old, ignore_errors=True)
