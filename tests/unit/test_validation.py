from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from keel.config import DataConfig
from keel.domain.schema import infer_schema
from keel.domain.validation import check_not_all_missing, coerce_features, raise_for_invalid_training_rows
from keel.errors import DataError


@pytest.fixture
def schema():  # type: ignore[no-untyped-def]
    data = pd.DataFrame({"age": [20, 30, 40, 50] * 10, "job": ["a", "b", "c", "a"] * 10, "y": ["n", "y"] * 20})
    return infer_schema(data, DataConfig.model_validate({"train": {"path": "x"}, "target": "y"}))


def test_unreadable_numbers_make_rows_invalid_with_reasons(schema) -> None:  # type: ignore[no-untyped-def]
    rows = pd.DataFrame({"age": ["21", "old", None, "inf"], "job": ["a", "zzz", None, "b"]})
    coerced = coerce_features(rows, schema)
    assert coerced.valid.tolist() == [True, False, True, False]
    assert coerced.errors[1] == "age: not a number"
    assert coerced.frame["age"].iloc[0] == 21.0
    assert np.isnan(coerced.frame["age"].iloc[2])
    assert coerced.frame["job"].tolist()[:2] == ["a", "zzz"]
    assert pd.isna(coerced.frame["job"].iloc[2])


def test_missing_feature_column_names_it(schema) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(DataError, match="missing feature column"):
        coerce_features(pd.DataFrame({"age": [1]}), schema, label="input.csv")


def test_training_data_with_bad_values_is_refused_with_counts_and_examples(schema) -> None:  # type: ignore[no-untyped-def]
    rows = pd.DataFrame({"age": ["21", "old", "n/a", "33"], "job": ["a"] * 4})
    coerced = coerce_features(rows, schema)
    with pytest.raises(DataError) as error:
        raise_for_invalid_training_rows(rows, coerced, schema, label="train.csv")
    message = str(error.value)
    assert "2 row(s)" in message
    assert "'old'" in message
    assert "'age'" in message
    assert "data.types" in message


def test_all_missing_feature_is_refused(schema) -> None:  # type: ignore[no-untyped-def]
    rows = pd.DataFrame({"age": [None, None], "job": ["a", "b"]})
    with pytest.raises(DataError, match="age"):
        check_not_all_missing(coerce_features(rows, schema), schema, label="train")


def test_float_codes_in_a_categorical_column_match_their_integer_spelling() -> None:
    data = pd.DataFrame({"code": [1, 2, 3, 1] * 10, "y": ["n", "y"] * 20})
    config = DataConfig.model_validate({"train": {"path": "x"}, "target": "y", "types": {"code": "categorical"}})
    schema = infer_schema(data, config)
    coerced = coerce_features(pd.DataFrame({"code": [1.0, 2.0, None]}), schema)
    assert coerced.frame["code"].tolist()[:2] == ["1", "2"]
    assert pd.isna(coerced.frame["code"].iloc[2])


def test_every_part_is_checked_and_counted_in_one_message(schema) -> None:  # type: ignore[no-untyped-def]
    from keel.application.prepare import coerce_parts

    good = pd.DataFrame({"age": ["21", "33"], "job": ["a", "b"], "y": ["n", "y"]})
    train = pd.DataFrame({"age": ["21", "old", "33"], "job": ["a"] * 3, "y": ["n"] * 3})
    valid = pd.DataFrame({"age": ["n/a", "40"], "job": ["a"] * 2, "y": ["n"] * 2})
    test = pd.DataFrame({"age": ["x", "y", "50"], "job": ["a"] * 3, "y": ["n"] * 3})
    with pytest.raises(DataError) as error:
        coerce_parts(schema, {"training rows": train, "validation rows": valid, "test rows": test})
    message = str(error.value)
    assert "training rows: 1 row(s)" in message
    assert "validation rows: 1 row(s)" in message
    assert "test rows: 2 row(s)" in message
    assert "'n/a'" in message  # pandas' NA tokens are values unless csv.default_na says otherwise
    assert set(coerce_parts(schema, {"training rows": good, "validation rows": None})) == {"training rows"}


def test_only_empty_cells_and_configured_tokens_are_missing(tmp_path) -> None:  # type: ignore[no-untyped-def]
    from keel.config import CsvOptions
    from keel.io.tables import read_table

    (tmp_path / "t.csv").write_text("country,score\nNA,1\n,n/a\n?,NULL\n")
    plain = read_table(tmp_path / "t.csv", csv=CsvOptions(na_values=["?"]))
    assert plain["country"].tolist()[0] == "NA"
    assert plain["country"].isna().tolist() == [False, True, True]
    assert plain["score"].tolist() == ["1", "n/a", "NULL"]
    pandas_way = read_table(tmp_path / "t.csv", csv=CsvOptions(default_na=True))
    assert pandas_way["country"].isna().tolist() == [True, True, False]
    assert pandas_way["score"].isna().tolist() == [False, True, True]


@pytest.mark.parametrize("dtype", ["str", "object", "category"])
def test_categories_and_texts_come_out_as_python_strings_whatever_their_input_dtype(dtype: str) -> None:
    """Coerced categories and texts are object columns of str (what the encoders read without converting again)."""
    data = pd.DataFrame(
        {"job": ["a", "b"] * 20, "note": ["some words here", "other words there"] * 20, "y": ["n", "y"] * 20}
    )
    config = DataConfig.model_validate({"train": {"path": "x"}, "target": "y", "types": {"note": "text"}})
    schema = infer_schema(data, config)
    rows = pd.DataFrame({"job": ["a", None, "zzz"], "note": ["w x", None, "y z"]}).astype(dtype)
    coerced = coerce_features(rows, schema).frame
    for column in ("job", "note"):
        assert coerced[column].dtype == object
    assert coerced["job"].iloc[0] == "a"
    assert type(coerced["job"].iloc[0]) is str
    assert coerced["job"].iloc[2] == "zzz"
    assert pd.isna(coerced["job"].iloc[1])  # a missing category stays missing
    assert coerced["note"].tolist() == ["w x", "", "y z"]  # missing text is empty text
