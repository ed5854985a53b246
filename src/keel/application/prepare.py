"""The one preparation step every training job shares (train, tune, Dask training).

:func:`check_config` runs the checks that need no data (``model.params`` names and types, metrics against a declared
task), so a typo is refused before anything is read.
"""

from __future__ import annotations

from keel.config import KeelConfig
from keel.domain.estimators import check_params
from keel.domain.metrics import CLASSIFICATION_METRICS, REGRESSION_METRICS, check_metrics_fit_task, default_metrics
from keel.errors import ConfigError


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
