"""The configuration schema and its loader.

A keel configuration is one or more YAML files merged left to right by OmegaConf, then ``key.path=value``
overrides from the command line, then validated by the pydantic models below (frozen, ``extra="forbid"``). Any
problem is a :class:`~keel.errors.ConfigError` naming the file, the key path, what was expected and, for unknown
keys, the closest valid names.
"""

from __future__ import annotations

import difflib
import os
import re
from collections.abc import Sequence
from importlib import resources
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from keel.errors import ConfigError

DEFAULT_CONFIG = "adult.yaml"
"""Name of the packaged configuration used when ``keel train`` is given no file."""

PACKAGED_CONFIG_PREFIX = "package:"

ColumnType = Literal["numeric", "categorical", "boolean", "text", "datetime"]
TaskType = Literal["auto", "binary", "multiclass", "regression"]
MetricName = Literal[
    "accuracy", "balanced_accuracy", "f1_macro", "f1_weighted", "roc_auc", "log_loss", "rmse", "mae", "r2"
]


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class ProjectConfig(_Model):
    """Who the model is for.

    Attributes:
        name: Project name; also the registered model's name unless ``registry.model_name`` is set.
        description: One line a person reads in ``keel models list`` and reports.
    """

    name: Annotated[str, Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")]
    description: str = ""


class CsvOptions(_Model):
    """How a CSV file is parsed.

    Attributes:
        header: Whether the first (non-skipped) line holds the column names.
        names: Column names to use; required when ``header`` is false.
        delimiter: Field separator.
        na_values: Extra strings read as missing (``?`` in the UCI files).
        skip_rows: Lines skipped at the start of the file (comments such as the one opening ``adult.test``).
        strip_whitespace: Strip spaces around fields (the UCI files put one after every comma).
        default_na: Also read pandas' own missing-value tokens (``NA``, ``n/a``, ``NULL``, ``-nan``, …) as missing.
            Off by default: only empty cells and ``na_values`` are missing, so a value such as ``NA`` (a country
            code) or ``null`` stays what the file says.
    """

    header: bool = True
    names: list[str] | None = None
    delimiter: str = ","
    na_values: list[str] = Field(default_factory=list)
    skip_rows: Annotated[int, Field(ge=0)] = 0
    strip_whitespace: bool = True
    default_na: bool = False

    @model_validator(mode="after")
    def _names_when_no_header(self) -> CsvOptions:
        if not self.header and not self.names:
            raise ValueError("a CSV file without a header needs `names`, the list of its column names")
        return self


Sha256 = Annotated[str, Field(pattern=r"^[0-9a-fA-F]{64}$")]


class SourceConfig(_Model):
    """Where a table comes from.

    ``path`` is tried first: ``package:…`` names a file shipped inside keel, an absolute path is used as it is and
    a relative path is looked up under the data directory (``KEEL_DATA_DIR`` or ``data.data_dir``). When the file
    is not there and ``url`` is set, the file is downloaded once into the cache and checked against ``sha256``.

    Attributes:
        path: Local or packaged file (CSV, Parquet or Feather, optionally gzip-compressed CSV) or a folder of
            Parquet part files.
        url: HTTP(S) address to download from when ``path`` is not found locally.
        sha256: Expected sha256 of the downloaded file (of ``member`` when that is set); required with ``url``.
            With ``years``, a mapping ``{year: sha256}`` with one entry per year.
        format: File format; ``auto`` decides from the file name.
        csv: CSV parsing options.
        member: File to read inside a zip archive (e.g. ``hour.csv`` in the UCI Bike Sharing zip).
        years: ``[first, last]``: the source is one file per year; ``{year}`` in ``path`` and ``url`` is replaced by
            each year and the yearly tables are read and stacked in order.
    """

    path: str | None = None
    url: Annotated[str | None, Field(pattern=r"^https?://")] = None
    sha256: Sha256 | dict[int, Sha256] | None = None
    format: Literal["auto", "csv", "parquet", "feather"] = "auto"
    csv: CsvOptions = Field(default_factory=CsvOptions)
    member: str | None = None
    years: tuple[int, int] | None = None

    @model_validator(mode="after")
    def _path_or_url(self) -> SourceConfig:
        if self.path is None and self.url is None:
            raise ValueError("a data source needs `path`, `url` or both")
        if self.url is not None and self.sha256 is None:
            raise ValueError("a download needs `sha256` so a corrupt or changed file is never used")
        if self.years is None:
            if isinstance(self.sha256, dict):
                raise ValueError("`sha256` is a mapping of years only with `years`; give one sha256 for the file")
            return self
        first, last = self.years
        if first > last:
            raise ValueError(f"`years` must be [first, last] with first <= last (got [{first}, {last}])")
        for key in ("path", "url"):
            value = getattr(self, key)
            if value is not None and "{year}" not in value:
                raise ValueError(f"with `years`, `{key}` must contain {{year}}, e.g. matches_{{year}}.csv")
        if self.url is not None:
            hashes = self.sha256 if isinstance(self.sha256, dict) else {}
            missing = [year for year in range(first, last + 1) if year not in hashes]
            if missing:
                raise ValueError(
                    f"with `years` and `url`, `sha256` must map every year to its file's sha256; missing: {missing}"
                )
        return self

    def per_year(self) -> list[tuple[int | None, SourceConfig]]:
        """The plain (single-file) sources behind this one: one per year with ``years``, else itself.

        Returns:
            ``(year, source)`` pairs in year order (``year`` is ``None`` without ``years``).
        """
        if self.years is None:
            return [(None, self)]
        hashes = self.sha256 if isinstance(self.sha256, dict) else {}
        first, last = self.years
        return [
            (
                year,
                self.model_copy(
                    update={
                        "path": None if self.path is None else self.path.replace("{year}", str(year)),
                        "url": None if self.url is None else self.url.replace("{year}", str(year)),
                        "sha256": hashes.get(year),
                        "years": None,
                    }
                ),
            )
            for year in range(first, last + 1)
        ]


class DataConfig(_Model):
    """The dataset, its target and its columns.

    Attributes:
        train: The table to learn from (and to split, unless ``test`` is given).
        test: An explicit test table (used by ``split.strategy: explicit``).
        data_dir: Folder that relative ``path`` values are looked up in; ``KEEL_DATA_DIR`` wins over it.
        target: Column to predict.
        task: ``binary``, ``multiclass`` or ``regression``; ``auto`` decides from the target.
        features: Feature columns; when empty, every column that is not the target, an id or ignored.
        id_columns: Columns carried through to predictions but never used as features.
        ignore: Columns dropped before training (leaky or irrelevant ones).
        types: Declared column types; undeclared ones are inferred and the inference is printed.
        recode: Value replacements per column applied on load, e.g. ``{income: {">50K.": ">50K"}}``.
        recipe: A dataset recipe turning the raw tables into the model table: a registered name (``tennis``,
            ``tags``; see ``keel.domain.recipes``) or ``module:function`` for a user's own.
        recipe_params: Keyword arguments for the recipe.
        leakage_check: Refuse features that reproduce the target exactly or nearly (on by default).
        known_in_advance: Columns the user vouches are known before the outcome: no near-leakage warning for them
            (a feature that alone reaches ROC AUC 0.95 or R² 0.90, or whose value fixes the class for 95 % of rows,
            is otherwise warned about and its version not promoted automatically).
        weight: A column of sample weights (a survey or instance weight): never a feature; its numbers (finite, ≥ 0,
            in every row of every part) weigh each row when fitting, and weighted metrics are reported beside the
            unweighted ones. Prediction and serving accept the column and ignore it.
    """

    train: SourceConfig
    test: SourceConfig | None = None
    data_dir: str | None = None
    target: str
    task: TaskType = "auto"
    features: list[str] = Field(default_factory=list)
    id_columns: list[str] = Field(default_factory=list)
    ignore: list[str] = Field(default_factory=list)
    types: dict[str, ColumnType] = Field(default_factory=dict)
    recode: dict[str, dict[str, str | int | float | bool]] = Field(default_factory=dict)
    recipe: Annotated[str, Field(pattern=r"^[A-Za-z_][\w.]*(:[A-Za-z_]\w*)?$")] | None = None
    recipe_params: dict[str, Any] = Field(default_factory=dict)
    leakage_check: bool = True
    known_in_advance: list[str] = Field(default_factory=list)
    weight: Annotated[str, Field(min_length=1)] | None = None

    @model_validator(mode="after")
    def _roles_do_not_overlap(self) -> DataConfig:
        roles = {"features": self.features, "id_columns": self.id_columns, "ignore": self.ignore}
        for role, columns in roles.items():
            if self.target in columns:
                raise ValueError(f"the target {self.target!r} cannot also be listed in `{role}`")
        if self.weight is not None:
            if self.weight == self.target:
                raise ValueError(f"`weight` {self.weight!r} is the target; name the column of sample weights")
            for role, columns in {**roles, "known_in_advance": self.known_in_advance}.items():
                if self.weight in columns:
                    raise ValueError(
                        f"the weight column {self.weight!r} cannot also be listed in `{role}`: it weighs rows and is "
                        "never a feature, an id or an ignored column"
                    )
        seen: dict[str, str] = {}
        for role, columns in roles.items():
            for column in columns:
                if column in seen and seen[column] != role:
                    raise ValueError(f"column {column!r} is listed in both `{seen[column]}` and `{role}`")
                seen[column] = role
        return self


class SplitConfig(_Model):
    """How rows are divided into train, validation and test parts.

    Attributes:
        strategy: ``stratified`` (random, keeping class shares; plain random for regression), ``random``,
            ``explicit`` (test rows come from ``data.test``) or ``chronological`` (ordered by ``time_column``).
        test_size: Share (< 1) or count (≥ 1) of rows held out for testing; unused by ``explicit``.
        valid_size: Share or count of the remaining rows used for early stopping; 0 disables it.
        seed: Seed for the split and the estimator.
        time_column: Column that orders rows for ``chronological``.
        test_start: With ``chronological``: rows whose time is at least this value are the test part.
        valid_start: With ``chronological``: rows from this value up to ``test_start`` are the validation part.
    """

    strategy: Literal["stratified", "random", "explicit", "chronological"] = "stratified"
    test_size: Annotated[float, Field(gt=0)] = 0.2
    valid_size: Annotated[float, Field(ge=0)] = 0.0
    seed: int = 42
    time_column: str | None = None
    test_start: str | int | float | None = None
    valid_start: str | int | float | None = None

    @model_validator(mode="after")
    def _chronological_needs_time(self) -> SplitConfig:
        if self.strategy == "chronological" and not self.time_column:
            raise ValueError("`strategy: chronological` needs `time_column`, the column that orders the rows")
        if self.strategy != "chronological" and (self.test_start is not None or self.valid_start is not None):
            raise ValueError("`test_start` and `valid_start` only apply to `strategy: chronological`")
        return self


class TextFeatures(_Model):
    """TF-IDF settings for text columns.

    Attributes:
        word_ngrams: Smallest and largest word n-gram.
        char_ngrams: Smallest and largest character n-gram (within word boundaries); ``null`` disables them.
        max_features: Vocabulary size per kind of n-gram.
        min_df: Minimum number of documents a term must appear in.
        join: Join all text columns (in column order) into one document with one vocabulary, instead of one
            vocabulary per column; suits short fields that say the same kind of thing (a title and a description).
    """

    word_ngrams: tuple[int, int] = (1, 2)
    char_ngrams: tuple[int, int] | None = (2, 5)
    max_features: Annotated[int, Field(gt=0)] = 50_000
    min_df: Annotated[int, Field(ge=1)] = 1
    join: bool = False


class FeaturesConfig(_Model):
    """How columns become model inputs.

    Attributes:
        encoding: ``ordinal`` (categories as integer codes; trees use them natively), ``onehot`` (with scaled
            numerics; for linear models) or ``auto`` (ordinal for tree ensembles, onehot for linear models).
        min_category_frequency: Categories seen fewer times are grouped as infrequent (one-hot only).
        text: Settings for ``text`` columns.
        derived: Extra numeric features computed inside the feature pipeline (so prediction and serving compute
            them too): name → arithmetic over numeric columns with ``+ - * / **``, ``abs()`` and ``sqrt()``, e.g.
            ``{hydrology_distance: "sqrt(Horizontal_Distance_To_Hydrology**2 + Vertical_Distance_To_Hydrology**2)"}``.
    """

    encoding: Literal["auto", "ordinal", "onehot"] = "auto"
    min_category_frequency: Annotated[int, Field(ge=1)] = 1
    text: TextFeatures = Field(default_factory=TextFeatures)
    derived: dict[str, str] = Field(default_factory=dict)


EstimatorName = Literal["lightgbm", "hist_gradient_boosting", "random_forest", "logistic_regression", "ridge", "auto"]


ROUND_PARAMS = frozenset(
    {"n_estimators", "num_iterations", "num_iteration", "n_iter", "num_tree", "num_trees", "num_round",
     "num_rounds", "nrounds", "num_boost_round", "max_iter"}
)  # fmt: skip
"""LightGBM's names (and aliases) for the number of boosting rounds; setting one turns the default early stopping
off."""

DEFAULT_VALID_SHARE = 0.1
"""Share of the training rows held out for early stopping when the config names no validation part."""


def stops_early(estimator: str, params: dict[str, Any]) -> bool:
    """Whether the estimator boosts with early stopping by default: LightGBM (or ``auto``) without a round count.

    An explicit round count (``n_estimators`` or an alias) is the user's choice and is kept as it is.
    """
    return estimator in ("lightgbm", "auto") and not ROUND_PARAMS & set(params)


class ModelConfig(_Model):
    """The estimator.

    Attributes:
        estimator: Estimator family; classifier or regressor is chosen from the task. ``auto`` fits several
            candidates and keeps the best on the validation part (see :mod:`keel.domain.automl`).
        params: Keyword arguments for the estimator (checked against its real parameters).
        early_stopping_rounds: Stop boosting when the validation score has not improved for this many rounds
            (LightGBM, needs a validation part). Without a round count in ``params``, LightGBM boosts up to
            ``DEFAULT_ROUND_CAP`` rounds and stops after this many (default 50) without improvement.
    """

    estimator: EstimatorName = "lightgbm"
    params: dict[str, Any] = Field(default_factory=dict)
    early_stopping_rounds: Annotated[int, Field(gt=0)] | None = None
    time_budget: Annotated[float, Field(gt=0)] | None = None
    """Seconds ``estimator: auto`` may spend fitting candidates (default 300); ``keel train --time-budget``."""

    @model_validator(mode="after")
    def _budget_is_for_auto(self) -> ModelConfig:
        if self.time_budget is not None and self.estimator != "auto":
            raise ValueError("`model.time_budget` applies to `model.estimator: auto` only")
        return self


class PromotionConfig(_Model):
    """When a new version becomes ``champion``.

    Attributes:
        metric: Metric compared on the same test data.
        margin: How much better the new version must be (in the metric's units) to take the alias.
    """

    metric: MetricName | None = None
    margin: Annotated[float, Field(ge=0)] = 0.0


class BaselineConfig(_Model):
    """A named baseline whose predictions are a column of the test table (e.g. one a recipe computes).

    Attributes:
        name: Name shown beside the model's metrics.
        column: Column holding the baseline's prediction for each row.
        kind: ``probability`` (binary: probability of the positive class, the last of the sorted classes),
            ``label`` (a predicted class; probability metrics are not reported) or ``value`` (regression).
    """

    name: Annotated[str, Field(min_length=1)]
    column: str
    kind: Literal["probability", "label", "value"] = "probability"


class EvaluationConfig(_Model):
    """What is measured on the test part.

    Attributes:
        metrics: Metrics to compute; empty means the task's defaults.
        slices: Columns whose values each get their own metrics (for fairness and error analysis).
        max_slice_values: Largest number of values per slice column reported (most frequent first).
        min_slice_rows: Slices with fewer test rows are skipped.
        promotion: The promotion gate.
        baselines: Extra baselines read from columns of the test table, reported beside the naive one.
    """

    metrics: list[MetricName] = Field(default_factory=list)
    slices: list[str] = Field(default_factory=list)
    max_slice_values: Annotated[int, Field(gt=0)] = 10
    min_slice_rows: Annotated[int, Field(gt=0)] = 30
    promotion: PromotionConfig = Field(default_factory=PromotionConfig)
    baselines: list[BaselineConfig] = Field(default_factory=list)


class RegistryConfig(_Model):
    """Where runs and model versions are recorded.

    Attributes:
        workspace: Folder holding the embedded MLflow store (``mlflow.db``) and artifacts; ``KEEL_WORKSPACE``
            wins over it.
        tracking_uri: An MLflow tracking URI; ``MLFLOW_TRACKING_URI`` wins over it; empty means the workspace's
            SQLite store.
        model_name: Registered model name; defaults to ``project.name``.
        experiment: MLflow experiment name; defaults to ``project.name``.
    """

    workspace: str = ".keel"
    tracking_uri: str | None = None
    model_name: str | None = None
    experiment: str | None = None


class ParamSpace(_Model):
    """The range one hyper-parameter is searched over by ``keel tune``.

    Attributes:
        type: ``int``, ``float`` or ``categorical``.
        low: Smallest value (``int`` and ``float``).
        high: Largest value (``int`` and ``float``).
        log: Sample on a log scale (positive ranges spanning orders of magnitude, e.g. a learning rate).
        step: Spacing between values (``int`` and ``float``; not with ``log``).
        choices: The values to choose from (``categorical``).
    """

    type: Literal["int", "float", "categorical"]
    low: float | None = None
    high: float | None = None
    log: bool = False
    step: Annotated[float, Field(gt=0)] | None = None
    choices: list[str | int | float | bool | None] | None = None

    @model_validator(mode="after")
    def _range_or_choices(self) -> ParamSpace:
        if self.type == "categorical":
            if not self.choices:
                raise ValueError("a `categorical` search space needs a non-empty `choices` list")
            return self
        if self.low is None or self.high is None:
            raise ValueError(f"an `{self.type}` search space needs `low` and `high`")
        if self.low > self.high:
            raise ValueError(f"`low` ({self.low}) is above `high` ({self.high})")
        if self.log and self.low <= 0:
            raise ValueError(f"`log: true` needs `low` > 0 (got {self.low})")
        if self.log and self.step is not None:
            raise ValueError("`step` and `log: true` cannot be combined")
        return self


class TuningConfig(_Model):
    """How ``keel tune`` searches hyper-parameters (on the validation split; the test split is never used).

    Attributes:
        metric: Validation metric to optimise; defaults to the promotion metric (or the task's default).
        space: ``model.params`` name → search space; empty means the estimator's default space.
        pruning: Stop unpromising LightGBM trials early on the validation split (median pruner).
        warmup_rounds: Boosting rounds every trial runs before it can be pruned.
        study: Study name; defaults to ``tune-<model name>``.
        storage: Optuna storage URL (``sqlite:///…``, ``postgresql://…``); defaults to ``optuna.db`` in the
            workspace. ``KEEL_TUNE_STORAGE`` wins over it (so secrets stay out of files).
    """

    metric: MetricName | None = None
    space: dict[str, ParamSpace] = Field(default_factory=dict)
    pruning: bool = True
    warmup_rounds: Annotated[int, Field(ge=0)] = 20
    study: Annotated[str, Field(min_length=1)] | None = None
    storage: str | None = None


class ServingConfig(_Model):
    """How ``keel serve`` runs a version trained with this configuration.

    Attributes:
        log_dir: Folder for the prediction log (every scored record as Parquet part files); ``keel serve
            --log-dir`` wins over it; empty means no log.
    """

    log_dir: str | None = None


EngineName = Literal["local", "dask"]


class KeelConfig(_Model):
    """A whole keel configuration."""

    project: ProjectConfig
    data: DataConfig
    split: SplitConfig = Field(default_factory=SplitConfig)
    features: FeaturesConfig = Field(default_factory=FeaturesConfig)
    model: ModelConfig = Field(default_factory=ModelConfig)
    evaluation: EvaluationConfig = Field(default_factory=EvaluationConfig)
    registry: RegistryConfig = Field(default_factory=RegistryConfig)
    tuning: TuningConfig = Field(default_factory=TuningConfig)
    serving: ServingConfig = Field(default_factory=ServingConfig)
    engine: EngineName = "local"
    """Where training runs: ``local`` (in-process) or ``dask`` (``lightgbm.dask`` on a Dask cluster)."""
    scheduler: Annotated[str, Field(pattern=r"^(tcp|tls|ucx|inproc)://")] | None = None
    """Dask scheduler address for ``engine: dask``; empty starts a ``LocalCluster`` on this machine."""
    dask_workers: Annotated[int, Field(ge=1)] | None = None
    """Workers of the ``LocalCluster`` started when ``scheduler`` is empty (default: sized to the machine)."""
    dask_collect_rows: Annotated[int, Field(ge=1)] | None = None
    """Most test and validation rows ``engine: dask`` brings to the driver when it splits a partitioned (Parquet)
    training table on the workers (default 2,000,000); a split that would bring more is refused before reading."""

    @field_validator("project", mode="before")
    @classmethod
    def _project_may_be_a_name(cls, value: Any) -> Any:
        return {"name": value} if isinstance(value, str) else value

    @model_validator(mode="before")
    @classmethod
    def _carve_validation_for_early_stopping(cls, data: Any) -> Any:
        """Give early stopping rows to stop on when no validation part is configured (see :func:`stops_early`)."""
        if not isinstance(data, dict):
            return data
        split, model = data.get("split") or {}, data.get("model") or {}
        if not isinstance(split, dict) or not isinstance(model, dict) or data.get("engine", "local") != "local":
            return data
        if "valid_size" in split or split.get("valid_start") is not None:
            return data  # the user decided, including `valid_size: 0` for no validation part
        estimator = model.get("estimator", "lightgbm")
        asked = estimator == "lightgbm" and model.get("early_stopping_rounds")
        if not (asked or stops_early(estimator, model.get("params") or {})):
            return data
        return {**data, "split": {**split, "valid_size": DEFAULT_VALID_SHARE}}

    @model_validator(mode="after")
    def _cross_checks(self) -> KeelConfig:
        if self.split.strategy == "explicit" and self.data.test is None:
            raise ValueError("`split.strategy: explicit` needs `data.test`, the file holding the test rows")
        if self.model.early_stopping_rounds and self.split.valid_size == 0 and self.split.valid_start is None:
            raise ValueError(
                "`model.early_stopping_rounds` needs `split.valid_size` > 0 (or `split.valid_start`) to have rows "
                "to stop on"
            )
        if self.model.estimator == "auto" and self.split.valid_size == 0 and self.split.valid_start is None:
            raise ValueError(
                "`model.estimator: auto` picks a model by its validation score; remove `split.valid_size: 0` (a "
                "validation part is then carved from the training rows) or set `split.valid_start`"
            )
        if self.data.weight is not None and self.split.time_column == self.data.weight:
            raise ValueError(f"`split.time_column` is the weight column {self.data.weight!r}; they must differ")
        if self.data.weight is not None and self.engine == "dask":
            raise ValueError(
                f"`data.weight` ({self.data.weight!r}) is not supported with `engine: dask` yet: Dask training would "
                "ignore the weights; train with engine: local (the default), or remove data.weight"
            )
        if self.engine == "dask" and self.model.estimator != "lightgbm":
            raise ValueError(
                f"`engine: dask` trains with lightgbm.dask; `model.estimator: {self.model.estimator}` only trains "
                "in-process (use engine: local)"
            )
        dask_keys = {"scheduler": self.scheduler, "dask_workers": self.dask_workers}
        dask_keys["dask_collect_rows"] = self.dask_collect_rows
        if self.engine == "local" and any(value is not None for value in dask_keys.values()):
            set_keys = ", ".join(f"`{key}`" for key, value in dask_keys.items() if value is not None)
            raise ValueError(f"{set_keys} apply only with `engine: dask`; add engine=dask")
        return self

    @property
    def model_name(self) -> str:
        """The registered model's name."""
        return self.registry.model_name or self.project.name


class LoadedConfig(BaseModel):
    """A validated configuration with where it came from.

    Attributes:
        config: The validated configuration.
        sources: The files merged, in order (``package:adult.yaml`` for the packaged default).
        overrides: The ``key=value`` overrides applied after the files.
        base_dir: Folder of the last file, used to resolve relative paths when no data directory is set.
    """

    model_config = ConfigDict(frozen=True, arbitrary_types_allowed=True)

    config: KeelConfig
    sources: list[str]
    overrides: list[str]
    base_dir: Path

    def resolved_yaml(self) -> str:
        """The configuration as YAML, every default filled in."""
        return dump_yaml(self.config.model_dump(mode="json"))


def dump_yaml(data: dict[str, Any]) -> str:
    """Render a plain dict as YAML (keys in definition order) that OmegaConf reads back as the same values.

    Written with PyYAML directly (OmegaConf's own dump builds its nodes first, ten times slower). A string a YAML
    reader could take for a number (``1e3``, ``nan``) is quoted, as OmegaConf quotes it.
    """
    import yaml

    class Dumper(yaml.SafeDumper):
        pass

    def text(dumper: yaml.SafeDumper, value: str) -> yaml.ScalarNode:
        return dumper.represent_scalar("tag:yaml.org,2002:str", value, style="'" if _is_number(value) else None)

    Dumper.add_representer(str, text)
    return str(yaml.dump(data, Dumper=Dumper, sort_keys=False, allow_unicode=True, default_flow_style=False))


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


_OVERRIDE = re.compile(r"^([A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z0-9_]+)*=|~[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z0-9_]+)*$)")


def split_arguments(arguments: Sequence[str]) -> tuple[list[str], list[str]]:
    """Separate config files from ``key.path=value`` (set) and ``~key.path`` (remove) overrides.

    Args:
        arguments: Arguments in the order the user gave them.

    Returns:
        The config file paths and the overrides, each in their original order.
    """
    files = [a for a in arguments if not _OVERRIDE.match(a)]
    overrides = [a for a in arguments if _OVERRIDE.match(a)]
    return files, overrides


def load_config(files: Sequence[str | Path] = (), overrides: Sequence[str] = ()) -> LoadedConfig:
    """Load, merge, override and validate a configuration.

    Args:
        files: YAML files merged left to right; none means the packaged default (Adult income).
            ``package:NAME.yaml`` names one of the packaged configurations.
        overrides: ``key.path=value`` strings applied after the files (OmegaConf dot-list syntax), and
            ``~key.path`` to remove a key (e.g. ``~model.params`` before switching ``model.estimator``).

    Returns:
        The validated configuration and where it came from.

    Raises:
        ConfigError: A file is missing or not valid YAML, an override is malformed, or the result does not
            match the schema.
    """
    import yaml
    from omegaconf import DictConfig, OmegaConf
    from omegaconf.errors import OmegaConfBaseException

    sources = [str(f) for f in files] or [PACKAGED_CONFIG_PREFIX + DEFAULT_CONFIG]
    layers: list[tuple[str, Any]] = []
    base_dir = Path.cwd()
    for source in sources:
        text, base = _read_config_text(source)
        try:
            layer = OmegaConf.create(text)
        except (OmegaConfBaseException, ValueError, yaml.YAMLError) as exc:
            detail = " ".join(str(exc).split())
            raise ConfigError(f"{source}: not valid YAML: {detail}") from None
        if not isinstance(layer, DictConfig):
            raise ConfigError(f"{source}: expected a mapping of sections (project, data, …) at the top level")
        layers.append((source, layer))
        base_dir = base
    try:
        merged = OmegaConf.merge(*(layer for _, layer in layers)) if layers else OmegaConf.create({})
    except OmegaConfBaseException as exc:
        raise ConfigError(f"{', '.join(sources)}: {_first_line(exc)}") from None
    for override in overrides:
        if override.startswith("~"):
            merged = _remove_key(merged, override)
            continue
        if "=" not in override:
            raise ConfigError(f"override {override!r}: expected key.path=value, e.g. model.params.n_estimators=300")
        try:
            layer = OmegaConf.from_dotlist([override])
            merged = OmegaConf.merge(merged, layer)
        except OmegaConfBaseException as exc:
            raise ConfigError(f"override {override!r}: {_first_line(exc)}") from None
        layers.append((f"override {override!r}", layer))
    try:
        data = OmegaConf.to_container(merged, resolve=True)
    except OmegaConfBaseException as exc:
        raise ConfigError(f"{', '.join(sources)}: {_first_line(exc)}") from None
    try:
        config = KeelConfig.model_validate(data)
    except ValidationError as exc:
        raise ConfigError(_describe_validation_error(exc, layers)) from None
    return LoadedConfig(config=config, sources=sources, overrides=list(overrides), base_dir=base_dir)


def _remove_key(merged: Any, override: str) -> Any:
    """Apply a ``~key.path`` override: remove the key (an error names it when it is not there)."""
    from omegaconf import OmegaConf

    path = override[1:].split(".")
    container = OmegaConf.to_container(merged, resolve=False)
    node: Any = container
    for part in path[:-1]:
        node = node.get(part) if isinstance(node, dict) else None
    if not isinstance(node, dict) or path[-1] not in node:
        raise ConfigError(f"override {override!r}: there is no key `{override[1:]}` to remove")
    del node[path[-1]]
    return OmegaConf.create(container)


def packaged_config_names() -> list[str]:
    """Names of the configurations shipped inside keel."""
    folder = resources.files("keel") / "configs"
    return sorted(p.name for p in folder.iterdir() if p.name.endswith(".yaml"))


def _read_config_text(source: str) -> tuple[str, Path]:
    if source.startswith(PACKAGED_CONFIG_PREFIX):
        name = source.removeprefix(PACKAGED_CONFIG_PREFIX)
        resource = resources.files("keel") / "configs" / name
        if not resource.is_file():
            known = ", ".join(packaged_config_names())
            raise ConfigError(f"{source}: no packaged configuration of that name (packaged: {known})")
        return resource.read_text(encoding="utf-8"), Path.cwd()
    path = Path(source).expanduser()
    if not path.is_file():
        hint = " (it is a folder)" if path.is_dir() else ""
        raise ConfigError(f"{source}: config file not found{hint}; give the path to a YAML file")
    try:
        return path.read_text(encoding="utf-8"), path.resolve().parent
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{source}: cannot read config file: {exc}") from None


def _describe_validation_error(exc: ValidationError, layers: list[tuple[str, Any]]) -> str:
    problems = []
    for error in exc.errors():
        location = [str(part) for part in error["loc"]]
        key = ".".join(location) or "(top level)"
        origin = _origin_of(location, layers)
        if error["type"] == "extra_forbidden":
            valid = _valid_keys(location[:-1])
            close = difflib.get_close_matches(location[-1], valid, n=3, cutoff=0.5)
            hint = f"; did you mean {' or '.join(repr(c) for c in close)}?" if close else ""
            listing = f" Valid keys here: {', '.join(valid)}." if valid else ""
            problems.append(f"{origin}: unknown key `{key}`{hint}{listing}")
        elif error["type"] == "missing":
            problems.append(f"{origin}: missing required key `{key}`")
        else:
            message = error["msg"].removeprefix("Value error, ")
            received = error.get("input")
            shown = "" if isinstance(received, dict | list) or received is None else f" (got {received!r})"
            problems.append(f"{origin}: `{key}`: {message}{shown}")
    header = "invalid configuration" if len(problems) == 1 else f"invalid configuration ({len(problems)} problems)"
    return header + ":\n  " + "\n  ".join(problems)


def _origin_of(location: list[str], layers: list[tuple[str, Any]]) -> str:
    """The last file or override that sets the key at ``location`` (or its nearest parent)."""
    from omegaconf import OmegaConf

    for depth in range(len(location), 0, -1):
        dotted = ".".join(location[:depth])
        for source, layer in reversed(layers):
            try:
                if OmegaConf.select(layer, dotted, default=_MISSING) is not _MISSING:
                    return str(source)
            except Exception:  # noqa: BLE001, S112 - a key that cannot be selected simply is not in this layer
                continue
    return ", ".join(source for source, _ in layers if not source.startswith("override")) or "configuration"


_MISSING = object()


def _valid_keys(location: list[str]) -> list[str]:
    """Field names of the model found at ``location`` in :class:`KeelConfig` (empty when it is not a model)."""
    model: Any = KeelConfig
    for part in location:
        fields = getattr(model, "model_fields", None)
        if fields is None or part not in fields:
            return []
        model = _model_type(fields[part].annotation)
        if model is None:
            return []
    fields = getattr(model, "model_fields", None)
    return sorted(fields) if fields else []


def _model_type(annotation: Any) -> Any:
    import typing

    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    for arg in typing.get_args(annotation):
        found = _model_type(arg)
        if found is not None:
            return found
    return None


def _first_line(exc: BaseException) -> str:
    return str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__


def data_dir_from_env() -> Path | None:
    """The data directory set by ``KEEL_DATA_DIR``, if any."""
    value = os.environ.get("KEEL_DATA_DIR")
    return Path(value).expanduser() if value else None
