"""Training LightGBM on a Dask cluster (``engine: dask``), returning the same kind of model in-process fitting does.

:func:`fit_on_dask` has the signature of :func:`keel.domain.training.fit_model`, so ``keel train`` swaps one for
the other and everything around the fit (loading, splitting, validation, evaluation, artifacts, registration, the
promotion gate) is the same code for both engines.

What runs where: the feature pipeline is fitted on the client (it only learns category codes and column order);
the boosting itself runs in ``lightgbm.dask`` across the workers, each one training on the partitions it holds and
synchronising histograms with the others over LightGBM's own sockets. The fitted model is converted to a local
``lightgbm.Booster`` and stored exactly like an in-process one.

Early stopping: ``lightgbm.dask`` does not support callbacks, so the whole ``n_estimators`` is trained and the best
round is then chosen on the validation split on the client (the validation loss of every round, computed
incrementally, with the configured patience); the rounds after it are dropped, as in-process early stopping does.

This module imports Dask; import it only after :func:`keel.io.cluster.require_extra` said Dask is there.
"""

from __future__ import annotations

import contextlib
import logging
import math
import os
import sys
import warnings
from typing import TYPE_CHECKING, Any

import dask.array as da

from keel.config import FeaturesConfig, ModelConfig
from keel.domain.estimators import build_estimator
from keel.domain.features import build_feature_plan, output_names
from keel.domain.model import FittedModel
from keel.domain.schema import FeatureSchema
from keel.domain.training import FitReport, lightgbm_feature_names
from keel.errors import ConfigError, KeelError
from keel.io.cluster import dask_client

if TYPE_CHECKING:
    import numpy as np
    import pandas as pd

log = logging.getLogger(__name__)

NETWORK_TIMEOUT_MINUTES = 5
"""How long LightGBM workers wait on each other's sockets (``model.params.time_out`` overrides it)."""

_NETWORK_WORDS = ("bind", "port", "socket", "connect", "network", "machines", "time out", "timed out")


def fit_on_dask(
    schema: FeatureSchema,
    features: FeaturesConfig,
    model: ModelConfig,
    *,
    seed: int,
    train_x: pd.DataFrame,
    train_y: np.ndarray,
    valid_x: pd.DataFrame | None = None,
    valid_y: np.ndarray | None = None,
    scheduler: str | None = None,
    workers: int | None = None,
) -> tuple[FittedModel, FitReport]:
    """Fit the feature pipeline locally and LightGBM on a Dask cluster.

    Args:
        schema: Feature schema of the training split.
        features: Features section of the configuration.
        model: Model section (``estimator`` must be ``lightgbm``).
        seed: Random seed.
        train_x: Coerced training feature columns.
        train_y: Encoded training target.
        valid_x: Coerced validation feature columns (to choose the best round when early stopping is set).
        valid_y: Encoded validation target.
        scheduler: Dask scheduler address; ``None`` starts a ``LocalCluster`` on loopback for the fit.
        workers: Workers of that local cluster (default: one per core).

    Returns:
        The fitted model (a local booster) and a report of the fit.

    Raises:
        ConfigError: The estimator is not LightGBM or the features are sparse (text columns).
        KeelError: The LightGBM workers could not open or reach their ports.
    """
    import lightgbm
    from lightgbm.dask import DaskLGBMClassifier, DaskLGBMRegressor

    if model.estimator != "lightgbm":
        raise ConfigError(f"engine: dask trains LightGBM only; model.estimator is {model.estimator!r}")
    plan = build_feature_plan(schema, features, model.estimator)
    preprocessor = plan.transformer
    matrix = preprocessor.fit_transform(train_x)
    if hasattr(matrix, "toarray"):
        raise ConfigError("engine: dask needs dense features; text columns (TF-IDF) only train with engine: local")
    names = output_names(preprocessor)
    categorical = [i for i, name in enumerate(names) if name in set(plan.categorical_columns)]
    spec = build_estimator(
        model.estimator, schema.target.task, model.params, seed=seed, categorical_indices=categorical
    )
    params = {k: v for k, v in spec.estimator.get_params().items() if k != "n_jobs"}
    # LightGBM waits 120 minutes for an unreachable peer by default; fail within minutes instead.
    params.setdefault("time_out", NETWORK_TIMEOUT_MINUTES)
    factory = DaskLGBMRegressor if schema.target.task == "regression" else DaskLGBMClassifier
    with dask_client(scheduler, workers=workers) as client:
        parts = max(1, len(client.scheduler_info()["workers"]))
        rows = max(1, math.ceil(len(train_y) / parts))
        x = da.from_array(matrix, chunks=(rows, matrix.shape[1]))  # type: ignore[no-untyped-call]
        y = da.from_array(train_y, chunks=(rows,))  # type: ignore[no-untyped-call]
        estimator = factory(client=client, **params)
        if scheduler is None:
            # LightGBM's network set-up talks on stdout; keep keel's stdout for results (``--json``).
            client.run(_stdout_to_stderr)
        try:
            with warnings.catch_warnings(), contextlib.redirect_stdout(sys.stderr):
                warnings.filterwarnings("ignore", message="Parameter .* will be ignored")
                feature_names = lightgbm_feature_names(names)
                estimator.fit(x, y, categorical_feature=categorical or "auto", feature_name=feature_names)
        except (lightgbm.basic.LightGBMError, OSError) as exc:
            text = str(exc)
            if any(word in text.lower() for word in _NETWORK_WORDS):
                raise KeelError(
                    f"LightGBM's Dask workers could not set up their network ({text.strip().splitlines()[0]}). keel "
                    "lets LightGBM pick a free port on every worker; remove `local_listen_port` / `machines` from "
                    "model.params if you set them, and make sure the workers' machines accept connections from "
                    "each other on any port (or pin one with model.params.local_listen_port and open it)"
                ) from None
            raise
        booster = estimator.to_local().booster_
    report = FitReport()
    best = booster.current_iteration()
    if valid_x is not None and valid_y is not None and len(valid_x) and model.early_stopping_rounds:
        best = best_round(
            booster, preprocessor.transform(valid_x), valid_y, schema.target.task, model.early_stopping_rounds
        )
    report.best_iteration = int(best)
    report.params = {k: v for k, v in params.items() if v is None or isinstance(v, str | int | float | bool)}
    fitted = lightgbm.Booster(model_str=booster.model_to_string(num_iteration=best))
    fitted_model = FittedModel(
        schema=schema,
        preprocessor=preprocessor,
        estimator=fitted,
        estimator_name=model.estimator,
        feature_names=names,
        categorical_indices=categorical,
    )
    return fitted_model, report


def best_round(booster: Any, matrix: Any, y: np.ndarray, task: str, patience: int) -> int:
    """The boosting round with the lowest validation loss, stopping ``patience`` rounds after it.

    The loss is the objective's default metric (log loss for classification, squared error for regression),
    computed from the raw scores summed round by round, so the cost is one pass over the trees.

    Args:
        booster: The trained ``lightgbm.Booster``.
        matrix: Transformed validation features.
        y: Encoded validation target.
        task: ``binary``, ``multiclass`` or ``regression``.
        patience: Rounds without improvement after which the search stops (``early_stopping_rounds``).

    Returns:
        The number of rounds to keep (at least 1).
    """
    import numpy as np

    total = booster.current_iteration()
    raw: np.ndarray | None = None
    best_loss, best = math.inf, 1
    for round_index in range(total):
        step = np.asarray(booster.predict(matrix, start_iteration=round_index, num_iteration=1, raw_score=True))
        raw = step if raw is None else raw + step
        loss = _loss(raw, y, task)
        if loss < best_loss - 1e-12:
            best_loss, best = loss, round_index + 1
        elif round_index + 1 - best >= patience:
            break
    return best


def _loss(raw: np.ndarray, y: np.ndarray, task: str) -> float:
    import numpy as np

    if task == "regression":
        return float(np.mean((raw - y) ** 2))
    eps = 1e-15
    if task == "binary":
        p = 1.0 / (1.0 + np.exp(-raw))
        p = np.clip(p, eps, 1 - eps)
        return float(-np.mean(y * np.log(p) + (1 - y) * np.log(1 - p)))
    shifted = raw - raw.max(axis=1, keepdims=True)
    log_proba = shifted - np.log(np.exp(shifted).sum(axis=1, keepdims=True))
    return float(-np.mean(log_proba[np.arange(len(y)), y]))


def _stdout_to_stderr() -> None:
    """Point a local worker's stdout at its stderr (LightGBM's C++ code prints network set-up there)."""
    sys.stdout.flush()
    os.dup2(2, 1)
