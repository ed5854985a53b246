"""Single-record latency of `keel serve` while maximal explain requests run, against the same stream idle.

Run: uv run python benchmarks/explain.py [--requests N] [--workspace DIR]

One `keel serve` (one worker, the default --max-explain-records 100) on a loopback port with the Adult champion.
First a stream of single-record requests alone (idle p50/p99), then the same stream while another connection sends
`?explain=true` requests of the largest size the service accepts, back to back. The goal: p99 under load ≤ 3× the
idle p99. It also checks that one record more than the limit is refused (422). A workspace holding an Adult
champion is used when given (or in KEEL_WORKSPACE); otherwise one is trained first.
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import shutil
import statistics
import subprocess
import sys
import threading
import time

from machine import bytecode_note, user_env
from startup import free_port, workspace_with_champion

LIMIT = 100


def post(connection: http.client.HTTPConnection, path: str, body: bytes) -> tuple[int, bytes]:
    connection.request("POST", path, body=body, headers={"Content-Type": "application/json"})
    response = connection.getresponse()
    return response.status, response.read()


def stream(port: int, body: bytes, count: int) -> list[float]:
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
    times = []
    for _ in range(count):
        started = time.perf_counter()
        status, _ = post(connection, "/v1/predict", body)
        times.append(time.perf_counter() - started)
        if status != 200:
            raise SystemExit(f"a single-record request was answered {status}")
    connection.close()
    return times


def percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(share * len(ordered)))]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=1000, help="single-record requests per stream")
    parser.add_argument("--workspace", help="a workspace holding an Adult champion [default: train one]")
    args = parser.parse_args()
    workspace, temporary = workspace_with_champion(args.workspace)
    env = user_env(KEEL_WORKSPACE=str(workspace))
    env.pop("MLFLOW_TRACKING_URI", None)
    env.pop("KEEL_API_KEYS", None)
    port = free_port()
    command = [sys.executable, "-m", "keel", "serve", "--port", str(port), "--no-access-log", "--poll-interval", "0"]
    process = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 180
        while True:
            try:
                connection = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
                connection.request("GET", "/v1/model")
                response = connection.getresponse()
                model = json.loads(response.read())
                if response.status == 200:
                    break
            except (OSError, ValueError):
                pass
            if time.monotonic() > deadline or process.poll() is not None:
                raise SystemExit("keel serve did not become ready")
            time.sleep(0.2)
        example = model["feature_schema"]["example"]
        single = json.dumps(example).encode()
        explain = json.dumps({"records": [example] * LIMIT}).encode()
        over = json.dumps({"records": [example] * (LIMIT + 1)}).encode()
        control = http.client.HTTPConnection("127.0.0.1", port, timeout=120)
        refused, _ = post(control, "/v1/predict?explain=true", over)
        started = time.perf_counter()
        accepted, _ = post(control, "/v1/predict?explain=true", explain)
        one_explain = time.perf_counter() - started
        stream(port, single, 100)  # warm-up
        idle = stream(port, single, args.requests)
        stop = threading.Event()
        explained = [0]

        def explain_loop() -> None:
            connection = http.client.HTTPConnection("127.0.0.1", port, timeout=120)
            while not stop.is_set():
                post(connection, "/v1/predict?explain=true", explain)
                explained[0] += 1
            connection.close()

        thread = threading.Thread(target=explain_loop, daemon=True)
        thread.start()
        busy = stream(port, single, args.requests)
        stop.set()
        thread.join(timeout=120)
    finally:
        process.terminate()
        process.wait(timeout=30)
        if temporary is not None:
            shutil.rmtree(temporary, ignore_errors=True)
    idle_p99, busy_p99 = percentile(idle, 0.99), percentile(busy, 0.99)
    print(
        f"explain request of {LIMIT} records: HTTP {accepted} in {one_explain * 1000:.0f} ms; "
        f"of {LIMIT + 1} records: HTTP {refused}"
    )
    print(f"{'single record':<40}{'p50 ms':>9}{'p99 ms':>9}")
    print(f"{'idle':<40}{statistics.median(idle) * 1000:>9.2f}{idle_p99 * 1000:>9.2f}")
    label = f"while explain requests run ({explained[0]} sent)"
    print(f"{label:<40}{statistics.median(busy) * 1000:>9.2f}{busy_p99 * 1000:>9.2f}")
    print(
        f"p99 ratio {busy_p99 / idle_p99:.2f}× (goal ≤ 3×); {args.requests} requests per stream; "
        f"{os.cpu_count()} cores; load average {os.getloadavg()[0]:.1f} at the end; {bytecode_note()}"
    )


if __name__ == "__main__":
    main()
