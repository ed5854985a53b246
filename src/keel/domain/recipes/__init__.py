"""Dataset recipes: pure functions that turn the raw tables of a dataset into the model table.

A recipe is named in the config (``data.recipe: tennis``) or given as ``module:function`` for a user's own. It is
called with the raw tables read from the configured sources (``train`` and, when configured, ``test``) and the
keyword arguments in ``data.recipe_params``, and returns either the model table or a :class:`RecipeResult` that
can also carry a rebuilt test table and extra tables to store with the model version (for example the tennis
player table a service resolves names against).

Recipes are pure: no files, no network, no clock, no global state; the same tables and parameters give the same
model table, which is what makes a model version reproducible from its data fingerprint and config.
"""

from __future__ import annotations

import importlib
import inspect
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import TYPE_CHECKING, Any

from keel.errors import ConfigError, DataError

if TYPE_CHECKING:
    import pandas as pd

REGISTERED: Mapping[str, str] = MappingProxyType(
    {
        "tennis": "keel.domain.recipes.tennis:tennis_matches",
        "tags": "keel.domain.recipes.tags:project_tags",
    }
)
"""Recipes known by name → the ``module:function`` implementing each."""


@dataclass
class RecipeResult:
    """What a recipe returns.

    Attributes:
        train: The model table (one row per example, the target and feature columns).
        test: The model table of the explicit test source, when the recipe builds one.
        artifacts: Extra tables stored with the model version as ``recipe/<name>.parquet`` (e.g. the state a
            service needs to build features for a new request).
        notes: Lines shown to the user (rows dropped and why, what was computed).
    """

    train: pd.DataFrame
    test: pd.DataFrame | None = None
    artifacts: dict[str, pd.DataFrame] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)


Recipe = Callable[..., "RecipeResult | pd.DataFrame"]


def resolve_recipe(spec: str) -> Recipe:
    """The function a recipe name or ``module:function`` stands for.

    Raises:
        ConfigError: The name is not registered, or the module or function cannot be found.
    """
    target = REGISTERED.get(spec, spec)
    if ":" not in target:
        known = ", ".join(sorted(REGISTERED))
        raise ConfigError(
            f"`data.recipe`: no recipe called {spec!r}; use one of {known} or `module:function` for your own"
        )
    return import_callable(target, context="`data.recipe`", noun="function")


def import_callable(target: str, *, context: str, noun: str) -> Callable[..., Any]:
    """The callable ``module:name`` names.

    Args:
        target: ``module:name``.
        context: What asked for it, to start the error message (e.g. ```data.recipe```).
        noun: What the callable is, for the error message (``function``, ``serving hook``).

    Raises:
        ConfigError: The module cannot be imported or has no such callable.
    """
    module_name, _, name = target.partition(":")
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise ConfigError(f"{context}: cannot import module {module_name!r} ({exc})") from None
    found = getattr(module, name, None)
    if not callable(found):
        raise ConfigError(f"{context}: module {module_name!r} has no {noun} {name!r}")
    return found  # type: ignore[no-any-return]


def apply_recipe(spec: str, tables: Mapping[str, pd.DataFrame], params: Mapping[str, Any]) -> RecipeResult:
    """Run a recipe on the raw tables.

    Args:
        spec: ``data.recipe``: a registered name or ``module:function``.
        tables: The raw tables by part (``train``, ``test``).
        params: ``data.recipe_params``.

    Returns:
        The recipe's result (a bare table is wrapped).

    Raises:
        ConfigError: The recipe is unknown or does not accept a parameter.
        DataError: The recipe's output is not a table.
    """
    import pandas as pd

    function = resolve_recipe(spec)
    accepted = inspect.signature(function).parameters
    takes_any = any(p.kind is inspect.Parameter.VAR_KEYWORD for p in accepted.values())
    unknown = [key for key in params if key not in accepted and not takes_any]
    if unknown:
        valid = list(accepted)[1:]
        raise ConfigError(
            f"`data.recipe_params`: recipe {spec!r} has no parameter(s) {', '.join(unknown)}; "
            f"it accepts: {', '.join(valid) or 'none'}"
        )
    result = function(dict(tables), **params)
    if isinstance(result, pd.DataFrame):
        result = RecipeResult(train=result)
    if not isinstance(result, RecipeResult) or not isinstance(result.train, pd.DataFrame):
        raise DataError(f"recipe {spec!r} returned {type(result).__name__}; a recipe returns a DataFrame")
    return result
