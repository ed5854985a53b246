"""Estimators by name, with their parameters checked against the real estimator's."""

from __future__ import annotations

import difflib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from keel.domain.schema import Task
from keel.errors import ConfigError

_CLASSES: dict[str, tuple[str, str]] = {
    # name: (classifier, regressor) as "module:Class"
    "lightgbm": ("lightgbm:LGBMClassifier", "lightgbm:LGBMRegressor"),
    "hist_gradient_boosting": (
        "sklearn.ensemble:HistGradientBoostingClassifier",
        "sklearn.ensemble:HistGradientBoostingRegressor",
    ),
    "random_forest": ("sklearn.ensemble:RandomForestClassifier", "sklearn.ensemble:RandomForestRegressor"),
    "logistic_regression": ("sklearn.linear_model:LogisticRegression", ""),
    "ridge": ("", "sklearn.linear_model:Ridge"),
}

_DEFAULTS: dict[str, dict[str, Any]] = {
    # Quiet, reproducible defaults; a user's params win.
    "lightgbm": {"verbose": -1, "deterministic": True, "force_col_wise": True},
    "random_forest": {"n_estimators": 300, "n_jobs": -1, "min_samples_leaf": 2},
    "logistic_regression": {"max_iter": 2000, "C": 1.0},
    "hist_gradient_boosting": {},
    "ridge": {},
}


@dataclass(frozen=True)
class EstimatorSpec:
    """An unfitted estimator and how to fit it.

    Attributes:
        name: The configured estimator name.
        estimator: The scikit-learn compatible estimator.
    """

    name: str
    estimator: Any


def estimator_names() -> list[str]:
    """Names accepted in ``model.estimator``."""
    return sorted(_CLASSES)


def build_estimator(
    name: str,
    task: Task,
    params: Mapping[str, Any],
    *,
    seed: int,
    categorical_indices: Sequence[int] = (),
) -> EstimatorSpec:
    """Create the estimator for a task.

    Args:
        name: Estimator name (``lightgbm``, ``hist_gradient_boosting``, ``random_forest``, ``logistic_regression``,
            ``ridge``).
        task: ``binary``, ``multiclass`` or ``regression``.
        params: User parameters (``model.params``).
        seed: Random seed.
        categorical_indices: Output columns of the feature pipeline that hold category codes.

    Returns:
        The unfitted estimator.

    Raises:
        ConfigError: The estimator does not support the task, or a parameter is unknown.
    """
    cls = _estimator_class(name, task)
    settings = dict(_DEFAULTS.get(name, {}))
    settings.update(params)
    _check_params(name, cls, settings)
    if "random_state" in cls().get_params() and "random_state" not in params:
        settings["random_state"] = seed
    if name == "hist_gradient_boosting" and categorical_indices and "categorical_features" not in params:
        settings["categorical_features"] = list(categorical_indices)
    estimator = cls(**settings)
    _check_values(cls, estimator, params)
    return EstimatorSpec(name=name, estimator=estimator)


def check_params(name: str, task: Task | None, params: Mapping[str, Any]) -> None:
    """Check ``model.params`` names and value types without any data, as :func:`build_estimator` will.

    With the task undeclared (``None``) a name is accepted when the classifier or the regressor of the family
    takes it, and its value is checked against each of them that does.

    Args:
        name: Estimator name.
        task: The declared task, or ``None`` when it is inferred from the data later.
        params: User parameters (``model.params``).

    Raises:
        ConfigError: The estimator does not support the declared task, or a parameter is unknown or of the wrong
            type.
    """
    if name == "auto":
        from keel.domain.automl import check_auto_params

        check_auto_params(params)
        return
    if task is not None:
        classes = [_estimator_class(name, task)]
    else:
        tasks: tuple[Task, Task] = ("binary", "regression")
        classes = [_estimator_class(name, each) for each, path in zip(tasks, _family(name), strict=True) if path]
    valid: set[str] = set()
    for cls in classes:
        valid |= _valid_names(name, cls)
    _refuse_unknown(classes[0].__name__ if len(classes) == 1 else name, valid, params)
    for cls in classes:
        accepted = _valid_names(name, cls)
        settings = {**_DEFAULTS.get(name, {}), **{k: v for k, v in params.items() if k in accepted}}
        _check_values(cls, cls(**settings), {k: v for k, v in params.items() if k in accepted})


def check_weight_support(names: Sequence[str], task: Task | None, column: str) -> None:
    """Refuse sample weights (``data.weight``) for an estimator whose ``fit`` cannot take ``sample_weight``.

    Args:
        names: The estimators that will be fitted (``estimator: auto`` fits several).
        task: The declared task, or ``None`` (then both the classifier and the regressor are checked).
        column: The weight column, to name in the message.

    Raises:
        ConfigError: Some estimator's ``fit`` has no ``sample_weight`` parameter.
    """
    import inspect

    for name in names:
        kinds: tuple[Task, Task] = ("binary", "regression")
        for each, path in zip(kinds, _family(name), strict=True):
            if not path or (task is not None and (each == "regression") != (task == "regression")):
                continue
            cls: Any = _estimator_class(name, each)
            if "sample_weight" not in inspect.signature(cls.fit).parameters:
                raise ConfigError(
                    f"`data.weight: {column}`: model.estimator {name!r} ({cls.__name__}) cannot be fitted with "
                    f"sample weights; choose an estimator that takes them ({', '.join(_weighted_families())}) or "
                    "remove data.weight"
                )


def _weighted_families() -> list[str]:
    """Estimator names whose classifier and regressor (where they exist) all take ``sample_weight``."""
    import importlib
    import inspect

    found = []
    for name, paths in _CLASSES.items():
        takes = True
        for path in paths:
            if path:
                module, _, class_name = path.partition(":")
                fit = getattr(importlib.import_module(module), class_name).fit
                takes = takes and "sample_weight" in inspect.signature(fit).parameters
        if takes:
            found.append(name)
    return found


def _family(name: str) -> tuple[str, str]:
    if name not in _CLASSES:
        raise ConfigError(f"model.estimator: unknown estimator {name!r}; choose one of {', '.join(_CLASSES)}")
    return _CLASSES[name]


def _estimator_class(name: str, task: Task) -> type:
    """The classifier or regressor class of an estimator family for a task.

    Raises:
        ConfigError: The name is unknown, or the family cannot do the task.
    """
    import importlib

    classifier, regressor = _family(name)
    target = regressor if task == "regression" else classifier
    if not target:
        other = "ridge" if task == "regression" else "logistic_regression"
        raise ConfigError(f"model.estimator: {name!r} cannot do {task}; use {other!r} or lightgbm for a {task} target")
    module, _, class_name = target.partition(":")
    cls: type = getattr(importlib.import_module(module), class_name)
    return cls


def _check_values(cls: type, estimator: Any, params: Mapping[str, Any]) -> None:
    """Refuse parameter values of the wrong type before fitting, naming the parameter."""
    defaults = cls().get_params()
    for key, value in params.items():
        default = defaults.get(key)
        if default is None or value is None or key not in defaults:
            continue
        expected: tuple[type, ...]
        if isinstance(default, bool):
            expected = (bool,)
        elif isinstance(default, int):
            expected = (int,)
        elif isinstance(default, float):
            expected = (int, float)
        elif isinstance(default, str):
            expected = (str,)
        else:
            continue
        # bool is an int subclass: True must not pass for an int parameter.
        expected_ok = isinstance(value, expected) and not (isinstance(value, bool) and bool not in expected)
        if not expected_ok:
            kind = " or ".join(t.__name__ for t in expected)
            raise ConfigError(f"`model.params.{key}`: expected {kind} (like the default {default!r}), got {value!r}")
    validate = getattr(estimator, "_validate_params", None)
    if validate is not None and hasattr(estimator, "_parameter_constraints"):
        try:
            validate()
        except ValueError as exc:  # scikit-learn's InvalidParameterError names the parameter and the allowed values
            raise ConfigError(f"model.params: {exc}") from None


def _check_params(name: str, cls: type, params: Mapping[str, Any]) -> None:
    _refuse_unknown(cls.__name__, _valid_names(name, cls), params)


def _valid_names(name: str, cls: type) -> set[str]:
    valid = set(cls().get_params())
    if name == "lightgbm":
        valid |= _lightgbm_core_params()
    return valid


def _refuse_unknown(owner: str, valid: set[str], params: Mapping[str, Any]) -> None:
    unknown = [key for key in params if key not in valid]
    if not unknown:
        return
    problems = []
    for key in unknown:
        close = difflib.get_close_matches(key, sorted(valid), n=3, cutoff=0.6)
        hint = f" (did you mean {' or '.join(repr(c) for c in close)}?)" if close else ""
        problems.append(f"`model.params.{key}`{hint}")
    raise ConfigError(f"unknown parameter(s) for {owner}: {', '.join(problems)}")


def _lightgbm_core_params() -> set[str]:
    """Every LightGBM parameter name and alias (the sklearn API passes them through to the booster)."""
    try:
        from lightgbm.basic import _ConfigAliases

        aliases: dict[str, list[str]] = _ConfigAliases._get_all_param_aliases()
    except (ImportError, AttributeError):  # a LightGBM without the table: accept any name
        return _AnyName()
    names = set(aliases)
    for values in aliases.values():
        names.update(values)
    return names


class _AnyName(set[str]):
    def __contains__(self, item: object) -> bool:
        return True
