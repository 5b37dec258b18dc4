"""Prometheus instant-query answers: well-formed ones become typed samples with their labels,
everything else is refused with a reason (never a crash, never a silent empty vector)."""

from __future__ import annotations

import math
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from modelfleet.logic.prometheus_answer import AnswerProblem, AnswerRefused, parse_answer

label_names = st.from_regex(r"\A[a-zA-Z_][a-zA-Z0-9_]{0,10}\Z")
label_sets = st.dictionaries(label_names, st.text(max_size=12), max_size=4)
float_texts = st.one_of(
    st.floats(allow_nan=False, allow_infinity=False).map(repr),
    st.sampled_from(["NaN", "+Inf", "-Inf", "0", "1e-05"]),
)


def vector(*series: tuple[dict[str, str], str]) -> dict[str, Any]:
    return {
        "status": "success",
        "data": {
            "resultType": "vector",
            "result": [{"metric": m, "value": [1700000000.123, v]} for m, v in series],
        },
    }


@given(st.lists(st.tuples(label_sets, float_texts), max_size=20))
def test_every_series_becomes_one_sample_with_its_labels_and_value(
    series: list[tuple[dict[str, str], str]],
) -> None:
    samples = parse_answer(vector(*series))
    assert len(samples) == len(series)
    for got, (labels, text) in zip(samples, series, strict=True):
        assert dict(got.labels) == labels
        assert got.raw == text
        expected = float(text)
        assert (math.isnan(got.value) and math.isnan(expected)) or got.value == expected


def test_nan_and_infinities_are_samples_not_errors() -> None:
    samples = parse_answer(vector(({"well": "a"}, "NaN"), ({"well": "b"}, "+Inf")))
    assert math.isnan(samples[0].value)
    assert samples[1].value == math.inf


def test_a_scalar_answer_is_one_unlabelled_sample() -> None:
    (only,) = parse_answer(
        {"status": "success", "data": {"resultType": "scalar", "result": [1.0, "0.5"]}}
    )
    assert only.labels == () and only.value == 0.5


def test_prometheus_error_is_refused_with_its_own_message() -> None:
    with pytest.raises(AnswerRefused) as refused:
        parse_answer(
            {
                "status": "error",
                "errorType": "bad_data",
                "error": 'invalid parameter "query": 1:5: parse error: unexpected <by>',
            }
        )
    assert refused.value.problem is AnswerProblem.QUERY_ERROR
    assert "parse error: unexpected <by>" in refused.value.message


@pytest.mark.parametrize("result_type", ["matrix", "string", None, 3])
def test_another_result_type_is_refused(result_type: Any) -> None:
    with pytest.raises(AnswerRefused) as refused:
        parse_answer({"status": "success", "data": {"resultType": result_type, "result": []}})
    assert refused.value.problem is AnswerProblem.WRONG_RESULT_TYPE


@pytest.mark.parametrize(
    "body",
    [
        None,
        "success",
        [],
        {},
        {"status": "success"},
        {"status": "success", "data": []},
        {"status": "success", "data": {"resultType": "vector", "result": {}}},
        {"status": "success", "data": {"resultType": "vector", "result": ["x"]}},
        vector(({"well": "a"}, "not a number")),
        vector(({"well": "a"}, "")),
        {"status": "success", "data": {"resultType": "vector", "result": [{"metric": {}}]}},
        {
            "status": "success",
            "data": {"resultType": "vector", "result": [{"metric": {}, "value": [1, 0.5]}]},
        },
        {
            "status": "success",
            "data": {"resultType": "vector", "result": [{"metric": {"a": 1}, "value": [1, "1"]}]},
        },
        {"status": "success", "data": {"resultType": "scalar", "result": "1"}},
    ],
)
def test_malformed_answers_are_refused(body: Any) -> None:
    with pytest.raises(AnswerRefused) as refused:
        parse_answer(body)
    assert refused.value.problem in (AnswerProblem.MALFORMED, AnswerProblem.WRONG_RESULT_TYPE)


json_values = st.recursive(
    st.none() | st.booleans() | st.floats() | st.text(max_size=8) | st.integers(),
    lambda children: (
        st.lists(children, max_size=3) | st.dictionaries(st.text(max_size=8), children, max_size=3)
    ),
    max_leaves=12,
)


@given(
    st.one_of(
        json_values,
        st.fixed_dictionaries({"status": st.just("success"), "data": json_values}),
        st.fixed_dictionaries(
            {
                "status": st.just("success"),
                "data": st.fixed_dictionaries(
                    {"resultType": st.sampled_from(["vector", "scalar"]), "result": json_values}
                ),
            }
        ),
    )
)
def test_any_json_gives_samples_or_a_refusal_never_a_crash(body: Any) -> None:
    try:
        samples = parse_answer(body)
    except AnswerRefused as refused:
        assert refused.message
    else:
        assert all(isinstance(s.value, float) for s in samples)
