"""Hyper-parameter tuning with Optuna: trials fitted on the training split, scored on the validation split.

The test split is never scored here: it stays the unbiased estimate ``keel train`` reports for the tuned config.
Each trial is an MLflow run nested under one parent run per ``keel tune`` call. The study lives in an Optuna
storage (SQLite in the workspace by default; a PostgreSQL URL lets several machines work on one study), so a tune
can be resumed or extended by running it again with the same study name.
"""

from __future__ import annotations

import functools
import logging
import math
import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from keel.application.budget import deadline_callback
from keel.application.engines import Engine, engine_for
from keel.application.prepare import Prepared, check_config, load_and_check
from keel.application.progress import Reporter, SilentReporter
from keel.config import ROUND_PARAMS, LoadedConfig, dump_yaml
from keel.domain.metrics import WEIGHTED_PREFIX, Predictions, compute_metrics
from keel.domain.rounds import trial_model, tuned_params
from keel.domain.training import fit_model
from keel.domain.tuning import direction, search_space, suggest_params
from keel.errors import ConfigError, DataError
from keel.io.cluster import require_extra
from keel.io.registry import Registry
from keel.io.tables import write_text_atomically
from keel.io.tuning_storage import masked, open_storage

if TYPE_CHECKING:
    import pandas as pd

log = logging.getLogger(__name__)

STORAGE_ENV = "KEEL_TUNE_STORAGE"
"""Environment variable holding the Optuna storage URL (wins over ``tuning.storage``; keeps passwords out of files)."""


@dataclass
class TuneResult:
    """What ``keel tune`` did.

    Attributes:
        study: Study name.
        storage: Storage URL with any password masked.
        metric: Validation metric optimised.
        direction: ``maximize`` or ``minimize``.
        trials: Trials in the study by state (``COMPLETE``, ``PRUNED``, ``FAIL``, …), this call's and earlier ones.
        best_value: Best validation value.
        best_params: Parameters of the best trial.
        best_trial: Number of the best trial.
        importance: Parameter → importance (sums to 1; empty when too few trials completed).
        config_path: The config file written with the best parameters.
        run_id: The parent MLflow run.
        seconds: Wall time.
    """

    study: str
    storage: str
    metric: str
    direction: str
    trials: dict[str, int]
    best_value: float
    best_params: dict[str, Any]
    best_trial: int
    importance: dict[str, float]
    config_path: Path
    run_id: str
    seconds: float
    notes: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        """The JSON document ``keel tune --json`` prints."""
        return {
            "study": self.study,
            "storage": self.storage,
            "metric": self.metric,
            "direction": self.direction,
            "trials": self.trials,
            "best_value": self.best_value,
            "best_trial": self.best_trial,
            "best_params": self.best_params,
            "importance": self.importance,
            "config": str(self.config_path),
            "run_id": self.run_id,
            "seconds": round(self.seconds, 3),
        }


def _metric(prepared: Prepared) -> str:
    """The validation metric of data prepared for tuning."""
    return _validation(prepared)[0]


def _validation(prepared: Prepared) -> tuple[str, pd.DataFrame]:
    """The validation metric and feature columns of data prepared for tuning."""
    if prepared.tuning_metric is None or prepared.valid_x is None:
        raise ValueError("the data was not prepared for tuning (purpose='tune')")
    return prepared.tuning_metric, prepared.valid_x


def resolve_storage(loaded: LoadedConfig, storage: str | None = None) -> str:
    """The Optuna storage URL: ``storage``, else ``KEEL_TUNE_STORAGE``, else ``tuning.storage``, else SQLite.

    The SQLite default is ``optuna.db`` in the workspace.
    """
    chosen = storage or os.environ.get(STORAGE_ENV) or loaded.config.tuning.storage
    return chosen or default_storage(loaded)


def default_storage(loaded: LoadedConfig) -> str:
    """``optuna.db`` in the workspace (created when missing): a study only this machine's processes reach."""
    workspace = Registry.open(configured=loaded.config.registry.workspace).workspace
    workspace.mkdir(parents=True, exist_ok=True)
    return f"sqlite:///{workspace / 'optuna.db'}"


def process_seed(seed: int) -> int:
    """A sampler seed of this process's own, derived from ``seed``, the host name and the process id."""
    import hashlib
    import socket

    digest = hashlib.sha256(f"{seed}:{socket.gethostname()}:{os.getpid()}".encode()).digest()
    return int.from_bytes(digest[:4], "big")


DEFAULT_TRIALS = 20
"""Trials of a ``keel tune`` given neither a trial count nor a time budget."""

UNBOUNDED_TRIALS = 1_000_000
"""The trial count of a study bounded by its time budget alone."""


class _Objective:
    """One trial: fit on the training split, score on the validation split, log a child MLflow run."""

    def __init__(
        self,
        loaded: LoadedConfig,
        prepared: Prepared,
        registry: Registry,
        parent_run_id: str,
        deadline: float | None = None,
    ) -> None:
        self.deadline = deadline
        self.loaded = loaded
        self.prepared = prepared
        self.registry = registry
        self.parent_run_id = parent_run_id

    def __call__(self, trial: Any) -> float:
        import optuna

        config = self.loaded.config
        prepared = self.prepared
        metric, valid_x = _validation(prepared)
        params = suggest_params(trial, search_space(config.tuning, config.model.estimator))
        model_config = trial_model(config.model, params)
        callbacks = []
        if config.model.estimator == "lightgbm" and config.tuning.pruning:
            callbacks.append(_pruning_callback(trial, direction(metric) == "maximize"))
        if config.model.estimator == "lightgbm" and self.deadline is not None:
            callbacks.append(deadline_callback(self.deadline))
        experiment = config.registry.experiment or config.project.name
        tags = {"mlflow.parentRunId": self.parent_run_id, "keel.job": "tune-trial", "optuna.trial": str(trial.number)}
        pruned: optuna.TrialPruned | None = None
        with self.registry.run(experiment, run_name=f"trial-{trial.number}", tags=tags) as run_id:
            self.registry.log_params(run_id, {f"model.params.{k}": v for k, v in params.items()})
            try:
                model, report = fit_model(
                    prepared.schema,
                    config.features,
                    model_config,
                    seed=config.split.seed,
                    train_x=prepared.train_x,
                    train_y=prepared.train_y,
                    valid_x=prepared.valid_x,
                    valid_y=prepared.valid_y,
                    callbacks=callbacks,
                    train_weight=prepared.weights.get("train"),
                    valid_weight=prepared.weights.get("valid"),
                )
            except optuna.TrialPruned as exc:
                pruned = exc
                self.registry.client.set_tag(run_id, "keel.trial_state", "pruned")
            if pruned is None:
                # With data.weight the trial is scored weighted, as LightGBM's pruning callback sees it.
                weight = prepared.weights.get("valid")
                if model.task == "regression":
                    predictions = Predictions(prepared.valid_y, values=model.predict_value(valid_x), weight=weight)
                else:
                    predictions = Predictions(prepared.valid_y, proba=model.predict_proba(valid_x), weight=weight)
                scores = compute_metrics(
                    predictions, model.task, [metric], len(model.classes), weighted=weight is not None
                )
                value = scores[metric]
                metrics = {f"valid_{'' if weight is None else WEIGHTED_PREFIX}{metric}": value}
                if report.best_iteration is not None:
                    metrics["best_iteration"] = float(report.best_iteration)
                    trial.set_user_attr("best_iteration", report.best_iteration)
                self.registry.log_metrics(run_id, metrics)
        if pruned is not None:
            raise pruned
        if math.isnan(value):
            raise DataError(f"validation {metric} is undefined on these rows (one class only?)")
        return float(value)


PRUNE_EVERY = 10
"""Boosting rounds between two reports of a trial's validation score (and two pruning decisions)."""


def _pruning_callback(trial: Any, maximize: bool) -> Any:
    """A LightGBM callback reporting the validation score every :data:`PRUNE_EVERY` rounds and pruning when told.

    The first validation metric LightGBM computes is reported, signed so that it points the study's way. Not every
    round: with a shared (PostgreSQL) storage each report is a write and each pruning decision reads every trial's
    reports, so a check per round made a study quadratic in its rounds (two 4-trial processes: 24 s or 235 s, as the
    sampled learning rates happened to fall).
    """
    import optuna

    def callback(env: Any) -> None:
        if env.iteration % PRUNE_EVERY:
            return
        for entry in env.evaluation_result_list:
            name, metric, value, higher_is_better = entry[:4]
            if name == "training":
                continue
            score = float(value) if higher_is_better == maximize else -float(value)
            trial.report(score, step=env.iteration)
            if trial.should_prune():
                raise optuna.TrialPruned(f"pruned at round {env.iteration} ({metric} {value:.5f} on validation)")
            return

    callback.order = 25  # type: ignore[attr-defined]  # LightGBM orders callbacks by this attribute
    return callback


def _optimize(
    loaded: LoadedConfig,
    trials: int,
    *,
    study_name: str,
    storage: str,
    timeout: float | None,
    n_jobs: int,
    parent_run_id: str,
    workspace: str,
    tracking_uri: str,
) -> int:
    """Run trials of a study in ``storage`` on a Dask worker, preparing the data there. Returns the trials run."""
    import optuna

    _quiet_optuna()
    prepared = load_and_check(loaded, SilentReporter(), purpose="tune")
    registry = Registry(Path(workspace), tracking_uri)
    study = optuna.load_study(study_name=study_name, storage=open_storage(storage))
    before = len(study.trials)
    deadline = None if timeout is None else time.monotonic() + timeout
    study.optimize(
        _Objective(loaded, prepared, registry, parent_run_id, deadline),
        n_trials=trials,
        timeout=timeout,
        n_jobs=n_jobs,
        catch=(DataError,),
        gc_after_trial=False,
    )
    return len(study.trials) - before


def tune(
    loaded: LoadedConfig,
    *,
    trials: int | None,
    timeout: float | None = None,
    storage: str | None = None,
    study_name: str | None = None,
    n_jobs: int = 1,
    engine: str = "local",
    scheduler: str | None = None,
    workers: int | None = None,
    output: Path | None = None,
    reporter: Reporter | None = None,
) -> TuneResult:
    """Search hyper-parameters and write the best ones as a config for ``keel train``.

    Args:
        loaded: The configuration (its ``tuning`` section holds the space, metric and pruning settings).
        trials: Trials to run in this call (shared out over the workers with ``engine="dask"``); ``None`` runs
            trials until ``timeout`` (20 when both are ``None``).
        timeout: The time budget in seconds: no trial starts after it, and a LightGBM trial running at that moment
            stops boosting and keeps its best round so far.
        storage: Optuna storage URL (see :func:`resolve_storage`).
        study_name: Study name (default ``tuning.study`` or ``tune-<model name>``); an existing study is continued.
        n_jobs: Trials run in parallel threads in this process.
        engine: ``local`` or ``dask`` (trials run on the workers of a Dask cluster).
        scheduler: Dask scheduler address; ``None`` starts a ``LocalCluster``.
        workers: Workers of that local cluster.
        output: Config file to write (default ``<workspace>/tuned/<study>.yaml``).
        reporter: Receives progress.

    Returns:
        The study's summary and where the tuned config was written.

    Raises:
        ConfigError: Optuna (or Dask) is missing, no validation split, or a bad search space.
        DataError: The data fails validation, or every trial failed.
    """
    require_extra("tune")
    if engine == "dask":
        require_extra("dask")
    import optuna

    _quiet_optuna()
    started = time.perf_counter()
    reporter = reporter or SilentReporter()
    config = loaded.config
    if trials is None and (timeout is None or engine == "dask"):
        trials = DEFAULT_TRIALS
    if engine not in ("local", "dask"):
        raise ConfigError(f"engine {engine!r}: use local or dask")
    check_config(config)
    url = resolve_storage(loaded, storage)
    name = study_name or config.tuning.study or f"tune-{config.model_name}"
    if engine == "dask" and scheduler and not _is_loopback(scheduler) and url.startswith("sqlite:"):
        raise ConfigError(
            "trials on a remote Dask cluster need a storage every worker reaches; pass --storage "
            "postgresql://user@host/db (or set KEEL_TUNE_STORAGE)"
        )
    if config.model.estimator == "auto":
        raise ConfigError(
            "keel tune searches the parameters of one estimator, and `model.estimator: auto` picks among several; "
            "set model.estimator (e.g. model.estimator=lightgbm) to tune, or train with auto and --time-budget"
        )
    # The same preparation and checks as keel train (leakage included), plus a validation part and tuning.metric.
    prepared = load_and_check(loaded, reporter, purpose="tune")
    metric = _metric(prepared)
    # With data.weight the trials are fitted and scored weighted; every place the score is named says so.
    scored = f"{WEIGHTED_PREFIX}{metric}" if prepared.weights else metric
    space = search_space(config.tuning, config.model.estimator)
    if not space:
        raise ConfigError(f"tuning.space: no default space for {config.model.estimator!r}; declare one")
    reporter.note(
        f"optimising validation {scored} ({direction(metric)}) over {', '.join(space)}; study {name!r} in {masked(url)}"
    )
    seed = config.split.seed
    if url != default_storage(loaded):
        # A storage named by the user may be shared with other processes and machines; with one seed they would all
        # propose the same first trials, so each process samples from its own (logged with the run).
        seed = process_seed(config.split.seed)
        reporter.note(f"sampler seed {seed}: this process's own, as other processes may work on the same study")
    sampler = optuna.samplers.TPESampler(seed=seed)
    pruner: Any = (
        optuna.pruners.MedianPruner(n_startup_trials=5, n_warmup_steps=config.tuning.warmup_rounds)
        if config.tuning.pruning
        else optuna.pruners.NopPruner()
    )
    try:
        study = optuna.create_study(
            study_name=name,
            storage=open_storage(url),
            sampler=sampler,
            pruner=pruner,
            direction=direction(metric),
            load_if_exists=True,
        )
    except ValueError as exc:  # e.g. an existing study optimising the other way
        raise ConfigError(f"study {name!r}: {exc}") from None
    if study.direction.name.lower() != direction(metric):
        raise ConfigError(
            f"study {name!r} in {masked(url)} was created to {study.direction.name.lower()}; this config's metric "
            f"{metric} needs {direction(metric)}; choose another --study"
        )
    registry = Registry.open(tracking_uri=config.registry.tracking_uri, configured=config.registry.workspace)
    experiment = config.registry.experiment or config.project.name
    with registry.run(
        experiment, run_name=f"tune-{config.model_name}", tags={"keel.job": "tune", "optuna.study": name}
    ) as parent:
        registry.log_params(
            parent,
            {
                "trials": trials,
                "engine": engine,
                "metric": scored,
                "study": name,
                "n_jobs": n_jobs,
                "sampler_seed": seed,
            },
        )
        common = {
            "study_name": name,
            "storage": url,
            "timeout": timeout,
            "parent_run_id": parent,
            "workspace": str(registry.workspace),
            "tracking_uri": registry.tracking_uri,
        }
        planned = f"{trials} trial(s)" if trials is not None else f"trials for {timeout:g} s"
        with (
            reporter.step(f"Running {planned}" + (" on Dask" if engine == "dask" else "")),
            engine_for(engine, scheduler=scheduler, workers=workers) as runner,
        ):
            # Without a trial count the time budget ends the study (trials is only None here with a budget).
            runner.run_trials(
                trials or UNBOUNDED_TRIALS, _trial_runner(runner, study, loaded, prepared, registry, n_jobs, common)
            )
        study = optuna.load_study(study_name=name, storage=open_storage(url))
        states: dict[str, int] = {}
        for trial in study.trials:
            states[trial.state.name] = states.get(trial.state.name, 0) + 1
        complete = [t for t in study.trials if t.state == optuna.trial.TrialState.COMPLETE]
        if not complete:
            raise DataError(f"study {name!r}: no trial completed ({states}); see the MLflow runs for the failures")
        best = study.best_trial
        best_value = float(study.best_value)
        importance = _importance(study)
        registry.log_params(parent, {f"best.{k}": v for k, v in best.params.items()})
        registry.log_metrics(parent, {f"best_valid_{scored}": best_value})
    path = output or registry.workspace / "tuned" / f"{name}.yaml"
    rounds = best.user_attrs.get("best_iteration")
    written = tuned_params(config.model, dict(best.params), rounds)
    _write_config(loaded, written, path, name=name, metric=scored, value=best_value)
    if rounds is not None:
        reporter.note(
            f"best trial stopped early at {rounds} rounds (learning rate {written.get('learning_rate')}); the "
            "written config trains exactly that many"
        )
    return TuneResult(
        study=name,
        storage=masked(url),
        metric=scored,
        direction=direction(metric),
        trials=states,
        best_value=best_value,
        best_params=dict(best.params),
        best_trial=best.number,
        importance=importance,
        config_path=path,
        run_id=parent,
        seconds=time.perf_counter() - started,
        notes=list(getattr(reporter, "notes", [])),
    )


def _trial_runner(
    engine: Engine,
    study: Any,
    loaded: LoadedConfig,
    prepared: Prepared,
    registry: Registry,
    n_jobs: int,
    common: dict[str, Any],
) -> Callable[[int], object]:
    """What runs ``n`` trials: here, on the prepared data and this study; on Dask, each worker prepares its own."""
    if engine.name == "dask":
        return functools.partial(_optimize, loaded, n_jobs=1, **common)
    timeout = common["timeout"]

    def run(n: int) -> object:
        deadline = None if timeout is None else time.monotonic() + timeout
        objective = _Objective(loaded, prepared, registry, common["parent_run_id"], deadline)
        return study.optimize(objective, n_trials=n, timeout=timeout, n_jobs=n_jobs, catch=(DataError,))

    return run


def _is_loopback(address: str) -> bool:
    """Whether a scheduler address is on this machine (its workers can share a SQLite file with us)."""
    from urllib.parse import urlsplit

    return urlsplit(address).hostname in ("127.0.0.1", "localhost", "::1")


def _importance(study: Any) -> dict[str, float]:
    import optuna

    try:
        return {k: float(v) for k, v in optuna.importance.get_param_importances(study).items()}
    except (ValueError, RuntimeError, ZeroDivisionError) as exc:  # too few or identical trials
        log.info("no parameter importance: %s", exc)
        return {}


def _write_config(
    loaded: LoadedConfig, best: dict[str, Any], path: Path, *, name: str, metric: str, value: float
) -> None:
    """Write the resolved config with ``best`` as ``model.params``.

    Relative data paths are made absolute so the file works from any folder.
    """
    data = loaded.config.model_dump(mode="json")
    data["model"]["params"] = best
    if ROUND_PARAMS & set(best):
        data["model"]["early_stopping_rounds"] = None  # the rounds were found: train exactly that many
    _absolute_sources(data["data"], loaded)
    header = (
        f"# Written by `keel tune` (study {name!r}): validation {metric} {value:.6f}.\n"
        f"# Train it with: keel train {path}\n"
    )
    write_text_atomically(path, header + dump_yaml(data))


def _absolute_sources(data: dict[str, Any], loaded: LoadedConfig) -> None:
    from keel.config import data_dir_from_env

    if data_dir_from_env() is not None:
        return  # KEEL_DATA_DIR decides where relative paths point, wherever the file is used
    if data.get("data_dir") and not Path(data["data_dir"]).expanduser().is_absolute():
        data["data_dir"] = str((loaded.base_dir / data["data_dir"]).resolve())
        return
    if data.get("data_dir"):
        return
    for part in ("train", "test"):
        source = data.get(part)
        if not source or not source.get("path") or source["path"].startswith("package:"):
            continue
        given = Path(source["path"]).expanduser()
        if given.is_absolute():
            continue
        for candidate in (Path.cwd() / given, loaded.base_dir / given):
            if candidate.exists():
                source["path"] = str(candidate.resolve())
                break


def _quiet_optuna() -> None:
    import optuna

    if logging.getLogger().getEffectiveLevel() > logging.INFO:
        optuna.logging.set_verbosity(optuna.logging.WARNING)
