"""The ``keel`` command line: parse, call one application function, render the result.

Heavy libraries (pandas, LightGBM, MLflow) are imported inside the commands, so ``keel --help`` stays instant.
User mistakes raise :class:`~keel.errors.KeelError`: one clear message on stderr, no traceback, a non-zero exit.
"""

from __future__ import annotations

import contextlib
import enum
import logging
import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, NoReturn, TypeVar

import typer

from keel import __version__, defaults, render
from keel.errors import KeelError

app = typer.Typer(
    name="keel",
    help="From a dataset to a production model service, driven by one YAML file.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    context_settings={"help_option_names": ["-h", "--help"]},
)
models_app = typer.Typer(help="List, inspect and promote registered model versions.", no_args_is_help=True)
config_app = typer.Typer(help="Show the resolved configuration or its JSON schema.", no_args_is_help=True)
app.add_typer(models_app, name="models")
app.add_typer(config_app, name="config")

_T = TypeVar("_T")

ConfigArgs = Annotated[
    list[str] | None,
    typer.Argument(
        help="Config files (merged left to right; default: the packaged Adult config) and key.path=value overrides.",
        show_default=False,
    ),
]
WorkspaceOption = Annotated[
    Path | None,
    typer.Option(
        "--workspace", "-w", help="Workspace holding the embedded registry \\[env: KEEL_WORKSPACE; default: .keel]."
    ),
]
ModelOption = Annotated[
    str | None,
    typer.Option(
        "--model",
        "-m",
        help="Model reference: NAME, NAME@ALIAS or NAME:VERSION \\[default: the only registered model's champion].",
        show_default=False,
    ),
]
JsonOption = Annotated[bool, typer.Option("--json", help="Print one JSON document instead of tables.")]
CsvOption = Annotated[
    list[str] | None,
    typer.Option(
        "--csv",
        help="CSV option for this run, KEY=VALUE (header, names, delimiter, na_values, skip_rows, strip_whitespace, "
        "default_na; lists comma-separated); wins over the options recorded from the training source.",
        show_default=False,
    ),
]
SchedulerOption = Annotated[
    str | None,
    typer.Option("--scheduler", help="Dask scheduler address (tcp://host:8786) \\[default: a LocalCluster]."),
]
DaskWorkersOption = Annotated[
    int | None, typer.Option("--workers", min=1, help="LocalCluster workers \\[default: one per core].")
]


class Engine(enum.StrEnum):
    """Where a command computes: in this process, or on a Dask cluster."""

    local = "local"
    dask = "dask"


def _run(action: Callable[[], _T]) -> _T:
    """Run an application call, turning user errors into a message and an exit code."""
    try:
        return action()
    except KeelError as error:
        render.fail(error)
    except KeyboardInterrupt:
        render.interrupted()
    raise AssertionError("unreachable")  # pragma: no cover


def _exit(code: int) -> None:
    """End the command with ``code`` when it is not 0 (a result that is a failure to scripts: drift, no row scored)."""
    if code:
        raise typer.Exit(code)


def _setup_logging(verbose: bool) -> None:
    logging.basicConfig(
        level=logging.INFO if verbose else logging.WARNING, format="%(levelname)s %(name)s: %(message)s"
    )
    for noisy in ("mlflow", "alembic", "urllib3"):
        logging.getLogger(noisy).setLevel(logging.WARNING)


def _version_callback(value: bool) -> None:
    if value:
        typer.echo(f"keel {__version__}")
        raise typer.Exit()


@app.callback()
def _main(
    verbose: Annotated[
        bool, typer.Option("--verbose", "-v", help="Log what keel does (downloads, cache hits).")
    ] = False,
    version: Annotated[
        bool, typer.Option("--version", callback=_version_callback, is_eager=True, help="Print the version and exit.")
    ] = False,
) -> None:
    """From a dataset to a production model service, driven by one YAML file."""
    _setup_logging(verbose)


@app.command()
def train(
    args: ConfigArgs = None,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="Print only the final metrics.")] = False,
    workspace: WorkspaceOption = None,
    as_json: JsonOption = False,
    time_budget: Annotated[
        float | None,
        typer.Option(
            "--time-budget", min=1, help="Seconds `model.estimator: auto` may spend on candidates (model.time_budget)."
        ),
    ] = None,
) -> None:
    """Train, evaluate on held-out data and register a model version (promoted if it beats the champion).

    Examples: `keel train`, `keel train configs/adult.yaml model.params.n_estimators=300 split.seed=7`,
    `keel train my.yaml model.estimator=auto --time-budget 120`.
    """
    from keel.application.sidecars import sidecar

    # Started first, before keel's own training modules are imported: MLflow's import (seconds) runs beside them and
    # beside reading the configuration and the data. A configuration refused below ends it at once (it has only
    # imported).
    with sidecar() as side:
        from keel.application.train import train as run_train
        from keel.config import load_config, split_arguments

        files, overrides = split_arguments(args or [])
        if time_budget is not None:
            overrides.append(f"model.time_budget={time_budget}")
        loaded = _run(lambda: load_config(files, overrides))
        reporter = render.RichReporter(quiet=quiet or as_json)
        result = _run(lambda: run_train(loaded, reporter, workspace=workspace, side=side))
    render.training(result, quiet=quiet, as_json=as_json)


LogOption = Annotated[
    Path | None, typer.Option("--log", help="Prediction log folder (`keel serve --log-dir`) instead of a file.")
]


@app.command()
def evaluate(
    model: ModelOption = None,
    data: Annotated[Path | None, typer.Option("--data", "-d", help="Labelled CSV or Parquet file.")] = None,
    log: LogOption = None,
    labels: Annotated[
        Path | None, typer.Option("--labels", help="With --log: CSV or Parquet file of the key and the true target.")
    ] = None,
    on: Annotated[
        str, typer.Option("--on", help="With --log: join key, `request_id` (plus a `record` column) or an id column.")
    ] = "request_id",
    csv: CsvOption = None,
    workspace: WorkspaceOption = None,
    as_json: JsonOption = False,
) -> None:
    """Recompute a version's metrics on new labelled data, beside the naive baseline.

    With --log DIR --labels FILE: live metrics of every version the service logged (primary, canary, shadow), on
    the records whose labels arrived. A --data file is read as the training data was (header or names,
    missing-value tokens, recoded labels).
    """
    if log is not None or labels is not None:
        if log is None or labels is None or model or data:
            render.fail(
                KeelError("live evaluation takes --log DIR and --labels FILE (and --on KEY), without --model/--data")
            )
        from keel.application.live import evaluate_logged

        render.live_evaluation(_run(lambda: evaluate_logged(workspace, log, labels, on)), as_json)
        return
    if data is None:
        render.fail(KeelError("give --data (a labelled file), or --log and --labels (the prediction log)"))
    from keel.application.evaluate import evaluate_version

    render.file_evaluation(_run(lambda: evaluate_version(workspace, model, data, csv or [])), as_json)


@app.command()
def predict(
    input_path: Annotated[
        Path, typer.Option("--input", "-i", help="CSV or Parquet file, or a folder of Parquet parts.")
    ],
    output_path: Annotated[Path, typer.Option("--output", "-o", help="Predictions file (.csv or .parquet).")],
    model: ModelOption = None,
    errors_path: Annotated[
        Path | None, typer.Option("--errors", help="File for rows that fail validation \\[default: OUTPUT.errors.EXT].")
    ] = None,
    chunk_rows: Annotated[int, typer.Option("--chunk-rows", min=1, help="Rows scored at a time.")] = 50_000,
    keep: Annotated[
        str,
        typer.Option(
            "--keep", help="Input columns carried to the output: all (every non-feature column), ids or none."
        ),
    ] = "all",
    row_column: Annotated[
        str, typer.Option("--row-column", help="Name of the column holding each record's 0-based input position.")
    ] = "row",
    csv: CsvOption = None,
    engine: Annotated[
        Engine,
        typer.Option("--engine", help="`local` (in-process) or `dask` (Parquet input; OUTPUT is a folder of parts)."),
    ] = Engine.local,
    scheduler: SchedulerOption = None,
    workers: DaskWorkersOption = None,
    workspace: WorkspaceOption = None,
    as_json: JsonOption = False,
) -> None:
    """Score a file in chunks; columns that are not features are carried to the output unchanged.

    The file is read as the training data was (header or names, missing-value tokens); every output and errors row
    carries its input position in the `row` column.
    """
    from keel.application.batch import predict_version

    result = _run(
        lambda: predict_version(
            workspace,
            model,
            input_path,
            output_path,
            errors_path=errors_path,
            chunk_rows=chunk_rows,
            keep=keep,
            row_column=row_column,
            csv=csv or [],
            engine=engine.value,
            scheduler=scheduler,
            workers=workers,
        )
    )
    render.prediction(result, as_json)
    _exit(result.exit_code)


@app.command()
def serve(
    reference: Annotated[
        str | None,
        typer.Argument(
            help="Model to serve: NAME, NAME@ALIAS or NAME:VERSION \\[default: the champion of the only registered "
            "model].",
            show_default=False,
        ),
    ] = None,
    model: Annotated[str | None, typer.Option("--model", "-m", help="Same as REF.", show_default=False)] = None,
    model_dir: Annotated[
        Path | None,
        typer.Option("--model-dir", help="Serve a `keel models export` folder, no registry \\[env: KEEL_MODEL_DIR]."),
    ] = None,
    host: Annotated[
        str, typer.Option("--host", help="Interface to bind; 0.0.0.0 makes the service reachable from other hosts.")
    ] = defaults.SERVE_HOST,
    port: Annotated[int, typer.Option("--port", "-p", min=1, max=65535, help="TCP port.")] = defaults.SERVE_PORT,
    workers: Annotated[int, typer.Option("--workers", min=1, help="Worker processes.")] = defaults.SERVE_WORKERS,
    poll_interval: Annotated[
        float, typer.Option("--poll-interval", min=0, help="Seconds between checks for a new version (0: never).")
    ] = defaults.POLL_SECONDS,
    access_log: Annotated[bool, typer.Option("--access-log/--no-access-log", help="Log each request line.")] = True,
    max_records: Annotated[int, typer.Option("--max-records", min=1, help="Most records in one request.")] = (
        defaults.MAX_RECORDS
    ),
    max_explain_records: Annotated[
        int, typer.Option("--max-explain-records", min=1, help="Most records in one ?explain=true request.")
    ] = defaults.MAX_EXPLAIN_RECORDS,
    monitor_window: Annotated[
        int, typer.Option("--monitor-window", min=1, help="Recent records kept for drift (GET /v1/monitoring).")
    ] = defaults.MONITOR_WINDOW,
    drift_threshold: Annotated[
        float, typer.Option("--drift-threshold", min=0, help="PSI at or above which a feature is drifting.")
    ] = defaults.DRIFT_THRESHOLD,
    log_dir: Annotated[
        Path | None,
        typer.Option("--log-dir", help="Log every scored record to Parquet files here \\[default: serving.log_dir]."),
    ] = None,
    log_rotate_seconds: Annotated[
        float,
        typer.Option("--log-rotate-seconds", min=0.1, help="Complete a log file this long after its first record."),
    ] = 60.0,
    shadow: Annotated[
        str | None,
        typer.Option("--shadow", help="Also score every request with this version, off the response path (logged)."),
    ] = None,
    canary: Annotated[
        str | None,
        typer.Option("--canary", help="REF:PERCENT: this version answers PERCENT% of requests (sticky by id)."),
    ] = None,
    workspace: WorkspaceOption = None,
) -> None:
    """Serve a registered model over HTTP (POST /v1/predict; docs at /docs), swapping in new champions live.

    Set KEEL_API_KEYS (comma-separated), or KEEL_API_KEYS_FILE (a file of keys, one per line), to require a key on
    every route but /health and /ready.
    """
    from keel.application.serve import ServeSettings
    from keel.application.serve import serve as run_serve

    if reference and model and reference != model:
        render.fail(KeelError(f"two models given ({reference} and --model {model}); give one"))
    reference = reference or model
    folder = model_dir or (Path(os.environ["KEEL_MODEL_DIR"]) if os.environ.get("KEEL_MODEL_DIR") else None)
    settings = ServeSettings(
        reference=reference,
        model_dir=str(folder) if folder else None,
        workspace=str(workspace) if workspace else None,
        host=host,
        port=port,
        workers=workers,
        poll_interval=poll_interval,
        access_log=access_log,
        max_records=max_records,
        max_explain_records=max_explain_records,
        monitor_window=monitor_window,
        drift_threshold=drift_threshold,
        log_dir=str(log_dir) if log_dir else None,
        log_rotate_seconds=log_rotate_seconds,
        shadow=shadow,
        canary=canary,
    )
    render.serving(str(folder or reference or "the only registered model"), host, port)
    _run(lambda: run_serve(settings))


@app.command()
def tune(
    args: ConfigArgs = None,
    trials: Annotated[
        int | None,
        typer.Option(
            "--trials", "-n", min=1, help="Trials to run in this call \\[default: 20, or as many as fit --time-budget]."
        ),
    ] = None,
    timeout: Annotated[
        float | None,
        typer.Option(
            "--time-budget",
            "--timeout",
            min=1,
            help="Seconds the study may take: no trial starts after them, and a running LightGBM trial stops "
            "boosting at that moment (keeping its best round so far).",
        ),
    ] = None,
    storage: Annotated[
        str | None,
        typer.Option(
            "--storage", help="Optuna storage URL \\[env: KEEL_TUNE_STORAGE; default: sqlite in the workspace]."
        ),
    ] = None,
    study: Annotated[
        str | None, typer.Option("--study", help="Study name (an existing one is continued) \\[default: tune-MODEL].")
    ] = None,
    n_jobs: Annotated[int, typer.Option("--n-jobs", min=1, help="Trials run in parallel threads here.")] = 1,
    engine: Annotated[Engine, typer.Option("--engine", help="`dask` runs trials on a Dask cluster's workers.")] = (
        Engine.local
    ),
    scheduler: SchedulerOption = None,
    workers: DaskWorkersOption = None,
    output: Annotated[
        Path | None,
        typer.Option("--output", "-o", help="Config file to write \\[default: WORKSPACE/tuned/STUDY.yaml]."),
    ] = None,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="Print only the summary.")] = False,
    as_json: JsonOption = False,
) -> None:
    """Search hyper-parameters with Optuna on the validation split; write the best as a config for `keel train`.

    Examples: `keel tune --trials 50`, `keel tune configs/adult.yaml --trials 200 --storage postgresql://…`.
    """
    from keel.config import load_config, split_arguments

    if engine is Engine.local and (scheduler or workers):
        render.fail(KeelError("--scheduler and --workers apply only with --engine dask"))
    if engine is Engine.dask and n_jobs > 1:
        render.fail(KeelError("--n-jobs runs threads in this process; with --engine dask trials run one per worker"))
    files, overrides = split_arguments(args or [])
    loaded = _run(lambda: load_config(files, overrides))
    from keel.application.tune import tune as run_tune

    reporter = render.RichReporter(quiet=quiet or as_json)
    result = _run(
        lambda: run_tune(
            loaded,
            trials=trials,
            timeout=timeout,
            storage=storage,
            study_name=study,
            n_jobs=n_jobs,
            engine=engine.value,
            scheduler=scheduler,
            workers=workers,
            output=output,
            reporter=reporter,
        )
    )
    render.tuning(result, as_json)


@app.command()
def report(
    reference: Annotated[
        str | None,
        typer.Argument(
            help="NAME, NAME@ALIAS or NAME:VERSION \\[default: the champion of the only registered model].",
            show_default=False,
        ),
    ] = None,
    output: Annotated[Path, typer.Option("--output", "-o", help="HTML file to write.")] = Path("report.html"),
    workspace: WorkspaceOption = None,
) -> None:
    """Write a version's model report: one self-contained HTML page (metrics, plots, schema, config, environment)."""
    from keel.application.insight_jobs import report_version

    render.written_report(_run(lambda: report_version(workspace, reference, output)))


@app.command()
def monitor(
    data: Annotated[Path | None, typer.Option("--data", "-d", help="CSV or Parquet file of recent inputs.")] = None,
    log: LogOption = None,
    since: Annotated[
        str | None, typer.Option("--since", help="With --log: only records of the last DURATION (30m, 24h, 7d).")
    ] = None,
    model: ModelOption = None,
    output: Annotated[
        Path, typer.Option("--output", "-o", help="HTML page with per-feature histograms (JSON beside it).")
    ] = Path("drift.html"),
    threshold: Annotated[
        float, typer.Option("--threshold", min=0, help="PSI at or above which a feature is drifting.")
    ] = defaults.DRIFT_THRESHOLD,
    csv: CsvOption = None,
    workspace: WorkspaceOption = None,
    as_json: JsonOption = False,
) -> None:
    """Compare a batch of inputs (and their predictions) with the version's training data: PSI per feature.

    With --log DIR the inputs are the records the service answered (its prediction log). Writes OUTPUT (HTML) and
    OUTPUT with a .json suffix; exits 1 when a feature is drifting.
    """
    from keel.application.insight_jobs import monitor_version

    result = _run(
        lambda: monitor_version(
            workspace, model, data=data, log=log, since=since, threshold=threshold, csv=csv or [], output=output
        )
    )
    render.monitoring(result, as_json)
    _exit(result.exit_code)


@app.command()
def explain(
    input_path: Annotated[Path, typer.Option("--input", "-i", help="CSV or Parquet file holding the features.")],
    model: ModelOption = None,
    rows: Annotated[
        str | None, typer.Option("--rows", "-r", help="Rows to explain, 0-based: 0,3,10-12 \\[default: the first 5].")
    ] = None,
    top: Annotated[int, typer.Option("--top", min=1, help="Contributions shown per row.")] = 8,
    plots: Annotated[
        Path | None, typer.Option("--plots", help="Folder for one waterfall PNG per row \\[default: explanations].")
    ] = Path("explanations"),
    csv: CsvOption = None,
    workspace: WorkspaceOption = None,
    as_json: JsonOption = False,
) -> None:
    """Explain single predictions: each row's largest feature contributions (LightGBM), as a table and waterfall PNG."""
    from keel.application.insight_jobs import explain_version

    result = _run(lambda: explain_version(workspace, model, input_path, rows=rows, top=top, plots=plots, csv=csv or []))
    render.explanations(result, as_json)


@models_app.command("list")
def models_list(
    name: Annotated[str | None, typer.Argument(help="Only this model's versions.")] = None,
    workspace: WorkspaceOption = None,
    as_json: JsonOption = False,
) -> None:
    """List registered versions, newest first, with aliases and status."""
    from keel.application.models import list_registered

    render.versions(_run(lambda: list_registered(workspace, name)), as_json)


@models_app.command("show")
def models_show(
    reference: Annotated[str, typer.Argument(help="NAME, NAME@ALIAS or NAME:VERSION.")],
    workspace: WorkspaceOption = None,
) -> None:
    """Show one version: aliases, metrics, promotion reason and its verified manifest (as JSON)."""
    from keel.application.models import show_version

    render.version_detail(_run(lambda: show_version(workspace, reference)))


@models_app.command("promote")
def models_promote(
    name: Annotated[str, typer.Argument(help="Registered model name.")],
    version: Annotated[int, typer.Argument(help="Version to make champion.", min=1)],
    reason: Annotated[
        str | None, typer.Option("--reason", "-r", help="Why (recorded with the version); overrides the gate.")
    ] = None,
    evidence: Annotated[
        Path | None,
        typer.Option("--evidence", help="Prediction log folder: apply the promotion gate to live metrics instead."),
    ] = None,
    labels: Annotated[
        Path | None, typer.Option("--labels", help="With --evidence: file of the key and the true target.")
    ] = None,
    on: Annotated[str, typer.Option("--on", help="With --evidence: join key (request_id or an id column).")] = (
        "request_id"
    ),
    workspace: WorkspaceOption = None,
    as_json: JsonOption = False,
) -> None:
    """Make a version champion: by hand with --reason (overriding the gate), or through the gate on live evidence.

    With --evidence DIR --labels FILE the version's promotion metric and margin are applied to live metrics (from
    the prediction log, against the champion's) and the evidence is recorded in its tags; exits 1 when refused.
    """
    if evidence is not None or labels is not None:
        if evidence is None or labels is None or reason:
            render.fail(
                KeelError("promotion on evidence takes --evidence DIR and --labels FILE (and --on KEY), no --reason")
            )
        from keel.application.live import promote_on_evidence

        outcome = _run(lambda: promote_on_evidence(workspace, name, version, evidence, labels, on))
        render.evidence_promotion(outcome, as_json)
        _exit(outcome.exit_code)
        return
    if not reason:
        render.fail(KeelError("give --reason (a manual promotion) or --evidence DIR --labels FILE (through the gate)"))
    from keel.application.models import promote_by_hand

    render.manual_promotion(_run(lambda: promote_by_hand(workspace, name, version, reason)), as_json)


@models_app.command("export")
def models_export(
    reference: Annotated[str, typer.Argument(help="NAME, NAME@ALIAS or NAME:VERSION.")],
    output: Annotated[Path, typer.Option("--output", "-o", help="Folder to create (must not exist, or be empty).")],
    workspace: WorkspaceOption = None,
    as_json: JsonOption = False,
) -> None:
    """Copy a verified version and its registry record into a folder that needs no registry.

    The folder serves with `keel serve --model-dir DIR` and bakes into the image with `--build-arg MODEL=DIR`.
    """
    from keel.application.models import export_from

    render.export(_run(lambda: export_from(workspace, reference, output)), as_json)


@config_app.command("show")
def config_show(args: ConfigArgs = None) -> None:
    """Print the resolved configuration (files merged, overrides applied, defaults filled in) as YAML.

    The checks that need no data run too (``model.params`` names and types, metrics against a declared task).
    """
    from keel.application.prepare import check_config
    from keel.config import load_config, split_arguments

    files, overrides = split_arguments(args or [])
    loaded = _run(lambda: load_config(files, overrides))
    _run(lambda: check_config(loaded.config))
    render.text(loaded.resolved_yaml())


@config_app.command("schema")
def config_schema() -> None:
    """Print the configuration's JSON schema (for editors and validation)."""
    from keel.config import KeelConfig

    render.print_json(KeelConfig.model_json_schema())


def main() -> None:
    """Entry point of the ``keel`` command.

    A command that finished (with any exit status) leaves the process the way ``sys.exit`` would, except for the
    interpreter's last step: freeing every object and module one by one, which takes 0.5-1 s once pandas, LightGBM
    and MLflow are loaded and achieves nothing the operating system does not do at once. Output is flushed, other
    threads are waited for and every ``atexit`` function runs (temporary folders, logging, Dask's processes) first.
    An unexpected exception still ends the normal way, with its traceback.
    """
    try:
        app()
    except SystemExit as done:
        _leave(done.code)
    _leave(0)


def _leave(code: object) -> NoReturn:
    import atexit
    import threading

    if code is None:
        status = 0
    elif isinstance(code, int):
        status = code
    else:  # sys.exit("message") prints the message and exits 1
        print(code, file=sys.stderr)
        status = 1
    for thread in threading.enumerate():
        if thread is not threading.main_thread() and not thread.daemon:
            thread.join()
    atexit._run_exitfuncs()
    for stream in (sys.stdout, sys.stderr):
        # A closed pipe (`keel ... | head`) or stream: nothing is left to deliver.
        with contextlib.suppress(OSError, ValueError):
            stream.flush()
    os._exit(status)


if __name__ == "__main__":  # pragma: no cover
    main()
