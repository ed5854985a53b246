"""Blends: greedy ensemble selection, and a blended model that stores, loads, scores and explains like one model."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from keel.config import DataConfig, FeaturesConfig, ModelConfig
from keel.domain.blend import BlendedModel, BlendMatrix, greedy_selection
from keel.domain.model import FittedModel
from keel.domain.schema import infer_schema
from keel.domain.training import encode_target, fit_model
from keel.domain.validation import coerce_features
from keel.errors import IntegrityError
from keel.io import artifacts
from keel.serving.predictor import Predictor

# -- greedy selection ----------------------------------------------------------------------------------------------


def _mse(y: np.ndarray) -> Any:
    return lambda output: float(np.mean((output - y) ** 2))


def test_selection_mixes_candidates_whose_errors_cancel() -> None:
    y = np.zeros(100)
    noise = np.random.default_rng(0).normal(size=100)
    # Two candidates with opposite errors average to the truth; a third is worse.
    outputs = [y + noise, y - noise, y + 2 * noise]
    weights, score = greedy_selection(outputs, _mse(y), greater_is_better=False)
    assert math.isclose(sum(weights), 1.0)
    assert weights[0] == pytest.approx(0.5)
    assert weights[1] == pytest.approx(0.5)
    assert weights[2] == 0
    assert score == pytest.approx(0.0, abs=1e-12)


def test_selection_keeps_a_dominant_candidate_alone() -> None:
    y = np.linspace(0, 1, 50)
    outputs = [y + 0.01, y + 1.0]
    weights, score = greedy_selection(outputs, _mse(y), greater_is_better=False)
    assert weights == [1.0, 0.0]
    assert score == pytest.approx(1e-4)


def test_selection_follows_the_metric_direction_and_ignores_nan() -> None:
    outputs = [np.array([1.0]), np.array([2.0]), np.array([3.0])]
    weights, score = greedy_selection(
        outputs, lambda o: math.nan if o[0] > 2.0 else float(o[0]), greater_is_better=True
    )
    assert weights == [0.0, 1.0, 0.0]
    assert score == 2.0
    with pytest.raises(ValueError, match="NaN"):
        greedy_selection(outputs, lambda o: math.nan, greater_is_better=True)


# -- a blended model -----------------------------------------------------------------------------------------------


def _synthetic(task: str, rows: int = 400, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    x1 = rng.normal(size=rows)
    colour = rng.choice(["red", "green", "blue", None], size=rows, p=[0.3, 0.3, 0.3, 0.1])
    x2 = np.where(rng.random(rows) < 0.1, np.nan, rng.uniform(0, 10, size=rows))
    score = 2 * x1 + 0.3 * np.nan_to_num(x2) + np.where(colour == "red", 1.5, 0.0)
    frame = pd.DataFrame({"x1": x1, "x2": x2, "colour": colour})
    if task == "binary":
        frame["label"] = np.where(score > np.median(score), "high", "low")
    elif task == "multiclass":
        frame["label"] = pd.cut(score, 3, labels=["a", "b", "c"]).astype(str)
    else:
        frame["label"] = np.round(np.exp(score / 4))  # counts, for a Poisson member
    return frame


def _fit(frame: pd.DataFrame, estimator: str, **params: Any) -> FittedModel:
    task = "regression" if frame["label"].dtype.kind == "f" else "auto"
    data = DataConfig.model_validate({"train": {"path": "t.csv"}, "target": "label", "task": task})
    schema = infer_schema(frame, data)
    coerced = coerce_features(frame, schema)
    if estimator == "lightgbm":
        params = {"n_estimators": 20, "verbose": -1, **params}
    model, _ = fit_model(
        schema, FeaturesConfig(), ModelConfig.model_validate({"estimator": estimator, "params": params}), seed=0,
        train_x=coerced.frame, train_y=encode_target(frame["label"], schema),
    )  # fmt: skip
    return model


def _blend(task: str, second: str = "lightgbm", **params: Any) -> tuple[BlendedModel, pd.DataFrame]:
    frame = _synthetic(task)
    members = [_fit(frame, "lightgbm", num_leaves=7), _fit(frame, second, **params)]
    return BlendedModel.of(members, [0.7, 0.3], ["lightgbm", second]), _synthetic(task, rows=120, seed=1)


def _records(frame: pd.DataFrame, names: list[str]) -> list[dict[str, Any]]:
    return [
        {k: None if isinstance(v, float) and math.isnan(v) else v for k, v in row.items()}
        for row in frame[names].to_dict("records")
    ]


@pytest.mark.parametrize("task", ["binary", "multiclass", "regression"])
def test_a_blend_averages_its_members_with_the_weights(task: str) -> None:
    blend, fresh = _blend(task, "hist_gradient_boosting")
    features = coerce_features(fresh, blend.schema).frame
    first, second = blend.members
    if task == "regression":
        expected = 0.7 * first.predict_value(features) + 0.3 * second.predict_value(features)
        np.testing.assert_allclose(blend.predict_value(features), expected)
    else:
        expected = 0.7 * first.predict_proba(features) + 0.3 * second.predict_proba(features)
        np.testing.assert_allclose(blend.predict_proba(features), expected)
    # The service gives the same, one record at a time and as a batch.
    predictor = Predictor(blend)
    records = _records(fresh, blend.schema.feature_names)
    key = "value" if task == "regression" else "probabilities"

    def served(results: list[dict[str, Any]]) -> np.ndarray:
        if task == "regression":
            return np.array([r[key] for r in results])
        return np.array([[r[key][k] for k in predictor.class_keys] for r in results])

    np.testing.assert_allclose(served(predictor.predict(records)), expected, atol=1e-9)
    np.testing.assert_allclose(served([predictor.predict([r])[0] for r in records[:20]]), expected[:20], atol=1e-9)
    columns = {name: [r[name] for r in records] for name in blend.schema.feature_names}
    answer, _ = predictor.predict_columns(columns, len(records))
    got = answer["value"] if task == "regression" else np.column_stack([answer[key][k] for k in predictor.class_keys])
    np.testing.assert_allclose(np.asarray(got), expected, atol=1e-9)
    assert not predictor.can_explain, "a HistGradientBoosting member has no contributions"


def test_members_with_one_encoding_share_one_matrix() -> None:
    blend, fresh = _blend("binary", "lightgbm", learning_rate=0.05)
    matrix = blend.transform(coerce_features(fresh, blend.schema).frame)
    assert isinstance(matrix, BlendMatrix)
    assert matrix.parts[0] is matrix.parts[1]
    predictor = Predictor(blend)
    assert predictor.compiled
    encoded = predictor.encode(_records(fresh.head(1), blend.schema.feature_names))
    assert encoded.parts[0] is encoded.parts[1]


@pytest.mark.parametrize("task", ["binary", "multiclass", "regression"])
def test_a_blend_of_boosters_explains_with_the_weighted_members_contributions(task: str) -> None:
    blend, fresh = _blend(task, "lightgbm", learning_rate=0.05)
    assert blend.explainable
    features = coerce_features(fresh, blend.schema).frame
    contributions = blend.contributions(features)
    assert contributions is not None
    parts = [m.contributions(features) for m in blend.members]
    np.testing.assert_allclose(contributions, 0.7 * parts[0] + 0.3 * parts[1])  # type: ignore[operator]
    # Contributions add up to the weighted average of the members' raw scores.
    raw = [np.asarray(m.estimator.predict(m.transform(features), raw_score=True)) for m in blend.members]
    mixed = 0.7 * raw[0] + 0.3 * raw[1]
    sums = contributions.reshape(len(fresh), 3, -1).sum(axis=2) if task == "multiclass" else contributions.sum(axis=1)
    np.testing.assert_allclose(sums, mixed, atol=1e-9)
    predictor = Predictor(blend)
    assert predictor.can_explain
    explained = predictor.predict(_records(fresh.head(3), blend.schema.feature_names), explain=True, top=3)
    for i, result in enumerate(explained):
        row = (
            contributions[i]
            if task != "multiclass"
            else contributions[i].reshape(3, -1)[np.argmax(list(result["probabilities"].values()))]
        )
        assert result["explanation"]["base_value"] == pytest.approx(row[-1])


def test_a_blends_explanation_maps_to_input_columns_like_its_members() -> None:
    from keel.application.insights import contribution_inputs, contribution_unit, global_contributions

    blend, fresh = _blend("binary", "lightgbm", learning_rate=0.05)
    features = coerce_features(fresh, blend.schema).frame
    combined = global_contributions(blend, features)
    assert combined is not None
    assert set(combined) == {"x1", "x2", "colour"}
    contributions = blend.contributions(features)
    assert contributions is not None
    column = contribution_inputs(blend).index("x1")
    assert contribution_inputs(blend) == contribution_inputs(blend.members[0])
    assert combined["x1"] == pytest.approx(float(np.abs(contributions[:, column]).mean()))
    assert contribution_unit(blend) == "log-odds"


def test_members_with_different_links_are_not_explained() -> None:
    blend, _ = _blend("regression", "lightgbm", objective="poisson")
    assert not blend.explainable
    assert Predictor(blend).can_explain is False


def _saved(blend: BlendedModel, directory: Path) -> Path:
    artifacts.save_model(directory, blend)
    artifacts.write_manifest(directory, {"estimator": blend.estimator_name, "feature_names": blend.feature_names})
    return directory


@pytest.mark.parametrize("second", ["lightgbm", "logistic_regression"])
def test_a_blend_is_stored_as_its_members_and_a_weights_file(tmp_path: Path, second: str) -> None:
    blend, fresh = _blend("binary", second)
    directory = _saved(blend, tmp_path / "version")
    description = json.loads((directory / artifacts.BLEND_FILE).read_text(encoding="utf-8"))
    assert [m["weight"] for m in description["members"]] == [0.7, 0.3]
    assert (directory / "members/0" / artifacts.BOOSTER_FILE).is_file()
    assert (directory / "members/0" / artifacts.ENCODING_FILE).is_file()
    assert not list((directory / "members/0").glob("*.skops")), "a LightGBM member needs no skops"
    loaded = artifacts.load_model(directory).model
    assert isinstance(loaded, BlendedModel)
    assert loaded.labels == ["lightgbm", second]
    assert loaded.weights == pytest.approx([0.7, 0.3])
    features = coerce_features(fresh, blend.schema).frame
    np.testing.assert_allclose(loaded.predict_proba(features), blend.predict_proba(features))


def test_a_changed_weight_or_member_file_is_refused(tmp_path: Path) -> None:
    blend, _ = _blend("binary", "lightgbm", learning_rate=0.05)
    directory = _saved(blend, tmp_path / "version")
    booster = directory / "members/1" / artifacts.BOOSTER_FILE
    booster.write_text(booster.read_text(encoding="utf-8").replace("shrinkage=0.05", "shrinkage=0.5"))
    with pytest.raises(IntegrityError, match=r"members/1/model\.lgb\.txt"):
        artifacts.load_model(directory)
    directory = _saved(blend, tmp_path / "again")
    weights = directory / artifacts.BLEND_FILE
    weights.write_text(weights.read_text(encoding="utf-8").replace("0.7", "0.9"), encoding="utf-8")
    with pytest.raises(IntegrityError, match=r"blend\.json"):
        artifacts.load_model(directory)


def test_a_malformed_weights_file_is_refused_even_when_its_hash_matches(tmp_path: Path) -> None:
    blend, _ = _blend("binary", "lightgbm", learning_rate=0.05)
    directory = _saved(blend, tmp_path / "version")
    description = json.loads((directory / artifacts.BLEND_FILE).read_text(encoding="utf-8"))
    description["members"][1]["folder"] = "../../elsewhere"
    artifacts.write_json(directory / artifacts.BLEND_FILE, description)
    artifacts.write_manifest(directory, {"estimator": "blend"})
    with pytest.raises(IntegrityError, match="outside the model directory"):
        artifacts.load_model(directory)
    description["members"][1]["weight"] = -1
    description["members"][1]["folder"] = "members/1"
    artifacts.write_json(directory / artifacts.BLEND_FILE, description)
    artifacts.write_manifest(directory, {"estimator": "blend"})
    with pytest.raises(IntegrityError, match="positive"):
        artifacts.load_model(directory)


def test_a_blend_with_a_text_member_loads_its_vocabularies_without_pickle(tmp_path: Path) -> None:
    rng = np.random.default_rng(2)
    words = np.array(["great", "terrible", "price", "delivery", "quality", "slow"])
    text = [" ".join(rng.choice(words, size=6)) for _ in range(300)]
    x1 = rng.normal(size=300)
    label = np.where(
        x1 + np.array(["great" in t for t in text]) - np.array(["terrible" in t for t in text]) > 0, "a", "b"
    )
    frame = pd.DataFrame({"x1": x1, "review": text, "label": label})
    data = DataConfig.model_validate({"train": {"path": "t.csv"}, "target": "label", "types": {"review": "text"}})
    schema = infer_schema(frame, data)
    coerced = coerce_features(frame, schema)
    members = []
    for estimator, params in [("logistic_regression", {}), ("lightgbm", {"n_estimators": 10, "verbose": -1})]:
        model, _ = fit_model(
            schema, FeaturesConfig(), ModelConfig.model_validate({"estimator": estimator, "params": params}), seed=0,
            train_x=coerced.frame, train_y=encode_target(frame["label"], schema),
        )  # fmt: skip
        members.append(model)
    blend = BlendedModel.of(members, [0.5, 0.5], ["logistic_regression", "lightgbm"])
    directory = _saved(blend, tmp_path / "version")
    assert (directory / "members/0/vocabularies.npz").is_file()
    loaded = artifacts.load_model(directory).model
    np.testing.assert_allclose(loaded.predict_proba(coerced.frame), blend.predict_proba(coerced.frame))
    records = _records(frame.head(5), schema.feature_names)
    served = [r["probabilities"]["a"] for r in Predictor(loaded).predict(records)]
    np.testing.assert_allclose(served, blend.predict_proba(coerced.frame.head(5))[:, 0], atol=1e-9)
