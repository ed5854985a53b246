"""Sample weights (``data.weight``): fitting with them, checking them and weighted metrics."""

from __future__ import annotations

import re

import numpy as np
import pandas as pd
import pytest

from keel.config import DataConfig, FeaturesConfig, ModelConfig, SourceConfig
from keel.domain.schema import infer_schema
from keel.domain.training import encode_target, fit_model


def _table(rows: int = 400, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    x = rng.normal(size=rows)
    noise = rng.normal(size=rows)
    y = np.where(x + rng.normal(scale=1.5, size=rows) > 0, "yes", "no")
    return pd.DataFrame({"x": x, "noise": noise, "y": y})


def _fit(frame: pd.DataFrame, estimator: str, weight: np.ndarray | None, **params: object) -> object:
    data = DataConfig(train=SourceConfig(path="t.csv"), target="y")
    schema = infer_schema(frame, data)
    x = frame[["x", "noise"]]
    y = encode_target(frame["y"], schema)
    model, _ = fit_model(
        schema, FeaturesConfig(), ModelConfig(estimator=estimator, params=params),  # type: ignore[arg-type]
        seed=0, train_x=x, train_y=y, train_weight=weight,
    )  # fmt: skip
    return model


def test_an_integer_weight_fits_as_that_many_copies_of_the_row() -> None:
    frame = _table()
    weight = np.where(np.arange(len(frame)) % 3 == 0, 3.0, 1.0)
    weighted = _fit(frame, "logistic_regression", weight)
    copies = frame.loc[frame.index.repeat(weight.astype(int))].reset_index(drop=True)
    copied = _fit(copies, "logistic_regression", None)
    unweighted = _fit(frame, "logistic_regression", None)
    probe = _table(50, seed=1)[["x", "noise"]]
    # The scaler before the linear model sees the copies unweighted, so the two agree closely, not exactly.
    as_copies = np.abs(weighted.predict_proba(probe) - copied.predict_proba(probe)).max()  # type: ignore[attr-defined]
    as_plain = np.abs(weighted.predict_proba(probe) - unweighted.predict_proba(probe)).max()  # type: ignore[attr-defined]
    assert as_copies < 2e-3
    assert as_plain > 10 * as_copies


@pytest.mark.parametrize("estimator", ["lightgbm", "hist_gradient_boosting", "random_forest"])
def test_heavier_positive_rows_raise_the_predicted_share_of_positives(estimator: str) -> None:
    frame = _table()
    params = {"n_estimators": 30} if estimator in ("lightgbm", "random_forest") else {"max_iter": 30}
    heavy = np.where(frame["y"] == "yes", 5.0, 1.0)
    probe = _table(200, seed=2)[["x", "noise"]]
    weighted = _fit(frame, estimator, heavy, **params).predict_proba(probe)[:, 1].mean()  # type: ignore[attr-defined]
    plain = _fit(frame, estimator, None, **params).predict_proba(probe)[:, 1].mean()  # type: ignore[attr-defined]
    assert weighted > plain + 0.1


def test_lightgbm_scores_the_validation_rows_weighted_while_boosting() -> None:
    from sklearn.metrics import log_loss

    frame = _table(600)
    data = DataConfig(train=SourceConfig(path="t.csv"), target="y")
    train, valid = frame.iloc[:400].reset_index(drop=True), frame.iloc[400:].reset_index(drop=True)
    schema = infer_schema(train, data)
    valid_y = encode_target(valid["y"], schema)
    valid_weight = np.where(valid["y"] == "yes", 20.0, 0.05)
    seen: list[float] = []
    model, _ = fit_model(
        schema, FeaturesConfig(), ModelConfig(params={"n_estimators": 20}), seed=0,
        train_x=train[["x", "noise"]], train_y=encode_target(train["y"], schema),
        valid_x=valid[["x", "noise"]], valid_y=valid_y, valid_weight=valid_weight,
        callbacks=[lambda env: seen.append(env.evaluation_result_list[0][2])],
    )  # fmt: skip
    proba = model.predict_proba(valid[["x", "noise"]])
    assert seen[-1] == pytest.approx(log_loss(valid_y, proba, sample_weight=valid_weight), rel=1e-6)
    assert seen[-1] != pytest.approx(log_loss(valid_y, proba), rel=1e-2)


# --- weighted metrics, checked against scikit-learn's sample_weight by hand -------------------------------------


def _classified(seed: int = 0, classes: int = 2, rows: int = 300) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    y = rng.integers(0, classes, rows)
    logits = rng.normal(size=(rows, classes)) + 1.5 * np.eye(classes)[y]
    proba = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
    weight = rng.uniform(0, 5, rows)
    return y, proba, weight


@pytest.mark.parametrize("classes", [2, 3])
def test_weighted_classification_metrics_are_scikit_learns_with_sample_weight(classes: int) -> None:
    from sklearn import metrics as skm

    from keel.domain.metrics import CLASSIFICATION_METRICS, Predictions, compute_metrics

    y, proba, weight = _classified(classes=classes)
    predictions = Predictions(y_true=y, proba=proba, weight=weight)
    got = compute_metrics(predictions, "binary" if classes == 2 else "multiclass", CLASSIFICATION_METRICS, classes,
                          weighted=True)  # fmt: skip
    predicted = proba.argmax(axis=1)
    auc = (
        skm.roc_auc_score(y, proba[:, 1], sample_weight=weight)
        if classes == 2
        else skm.roc_auc_score(y, proba, multi_class="ovr", sample_weight=weight)
    )
    expected = {
        "accuracy": skm.accuracy_score(y, predicted, sample_weight=weight),
        "balanced_accuracy": skm.balanced_accuracy_score(y, predicted, sample_weight=weight),
        "f1_macro": skm.f1_score(y, predicted, average="macro", sample_weight=weight),
        "f1_weighted": skm.f1_score(y, predicted, average="weighted", sample_weight=weight),
        "roc_auc": auc,
        "log_loss": skm.log_loss(y, proba, sample_weight=weight),
    }
    assert got == pytest.approx(expected, rel=1e-12)
    plain = compute_metrics(predictions, "binary" if classes == 2 else "multiclass", CLASSIFICATION_METRICS, classes)
    assert plain["log_loss"] == pytest.approx(skm.log_loss(y, proba))  # the unweighted metrics ignore the weights
    assert plain["log_loss"] != pytest.approx(got["log_loss"])


def test_weighted_regression_metrics_are_scikit_learns_with_sample_weight() -> None:
    from sklearn import metrics as skm

    from keel.domain.metrics import Predictions, compute_metrics

    rng = np.random.default_rng(1)
    y = rng.normal(size=200)
    values = y + rng.normal(scale=0.5, size=200)
    weight = rng.uniform(0, 3, 200)
    got = compute_metrics(Predictions(y_true=y, values=values, weight=weight), "regression", ["rmse", "mae", "r2"],
                          weighted=True)  # fmt: skip
    assert got == pytest.approx(
        {
            "rmse": np.sqrt(skm.mean_squared_error(y, values, sample_weight=weight)),
            "mae": skm.mean_absolute_error(y, values, sample_weight=weight),
            "r2": skm.r2_score(y, values, sample_weight=weight),
        },
        rel=1e-12,
    )


def test_zero_weights_leave_rows_out_and_all_zero_weights_give_nan() -> None:
    from keel.domain.metrics import Predictions, compute_metrics

    y, proba, weight = _classified()
    weight[:100] = 0.0
    kept = compute_metrics(Predictions(y[100:], proba[100:], weight=weight[100:]), "binary", ["roc_auc", "log_loss"],
                           2, weighted=True)  # fmt: skip
    whole = compute_metrics(Predictions(y, proba, weight=weight), "binary", ["roc_auc", "log_loss"], 2, weighted=True)
    assert whole == pytest.approx(kept, rel=1e-12)
    nothing = compute_metrics(Predictions(y, proba, weight=np.zeros(len(y))), "binary", ["roc_auc"], 2, weighted=True)
    assert np.isnan(nothing["roc_auc"])


def test_the_weighted_baseline_predicts_the_weighted_class_shares_and_is_scored_weighted() -> None:
    from sklearn.metrics import log_loss

    from keel.domain.metrics import Predictions, baseline_predictions, evaluate_predictions

    train_y = np.array([0, 0, 0, 1])
    train_weight = np.array([1.0, 1.0, 1.0, 9.0])  # the one positive row stands for nine people
    weighted = baseline_predictions(np.array([0, 1]), train_y, "binary", 2, train_weight)
    np.testing.assert_allclose(weighted.proba, [[0.25, 0.75], [0.25, 0.75]])  # type: ignore[arg-type]

    y, proba, weight = _classified()
    predictions = Predictions(y_true=y, proba=proba, weight=weight)
    plain_baseline = baseline_predictions(y, train_y, "binary", 2)
    evaluation = evaluate_predictions(
        predictions, plain_baseline, "binary", ["log_loss"], classes=["no", "yes"],
        weighted_baseline=baseline_predictions(y, train_y, "binary", 2, train_weight),
    )  # fmt: skip
    assert evaluation.baseline["log_loss"] == pytest.approx(log_loss(y, np.tile([0.75, 0.25], (len(y), 1))))
    assert evaluation.weighted_baseline["log_loss"] == pytest.approx(
        log_loss(y, np.tile([0.25, 0.75], (len(y), 1)), sample_weight=weight)
    )
    assert evaluation.weighted_metrics["log_loss"] == pytest.approx(log_loss(y, proba, sample_weight=weight))
    assert set(evaluation.to_dict()) >= {"metrics", "baseline", "weighted_metrics", "weighted_baseline"}


def test_without_weights_nothing_weighted_is_reported() -> None:
    from keel.domain.metrics import Predictions, baseline_predictions, evaluate_predictions

    y, proba, _ = _classified()
    evaluation = evaluate_predictions(
        Predictions(y_true=y, proba=proba), baseline_predictions(y, y, "binary", 2), "binary", ["roc_auc"],
        classes=["no", "yes"],
    )  # fmt: skip
    assert evaluation.weighted_metrics == {}
    assert evaluation.weighted_baseline == {}


def test_a_weighted_metric_runs_the_way_its_metric_does() -> None:
    from keel.domain.metrics import improvement

    assert improvement("weighted_log_loss", 0.3, 0.4) == pytest.approx(0.1)
    assert improvement("weighted_roc_auc", 0.9, 0.8) == pytest.approx(0.1)


# --- the weight column: never a feature, checked, refused clearly ------------------------------------------------


def test_the_weight_column_is_never_a_feature_and_the_target_gets_weighted_shares() -> None:
    frame = _table()
    frame["w"] = np.where(frame["y"] == "yes", 3.0, 1.0)
    schema = infer_schema(frame, DataConfig(train=SourceConfig(path="t.csv"), target="y", weight="w"))
    assert "w" not in schema.feature_names
    assert schema.weight_name == "w"
    assert schema.column("w").role == "weight"
    yes = float((frame["y"] == "yes").sum())
    shares = dict(zip(schema.target.classes or [], schema.target.weighted_shares or [], strict=True))
    assert shares["yes"] == pytest.approx(3 * yes / (3 * yes + len(frame) - yes))
    assert "w" not in schema.example


def test_a_missing_weight_column_is_named() -> None:
    from keel.errors import DataError

    with pytest.raises(DataError, match=r"column 'weight' named in `data.weight` is not in the data"):
        infer_schema(_table(), DataConfig(train=SourceConfig(path="t.csv"), target="y", weight="weight"))


def test_bad_weights_are_counted_by_kind_with_examples() -> None:
    from keel.domain.weights import weight_problem

    frame = pd.DataFrame({"w": ["1.5", "2", None, "lots", "-3", "inf", "0"]})
    problem = weight_problem(frame, "w", label="training rows (census.csv)")
    assert problem == (
        "training rows (census.csv): the weight column 'w' (data.weight) has 4 of 7 row(s) that are not finite "
        "numbers >= 0: 1 missing, 1 not numbers, 1 infinite, 1 negative (for example ['lots', '-3', 'inf'])"
    )
    all_zero = weight_problem(pd.DataFrame({"w": [0, 0]}), "w", label="test rows")
    assert all_zero is not None
    assert all_zero.endswith("at least one row must weigh something")
    assert weight_problem(pd.DataFrame({"w": [0.0, 2.5]}), "w", label="test rows") is None


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        (["data.weight=y"], "`weight` 'y' is the target"),
        (["data.weight=w", "data.ignore=[w]"], "the weight column 'w' cannot also be listed in `ignore`"),
        (["data.weight=w", "data.id_columns=[w]"], "the weight column 'w' cannot also be listed in `id_columns`"),
        (["data.weight=w", "data.features=[x,w]"], "the weight column 'w' cannot also be listed in `features`"),
        (["data.weight=w", "engine=dask"], "`data.weight` ('w') is not supported with `engine: dask`"),
        (["data.weight=w", "split.strategy=chronological", "split.time_column=w"], "`split.time_column` is the weight"),
    ],
)
def test_weight_clashes_are_refused_when_the_config_is_loaded(
    tmp_path: object, overrides: list[str], message: str
) -> None:
    from pathlib import Path

    from keel.config import load_config
    from keel.errors import ConfigError

    path = Path(str(tmp_path)) / "c.yaml"
    path.write_text("project: demo\ndata: {train: {path: t.csv}, target: y}\n")
    with pytest.raises(ConfigError, match=re.escape(message)):
        load_config([path], overrides)


def test_an_estimator_that_cannot_take_sample_weight_is_refused_before_any_data(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from keel.domain import estimators
    from keel.errors import ConfigError

    # Every estimator keel ships (and every candidate of `auto`) takes sample weights.
    estimators.check_weight_support(estimators.estimator_names(), None, "w")

    class Unweighted:
        def fit(self, x: object, y: object) -> Unweighted:
            return self

    monkeypatch.setitem(estimators._CLASSES, "unweighted", (f"{__name__}:_Unweighted", ""))
    monkeypatch.setattr(f"{__name__}._Unweighted", Unweighted, raising=False)
    with pytest.raises(ConfigError, match=r"`data.weight: w`: model.estimator 'unweighted' \(Unweighted\) cannot be "):
        estimators.check_weight_support(["unweighted"], "binary", "w")


def test_the_service_accepts_the_weight_column_and_ignores_it() -> None:
    from keel.serving.contract import build_request_types

    frame = _table()
    frame["w"] = 2.0
    schema = infer_schema(frame, DataConfig(train=SourceConfig(path="t.csv"), target="y", weight="w"))
    types = build_request_types(schema, model_name="demo", max_records=10)
    record = {"x": 0.5, "noise": 1.0, "w": 3}
    assert types.adapter.validate_python(record)["x"] == 0.5
    assert types.adapter.validate_python({"x": 0.5, "noise": 1.0})["noise"] == 1.0  # the weight may be left out
    accepted = types.fast_batch({"records": [record, {"x": 1.0, "noise": 2.0, "w": None}]})
    assert accepted is not None
    assert list(accepted[1]["x"]) == [0.5, 1.0]
    assert types.adapter.validate_python({"columns": {"x": [0.5], "noise": [1.0], "w": [2.5]}})["columns"]["w"] == [2.5]
    from pydantic import ValidationError

    with pytest.raises(ValidationError):
        types.adapter.validate_python({"x": 0.5, "noise": 1.0, "w": 3, "other": 1})  # other unknown fields still are
