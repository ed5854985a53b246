"""Scoring tables with a fitted model: the one path used by train, evaluate, predict and the promotion gate."""

from __future__ import annotations

from typing import TYPE_CHECKING

from keel.domain.metrics import Predictions
from keel.domain.model import FittedModel
from keel.domain.training import encode_target
from keel.domain.validation import coerce_features
from keel.errors import DataError

if TYPE_CHECKING:
    import numpy as np
    import pandas as pd


def labelled_predictions(
    model: FittedModel,
    frame: pd.DataFrame,
    *,
    label: str,
    weight: np.ndarray | None = None,
    features: pd.DataFrame | None = None,
) -> Predictions:
    """Predict every row of a labelled table (``weight``: the rows' sample weights, carried for weighted metrics).

    ``features``: the rows' feature columns as :func:`~keel.domain.validation.coerce_features` read them with the
    model's schema, every row valid (training checked the test rows so); ``None`` reads and checks them here.

    Raises:
        DataError: The target is missing, a row cannot be read, or a label was never seen in training.
    """
    target = model.schema.target.name
    if target not in frame.columns:
        raise DataError(f"{label}: the target column {target!r} is missing; evaluation needs labelled rows")
    if features is None:
        coerced = coerce_features(frame, model.schema, label=label)
        if not coerced.valid.all():
            bad = int((~coerced.valid).sum())
            first = next(reason for reason in coerced.errors if reason)
            raise DataError(f"{label}: {bad:,} row(s) cannot be read (first problem: {first})")
        features = coerced.frame
    y = encode_target(frame[target].reset_index(drop=True), model.schema)
    if model.task == "regression":
        return Predictions(y_true=y, values=model.predict_value(features), weight=weight)
    return Predictions(y_true=y, proba=model.predict_proba(features), weight=weight)
