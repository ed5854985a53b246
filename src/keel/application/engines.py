"""Where a training job's work runs: in this process (``local``) or on a Dask cluster (``dask``).

A job reads the same on either engine::

    with engine_for(...) as engine:
        prepared = engine.prepare(loaded, reporter)     # check the config, load, split, every check (once)
        model, report = engine.fit(loaded, prepared)    # or engine.run_trials(trials, run) when tuning

The engine owns the cluster's lifetime (a ``LocalCluster`` it started is shut down when the block ends) and decides
where the rows are read: the Dask engine has its workers read a Parquet table themselves and keeps the training rows
there for the fit; anything else is read here by :func:`keel.application.prepare.load_and_check`.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any, Literal, Protocol

from keel.application.prepare import Prepared, Purpose, check_config, load_and_check, prepare
from keel.application.progress import Reporter
from keel.config import LoadedConfig
from keel.domain.training import FitReport, fit_model
from keel.errors import ConfigError

if TYPE_CHECKING:
    from keel.domain.data_defaults import DataDefaults
    from keel.domain.model import FittedModel

EngineName = Literal["local", "dask"]


class Engine(Protocol):
    """Where preparation, fitting and tuning trials run."""

    name: EngineName

    def prepare(self, loaded: LoadedConfig, reporter: Reporter, *, purpose: Purpose = "train") -> Prepared:
        """Check the config (before any data is read), then load, split and run every data check.

        Raises:
            ConfigError: The configuration is wrong on its own or does not fit the data.
            DataError: The data fails validation.
        """
        ...

    def fit(self, loaded: LoadedConfig, prepared: Prepared) -> tuple[FittedModel, FitReport]:
        """Fit the configured model on the prepared training rows."""
        ...

    def run_trials(self, trials: int, run: Callable[[int], object]) -> None:
        """Run ``trials`` tuning trials: ``run(n)`` runs ``n`` of them where it is called (it must pickle for Dask)."""
        ...


class LocalEngine:
    """Everything in this process.

    For training, :meth:`prepare` also decides the defaults the data asks of a LightGBM fit
    (:func:`keel.domain.data_defaults.data_defaults`) and notes them; :meth:`fit` applies them to those rows.
    """

    name: EngineName = "local"

    def __init__(self) -> None:
        self._defaults: tuple[Prepared, DataDefaults] | None = None

    def prepare(self, loaded: LoadedConfig, reporter: Reporter, *, purpose: Purpose = "train") -> Prepared:
        """See :meth:`Engine.prepare`."""
        prepared = prepare(loaded, reporter, purpose=purpose)
        if purpose == "train":
            from keel.domain.data_defaults import data_defaults

            defaults = data_defaults(
                loaded.config, prepared.schema, train_x=prepared.train_x, train_y=prepared.train_y,
                train_frame=prepared.parts.train, has_valid=prepared.valid_x is not None and len(prepared.valid_x) > 0,
            )  # fmt: skip
            for note in defaults.notes:
                reporter.note(note)
            self._defaults = (prepared, defaults)
        return prepared

    def fit(self, loaded: LoadedConfig, prepared: Prepared) -> tuple[FittedModel, FitReport]:
        """See :meth:`Engine.fit`, with the defaults :meth:`prepare` decided for these rows.

        When they ask for it, the model is fitted again on the training and validation rows with the rounds early
        stopping found.
        """
        config = loaded.config
        defaults = self._defaults[1] if self._defaults and self._defaults[0] is prepared else None
        model = config.model if defaults is None else defaults.model(config.model)
        fitted, report = fit_model(
            prepared.schema,
            config.features,
            model,
            seed=config.split.seed,
            train_x=prepared.train_x,
            train_y=prepared.train_y,
            valid_x=prepared.valid_x,
            valid_y=prepared.valid_y,
            train_weight=prepared.weights.get("train"),
            valid_weight=prepared.weights.get("valid"),
        )
        if defaults is not None:
            report.notes = list(defaults.notes)
        if defaults is None or not defaults.refit or prepared.valid_x is None or not report.best_iteration:
            return fitted, report
        from keel.application.automl import joined_rows
        from keel.domain.rounds import refit_model

        weights = prepared.weights
        x, y, weight = joined_rows(
            (prepared.train_x, prepared.train_y, weights.get("train")),
            (prepared.valid_x, prepared.valid_y, weights.get("valid")),
        )
        refitted, again = fit_model(
            prepared.schema, config.features, refit_model(model, report.best_iteration), seed=config.split.seed,
            train_x=x, train_y=y, train_weight=weight,
        )  # fmt: skip
        again.best_iteration, again.notes = report.best_iteration, report.notes
        return refitted, again

    def run_trials(self, trials: int, run: Callable[[int], object]) -> None:
        """See :meth:`Engine.run_trials`."""
        run(trials)


class DaskEngine:
    """LightGBM boosting (and tuning trials) on the workers of a Dask cluster, connected on first use.

    Args:
        scheduler: Scheduler address; ``None`` starts a ``LocalCluster`` on loopback when first needed.
        workers: Workers of that local cluster (default: one per core).
    """

    name: EngineName = "dask"

    def __init__(self, scheduler: str | None, workers: int | None) -> None:
        self.scheduler = scheduler
        self.workers = workers
        self._stack = contextlib.ExitStack()
        self._client: Any = None

    def close(self) -> None:
        """Disconnect (and shut down a ``LocalCluster`` this engine started)."""
        self._client = None
        self._stack.close()

    @property
    def client(self) -> Any:
        """The connected ``distributed.Client`` (connecting, or starting the local cluster, the first time)."""
        if self._client is None:
            from keel.io.cluster import dask_client

            self._client = self._stack.enter_context(dask_client(self.scheduler, workers=self.workers))
        return self._client

    def prepare(self, loaded: LoadedConfig, reporter: Reporter, *, purpose: Purpose = "train") -> Prepared:
        """See :meth:`Engine.prepare`: a Parquet ``data.train`` is read, split and checked on the workers."""
        from keel.io.cluster import require_extra

        check_config(loaded.config)
        require_extra("dask")
        from keel.application.dask_train import partitioned_source, prepare_partitioned

        source, why_not = partitioned_source(loaded) if purpose == "train" else (None, "")
        if source is not None:
            return prepare_partitioned(loaded, source, self.client, reporter)
        if why_not:
            reporter.note(
                f"engine: dask: {why_not}, so this process reads and splits the whole table (pandas) and only the "
                "boosting runs on the workers; a Parquet file, folder or glob in data.train is read on the workers"
            )
        return load_and_check(loaded, reporter, purpose=purpose)

    def fit(self, loaded: LoadedConfig, prepared: Prepared) -> tuple[FittedModel, FitReport]:
        """See :meth:`Engine.fit`: the training rows stay on the workers, or are shipped there encoded."""
        from keel.application.dask_train import fit_on_dask, fit_partitioned

        if prepared.remote is not None:
            return fit_partitioned(loaded, prepared)
        config = loaded.config
        return fit_on_dask(
            prepared.schema,
            config.features,
            config.model,
            seed=config.split.seed,
            train_x=prepared.train_x,
            train_y=prepared.train_y,
            valid_x=prepared.valid_x,
            valid_y=prepared.valid_y,
            client=self.client,
            local=self.scheduler is None,
        )

    def run_trials(self, trials: int, run: Callable[[int], object]) -> None:
        """See :meth:`Engine.run_trials`: the trials are shared out over the workers, one task per worker."""
        client = self.client
        addresses = list(client.scheduler_info()["workers"])
        if not addresses:
            raise ConfigError(f"the Dask cluster at {self.scheduler} has no workers")
        shares = [trials // len(addresses) + (1 if i < trials % len(addresses) else 0) for i in range(len(addresses))]
        futures = [
            client.submit(run, share, workers=[address], pure=False)
            for address, share in zip(addresses, shares, strict=True)
            if share
        ]
        client.gather(futures)


@contextlib.contextmanager
def engine_for(name: str, *, scheduler: str | None = None, workers: int | None = None) -> Iterator[Engine]:
    """The engine called ``name`` for the duration of a block (a Dask cluster it started ends with the block).

    Raises:
        ConfigError: ``name`` is neither ``local`` nor ``dask``.
    """
    if name == "local":
        yield LocalEngine()
        return
    if name != "dask":
        raise ConfigError(f"engine {name!r}: use local or dask")
    engine = DaskEngine(scheduler, workers)
    try:
        yield engine
    finally:
        engine.close()
