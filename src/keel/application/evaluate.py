"""Re-evaluating a registered version on new labelled data."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from keel.application.inputs import InputFormat, input_format, recorded_format
from keel.application.models import ModelHandle, load_from
from keel.application.scoring import labelled_predictions
from keel.domain.metrics import Evaluation, Predictions, default_metrics, evaluate_predictions
from keel.domain.validation import coerce_features
from keel.domain.weights import read_weights
from keel.errors import DataError
from keel.io import artifacts

if TYPE_CHECKING:
    import numpy as np
    import pandas as pd


@dataclass
class FileEvaluation:
    """A version's metrics on a labelled file (``keel evaluate --data``).

    Attributes:
        model: ``name:version``.
        data: The labelled file.
        dropped: Rows left out, by reason.
        evaluation: Its metrics beside the naive baseline, with slices.
    """

    model: str
    data: Path
    dropped: dict[str, int]
    evaluation: Evaluation

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict."""
        return {"model": self.model, "data": str(self.data), "dropped": self.dropped, **self.evaluation.to_dict()}


def evaluate_version(
    workspace: Path | None, reference: str | None, data_path: Path, csv: Sequence[str] = ()
) -> FileEvaluation:
    """``keel evaluate --data FILE``: load a version from ``workspace``'s registry and :func:`evaluate_file`.

    Args:
        workspace: The workspace (``None``: ``KEEL_WORKSPACE`` or ``.keel``).
        reference: ``NAME``, ``NAME@ALIAS``, ``NAME:VERSION``; ``None``: the only registered model's champion.
        data_path: The labelled CSV or Parquet file.
        csv: ``KEY=VALUE`` CSV options winning over those recorded from the training source.
    """
    handle = load_from(workspace, reference)
    fmt = input_format(handle.loaded.directory, csv)
    evaluation, dropped = evaluate_file(handle, data_path, fmt=fmt)
    return FileEvaluation(model=handle.label, data=data_path, dropped=dropped, evaluation=evaluation)


def evaluate_file(
    handle: ModelHandle, data_path: Path, *, fmt: InputFormat | None = None
) -> tuple[Evaluation, dict[str, int]]:
    """Metrics of a version on a labelled CSV/Parquet file, beside the naive baseline, per class and per slice.

    The file is read as the version's training source was (``fmt`` overrides), and the training data's recoding
    applies, so labels spelled as in training (``>50K.``) are understood.

    The metrics and slices are the ones the version was trained with; the baseline predicts the training data's
    class shares (or mean). Rows without a label, and rows whose values cannot be read as their column's type, are
    dropped and counted. A version trained with ``data.weight`` also gets weighted metrics when the file holds that
    column (every weight must then be a finite number >= 0).

    Returns:
        The evaluation and the rows dropped, by reason.

    Raises:
        DataError: The file is unreadable, lacks columns or the target, or holds unreadable values.
    """
    model = handle.loaded.model
    frame = (fmt or recorded_format(handle.loaded.directory)).read(data_path)
    dropped: dict[str, int] = {}
    if model.schema.target.name in frame.columns:
        labelled = frame[model.schema.target.name].notna().to_numpy()
        if not labelled.all():
            dropped["missing label"] = int((~labelled).sum())
            frame = frame.loc[labelled].reset_index(drop=True)
    readable = coerce_features(frame, model.schema, label=str(data_path)).valid
    if not readable.all():
        dropped["unreadable values"] = int((~readable).sum())
        frame = frame.loc[readable].reset_index(drop=True)
    if frame.empty:
        raise DataError(f"{data_path}: no labelled, readable rows to evaluate on")
    weight_column = model.schema.weight_name
    weight = None
    if weight_column is not None and weight_column in frame.columns:
        weight = read_weights(frame, weight_column, label=str(data_path))
    predictions = labelled_predictions(model, frame, label=str(data_path), weight=weight)
    return evaluate_labelled(handle, predictions, frame), dropped


def evaluate_labelled(handle: ModelHandle, predictions: Predictions, frame: pd.DataFrame) -> Evaluation:
    """A version's metrics on labelled predictions, beside the naive baseline on the same rows, with slices.

    Args:
        handle: The version (its trained metrics, slices and target statistics are used).
        predictions: Its predictions and the true targets.
        frame: The rows' raw columns (for slices), aligned with ``predictions``.
    """
    model = handle.loaded.model
    settings = trained_settings(handle)
    names = settings.get("metrics") or default_metrics(model.schema.target.task)
    slices = [s for s in settings.get("slices", []) if s in frame.columns]
    return evaluate_predictions(
        predictions,
        naive_baseline(handle, predictions.y_true),
        model.schema.target.task,
        names,
        classes=model.classes,
        frame=frame,
        slices=slices,
        max_slice_values=int(settings.get("max_slice_values", 10)),
        min_slice_rows=int(settings.get("min_slice_rows", 30)),
        weighted_baseline=naive_baseline(handle, predictions.y_true, weighted=True),
    )


def naive_baseline(handle: ModelHandle, y_true: np.ndarray, *, weighted: bool = False) -> Predictions:
    """The naive baseline on these rows: the training data's class shares, or its mean.

    With ``weighted``, the training data's weighted shares (or mean), for a version trained with ``data.weight``;
    the unweighted ones when the version recorded none.
    """
    import numpy as np

    model = handle.loaded.model
    target = model.schema.target
    if target.task == "regression":
        mean = target.weighted_mean if weighted and target.weighted_mean is not None else target.mean
        return Predictions(y_true=y_true, values=np.full(len(y_true), float(mean or 0.0)))
    if weighted and target.weighted_shares is not None:
        shares = np.asarray(target.weighted_shares, dtype=np.float64)
    else:
        shares = np.asarray(target.class_counts or [1] * len(model.classes), dtype=np.float64)
    return Predictions(y_true=y_true, proba=np.tile(shares / shares.sum(), (len(y_true), 1)))


def trained_settings(handle: ModelHandle) -> dict[str, Any]:
    """The ``evaluation`` section of the configuration the version was trained with."""
    from omegaconf import OmegaConf

    path = handle.loaded.directory / artifacts.CONFIG_FILE
    if not path.is_file():
        return {}
    stored = OmegaConf.to_container(OmegaConf.load(path))
    section = stored.get("evaluation", {}) if isinstance(stored, dict) else {}
    return dict(section) if isinstance(section, dict) else {}
