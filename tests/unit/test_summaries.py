"""Schema and feature pipeline from merged per-partition summaries equal those fitted on all the rows at once."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from keel.config import DataConfig, FeaturesConfig, ModelConfig
from keel.domain.schema import FeatureSchema, infer_schema
from keel.domain.summaries import (
    all_missing_features,
    complete_schema,
    encoder_fit_frame,
    merge_summaries,
    summarize_rows,
)
from keel.domain.training import fit_features
from keel.domain.validation import coerce_features
from keel.errors import DataError


def data_config(**kwargs: object) -> DataConfig:
    return DataConfig.model_validate(
        {"train": {"path": "x.parquet"}, "target": "y", "id_columns": ["row_id"], **kwargs}
    )


def table(rows: int = 3_000, task: str = "binary") -> pd.DataFrame:
    rng = np.random.default_rng(7)
    amount = rng.normal(size=rows)
    amount[rng.random(rows) < 0.05] = np.nan
    amount[3] = np.inf  # not finite: left out of the range, as infer_schema does
    colour = rng.choice(["red", "green", "blue", "violet", "amber"], size=rows, p=[0.4, 0.3, 0.2, 0.07, 0.03])
    colour = np.where(rng.random(rows) < 0.1, None, colour)
    # A categorical column read as floats: the schema lists "2.0", the pipeline encodes "2".
    grade = rng.choice([1.0, 2.0, 3.0, np.nan], size=rows)
    frame = pd.DataFrame(
        {
            "row_id": np.arange(rows),
            "amount": amount,
            "colour": colour,
            "grade": grade,
            "flag": rng.choice([True, False], size=rows),
            "when": pd.Timestamp("2024-01-01") + pd.to_timedelta(rng.integers(0, 400, rows), unit="D"),
        }
    )
    frame["y"] = rng.choice(["yes", "no", "maybe"], size=rows) if task == "multiclass" else amount * 3 + 1
    if task == "binary":
        frame["y"] = np.where(rng.random(rows) < 0.3, "yes", "no")
    return frame


def schema_by_parts(frame: pd.DataFrame, data: DataConfig, cuts: list[int]) -> tuple[FeatureSchema, object]:
    sampled = infer_schema(frame.sample(500, random_state=1), data)
    pieces = [frame.iloc[a:b].reset_index(drop=True) for a, b in zip([0, *cuts], [*cuts, len(frame)], strict=True)]
    summaries = [summarize_rows(p, coerce_features(p, sampled).frame, sampled) for p in pieces]
    summary = merge_summaries(summaries)
    return complete_schema(sampled, summary), summary


@pytest.mark.parametrize("task", ["binary", "multiclass", "regression"])
def test_schema_from_merged_summaries_equals_the_schema_of_all_rows(task: str) -> None:
    frame = table(task=task)
    data = data_config(types={"grade": "categorical"})
    whole = infer_schema(frame, data)
    merged, _ = schema_by_parts(frame, data, cuts=[700, 701, 2_100])

    assert merged.rows == whole.rows == len(frame)
    if task == "regression":
        assert merged.target.model_dump() == pytest.approx(whole.target.model_dump())
    else:
        assert merged.target == whole.target
    for expected, got in zip(whole.columns, merged.columns, strict=True):
        assert (got.name, got.role, got.type) == (expected.name, expected.role, expected.type)
        assert got.missing_rate == expected.missing_rate
        # Same categories, same counts, same order (ties in the order first seen).
        assert got.categories == expected.categories
        assert got.category_counts == expected.category_counts
        assert (got.min, got.max) == (expected.min, expected.max)
        assert got.mean == pytest.approx(expected.mean)
    assert merged.column("colour").categories is not None
    assert merged.column("grade").categories == whole.column("grade").categories


def test_the_tree_pipeline_fitted_on_each_category_once_equals_the_one_fitted_on_all_rows() -> None:
    frame = table()
    data = data_config(types={"grade": "categorical"})
    schema, summary = schema_by_parts(frame, data, cuts=[1_000, 2_000])
    coerced = coerce_features(frame, schema).frame
    model = ModelConfig(estimator="lightgbm")
    on_all, matrix = fit_features(schema, FeaturesConfig(), model, seed=0, frame=coerced)
    fit_frame = encoder_fit_frame(coerced.sample(50, random_state=0), schema, summary)
    assert len(fit_frame) < 10
    on_few, _ = fit_features(schema, FeaturesConfig(), model, seed=0, frame=fit_frame)

    assert on_few.names == on_all.names
    assert on_few.categorical == on_all.categorical
    for (name, ours, _), (_, theirs, _) in zip(
        on_few.preprocessor.transformers_, on_all.preprocessor.transformers_, strict=True
    ):
        if name == "categorical":
            assert [list(map(str, c)) for c in ours.categories_] == [list(map(str, c)) for c in theirs.categories_]
    np.testing.assert_array_equal(on_few.preprocessor.transform(coerced), matrix)
    # Unseen values are missing in both.
    unseen = coerced.head(3).assign(colour="ultraviolet")
    np.testing.assert_array_equal(on_few.preprocessor.transform(unseen), on_all.preprocessor.transform(unseen))


def test_a_feature_without_values_in_any_partition_is_found() -> None:
    frame = table(400)
    data = data_config()
    sampled = infer_schema(frame, data)
    frame["amount"] = np.nan
    summary = merge_summaries(
        [summarize_rows(p, coerce_features(p, sampled).frame, sampled) for p in (frame.iloc[:200], frame.iloc[200:])]
    )
    assert all_missing_features(sampled, summary) == ["amount"]


def test_a_single_class_across_partitions_is_refused() -> None:
    frame = table(400).assign(y="yes")
    data = data_config()
    sampled = infer_schema(frame.assign(y=["yes", "no"] * 200), data)
    summary = merge_summaries([summarize_rows(frame, coerce_features(frame, sampled).frame, sampled)])
    with pytest.raises(DataError, match="only one class"):
        complete_schema(sampled, summary)
