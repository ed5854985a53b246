"""Fitting a feature pipeline and estimator on coerced training columns."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from keel.config import FeaturesConfig, ModelConfig
from keel.domain.estimators import build_estimator
from keel.domain.features import build_feature_plan, output_names
from keel.domain.model import FittedModel
from keel.domain.rounds import plan_rounds
from keel.domain.schema import FeatureSchema
from keel.errors import DataError

if TYPE_CHECKING:
    import numpy as np
    import pandas as pd


@dataclass
class FitReport:
    """What happened during fitting.

    Attributes:
        best_iteration: Boosting rounds kept after early stopping (LightGBM), else ``None``.
        params: The estimator's effective parameters.
        leaderboard: With ``estimator: auto``, every candidate's validation score and fit seconds.
        chosen: With ``estimator: auto``, the candidate kept.
        notes: What the fit chose on its own for these rows (the defaults the data asked for), one line each.
    """

    best_iteration: int | None = None
    params: dict[str, Any] = field(default_factory=dict)
    leaderboard: list[dict[str, Any]] = field(default_factory=list)
    chosen: str | None = None
    notes: list[str] = field(default_factory=list)


def encode_target(target: pd.Series, schema: FeatureSchema) -> np.ndarray:
    """Class indices (classification) or float values (regression) for a target column.

    Raises:
        DataError: A label is not one of the classes seen in training.
    """
    import numpy as np
    import pandas as pd

    if schema.target.task == "regression":
        return pd.to_numeric(target, errors="raise").to_numpy(dtype=np.float64)
    # A hash lookup of every label at once (a dict lookup per row took four times as long).
    codes = pd.Index(schema.target.classes or []).get_indexer(pd.Index(target))
    unknown = codes < 0
    if unknown.any():
        examples = target[unknown].astype(str).unique()[:5].tolist()
        raise DataError(
            f"target {schema.target.name!r} has {int(unknown.sum()):,} value(s) that are not classes seen in "
            f"training (for example {examples}); known classes: {schema.target.classes}"
        )
    return codes.astype(np.int64)


@dataclass
class FeatureFit:
    """The fitted feature pipeline and the unfitted estimator that learns from its output.

    Attributes:
        preprocessor: The fitted ``ColumnTransformer``.
        names: Its output columns' readable names.
        categorical: Output positions of the integer-coded categorical columns.
        estimator: The estimator, built for the task with ``model.params`` (interaction constraints named by
            column resolved to positions).
    """

    preprocessor: Any
    names: list[str]
    categorical: list[int]
    estimator: Any


def fit_features(
    schema: FeatureSchema, features: FeaturesConfig, model: ModelConfig, *, seed: int, frame: pd.DataFrame
) -> tuple[FeatureFit, Any]:
    """Build the feature plan, fit it on ``frame`` and build the estimator for its output.

    Args:
        schema: Feature schema of the training split.
        features: Features section of the configuration.
        model: Model section of the configuration.
        seed: Random seed.
        frame: Coerced feature columns to fit the pipeline on.

    Returns:
        What was fitted and built, and ``frame`` transformed (a dense or sparse matrix).

    Raises:
        ConfigError: ``model.params.interaction_constraints`` names a column the pipeline does not output.
    """
    plan = build_feature_plan(schema, features, model.estimator)
    preprocessor = plan.transformer
    matrix = preprocessor.fit_transform(frame)
    names = output_names(preprocessor)
    categorical = [i for i, name in enumerate(names) if name in set(plan.categorical_columns)]
    spec = build_estimator(
        model.estimator,
        schema.target.task,
        _resolve_interaction_constraints(model.params, names),
        seed=seed,
        categorical_indices=categorical,
    )
    return FeatureFit(preprocessor, names, categorical, spec.estimator), matrix


def fit_model(
    schema: FeatureSchema,
    features: FeaturesConfig,
    model: ModelConfig,
    *,
    seed: int,
    train_x: pd.DataFrame,
    train_y: np.ndarray,
    valid_x: pd.DataFrame | None = None,
    valid_y: np.ndarray | None = None,
    callbacks: Sequence[Any] = (),
    train_weight: np.ndarray | None = None,
    valid_weight: np.ndarray | None = None,
) -> tuple[FittedModel, FitReport]:
    """Fit the feature pipeline and the estimator.

    Args:
        schema: Feature schema of the training split.
        features: Features section of the configuration.
        model: Model section of the configuration.
        seed: Random seed.
        train_x: Coerced training feature columns.
        train_y: Encoded training target (see :func:`encode_target`).
        valid_x: Coerced validation feature columns, for early stopping.
        valid_y: Encoded validation target.
        callbacks: Extra LightGBM callbacks, called with the validation scores each round (``keel tune`` prunes
            unpromising trials with one); ignored by other estimators.
        train_weight: Sample weights of the training rows (``data.weight``), passed to the estimator's ``fit`` as
            ``sample_weight``; ``None`` weighs every row the same.
        valid_weight: Sample weights of the validation rows: LightGBM's early stopping then scores the validation
            rows weighted (``eval_sample_weight``).

    Returns:
        The fitted model and a report of the fit.
    """
    has_valid = valid_x is not None and valid_y is not None and len(valid_x) > 0
    stopping = None
    if model.estimator == "lightgbm":
        rounds = plan_rounds(model, has_valid=has_valid)
        model, stopping = model.model_copy(update={"params": rounds.params}), rounds.stopping_callback()
    prepared, matrix = fit_features(schema, features, model, seed=seed, frame=train_x)
    preprocessor, names, categorical = prepared.preprocessor, prepared.names, prepared.categorical
    estimator = prepared.estimator
    report = FitReport()
    if model.estimator == "lightgbm":
        import lightgbm

        fit_kwargs: dict[str, Any] = {
            "categorical_feature": categorical or "auto",
            "feature_name": lightgbm_feature_names(names),
        }
        if train_weight is not None:
            fit_kwargs["sample_weight"] = train_weight
        if has_valid and (stopping or callbacks):
            fit_kwargs["eval_X"] = (preprocessor.transform(valid_x),)
            fit_kwargs["eval_y"] = (valid_y,)
            fit_kwargs["callbacks"] = list(callbacks)
            if valid_weight is not None:
                fit_kwargs["eval_sample_weight"] = [valid_weight]
        if has_valid and stopping:
            fit_kwargs["callbacks"].append(stopping)
        estimator.fit(matrix, train_y, **fit_kwargs)
        booster = estimator.booster_
        best = booster.best_iteration if booster.best_iteration > 0 else booster.current_iteration()
        report.best_iteration = int(best)
        # Keep only the rounds early stopping chose, so the stored model and every prediction use the same trees.
        booster = lightgbm.Booster(model_str=booster.model_to_string(num_iteration=best))
        fitted: Any = booster
    else:
        # Every estimator keel builds takes sample_weight (domain.estimators.check_weight_support refuses others).
        estimator.fit(matrix, train_y, **({} if train_weight is None else {"sample_weight": train_weight}))
        fitted = estimator
    report.params = {k: v for k, v in estimator.get_params().items() if _is_plain(v)}
    fitted_model = FittedModel(
        schema=schema,
        preprocessor=preprocessor,
        estimator=fitted,
        estimator_name=model.estimator,
        feature_names=names,
        categorical_indices=categorical,
    )
    return fitted_model, report


def _resolve_interaction_constraints(params: dict[str, Any], names: list[str]) -> dict[str, Any]:
    """LightGBM's ``interaction_constraints`` with feature names turned into the pipeline's output indices.

    Raises:
        ConfigError: A name is not an output column of the feature pipeline.
    """
    from keel.errors import ConfigError

    groups = params.get("interaction_constraints")
    if not isinstance(groups, list) or not any(isinstance(g, list) for g in groups):
        return params
    index = {name: i for i, name in enumerate(names)}
    resolved = []
    for group in groups:
        indices = []
        for item in group:
            if isinstance(item, str):
                if item not in index:
                    raise ConfigError(
                        f"`model.params.interaction_constraints`: {item!r} is not a model input; inputs: "
                        f"{', '.join(names[:40])}"
                    )
                indices.append(index[item])
            else:
                indices.append(int(item))
        resolved.append(indices)
    return {**params, "interaction_constraints": resolved}


def lightgbm_feature_names(names: list[str]) -> list[str]:
    """Feature names LightGBM accepts: JSON specials and spaces replaced, and every name unique.

    Replacing characters can make two names equal (character n-grams such as ``"a,"`` and ``"a:"``), which
    LightGBM refuses, so a repeated name gets its position appended.
    """
    import re

    cleaned = [re.sub(r'[\[\]{}":,\s]', "_", name) for name in names]
    seen: set[str] = set()
    unique = []
    for position, name in enumerate(cleaned):
        if name in seen:
            name = f"{name}__{position}"
        seen.add(name)
        unique.append(name)
    return unique


def _is_plain(value: Any) -> bool:
    return value is None or isinstance(value, str | int | float | bool)
