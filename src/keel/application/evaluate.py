"""Re-evaluating a registered version on new labelled data."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from keel.application.models import ModelHandle
from keel.application.scoring import labelled_predictions
from keel.domain.metrics import Evaluation, Predictions, default_metrics, evaluate_predictions
from keel.domain.validation import coerce_features
from keel.errors import DataError
from keel.io import artifacts
from keel.io.tables import read_table


def evaluate_file(handle: ModelHandle, data_path: Path) -> tuple[Evaluation, dict[str, int]]:
    """Metrics of a version on a labelled CSV/Parquet file, beside the naive baseline, per class and per slice.

    The metrics and slices are the ones the version was trained with; the baseline predicts the training data's
    class shares (or mean). Rows without a label, and rows whose values cannot be read as their column's type, are
    dropped and counted.

    Returns:
        The evaluation and the rows dropped, by reason.

    Raises:
        DataError: The file is unreadable, lacks columns or the target, or holds unreadable values.
    """
    import numpy as np

    model = handle.loaded.model
    frame = read_table(data_path)
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
    predictions = labelled_predictions(model, frame, label=str(data_path))
    settings = _trained_settings(handle)
    names = settings.get("metrics") or default_metrics(model.schema.target.task)
    target = model.schema.target
    if target.task == "regression":
        baseline = Predictions(y_true=predictions.y_true, values=np.full(len(frame), float(target.mean or 0.0)))
    else:
        counts = np.asarray(target.class_counts or [1] * len(model.classes), dtype=np.float64)
        baseline = Predictions(y_true=predictions.y_true, proba=np.tile(counts / counts.sum(), (len(frame), 1)))
    slices = [s for s in settings.get("slices", []) if s in frame.columns]
    evaluation = evaluate_predictions(
        predictions,
        baseline,
        target.task,
        names,
        classes=model.classes,
        frame=frame,
        slices=slices,
        max_slice_values=int(settings.get("max_slice_values", 10)),
        min_slice_rows=int(settings.get("min_slice_rows", 30)),
    )
    return evaluation, dropped


def _trained_settings(handle: ModelHandle) -> dict[str, Any]:
    """The ``evaluation`` section of the configuration the version was trained with."""
    from omegaconf import OmegaConf

    path = handle.loaded.directory / artifacts.CONFIG_FILE
    if not path.is_file():
        return {}
    stored = OmegaConf.to_container(OmegaConf.load(path))
    section = stored.get("evaluation", {}) if isinstance(stored, dict) else {}
    return dict(section) if isinstance(section, dict) else {}
