"""Derived features (safe arithmetic inside the pipeline), joined text, and named baselines from columns."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from keel.config import BaselineConfig, DataConfig, FeaturesConfig, SourceConfig
from keel.domain.baselines import check_baseline_columns, evaluate_baselines
from keel.domain.derived import DerivedColumn, JoinedText, expression_columns
from keel.domain.features import build_feature_plan, output_names
from keel.domain.schema import infer_schema
from keel.domain.training import encode_target
from keel.errors import ConfigError, DataError


def test_an_expression_reads_its_columns_and_computes_with_numpy() -> None:
    frame = pd.DataFrame({"h": [3.0, 0.0, np.nan], "v": [4.0, -2.0, 1.0]})
    derived = DerivedColumn("distance", "sqrt(h ** 2 + v ** 2)").fit(frame)
    assert expression_columns("distance", "sqrt(h ** 2 + v ** 2) - abs(v)") == ["h", "v"]
    values = derived.transform(frame)[:, 0]
    assert values[:2].tolist() == [5.0, 2.0]
    assert np.isnan(values[2])
    assert np.isnan(DerivedColumn("ratio", "h / (v + 2)").fit(frame).transform(frame)[1, 0])  # 0/0 → missing


@pytest.mark.parametrize(
    "expression",
    ["__import__('os').system('true')", "h.real", "open('x')", "[h]", "h if v else 1", "'text'", "sqrt(h, v)"],
)
def test_anything_but_arithmetic_is_refused(expression: str) -> None:
    with pytest.raises(ConfigError, match=r"features\.derived\.bad"):
        expression_columns("bad", expression)


def test_derived_features_are_steps_of_the_pipeline() -> None:
    frame = pd.DataFrame({"a": [1.0, 2.0, 3.0, 4.0], "b": [4.0, 3.0, 2.0, 1.0], "y": [0, 1, 0, 1]})
    schema = infer_schema(frame, DataConfig(train=SourceConfig(path="x.csv"), target="y"))
    plan = build_feature_plan(schema, FeaturesConfig(derived={"a_minus_b": "a - b"}), "lightgbm")
    matrix = plan.transformer.fit_transform(frame[["a", "b"]])
    assert output_names(plan.transformer)[-1] == "a_minus_b"
    assert matrix[:, -1].tolist() == [-3.0, -1.0, 1.0, 3.0]
    with pytest.raises(ConfigError, match="'c' are not numeric feature columns"):
        build_feature_plan(schema, FeaturesConfig(derived={"bad": "a - c"}), "lightgbm")


def test_joined_text_is_one_document_per_row() -> None:
    frame = pd.DataFrame({"title": ["BERT", None], "description": ["for text", "images"]})
    assert JoinedText().fit(frame).transform(frame).tolist() == ["BERT for text", "images"]


def _binary_schema() -> tuple[pd.DataFrame, object]:
    frame = pd.DataFrame(
        {
            "x": [0.1, 0.2, 0.3, 0.4],
            "elo": [0.9, 0.2, 0.6, 0.4],
            "ranked": [1, 0, 0, 1],
            "won": [1, 0, 1, 0],
        }
    )
    schema = infer_schema(frame, DataConfig(train=SourceConfig(path="x.csv"), target="won", ignore=["elo", "ranked"]))
    return frame, schema


def test_named_baselines_are_scored_like_the_model() -> None:
    frame, schema = _binary_schema()
    baselines = [
        BaselineConfig(name="elo", column="elo", kind="probability"),
        BaselineConfig(name="rank", column="ranked", kind="label"),
    ]
    y = encode_target(frame["won"], schema)  # type: ignore[arg-type]
    scores = evaluate_baselines(frame, baselines, schema, y, ["accuracy", "log_loss"])  # type: ignore[arg-type]
    assert scores["elo"]["accuracy"] == 1.0
    assert scores["elo"]["log_loss"] == pytest.approx(-np.mean(np.log([0.9, 0.8, 0.6, 0.6])))
    assert scores["rank"] == {"accuracy": 0.5}  # a label baseline has no probabilities: no log loss


def test_baseline_problems_name_the_baseline_and_the_column() -> None:
    frame, schema = _binary_schema()
    with pytest.raises(ConfigError, match=r"baselines\[0\]` \(elo\): column 'nope'"):
        check_baseline_columns([BaselineConfig(name="elo", column="nope")], list(frame.columns), "binary")
    with pytest.raises(DataError, match="probability between 0 and 1"):
        evaluate_baselines(
            frame.assign(elo=2.0),
            [BaselineConfig(name="elo", column="elo")],
            schema,  # type: ignore[arg-type]
            encode_target(frame["won"], schema),  # type: ignore[arg-type]
            ["accuracy"],
        )


def test_date_parts_keep_their_names_and_values() -> None:
    import numpy as np
    import pandas as pd

    from keel.domain.features import DatetimeParts

    frame = pd.DataFrame({"when": ["2024-03-05 14:00", None, "not a date"]})
    parts = DatetimeParts().fit(frame)
    assert list(parts.get_feature_names_out()) == [
        "when_year", "when_month", "when_day", "when_dayofweek", "when_hour", "when_dayofyear",
    ]  # fmt: skip
    values = parts.transform(frame)
    np.testing.assert_array_equal(values[0], [2024, 3, 5, 1, 14, 65])  # a Tuesday, the 65th day of a leap year
    assert np.isnan(values[1:]).all()
