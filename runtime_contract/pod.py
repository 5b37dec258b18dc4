"""What a well pod's object says about its bundle: two annotations and one readiness gate
(or, with bundleConfirmation ReadinessProbe, the runtime's readiness probe).

The operator writes the annotations (which bundle the pod should serve) and the gate condition
(which bundle the runtime confirmed it serves, or why it refused it); the runtime reads the
annotations through its downward-API file. The gate's message names the bundle, so what a pod
serves is visible in the API and survives an operator restart: `serving <digest> from <uri>`
when the runtime serves it, `<uri>: <error>` when it refused or could not reach it.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from enum import StrEnum
from typing import Final

from runtime_contract.wire import LoadFailureReason

BUNDLE_URI_ANNOTATION: Final = "modelfleet.dev/bundle-uri"
BUNDLE_DIGEST_ANNOTATION: Final = "modelfleet.dev/bundle-digest"
#: The readiness gate: True only once the runtime reported serving the annotated bundle.
BUNDLE_CONDITION: Final = "modelfleet.dev/bundle-current"
#: The runtime flag that makes its readiness probe mean "serves the annotated bundle" (the
#: settings field `ready_requires_annotated_bundle`): bundleConfirmation ReadinessProbe.
READY_REQUIRES_ANNOTATED_BUNDLE_FLAG: Final = "--ready-requires-annotated-bundle"
#: Kubernetes caps a condition's message; the operator truncates its own to this.
GATE_MESSAGE_LIMIT: Final = 1024

_SERVED = re.compile(r"^serving (?P<digest>\S+) from (?P<uri>\S+)$")
_REFUSED = re.compile(r"^(?P<uri>\S+): ")


class GateReason(StrEnum):
    """The gate condition's reason."""

    BUNDLE_SERVED = "BundleServed"
    BUNDLE_INVALID = "BundleInvalid"
    UNREACHABLE = "Unreachable"

    @classmethod
    def for_failure(cls, reason: LoadFailureReason) -> GateReason:
        """An unreachable source may heal by itself; every other refusal is the bundle's fault."""
        if reason is LoadFailureReason.UNREACHABLE:
            return cls.UNREACHABLE
        return cls.BUNDLE_INVALID


def served_message(digest: str, uri: str) -> str:
    return f"serving {digest} from {uri}"


def refused_message(uri: str, error: str) -> str:
    """Names the bundle first, so the verdict is known to be about this bundle."""
    return f"{uri}: {error}"[:GATE_MESSAGE_LIMIT]


@dataclass(frozen=True)
class GateBundle:
    """The bundle a gate message names: URI and digest when served, URI only when refused."""

    uri: str | None
    digest: str | None


def parse_gate_message(status: str, message: str) -> GateBundle:
    """Invert `served_message` (any status) and `refused_message` (a status other than True).

    URIs and digests hold no whitespace (annotation values the operator renders from templates);
    a message that is neither form names no bundle: GateBundle(None, None).
    """
    served = _SERVED.match(message)
    if served:
        return GateBundle(uri=served["uri"], digest=served["digest"])
    refused = None if status == "True" else _REFUSED.match(message)
    return GateBundle(uri=refused["uri"] if refused else None, digest=None)
