"""Sample weights (``data.weight``): fitting with them, checking them and weighted metrics."""

from __future__ import annotations

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
