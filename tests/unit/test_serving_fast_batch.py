"""The service's column-by-column batch check never lets through what pydantic refuses, and reads what it reads."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from keel.config import DataConfig
from keel.domain.schema import FeatureSchema, infer_schema
from keel.serving.contract import MAX_VALUE_CHARS, RequestTypes, build_request_types

MAX_RECORDS = 20


def _schema() -> FeatureSchema:
    """Every kind of field: required and optional numbers, categories (text and integer-like), a boolean, an id."""
    rows = 40
    rng = np.random.default_rng(0)
    frame = pd.DataFrame(
        {
            "row_id": [f"r{i}" for i in range(rows)],
            "x1": rng.normal(size=rows),
            "x2": np.where(np.arange(rows) % 7 == 0, np.nan, rng.uniform(0, 10, size=rows)),
            "colour": rng.choice(np.array(["red", "green", "blue", None], dtype=object), size=rows),
            "size": rng.choice(["1", "2", "3"], size=rows),
            "flag": rng.random(rows) < 0.5,
            "label": rng.choice(["a", "b"], size=rows),
        }
    )
    data = DataConfig.model_validate(
        {
            "train": {"path": "toy.csv"},
            "target": "label",
            "id_columns": ["row_id"],
            "types": {"size": "categorical", "flag": "boolean"},
        }
    )
    return infer_schema(frame, data)


@pytest.fixture(scope="module")
def types() -> RequestTypes:
    return build_request_types(_schema(), model_name="toy", max_records=MAX_RECORDS)


GOOD = {"row_id": "r-1", "x1": 0.5, "x2": 3, "colour": "red", "size": "2", "flag": True}

# Values pydantic takes, refuses, or takes only after converting them, for any field.
_value = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**63), max_value=2**63 - 1),
    st.floats(allow_nan=False, allow_infinity=False),
    st.sampled_from(["red", "green", "2", "7", "-3", "", "true", "x" * (MAX_VALUE_CHARS + 1)]),
    st.lists(st.integers(), max_size=2),
    st.dictionaries(st.sampled_from(["a", "x1"]), st.integers(), max_size=2),
)
_field = st.sampled_from([*GOOD, "unknown", "X1"])
_number = st.one_of(st.integers(min_value=-(10**6), max_value=10**6), st.floats(allow_nan=False, allow_infinity=False))
_valid = st.fixed_dictionaries(
    {"x1": _number, "size": st.sampled_from(["1", "2", "3", 2, 9]), "flag": st.booleans()},
    optional={
        "x2": st.one_of(st.none(), _number),
        "colour": st.one_of(st.none(), st.sampled_from(["red", "blue", "purple", ""])),
        "row_id": st.one_of(st.none(), st.integers(), st.text(max_size=5)),
    },
)
# A valid record, or one with a single field changed to anything at all.
_plausible = st.one_of(
    _valid,
    st.builds(lambda record, field, value: {**record, field: value}, _valid, _field, _value),
)
_record = st.one_of(
    _plausible,
    st.dictionaries(_field, _value, max_size=8),
    st.builds(lambda changes: {**GOOD, **changes}, st.dictionaries(_field, _value, max_size=2)),
    st.builds(lambda drop: {k: v for k, v in GOOD.items() if k != drop}, st.sampled_from(list(GOOD))),
    st.just(GOOD),
    st.integers(),
)
_body = st.one_of(
    st.builds(lambda records: {"records": records}, st.lists(_record, max_size=MAX_RECORDS + 2)),
    st.builds(lambda records: {"records": records}, st.lists(_valid, min_size=1, max_size=MAX_RECORDS)),
    st.builds(lambda records: {"records": records, "extra": 1}, st.lists(_record, min_size=1, max_size=2)),
    _record,
    st.lists(_record, max_size=2),
)


@settings(
    max_examples=600,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(body=_body)
def test_what_the_fast_check_accepts_pydantic_accepts_with_the_same_values(types: RequestTypes, body: Any) -> None:
    accepted = types.fast_batch(body)
    if accepted is None:
        return  # pydantic decides, as for any body
    records, columns = accepted
    validated = types.adapter.validate_python(body)  # raises if the fast check let through a bad batch
    assert records == validated["records"]  # an int sent for a number equals the float pydantic returns
    for name, values in columns.items():
        assert list(values) == [record.get(name) for record in validated["records"]]


def test_ordinary_batches_take_the_fast_path(types: RequestTypes) -> None:
    sparse = {"row_id": 7, "x1": -1, "size": 3, "flag": False}  # optional fields left out, integer category and id
    nulls = {**GOOD, "x2": None, "colour": None, "row_id": None}
    for records in ([GOOD] * 3, [sparse], [GOOD, sparse, nulls], [nulls] * MAX_RECORDS):
        accepted = types.fast_batch({"records": records})
        assert accepted is not None, records
        _, columns = accepted
        assert list(columns) == ["x1", "x2", "colour", "size", "flag", "row_id"]
        assert all(len(values) == len(records) for values in columns.values())
    _, columns = types.fast_batch({"records": [GOOD, sparse]}) or ({}, {})
    assert list(columns["x2"]) == [3, None]
    assert list(columns["colour"]) == ["red", None]


@pytest.mark.parametrize(
    ("records", "why"),
    [
        ([{**GOOD, "x1": None}], "x1 had no missing values in training"),
        ([{k: v for k, v in GOOD.items() if k != "x1"}], "x1 is required"),
        ([{**GOOD, "x1": "0.5"}], "a number sent as text"),
        ([{**GOOD, "x1": True}], "a boolean for a number"),
        ([{**GOOD, "flag": 1}], "1 for a boolean (pydantic converts it; the fast check leaves that to it)"),
        ([{**GOOD, "colour": 3}], "an integer for a text category"),
        ([{**GOOD, "size": 2.0}], "a float for an integer-like category"),
        ([{**GOOD, "colour": "x" * (MAX_VALUE_CHARS + 1)}], "an over-long category"),
        ([{**GOOD, "age": 3}], "an unknown field"),
        ([GOOD, {**GOOD, "Colour": "red"}], "an unknown field in a later record"),
        ([GOOD, [1, 2]], "a record that is not an object"),
        ([], "no records"),
        ([GOOD] * (MAX_RECORDS + 1), "too many records"),
    ],
)
def test_anything_unusual_is_left_to_pydantic(types: RequestTypes, records: list[Any], why: str) -> None:
    assert types.fast_batch({"records": records}) is None, why


def test_only_a_batch_body_takes_the_fast_path(types: RequestTypes) -> None:
    assert types.fast_batch(GOOD) is None  # one record: pydantic (a few microseconds)
    assert types.fast_batch({"records": [GOOD], "model": "x"}) is None
    assert types.fast_batch({"records": {"0": GOOD}}) is None
    with pytest.raises(ValidationError):
        types.adapter.validate_python({"records": [GOOD], "model": "x"})


@pytest.mark.parametrize(
    ("body", "plain"),
    [
        (b'{"records": [{"a": 1, "b": "x"}, {"a": 2.5, "b": null}]}', True),
        (b'{"a": 1}', True),
        (b"[1, 2]", True),
        (b'{"when": "12:30"}', False),  # a colon in a string: parsed again, exactly
        (b'{"a": NaN}', False),  # orjson refuses NaN; the standard parser reads it and pydantic refuses it
        (b'{"a": 1e400}', False),
        (b'{"records": [{"x": {"k": 1}}]}', False),  # a nested object's keys are not counted: parsed again
    ],
)
def test_bodies_are_parsed_the_fast_way_only_when_no_key_can_repeat(body: bytes, plain: bool) -> None:
    import json

    from keel.serving.body import parse_json as _parse_json

    parsed = _parse_json(body)
    assert parsed.fast is plain
    assert json.dumps(parsed.data) == json.dumps(json.loads(body))


@pytest.mark.parametrize(
    ("body", "key"),
    [
        (b'{"a": 1, "a": 2}', "a"),
        (b'{"records": [{"x1": 1}, {"x1": 1, "x1": 2}]}', "x1"),
        (b'{"a": "1:2", "a": 3}', "a"),  # a colon in a string must not hide the repeated key
        (b'{"records": [{"x": {"k": 1, "k": 2}}]}', "k"),
        (b'{"records": [], "records": []}', "records"),
    ],
)
def test_a_repeated_key_is_refused_whichever_parser_reads_it(body: bytes, key: str) -> None:
    from keel.serving.body import parse_json as _parse_json
    from keel.serving.errors import ClientError

    with pytest.raises(ClientError) as caught:
        _parse_json(body)
    assert caught.value.status == 400
    assert f"repeats the key {key!r}" in caught.value.error


def test_an_integer_beyond_64_bits_is_validated_on_the_exact_document(types: RequestTypes) -> None:
    from keel.serving.body import parse_json as _parse_json

    big = 2**70
    body = f'{{"records": [{{"row_id": {big}, "x1": 1, "size": "2", "flag": true}}]}}'.encode()
    parsed = _parse_json(body)
    assert parsed.fast  # orjson read it, as a float
    assert types.fast_batch(parsed.data) is None  # a float id: left to pydantic
    payload = parsed.validated(types.adapter.validate_python)  # refused as a float, accepted as the integer
    assert payload["records"][0]["row_id"] == big
    assert not parsed.fast


def test_a_lone_surrogate_sent_in_an_id_is_written_back_as_it_came() -> None:
    import json

    from keel.serving.body import parse_json as _parse_json
    from keel.serving.body import render as _render

    body = b'{"records": [{"row_id": "\\ud800x"}]}'
    parsed = _parse_json(body)  # orjson refuses it; the standard library reads it
    assert not parsed.fast
    echoed = {"predictions": [{"ids": parsed.data["records"][0]}], "value": np.float64(1.5)}
    assert json.loads(_render(echoed)) == {"predictions": [{"ids": {"row_id": "\ud800x"}}], "value": 1.5}
