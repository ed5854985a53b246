"""The service's compiled predictor gives exactly what the training-time pipeline gives (``keel predict``)."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from keel.config import DataConfig, FeaturesConfig, ModelConfig
from keel.domain.model import FittedModel
from keel.domain.schema import infer_schema
from keel.domain.training import encode_target, fit_model
from keel.domain.validation import coerce_features
from keel.serving.predictor import Predictor

TOLERANCE = 1e-6


def _records(frame: pd.DataFrame, features: list[str]) -> list[dict[str, Any]]:
    """Rows as validated JSON gives them: None for missing, Python scalars."""
    records = []
    for row in frame[features].to_dict("records"):
        records.append(
            {
                k: None if isinstance(v, float) and math.isnan(v) else (v.item() if hasattr(v, "item") else v)
                for k, v in row.items()
            }
        )
    return records


def _pipeline_output(model: FittedModel, frame: pd.DataFrame) -> np.ndarray:
    """What the fitted scikit-learn pipeline itself gives (not the compiled encoding ``FittedModel`` uses)."""
    coerced = coerce_features(frame, model.schema)
    assert coerced.valid.all()
    matrix = model.preprocessor.transform(coerced.frame)
    if model.task == "regression":
        return np.asarray(model.estimator.predict(matrix), dtype=np.float64)
    return model.proba_from_matrix(matrix)


def _served_output(predictor: Predictor, results: list[dict[str, Any]]) -> np.ndarray:
    if predictor.task == "regression":
        return np.array([r["value"] for r in results])
    return np.array([[r["probabilities"][k] for k in predictor.class_keys] for r in results])


def _synthetic(task: str, rows: int = 400, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    x1 = rng.normal(size=rows)
    colour = rng.choice(["red", "green", "blue", None], size=rows, p=[0.3, 0.3, 0.3, 0.1])
    size = rng.choice(["1", "2", "3"], size=rows)
    x2 = np.where(rng.random(rows) < 0.1, np.nan, rng.uniform(0, 10, size=rows))
    score = 2 * x1 + 0.3 * np.nan_to_num(x2) + np.where(colour == "red", 1.5, 0.0) + (size == "3") * 1.0
    frame = pd.DataFrame({"x1": x1, "x2": x2, "colour": colour, "size": size})
    if task == "binary":
        frame["label"] = np.where(score > np.median(score), "high", "low")
    elif task == "multiclass":
        frame["label"] = pd.cut(score, 3, labels=["a", "b", "c"]).astype(str)
    else:
        frame["label"] = score * 10
    return frame


def _fit(frame: pd.DataFrame, estimator: str, encoding: str = "auto") -> FittedModel:
    data = DataConfig.model_validate(
        {"train": {"path": "synthetic.csv"}, "target": "label", "types": {"size": "categorical"}}
    )
    schema = infer_schema(frame, data)
    coerced = coerce_features(frame, schema)
    params = {"n_estimators": 15, "verbose": -1} if estimator == "lightgbm" else {}
    model, _ = fit_model(
        schema,
        FeaturesConfig.model_validate({"encoding": encoding}),
        ModelConfig.model_validate({"estimator": estimator, "params": params}),
        seed=0,
        train_x=coerced.frame,
        train_y=encode_target(frame["label"], schema),
    )
    return model


@pytest.mark.parametrize(
    ("task", "estimator"),
    [("binary", "lightgbm"), ("multiclass", "lightgbm"), ("regression", "lightgbm"), ("multiclass", "random_forest")],
)
def test_compiled_predictor_equals_the_pipeline(task: str, estimator: str) -> None:
    frame = _synthetic(task)
    model = _fit(frame, estimator)
    predictor = Predictor(model)
    assert predictor.compiled
    fresh = _synthetic(task, rows=200, seed=1)
    records = _records(fresh, model.schema.feature_names)
    expected = _pipeline_output(model, fresh)
    batch = _served_output(predictor, predictor.predict(records))
    singles = np.concatenate([_served_output(predictor, predictor.predict([r])) for r in records[:40]])
    np.testing.assert_allclose(batch, expected, atol=TOLERANCE, rtol=0)
    np.testing.assert_allclose(singles, expected[:40], atol=TOLERANCE, rtol=0)
    if task != "regression":
        labels = model.predict_labels(expected)
        assert [r["label"] for r in predictor.predict(records)] == labels


@pytest.mark.parametrize("task", ["binary", "multiclass", "regression"])
def test_one_record_gets_exactly_the_batch_answer(task: str) -> None:
    # One record goes through LightGBM's prepared single-row prediction, a batch through Booster.predict: the
    # numbers must be the same bits, not just close (missing values and unseen categories included).
    frame = _synthetic(task)
    model = _fit(frame, "lightgbm")
    predictor = Predictor(model)
    records = _records(_synthetic(task, rows=120, seed=2), model.schema.feature_names)
    records[0] = {**records[0], "colour": "purple", "x2": None}
    batch = predictor.predict(records)
    singles = [predictor.predict([record])[0] for record in records]
    assert singles == batch
    np.testing.assert_array_equal(_served_output(predictor, singles), np.asarray(_served_output(predictor, batch)))
    matrix = predictor.encode(records[:1])
    assert predictor.raw(matrix).tolist() == predictor.raw(np.vstack([matrix, matrix]))[:1].tolist()


def test_a_pipeline_it_cannot_compile_falls_back_to_the_same_answers() -> None:
    frame = _synthetic("binary")
    model = _fit(frame, "logistic_regression")
    predictor = Predictor(model)
    assert not predictor.compiled
    records = _records(frame, model.schema.feature_names)
    np.testing.assert_allclose(
        _served_output(predictor, predictor.predict(records)), _pipeline_output(model, frame), atol=TOLERANCE
    )
    assert not predictor.can_explain


def test_integer_codes_unseen_and_missing_categories_score_like_the_batch_path() -> None:
    frame = _synthetic("binary")
    model = _fit(frame, "lightgbm")
    predictor = Predictor(model)
    base = {"x1": 0.5, "x2": 3.0, "colour": "red", "size": "3"}
    as_int = predictor.predict([{**base, "size": 3}])[0]
    assert as_int["probabilities"] == predictor.predict([base])[0]["probabilities"]
    assert as_int["warnings"] == []
    unseen = predictor.predict([{**base, "colour": "purple"}])[0]
    missing = predictor.predict([{**base, "colour": None}])[0]
    assert unseen["probabilities"] == missing["probabilities"]
    assert [w["field"] for w in unseen["warnings"]] == ["colour"]
    assert missing["warnings"] == []
    batch_frame = pd.DataFrame([{**base, "colour": "purple"}])
    np.testing.assert_allclose(
        _served_output(predictor, [unseen]), _pipeline_output(model, batch_frame), atol=TOLERANCE
    )


@pytest.mark.parametrize("task", ["binary", "multiclass"])
def test_contributions_add_up_to_the_raw_score(task: str) -> None:
    frame = _synthetic(task)
    model = _fit(frame, "lightgbm")
    predictor = Predictor(model)
    records = _records(frame.head(20), model.schema.feature_names)
    results = predictor.predict(records, explain=True, top=len(model.feature_names))
    raw = np.asarray(model.estimator.predict(predictor.encode(records), raw_score=True))
    for i, result in enumerate(results):
        explanation = result["explanation"]
        total = explanation["base_value"] + sum(c["contribution"] for c in explanation["contributions"])
        expected = raw[i] if raw.ndim == 1 else raw[i, predictor.class_keys.index(str(result["label"]))]
        assert total == pytest.approx(expected, abs=1e-9)


@pytest.mark.slow
def test_compiled_predictor_equals_keel_predict_on_the_whole_adult_test_split(
    adult_workspace: Path, adult_rows: pd.DataFrame
) -> None:
    from keel.application.models import load_version
    from keel.application.predict import score_chunk
    from keel.io.registry import Registry

    model = load_version(Registry.open(adult_workspace), "adult-income@champion").loaded.model
    predictor = Predictor(model)
    assert predictor.compiled
    records = _records(adult_rows, model.schema.feature_names)
    assert len(records) == 16_281
    scored, invalid = score_chunk(model, adult_rows, label="adult.test")
    assert invalid.empty
    results = predictor.predict(records)
    expected = scored[[f"probability_{k}" for k in predictor.class_keys]].to_numpy()
    np.testing.assert_allclose(_served_output(predictor, results), expected, atol=TOLERANCE, rtol=0)
    assert [r["label"] for r in results] == scored["prediction"].tolist()
    np.testing.assert_array_equal(
        predictor.encode(records), model.transform(coerce_features(adult_rows, model.schema).frame)
    )
    singles = np.vstack([_served_output(predictor, predictor.predict([r])) for r in records[:500]])
    np.testing.assert_allclose(singles, expected[:500], atol=TOLERANCE, rtol=0)


def test_request_types_follow_the_schema_and_id_fields_are_passed_through() -> None:
    from pydantic import ValidationError

    from keel.serving.contract import build_request_types

    frame = _synthetic("binary").assign(row_id=lambda f: [f"r{i}" for i in range(len(f))])
    data = DataConfig.model_validate(
        {
            "train": {"path": "synthetic.csv"},
            "target": "label",
            "id_columns": ["row_id"],
            "types": {"size": "categorical"},
        }
    )
    schema = infer_schema(frame, data)
    types = build_request_types(schema, model_name="toy-model", max_records=3)
    record = {"x1": 1.0, "x2": None, "colour": None, "size": 2, "row_id": "r-7"}
    assert types.adapter.validate_python(record) == record  # x2 and colour had missing values: optional
    with pytest.raises(ValidationError):
        types.adapter.validate_python({**record, "x1": None})  # x1 never missing in training: required
    with pytest.raises(ValidationError):
        types.adapter.validate_python({"records": [record] * 4})
    assert types.record_title == "ToyModelRecord"

    model = _fit(frame.drop(columns="row_id"), "lightgbm")
    model.schema.columns.append(schema.column("row_id"))
    result = Predictor(model).predict([record])[0]
    assert result["ids"] == {"row_id": "r-7"}
