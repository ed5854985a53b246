"""The MLflow signature keel derives from a feature schema: types MLflow accepts for what users send."""

from __future__ import annotations

import pytest

from keel.domain.schema import ColumnSchema
from keel.io.mlmodel import input_type, output_type


@pytest.mark.parametrize(
    ("keel_type", "kind", "expected"),
    [
        ("numeric", "i", "long"),  # whole numbers without missing values: a CSV's int64 column passes
        ("numeric", "f", "double"),  # with missing values (or fractions) pandas reads floats
        ("numeric", "O", "double"),
        ("categorical", "O", "string"),
        ("categorical", "i", "long"),  # codes such as 3 stay numbers, as training read them
        ("boolean", "b", "boolean"),
        ("boolean", "O", "string"),  # spelled yes/no in the file
        ("text", "O", "string"),
        ("datetime", "O", "string"),  # dates in a CSV: keel parses the text, as in training
        ("datetime", "M", "datetime"),
    ],
)
def test_input_type_follows_what_training_read(keel_type: str, kind: str, expected: str) -> None:
    column = ColumnSchema(name="x", role="feature", type=keel_type)  # type: ignore[arg-type]
    assert input_type(column, kind) == expected


@pytest.mark.parametrize(
    ("classes", "expected"),
    [(["<=50K", ">50K"], "string"), ([0, 1, 2], "long"), ([True, False], "boolean"), ([0.5, 1], "double")],
)
def test_the_prediction_column_has_the_type_of_the_class_labels(classes: list[object], expected: str) -> None:
    assert output_type(classes) == expected
