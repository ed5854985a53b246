"""Training LightGBM on a Dask cluster (``engine: dask``), returning the same kind of model in-process fitting does.

Two paths, chosen by :func:`partitioned_source`:

- A Parquet ``data.train`` (a file, a folder of parts or a glob) never comes to the driver:
  :func:`prepare_partitioned` has the workers read, recode, split (a seeded per-row hash, see
  :func:`keel.domain.splits.row_draws`), validate and summarise every partition, and brings back only the
  validation rows, the test rows, a bounded training sample and small per-partition summaries, from which the
  driver completes the schema (:mod:`keel.domain.summaries`) and fits the tree feature pipeline on a frame holding
  each category once. The workers then encode their partitions and keep them for the fit.
- Anything else (CSV, recipes, chronological splits, one-hot encoding) is loaded and split on the driver as
  ``engine: local`` does, and :func:`fit_on_dask`, which takes :func:`keel.domain.training.fit_model`'s arguments
  and the client, ships the encoded matrix to the workers.

:class:`keel.application.engines.DaskEngine` chooses between them and owns the cluster.

Both end in the same fit: ``lightgbm.dask`` boosts across the workers, each one training on the partitions it
holds and synchronising histograms with the others over LightGBM's own sockets, and the fitted model is converted
to a local ``lightgbm.Booster`` and stored exactly like an in-process one (same artifacts, evaluation, gate).

Early stopping: ``lightgbm.dask`` does not support callbacks, so the whole ``n_estimators`` is trained and the best
round is then chosen on the validation split on the client (the validation loss of every round, computed
incrementally, with the configured patience); the rounds after it are dropped, as in-process early stopping does.

This module imports Dask; import it only after :func:`keel.io.cluster.require_extra` said Dask is there.
"""

from __future__ import annotations

import contextlib
import logging
import math
import sys
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import dask.array as da
from dask.delayed import delayed

from keel.application.prepare import Parts, Prepared, note_rows, note_schema, run_checks
from keel.config import DataConfig, FeaturesConfig, LoadedConfig, ModelConfig
from keel.domain.boosting import best_round
from keel.domain.encoding import compile_plan, transform_frame
from keel.domain.features import choose_encoding
from keel.domain.model import FittedModel
from keel.domain.schema import FeatureSchema, infer_schema, missing_column_message
from keel.domain.splits import TEST, TRAIN, VALID, assign_parts, row_draws, split_shares, training_draws
from keel.domain.summaries import (
    TrainingSummary,
    all_missing_features,
    complete_schema,
    encoder_fit_frame,
    merge_summaries,
    summarize_rows,
)
from keel.domain.training import FeatureFit, FitReport, encode_target, fit_features, lightgbm_feature_names
from keel.domain.validation import coerce_features, raise_for_invalid_training_rows
from keel.errors import ConfigError, DataError, KeelError
from keel.io.cluster import fingerprint_on_workers, parquet_partitions, stdout_to_stderr
from keel.io.sources import ResolvedSource, resolve_source
from keel.io.tables import detect_format, parquet_parts, parquet_row_count

if TYPE_CHECKING:
    import numpy as np
    import pandas as pd

    from keel.application.progress import Reporter

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
    client: Any,
    local: bool,
) -> tuple[FittedModel, FitReport]:
    """Fit the feature pipeline locally and LightGBM on a Dask cluster, from training rows held in this process.

    The path for tables the workers cannot read themselves (CSV, recipes); a Parquet table is read, split and
    encoded on the workers by :func:`prepare_partitioned` instead.

    Args:
        schema: Feature schema of the training split.
        features: Features section of the configuration.
        model: Model section (``estimator`` must be ``lightgbm``).
        seed: Random seed.
        train_x: Coerced training feature columns.
        train_y: Encoded training target.
        valid_x: Coerced validation feature columns (to choose the best round when early stopping is set).
        valid_y: Encoded validation target.
        client: The connected Dask client.
        local: Whether its workers are a ``LocalCluster`` of this process.

    Returns:
        The fitted model (a local booster) and a report of the fit.

    Raises:
        ConfigError: The estimator is not LightGBM or the features are sparse (text columns).
        KeelError: The LightGBM workers could not open or reach their ports.
    """
    _check_lightgbm(model)
    fitted, matrix = fit_features(schema, features, model, seed=seed, frame=train_x)
    if hasattr(matrix, "toarray"):
        raise ConfigError(_TEXT_MESSAGE)
    parts = max(1, len(client.scheduler_info()["workers"]))
    rows = max(1, math.ceil(len(train_y) / parts))
    x = da.from_array(matrix, chunks=(rows, matrix.shape[1]))  # type: ignore[no-untyped-call]
    y = da.from_array(train_y, chunks=(rows,))  # type: ignore[no-untyped-call]
    return _boost(client, fitted, x, y, schema=schema, model=model, valid=(valid_x, valid_y), local=local)


_TEXT_MESSAGE = "engine: dask needs dense features; text columns (TF-IDF) only train with engine: local"


def _check_lightgbm(model: ModelConfig) -> None:
    if model.estimator != "lightgbm":
        raise ConfigError(f"engine: dask trains LightGBM only; model.estimator is {model.estimator!r}")


def _boost(
    client: Any,
    fitted: FeatureFit,
    x: Any,
    y: Any,
    *,
    schema: FeatureSchema,
    model: ModelConfig,
    valid: tuple[pd.DataFrame | None, np.ndarray | None],
    local: bool,
) -> tuple[FittedModel, FitReport]:
    """Boost on the workers holding ``x`` and ``y`` (Dask arrays) and bring the model back as a local booster.

    Args:
        client: The connected client.
        fitted: The fitted feature pipeline and the estimator whose parameters to use.
        x: Encoded training features.
        y: Encoded training target, partitioned like ``x``.
        schema: Feature schema of the training rows.
        model: Model section of the configuration.
        valid: Coerced validation features and encoded target (``None`` without validation rows).
        local: Whether the workers are a ``LocalCluster`` of this process (their stdout is then redirected).

    Raises:
        KeelError: The LightGBM workers could not open or reach their ports.
    """
    import lightgbm
    from lightgbm.dask import DaskLGBMClassifier, DaskLGBMRegressor

    params = {k: v for k, v in fitted.estimator.get_params().items() if k != "n_jobs"}
    # LightGBM waits 120 minutes for an unreachable peer by default; fail within minutes instead.
    params.setdefault("time_out", NETWORK_TIMEOUT_MINUTES)
    factory = DaskLGBMRegressor if schema.target.task == "regression" else DaskLGBMClassifier
    estimator = factory(client=client, **params)
    if local:
        # LightGBM's network set-up talks on stdout; keep keel's stdout for results (``--json``).
        client.run(stdout_to_stderr)
    try:
        with warnings.catch_warnings(), contextlib.redirect_stdout(sys.stderr):
            warnings.filterwarnings("ignore", message="Parameter .* will be ignored")
            feature_names = lightgbm_feature_names(fitted.names)
            estimator.fit(x, y, categorical_feature=fitted.categorical or "auto", feature_name=feature_names)
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
    valid_x, valid_y = valid
    if valid_x is not None and valid_y is not None and len(valid_x) and model.early_stopping_rounds:
        matrix = fitted.preprocessor.transform(valid_x)
        best = best_round(booster, matrix, valid_y, schema.target.task, model.early_stopping_rounds)
    report.best_iteration = int(best)
    report.params = {k: v for k, v in params.items() if v is None or isinstance(v, str | int | float | bool)}
    fitted_model = FittedModel(
        schema=schema,
        preprocessor=fitted.preprocessor,
        estimator=lightgbm.Booster(model_str=booster.model_to_string(num_iteration=best)),
        estimator_name=model.estimator,
        feature_names=fitted.names,
        categorical_indices=fitted.categorical,
    )
    return fitted_model, report


DEFAULT_COLLECT_ROWS = 2_000_000
"""Most test and validation rows brought to the driver unless ``dask_collect_rows`` says otherwise."""
TRAINING_SAMPLE_ROWS = 50_000
"""About how many training rows the driver receives: to infer column types, check for leaks, and as the drift
reference and naive baseline."""


def partitioned_source(loaded: LoadedConfig) -> tuple[ResolvedSource | None, str]:
    """The Parquet training table the workers read themselves, or ``None`` and why the driver must read it.

    Raises:
        DataError: The configured training file does not exist.
    """
    config = loaded.config
    data = config.data
    if data.recipe is not None:
        return None, "a dataset recipe (data.recipe) needs the whole table"
    if data.train.years is not None:
        return None, "data.train is read year by year (years)"
    if config.split.strategy == "chronological":
        return None, "split.strategy chronological orders all the rows"
    if choose_encoding(config.features, config.model.estimator) != "ordinal":
        return None, "features.encoding onehot learns imputation and scaling from all the rows"
    source = resolve_source(data.train, data_dir=data.data_dir, base_dir=loaded.base_dir)
    if detect_format(source.path, data.train.format) != "parquet":
        return None, f"data.train ({source.label}) is not Parquet"
    return source, ""


@dataclass(frozen=True)
class _SplitPlan:
    """How every partition turns into labelled, split rows (sent to the workers with each task)."""

    data: DataConfig
    label: str
    columns: list[str]
    seed: int
    test_share: float
    valid_share: float
    sample_share: float


@dataclass
class _SplitPiece:
    counts: list[int]
    dropped: int
    valid: pd.DataFrame
    test: pd.DataFrame
    sample: pd.DataFrame


def _labelled(frame: pd.DataFrame, plan: _SplitPlan) -> tuple[pd.DataFrame, np.ndarray, int]:
    """A partition's labelled rows (recoded), the part of each row, and how many rows had no label."""
    from keel.application.dataset import labelled_rows

    frame, dropped = labelled_rows(frame.reset_index(drop=True), plan.data, label=plan.label)
    draws = row_draws(frame, plan.seed)
    return frame, draws, dropped


def _split_partition(frame: pd.DataFrame, plan: _SplitPlan) -> _SplitPiece:
    """Split one partition; only its validation and test rows and a sample of its training rows travel back."""
    import numpy as np

    frame, draws, dropped = _labelled(frame, plan)
    parts = assign_parts(draws, plan.test_share, plan.valid_share)
    sampled = (parts == TRAIN) & (training_draws(draws, plan.test_share, plan.valid_share) < plan.sample_share)
    return _SplitPiece(
        counts=np.bincount(parts, minlength=3).tolist(),
        dropped=dropped,
        valid=frame.loc[parts == VALID],
        test=frame.loc[parts == TEST],
        sample=frame.loc[sampled],
    )


def _training_rows(frame: pd.DataFrame, plan: _SplitPlan) -> pd.DataFrame:
    frame, draws, _ = _labelled(frame, plan)
    training: pd.DataFrame = frame.loc[assign_parts(draws, plan.test_share, plan.valid_share) == TRAIN]
    return training.reset_index(drop=True)


def _summarize_partition(frame: pd.DataFrame, plan: _SplitPlan, schema: FeatureSchema, index: int) -> TrainingSummary:
    """Validate one partition's training rows and summarise them for the schema."""
    frame = _training_rows(frame, plan)
    label = f"training rows of {plan.label} (partition {index + 1})"
    coerced = coerce_features(frame, schema, label=label)
    raise_for_invalid_training_rows(frame, coerced, schema, label=label)
    return summarize_rows(frame, coerced.frame, schema)


def _encode_partition(
    frame: pd.DataFrame, plan: _SplitPlan, schema: FeatureSchema, preprocessor: Any, encoding: Any
) -> tuple[np.ndarray, np.ndarray]:
    """One partition's training rows as LightGBM's input matrix and encoded target."""
    import numpy as np

    frame = _training_rows(frame, plan)
    coerced = coerce_features(frame, schema, label=plan.label).frame
    matrix = np.asarray(transform_frame(preprocessor, encoding, coerced), dtype=np.float64)
    return matrix, encode_target(frame[schema.target.name], schema)


def prepare_partitioned(loaded: LoadedConfig, source: ResolvedSource, client: Any, reporter: Reporter) -> Prepared:
    """Read, split, validate and summarise a Parquet training table on the workers, partition by partition.

    The driver receives the validation rows, the test rows (unless ``data.test`` holds them, with
    ``split.strategy: explicit``), a sample of about :data:`TRAINING_SAMPLE_ROWS` training rows and per-partition
    summaries; the training rows themselves are read, checked and encoded on the workers and stay there for the fit.
    The split is random (not stratified): each row's part follows from a seeded hash of its values.

    Args:
        loaded: The configuration (``engine: dask``).
        source: The training table, as :func:`partitioned_source` resolved it.
        client: The connected Dask client; it must stay open until the returned ``fit`` has run.
        reporter: Receives progress.

    Returns:
        The prepared data; its ``data.train`` and ``parts.train`` hold the training sample.

    Raises:
        ConfigError: The split would bring more than ``dask_collect_rows`` rows to the driver, or the features need
            the whole table (text columns).
        DataError: The table is missing, unreadable or empty, or the data fails validation.
    """
    from keel.application.dataset import LoadedData

    config = loaded.config
    data = config.data
    with reporter.step(f"Reading and splitting {source.label} on the Dask workers"):
        files = parquet_parts(source.path)
        partitions, columns = parquet_partitions(files, source.label)
        if data.target not in columns:
            raise DataError(f"{source.label}: " + missing_column_message(data.target, "data.target", columns))
        plan = _split_plan(loaded, source, files, columns)
        split = _split_on_workers(client, partitions, plan, loaded, source)
        for reason, count in split.dropped.items():
            reporter.note(f"dropped {count:,} row(s): {reason}")
    with reporter.step("Validating and summarising the training rows on the workers"):
        sampled_schema = infer_schema(split.sample, data)
        summaries = client.gather(
            client.compute(
                [delayed(_summarize_partition)(part, plan, sampled_schema, i) for i, part in enumerate(partitions)]
            )
        )
        summary = merge_summaries(summaries)
        schema = complete_schema(sampled_schema, summary)
        note_schema(schema, reporter)
        if any(column.type == "text" for column in schema.features):
            raise ConfigError(_TEXT_MESSAGE)
        checked = run_checks(
            loaded,
            schema,
            train=split.sample,
            valid=split.valid,
            test=split.test,
            all_missing=lambda _: all_missing_features(schema, summary),
            purpose="train",
            train_label="training rows (sample)",
        )
        rows = {"train": sum(split.train_counts), "valid": split.valid_rows, "test": len(split.test)}
        note_rows(schema, rows, reporter)
        origin = "data.test" if config.split.strategy == "explicit" else "the split"
        reporter.note(
            "split on the workers: random (not stratified), by a seeded hash of each row's values; this process "
            f"holds {rows['valid']:,} validation rows, {rows['test']:,} test rows (from {origin}) and a sample of "
            f"{len(split.sample):,} training rows"
        )
    hashes = fingerprint_on_workers(
        client, [source.path], [s.path for part, s in split.sources.items() if part != "train"]
    )
    explicit = config.split.strategy == "explicit"
    loaded_data = LoadedData(
        train=split.sample,
        test=split.test if explicit else None,
        fingerprint=hashes,
        sources=split.sources,
        dropped=split.dropped,
    )
    return checked.prepared(
        data=loaded_data,
        parts=Parts(train=split.sample, valid=split.valid, test=split.test),
        schema=schema,
        rows=rows,
        remote=_OnWorkers(client, partitions, split.train_counts, plan, summary),
    )


@dataclass
class _OnWorkers:
    """The training rows :func:`prepare_partitioned` left on the workers, and what encoding them needs."""

    client: Any
    partitions: list[Any]
    train_counts: list[int]
    plan: _SplitPlan
    summary: TrainingSummary


def fit_partitioned(loaded: LoadedConfig, prepared: Prepared) -> tuple[FittedModel, FitReport]:
    """Fit on the training rows :func:`prepare_partitioned` left on the workers (its client must still be open).

    The feature pipeline is fitted here on a frame holding each category once (from the sample and the summaries);
    the workers encode their partitions with it and keep them for the boosting.
    """
    config = loaded.config
    remote: _OnWorkers = prepared.remote
    schema = prepared.schema
    fit_frame = encoder_fit_frame(prepared.train_x, schema, remote.summary)
    fitted, _ = fit_features(schema, config.features, config.model, seed=config.split.seed, frame=fit_frame)
    x, y = _encoded_arrays(remote.partitions, remote.train_counts, remote.plan, schema, fitted)
    x, y = remote.client.persist([x, y])
    return _boost(
        remote.client,
        fitted,
        x,
        y,
        schema=schema,
        model=config.model,
        valid=(prepared.valid_x, prepared.valid_y),
        local=not config.scheduler,
    )


@dataclass
class _Split:
    """What the driver keeps of the split: sources, drop counts, rows per partition and the bounded parts."""

    sources: dict[str, ResolvedSource]
    dropped: dict[str, int]
    train_counts: list[int]
    valid_rows: int
    sample: pd.DataFrame
    valid: pd.DataFrame | None
    test: pd.DataFrame


def _split_on_workers(
    client: Any, partitions: list[Any], plan: _SplitPlan, loaded: LoadedConfig, source: ResolvedSource
) -> _Split:
    """Split every partition on the workers, bringing back the validation rows, the test rows and the sample.

    With ``split.strategy: explicit`` the test rows are ``data.test``, read here.

    Raises:
        DataError: The test table lacks columns, or the training or test part is empty.
    """
    from keel.application.dataset import labelled_rows, read_source

    config = loaded.config
    data = config.data
    sources = {"train": source}
    test = None
    dropped: dict[str, int] = {}
    if data.test is not None and config.split.strategy != "explicit":
        # Recorded (and fingerprinted) as in-process training does, though the split supplies the test rows.
        sources["test"] = resolve_source(data.test, data_dir=data.data_dir, base_dir=loaded.base_dir)
    elif data.test is not None:
        raw_test, sources["test"] = read_source(data.test, loaded)
        test, unlabelled = labelled_rows(raw_test, data, label=sources["test"].label)
        if unlabelled:
            dropped["test: missing target"] = unlabelled
        missing = [c for c in plan.columns if c not in test.columns and c != data.target]
        if missing:
            raise DataError(f"{sources['test'].label}: the test table lacks column(s) {', '.join(missing)}")
    try:
        pieces: list[_SplitPiece] = client.gather(
            client.compute([delayed(_split_partition)(part, plan) for part in partitions])
        )
    except (OSError, ValueError, KeyError) as exc:  # a damaged part file, or parts with different columns
        reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise DataError(
            f"{plan.label}: the workers cannot read it as Parquet ({reason}); check that every part file is "
            "complete and has the same columns"
        ) from None
    unlabelled = sum(piece.dropped for piece in pieces)
    if unlabelled:
        dropped = {"train: missing target": unlabelled, **dropped}
    train_counts = [piece.counts[TRAIN] for piece in pieces]
    if not sum(train_counts):
        raise DataError(f"{plan.label}: no training rows are left after the split")
    valid_rows = sum(piece.counts[VALID] for piece in pieces)
    if test is None:
        test = _stack([piece.test for piece in pieces])
    if test.empty:
        raise DataError("the test part is empty; check `split.test_size` or the test file")
    return _Split(
        sources=sources,
        dropped=dropped,
        train_counts=train_counts,
        valid_rows=valid_rows,
        sample=_stack([piece.sample for piece in pieces]),
        valid=_stack([piece.valid for piece in pieces]) if valid_rows else None,
        test=test,
    )


def _split_plan(loaded: LoadedConfig, source: ResolvedSource, files: list[Path], columns: list[str]) -> _SplitPlan:
    """Split shares from the row counts in the Parquet footers, refusing a split that brings too many rows here.

    Raises:
        DataError: The table has no rows.
        ConfigError: The test and validation rows would be more than ``dask_collect_rows``.
    """
    config = loaded.config
    rows = parquet_row_count(files)
    if rows == 0:
        raise DataError(f"{source.label}: the table has no rows")
    test_share, valid_share = split_shares(config.split, rows)
    collected = rows * (test_share + valid_share * (1 - test_share))
    limit = config.dask_collect_rows or DEFAULT_COLLECT_ROWS
    if collected > limit:
        raise ConfigError(
            f"engine: dask would bring about {collected:,.0f} test and validation rows of {source.label} "
            f"({rows:,} rows) to this process, more than dask_collect_rows ({limit:,}). Use smaller "
            "split.test_size / split.valid_size (a count such as 100000 works), or a separate test table "
            "(data.test with split.strategy: explicit), or raise dask_collect_rows if this machine has the memory"
        )
    train_rows = rows * (1 - test_share) * (1 - valid_share)
    return _SplitPlan(
        data=config.data,
        label=source.label,
        columns=columns,
        seed=config.split.seed,
        test_share=test_share,
        valid_share=valid_share,
        sample_share=min(1.0, TRAINING_SAMPLE_ROWS / max(train_rows, 1.0)),
    )


def _stack(frames: list[pd.DataFrame]) -> pd.DataFrame:
    import pandas as pd

    return pd.concat(frames, ignore_index=True)


def _encoded_arrays(
    partitions: list[Any], train_counts: list[int], plan: _SplitPlan, schema: FeatureSchema, fitted: FeatureFit
) -> tuple[Any, Any]:
    """The training rows as Dask arrays of LightGBM input and target, one block per partition that holds any."""
    import numpy as np

    width = len(fitted.names)
    encoding = compile_plan(fitted.preprocessor, schema)  # once here, not per partition
    target_dtype = np.float64 if schema.target.task == "regression" else np.int64
    blocks_x, blocks_y = [], []
    for part, count in zip(partitions, train_counts, strict=True):
        if not count:
            continue  # LightGBM cannot build a dataset from an empty block
        x, y = delayed(_encode_partition, nout=2)(part, plan, schema, fitted.preprocessor, encoding)
        blocks_x.append(da.from_delayed(x, shape=(count, width), dtype=np.float64))  # type: ignore[no-untyped-call]
        blocks_y.append(da.from_delayed(y, shape=(count,), dtype=target_dtype))  # type: ignore[no-untyped-call]
    return da.concatenate(blocks_x), da.concatenate(blocks_y)  # type: ignore[no-untyped-call]
