"""Sustained load on `keel serve`: failed requests, latency, throughput and server memory, with 1 and 2 workers.

Run: uv run python benchmarks/load.py [--workspace PATH] [--seconds 60] [--concurrency 32] [--workers 1 2]

For each worker count a real `keel serve` is started on a free 127.0.0.1 port, and a separate client process sends
single-record ``POST /v1/predict`` requests from ``--concurrency`` keep-alive connections for ``--seconds`` (a
bounded loop: it stops by itself at the deadline, then waits for the requests in flight). The client is asyncio on
raw sockets (HTTP/1.1), so it costs far less CPU than the server it measures. Reported per run:

- failed requests: any answer other than 200, and any connection error or timeout (goal: 0);
- p50 / p99 latency and requests/s as the client saw them;
- the server's resident memory (RSS, summed over the uvicorn process and its workers) after warm-up and at the end
  (goal: growth ≤ 10 %).

The model is ``adult-income@champion`` from ``--workspace`` (or KEEL_WORKSPACE / .keel); when there is none, one is
trained into a temporary workspace first. Only loopback is ever contacted.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path
from typing import Any

HOST = "127.0.0.1"
_LENGTH = re.compile(rb"content-length:\s*(\d+)", re.IGNORECASE)


# -- the client (runs in its own process) -----------------------------------------------------------------------


async def _connection_loop(
    port: int, request: bytes, deadline: float, latencies: list[float], errors: list[str]
) -> None:
    reader: asyncio.StreamReader | None = None
    writer: asyncio.StreamWriter | None = None
    while time.monotonic() < deadline:
        try:
            if writer is None:
                reader, writer = await asyncio.wait_for(asyncio.open_connection(HOST, port), 10)
            assert reader is not None
            started = time.perf_counter()
            writer.write(request)
            head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 30)
            match = _LENGTH.search(head)
            body = await asyncio.wait_for(reader.readexactly(int(match.group(1)) if match else 0), 30)
            latencies.append(time.perf_counter() - started)
            status = int(head[9:12])
            if status != 200:
                errors.append(f"HTTP {status}: {body[:200]!r}")
            if b"connection: close" in head.lower():
                writer.close()
                writer = None
        except (TimeoutError, OSError, asyncio.IncompleteReadError, asyncio.LimitOverrunError) as error:
            errors.append(f"{type(error).__name__}: {error}")
            if writer is not None:
                writer.close()
            writer = None
    if writer is not None:
        writer.close()


async def _drive(port: int, record: dict[str, Any], seconds: float, concurrency: int) -> dict[str, Any]:
    body = json.dumps(record).encode()
    request = (
        f"POST /v1/predict HTTP/1.1\r\nHost: {HOST}\r\nContent-Type: application/json\r\n"
        f"Content-Length: {len(body)}\r\n\r\n"
    ).encode() + body
    latencies: list[float] = []
    errors: list[str] = []
    started = time.monotonic()
    deadline = started + seconds
    await asyncio.gather(*(_connection_loop(port, request, deadline, latencies, errors) for _ in range(concurrency)))
    elapsed = time.monotonic() - started
    latencies.sort()

    def quantile(q: float) -> float:
        return latencies[min(len(latencies) - 1, int(q * len(latencies)))] * 1000 if latencies else float("nan")

    return {
        "requests": len(latencies) + sum(1 for e in errors if not e.startswith("HTTP")),
        "failed": len(errors),
        "errors": sorted(set(errors))[:5],
        "p50_ms": quantile(0.50),
        "p99_ms": quantile(0.99),
        "rps": len(latencies) / elapsed,
        "seconds": elapsed,
    }


def client_main(port: int, seconds: float, concurrency: int) -> None:
    """Entry point of the client process: prints one JSON line of results."""
    with urllib.request.urlopen(f"http://{HOST}:{port}/v1/model", timeout=30) as answer:
        record = json.load(answer)["feature_schema"]["example"]
    result = asyncio.run(_drive(port, record, seconds, concurrency))
    sys.stdout.write(json.dumps(result) + "\n")


# -- the driver -------------------------------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind((HOST, 0))
        return int(sock.getsockname()[1])


def rss_bytes(pid: int) -> int:
    """Resident memory of ``pid`` and all its descendants (Linux /proc)."""
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            children.setdefault(int(fields[1]), []).append(int(entry.name))
    total, stack = 0, [pid]
    while stack:
        current = stack.pop()
        stack.extend(children.get(current, []))
        try:
            for line in Path(f"/proc/{current}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    total += int(line.split()[1]) * 1024
        except OSError:
            continue
    return total


def wait_ready(port: int, process: subprocess.Popen[bytes], workers: int, timeout: float = 240) -> None:
    """Until ``/ready`` answers 200 (and, with several workers, every worker has loaded the model)."""
    deadline = time.monotonic() + timeout
    ready = 0
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise SystemExit(f"keel serve exited with {process.returncode} before it was ready")
        try:
            with urllib.request.urlopen(f"http://{HOST}:{port}/ready", timeout=5) as answer:
                ready += answer.status == 200
        except OSError:
            ready = 0
        if ready >= 4 * workers:
            return
        time.sleep(0.25)
    raise SystemExit(f"keel serve was not ready within {timeout:.0f} s")


def ensure_workspace(workspace: Path | None) -> tuple[Path, Path | None]:
    """A workspace with an ``adult-income`` champion, and a temporary folder to delete afterwards (if one was made)."""
    from keel.io.registry import Registry

    registry = Registry.open(workspace)
    if registry.exists() and registry.alias_version("adult-income", "champion") is not None:
        return registry.workspace, None
    temporary = Path(tempfile.mkdtemp(prefix="keel-load-"))
    print(f"no adult-income champion in {registry.workspace}; training one into {temporary} …", flush=True)
    env = {**os.environ, "KEEL_WORKSPACE": str(temporary / "workspace")}
    subprocess.run([sys.executable, "-m", "keel", "train", "--quiet"], env=env, check=True)
    return temporary / "workspace", temporary


def run_once(workspace: Path, workers: int, seconds: float, concurrency: int, warmup: float) -> dict[str, Any]:
    """Serve with ``workers`` workers, warm up, then load it from a separate client process."""
    port = free_port()
    env = {k: v for k, v in os.environ.items() if k not in ("KEEL_API_KEYS", "KEEL_API_KEYS_FILE")}
    env["KEEL_WORKSPACE"] = str(workspace)
    command = [sys.executable, "-m", "keel", "serve", "--host", HOST, "--port", str(port)]
    command += ["--workers", str(workers), "--poll-interval", "0", "--no-access-log"]
    with tempfile.TemporaryFile() as log:
        server = subprocess.Popen(command, env=env, stdout=log, stderr=subprocess.STDOUT)
        try:
            wait_ready(port, server, workers)
            client = [sys.executable, __file__, "--client", str(port), "--concurrency", str(concurrency)]
            subprocess.run([*client, "--seconds", str(warmup)], check=True, capture_output=True, timeout=warmup + 120)
            rss_start = rss_bytes(server.pid)
            finished = subprocess.run(
                [*client, "--seconds", str(seconds)], check=True, capture_output=True, text=True, timeout=seconds + 120
            )
            rss_end = rss_bytes(server.pid)
            result = json.loads(finished.stdout.strip().splitlines()[-1])
        finally:
            server.terminate()
            try:
                server.wait(timeout=30)
            except subprocess.TimeoutExpired:
                server.kill()
                server.wait()
            log.seek(0)
            output = log.read().decode(errors="replace")
    if "Traceback" in output:
        print(output[-3000:], file=sys.stderr)
    return {
        "workers": workers,
        "rss_start": rss_start,
        "rss_end": rss_end,
        "tracebacks": output.count("Traceback"),
        **result,
    }


def print_table(rows: list[dict[str, Any]], seconds: float, concurrency: int) -> None:
    print(f"\nkeel serve, adult-income, single-record POST /v1/predict, {seconds:.0f} s at concurrency {concurrency}")
    header = ("workers", "requests", "failed", "p50 ms", "p99 ms", "req/s", "RSS start MB", "RSS end MB", "growth")
    print("| " + " | ".join(header) + " |")
    print("|" + "|".join("---:" for _ in header) + "|")
    for row in rows:
        growth = (row["rss_end"] - row["rss_start"]) / row["rss_start"] * 100
        cells = (
            str(row["workers"]),
            f"{row['requests']:,}",
            str(row["failed"]),
            f"{row['p50_ms']:.2f}",
            f"{row['p99_ms']:.2f}",
            f"{row['rps']:,.0f}",
            f"{row['rss_start'] / 2**20:.0f}",
            f"{row['rss_end'] / 2**20:.0f}",
            f"{growth:+.1f} %",
        )
        print("| " + " | ".join(cells) + " |")
    for row in rows:
        if row["errors"]:
            print(f"workers={row['workers']}: first errors: {row['errors']}")
    print(f"(machine: {os.cpu_count()} cores, load average {os.getloadavg()[0]:.1f} at the end; shared, so noisy)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workspace", type=Path, default=None)
    parser.add_argument("--seconds", type=float, default=60.0)
    parser.add_argument("--warmup", type=float, default=5.0)
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--client", type=int, default=None, help=argparse.SUPPRESS)  # the client process's port
    parser.add_argument("--json", action="store_true", help="Also print the results as JSON.")
    args = parser.parse_args()
    if args.client is not None:
        client_main(args.client, args.seconds, args.concurrency)
        return
    workspace, temporary = ensure_workspace(args.workspace)
    try:
        rows = [run_once(workspace, n, args.seconds, args.concurrency, args.warmup) for n in args.workers]
    finally:
        if temporary is not None:
            shutil.rmtree(temporary, ignore_errors=True)
    print_table(rows, args.seconds, args.concurrency)
    if args.json:
        print(json.dumps(rows, indent=2))
    if any(row["failed"] or row["tracebacks"] for row in rows):
        raise SystemExit(1)


if __name__ == "__main__":
    main()
