"""The compiled feature encoding gives the fitted scikit-learn pipeline's matrix exactly, a DataFrame at a time."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from keel.domain.encoding import compile_plan, encode_frame
from keel.domain.validation import coerce_features
from tests.unit.test_serving_predictor import _fit, _synthetic


def _both(model: object, frame: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
    coerced = coerce_features(frame, model.schema).frame  # type: ignore[attr-defined]
    return model.transform(coerced), model.preprocessor.transform(coerced)  # type: ignore[attr-defined]


@pytest.mark.parametrize(("task", "estimator"), [("binary", "lightgbm"), ("regression", "random_forest")])
def test_the_compiled_encoding_equals_the_pipeline_with_unseen_missing_and_integer_categories(
    task: str, estimator: str
) -> None:
    model = _fit(_synthetic(task), estimator)
    assert model.encoding is not None
    fresh = _synthetic(task, rows=300, seed=4)
    fresh.loc[::7, "colour"] = "purple"  # never seen in training
    fresh.loc[::11, "colour"] = None
    fresh.loc[::13, "x1"] = np.nan
    fresh["size"] = fresh["size"].astype(int)  # integer-like categories arriving as integers
    compiled, pipeline = _both(model, fresh)
    assert compiled.dtype == np.float64
    np.testing.assert_array_equal(compiled, pipeline)  # NaN where NaN, bit for bit elsewhere


def test_a_pipeline_it_cannot_compile_is_run_as_it_is() -> None:
    model = _fit(_synthetic("binary"), "logistic_regression")  # one-hot and scaling: not compiled
    assert model.encoding is None
    compiled, pipeline = _both(model, _synthetic("binary", rows=50, seed=2))
    np.testing.assert_array_equal(compiled, pipeline)


def test_categories_that_are_not_positions_in_one_list_of_text_are_looked_up() -> None:
    from sklearn.compose import ColumnTransformer
    from sklearn.preprocessing import OrdinalEncoder

    from keel.config import DataConfig
    from keel.domain.schema import infer_schema

    frame = pd.DataFrame({"kind": pd.Series(["b", "a", np.nan, "c"] * 5, dtype=object), "label": [0, 1] * 10})
    schema = infer_schema(frame, DataConfig.model_validate({"train": {"path": "x.csv"}, "target": "label"}))
    encoder = OrdinalEncoder(handle_unknown="use_encoded_value", unknown_value=np.nan, encoded_missing_value=np.nan)
    preprocessor = ColumnTransformer([("categories", encoder, ["kind"])]).fit(frame[["kind"]])
    plan = compile_plan(preprocessor, schema)
    assert plan is not None
    assert plan[0].categories == ["a", "b", "c"]  # the missing category sorts last; the others keep their codes
    probe = pd.DataFrame({"kind": pd.Series(["c", np.nan, "z", "a"], dtype=object)})  # missing is NaN, as coerced
    np.testing.assert_array_equal(encode_frame(plan, probe), preprocessor.transform(probe))
    looked_up = [type(plan[0])("kind", plan[0].codes, None)]  # the dict path, used when codes are not positions
    np.testing.assert_array_equal(encode_frame(looked_up, probe), preprocessor.transform(probe))


@pytest.mark.slow
def test_the_stored_encoding_equals_the_pipeline_on_the_whole_adult_test_split(
    adult_workspace: Path, adult_rows: pd.DataFrame
) -> None:
    from sklearn.compose import ColumnTransformer
    from sklearn.preprocessing import OrdinalEncoder

    from keel.application.models import load_version
    from keel.domain.encoding import categories_in_code_order
    from keel.io.registry import Registry

    model = load_version(Registry.open(adult_workspace), "adult-income@champion").loaded.model
    assert model.preprocessor is None  # stored compiled (encoding.json)
    assert model.encoding is not None
    categorical = [c for c in model.encoding if c.codes is not None]
    lists = [np.asarray([np.nan if v is None else v for v in categories_in_code_order(c)], object) for c in categorical]
    encoder = OrdinalEncoder(
        categories=lists, handle_unknown="use_encoded_value", unknown_value=np.nan, encoded_missing_value=np.nan
    )
    numeric = [c.name for c in model.encoding if c.codes is None]
    pipeline = ColumnTransformer(
        [("categorical", encoder, [c.name for c in categorical]), ("numeric", "passthrough", numeric)]
    )
    coerced = coerce_features(adult_rows, model.schema).frame
    np.testing.assert_array_equal(model.transform(coerced), pipeline.fit(coerced).transform(coerced))
