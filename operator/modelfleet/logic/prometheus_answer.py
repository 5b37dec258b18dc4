"""A Prometheus instant-query answer, parsed into typed samples or refused with the reason.

`GET /api/v1/query` answers `{"status": "success", "data": {"resultType": "vector", "result":
[{"metric": {...}, "value": [<unix time>, "<float>"]}]}}` or `{"status": "error", "errorType",
"error"}`. Everything else (another result type, a value that is not a float string, a label
that is not a string) is refused here, once, so the monitoring status and the analysis verdict
only ever see well-formed samples. Labels are kept: an analysis names the series that failed
(unlike Argo Rollouts, which reads `result[0]`). Non-finite values (NaN, +Inf, -Inf) are valid
samples: what they mean is the caller's decision.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import Any


class AnswerProblem(StrEnum):
    """Why an answer gave no samples."""

    QUERY_ERROR = "QueryError"
    """Prometheus refused the query (`status: error`: bad PromQL, timeout, too many samples)."""
    MALFORMED = "Malformed"
    """Not the shape of an instant-query answer."""
    WRONG_RESULT_TYPE = "WrongResultType"
    """A matrix or a string where a vector or a scalar was expected."""


class AnswerRefused(Exception):
    def __init__(self, problem: AnswerProblem, message: str) -> None:
        super().__init__(message)
        self.problem = problem
        self.message = message


@dataclass(frozen=True)
class Sample:
    """One series of an instant vector (a scalar answer is one sample without labels)."""

    labels: tuple[tuple[str, str], ...]  # sorted by name: hashable and comparable
    value: float
    raw: str  # the value as Prometheus wrote it ("0.31", "NaN", "+Inf")

    def label(self, name: str) -> str:
        return dict(self.labels).get(name, "")


def sample(labels: Mapping[str, str], raw: str) -> Sample:
    """A sample from labels and Prometheus' text value (`float` reads NaN, +Inf, -Inf)."""
    return Sample(tuple(sorted(labels.items())), float(raw), raw)


def parse_answer(body: Any) -> tuple[Sample, ...]:
    """The samples of an instant query's JSON answer; raises AnswerRefused."""
    if not isinstance(body, Mapping):
        raise AnswerRefused(AnswerProblem.MALFORMED, f"answer is not an object: {_short(body)}")
    status = body.get("status")
    if status == "error":
        kind = body.get("errorType")
        error = body.get("error")
        detail = f"{kind}: {error}" if kind else str(error)
        raise AnswerRefused(AnswerProblem.QUERY_ERROR, f"Prometheus refused the query: {detail}")
    if status != "success":
        raise AnswerRefused(AnswerProblem.MALFORMED, f"answer status is {_short(status)}")
    data = body.get("data")
    if not isinstance(data, Mapping):
        raise AnswerRefused(AnswerProblem.MALFORMED, "answer has no data object")
    result_type, result = data.get("resultType"), data.get("result")
    if result_type == "scalar":
        return (_value({}, result),)
    if result_type != "vector":
        raise AnswerRefused(
            AnswerProblem.WRONG_RESULT_TYPE,
            f"answer is a {_short(result_type)}, not an instant vector",
        )
    if not isinstance(result, list):
        raise AnswerRefused(AnswerProblem.MALFORMED, "vector result is not a list")
    samples: list[Sample] = []
    for item in result:
        if not isinstance(item, Mapping):
            raise AnswerRefused(AnswerProblem.MALFORMED, f"series is not an object: {_short(item)}")
        metric = item.get("metric", {})
        if not isinstance(metric, Mapping) or not all(
            isinstance(k, str) and isinstance(v, str) for k, v in metric.items()
        ):
            raise AnswerRefused(
                AnswerProblem.MALFORMED, f"labels are not strings: {_short(metric)}"
            )
        samples.append(_value(metric, item.get("value")))
    return tuple(samples)


def _value(labels: Mapping[str, str], pair: Any) -> Sample:
    if not isinstance(pair, list) or len(pair) != 2 or not isinstance(pair[1], str):
        raise AnswerRefused(
            AnswerProblem.MALFORMED, f'value is not [time, "number"]: {_short(pair)}'
        )
    try:
        return sample(labels, pair[1])
    except ValueError:
        raise AnswerRefused(
            AnswerProblem.MALFORMED, f"value {_short(pair[1])} is not a number"
        ) from None


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 80 else text[:77] + "..."
