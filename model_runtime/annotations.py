"""Read the bundle a pod should serve from its downward-API annotations file.

The kubelet writes `metadata.annotations` as one `key="value"` line per annotation, the value
quoted like Go's strconv.Quote, and swaps the whole file atomically through a `..data` symlink.
Reading the path (which follows the symlink) therefore always sees one complete version.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from runtime_contract import BUNDLE_DIGEST_ANNOTATION, BUNDLE_URI_ANNOTATION

__all__ = [
    "BUNDLE_DIGEST_ANNOTATION",
    "BUNDLE_URI_ANNOTATION",
    "AnnotationsFormatError",
    "DesiredBundle",
    "parse_annotations",
    "read_desired_bundle",
    "unquote_go",
]

_SIMPLE_ESCAPES = {
    "a": "\a",
    "b": "\b",
    "f": "\f",
    "n": "\n",
    "r": "\r",
    "t": "\t",
    "v": "\v",
    "\\": "\\",
    '"': '"',
    "'": "'",
}


class AnnotationsFormatError(ValueError):
    pass


def unquote_go(quoted: str) -> str:
    """Invert Go's strconv.Quote (double-quoted form) for one value."""
    if len(quoted) < 2 or quoted[0] != '"' or quoted[-1] != '"':
        raise AnnotationsFormatError(f"value {quoted[:40]!r} is not a double-quoted Go string")
    body = quoted[1:-1]
    out: list[str] = []
    raw = bytearray()  # \xNN and octal escapes are bytes of UTF-8 text

    def flush_raw() -> None:
        if raw:
            out.append(raw.decode("utf-8", errors="replace"))
            raw.clear()

    i = 0
    while i < len(body):
        char = body[i]
        if char != "\\":
            if char == '"':
                raise AnnotationsFormatError(f"unescaped quote inside {quoted[:40]!r}")
            flush_raw()
            out.append(char)
            i += 1
            continue
        if i + 1 >= len(body):
            raise AnnotationsFormatError(f"dangling backslash in {quoted[:40]!r}")
        code = body[i + 1]
        if code in _SIMPLE_ESCAPES:
            flush_raw()
            out.append(_SIMPLE_ESCAPES[code])
            i += 2
        elif code == "x":
            raw.append(int(body[i + 2 : i + 4], 16))
            i += 4
        elif code in "01234567":
            raw.append(int(body[i + 1 : i + 4], 8))
            i += 4
        elif code in "uU":
            width = 4 if code == "u" else 8
            flush_raw()
            out.append(chr(int(body[i + 2 : i + 2 + width], 16)))
            i += 2 + width
        else:
            raise AnnotationsFormatError(f"unknown escape \\{code} in {quoted[:40]!r}")
    flush_raw()
    return "".join(out)


def parse_annotations(text: str) -> dict[str, str]:
    """`key="value"` lines to a dict; blank lines are skipped, anything else is an error."""
    annotations: dict[str, str] = {}
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        key, sep, value = line.partition("=")
        if not sep or not key:
            raise AnnotationsFormatError(f'line {number} is not key="value": {line[:60]!r}')
        try:
            annotations[key] = unquote_go(value)
        except (AnnotationsFormatError, ValueError) as exc:
            raise AnnotationsFormatError(f"line {number} ({key}): {exc}") from exc
    return annotations


@dataclass(frozen=True)
class DesiredBundle:
    uri: str | None
    digest: str | None


def read_desired_bundle(path: Path) -> tuple[bytes, DesiredBundle]:
    """The raw file (to detect changes) and the bundle it asks for."""
    raw = path.read_bytes()
    annotations = parse_annotations(raw.decode("utf-8", errors="replace"))
    return raw, DesiredBundle(
        uri=annotations.get(BUNDLE_URI_ANNOTATION) or None,
        digest=annotations.get(BUNDLE_DIGEST_ANNOTATION) or None,
    )
