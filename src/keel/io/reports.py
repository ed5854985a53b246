"""HTML pages a person reads: the model report and the drift report, and the plots only they use.

Pages are rendered from Jinja2 templates (``keel/io/templates``) with autoescaping on for every value, and are
self-contained: images are embedded as base64 ``data:`` URIs and nothing is loaded from the network.
"""

from __future__ import annotations

import base64
import functools
import io
import math
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from keel.io.plots import bar_chart_margins, default_style, pyplot, save_figure

if TYPE_CHECKING:
    from jinja2 import Environment

    from keel.domain.drift import FeatureDrift
    from keel.domain.explain import RecordExplanation

TEMPLATES = Path(__file__).parent / "templates"
REPORT_TEMPLATE = "report.html.j2"
DRIFT_TEMPLATE = "drift.html.j2"


@functools.cache
def _environment() -> Environment:
    from jinja2 import Environment, FileSystemLoader, StrictUndefined

    return Environment(
        loader=FileSystemLoader(TEMPLATES),
        autoescape=True,
        undefined=StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )


def render(template: str, **context: Any) -> str:
    """Render one of keel's page templates (every value HTML-escaped)."""
    return _environment().get_template(template).render(**context)


def load_template(template: str) -> None:
    """Import Jinja2 and compile one of keel's page templates now (once per process), so rendering it later is quick."""
    _environment().get_template(template)


def fmt(value: Any, digits: int = 4) -> str:
    """A metric value for a table (``–`` when absent or NaN)."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "–"
    if isinstance(value, float | int):
        return f"{value:.{digits}f}"
    return str(value)


def data_uri(path: Path) -> str:
    """A PNG file as a ``data:`` URI, for embedding."""
    return png_uri(path.read_bytes())


def png_uri(data: bytes) -> str:
    """PNG bytes as a ``data:`` URI."""
    return "data:image/png;base64," + base64.b64encode(data).decode("ascii")


def write_html(path: Path, html: str) -> Path:
    """Write a page atomically (temporary file, then rename)."""
    from keel.io.tables import write_text_atomically

    path = path.expanduser()
    write_text_atomically(path, html)
    return path


def _figure_bytes(figure: Any) -> bytes:
    plt = pyplot()
    buffer = io.BytesIO()
    figure.tight_layout()
    figure.savefig(buffer, format="png", dpi=90)
    plt.close(figure)
    return buffer.getvalue()


@default_style
def drift_histogram(drift: FeatureDrift) -> bytes:
    """Side-by-side bars of the reference and current share per bucket, as PNG bytes."""
    import numpy as np

    plt = pyplot()
    labels = list(drift.labels)
    keep = [i for i, (r, c) in enumerate(zip(drift.reference, drift.current, strict=True)) if r > 0 or c > 0]
    labels = [labels[i] for i in keep]
    reference = [drift.reference[i] for i in keep]
    current = [drift.current[i] for i in keep]
    positions = np.arange(len(labels))
    figure, axes = plt.subplots(figsize=(max(4.5, 0.42 * len(labels) + 2), 3.2))
    axes.bar(positions - 0.2, reference, width=0.4, label="reference (training)", color="#8fb3de")
    axes.bar(positions + 0.2, current, width=0.4, label="current", color="#d9534f" if drift.drifting else "#1f5fa8")
    axes.set_xticks(positions, [_short(label) for label in labels], rotation=45, ha="right", fontsize=8)
    axes.set_ylabel("share")
    psi = "n/a" if math.isnan(drift.psi) else f"{drift.psi:.3f}"
    measure = " length (characters)" if drift.measure == "length" else ""
    axes.set_title(f"{drift.name}{measure} (PSI {psi})", fontsize=10)
    axes.legend(fontsize=7)
    return _figure_bytes(figure)


def _short(label: str, limit: int = 22) -> str:
    return label if len(label) <= limit else label[: limit - 1] + "…"


@default_style
def waterfall_plot(explanation: RecordExplanation, path: Path, title: str) -> Path:
    """A waterfall of one record's contributions: from the base value, each feature's push, to the raw score."""
    plt = pyplot()
    steps = [
        (c.feature if c.value is None else f"{c.feature} = {_short(str(c.value), 18)}", c.contribution)
        for c in explanation.contributions
    ]
    if explanation.rest:
        steps.append(("other features", explanation.rest))
    figure, axes = plt.subplots(figsize=(7.5, 0.42 * len(steps) + 1.8))
    running = explanation.base_value
    for i, (_, value) in enumerate(steps):
        axes.barh(i, value, left=running, color="#1e7a3c" if value >= 0 else "#b3261e")
        axes.text(running + value, i, f" {value:+.3f}", va="center", ha="left" if value >= 0 else "right", fontsize=8)
        running += value
    axes.axvline(explanation.base_value, color="grey", linestyle="--", linewidth=1)
    axes.axvline(running, color="black", linewidth=1)
    axes.set_yticks(range(len(steps)), [label for label, _ in steps], fontsize=8)
    axes.margins(x=0.15)  # room for the value labels at the ends of the bars
    axes.invert_yaxis()
    axes.set_xlabel(
        f"raw score ({explanation.unit}): base {explanation.base_value:.3f} → {explanation.raw_score:.3f}", fontsize=9
    )
    axes.set_title(title, fontsize=10)
    return save_figure(figure, path)


@default_style
def contributions_plot(values: dict[str, float], path: Path, limit: int = 20) -> Path:
    """Horizontal bars of the mean absolute contribution per input column."""
    plt = pyplot()
    top = list(values.items())[:limit][::-1]
    figure, axes = plt.subplots(figsize=(6, max(3.0, 0.3 * len(top) + 1)))
    names = [name for name, _ in top]
    axes.barh(names, [value for _, value in top], color="#1f5fa8")
    axes.set_xlabel("mean |contribution|")
    figure.suptitle("What drives the predictions (test data)")
    return save_figure(figure, path, bar_chart_margins(figure, names))


def plot_list(folder: Path, titles: Sequence[tuple[str, str]]) -> list[dict[str, str]]:
    """The plots stored with a version that exist, as ``{"title", "src"}`` with embedded images."""
    return [{"title": title, "src": data_uri(folder / name)} for name, title in titles if (folder / name).is_file()]


# -- the model report --------------------------------------------------------------------------------------------

REFERENCE_FILE = "reference.json"
INSIGHTS_FILE = "insights.json"
REPORT_FILE = "report.html"
CONTRIBUTIONS_PLOT = "contributions.png"
PLOT_TITLES = (
    ("confusion_matrix.png", "Confusion matrix"),
    ("roc.png", "ROC curve"),
    ("calibration.png", "Calibration"),
    ("residuals.png", "Residuals"),
    ("feature_importance.png", "Feature importance (the estimator's own)"),
)


def model_report(
    directory: Path,
    manifest: dict[str, Any],
    *,
    version: int | None,
    aliases: Sequence[str] = (),
    endpoint: str | None = None,
    generated_at: str | None = None,
) -> str:
    """The model report of a version's directory as one self-contained HTML page.

    Args:
        directory: The model directory (``schema.json``, ``metrics.json``, ``config.yaml``, ``plots/``,
            ``insights.json``).
        manifest: Its manifest, or the provenance about to be written into it (at training time).
        version: The version number (``None`` before registration).
        aliases: Aliases pointing at it.
        endpoint: The prediction URL for a "try a prediction" form (the service's page); no form when ``None``.
        generated_at: When the page was made, shown at the bottom.

    Returns:
        The page.
    """
    from keel import __version__
    from keel.domain.metrics import GREATER_IS_BETTER
    from keel.domain.schema import FeatureSchema

    schema = FeatureSchema.model_validate_json((directory / "schema.json").read_text(encoding="utf-8"))
    metrics_doc = _read_json(directory / "metrics.json")
    insights = _read_json(directory / INSIGHTS_FILE)
    config_text = (
        (directory / "config.yaml").read_text(encoding="utf-8") if (directory / "config.yaml").is_file() else ""
    )
    config = _yaml(config_text)
    test = metrics_doc.get("test", {})
    evaluation = config.get("evaluation", {}) if isinstance(config, dict) else {}
    promotion_metric = (evaluation.get("promotion") or {}).get("metric") if isinstance(evaluation, dict) else None
    named = {str(k): v for k, v in (test.get("baselines") or {}).items() if isinstance(v, dict)}
    champion = insights.get("previous_champion")
    champion_metrics = (champion or {}).get("metrics", {})
    rows = []
    # With data.weight, the weighted metrics follow the unweighted ones as weighted_<name>, beside the weighted
    # baseline; the promotion gate then compares the weighted metric.
    weighted = test.get("weighted_metrics") or {}
    measured = [
        (name, value, test.get("baseline", {}).get(name), name) for name, value in test.get("metrics", {}).items()
    ]
    measured += [
        (f"weighted_{name}", value, (test.get("weighted_baseline") or {}).get(name), name)
        for name, value in weighted.items()
    ]
    gate = f"weighted_{promotion_metric}" if weighted and promotion_metric else promotion_metric
    for name, value, base, plain in measured:
        sign = 1.0 if GREATER_IS_BETTER.get(plain, True) else -1.0
        lift = None if base is None else sign * (value - base)
        other = champion_metrics.get(name)
        delta = None if other is None else sign * (value - other)
        rows.append(
            {
                "name": name,
                "promotion": name == gate,
                "model": fmt(value),
                "baseline": fmt(base),
                "lift": _signed(lift),
                "lift_class": _class(lift),
                "champion": fmt(other),
                "delta": _signed(delta),
                "delta_class": _class(delta),
                "named": [fmt(values.get(name)) for values in named.values()] if name == plain else ["" for _ in named],
            }
        )
    split = config.get("split", {}) if isinstance(config, dict) else {}
    contributions = insights.get("global_contributions") or {}
    plots_folder = directory / "plots"
    report = {
        "title": manifest.get("model_name"),
        "project": manifest.get("project", ""),
        "description": (config.get("project", {}) or {}).get("description", "") if isinstance(config, dict) else "",
        "model_name": manifest.get("model_name", "model"),
        "version": version,
        "aliases": list(aliases),
        "estimator": manifest.get("estimator", "unknown"),
        "task": schema.target.task,
        "created_at": manifest.get("created_at", "unknown"),
        "promotion": insights.get("promotion"),
        "leak_warnings": list(manifest.get("warnings") or []),
        "data": {
            "fingerprint": _fingerprint(manifest.get("data_fingerprint")),
            "sources": manifest.get("data_sources", {}),
            "rows": metrics_doc.get("rows", {}),
            "split": {k: v for k, v in split.items() if v is not None} if isinstance(split, dict) else {},
        },
        "metrics": rows,
        "metric_names": list(test.get("metrics", {})),
        "named_baselines": list(named),
        "weight_note": f"The weighted_ rows weigh each test row by its {schema.weight_name} value (data.weight); "
        "their baseline predicts the training rows' weighted class shares (or weighted mean)"
        if weighted and schema.weight_name
        else "",
        "baseline_note": "the regression baseline predicts the training mean"
        if schema.target.task == "regression"
        else "the classification baseline predicts the training data's class shares for every row",
        "champion": None
        if not champion
        else {
            "version": champion.get("version"),
            "note": champion.get("note", ""),
        },
        "leaderboard": [row for row in metrics_doc.get("leaderboard") or [] if isinstance(row, dict)],
        "fit_notes": [str(note) for note in metrics_doc.get("notes") or []],
        "per_class": test.get("per_class", {}),
        "slices": test.get("slices", {}),
        "plots": plot_list(plots_folder, PLOT_TITLES),
        "contributions": list(contributions.items()),
        "contribution_rows": int(insights.get("contribution_rows", 0)),
        "contribution_test_rows": int(insights.get("contribution_test_rows", 0)),
        "contribution_unit": insights.get("contribution_unit")
        or ("target units" if schema.target.task == "regression" else "log-odds"),
        "contribution_plot": data_uri(plots_folder / CONTRIBUTIONS_PLOT)
        if (plots_folder / CONTRIBUTIONS_PLOT).is_file()
        else None,
        "schema": [_schema_row(c) for c in schema.columns],
        "schema_rows": schema.rows,
        "target": {"name": schema.target.name, "summary": _target_summary(schema)},
        "config_yaml": config_text,
        "environment": {
            "git_commit": manifest.get("git_commit"),
            "seed": manifest.get("seed"),
            "packages": manifest.get("packages", {}),
        },
        "keel_version": __version__,
        "generated_at": generated_at,
        "fmt": fmt,
        "form": None if endpoint is None else _form(schema, endpoint),
    }
    return render(REPORT_TEMPLATE, r=report)


def _read_json(path: Path) -> dict[str, Any]:
    import json

    if not path.is_file():
        return {}
    data = json.loads(path.read_text(encoding="utf-8"))
    return data if isinstance(data, dict) else {}


def _yaml(text: str) -> dict[str, Any]:
    if not text:
        return {}
    import yaml

    data = yaml.safe_load(text)  # a version's resolved configuration: plain YAML, nothing left to interpolate
    return {str(k): v for k, v in data.items()} if isinstance(data, dict) else {}


def _fingerprint(value: Any) -> list[str]:
    if isinstance(value, dict):
        return [f"{k}: {v}" for k, v in value.items()]
    return [str(value or "unknown")]


def _signed(value: float | None) -> str:
    if value is None or math.isnan(value):
        return "–"
    return f"{value:+.4f}"


def _class(value: float | None) -> str:
    if value is None or math.isnan(value) or abs(value) < 5e-5:
        return ""
    return "better" if value > 0 else "worse"


def _schema_row(column: Any) -> dict[str, Any]:
    if column.type == "numeric" and column.min is not None:
        values = f"{column.min:,.6g} to {column.max:,.6g} (mean {column.mean:,.6g})"
    elif column.categories:
        shown = ", ".join(column.categories[:12])
        values = f"{len(column.categories)} categories: {shown}" + (" …" if len(column.categories) > 12 else "")
    else:
        values = column.note
    return {
        "name": column.name,
        "role": column.role,
        "type": column.type,
        "inferred": column.inferred,
        "missing_rate": column.missing_rate,
        "detail": values,
    }


def _target_summary(schema: Any) -> str:
    target = schema.target
    if target.task == "regression":
        return f"regression, {target.min:,.6g} to {target.max:,.6g} (mean {target.mean:,.6g})"
    counts = target.class_counts or []
    parts = [f"{label} ({count:,})" for label, count in zip(target.classes or [], counts, strict=False)]
    return f"{target.task} classification: " + ", ".join(parts)


def _form(schema: Any, endpoint: str) -> dict[str, Any]:
    example = schema.example
    fields = []
    for column in schema.features:
        value = example.get(column.name)
        choices = None
        if column.type == "categorical" and column.categories and len(column.categories) <= 200:
            choices = list(column.categories)
        elif column.type == "boolean":
            choices = ["true", "false"]
            value = "true" if value else "false"
        fields.append(
            {
                "name": column.name,
                "type": column.type,
                "optional": column.missing_rate > 0,
                "choices": choices,
                "value": "" if value is None else str(value),
            }
        )
    return {"fields": fields, "config": {"endpoint": endpoint, "explain": True}}


# -- the drift report --------------------------------------------------------------------------------------------


def drift_page(report: Any, *, model: str, source: str, skipped: dict[str, str], generated_at: str) -> str:
    """The drift report (:class:`keel.domain.drift.DriftReport`) as one self-contained HTML page with histograms."""
    from keel import __version__

    def entry(drift: FeatureDrift) -> dict[str, Any]:
        return {**drift.model_dump(), "plot": png_uri(drift_histogram(drift))}

    outputs = [entry(d) for d in (report.prediction, report.score) if d is not None]
    context = {
        "model": model,
        "source": source,
        "rows": report.rows,
        "threshold": report.threshold,
        "drifting": report.drifting,
        "features": [entry(f) for f in report.features],
        "outputs": outputs,
        "skipped": skipped,
        "generated_at": generated_at,
        "keel_version": __version__,
        "fmt": lambda v: fmt(v, 3),
    }
    return render(DRIFT_TEMPLATE, d=context)
