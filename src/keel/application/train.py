"""The main job: load and validate data, split, fit, evaluate on held-out data, register, apply the gate."""

from __future__ import annotations

import contextlib
import json
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from keel.application.dataset import LoadedData
from keel.application.engines import engine_for
from keel.application.insights import write_insights, write_report
from keel.application.predict import prediction_columns
from keel.application.progress import Reporter, SilentReporter, TimedReporter
from keel.application.scoring import labelled_predictions
from keel.config import KeelConfig, LoadedConfig
from keel.domain.baselines import evaluate_baselines
from keel.domain.metrics import (
    WEIGHTED_PREFIX,
    Evaluation,
    Predictions,
    baseline_predictions,
    compute_metrics,
    evaluate_predictions,
)
from keel.domain.model import FittedModel
from keel.domain.promotion import PromotionDecision, decide_promotion, held_back
from keel.domain.refs import DEFAULT_ALIAS
from keel.domain.training import FitReport
from keel.domain.weights import read_weights
from keel.errors import KeelError
from keel.io import artifacts, mlmodel, plots
from keel.io.provenance import git_commit, package_versions
from keel.io.registry import DatasetRecord, Registry, RegistryReads
from keel.io.sidecar import Pending, Sidecar, SideRegistry, save_arrays, sidecar
from keel.io.sources import file_sha256
from keel.io.staging import staging_folder

if TYPE_CHECKING:
    import pandas as pd

    from keel.application.prepare import Prepared


@dataclass
class TrainResult:
    """What ``keel train`` did.

    Attributes:
        model_name: Registered model name.
        version: The new version number.
        run_id: The MLflow run.
        task: ``binary``, ``multiclass`` or ``regression``.
        evaluation: Test metrics, baseline, per-class and slices.
        promotion: The gate's decision.
        rows: Rows per part (train, valid, test).
        dropped: Rows dropped, by reason.
        best_iteration: Boosting rounds kept (LightGBM).
        leaderboard: With ``estimator: auto``, each candidate's validation score and fit seconds.
        seconds: Wall time of the whole job.
        notes: Inference and other notes shown to the user.
        steps: Each step's title and wall time, in order.
        warnings: Near-leakage warnings (the version was then not promoted automatically).
    """

    model_name: str
    version: int
    run_id: str
    task: str
    evaluation: Evaluation
    promotion: PromotionDecision
    rows: dict[str, int]
    dropped: dict[str, int]
    best_iteration: int | None
    seconds: float
    leaderboard: list[dict[str, Any]] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    steps: list[tuple[str, float]] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        """The JSON document ``keel train --json`` prints."""
        return {
            "model": self.model_name,
            "version": self.version,
            "run_id": self.run_id,
            "task": self.task,
            "champion": self.promotion.promote,
            "warnings": self.warnings,
            "promotion": {
                "metric": self.promotion.metric,
                "value": self.promotion.new_value,
                "champion_value": self.promotion.champion_value,
                "reason": self.promotion.reason,
            },
            "rows": self.rows,
            "dropped": self.dropped,
            "best_iteration": self.best_iteration,
            "leaderboard": self.leaderboard,
            "seconds": round(self.seconds, 3),
            "steps": [{"step": title, "seconds": round(seconds, 3)} for title, seconds in self.steps],
            "notes": self.notes,
            "test_rows": self.evaluation.rows,
            "metrics": self.evaluation.metrics,
            "baseline": self.evaluation.baseline,
            "weighted_metrics": self.evaluation.weighted_metrics,
            "weighted_baseline": self.evaluation.weighted_baseline,
            "per_class": self.evaluation.per_class,
            "slices": self.evaluation.slices,
            "baselines": self.evaluation.baselines,
        }


def train(
    loaded: LoadedConfig,
    reporter: Reporter | None = None,
    *,
    workspace: Path | None = None,
    side: Sidecar | None = None,
) -> TrainResult:
    """Run the main job for a validated configuration.

    Args:
        loaded: The configuration and where it came from.
        reporter: Receives progress; silent when ``None``.
        workspace: The registry's workspace for this run (a ``--workspace`` flag): wins over ``KEEL_WORKSPACE`` and
            ``registry.workspace``.
        side: A sidecar started earlier (``keel train`` starts it before reading the configuration, so MLflow's
            import begins at once); the caller closes it. ``None`` starts one for this call.

    Returns:
        The registered version, its evaluation and the promotion decision.

    Raises:
        ConfigError: The configuration is wrong on its own (refused before any data is read: an unknown
            ``model.params`` key) or does not fit the data (e.g. a metric for another task).
        DataError: The data fails validation; nothing is registered.
        IntegrityError: A download did not match its checksum.
    """
    started = time.perf_counter()
    reporter = TimedReporter(reporter or SilentReporter())
    config = loaded.config
    registry = Registry.open(workspace, tracking_uri=config.registry.tracking_uri, configured=config.registry.workspace)
    with contextlib.ExitStack() as owned:
        # MLflow's client is imported in the sidecar while this process reads and validates the data. Its SQL
        # store (in the sidecar) and matplotlib (in the painter) are imported after the fit: imported before it,
        # they held up the fit longer than they hold up the plots and the registration after it.
        side = side or owned.enter_context(sidecar())
        with engine_for(config.engine, scheduler=config.scheduler, workers=config.dask_workers) as engine:
            prepared = engine.prepare(loaded, reporter)
            data, parts, schema, train_y = prepared.data, prepared.parts, prepared.schema, prepared.train_y
            metric_names, promotion_metric, rows = prepared.metric_names, prepared.promotion_metric, prepared.rows
            task = schema.target.task
            where = "" if config.engine == "local" else f" on Dask ({config.scheduler or 'local cluster'})"
            with reporter.step(f"Training {config.model.estimator}{where}"):
                # The sidecar's imports end before the fit starts: its threads get the cores to themselves.
                side.wait()
                if config.model.estimator == "auto":
                    model, fit_report = _fit_auto(loaded, prepared, reporter)
                else:
                    model, fit_report = engine.fit(loaded, prepared)
        # The plots are drawn by a process of their own, started now: after the fit the sidecar's store and the
        # plots are each about as long as this process's evaluation and artifacts, so on two cores they run beside
        # them instead of one after the other.
        painter = owned.enter_context(sidecar(warm="warm_plots"))
        # Opened now (a new workspace's store is created) that the data passed validation and a model exists.
        side.call("open", workspace=registry.workspace, tracking_uri=registry.tracking_uri)
        # Looked up now, so the report's comparison does not wait behind the plots.
        champion = side.call("champion", name=config.model_name, alias=DEFAULT_ALIAS)
        weights = prepared.weights
        # The features checked before the fit are the model's own unless the fit changed the schema (auto).
        same_schema = model.schema == schema
        train_x = prepared.train_x if same_schema else None
        test_x = prepared.test_x if same_schema else None
        with reporter.step("Evaluating on the test data"):
            predictions = labelled_predictions(
                model, parts.test, label="test rows", weight=weights.get("test"), features=test_x
            )
            n_classes = len(schema.target.classes or [])
            baseline = baseline_predictions(predictions.y_true, train_y, task, n_classes)
            evaluation = evaluate_predictions(
                predictions,
                baseline,
                task,
                metric_names,
                classes=schema.target.classes or [],
                frame=parts.test,
                slices=config.evaluation.slices,
                max_slice_values=config.evaluation.max_slice_values,
                min_slice_rows=config.evaluation.min_slice_rows,
                weighted_baseline=None
                if "train" not in weights
                else baseline_predictions(predictions.y_true, train_y, task, n_classes, weights["train"]),
            )
            evaluation.baselines = evaluate_baselines(
                parts.test, config.evaluation.baselines, schema, predictions.y_true, metric_names
            )
        experiment = config.registry.experiment or config.project.name
        with staging_folder(registry.workspace) as staging, contextlib.ExitStack() as stack:
            with reporter.step("Writing artifacts"):
                provenance = _write_artifacts(
                    staging, side, painter, model, loaded, data, evaluation, predictions, fit_report, rows,
                    prepared.warnings,
                )  # fmt: skip
                # Drift reference and global contributions here, while the painter draws the plots.
                drawn = write_insights(
                    staging, model=model, train=parts.train, test=parts.test, predictions=predictions,
                    metric_names=metric_names, champion=champion, painter=painter, seed=config.split.seed,
                    train_features=train_x, test_features=test_x,
                )  # fmt: skip
                # The run is started and logged by the sidecar while this process writes the report and manifest.
                run_id = stack.enter_context(
                    side.run(experiment, run_name=f"train-{config.model_name}", tags={"keel.job": "train"})
                )
                _log_run(side, run_id, config, model, evaluation, fit_report, _datasets(data, rows))
                write_report(staging, provenance, drawn)
            with reporter.step("Registering the model"):
                version, decision = _register(
                    side, registry, run_id, staging, loaded, model, evaluation, parts.test, promotion_metric,
                    warnings=prepared.warnings,
                )  # fmt: skip
        run = str(run_id.result())
    for warning in prepared.warnings:
        reporter.note("warning: " + warning)
    reporter.note(("promoted to champion: " if decision.promote else "not promoted: ") + decision.reason)
    notes = reporter.notes
    return TrainResult(
        model_name=config.model_name,
        version=version,
        run_id=run,
        task=task,
        evaluation=evaluation,
        promotion=decision,
        rows=rows,
        dropped=data.dropped,
        best_iteration=fit_report.best_iteration,
        seconds=time.perf_counter() - started,
        leaderboard=fit_report.leaderboard,
        notes=notes,
        steps=reporter.steps,
        warnings=list(prepared.warnings),
    )


def _fit_auto(loaded: LoadedConfig, prepared: Prepared, reporter: Reporter) -> tuple[FittedModel, FitReport]:
    """Fit the candidates of ``estimator: auto`` (in this process) and keep the best on the validation part."""
    from keel.application.automl import fit_auto

    config = loaded.config
    return fit_auto(
        config, prepared.schema, train_x=prepared.train_x, train_y=prepared.train_y, valid_x=prepared.valid_x,
        valid_y=prepared.valid_y, metric=config.tuning.metric or prepared.promotion_metric, reporter=reporter,
        train_weight=prepared.weights.get("train"), valid_weight=prepared.weights.get("valid"),
        train_frame=prepared.parts.train, valid_frame=prepared.parts.valid,
    )  # fmt: skip


def _write_artifacts(
    directory: Path,
    side: Sidecar,
    painter: Sidecar,
    model: FittedModel,
    loaded: LoadedConfig,
    data: LoadedData,
    evaluation: Evaluation,
    predictions: Predictions,
    fit_report: FitReport,
    rows: dict[str, int],
    warnings: list[str],
) -> dict[str, Any]:
    """Write the version's own files; ``painter`` draws the plots and ``side`` writes the MLflow model files meanwhile.

    Returns:
        The provenance the manifest will carry (written last, by :func:`write_insights`).
    """
    config = loaded.config
    artifacts.save_model(directory, model)
    # What the plots show is computed here (scikit-learn is loaded); the painter draws them. Their large arrays
    # travel in files beside the staging folder (removed with it).
    figures = plots.evaluation_figures(
        model.task, model.classes, y_true=predictions.y_true, proba=predictions.proba, values=predictions.values
    )
    large = figures.pop("residuals", {})
    arrays = save_arrays(directory.parent / "arrays", **{f"residuals.{name}": a for name, a in large.items()})
    painter.call(
        "evaluation_plots", folder=directory / "plots", figures=figures, arrays=arrays,
        importance=model.feature_importance() or None,
    )  # fmt: skip
    packages = package_versions()
    # MLflow's own tools open the version through keel's loader; written before the manifest, so it is hashed too.
    kinds = {name: data.train[name].dtype.kind for name in model.schema.feature_names if name in data.train}
    spec = mlmodel.model_spec(model.schema, kinds, prediction_columns(model))
    side.call("write_mlmodel", directory=directory, spec=spec, packages=packages)
    (directory / artifacts.CONFIG_FILE).write_text(loaded.resolved_yaml(), encoding="utf-8")
    artifacts.write_json(
        directory / artifacts.METRICS_FILE,
        {
            "test": evaluation.to_dict(),
            "rows": rows,
            "best_iteration": fit_report.best_iteration,
            "leaderboard": fit_report.leaderboard,
            "notes": fit_report.notes,
            "warnings": warnings,
        },
    )
    for name, table in data.recipe_tables.items():
        # Tables a recipe keeps for serving (e.g. the tennis player state); Parquet loads without running code.
        (directory / "recipe").mkdir(parents=True, exist_ok=True)
        table.to_parquet(directory / "recipe" / f"{name}.parquet", index=False)
    return {
        "project": config.project.name,
        "model_name": config.model_name,
        "estimator": model.estimator_name,
        "leaderboard": fit_report.leaderboard,
        "task": model.task,
        "feature_names": model.feature_names,
        "categorical_indices": model.categorical_indices,
        "best_iteration": fit_report.best_iteration,
        "seed": config.split.seed,
        "created_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "data_fingerprint": data.fingerprint,
        "data_sources": {part: source.label for part, source in data.sources.items()},
        "config_sources": loaded.sources,
        "overrides": loaded.overrides,
        "git_commit": git_commit(loaded.base_dir),
        "packages": packages,
        "warnings": warnings,
    }


def _flatten(prefix: str, value: Any, out: dict[str, Any]) -> dict[str, Any]:
    if isinstance(value, dict):
        for key, item in value.items():
            _flatten(f"{prefix}.{key}" if prefix else str(key), item, out)
    else:
        out[prefix] = value
    return out


def _log_run(
    side: Sidecar,
    run_id: Pending,
    config: KeelConfig,
    model: FittedModel,
    evaluation: Evaluation,
    fit_report: FitReport,
    datasets: list[DatasetRecord],
) -> None:
    """The run's parameters, test metrics and datasets (sent to the sidecar without waiting)."""
    params = _flatten("", config.model_dump(mode="json", exclude={"data"}), {})
    params.update({"data.target": config.data.target, "data.task": model.task})
    if fit_report.best_iteration is not None:
        params["best_iteration"] = fit_report.best_iteration
    side.call("log_params", run_id=run_id, params=params)
    # Named as in `keel train --json`: the test metrics under their own names, the baseline's as baseline.<name>.
    # Weighted ones (data.weight) as weighted.<name> and weighted_baseline.<name>.
    metrics = (
        evaluation.metrics
        | {f"baseline.{k}": v for k, v in evaluation.baseline.items()}
        | {f"weighted.{k}": v for k, v in evaluation.weighted_metrics.items()}
        | {f"weighted_baseline.{k}": v for k, v in evaluation.weighted_baseline.items()}
    )
    side.call("log_metrics", run_id=run_id, metrics=metrics)
    side.call("log_datasets", run_id=run_id, datasets=datasets)


def _register(
    side: Sidecar,
    registry: Registry,
    run_id: Pending,
    staging: Path,
    loaded: LoadedConfig,
    model: FittedModel,
    evaluation: Evaluation,
    test: pd.DataFrame,
    promotion_metric: str,
    *,
    warnings: list[str],
) -> tuple[int, PromotionDecision]:
    """Log the version's files, register them, check what the store holds, then decide and mark it complete."""
    config = loaded.config
    name = config.model_name
    source = side.call("log_model_directory", run_id=run_id, directory=staging)
    description = version_description(config, model.task, evaluation, promotion_metric)
    manifest_sha = file_sha256(staging / artifacts.MANIFEST)
    provenance = json.loads((staging / artifacts.MANIFEST).read_text(encoding="utf-8"))
    # With data.weight the gate compares the weighted metric (named weighted_<metric>), as auto and tune rank.
    weighted = config.data.weight is not None and bool(evaluation.weighted_metrics)
    gate_metric = f"{WEIGHTED_PREFIX}{promotion_metric}" if weighted else promotion_metric
    new_value = (evaluation.weighted_metrics if weighted else evaluation.metrics)[promotion_metric]
    # What is known already is tagged as the version is created (one write to the store instead of five).
    known = {
        "keel.task": model.task,
        "keel.estimator": model.estimator_name,
        f"keel.test.{gate_metric}": f"{new_value:.6f}",
        "keel.data_fingerprint": combined_fingerprint(provenance.get("data_fingerprint") or {}),
        "keel.git_commit": str(provenance.get("git_commit") or "unknown"),
    }
    pending = side.call("register", name=name, source=source, run_id=run_id, description=description, tags=known)
    version = int(pending.result())
    reads = SideRegistry(side, registry.workspace)
    # Check what the store holds before calling the version complete.
    stored = reads.local_directory(_pending(reads, name, version))
    artifacts.verify_directory(stored, manifest_sha256=manifest_sha)
    with registry.promotion_lock():
        decision = _decide(
            reads, name, gate_metric, new_value, config.evaluation.promotion.margin, test,
            weight_column=config.data.weight if weighted else None,
        )  # fmt: skip
        if warnings:
            decision = held_back(decision, name, version, len(warnings))
        side.call(
            "mark_complete",
            name=name,
            version=version,
            manifest_sha256=manifest_sha,
            tags={"keel.promotion": decision.reason[:5000], "keel.promoted": "true" if decision.promote else "false"},
        )
        if decision.promote:
            side.call("set_alias", name=name, alias=DEFAULT_ALIAS, version=version)
        side.wait()  # complete (and champion) before the lock lets another run decide
    return version, decision


def version_description(config: KeelConfig, task: str, evaluation: Evaluation, metric: str) -> str:
    """The version's description in the MLflow UI: project, task, and the headline metric against the baseline."""
    value = evaluation.metrics[metric]
    weighted = evaluation.weighted_metrics.get(metric)
    text = (
        f"{config.project.name}: {task} model of `{config.data.target}` ({config.model.estimator}). "
        f"Test {metric} {value:.4f}"
    )
    baseline = evaluation.baseline.get(metric)
    if baseline is not None and baseline == baseline:
        text += f" against the naive baseline's {baseline:.4f} ({value - baseline:+.4f})"
    if weighted is not None:
        text += f"; weighted by `{config.data.weight}`: {weighted:.4f}"
    text += f" on {evaluation.rows:,} rows."
    return f"{text}\n\n{config.project.description}" if config.project.description else text


def combined_fingerprint(files: dict[str, str]) -> str:
    """One sha256 for the data a version was trained on: over its files' names and sha256 (each is in the manifest)."""
    import hashlib

    text = "".join(f"{name}\t{digest}\n" for name, digest in sorted(files.items()))
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def _datasets(data: LoadedData, rows: dict[str, int]) -> list[DatasetRecord]:
    """The training and test tables as MLflow dataset inputs, with their files' sha256 (already computed)."""
    from keel.application.dataset import source_paths
    from keel.io.sources import fingerprint_files

    records = []
    for part, context in (("train", "training"), ("test", "testing")):
        # Without a test table of its own, the test rows are a split of the training table.
        source = data.sources.get(part) or data.sources["train"]
        keys = fingerprint_files(source_paths({part: source}))
        files = {key: data.fingerprint[key] for key in keys if key in data.fingerprint}
        downloaded = source.origin == "download"
        records.append(
            DatasetRecord(
                name=f"{part}: {Path(source.label).name or source.label}",
                context=context,
                source=source.label if downloaded else str(source.path),
                source_type="http" if downloaded else "local",
                digest=combined_fingerprint(files)[:16],
                rows=rows[part],
                files=files,
            )
        )
    return records


def _pending(registry: RegistryReads, name: str, version: int) -> Any:
    from keel.domain.refs import ModelRef

    return registry.get(ModelRef(name=name, version=version))


def _decide(
    registry: RegistryReads,
    name: str,
    metric: str,
    new_value: float,
    margin: float,
    test: pd.DataFrame,
    *,
    weight_column: str | None = None,
) -> PromotionDecision:
    """The gate, with the champion scored on the same test rows as the new version.

    With ``weight_column`` (``data.weight``), ``metric`` is ``weighted_<name>`` and the champion is scored weighted
    by that column of the test rows.
    """
    champion = registry.alias_version(name, DEFAULT_ALIAS)
    if champion is None:
        return decide_promotion(metric, new_value, None, margin)
    from keel.domain.refs import ModelRef

    label = f"version {champion}"
    try:
        info = registry.get(ModelRef(name=name, version=champion))
        loaded = artifacts.load_model(registry.local_directory(info), manifest_sha256=info.manifest_sha256)
        weight = None if weight_column is None else read_weights(test, weight_column, label="test rows")
        predictions = labelled_predictions(loaded.model, test, label=f"test rows scored by {label}", weight=weight)
        base = metric.removeprefix(WEIGHTED_PREFIX) if weight is not None else metric
        champion_value = compute_metrics(
            predictions, loaded.model.task, [base], len(loaded.model.classes), weighted=weight is not None
        )[base]
    except KeelError as exc:
        return PromotionDecision(
            True, f"the champion ({label}) cannot be scored on this test data ({exc}); replacing it", metric, new_value
        )
    return decide_promotion(metric, new_value, champion_value, margin, champion=label)
