"""The promotion gate: when a new version takes the ``champion`` alias."""

from __future__ import annotations

import math
from dataclasses import dataclass

from keel.domain.metrics import greater_is_better, improvement


@dataclass(frozen=True)
class PromotionDecision:
    """Whether the new version becomes champion, and why.

    Attributes:
        promote: Whether the alias moves to the new version.
        reason: One sentence a person reads.
        metric: The metric compared.
        new_value: The new version's value on the test data.
        champion_value: The current champion's value on the same test data (``None`` when there is none).
    """

    promote: bool
    reason: str
    metric: str
    new_value: float
    champion_value: float | None = None


def decide_promotion(
    metric: str, new_value: float, champion_value: float | None, margin: float, *, champion: str | None = None
) -> PromotionDecision:
    """Apply the gate: promote when there is no champion, or the new value beats it by more than ``margin``.

    Args:
        metric: Metric name (its direction comes from :data:`GREATER_IS_BETTER`).
        new_value: The new version's value.
        champion_value: The champion's value on the same test data, or ``None`` when there is no champion.
        margin: Required improvement, in the metric's units.
        champion: How to name the champion in the reason (e.g. ``version 3``).

    Returns:
        The decision.
    """
    if champion_value is None:
        return PromotionDecision(True, "first version: no champion yet", metric, new_value)
    if math.isnan(new_value):
        return PromotionDecision(False, f"{metric} is undefined on the test data", metric, new_value, champion_value)
    gain = improvement(metric, new_value, champion_value)
    direction = "higher" if greater_is_better(metric) else "lower"
    who = champion or "the champion"
    comparison = f"{metric} {new_value:.5f} vs {champion_value:.5f} for {who} ({direction} is better)"
    if math.isnan(champion_value) or gain > margin:
        return PromotionDecision(
            True,
            f"better than {who}: {comparison}, gain {gain:+.5f} > margin {margin}",
            metric,
            new_value,
            champion_value,
        )
    return PromotionDecision(
        False,
        f"not better than {who} by the margin: {comparison}, gain {gain:+.5f} ≤ margin {margin}",
        metric,
        new_value,
        champion_value,
    )


def held_back(decision: PromotionDecision, name: str, version: int, warnings: int) -> PromotionDecision:
    """The gate's decision for a version trained with near-leakage warnings: never promoted automatically.

    A feature suspiciously close to the answer makes the test metrics look better than production will be, so the
    gate cannot be trusted to judge the version; a person promotes it, with a recorded reason, after checking.
    """
    from dataclasses import replace

    gate = "the gate alone would have promoted it" if decision.promote else decision.reason
    return replace(
        decision,
        promote=False,
        reason=(
            f"held back by {warnings} near-leakage warning(s) ({gate}); check the feature(s), then list them in "
            f"`data.known_in_advance` and train again, or promote by hand: keel models promote {name} {version} "
            "--reason '…'"
        ),
    )
