"""The jobs that show a model to a person: ``keel report``, ``keel monitor`` and ``keel explain``."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from keel.application.inputs import InputFormat, input_format, recorded_format
from keel.application.models import ModelHandle, load_from
from keel.errors import DataError, KeelError
from keel.io import reports

if TYPE_CHECKING:
    from keel.domain.drift import DriftReference, DriftReport
    from keel.domain.explain import RecordExplanation

DEFAULT_EXPLAIN_ROWS = 5
MAX_EXPLAIN_ROWS = 200


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


# -- keel report -------------------------------------------------------------------------------------------------


def report_html(handle: ModelHandle) -> str:
    """The model report of a verified version, with its number and current aliases."""
    loaded = handle.loaded
    return reports.model_report(
        loaded.directory,
        loaded.manifest,
        version=handle.info.version,
        aliases=handle.info.aliases,
        generated_at=_now(),
    )


def write_report(handle: ModelHandle, output: Path) -> Path:
    """Write the model report of ``handle`` to ``output`` (an HTML file, or a folder to write ``report.html`` in)."""
    if output.is_dir():
        output = output / "report.html"
    return reports.write_html(output, report_html(handle))


@dataclass
class WrittenReport:
    """A model report written to a file.

    Attributes:
        model: ``name:version``.
        path: The HTML file.
    """

    model: str
    path: Path


def report_version(workspace: Path | None, reference: str | None, output: Path) -> WrittenReport:
    """``keel report``: load a version from ``workspace``'s registry and :func:`write_report`."""
    handle = load_from(workspace, reference)
    return WrittenReport(model=handle.label, path=write_report(handle, output))


# -- keel monitor ------------------------------------------------------------------------------------------------


def load_reference(directory: Path, label: str) -> DriftReference:
    """The drift reference stored with a version.

    Raises:
        KeelError: The version was trained before keel stored references.
    """
    from keel.domain.drift import DriftReference

    path = directory / reports.REFERENCE_FILE
    if not path.is_file():
        raise KeelError(f"{label} has no drift reference ({reports.REFERENCE_FILE}); train it again with this keel")
    return DriftReference.model_validate_json(path.read_text(encoding="utf-8"))


@dataclass
class MonitorResult:
    """Drift of a batch file against a version's reference.

    Attributes:
        model: ``name:version``.
        data: The file compared.
        report: Per-feature drift and the prediction's.
        skipped: Features not monitored, with why.
        invalid: Rows that could not be read as the schema's types (left out of predictions, kept for features).
        html: The HTML page written, if any.
        json: The JSON document written, if any.
    """

    model: str
    data: Path
    report: DriftReport
    skipped: dict[str, str] = field(default_factory=dict)
    invalid: int = 0
    html: Path | None = None
    json: Path | None = None

    @property
    def exit_code(self) -> int:
        """The command's exit status: 1 when a feature (or the prediction) is drifting."""
        return 1 if self.report.drifting else 0

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict."""
        return {
            "model": self.model,
            "data": str(self.data),
            "invalid_rows": self.invalid,
            "skipped": self.skipped,
            **self.report.model_dump(mode="json"),
        }


def monitor_version(
    workspace: Path | None,
    reference: str | None,
    *,
    data: Path | None,
    log: Path | None,
    since: str | None,
    threshold: float,
    csv: Sequence[str],
    output: Path,
) -> MonitorResult:
    """``keel monitor``: drift of a batch file (``data``) or of the prediction log (``log``), pages written.

    Args:
        workspace: The workspace whose registry holds the version.
        reference: ``NAME``, ``NAME@ALIAS``, ``NAME:VERSION``; ``None``: the only registered model's champion.
        data: A CSV or Parquet file of recent inputs, read as the training source was (``csv`` overrides).
        log: The service's prediction log folder (used when given, instead of ``data``).
        since: With ``log``: only the records of the last ``since`` (``24h``).
        threshold: PSI at or above which a feature is drifting.
        csv: ``KEY=VALUE`` CSV options for ``data``.
        output: The HTML page to write; the JSON document goes beside it (``.json``).

    Raises:
        KeelError: Both or neither of ``data`` and ``log`` given, or ``since`` without ``log``.
        DataError: The inputs cannot be read, or hold no record of the version.
    """
    if (data is None) == (log is None):
        raise KeelError("give one of --data FILE (a batch of inputs) or --log DIR (the service's prediction log)")
    if since is not None and log is None:
        raise KeelError("--since applies to --log (the prediction log)")
    handle = load_from(workspace, reference)
    if log is not None:
        result = monitor_log(handle, log, since=since, threshold=threshold)
    elif data is not None:
        fmt = input_format(handle.loaded.directory, csv)
        result = monitor_file(handle, data, threshold=threshold, fmt=fmt)
    return write_monitor_outputs(result, output, output.with_suffix(".json"))


def monitor_file(
    handle: ModelHandle, data_path: Path, *, threshold: float, fmt: InputFormat | None = None
) -> MonitorResult:
    """Compare a batch file's features and predictions with the version's training reference.

    The file is read as the version's training source was (``fmt`` overrides), so ``?`` for missing is missing here
    too and not a new category.

    Raises:
        DataError: The file is missing, unreadable, empty or lacks feature columns.
        KeelError: The version has no stored reference.
    """
    frame = (fmt or recorded_format(handle.loaded.directory)).read(data_path)
    if frame.empty:
        raise DataError(f"{data_path}: the file has no rows")
    return monitor_frame(handle, frame, data_path, threshold=threshold)


def monitor_log(handle: ModelHandle, log_dir: Path, *, since: str | None, threshold: float) -> MonitorResult:
    """Drift of the traffic a service answered (its prediction log) against the version's training reference.

    The records the service answered with ``handle``'s model (not the shadow's copies of them) are the current
    data, optionally only those logged in the last ``since`` (``24h``, ``7d``).

    Raises:
        DataError: The folder holds no log, nothing recent enough, or no record of this model.
        KeelError: The version has no stored reference.
    """
    from keel.io.prediction_log import features_frame, parse_duration, read_log

    log = read_log(log_dir, since=parse_duration(since) if since else None)
    served = log.loc[(log["model"] == handle.info.name) & ~log["shadow"]]
    if served.empty:
        names = ", ".join(sorted(set(log["model"])))
        raise DataError(f"--log {log_dir}: no record answered by model {handle.info.name!r} (logged: {names})")
    return monitor_frame(handle, features_frame(served).reset_index(drop=True), log_dir, threshold=threshold)


def monitor_frame(handle: ModelHandle, frame: Any, data_path: Path, *, threshold: float) -> MonitorResult:
    """Drift of the records in ``frame`` (raw columns, as a batch file holds them) against the version's reference.

    Raises:
        DataError: ``frame`` lacks feature columns.
        KeelError: The version has no stored reference.
    """
    from keel.application.insights import predicted_outputs
    from keel.domain.drift import drift_report
    from keel.domain.metrics import Predictions
    from keel.domain.validation import coerce_features

    model = handle.loaded.model
    reference = load_reference(handle.loaded.directory, handle.label)
    coerced = coerce_features(frame, model.schema, label=str(data_path))
    features = coerced.frame
    columns = {name: features[name].to_numpy() for name in model.schema.feature_names}
    valid = features.loc[coerced.valid].reset_index(drop=True)
    labels: list[Any] | None = None
    scores = None
    if len(valid):
        import numpy as np

        empty = np.zeros(len(valid))
        if model.task == "regression":
            predictions = Predictions(y_true=empty, values=model.predict_value(valid))
        else:
            predictions = Predictions(y_true=empty, proba=model.predict_proba(valid))
        labels, scores = predicted_outputs(model, predictions)
    report = drift_report(reference, columns, predictions=labels, scores=scores, threshold=threshold)
    return MonitorResult(
        model=handle.label,
        data=data_path,
        report=report,
        skipped=dict(reference.skipped),
        invalid=int((~coerced.valid).sum()),
    )


def write_monitor_outputs(result: MonitorResult, html_path: Path, json_path: Path) -> MonitorResult:
    """Write the drift page (histograms, reference vs current) and the JSON document."""
    from keel.io.artifacts import write_json

    page = reports.drift_page(
        result.report, model=result.model, source=str(result.data), skipped=result.skipped, generated_at=_now()
    )
    result.html = reports.write_html(html_path, page)
    write_json(json_path, finite(result.to_dict()))
    result.json = json_path
    return result


def finite(value: Any) -> Any:
    """``value`` with NaN and infinities replaced by ``None`` (strict JSON has no NaN)."""
    import math

    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: finite(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [finite(v) for v in value]
    return value


# -- keel explain ------------------------------------------------------------------------------------------------


def parse_rows(text: str | None, available: int) -> list[int]:
    """Row positions from ``"0,3,10-12"`` (0-based; ``None``: the first few rows).

    Raises:
        DataError: The text is malformed, or names a row the file does not have.
    """
    if text is None or not text.strip():
        return list(range(min(DEFAULT_EXPLAIN_ROWS, available)))
    rows: list[int] = []
    for part in text.split(","):
        part = part.strip()
        try:
            if "-" in part:
                low, high = (int(x) for x in part.split("-", 1))
                if high < low:
                    raise ValueError(part)
                rows.extend(range(low, high + 1))
            else:
                rows.append(int(part))
        except ValueError:
            raise DataError(
                f"--rows {text!r}: {part!r} is not a row number or range; write e.g. 0,3,10-12 (0-based)"
            ) from None
    outside = [r for r in rows if r < 0 or r >= available]
    if outside:
        raise DataError(f"--rows: row(s) {', '.join(map(str, outside[:5]))} are not in the file ({available:,} rows)")
    if len(rows) > MAX_EXPLAIN_ROWS:
        raise DataError(f"--rows: {len(rows):,} rows asked for; explain at most {MAX_EXPLAIN_ROWS} at a time")
    return list(dict.fromkeys(rows))


@dataclass
class ExplainResult:
    """Per-record explanations of a version's predictions.

    Attributes:
        model: ``name:version``.
        explanations: One per explained row.
        plots: Waterfall PNG per row, when written.
    """

    model: str
    explanations: list[RecordExplanation]
    plots: dict[int, Path] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict."""
        return {
            "model": self.model,
            "records": [
                {**e.to_dict(), "plot": str(self.plots[e.row]) if e.row in self.plots else None}
                for e in self.explanations
            ],
        }


def explain_version(
    workspace: Path | None,
    reference: str | None,
    input_path: Path,
    *,
    rows: str | None,
    top: int,
    plots: Path | None,
    csv: Sequence[str] = (),
) -> ExplainResult:
    """``keel explain``: load a version from ``workspace``'s registry and :func:`explain_file`.

    ``csv`` holds ``KEY=VALUE`` options winning over those recorded from the training source.
    """
    handle = load_from(workspace, reference)
    fmt = input_format(handle.loaded.directory, csv)
    return explain_file(handle, input_path, rows=rows, top=top, plots=plots, fmt=fmt)


def explain_file(
    handle: ModelHandle,
    input_path: Path,
    *,
    rows: str | None,
    top: int,
    plots: Path | None,
    fmt: InputFormat | None = None,
) -> ExplainResult:
    """Explain the predictions of some rows of a file with LightGBM's per-feature contributions.

    Args:
        handle: The verified version.
        input_path: CSV or Parquet file holding the feature columns.
        rows: Which rows (``"0,3,10-12"``, 0-based); ``None``: the first five.
        top: Contributions listed per row.
        plots: Folder for one waterfall PNG per row; ``None`` writes none.
        fmt: How to read the file (default: as the version's training source was read).

    Raises:
        KeelError: The estimator has no per-feature contributions (only LightGBM models do).
        DataError: The file is unreadable, lacks columns, or a chosen row holds unreadable values.
    """
    import numpy as np

    from keel.application.insights import contribution_inputs, contribution_matrix, contribution_unit
    from keel.domain.explain import class_contributions, explain_records
    from keel.domain.schema import to_scalar
    from keel.domain.validation import coerce_features

    model = handle.loaded.model
    if not model.explainable:
        from keel.domain.blend import BlendedModel

        if isinstance(model, BlendedModel):
            members = ", ".join(
                f"{label} ({member.raw_link} link)" if member.is_booster else f"{label} (no contributions)"
                for label, member in zip(model.labels, model.members, strict=True)
            )
            raise KeelError(
                f"explanations are not available for {handle.label}: it is a blend of {members}; a blend is "
                "explained only when every member is LightGBM with the same link (see README, The blend)"
            )
        raise KeelError(
            f"explanations are not available for {handle.label}: its estimator ({model.estimator_name}) has no "
            "per-feature contribution output; only LightGBM models have one"
        )
    frame = (fmt or recorded_format(handle.loaded.directory)).read(input_path)
    chosen = parse_rows(rows, len(frame))
    if not chosen:
        raise DataError(f"{input_path}: the file has no rows")
    subset = frame.iloc[chosen].reset_index(drop=True)
    coerced = coerce_features(subset, model.schema, label=str(input_path))
    if not coerced.valid.all():
        bad = int(np.flatnonzero(~coerced.valid)[0])
        raise DataError(f"{input_path}: row {chosen[bad]} cannot be scored: {coerced.errors[bad]}")
    features = coerced.frame
    contributions = contribution_matrix(model, features)
    assert contributions is not None  # noqa: S101 - a booster always has contributions
    if model.task == "regression":
        predicted: list[Any] = model.predict_value(features).tolist()
        chosen_class = None
        unit = contribution_unit(model)
    else:
        proba = model.predict_proba(features)
        predicted = model.predict_labels(proba)
        chosen_class = proba.argmax(axis=1)
        unit = "log-odds" + (" of the predicted class" if model.task == "multiclass" else f" of {model.classes[-1]}")
    n_classes = len(model.classes) if model.task == "multiclass" else 0
    matrix = class_contributions(contributions, n_classes, chosen_class)
    mapping = contribution_inputs(model)
    records = [
        {str(name): to_scalar(value) for name, value in row.items()}
        for row in subset[model.schema.feature_names].to_dict("records")
    ]
    explanations = explain_records(
        matrix, mapping, records, [to_scalar(p) for p in predicted], rows=chosen, unit=unit, top=top
    )
    result = ExplainResult(model=handle.label, explanations=explanations)
    if plots is not None:
        for explanation in explanations:
            path = plots / f"row-{explanation.row}.png"
            title = f"{handle.label}, row {explanation.row}: predicted {explanation.prediction}"
            result.plots[explanation.row] = reports.waterfall_plot(explanation, path, title)
    return result
