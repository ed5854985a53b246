"""The main job's LightGBM fit alone and beside a second one, under OpenMP's default and passive wait policies.

Run: uv run python benchmarks/contention.py [--fits N]

Each measurement is a fresh process (the wait policy is read when OpenMP loads) that prepares the embedded Adult
data as `keel train` does and times N fits of its LightGBM model (median). "Alone" runs one such process; "two at
once" starts two together, as two `keel` commands on one machine would be. The README's section on sharing the
cores quotes these figures: with the default policy, OpenMP threads spin at every barrier, and two jobs that each
use every core keep descheduling the thread the other is waiting for.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys

from machine import bytecode_note, user_env

FIT = r"""
import statistics, sys, time
from keel.application.engines import LocalEngine
from keel.application.prepare import prepare
from keel.application.progress import SilentReporter
from keel.config import load_config
loaded = load_config([], [])
prepared = prepare(loaded, SilentReporter())
seconds = []
for _ in range(int(sys.argv[1])):
    started = time.perf_counter()
    LocalEngine().fit(loaded, prepared)
    seconds.append(time.perf_counter() - started)
print(statistics.median(seconds))
"""

POLICIES = {"default": {}, "OMP_WAIT_POLICY=PASSIVE": {"OMP_WAIT_POLICY": "PASSIVE"}}


LIMIT = 120.0
"""Seconds a process may take; one still fitting then is killed and reported as taking longer (`inf`)."""


def fits(count: int, processes: int, policy: dict[str, str]) -> list[float]:
    """The median fit seconds of each of ``processes`` processes started together (``inf``: over :data:`LIMIT`)."""
    env = user_env(**policy)
    for name in ("OMP_NUM_THREADS", "OMP_WAIT_POLICY", "GOMP_SPINCOUNT"):
        if name not in policy:
            env.pop(name, None)
    started = [
        subprocess.Popen([sys.executable, "-c", FIT, str(count)], stdout=subprocess.PIPE, text=True, env=env)
        for _ in range(processes)
    ]
    found = []
    for process in started:
        try:
            found.append(float(process.communicate(timeout=LIMIT)[0]))
        except subprocess.TimeoutExpired:
            process.kill()
            process.communicate()
            found.append(float("inf"))
    return found


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--fits", type=int, default=3, help="fits timed in each process (median reported)")
    parser.add_argument("--runs", type=int, default=3, help="processes for the 'alone' figure (median reported)")
    args = parser.parse_args()
    load = os.getloadavg()[0]
    rows = []
    for name, policy in POLICIES.items():
        alone = statistics.median(fits(args.fits, 1, policy)[0] for _ in range(args.runs))
        pair = fits(args.fits, 2, policy)
        rows.append((name, alone, pair))
    print(f"{'wait policy':<26}{'alone (s)':>10}{'two at once (s)':>20}{'ratio':>8}")
    for name, alone, pair in rows:
        both = " and ".join(f"{p:.2f}" if p < LIMIT else f"> {LIMIT:.0f}" for p in pair)
        print(f"{name:<26}{alone:>10.2f}{both:>20}{max(pair) / alone:>7.1f}×")
    print(
        f"\nAdult's LightGBM fit as `keel train` makes it; medians of {args.fits} fits per process; {os.cpu_count()} "
        f"cores; load average {load:.1f} at the start, {os.getloadavg()[0]:.1f} at the end; {bytecode_note()}."
    )


if __name__ == "__main__":
    main()
