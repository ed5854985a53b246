"""The one preparation step every training job shares (train, tune, Dask training).

``config ──check──▶ load ──▶ split ──▶ schema ──▶ every data check, once, in one order ──▶ Prepared``

:func:`check_config` runs the checks that need no data (``model.params`` names and types, metrics against a declared
task), so a typo is refused before anything is read. :func:`load_and_check` loads and splits the data in this
process and runs :func:`run_checks`; the Dask engine's partitioned preparation (:mod:`keel.application.dask_train`)
reads the rows on the workers and then runs the same :func:`run_checks` on what the driver holds. :func:`prepare` is
the first two in a row.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal

from keel.application.dataset import LoadedData, load_data
from keel.application.progress import Reporter
from keel.config import KeelConfig, LoadedConfig
from keel.domain.baselines import check_baseline_columns
from keel.domain.estimators import check_params, check_weight_support
from keel.domain.leakage import find_leaks, find_near_leaks, leakage_message, measure, near_leak_warning
from keel.domain.metrics import (
    CLASSIFICATION_METRICS,
    REGRESSION_METRICS,
    check_metrics_fit_task,
    default_metrics,
    default_promotion_metric,
)
from keel.domain.schema import FeatureSchema, infer_schema, infer_task
from keel.domain.splits import split_rows
from keel.domain.training import encode_target
from keel.domain.validation import (
    Coerced,
    coerce_features,
    invalid_rows_message,
    raise_for_all_missing,
    raise_for_invalid_training_rows,
)
from keel.domain.weights import WEIGHT_ADVICE, weight_problem
from keel.errors import ConfigError, DataError

if TYPE_CHECKING:
    import pandas as pd

Purpose = Literal["train", "tune"]
"""What the prepared data is for: ``train`` (fit, evaluate on test) or ``tune`` (fit, score on validation)."""

CHECKS = (
    "config",
    "split",
    "schema",
    "evaluation",
    "weights",
    "training rows",
    "leakage",
    "all-missing features",
    "validation rows",
    "test rows",
)
"""The checks every preparation runs, in this order (``Prepared.checks`` lists those done)."""


@dataclass
class Parts:
    """The labelled rows of each part of the split (``valid`` is ``None`` without a validation part)."""

    train: pd.DataFrame
    valid: pd.DataFrame | None
    test: pd.DataFrame


@dataclass
class Prepared:
    """Validated data, ready to fit on.

    Attributes:
        data: The loaded tables (``train`` is a bounded sample of the training rows when they stay on Dask workers).
        parts: Training (or that sample), validation and test rows.
        schema: The feature schema of the training rows.
        train_x: Coerced feature columns of ``parts.train``.
        train_y: The encoded target of ``parts.train`` (for the naive baseline).
        valid_x: Coerced feature columns of the validation rows (``None`` without them).
        valid_y: Their encoded target.
        metric_names: Metrics to evaluate.
        promotion_metric: The metric the promotion gate compares.
        tuning_metric: The validation metric ``keel tune`` optimises (``None`` when preparing for training).
        rows: Rows per part (train, valid, test).
        checks: The checks done, in the order they ran (see :data:`CHECKS`).
        remote: The training rows kept on Dask workers (what the Dask engine fits from); ``None`` when
            ``train_x`` holds all of them.
        warnings: Near-leakage warnings (a version trained with any is registered but not promoted automatically).
        weights: With ``data.weight``: each part's sample weights (``train``, ``valid``, ``test``; float64 arrays
            aligned with ``parts``), checked; empty without it.
        test_x: Coerced feature columns of ``parts.test`` (scored and explained after the fit without coercing
            them again).
    """

    data: LoadedData
    parts: Parts
    schema: FeatureSchema
    train_x: pd.DataFrame
    train_y: Any
    valid_x: pd.DataFrame | None
    valid_y: Any
    metric_names: list[str]
    promotion_metric: str
    tuning_metric: str | None
    rows: dict[str, int]
    checks: list[str] = field(default_factory=list)
    remote: Any = None
    warnings: list[str] = field(default_factory=list)
    weights: dict[str, Any] = field(default_factory=dict)
    test_x: pd.DataFrame | None = None


@dataclass
class Checked:
    """What :func:`run_checks` derived from the data while checking it."""

    train_x: pd.DataFrame
    train_y: Any
    valid_x: pd.DataFrame | None
    valid_y: Any
    metric_names: list[str]
    promotion_metric: str
    tuning_metric: str | None
    checks: list[str]
    warnings: list[str] = field(default_factory=list)
    weights: dict[str, Any] = field(default_factory=dict)
    test_x: pd.DataFrame | None = None

    def prepared(
        self, *, data: LoadedData, parts: Parts, schema: FeatureSchema, rows: dict[str, int], remote: Any = None
    ) -> Prepared:
        """The :class:`Prepared` value these checked columns belong to."""
        return Prepared(
            data=data,
            parts=parts,
            schema=schema,
            train_x=self.train_x,
            train_y=self.train_y,
            valid_x=self.valid_x,
            valid_y=self.valid_y,
            metric_names=self.metric_names,
            promotion_metric=self.promotion_metric,
            tuning_metric=self.tuning_metric,
            rows=rows,
            checks=self.checks,
            remote=remote,
            warnings=self.warnings,
            weights=self.weights,
            test_x=self.test_x,
        )


def check_config(config: KeelConfig) -> None:
    """Refuse what the configuration alone shows to be wrong, before any data is read.

    Checks ``model.params`` against the estimator's real parameters (names and value types) and the configured
    metrics against ``data.task`` when it is declared (with ``task: auto`` the metrics must at least fit one kind of
    task together).

    Raises:
        ConfigError: An unknown or mistyped parameter, an estimator that cannot do the declared task, or a metric
            that does not apply to it.
    """
    task = None if config.data.task == "auto" else config.data.task
    check_params(config.model.estimator, task, config.model.params)
    if config.data.weight is not None:
        from keel.domain.automl import CANDIDATE_ESTIMATORS

        fitted = CANDIDATE_ESTIMATORS if config.model.estimator == "auto" else (config.model.estimator,)
        check_weight_support(fitted, task, config.data.weight)
    named = {
        "evaluation": [*config.evaluation.metrics] + [m for m in [config.evaluation.promotion.metric] if m is not None],
        "tuning.metric": [m for m in [config.tuning.metric] if m is not None],
    }
    for key, metrics in named.items():
        if task is not None:
            wrong = check_metrics_fit_task(metrics, task)
            if wrong:
                raise ConfigError(
                    f"{key}: metric(s) {', '.join(sorted(set(wrong)))} do not apply to a {task} task "
                    f"(data.task); use some of {', '.join(default_metrics(task))}"
                )
    every = [metric for metrics in named.values() for metric in metrics]
    regression = sorted({m for m in every if m in REGRESSION_METRICS})
    classification = sorted({m for m in every if m in CLASSIFICATION_METRICS})
    if regression and classification:
        raise ConfigError(
            f"evaluation/tuning metrics mix regression ({', '.join(regression)}) and classification "
            f"({', '.join(classification)}) metrics; no task fits both, keep one kind"
        )


def prepare(loaded: LoadedConfig, reporter: Reporter, *, purpose: Purpose = "train") -> Prepared:
    """:func:`check_config`, then :func:`load_and_check`: the whole preparation in this process."""
    check_config(loaded.config)
    return load_and_check(loaded, reporter, purpose=purpose)


def load_and_check(loaded: LoadedConfig, reporter: Reporter, *, purpose: Purpose = "train") -> Prepared:
    """Load, split, infer the schema and run every data check, in this process (:func:`check_config` ran before).

    Args:
        loaded: The configuration.
        reporter: Receives progress ("Loading data", "Splitting and validating") and notes.
        purpose: ``tune`` also requires a validation part and checks ``tuning.metric`` against the task.

    Returns:
        The prepared data.

    Raises:
        ConfigError: The configuration is wrong on its own or does not fit the data.
        DataError: The data fails validation (leaky or empty features, unreadable values, an empty test part).
    """
    config = loaded.config
    with reporter.step("Loading data"):
        data = load_data(loaded)
        for note in data.notes:
            reporter.note(note)
        for reason, count in data.dropped.items():
            reporter.note(f"dropped {count:,} row(s): {reason}")
    with reporter.step("Splitting and validating"):
        parts = split_parts(data, loaded)
        if purpose == "tune":
            require_validation_part(parts.valid)
        schema = infer_schema(parts.train, config.data)
        note_schema(schema, reporter)
        checked = run_checks(
            loaded,
            schema,
            train=parts.train,
            valid=parts.valid,
            test=parts.test,
            all_missing=lambda train_x: [n for n in schema.feature_names if train_x[n].isna().all()],
            purpose=purpose,
        )
        rows = {
            "train": len(parts.train),
            "valid": 0 if parts.valid is None else len(parts.valid),
            "test": len(parts.test),
        }
        note_rows(schema, rows, reporter)
    return checked.prepared(data=data, parts=parts, schema=schema, rows=rows)


def run_checks(
    loaded: LoadedConfig,
    schema: FeatureSchema,
    *,
    train: pd.DataFrame,
    valid: pd.DataFrame | None,
    test: pd.DataFrame,
    all_missing: Callable[[pd.DataFrame], list[str]],
    purpose: Purpose,
    train_label: str = "training rows",
) -> Checked:
    """Every check of the split data, once, in the order of :data:`CHECKS` (the config and split checks ran before).

    Args:
        loaded: The configuration.
        schema: The training rows' schema.
        train: The training rows (or, on Dask, the sample the driver holds).
        valid: The validation rows, if any.
        test: The test rows.
        all_missing: The feature columns with no value in any training row, given the coerced ``train`` features
            (on Dask, from the workers' summaries of every partition).
        purpose: ``tune`` also checks ``tuning.metric``.
        train_label: How to name ``train`` in errors.

    Raises:
        ConfigError: A metric does not apply to the task, or a slice or baseline column is not in the test data.
        DataError: Unreadable values, a feature that reproduces the target, or a feature with no values.
    """
    config = loaded.config
    checks = ["config", "split", "schema"]
    warnings: list[str] = []
    metric_names, promotion_metric = check_evaluation(loaded, schema, test)
    tuning_metric = check_tuning_metric(loaded, schema) if purpose == "tune" else None
    checks.append("evaluation")
    weights = check_weights(
        loaded, {"train": (train_label, train), "valid": ("validation rows", valid), "test": ("test rows", test)}
    )
    if config.data.weight is not None:
        checks.append("weights")
    coerced = coerce_parts(schema, {train_label: train, "validation rows": valid, "test rows": test})
    train_x, train_y = features_and_target(train, schema, train_label, coerced.get(train_label))
    checks.append("training rows")
    if config.data.leakage_check:
        measured = measure(train_x, train_y, schema)
        leaks = find_leaks(train_x, train_y, schema, measured=measured)
        if leaks:
            raise DataError(leakage_message(leaks, schema.target.name))
        known = set(config.data.known_in_advance)
        warnings = [
            near_leak_warning(leak)
            for leak in find_near_leaks(train_x, train_y, schema, known=known, measured=measured)
        ]
        checks.append("leakage")
    raise_for_all_missing(all_missing(train_x), label="training rows")
    checks.append("all-missing features")
    valid_x, valid_y = (None, None)
    if valid is not None and len(valid):
        valid_x, valid_y = features_and_target(valid, schema, "validation rows", coerced.get("validation rows"))
    checks.append("validation rows")
    test_x, _ = features_and_target(test, schema, "test rows", coerced.get("test rows"))
    checks.append("test rows")
    return Checked(
        train_x,
        train_y,
        valid_x,
        valid_y,
        metric_names,
        promotion_metric,
        tuning_metric,
        checks,
        warnings,
        weights,
        test_x=test_x,
    )


def check_weights(loaded: LoadedConfig, parts: dict[str, tuple[str, pd.DataFrame | None]]) -> dict[str, Any]:
    """Every part's sample weights (``data.weight``), all parts checked before any is refused.

    Args:
        loaded: The configuration.
        parts: Part key (``train``, ``valid``, ``test``) → its label in messages and its rows (``None``: no part).

    Returns:
        Part key → float64 weights (parts without rows are left out); empty without ``data.weight``.

    Raises:
        DataError: A part lacks the column, or some row's weight is not a finite number >= 0 (counted per part,
            naming the file).
    """
    import numpy as np
    import pandas as pd

    data = loaded.config.data
    if data.weight is None:
        return {}
    files = {
        "train": data.train,
        "valid": data.train,
        "test": data.test if loaded.config.split.strategy == "explicit" else data.train,
    }
    problems, weights = [], {}
    for key, (label, frame) in parts.items():
        if frame is None or not len(frame):
            continue
        source = files[key]
        where = f"{label} (from {source.path or source.url})" if source is not None else label
        problem = weight_problem(frame, data.weight, label=where)
        if problem is not None:
            problems.append(problem)
        else:
            weights[key] = pd.to_numeric(frame[data.weight]).to_numpy(dtype=np.float64)
    if problems:
        raise DataError("\n".join(problems) + WEIGHT_ADVICE)
    return weights


def require_validation_part(valid: pd.DataFrame | None) -> None:
    """Refuse tuning without validation rows (trials are never scored on the test part).

    Raises:
        ConfigError: No validation rows.
    """
    if valid is None or not len(valid):
        raise ConfigError(
            "keel tune scores trials on the validation split and never on the test split; set `split.valid_size` "
            "(e.g. split.valid_size=0.2)"
        )


def check_tuning_metric(loaded: LoadedConfig, schema: FeatureSchema) -> str:
    """The validation metric ``keel tune`` optimises, checked against the task.

    Raises:
        ConfigError: It does not apply to the task.
    """
    config = loaded.config
    task = schema.target.task
    metric = config.tuning.metric or config.evaluation.promotion.metric or default_promotion_metric(task)
    if check_metrics_fit_task([metric], task):
        raise ConfigError(f"tuning.metric: {metric!r} does not apply to a {task} task")
    return metric


def note_schema(schema: FeatureSchema, reporter: Reporter) -> None:
    """Tell the user each inferred column type and each column that is not a feature."""
    for column in schema.columns:
        if column.inferred and column.role != "target":
            reporter.note(f"{column.name}: {column.role}, {column.type} (inferred: {column.note})")
        elif column.role != "feature":
            reporter.note(f"{column.name}: {column.role}" + (f" ({column.note})" if column.note else ""))


def note_rows(schema: FeatureSchema, rows: dict[str, int], reporter: Reporter) -> None:
    """Tell the user the task, the feature count and the rows of each part."""
    reporter.note(
        f"{schema.target.task} task on {len(schema.feature_names)} features; rows: train {rows['train']:,}, "
        f"valid {rows['valid']:,}, test {rows['test']:,}"
    )


def check_evaluation(loaded: LoadedConfig, schema: FeatureSchema, test: pd.DataFrame) -> tuple[list[str], str]:
    """The metrics to evaluate and the promotion metric, checked against the task and the test table's columns.

    Raises:
        ConfigError: A metric does not apply to the task, or a slice or baseline column is not in the test data.
    """
    config = loaded.config
    task = schema.target.task
    metric_names: list[str] = [*config.evaluation.metrics] or default_metrics(task)
    wrong = check_metrics_fit_task(metric_names, task)
    promotion_metric = config.evaluation.promotion.metric or default_promotion_metric(task)
    wrong += check_metrics_fit_task([promotion_metric], task)
    if wrong:
        raise ConfigError(
            f"evaluation: metric(s) {', '.join(sorted(set(wrong)))} do not apply to a {task} task; "
            f"use some of {', '.join(default_metrics(task))}"
        )
    if promotion_metric not in metric_names:
        metric_names.append(promotion_metric)
    for slice_column in config.evaluation.slices:
        if slice_column not in test.columns:
            raise ConfigError(f"evaluation.slices: column {slice_column!r} is not in the test data")
    check_baseline_columns(config.evaluation.baselines, list(test.columns), task)
    return metric_names, promotion_metric


def split_parts(data: LoadedData, loaded: LoadedConfig) -> Parts:
    """Split the loaded tables into train, validation and test rows as the config says.

    Raises:
        DataError: The explicit test table lacks columns, or the test part is empty.
    """
    config = loaded.config
    task = infer_task(data.train[config.data.target], config.data.task)
    indices = split_rows(data.train, config.data.target, config.split, classification=task != "regression")
    frame = data.train
    valid = frame.iloc[indices.valid].reset_index(drop=True) if len(indices.valid) else None
    if config.split.strategy == "explicit":
        if data.test is None:
            raise ConfigError("split.strategy is `explicit` but no data.test table is configured")
        test = data.test
        missing = [c for c in frame.columns if c not in test.columns and c != config.data.target]
        if missing:
            raise DataError(f"{data.sources['test'].label}: the test table lacks column(s) {', '.join(missing)}")
    else:
        test = frame.iloc[indices.test].reset_index(drop=True)
    if test.empty:
        raise DataError("the test part is empty; check `split.test_size` or the test file")
    return Parts(train=frame.iloc[indices.train].reset_index(drop=True), valid=valid, test=test)


def coerce_parts(schema: FeatureSchema, parts: dict[str, pd.DataFrame | None]) -> dict[str, Coerced]:
    """Coerce every part's features, checking them all before refusing any, so one message counts each part.

    Returns:
        The coerced features per part label (parts without rows are left out).

    Raises:
        DataError: Some part holds values that cannot be read as their column's type.
    """
    messages = []
    coerced: dict[str, Coerced] = {}
    for label, frame in parts.items():
        if frame is None or not len(frame):
            continue
        coerced[label] = coerce_features(frame, schema, label=label)
        message = invalid_rows_message(frame, coerced[label], schema, label=label)
        if message is not None:
            messages.append(message)
    if messages:
        raise DataError(
            "\n".join(messages) + "\nFix the data, or declare the column's type in `data.types` (e.g. categorical)."
        )
    return coerced


def features_and_target(
    frame: pd.DataFrame, schema: FeatureSchema, label: str, coerced: Coerced | None = None
) -> tuple[pd.DataFrame, Any]:
    """Coerced feature columns and the encoded target of labelled rows (``coerced``: already coerced features).

    Raises:
        DataError: Some values cannot be read as their column's type (counted, with examples).
    """
    coerced = coerced or coerce_features(frame, schema, label=label)
    raise_for_invalid_training_rows(frame, coerced, schema, label=label)
    return coerced.frame, encode_target(frame[schema.target.name].reset_index(drop=True), schema)
