"""The prediction service on the Adult champion: in-process latency, HTTP latency, throughput and batch rows/s.

Run: uv run python benchmarks/serve.py [--workspace PATH] [--seconds 20]

Everything runs on this machine over loopback (127.0.0.1), one uvicorn worker per server:

- in-process, one record: keel's compiled predictor (validated dict → prediction with warnings) vs
  the fitted ``ColumnTransformer`` + ``proba_from_matrix`` on a one-row DataFrame (the scikit-learn pipeline)
  vs the bare ``lightgbm.Booster.predict`` on a prepared numpy row (with ``num_threads=1``, its fastest call for one
  row and how keel calls it; the default all-core call is shown too). Goals: ≥ 10x faster than the pipeline, ≤ 2x
  the bare booster.
- HTTP, one record, sequential: p50 and p99 of ``keel serve``, and its p50 against an empty FastAPI route (in the
  naive app's process) that reads the body and answers a constant, measured in alternating rounds with the same
  client. Goals: p50 ≤ 1 ms and ≤ 1.5x the empty route's.
- HTTP throughput at concurrency 8 for ``--seconds``: ``keel serve`` vs a naive FastAPI app written below (pydantic
  model → DataFrame → pipeline predict_proba, as common tutorials do) serving the same model. Goal: ≥ 3x.
- HTTP batch of 1,000 records, sequential: rows/s, sent as ``{"records": [...]}`` and as ``{"columns": {...}}``
  (the same rows, one list per field). Goal: ≥ 100,000 rows/s.
- HTTP, one record, sequential, with the prediction log on (``--log-dir``) vs off: p50 of two ``keel serve``
  processes measured in alternating rounds in the same run, and the rows the log holds once the server stops.
  Goal: ≤ 1.2x. ``--only log`` runs just this comparison.

The load generator is a small keep-alive HTTP/1.1 client on raw sockets (8 threads), so that the client costs far
less than the servers it measures. The model comes from ``--workspace`` (or KEEL_WORKSPACE / .keel) when it holds
an ``adult-income`` champion; otherwise one is trained into a temporary workspace first (about a minute).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from fastapi import Request, Response
from pydantic import BaseModel

REFERENCE = "adult-income@champion"
CONCURRENCY = 8
_LENGTH = re.compile(rb"content-length:\s*(\d+)", re.IGNORECASE)


# -- a minimal keep-alive HTTP client ---------------------------------------------------------------------------


class Connection:
    """One keep-alive HTTP/1.1 connection to 127.0.0.1 that sends prepared requests."""

    def __init__(self, port: int) -> None:
        self.sock = socket.create_connection(("127.0.0.1", port))
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.buffer = b""

    def send(self, raw: bytes) -> tuple[int, bytes]:
        self.sock.sendall(raw)
        while b"\r\n\r\n" not in self.buffer:
            chunk = self.sock.recv(65536)
            if not chunk:
                raise ConnectionError("server closed the connection")
            self.buffer += chunk
        head, _, rest = self.buffer.partition(b"\r\n\r\n")
        match = _LENGTH.search(head)
        length = int(match.group(1)) if match else 0
        while len(rest) < length:
            rest += self.sock.recv(65536)
        self.buffer = rest[length:]
        return int(head[9:12]), rest[:length]

    def close(self) -> None:
        self.sock.close()


def post(path: str, document: Any) -> bytes:
    body = json.dumps(document).encode()
    head = (
        f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
        f"Content-Length: {len(body)}\r\n\r\n"
    )
    return head.encode() + body


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_ready(port: int, path: str, process: subprocess.Popen[bytes], timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    raw = f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n".encode()
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise SystemExit(f"a server exited with {process.returncode} before it was ready")
        try:
            connection = Connection(port)
            status, _ = connection.send(raw)
            connection.close()
            if status == 200:
                return
        except OSError:
            pass
        time.sleep(0.2)
    raise SystemExit(f"a server on port {port} was not ready after {timeout:.0f} s")


def sequential(port: int, requests: list[bytes], count: int) -> list[float]:
    connection = Connection(port)
    for raw in requests[:20]:
        connection.send(raw)
    times = []
    for i in range(count):
        started = time.perf_counter()
        status, body = connection.send(requests[i % len(requests)])
        times.append(time.perf_counter() - started)
        if status != 200:
            raise SystemExit(f"HTTP {status}: {body[:300]!r}")
    connection.close()
    return times


def throughput(port: int, requests: list[bytes], seconds: float) -> tuple[float, int]:
    """Requests per second at CONCURRENCY connections, and how many failed."""
    counts = [0] * CONCURRENCY
    failures = [0] * CONCURRENCY
    stop = threading.Event()

    def worker(index: int) -> None:
        connection = Connection(port)
        i = index
        while not stop.is_set():
            status, _ = connection.send(requests[i % len(requests)])
            i += 1
            counts[index] += 1
            failures[index] += status != 200
        connection.close()

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(CONCURRENCY)]
    started = time.perf_counter()
    for thread in threads:
        thread.start()
    time.sleep(seconds)
    stop.set()
    for thread in threads:
        thread.join()
    return sum(counts) / (time.perf_counter() - started), sum(failures)


def columns_of(records: list[dict[str, Any]]) -> dict[str, list[Any]]:
    """The same records as one list per field (what ``DataFrame.to_dict("list")`` gives)."""
    return {name: [record[name] for record in records] for name in records[0]}


def percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(share * len(ordered)))]


def timed(call: Any, count: int) -> float:
    """Median seconds per call."""
    for _ in range(min(10, count)):
        call()
    samples = []
    for _ in range(count):
        started = time.perf_counter()
        call()
        samples.append(time.perf_counter() - started)
    return statistics.median(samples)


# -- the naive baseline service ---------------------------------------------------------------------------------


class Person(BaseModel):
    """One Adult record, as a tutorial would declare it."""

    age: float
    workclass: str | None = None
    fnlwgt: float
    education: str
    education_num: float
    marital_status: str
    occupation: str | None = None
    relationship: str
    race: str
    sex: str
    capital_gain: float
    capital_loss: float
    hours_per_week: float
    native_country: str | None = None


def pipeline_proba(model: Any, frame: Any) -> Any:
    """The fitted scikit-learn pipeline's own answer: its ``ColumnTransformer``, then the booster.

    (keel's ``FittedModel.predict_proba`` runs a compiled encoding instead of the ``ColumnTransformer``; the
    baselines are what a hand-written service would call.)
    """
    return model.proba_from_matrix(fitted_pipeline(model).transform(frame))


def fitted_pipeline(model: Any) -> Any:
    """The scikit-learn ``ColumnTransformer`` the model was trained with.

    A LightGBM version stores its pipeline compiled (``encoding.json``), not as the fitted object; the same
    ``ColumnTransformer`` is rebuilt from it (an ``OrdinalEncoder`` with the stored categories, numbers passed
    through), which gives the same matrix.
    """
    if model.preprocessor is not None:
        return model.preprocessor
    if "pipeline" not in model.__dict__:
        import numpy as np
        import pandas as pd
        from sklearn.compose import ColumnTransformer
        from sklearn.preprocessing import OrdinalEncoder

        from keel.domain.encoding import categories_in_code_order

        categorical = [c for c in model.encoding if c.codes is not None]
        numeric = [c.name for c in model.encoding if c.codes is None]
        categories = [
            np.asarray([np.nan if v is None else v for v in categories_in_code_order(c)], dtype=object)
            for c in categorical
        ]
        encoder = OrdinalEncoder(
            categories=categories,
            handle_unknown="use_encoded_value",
            unknown_value=np.nan,
            encoded_missing_value=np.nan,
        )
        pipeline = ColumnTransformer(
            [("categorical", encoder, [c.name for c in categorical]), ("numeric", "passthrough", numeric)]
        )
        model.__dict__["pipeline"] = pipeline.fit(pd.DataFrame([model.schema.example]))
    return model.__dict__["pipeline"]


def naive_app(workspace: str) -> Any:
    """The pattern common tutorials use: a pydantic model, a DataFrame per request, the pipeline's predict_proba."""
    import pandas as pd
    from fastapi import FastAPI

    from keel.application.models import load_version
    from keel.io.registry import Registry

    model = load_version(Registry.open(workspace), REFERENCE).loaded.model

    app = FastAPI()

    @app.post("/predict")
    def predict(person: Person) -> dict[str, Any]:
        frame = pd.DataFrame([person.model_dump()])
        probability = float(pipeline_proba(model, frame)[0, 1])
        return {"label": model.classes[int(probability >= 0.5)], "probability": probability}

    @app.get("/health")
    def health() -> dict[str, str]:
        return {"status": "alive"}

    @app.post("/empty")
    async def empty(request: Request) -> Response:
        """The floor of the HTTP path: FastAPI reads the body and answers a constant, no parsing, no model."""
        await request.body()
        return Response(b'{"ok":true}', media_type="application/json")

    return app


def run_naive(workspace: str, port: int) -> None:
    import uvicorn

    uvicorn.run(naive_app(workspace), host="127.0.0.1", port=port, access_log=False, log_level="warning")


# -- the measurements -------------------------------------------------------------------------------------------


def find_workspace(given: str | None) -> tuple[str, str | None]:
    """A workspace with an Adult champion, and a temporary folder to delete afterwards (if one was trained)."""
    from keel.errors import KeelError
    from keel.io.registry import Registry

    registry = Registry.open(given)
    try:
        if registry.exists() and registry.alias_version("adult-income", "champion") is not None:
            return str(registry.workspace), None
    except KeelError:
        pass
    temporary = tempfile.mkdtemp(prefix="keel-bench-serve-")
    workspace = str(Path(temporary) / "workspace")
    print(f"no Adult champion in {registry.workspace}; training one into {workspace} …", file=sys.stderr)
    env = {**os.environ, "KEEL_WORKSPACE": workspace}
    subprocess.run([sys.executable, "-m", "keel", "train", "-q"], env=env, check=True, stdout=subprocess.DEVNULL)
    return workspace, temporary


@dataclass
class Servers:
    """``keel serve`` and the naive app, each one uvicorn process on a loopback port."""

    keel: subprocess.Popen[bytes]
    keel_port: int
    naive: subprocess.Popen[bytes]
    naive_port: int

    def stop(self) -> None:
        for process in (self.keel, self.naive):
            process.terminate()
            process.wait(timeout=30)


@dataclass
class Row:
    """One line of the table."""

    measure: str
    keel: str
    baseline: str
    ratio: str = ""
    goal: str = ""
    met: bool = True


def us(seconds: float) -> str:
    return f"{seconds * 1e6:,.0f} µs"


def ms(seconds: float) -> str:
    return f"{seconds * 1e3:.2f} ms"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workspace", help="Workspace holding adult-income@champion (default: KEEL_WORKSPACE/.keel)")
    parser.add_argument("--seconds", type=float, default=20.0, help="Duration of each throughput run")
    parser.add_argument("--only", choices=["log"], help="Run only one comparison (log: prediction log on vs off)")
    parser.add_argument("--naive-server", nargs=2, metavar=("WORKSPACE", "PORT"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.naive_server:
        run_naive(args.naive_server[0], int(args.naive_server[1]))
        return
    began = time.perf_counter()
    workspace, temporary = find_workspace(args.workspace)
    try:
        rows = measure_log(workspace) if args.only == "log" else measure(workspace, args.seconds)
    finally:
        if temporary:
            shutil.rmtree(temporary, ignore_errors=True)
    print_table(rows, time.perf_counter() - began)


def adult_records(model: Any, count: int = 2000) -> list[dict[str, Any]]:
    """Rows of the Adult test file as JSON-ready records of the model's features."""
    import numpy as np

    from keel.config import load_config
    from keel.io.sources import resolve_source
    from keel.io.tables import read_table

    config = load_config().config
    assert config.data.test is not None
    frame = read_table(resolve_source(config.data.test).path, csv=config.data.test.csv)
    records = []
    for row in frame[model.schema.feature_names].head(count).to_dict("records"):
        records.append(
            {
                k: None if isinstance(v, float) and np.isnan(v) else getattr(v, "item", lambda v=v: v)()
                for k, v in row.items()
            }
        )
    return records


def start_keel(env: dict[str, str], port: int, *extra: str) -> subprocess.Popen[bytes]:
    command = [sys.executable, "-m", "keel", "serve", "--port", str(port), "--no-access-log", "--poll-interval", "0"]
    return subprocess.Popen([*command, *extra], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def measure_log(workspace: str, rounds: int = 8, per_round: int = 400) -> list[Row]:
    """Single-record p50 with the prediction log on vs off: two servers, alternating rounds, one run."""
    import pandas as pd

    from keel.application.models import load_version
    from keel.io.registry import Registry

    env = {k: v for k, v in os.environ.items() if k != "KEEL_API_KEYS"}
    env["KEEL_WORKSPACE"] = workspace
    model = load_version(Registry.open(workspace), REFERENCE).loaded.model
    singles = [post("/v1/predict", r) for r in adult_records(model, 500)]
    log_dir = Path(tempfile.mkdtemp(prefix="keel-bench-log-"))
    off_port, on_port = free_port(), free_port()
    off = start_keel(env, off_port)
    on = start_keel(env, on_port, "--log-dir", str(log_dir))
    try:
        wait_ready(off_port, "/ready", off)
        wait_ready(on_port, "/ready", on)
        off_times: list[float] = []
        on_times: list[float] = []
        for _ in range(rounds):
            off_times += sequential(off_port, singles, per_round)
            on_times += sequential(on_port, singles, per_round)
    finally:
        for process in (off, on):
            process.terminate()
            process.wait(timeout=60)
    sent = rounds * (per_round + 20)  # sequential() warms up with 20 requests per round
    logged = len(pd.read_parquet(log_dir)) if any(log_dir.glob("part-*.parquet")) else 0
    shutil.rmtree(log_dir, ignore_errors=True)
    p50_off, p50_on = percentile(off_times, 0.5), percentile(on_times, 0.5)
    p99_off, p99_on = percentile(off_times, 0.99), percentile(on_times, 0.99)
    return [
        Row("HTTP 1 record sequential p50: prediction log on vs off", ms(p50_on), f"off {ms(p50_off)}",
            f"{p50_on / p50_off:.2f}x its time", "≤ 1.2x", p50_on / p50_off <= 1.2),
        Row("  p99: prediction log on vs off", ms(p99_on), f"off {ms(p99_off)}", f"{p99_on / p99_off:.2f}x its time"),
        Row("  records in the log after the server stopped", f"{logged:,}", f"{sent:,} answered",
            "", "all", logged == sent),
    ]  # fmt: skip


def measure(workspace: str, seconds: float) -> list[Row]:
    env = {k: v for k, v in os.environ.items() if k != "KEEL_API_KEYS"}
    env["KEEL_WORKSPACE"] = workspace

    def start_servers() -> Servers:
        keel_port, naive_port = free_port(), free_port()
        keel = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "keel",
                "serve",
                "--port",
                str(keel_port),
                "--no-access-log",
                "--poll-interval",
                "0",
            ],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        naive = subprocess.Popen(
            [sys.executable, __file__, "--naive-server", workspace, str(naive_port)],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        return Servers(keel, keel_port, naive, naive_port)

    import pandas as pd

    from keel.application.models import load_version
    from keel.io.registry import Registry
    from keel.serving.predictor import Predictor

    model = load_version(Registry.open(workspace), REFERENCE).loaded.model
    predictor = Predictor(model)
    records = adult_records(model)
    record = dict(model.schema.example)
    one = [record]
    one_row = pd.DataFrame([record])
    matrix = predictor.encode(one)
    booster = model.estimator

    keel_s = timed(lambda: predictor.predict(one), 3000)
    pipeline_s = timed(lambda: pipeline_proba(model, one_row), 100)
    booster_s = timed(lambda: booster.predict(matrix), 300)
    booster1_s = timed(lambda: booster.predict(matrix, num_threads=1), 3000)
    thousand = predictor.encode(records[:1000])
    batch_in_process_s = timed(lambda: predictor.predict(records[:1000]), 20)
    batch_booster_s = timed(lambda: booster.predict(thousand, num_threads=1), 20)

    servers = start_servers()
    try:
        wait_ready(servers.keel_port, "/ready", servers.keel)
        wait_ready(servers.naive_port, "/health", servers.naive)
        singles = [post("/v1/predict", r) for r in records[:500]]
        naive_singles = [post("/predict", r) for r in records[:500] if None not in r.values()]
        naive_latencies = sequential(servers.naive_port, naive_singles, 300)
        empty_singles = [post("/empty", r) for r in records[:500]]
        # Interleaved rounds, so both see the same machine: keel's route, then the empty route, and again.
        latencies, empty_latencies = [], []
        for _ in range(6):
            latencies += sequential(servers.keel_port, singles, 500)
            empty_latencies += sequential(servers.naive_port, empty_singles, 500)
        batches = [post("/v1/predict", {"records": records[:1000]}), post("/v1/predict", {"records": records[1000:]})]
        batch_s = statistics.median(sequential(servers.keel_port, batches, 60))
        tables = [post("/v1/predict", {"columns": columns_of(part)}) for part in (records[:1000], records[1000:])]
        columns_s = statistics.median(sequential(servers.keel_port, tables, 60))
        keel_rps, keel_failed = throughput(servers.keel_port, singles, seconds)
        naive_rps, naive_failed = throughput(servers.naive_port, naive_singles, seconds)
    finally:
        servers.stop()
    log_rows = measure_log(workspace)
    if keel_failed or naive_failed:
        raise SystemExit(f"failed requests under load: keel {keel_failed}, naive {naive_failed}")
    p50, p99 = percentile(latencies, 0.5), percentile(latencies, 0.99)
    naive_p50, naive_p99 = percentile(naive_latencies, 0.5), percentile(naive_latencies, 0.99)
    empty_p50 = percentile(empty_latencies, 0.5)
    return [
        Row("in-process, 1 record: keel vs pipeline", us(keel_s), us(pipeline_s),
            f"{pipeline_s / keel_s:.1f}x faster", "≥ 10x", pipeline_s / keel_s >= 10),
        Row("in-process, 1 record: keel vs bare booster (num_threads=1)", us(keel_s), us(booster1_s),
            f"{keel_s / booster1_s:.2f}x its time", "≤ 2x", keel_s / booster1_s <= 2),
        Row("  bare booster, default call (all cores)", us(keel_s), us(booster_s),
            f"{keel_s / booster_s:.2f}x its time"),
        Row("HTTP 1 record sequential: p50", ms(p50), f"naive {ms(naive_p50)}",
            f"{naive_p50 / p50:.1f}x faster", "≤ 1 ms", p50 <= 0.001),
        Row("HTTP 1 record sequential: p50 vs an empty FastAPI route", ms(p50), f"empty {ms(empty_p50)}",
            f"{p50 / empty_p50:.2f}x its time", "≤ 1.5x", p50 / empty_p50 <= 1.5),
        Row("HTTP 1 record sequential: p99", ms(p99), f"naive {ms(naive_p99)}", f"{naive_p99 / p99:.1f}x faster"),
        Row(f"HTTP throughput, concurrency {CONCURRENCY}, {seconds:.0f} s", f"{keel_rps:,.0f} req/s",
            f"naive {naive_rps:,.0f} req/s", f"{keel_rps / naive_rps:.1f}x", "≥ 3x", keel_rps / naive_rps >= 3),
        Row("HTTP batch of 1,000 records as records", f"{1000 / batch_s:,.0f} rows/s", f"{ms(batch_s)} per request",
            "", "≥ 100,000 rows/s", 1000 / batch_s >= 100_000),
        Row("HTTP batch of 1,000 records as columns", f"{1000 / columns_s:,.0f} rows/s",
            f"{ms(columns_s)} per request", f"{batch_s / columns_s:.2f}x records", "≥ 100,000 rows/s",
            1000 / columns_s >= 100_000),
        Row("  in-process batch of 1,000 vs the bare booster on them", f"{1000 / batch_in_process_s:,.0f} rows/s",
            f"{1000 / batch_booster_s:,.0f} rows/s", f"{batch_in_process_s / batch_booster_s:.2f}x its time"),
        *log_rows,
    ]  # fmt: skip


def print_table(rows: list[Row], elapsed: float) -> None:
    headers = ("measure", "keel", "baseline", "ratio", "goal", "met")
    table = [
        headers,
        *[(r.measure, r.keel, r.baseline, r.ratio, r.goal, ("yes" if r.met else "NO") if r.goal else "") for r in rows],
    ]
    widths = [max(len(row[i]) for row in table) for i in range(len(headers))]
    print(f"keel serve benchmark: Adult champion, {os.cpu_count()} cores, loopback, one uvicorn worker per server")
    for index, row in enumerate(table):
        print("  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip())
        if index == 0:
            print("  ".join("-" * width for width in widths))
    print(f"(ran in {elapsed:.0f} s; load average {os.getloadavg()[0]:.1f})")


if __name__ == "__main__":
    main()
