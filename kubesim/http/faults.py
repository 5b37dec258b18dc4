"""Fault injection: the failures a real apiserver produces under load or trouble, on demand.

Why this exists: the operator must survive latency, 500s, API Priority and Fairness throttling
(429 + Retry-After), write conflicts, watch connections that drop and watches that resume from a
compacted resourceVersion (410). Reliability tests need those failures reproducibly, per verb
and resource, without a broken cluster. Rules are plain data, configurable from Python
(``FaultConfig``) and from the CLI (``--fault verb=list,resource=pods,kind=throttle,...``).
Docs: https://kubernetes.io/docs/concepts/cluster-administration/flow-control/ (429) and
https://kubernetes.io/docs/reference/using-api/api-concepts/#410-gone-responses
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from enum import StrEnum

from kubesim.wire.errors import ApiError

__all__ = ["FaultConfig", "FaultKind", "FaultRule", "parse_fault_rule"]


class FaultKind(StrEnum):
    LATENCY = "latency"  # delay the answer by latency_seconds
    ERROR = "error"  # 500 InternalError
    THROTTLE = "throttle"  # 429 TooManyRequests with Retry-After
    CONFLICT = "conflict"  # 409 Conflict (writes)
    DROP_WATCH = "drop-watch"  # close a watch stream after drop_after_seconds
    GONE = "gone"  # a watch answers an ERROR event with 410 Expired at once


@dataclass
class FaultRule:
    kind: FaultKind
    # "*" or a comma-free verb: get, list, watch, create, update, patch, delete, deletecollection.
    verb: str = "*"
    # "*", a plural ("pods") or group-qualified plural ("widgets.example.com").
    resource: str = "*"
    probability: float = 1.0
    latency_seconds: float = 0.0
    retry_after: int = 1
    drop_after_seconds: float = 0.0
    # Inject at most this many times (None: forever).
    times: int | None = None
    injected: int = 0

    def applies(self, verb: str, resource: str) -> bool:
        if self.verb not in ("*", verb):
            return False
        if self.resource not in ("*", resource, resource.split(".", 1)[0]):
            return False
        if self.times is not None and self.injected >= self.times:
            return False
        return random.random() < self.probability


@dataclass
class FaultPlan:
    """What the HTTP layer must do for one request."""

    latency: float = 0.0
    error: ApiError | None = None
    drop_watch_after: float | None = None
    gone: bool = False


@dataclass
class FaultConfig:
    rules: list[FaultRule] = field(default_factory=list)

    def add(self, rule: FaultRule) -> FaultRule:
        self.rules.append(rule)
        return rule

    def clear(self) -> None:
        self.rules.clear()

    def plan(self, verb: str, resource: str, group: str, name: str) -> FaultPlan:
        plan = FaultPlan()
        qualified = f"{resource}.{group}" if group else resource
        for rule in self.rules:
            if not rule.applies(verb, qualified):
                continue
            rule.injected += 1
            if rule.kind is FaultKind.LATENCY:
                plan.latency += rule.latency_seconds
            elif rule.kind is FaultKind.ERROR and plan.error is None:
                plan.error = ApiError.internal_error("kubesim injected fault")
            elif rule.kind is FaultKind.THROTTLE and plan.error is None:
                plan.error = ApiError.too_many_requests(
                    "Too many requests, please try again later.", rule.retry_after
                )
            elif rule.kind is FaultKind.CONFLICT and plan.error is None:
                plan.error = ApiError.conflict(group, resource, name or "unknown")
            elif rule.kind is FaultKind.DROP_WATCH and verb == "watch":
                plan.drop_watch_after = rule.drop_after_seconds
            elif rule.kind is FaultKind.GONE and verb == "watch":
                plan.gone = True
        return plan


def parse_fault_rule(text: str) -> FaultRule:
    """``kind=throttle,verb=list,resource=pods,probability=0.5,retry_after=2`` -> FaultRule."""
    values: dict[str, str] = {}
    for part in text.split(","):
        if not part.strip():
            continue
        key, sep, value = part.partition("=")
        if not sep:
            raise ValueError(f"fault rule part {part!r} is not key=value (in {text!r})")
        values[key.strip()] = value.strip()
    try:
        kind = FaultKind(values.pop("kind"))
    except KeyError:
        raise ValueError(
            f"fault rule {text!r} needs kind=<{'|'.join(k.value for k in FaultKind)}>"
        ) from None
    rule = FaultRule(kind)
    for key, value in values.items():
        if key == "verb":
            rule.verb = value
        elif key == "resource":
            rule.resource = value
        elif key == "probability":
            rule.probability = float(value)
        elif key in ("latency", "latency_seconds"):
            rule.latency_seconds = float(value)
        elif key == "retry_after":
            rule.retry_after = int(value)
        elif key in ("drop_after", "drop_after_seconds"):
            rule.drop_after_seconds = float(value)
        elif key == "times":
            rule.times = int(value)
        else:
            raise ValueError(f"unknown fault rule key {key!r} in {text!r}")
    return rule
