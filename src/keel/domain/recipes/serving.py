"""Serving hooks: how a recipe answers requests in its own words instead of raw model rows.

Most models are served with a request model built from the feature schema (one field per training column). A
recipe whose rows are computed from state (the tennis recipe's ratings, form and head-to-head) cannot be served that
way: a client knows two player names, not forty pre-match features. Such a recipe declares a serving hook, a
factory that receives the tables the recipe stored with the model version and returns a :class:`RecipeService`:

- ``request_type``: the pydantic model of one request (shown in ``/docs`` with ``example``);
- ``rows(request)``: the model rows the request stands for, built exactly as the recipe builds its training rows;
- ``respond(request, predictions)``: the answer, from the predictions of those rows.

The built-in recipes' hooks are listed in :data:`SERVING_HOOKS`; a user's own recipe (``module:function``)
declares one by giving the function a ``serving`` attribute naming the factory (a callable or ``module:factory``).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from types import MappingProxyType
from typing import TYPE_CHECKING, Any, Protocol

from keel.errors import KeelError

if TYPE_CHECKING:
    import pandas as pd
    from pydantic import BaseModel

    from keel.domain.schema import FeatureSchema

SERVING_HOOKS: Mapping[str, str] = MappingProxyType(
    {"tennis": "keel.domain.recipes.tennis_serving:tennis_service"},
)
"""Registered recipe name → the ``module:factory`` of its serving hook."""


class ServiceLookupError(KeelError):
    """A request names something the stored state does not resolve to exactly one entry (e.g. a player).

    Attributes:
        field: The request field (``player_1``).
        value: The value sent.
        candidates: Known names the client may have meant (closest first, or every match).
    """

    status = 404
    kind = "unknown"

    def __init__(self, message: str, *, field: str, value: str, candidates: Sequence[str]) -> None:
        super().__init__(message)
        self.field = field
        self.value = value
        self.candidates = list(candidates)


class UnknownEntityError(ServiceLookupError):
    """Nothing known matches the value (the service answers 404 with the closest known names)."""

    status = 404
    kind = "unknown"


class AmbiguousEntityError(ServiceLookupError):
    """Several known entries match the value (the service answers 409 listing them)."""

    status = 409
    kind = "ambiguous"


class InvalidRequestError(ValueError):
    """A well-formed request that cannot be scored (e.g. the same player twice); the service answers 422.

    Attributes:
        field: The request field at fault (empty for the request as a whole).
    """

    def __init__(self, message: str, *, field: str = "") -> None:
        super().__init__(message)
        self.field = field


class RecipeService(Protocol):
    """What a recipe's serving hook provides for one model version."""

    @property
    def request_type(self) -> type[BaseModel]:
        """The pydantic model of one request."""
        ...

    @property
    def response_type(self) -> type[BaseModel]:
        """The pydantic model of one answer (documentation; ``respond`` returns plain dicts)."""
        ...

    @property
    def example(self) -> dict[str, Any]:
        """A real request, shown in ``/docs``."""
        ...

    def rows(self, request: Any) -> list[dict[str, Any]]:
        """The model rows one validated request stands for (feature name → value; ``None`` for missing).

        Raises:
            UnknownEntityError: A named entry is not in the stored state.
            AmbiguousEntityError: A name matches several entries.
            InvalidRequestError: The request is well-formed but cannot be scored (the message says why).
        """
        ...

    def respond(self, request: Any, predictions: list[dict[str, Any]]) -> dict[str, Any]:
        """The answer to one request from the predictions of its rows (in the order ``rows`` gave them)."""
        ...


ServiceFactory = Callable[["Mapping[str, pd.DataFrame]", "FeatureSchema"], RecipeService]
"""Builds a :class:`RecipeService` from the recipe's stored tables (name → table) and the feature schema."""


def serving_hook(recipe: str | None) -> ServiceFactory | None:
    """The serving hook a recipe declares, or ``None`` (the model is served with its generic request model).

    Args:
        recipe: ``data.recipe`` of the model version's config (a registered name or ``module:function``).

    Raises:
        ConfigError: The recipe or its declared hook cannot be imported.
    """
    if not recipe:
        return None
    target: Any = SERVING_HOOKS.get(recipe)
    if target is None:
        from keel.domain.recipes import REGISTERED, resolve_recipe

        if recipe in REGISTERED or ":" in recipe:
            target = getattr(resolve_recipe(recipe), "serving", None)
    if target is None or callable(target):
        return target  # type: ignore[no-any-return]
    return _import_factory(str(target), recipe)


def _import_factory(target: str, recipe: str) -> ServiceFactory:
    from keel.domain.recipes import import_callable

    return import_callable(target, context=f"recipe {recipe!r} (its serving hook)", noun="serving hook")
