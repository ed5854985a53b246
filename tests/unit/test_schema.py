from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from keel.config import DataConfig
from keel.domain.schema import infer_schema, infer_task
from keel.errors import DataError


def data_config(**kwargs: object) -> DataConfig:
    return DataConfig.model_validate({"train": {"path": "x.csv"}, "target": "y", **kwargs})


def frame(rows: int = 120) -> pd.DataFrame:
    rng = np.random.default_rng(0)
    return pd.DataFrame(
        {
            "amount": rng.normal(size=rows),
            "count_text": [str(i) for i in range(rows)],
            "colour": rng.choice(["red", "green", "blue"], size=rows),
            "flag": rng.choice([True, False], size=rows),
            "note": ["a long description of the item with many words in it " + str(i % 7) for i in range(rows)],
            "row_id": [f"id-{i}" for i in range(rows)],
            "y": rng.choice(["yes", "no"], size=rows),
        }
    )


def test_types_and_roles_are_inferred_with_reasons() -> None:
    schema = infer_schema(frame(), data_config())
    types = {c.name: (c.role, c.type) for c in schema.columns}
    assert types["amount"] == ("feature", "numeric")
    assert types["count_text"][1] == "numeric"
    assert types["colour"] == ("feature", "categorical")
    assert types["flag"] == ("feature", "boolean")
    assert types["note"] == ("feature", "text")
    assert types["row_id"][0] == "ignored"
    assert "identifier" in schema.column("row_id").note
    assert schema.target.task == "binary"
    assert schema.target.classes == ["no", "yes"]


def test_declared_roles_and_types_win() -> None:
    schema = infer_schema(
        frame(), data_config(id_columns=["row_id"], ignore=["note"], types={"count_text": "categorical"})
    )
    assert schema.column("row_id").role == "id"
    assert schema.column("note").role == "ignored"
    assert schema.column("count_text").type == "categorical"
    assert not schema.column("count_text").inferred
    assert schema.id_names == ["row_id"]


def test_statistics_describe_the_training_data() -> None:
    data = frame()
    data.loc[:9, "amount"] = np.nan
    schema = infer_schema(data, data_config())
    amount = schema.column("amount")
    assert amount.missing_rate == pytest.approx(10 / 120)
    assert amount.min == pytest.approx(data["amount"].min())
    colour = schema.column("colour")
    assert set(colour.categories or []) == {"red", "green", "blue"}
    assert sum(colour.category_counts or []) == 120
    assert set(schema.example) >= {"amount", "colour"}


def test_missing_declared_column_suggests_the_closest() -> None:
    with pytest.raises(DataError) as error:
        infer_schema(frame(), data_config(ignore=["colur"]))
    assert "'colur'" in str(error.value)
    assert "data.ignore" in str(error.value)
    assert "'colour'" in str(error.value)


def test_single_class_target_is_refused() -> None:
    data = frame()
    data["y"] = "yes"
    with pytest.raises(DataError, match="only one class"):
        infer_schema(data, data_config())


def test_empty_table_is_refused() -> None:
    with pytest.raises(DataError, match="no rows"):
        infer_schema(frame().iloc[:0], data_config())


@pytest.mark.parametrize(
    ("values", "expected"),
    [
        (["a", "b"] * 10, "binary"),
        (["a", "b", "c"] * 10, "multiclass"),
        ([1, 2, 3, 4, 5, 6, 7] * 5, "multiclass"),
        ([0, 1] * 10, "binary"),
        (list(np.linspace(0, 100, 200)), "regression"),
        (list(range(500)), "regression"),
    ],
)
def test_task_is_inferred_from_the_target(values: list[object], expected: str) -> None:
    assert infer_task(pd.Series(values)) == expected


def test_declared_task_wins() -> None:
    assert infer_task(pd.Series([0, 1] * 10), "regression") == "regression"


def test_text_columns_read_as_numbers_when_enough_rows_parse_counting_repeated_spellings() -> None:
    """The share is over rows, not distinct values: a common placeholder outweighs many distinct numbers."""
    rows = 400
    table = pd.DataFrame(
        {
            # 97 % of rows are numbers (3 % say "n/a"): numeric, the placeholders then read as invalid.
            "mostly_numbers": [str(i) for i in range(388)] + ["n/a"] * 12,
            # 160 distinct numbers but 60 % of rows say "unknown": categorical, though most spellings are numbers.
            "mostly_unknown": [str(i) for i in range(160)] + ["unknown"] * 240,
            "y": ["a", "b"] * (rows // 2),
        }
    )
    schema = infer_schema(table, data_config())
    types = {column.name: column.type for column in schema.features}
    assert types == {"mostly_numbers": "numeric", "mostly_unknown": "categorical"}


def test_target_labels_are_encoded_in_class_order_and_unknown_ones_are_refused_with_examples() -> None:
    from keel.domain.training import encode_target

    data = pd.DataFrame({"x": range(40), "y": ["no", "yes", "maybe", "no"] * 10})
    schema = infer_schema(data, DataConfig.model_validate({"train": {"path": "x"}, "target": "y"}))
    assert schema.target.classes == ["maybe", "no", "yes"]
    codes = encode_target(pd.Series(["yes", "no", "maybe", "yes"], dtype="str"), schema)
    assert codes.tolist() == [2, 1, 0, 2]
    assert codes.dtype == np.int64
    with pytest.raises(DataError) as refused:
        encode_target(pd.Series(["yes", "Yes", None, "nope"]), schema)
    message = str(refused.value)
    assert "3 value(s)" in message
    assert "'Yes'" in message
    assert "'nope'" in message
    assert "known classes: ['maybe', 'no', 'yes']" in message
