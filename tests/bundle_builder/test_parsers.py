"""The small parsers of the bundle commands, under hypothesis: NAME=PATH, connection strings,
fleet files."""

from __future__ import annotations

import argparse
from pathlib import Path

import pytest
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st

from bundle_builder.cli import _model_argument
from bundle_builder.errors import PackError
from bundle_builder.fleet import WellEntry, load_fleet
from bundle_builder.packing import PACK_TOLERANCE
from model_runtime.object_stores import _parse_connection_string

names = st.from_regex(r"[a-z0-9][a-z0-9_.-]{0,20}", fullmatch=True)
paths = st.from_regex(r"[A-Za-z0-9_./=-]{1,40}", fullmatch=True)
values = st.from_regex(r"[A-Za-z0-9+/:.=-]{1,60}", fullmatch=True)


@given(names, paths)
def test_model_argument_splits_at_the_first_equals(name: str, path: str) -> None:
    assert _model_argument(f"{name}={path}") == (name, Path(path))


@given(
    st.one_of(
        st.text(max_size=30).filter(lambda t: "=" not in t),  # no '=' at all
        paths.map(lambda p: "=" + p),  # no name
        names.map(lambda n: n + "="),  # no path
    )
)
def test_model_argument_without_name_or_path_is_refused(text: str) -> None:
    with pytest.raises(argparse.ArgumentTypeError, match="expected NAME=PATH"):
        _model_argument(text)


@given(values, values, values)
def test_connection_string_fields_survive_any_order(account: str, key: str, endpoint: str) -> None:
    fields = [f"AccountName={account}", f"AccountKey={key}", f"BlobEndpoint={endpoint}"]
    for ordering in (fields, fields[::-1]):
        parsed = _parse_connection_string(
            "DefaultEndpointsProtocol=http;" + ";".join(ordering) + ";"
        )
        assert parsed == {"account_name": account, "account_key": key, "endpoint": endpoint}


@settings(max_examples=50, deadline=None)
@given(
    st.one_of(
        st.none(),
        st.integers(),
        st.text(max_size=20),
        st.lists(st.integers(), max_size=3),
        st.dictionaries(st.text(max_size=8), st.integers(), max_size=3),
    )
)
def test_any_malformed_fleet_file_is_one_pack_error(
    tmp_path_factory: pytest.TempPathFactory, document: object
) -> None:
    fleet = tmp_path_factory.mktemp("fleet") / "fleet.yaml"
    fleet.write_text(yaml.safe_dump(document))
    with pytest.raises(PackError, match=r"fleet file .*fleet.yaml is invalid"):
        load_fleet(fleet)


@pytest.mark.parametrize(
    ("document", "problem"),
    [
        ({"version": "1", "wells": ["w"], "tolerance": 0}, r"tolerance: Expected `float` > 0.0"),
        ({"version": "1", "wells": ["w", {"wel": "x"}]}, r"wells\.1\.wel: unknown field"),
        ({"version": "1", "wells": [{"sample": "s.csv"}]}, r"wells\.0\.well: missing required"),
        (
            {"version": "1", "wells": ["w"], "sourceRevision": 7},
            r"sourceRevision: Expected `str \| null`, got `int`",
        ),
        ({"wells": ["w"]}, r"version: missing required field"),
    ],
)
def test_a_fleet_file_problem_names_its_key(tmp_path: Path, document: object, problem: str) -> None:
    fleet = tmp_path / "fleet.yaml"
    fleet.write_text(yaml.safe_dump(document))
    with pytest.raises(PackError, match=rf"fleet\.yaml is invalid: {problem}"):
        load_fleet(fleet)


def test_a_fleet_file_reads_its_camel_case_revision_and_both_well_forms(tmp_path: Path) -> None:
    fleet = tmp_path / "fleet.yaml"
    fleet.write_text(
        yaml.safe_dump(
            {"version": "1", "sourceRevision": "abc", "wells": ["w1", {"well": "w2", "models": []}]}
        )
    )
    parsed = load_fleet(fleet)
    assert parsed.source_revision == "abc"
    assert parsed.tolerance == PACK_TOLERANCE
    assert parsed.wells == ["w1", WellEntry(well="w2", models=[])]
