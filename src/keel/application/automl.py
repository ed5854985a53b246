"""``model.estimator: auto``: fit every candidate within the time budget and keep the best on the validation part.

The test part is not an input here: candidates are fitted on the training rows and ranked on the validation rows,
so the rows ``keel train`` evaluates on cannot change which model is chosen.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

from keel.application.budget import deadline_callback
from keel.application.progress import Reporter
from keel.config import KeelConfig
from keel.domain.automl import (
    DEFAULT_TIME_BUDGET,
    FOLLOW_UP_ROUNDS,
    FOLLOW_UP_SEEDS,
    REFIT_SHARE,
    Candidate,
    Entry,
    best_entry,
    candidates,
    escalation,
    follow_ups,
    is_imbalanced,
    should_start,
    trend_features,
)
from keel.domain.blend import BLEND, BlendedModel, greedy_selection
from keel.domain.folds import (
    OOF_FOLDS,
    OOF_MAX_VALID_ROWS,
    Folds,
    dealt_folds,
    mean_rounds,
    missing_classes,
    out_of_fold_reason,
    time_ordered_folds,
)
from keel.domain.metrics import GREATER_IS_BETTER, Predictions, compute_metrics
from keel.domain.model import FittedModel
from keel.domain.rounds import refit_model
from keel.domain.training import FitReport, fit_model
from keel.errors import ConfigError, DataError

if TYPE_CHECKING:
    import numpy as np
    import pandas as pd


def fit_auto(
    config: KeelConfig,
    schema: Any,
    *,
    train_x: pd.DataFrame,
    train_y: np.ndarray,
    valid_x: pd.DataFrame | None,
    valid_y: np.ndarray | None,
    metric: str,
    reporter: Reporter,
    train_weight: np.ndarray | None = None,
    valid_weight: np.ndarray | None = None,
    train_frame: pd.DataFrame | None = None,
    valid_frame: pd.DataFrame | None = None,
    refit: bool = True,
) -> tuple[FittedModel, FitReport]:
    """Fit the candidates for the task in turn and return the one with the best validation ``metric``.

    The quick candidates come first, then a portfolio of slower ones (:func:`keel.domain.automl.candidates`). A
    candidate starts only while the budget (``model.time_budget``) lasts and when the time it is expected to take,
    scaled from the candidates of the same estimator already fitted, fits in what is left
    (:func:`keel.domain.automl.should_start`); the others are listed as skipped. LightGBM candidates still boosting
    when the budget runs out stop there with their best round so far. The first candidate always runs, so a tiny
    budget still gives a model. With two or more fitted candidates, a blend of them is built by greedy ensemble
    selection on the validation rows (:func:`keel.domain.blend.greedy_selection`); it is chosen only when its
    validation score beats the best single candidate's.

    Out-of-fold scoring: when the validation part is small (under
    :data:`~keel.domain.folds.OOF_MAX_VALID_ROWS` rows) and the first candidate's fits over
    :data:`~keel.domain.folds.OOF_FOLDS` folds are expected to take at most
    :data:`~keel.domain.folds.OOF_MAX_SHARE` of the budget (measured by its fit on the training part; half the budget
    under :data:`~keel.domain.folds.OOF_TINY_VALID_ROWS` rows, see :func:`~keel.domain.folds.out_of_fold_reason`), every
    candidate is scored instead on out-of-fold predictions over the training and validation rows together
    (:mod:`keel.domain.folds`: forward validation in time order for a chronological split, stratified folds for
    classes, weights spread evenly), and the blend is chosen on them too. The chosen model is then refitted on all
    those rows (LightGBM with the mean of its folds' early-stopping rounds). Each leaderboard row's ``scoring`` says
    which scoring was used.

    Args:
        config: The validated configuration (``model.time_budget``, ``model.params``, ``split.seed``, features).
        schema: Feature schema of the training rows.
        train_x: Coerced training feature columns.
        train_y: Encoded training target.
        valid_x: Coerced validation feature columns (candidates are ranked and blended on these only).
        valid_y: Encoded validation target.
        metric: The selection metric (``tuning.metric``, else the promotion metric).
        reporter: Receives a note per candidate and for the blend.
        train_weight: Sample weights of the training rows (``data.weight``), passed to every candidate's fit.
        valid_weight: Sample weights of the validation rows: LightGBM's early stopping, the candidates' ranking
            and the blend's selection score them weighted.
        train_frame: The training rows as loaded (with ``split.time_column``): for a chronological split, the
            features that follow its time get a candidate of their own
            (:func:`keel.domain.automl.time_trend_features`), and out-of-fold scoring orders the rows by it.
        valid_frame: The validation rows as loaded (their ``split.time_column``, for out-of-fold scoring in time
            order; without both frames a chronological split is scored on the validation part).
        refit: Whether the chosen model is fitted again on the training and validation rows when time allows
            (``False`` scores on the validation part and returns the models the leaderboard scored).

    Returns:
        The chosen model (maybe a :class:`~keel.domain.blend.BlendedModel`), and its fit report with the leaderboard
        of every candidate (and the blend, when one was tried).

    Raises:
        ConfigError: There are no validation rows to rank the candidates on.
        DataError: The validation metric is undefined for every candidate.
    """
    import numpy as np

    if valid_x is None or valid_y is None or not len(valid_x):
        raise ConfigError("`model.estimator: auto` ranks candidates on the validation part, and it is empty")
    budget = config.model.time_budget or DEFAULT_TIME_BUDGET
    end = time.monotonic() + budget
    deadline = end - REFIT_SHARE * budget  # the rest is kept for the refit on every row
    task = schema.target.task
    counts = task == "regression" and bool(np.all(train_y >= 0) and np.all(np.mod(train_y, 1) == 0))
    imbalanced = task != "regression" and is_imbalanced(np.bincount(np.asarray(train_y, dtype=np.int64)).tolist())
    trend = trend_features(config.split, schema, train_x, train_frame)
    if trend:
        reporter.note(f"auto: {', '.join(trend)} follow(s) {config.split.time_column}: a candidate keeps them apart")
    entries: list[Entry] = []
    done: list[tuple[Candidate, float]] = []
    fitted: dict[str, tuple[FittedModel, FitReport]] = {}
    outputs: dict[str, np.ndarray] = {}
    abandoned: list[tuple[Candidate, float]] = []  # out of fold: stopped after the first fold, with the time expected
    rows = joined_rows((train_x, train_y, train_weight), (valid_x, valid_y, valid_weight))
    folds: Folds | None = None
    decided = not refit or len(valid_x) >= OOF_MAX_VALID_ROWS
    scoring = f"validation part: {len(valid_x):,} rows"
    with _thread_limit(config.model.params.get("n_jobs")):
        queue = candidates(
            schema, config.model.params, counts=counts, imbalanced=imbalanced, trend=trend, rows=len(train_x)
        )
        rounds, fitted_before = 0, 0
        while queue or rounds < FOLLOW_UP_ROUNDS:
            if not queue:  # the portfolio is done and time is left: refine the best LightGBM candidates
                if rounds and len(done) == fitted_before:
                    break  # the last round fitted nothing: the next one's copies would not fit either
                rounds, fitted_before = rounds + 1, len(done)
                scores = {entry.label: entry.score for entry in entries}
                seed = config.split.seed + FOLLOW_UP_SEEDS * (rounds - 1)
                queue = [
                    c
                    for c in follow_ups([(c, scores[c.label]) for c, _ in done], metric, seed)
                    if c.label not in scores
                ]
                if not queue or time.monotonic() >= deadline:
                    break
            candidate = queue.pop(0)
            name = candidate.model.estimator
            why = should_start(candidate, [*done, *abandoned], deadline - time.monotonic())
            if why:
                entries.append(Entry(candidate.label, name, None, 0.0, note=f"skipped: {why} (budget {budget:g} s)"))
                reporter.note(f"auto: {candidate.label}: skipped, {why} (budget {budget:g} s)")
                continue
            started = time.monotonic()
            callbacks = [deadline_callback(deadline)] if name == "lightgbm" else []
            if folds is None:
                model, report = fit_model(
                    schema, config.features, candidate.model, seed=config.split.seed, train_x=train_x,
                    train_y=train_y, valid_x=valid_x, valid_y=valid_y, callbacks=callbacks,
                    train_weight=train_weight, valid_weight=valid_weight,
                )  # fmt: skip
                output: np.ndarray | None = validation_output(model, valid_x)
            else:
                output, model, report, expected = _fit_folds(
                    config, schema, candidate, folds, rows, callbacks, deadline
                )
                if expected is not None:  # its first fold showed the others would not end in the time left
                    abandoned.append((candidate, expected))
                    why = f"about {expected:.0f} s expected, {max(0.0, deadline - started):.0f} s left"
                    note = f"stopped after its first fold: {why} (budget {budget:g} s)"
                    entries.append(Entry(candidate.label, name, None, time.monotonic() - started, note=note))
                    reporter.note(f"auto: {candidate.label}: {note}")
                    continue
            seconds = time.monotonic() - started
            if not decided:  # the first fit tells what a fit costs: score out of fold if it is affordable
                decided = True
                folds, why_not = _plan_folds(config, rows, train_frame, valid_frame, len(valid_x), task)
                if folds is not None:
                    expected = seconds * folds.fitted_rows / max(1, len(train_x))
                    why_not = out_of_fold_reason(len(valid_x), expected, budget)
                if folds is not None and not why_not:
                    scoring = folds.describe()
                    reporter.note(f"auto: scoring {scoring}, as the validation part has only {len(valid_x):,} rows")
                    queue.insert(0, candidate)  # fitted again over the folds
                    continue
                folds = None
                reporter.note(f"auto: scoring on the validation part ({why_not})")
            if output is None:
                note = "stopped by the time budget before its last fold"
                entries.append(Entry(candidate.label, name, None, seconds, report.best_iteration, note))
                reporter.note(f"auto: {candidate.label}: {note}")
                continue
            outputs[candidate.label] = output
            scored_y, scored_weight = _scored(rows, folds, valid_y, valid_weight)
            score = output_score(model, output, scored_y, metric, weight=scored_weight)
            stopped = name == "lightgbm" and time.monotonic() >= deadline
            note = "stopped by the time budget" if stopped else ""
            entries.append(Entry(candidate.label, name, score, seconds, report.best_iteration, note))
            done.append((candidate, seconds))
            fitted[candidate.label] = (model, report)
            scores = {entry.label: entry.score for entry in entries}
            stronger = escalation(candidate, scores, metric)
            if stronger is not None and stronger.label not in scores:
                queue.insert(0, stronger)
            reporter.note(
                f"auto: {candidate.label}: {'out-of-fold' if folds else 'validation'} {metric} {score:.5f} in "
                f"{seconds:.1f} s"
                + (f" ({report.best_iteration} rounds)" if report.best_iteration else "")
                + (f", {note}" if note else "")
            )
    try:
        best = best_entry(entries, metric)
    except ValueError:
        raise DataError(f"validation {metric} is undefined for every candidate (one class only?)") from None
    model, report = fitted[best.label]
    board = [entry.to_dict() | {"chosen": entry is best, "scoring": scoring} for entry in entries]
    scored_y, scored_weight = _scored(rows, folds, valid_y, valid_weight)
    blend = (
        _blend(
            fitted, outputs, scored_y, metric, best, reporter, scored_weight, "out-of-fold" if folds else "validation"
        )
        if len(fitted) > 1
        else None
    )
    if blend is not None:
        blended, row = blend
        if row["chosen"]:
            for line in board:
                line["chosen"] = False
            model, report = blended, FitReport(params={"members": row["members"]})
        board.append(row | {"scoring": scoring})
    chosen = [(m["candidate"], m["weight"]) for m in report.params["members"]] if model.estimator_name == BLEND else []
    with _thread_limit(config.model.params.get("n_jobs")):
        again = refit and _refit(
            config, schema, chosen or [(best.label, 1.0)], done, fitted, end, reporter, rows=rows,
            fitted_rows=len(train_x) if folds is None else folds.fitted_rows,
        )  # fmt: skip
    line = next(line for line in board if line["chosen"])
    if again:
        model = again if chosen else again.members[0]
        line["note"] = "; ".join(filter(None, [line["note"], "refitted on the training and validation rows"]))
    elif folds is not None:  # no time for the refit: the models of the last fold are kept
        line["note"] = "; ".join(filter(None, [line["note"], "not refitted: the last fold's model is kept"]))
    report.leaderboard = board
    report.chosen = BLEND if model.estimator_name == BLEND else best.label
    reporter.note(
        f"auto: chose {report.chosen} (best {'out-of-fold' if folds else 'validation'} {metric} of {len(fitted)} "
        "fitted candidates" + (" and their blend)" if blend is not None else ")")
    )
    return model, report


def joined_rows(
    train: tuple[pd.DataFrame, np.ndarray, np.ndarray | None], valid: tuple[pd.DataFrame, np.ndarray, np.ndarray | None]
) -> tuple[pd.DataFrame, np.ndarray, np.ndarray | None]:
    """The training and validation rows together (features, target, weights)."""
    import numpy as np
    import pandas as pd

    weight = None if train[2] is None or valid[2] is None else np.concatenate([train[2], valid[2]])
    return pd.concat([train[0], valid[0]], ignore_index=True), np.concatenate([train[1], valid[1]]), weight


def _refit(
    config: KeelConfig,
    schema: Any,
    chosen: list[tuple[str, float]],
    done: list[tuple[Candidate, float]],
    fitted: dict[str, tuple[FittedModel, FitReport]],
    end: float,
    reporter: Reporter,
    *,
    rows: tuple[pd.DataFrame, np.ndarray, np.ndarray | None],
    fitted_rows: int,
) -> BlendedModel | None:
    """The chosen candidate(s) fitted again on the training and validation rows, as a blend (one member alone).

    The validation rows are often the most informative ones (the latest, for a chronological split); FLAML retrains
    its choice on all rows by default and AutoGluon offers it (``refit_full``). LightGBM keeps the rounds early
    stopping chose (:func:`keel.domain.rounds.refit_model`; out of fold, the mean of the folds' rounds). ``None``
    when the fits are not expected to end before ``end`` (their first fits' seconds, scaled from the ``fitted_rows``
    those fits took to all ``rows``): the models already fitted are kept.
    """
    by_label = {candidate.label: (candidate, seconds) for candidate, seconds in done}
    expected = sum(by_label[label][1] for label, _ in chosen) * len(rows[0]) / max(1, fitted_rows)
    left = end - time.monotonic()
    if expected > left:
        reporter.note(
            f"auto: not refitted on the validation rows too: about {expected:.0f} s needed, {left:.0f} s left"
        )
        return None
    started = time.monotonic()
    members = []
    for label, _ in chosen:
        candidate, _seconds = by_label[label]
        model = refit_model(candidate.model, fitted[label][1].best_iteration)
        member, _report = fit_model(
            schema, config.features, model, seed=config.split.seed, train_x=rows[0], train_y=rows[1],
            train_weight=rows[2],
        )  # fmt: skip
        members.append(member)
    reporter.note(f"auto: refitted {', '.join(label for label, _ in chosen)} on the training and validation rows "
                  f"in {time.monotonic() - started:.1f} s")  # fmt: skip
    return BlendedModel.of(members, [w for _, w in chosen], [label for label, _ in chosen])


def _plan_folds(
    config: KeelConfig,
    rows: tuple[pd.DataFrame, np.ndarray, np.ndarray | None],
    train_frame: pd.DataFrame | None,
    valid_frame: pd.DataFrame | None,
    valid_rows: int,
    task: Any,
) -> tuple[Folds | None, str]:
    """The folds of out-of-fold scoring over ``rows``, or ``None`` and why the validation part is kept."""
    import numpy as np
    import pandas as pd

    if valid_rows >= OOF_MAX_VALID_ROWS:
        return None, out_of_fold_reason(valid_rows, 0.0, 1.0)
    x, y, weight = rows
    column = config.split.time_column
    if config.split.strategy == "chronological":
        frames = [train_frame, valid_frame]
        if column is None or any(f is None or column not in f.columns for f in frames):
            return None, "the rows' times are not known here"
        times = pd.concat([f[column] for f in frames if f is not None], ignore_index=True).to_numpy()
        try:
            folds = time_ordered_folds(times, OOF_FOLDS)
        except ValueError as error:
            return None, str(error)
    else:
        labels = None if task == "regression" else np.asarray(y)
        folds = dealt_folds(len(x), labels, OOF_FOLDS, seed=config.split.seed, weight=weight)
    if task != "regression" and missing_classes(folds, np.asarray(y)):
        return None, "a class is too rare for every fold to fit on it"
    return folds, ""


def _fit_folds(
    config: KeelConfig,
    schema: Any,
    candidate: Candidate,
    folds: Folds,
    rows: tuple[pd.DataFrame, np.ndarray, np.ndarray | None],
    callbacks: list[Any],
    deadline: float,
) -> tuple[np.ndarray | None, FittedModel, FitReport, float | None]:
    """``candidate`` fitted on each fold: its out-of-fold outputs, the last fold's model and the mean of the rounds.

    The outputs are those of ``folds.scored``; ``None`` when the budget ran out before the last fold (a partial set
    of predictions cannot be compared with the others), or when the first fold, scaled by the rows the others fit,
    shows they would not end in the time left: then the last item is the seconds all folds were expected to take
    (``None`` otherwise; the first estimate of an estimator's cost is only known once one of its folds has run).
    """
    import numpy as np

    x, y, weight = rows
    output: np.ndarray | None = None
    rounds: list[int | None] = []
    started = time.monotonic()
    for number, (fit, scored) in enumerate(folds.splits, start=1):
        weights = (None, None) if weight is None else (weight[fit], weight[scored])
        model, report = fit_model(
            schema, config.features, candidate.model, seed=config.split.seed, train_x=x.iloc[fit], train_y=y[fit],
            valid_x=x.iloc[scored], valid_y=y[scored], callbacks=callbacks, train_weight=weights[0],
            valid_weight=weights[1],
        )  # fmt: skip
        predicted = validation_output(model, x.iloc[scored])
        if output is None:
            output = np.full((len(y), *predicted.shape[1:]), np.nan)
        output[scored] = predicted
        rounds.append(report.best_iteration)
        now = time.monotonic()
        if number == 1 and len(folds.splits) > 1:
            expected = (now - started) * folds.fitted_rows / max(1, len(fit))
            if started + expected > deadline:
                return None, model, FitReport(best_iteration=mean_rounds(rounds), params=report.params), expected
        if number < len(folds.splits) and now >= deadline:
            return None, model, FitReport(best_iteration=mean_rounds(rounds), params=report.params), None
    assert output is not None  # noqa: S101 - Folds always has a fold
    return output[folds.scored], model, FitReport(best_iteration=mean_rounds(rounds), params=report.params), None


def _scored(
    rows: tuple[pd.DataFrame, np.ndarray, np.ndarray | None],
    folds: Folds | None,
    valid_y: np.ndarray,
    valid_weight: np.ndarray | None,
) -> tuple[np.ndarray, np.ndarray | None]:
    """The target and weights of the rows the scores are measured on (the validation part, or out of fold)."""
    if folds is None:
        return valid_y, valid_weight
    _x, y, weight = rows
    return y[folds.scored], None if weight is None else weight[folds.scored]


def _thread_limit(n_jobs: Any) -> Any:
    """Hold scikit-learn's OpenMP/BLAS pools (HistGradientBoosting, the linear models) to ``model.params.n_jobs``.

    LightGBM takes ``n_jobs`` itself; the others would use every core, and OpenMP threads that wait for a busy core
    spin: on a shared machine that made a HistGradientBoosting fit 20 times slower.
    """
    import contextlib

    from threadpoolctl import threadpool_limits  # type: ignore[import-untyped]

    if isinstance(n_jobs, int) and not isinstance(n_jobs, bool) and n_jobs > 0:
        import sklearn.ensemble  # noqa: F401  # loads the OpenMP runtime first: only loaded libraries are limited

        return threadpool_limits(limits=n_jobs)
    return contextlib.nullcontext()


def _blend(
    fitted: dict[str, tuple[FittedModel, FitReport]],
    outputs: dict[str, np.ndarray],
    valid_y: np.ndarray,
    metric: str,
    best: Entry,
    reporter: Reporter,
    valid_weight: np.ndarray | None = None,
    scored_on: str = "validation",
) -> tuple[BlendedModel, dict[str, Any]] | None:
    """The greedy blend of the fitted candidates and its leaderboard row (``chosen`` when it beats ``best``).

    ``outputs``, ``valid_y`` and ``valid_weight`` are those of the rows the candidates were scored on (``scored_on``:
    the validation part, or out of fold).
    """
    started = time.monotonic()
    labels = list(fitted)
    task = fitted[labels[0]][0].task
    n_classes = len(fitted[labels[0]][0].classes)
    greater = GREATER_IS_BETTER.get(metric, True)

    def score(output: np.ndarray) -> float:
        return _score(task, output, valid_y, metric, n_classes, valid_weight)

    try:
        weights, blend_score = greedy_selection([outputs[label] for label in labels], score, greater_is_better=greater)
    except ValueError:
        return None
    used = [(label, weight) for label, weight in zip(labels, weights, strict=True) if weight > 0]
    model = BlendedModel.of([fitted[label][0] for label, _ in used], [w for _, w in used], [lb for lb, _ in used])
    assert best.score is not None  # noqa: S101 - best_entry returns a fitted entry
    wins = len(used) > 1 and (blend_score > best.score if greater else blend_score < best.score)
    seconds = time.monotonic() - started
    members = [{"candidate": label, "weight": round(weight, 6)} for label, weight in used]
    row = {
        "candidate": BLEND, "estimator": BLEND, "valid_score": blend_score, "fit_seconds": round(seconds, 3),
        "best_iteration": None, "members": members, "chosen": wins,
        "note": "" if wins else f"not better than {best.label} ({scored_on})",
    }  # fmt: skip
    reporter.note(
        f"auto: blend of {', '.join(f'{label} {weight:.2f}' for label, weight in used)}: {scored_on} {metric} "
        f"{blend_score:.5f}" + ("" if wins else f", not better than {best.label}")
    )
    return model, row


def validation_output(model: FittedModel, valid_x: pd.DataFrame) -> np.ndarray:
    """Class probabilities (classification) or values (regression) of ``model`` on the validation rows."""
    return model.predict_value(valid_x) if model.task == "regression" else model.predict_proba(valid_x)


def output_score(
    model: FittedModel, output: np.ndarray, valid_y: np.ndarray, metric: str, *, weight: np.ndarray | None = None
) -> float:
    """``metric`` of a model's validation ``output`` (weighted by ``weight``, the rows' ``data.weight``, if given)."""
    return _score(model.task, output, valid_y, metric, len(model.classes), weight)


def _score(
    task: Any, output: np.ndarray, valid_y: np.ndarray, metric: str, n_classes: int, weight: np.ndarray | None = None
) -> float:
    if task == "regression":
        predictions = Predictions(y_true=valid_y, values=output, weight=weight)
    else:
        predictions = Predictions(y_true=valid_y, proba=output, weight=weight)
    scores = compute_metrics(predictions, task, [metric], n_classes, weighted=weight is not None)
    return float(scores[metric])
