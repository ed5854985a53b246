"""Everything the ``keel`` command prints: consoles, tables, JSON documents, step progress and error messages.

A CLI-layer module: the commands in :mod:`keel.cli` call the application and hand the result here. Rich is imported
inside the functions, so importing this module costs nothing to ``keel --help``.
"""

from __future__ import annotations

import contextlib
import json
import math
import sys
import time
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any, NoReturn

import typer

from keel.errors import KeelError

if TYPE_CHECKING:
    from keel.application.evaluate import FileEvaluation
    from keel.application.insight_jobs import ExplainResult, MonitorResult, WrittenReport
    from keel.application.live import EvidencePromotion, LiveEvaluation
    from keel.application.models import ExportResult, ManualPromotion, VersionDetail, VersionList
    from keel.application.predict import PredictResult
    from keel.application.train import TrainResult
    from keel.application.tune import TuneResult


def console(stderr: bool = False) -> Any:
    """A console on stdout (or stderr) that does not colour numbers and paths on its own."""
    from rich.console import Console

    return Console(stderr=stderr, highlight=False)


def console_unbounded() -> Any:
    """A stdout console that never narrows a table to a terminal's width (for piped or redirected output)."""
    from rich.console import Console

    return Console(highlight=False, width=100_000, no_color=True)


def fail(error: KeelError) -> NoReturn:
    """Print a user error as one line on stderr and exit with its code."""
    from rich.markup import escape

    # The message is plain text: brackets in it (`data.ignore: [a, b]`) must not be read as markup.
    console(stderr=True).print(f"[bold red]error:[/] {escape(str(error))}", markup=True, soft_wrap=True)
    raise typer.Exit(error.exit_code)


def interrupted() -> NoReturn:
    """Say that Ctrl-C stopped the work cleanly, and exit 130."""
    console(stderr=True).print("[yellow]interrupted[/]: nothing half-written was kept")
    raise typer.Exit(130) from None


def json_safe(value: Any) -> Any:
    """The value with NaN and infinities as null (strict JSON has no word for them) and keys as strings."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {str(k): json_safe(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [json_safe(v) for v in value]
    return value


def print_json(data: Any) -> None:
    """Print one indented JSON document on stdout."""
    sys.stdout.write(json.dumps(json_safe(data), indent=2, allow_nan=False) + "\n")


class RichReporter:
    """Shows each step with a spinner and its duration, and notes as dim lines (on stderr)."""

    def __init__(self, quiet: bool) -> None:
        self.quiet = quiet
        self.notes: list[str] = []
        self.console = console(stderr=True)

    @contextlib.contextmanager
    def step(self, title: str) -> Iterator[None]:
        """Show a spinner while the step runs, then its title and duration."""
        started = time.perf_counter()
        if self.quiet:
            yield
            return
        with self.console.status(f"{title}…"):
            yield
        self.console.print(f"[green]✓[/] {title} [dim]({time.perf_counter() - started:.1f}s)[/]")

    def note(self, text: str) -> None:
        """Keep a note and show it as a dim line."""
        self.notes.append(text)
        if not self.quiet:
            self.console.print(f"  [dim]{text}[/]", soft_wrap=True)


def _lift(name: str, value: float, base: float) -> float:
    from keel.domain.metrics import GREATER_IS_BETTER, improvement

    # A metric keel does not know the direction of reads as greater-is-better.
    return improvement(name, value, base) if name in GREATER_IS_BETTER else value - base


def metrics_table(title: str, metrics: dict[str, float], baseline: dict[str, float]) -> Any:
    """Each metric of the model beside the naive baseline's, and the lift (positive is better)."""
    from rich.table import Table

    table = Table(title=title, title_justify="left")
    table.add_column("metric")
    table.add_column("model", justify="right")
    table.add_column("baseline", justify="right")
    table.add_column("lift", justify="right")
    for name, value in metrics.items():
        base = baseline.get(name, math.nan)
        table.add_row(name, f"{value:.4f}", f"{base:.4f}", f"{_lift(name, value, base):+.4f}")
    return table


def weighted_metrics_table(evaluation: Any) -> Any:
    """The weighted metrics (``data.weight``) beside the baseline fitted and scored with the same weights."""
    title = "Weighted test metrics (data.weight; baseline: weighted shares or mean)"
    return metrics_table(title, evaluation.weighted_metrics, evaluation.weighted_baseline)


def baselines_table(metrics: dict[str, float], baselines: dict[str, dict[str, float]]) -> Any:
    """The model beside each named baseline (``evaluation.baselines``), same rows, same metrics."""
    from rich.table import Table

    table = Table(title="Model vs named baselines (same test rows)", title_justify="left")
    table.add_column("metric")
    table.add_column("model", justify="right")
    for name in baselines:
        table.add_column(name, justify="right")
    for metric, value in metrics.items():
        cells = [f"{baselines[name][metric]:.4f}" if metric in baselines[name] else "n/a" for name in baselines]
        table.add_row(metric, f"{value:.4f}", *cells)
    return table


def slices_table(slices: dict[str, dict[str, dict[str, float]]], metric: str) -> Any:
    """Rows and one metric per value of each sliced column."""
    from rich.table import Table

    table = Table(title=f"Slices ({metric})", title_justify="left")
    table.add_column("column")
    table.add_column("value")
    table.add_column("rows", justify="right")
    table.add_column(metric, justify="right")
    for column, values in slices.items():
        for value, scores in values.items():
            table.add_row(column, value, f"{int(scores['rows']):,}", f"{scores.get(metric, math.nan):.4f}")
    return table


def best_params_table(best_params: dict[str, Any], importance: dict[str, float]) -> Any:
    """A tuning study's best parameters and their importance."""
    from rich.table import Table

    table = Table(title="Best parameters", title_justify="left")
    table.add_column("parameter")
    table.add_column("value", justify="right")
    table.add_column("importance", justify="right")
    for name, value in best_params.items():
        shown = f"{value:.6g}" if isinstance(value, float) else str(value)
        weight = importance.get(name)
        table.add_row(name, shown, "" if weight is None else f"{weight:.2f}")
    return table


def drift_table(title: str, drift: Any) -> Any:
    """PSI, status and missing share per output and feature of a drift report."""
    from rich.table import Table

    table = Table(title=title)
    for column in ("feature", "PSI", "status", "missing (train → now)", "unseen"):
        table.add_column(column, justify="left" if column in ("feature", "status") else "right")
    outputs = [d for d in (drift.prediction, drift.score) if d is not None]
    for item in [*outputs, *drift.features]:
        unseen = "" if item.unseen_current is None else f"{item.unseen_current:.1%}"
        status = "[bold red]drifting[/]" if item.drifting else "stable"
        missing = f"{item.missing_reference:.1%} → {item.missing_current:.1%}"
        table.add_row(item.name, f"{item.psi:.3f}", status, missing, unseen)
    return table


def explanation_table(item: Any) -> Any:
    """One row's largest feature contributions."""
    from rich.table import Table

    table = Table(
        title=f"row {item.row}: predicted {item.prediction} (raw score {item.raw_score:+.3f} = base "
        f"{item.base_value:+.3f} + contributions, {item.unit})",
        title_justify="left",
    )
    table.add_column("feature")
    table.add_column("value")
    table.add_column("contribution", justify="right")
    for contribution in item.contributions:
        table.add_row(contribution.feature, str(contribution.value), f"{contribution.contribution:+.4f}")
    if item.rest:
        table.add_row("[dim]other features[/]", "", f"{item.rest:+.4f}")
    return table


def versions_table(versions: list[Any], summaries: list[dict[str, Any]]) -> Any:
    """Registered versions with aliases, status, estimator, test metrics and creation time."""
    from rich.table import Table

    table = Table()
    for column in ("model", "version", "aliases", "status", "estimator", "test metric", "created"):
        # Names and numbers are never cut; narrow terminals wrap the free-text columns instead.
        table.add_column(column, no_wrap=column in ("model", "version", "created"))
    for info, summary in zip(versions, summaries, strict=True):
        metric = ", ".join(f"{k} {v:.4f}" for k, v in summary["metrics"].items())
        created = time.strftime("%Y-%m-%d %H:%M", time.localtime(info.created_at / 1000))
        status = summary["status"] if info.complete else f"[red]{summary['status']}[/]"
        table.add_row(
            info.name, str(info.version), ", ".join(info.aliases), status, summary["estimator"] or "", metric, created
        )
    return table


# -- one function per command's result ----------------------------------------------------------------------------


def training(result: TrainResult, *, quiet: bool, as_json: bool) -> None:
    """``keel train``: the test metrics beside the baselines, the slices (unless quiet), the registration."""
    if as_json:
        print_json(result.to_dict())
        return
    out = console()
    evaluation = result.evaluation
    out.print(metrics_table(f"Test metrics ({evaluation.rows:,} rows)", evaluation.metrics, evaluation.baseline))
    if evaluation.weighted_metrics:
        out.print(weighted_metrics_table(evaluation))
    if evaluation.baselines:
        out.print(baselines_table(evaluation.metrics, evaluation.baselines))
    if evaluation.slices and not quiet:
        out.print(slices_table(evaluation.slices, result.promotion.metric))
    status = "[bold green]champion[/]" if result.promotion.promote else "[yellow]not promoted[/]"
    out.print(
        f"Registered [bold]{result.model_name}[/] version [bold]{result.version}[/] → {status}: "
        f"{result.promotion.reason}",
        soft_wrap=True,
    )


def tuning(result: TuneResult, as_json: bool) -> None:
    """``keel tune``: the study's trials and best value, the best parameters, the config written."""
    if as_json:
        print_json(result.to_dict())
        return
    out = console()
    counts = ", ".join(f"{count} {state.lower()}" for state, count in sorted(result.trials.items()))
    out.print(
        f"Study [bold]{result.study}[/] ({result.storage}): {counts}; best validation {result.metric} "
        f"[bold]{result.best_value:.5f}[/] (trial {result.best_trial}, {result.direction})",
        soft_wrap=True,
    )
    out.print(best_params_table(result.best_params, result.importance))
    out.print(f"Wrote {result.config_path}; train it with: [bold]keel train {result.config_path}[/]")


def serving(what: str, host: str, port: int) -> None:
    """``keel serve``: what is served where, and who can reach it (on stderr: stdout is the server's)."""
    where = "this machine only" if host in ("127.0.0.1", "localhost", "::1") else "other hosts too"
    console(stderr=True).print(
        f"serving [bold]{what}[/] on http://{host}:{port} ({where}; docs at /docs)"
        + ("" if host != "127.0.0.1" else "; pass --host 0.0.0.0 to accept connections from other hosts"),
        soft_wrap=True,
    )


def text(document: str) -> None:
    """Print a document (YAML) on stdout as it is."""
    sys.stdout.write(document)


def file_evaluation(result: FileEvaluation, as_json: bool) -> None:
    """``keel evaluate --data``: the rows dropped, the metrics beside the baseline, the slices."""
    if as_json:
        print_json(result.to_dict())
        return
    out = console()
    evaluation = result.evaluation
    for reason, count in result.dropped.items():
        out.print(f"[yellow]dropped {count:,} row(s): {reason}[/]")
    out.print(
        metrics_table(
            f"{result.model} on {result.data} ({evaluation.rows:,} rows)", evaluation.metrics, evaluation.baseline
        )
    )
    if evaluation.weighted_metrics:
        out.print(weighted_metrics_table(evaluation))
    if evaluation.slices:
        out.print(slices_table(evaluation.slices, next(iter(evaluation.metrics))))


def live_evaluation(result: LiveEvaluation, as_json: bool) -> None:
    """``keel evaluate --log``: one metrics table per logged version, then the labels that matched nothing."""
    if as_json:
        print_json(result.to_dict())
        return
    out = console()
    for item in result.versions:
        title = (
            f"{item.model}:{item.version} ({item.role}) on {item.matched:,} labelled of {item.logged:,} logged "
            f"records ({item.logged - item.matched:,} without a label)"
        )
        if item.evaluation is None:
            out.print(f"{title}: no metrics", soft_wrap=True)
        else:
            out.print(metrics_table(title, item.evaluation.metrics, item.evaluation.baseline))
    if result.unmatched_labels or result.dropped_labels:
        out.print(
            f"[yellow]{result.unmatched_labels:,} label(s) match no logged record; "
            f"{result.dropped_labels:,} label row(s) have no value[/]"
        )


def prediction(result: PredictResult, as_json: bool) -> None:
    """``keel predict``: rows scored, categories never seen in training, invalid rows and where they went."""
    if as_json:
        print_json(result.to_dict())
        return
    out = console()
    out.print(f"{result.model}: scored {result.predicted:,} of {result.rows:,} rows → {result.output}")
    for name, count in result.unseen.items():
        out.print(f"  [yellow]{name}[/]: {count:,} row(s) with a category not seen in training (scored)")
    if result.invalid:
        out.print(f"  [yellow]{result.invalid:,} invalid row(s)[/] written to {result.errors} with the reason")


def written_report(result: WrittenReport) -> None:
    """``keel report``: where the page went."""
    console().print(f"{result.model}: report written to {result.path}", soft_wrap=True)


def monitoring(result: MonitorResult, as_json: bool) -> None:
    """``keel monitor``: the drift table and the files written."""
    if as_json:
        print_json(result.to_dict())
        return
    drift = result.report
    out = console()
    out.print(
        drift_table(f"{result.model} on {result.data} ({drift.rows:,} rows; PSI threshold {drift.threshold})", drift)
    )
    out.print(f"wrote {result.html} and {result.json}", soft_wrap=True)


def explanations(result: ExplainResult, as_json: bool) -> None:
    """``keel explain``: one contributions table per row, and its waterfall plot."""
    if as_json:
        print_json(result.to_dict())
        return
    out = console()
    for item in result.explanations:
        out.print(explanation_table(item))
        if item.row in result.plots:
            out.print(f"  waterfall: {result.plots[item.row]}", soft_wrap=True)


def versions(listing: VersionList, as_json: bool) -> None:
    """``keel models list``: the versions table (or a hint to train when there is none)."""
    if as_json:
        print_json(listing.summaries)
        return
    table = versions_table(listing.versions, listing.summaries)
    # Piped or redirected, there is no screen width to fit: lay the table out as wide as its values (a script
    # reading the output must see whole names and metrics, never "…").
    out = console() if sys.stdout.isatty() else console_unbounded()
    out.print(table if listing.versions else "no registered versions yet; run `keel train`")


def version_detail(detail: VersionDetail) -> None:
    """``keel models show``: the version as one JSON document."""
    print_json(detail.to_dict())


def manual_promotion(result: ManualPromotion, as_json: bool) -> None:
    """``keel models promote --reason``."""
    if as_json:
        print_json(result.to_dict())
        return
    console().print(f"{result.name} version {result.version} is now [bold green]champion[/] ({result.reason})")


def evidence_promotion(result: EvidencePromotion, as_json: bool) -> None:
    """``keel models promote --evidence``: the gate's decision and why."""
    if as_json:
        print_json(result.to_dict())
    elif result.decision.promote:
        console().print(
            f"{result.name} version {result.version} is now [bold green]champion[/]: {result.decision.reason}",
            soft_wrap=True,
        )
    else:
        console().print(f"[yellow]not promoted[/]: {result.decision.reason}", soft_wrap=True)


def export(result: ExportResult, as_json: bool) -> None:
    """``keel models export``: what was exported, and where."""
    if as_json:
        print_json(result.to_dict())
        return
    meta = result.metadata
    aliases = f" ({', '.join(meta['aliases'])})" if meta["aliases"] else ""
    console().print(f"exported {meta['name']}:{meta['version']}{aliases} → {result.directory}", soft_wrap=True)
