"""A fitted model: the feature pipeline and the estimator behind one ``predict`` contract.

Targets are encoded as class indices in the order of ``FeatureSchema.target.classes`` before fitting, so every
estimator reports probabilities in that order. LightGBM models are held as a bare ``lightgbm.Booster`` (which is
what is stored, as LightGBM's own text format), other estimators as fitted scikit-learn objects.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property
from typing import TYPE_CHECKING, Any

from keel.domain.encoding import EncodedColumn, compile_plan, transform_frame
from keel.domain.schema import FeatureSchema, Task

if TYPE_CHECKING:
    import numpy as np
    import pandas as pd

LOG_LINK_OBJECTIVES = frozenset({"poisson", "gamma", "tweedie"})
"""LightGBM objectives whose raw score (and so whose contributions) is the log of the predicted value."""


@dataclass
class FittedModel:
    """A fitted pipeline that scores coerced feature frames.

    Attributes:
        schema: The feature schema it was trained with.
        preprocessor: The fitted ``ColumnTransformer``; ``None`` for a loaded model whose pipeline was stored
            compiled (``compiled``).
        estimator: A ``lightgbm.Booster`` or a fitted scikit-learn estimator.
        estimator_name: The configured estimator name.
        feature_names: Names of the preprocessor's output columns.
        categorical_indices: Output columns holding category codes.
        compiled: The compiled encoding as stored with a version, when it was; otherwise it is compiled from
            ``preprocessor`` on first use.
    """

    schema: FeatureSchema
    preprocessor: Any
    estimator: Any
    estimator_name: str
    feature_names: list[str]
    categorical_indices: list[int]
    compiled: list[EncodedColumn] | None = None

    @property
    def task(self) -> Task:
        """``binary``, ``multiclass`` or ``regression``."""
        return self.schema.target.task

    @property
    def classes(self) -> list[Any]:
        """Class labels, in probability column order (empty for regression)."""
        return list(self.schema.target.classes or [])

    @property
    def is_booster(self) -> bool:
        """Whether the estimator is a bare LightGBM booster."""
        return type(self.estimator).__name__ == "Booster"

    @property
    def explainable(self) -> bool:
        """Whether :meth:`contributions` gives per-feature contributions (LightGBM boosters)."""
        return self.is_booster

    @property
    def raw_link(self) -> str:
        """``log`` when the raw score (what contributions add up to) is the log of the prediction, else ``identity``."""
        params = getattr(self.estimator, "params", None) or {}
        return "log" if str(params.get("objective", "")) in LOG_LINK_OBJECTIVES else "identity"

    @cached_property
    def encoding(self) -> list[EncodedColumn] | None:
        """The feature pipeline compiled into per-column encodings, or ``None`` when it cannot be compiled."""
        if self.compiled is not None:
            return self.compiled
        return compile_plan(self.preprocessor, self.schema)

    def transform(self, features: pd.DataFrame) -> Any:
        """Run the feature pipeline on coerced feature columns (compiled when it can be: the same matrix, faster)."""
        return transform_frame(self.preprocessor, self.encoding, features)

    def predict_proba(self, features: pd.DataFrame) -> np.ndarray:
        """Class probabilities, one column per class in ``classes`` order."""
        return self.proba_from_matrix(self.transform(features))

    def proba_from_matrix(self, matrix: Any) -> np.ndarray:
        """Class probabilities from an already transformed matrix."""
        import numpy as np

        if self.task == "regression":
            raise TypeError("a regression model has no class probabilities; use predict_value")
        if self.is_booster:
            raw = np.asarray(self.estimator.predict(matrix))
            return np.column_stack([1.0 - raw, raw]) if raw.ndim == 1 else raw
        return np.asarray(self.estimator.predict_proba(matrix))

    def predict_value(self, features: pd.DataFrame) -> np.ndarray:
        """Predicted values of a regression model."""
        return self.value_from_matrix(self.transform(features))

    def value_from_matrix(self, matrix: Any) -> np.ndarray:
        """Predicted values of a regression model from an already transformed matrix."""
        import numpy as np

        return np.asarray(self.estimator.predict(matrix), dtype=np.float64)

    def predict_labels(self, proba: np.ndarray) -> list[Any]:
        """The most probable class of each row."""
        classes = self.classes
        return [classes[i] for i in proba.argmax(axis=1)]

    def contributions(self, features: pd.DataFrame) -> np.ndarray | None:
        """Per-feature contributions (LightGBM SHAP values) or ``None`` when the estimator has none.

        Returns:
            ``(rows, features + 1)`` for binary and regression (last column is the expected value),
            ``(rows, classes * (features + 1))`` for multiclass, in LightGBM's layout.
        """
        import numpy as np

        if not self.is_booster:
            return None
        return np.asarray(self.estimator.predict(self.transform(features), pred_contrib=True))

    def feature_importance(self) -> dict[str, float] | None:
        """Importance per output column (gain for LightGBM, impurity for forests, |coef| for linear models)."""
        import numpy as np

        if self.is_booster:
            values = self.estimator.feature_importance(importance_type="gain")
        elif hasattr(self.estimator, "feature_importances_"):
            values = self.estimator.feature_importances_
        elif hasattr(self.estimator, "coef_"):
            coef = np.atleast_2d(self.estimator.coef_)
            values = np.abs(coef).mean(axis=0)
        else:
            return None
        return {name: float(v) for name, v in zip(self.feature_names, np.asarray(values), strict=False)}
