"""Out-of-fold scoring for ``model.estimator: auto``: which rows each fold fits on and which it scores.

Pure. When the validation part is small, scores and blend weights measured on it are mostly noise (77 rows on the
tags example: a blend scored 0.932 there and 0.900 on the test part). ``auto`` then scores every candidate on
out-of-fold predictions over the training and validation rows together, as AutoGluon's bagging does: each fold's
model is fitted on the other rows and predicts its own. Time-ordered rows (a chronological split) use forward
validation instead: each fold fits on everything before its block of time and predicts that block. The test part is
never among these rows.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import numpy as np

OOF_FOLDS = 5
"""Folds of out-of-fold scoring."""

OOF_MAX_VALID_ROWS = 2000
"""``auto`` scores out of fold only when the validation part has fewer rows than this: from a few thousand rows on,
a validation score is steady enough to choose and blend on (its standard error is about 1 % of an accuracy), and
fitting every candidate once is worth more than fitting it ``OOF_FOLDS`` times."""

OOF_MAX_SHARE = 0.1
"""``auto`` scores out of fold only when the first candidate's fits over the folds are expected to take at most this
share of its budget, so that the portfolio still gets about ten candidates' worth of time. The first fit includes
loading the libraries, so the estimate errs on the long side."""

OOF_TINY_VALID_ROWS = 500
"""Under this many validation rows, a validation score cannot rank candidates at all (on 76 rows one row moves an
accuracy by 1.3 %, more than the candidates differ), so ``auto`` scores out of fold whenever the first candidate's
folds are expected to take at most :data:`OOF_TINY_MAX_SHARE` of the budget: a choice made on a few rows is noise,
however many candidates there are. A busy machine, which slows the first fit several times over, then no longer
decides how ``auto`` scores."""

OOF_TINY_MAX_SHARE = 0.5
"""The share of the budget the first candidate's folds may take when the validation part is tiny."""


@dataclass(frozen=True)
class Folds:
    """The folds of out-of-fold scoring over the training and validation rows (positions into them).

    Attributes:
        splits: Per fold, the rows it is fitted on and the rows it predicts (and stops early on).
        kind: ``time-ordered`` (forward validation), ``stratified`` (classes spread evenly) or ``shuffled``.
        rows: How many training and validation rows there are.
    """

    splits: list[tuple[np.ndarray, np.ndarray]]
    kind: str
    rows: int

    @property
    def scored(self) -> np.ndarray:
        """The rows that get an out-of-fold prediction, in order (all rows, except the first block of time)."""
        import numpy as np

        return np.sort(np.concatenate([scored for _, scored in self.splits]))

    @property
    def fitted_rows(self) -> int:
        """Rows fitted over all folds together (the folds' cost, in rows)."""
        return sum(len(fit) for fit, _ in self.splits)

    def describe(self) -> str:
        """How the leaderboard's scores were measured, for a person."""
        window = " (each fits on the rows before the block it predicts)" if self.kind == "time-ordered" else ""
        return (
            f"out of fold: {len(self.splits)} {self.kind} folds{window} over the {self.rows:,} training and "
            f"validation rows, {len(self.scored):,} of them predicted"
        )


def time_ordered_folds(times: np.ndarray, k: int = OOF_FOLDS) -> Folds:
    """Forward validation: the rows in time order, cut into ``k + 1`` blocks; fold ``i`` fits on blocks before ``i``.

    Rows of the same time stay in one block (a cut moves to the next change of time), so a fold never predicts a
    row from others of its own moment; with few distinct times there are fewer folds.

    Args:
        times: ``split.time_column`` of the rows (numbers, datetimes or sortable text).
        k: Folds wanted.

    Raises:
        ValueError: Fewer than two distinct times: nothing comes before anything.
    """
    import numpy as np

    _, ranks = np.unique(np.asarray(times), return_inverse=True)
    order = np.argsort(ranks, kind="stable")
    ordered = ranks[order]
    n = len(order)
    cuts: list[int] = []
    for j in range(1, k + 1):
        cut = round(j * n / (k + 1))
        while 0 < cut < n and ordered[cut] == ordered[cut - 1]:
            cut += 1  # keep one moment in one block
        if 0 < cut < n and (not cuts or cut > cuts[-1]):
            cuts.append(cut)
    if not cuts:
        raise ValueError("out-of-fold scoring in time order needs at least two distinct times")
    blocks = np.split(order, cuts)
    splits = [(np.sort(np.concatenate(blocks[:i])), np.sort(blocks[i])) for i in range(1, len(blocks))]
    return Folds(splits, "time-ordered", n)


def dealt_folds(
    rows: int, labels: np.ndarray | None = None, k: int = OOF_FOLDS, *, seed: int = 0, weight: np.ndarray | None = None
) -> Folds:
    """Rows dealt to ``k`` folds like cards: each class in turn (stratified), in a seeded random order.

    With sample weights the rows of each class are dealt heaviest first, so every fold holds about the same weight
    of each class, not only the same count.

    Args:
        rows: How many rows there are.
        labels: Class of each row (classification), or ``None`` (regression: the rows are one group).
        k: Folds.
        seed: Seed of the shuffle (``split.seed``).
        weight: Sample weights of the rows (``data.weight``), if any.
    """
    import numpy as np

    rng = np.random.default_rng(seed)
    groups = [np.arange(rows)] if labels is None else [np.flatnonzero(labels == c) for c in np.unique(labels)]
    fold = np.empty(rows, dtype=np.int64)
    dealt = 0
    for group in groups:
        group = rng.permutation(group)
        if weight is not None:
            group = group[np.argsort(-np.asarray(weight)[group], kind="stable")]
        fold[group] = (dealt + np.arange(len(group))) % k  # go on where the last class stopped
        dealt += len(group)
    splits = [(np.flatnonzero(fold != f), np.flatnonzero(fold == f)) for f in range(k) if np.any(fold == f)]
    return Folds(splits, "shuffled" if labels is None else "stratified", rows)


def missing_classes(folds: Folds, labels: np.ndarray) -> list[int]:
    """Classes of the rows that some fold's fitted rows lack (its model could not predict them)."""
    import numpy as np

    present = set(np.unique(labels).tolist())
    missing: set[int] = set()
    for fit, _ in folds.splits:
        missing |= present - set(np.unique(labels[fit]).tolist())
    return sorted(missing)


def out_of_fold_reason(valid_rows: int, expected_seconds: float, budget: float) -> str:
    """Why ``auto`` keeps scoring on the validation part (``""``: score out of fold instead).

    Out of fold when the validation part has fewer than :data:`OOF_MAX_VALID_ROWS` rows and the first candidate's
    folds fit in :data:`OOF_MAX_SHARE` of the budget, or in :data:`OOF_TINY_MAX_SHARE` of it when the validation
    part has fewer than :data:`OOF_TINY_VALID_ROWS` rows.

    Args:
        valid_rows: Rows of the validation part.
        expected_seconds: Seconds the first candidate's fits over the folds are expected to take (its fit on the
            training part, scaled by the rows the folds fit).
        budget: ``auto``'s time budget.
    """
    if valid_rows >= OOF_MAX_VALID_ROWS:
        return f"{valid_rows:,} validation rows are enough to choose on (out of fold under {OOF_MAX_VALID_ROWS:,})"
    share = OOF_TINY_MAX_SHARE if valid_rows < OOF_TINY_VALID_ROWS else OOF_MAX_SHARE
    if expected_seconds > share * budget:
        return (
            f"{OOF_FOLDS} folds of the first candidate would take about {expected_seconds:.0f} s, over "
            f"{share:.0%} of the {budget:g} s budget"
        )
    return ""


def mean_rounds(rounds: Sequence[int | None]) -> int | None:
    """The rounds a refit on every row boosts: the mean of the folds' early-stopping rounds (``None``: none)."""
    found = [r for r in rounds if r]
    return round(sum(found) / len(found)) if found else None
