"""``python -m benchmarks`` (``make bench``): every benchmark, then the curves, charts and README figures.

Each benchmark runs in its own process (its own broker, its own apps), in this
order, with about how long it takes on a 2-core machine:

1. benchmarks.messaging          single node: apps.send / apps.receive against their baselines (~4 min)
2. benchmarks.messaging_scaling  1, 2, 4 send and receive processes on one queue (~2 min)
3. benchmarks.portal             8, 32, 128 clients on the portal page and API (~1 min)
4. benchmarks.plan               offline plan of 10, 50, 100 ContainerServices (~2-3 min)
5. benchmarks.cluster            one node vs a three-node cluster, fail-over (~2 min)
6. benchmarks.report             build/bench/scaling.json, charts, docs/performance/

A benchmark that misses a target exits 1; the others still run, and the
figures still go to the report (a missed target is a result too). A benchmark
that fails (any other exit code) keeps the report from being written, so the
README never mixes figures of different runs. Exits 1 if any target was
missed, 2 if a benchmark failed.

``--only messaging,portal`` runs a subset (then no report unless ``report`` is listed).
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import time

from devtools.procs import REPO_ROOT

STEPS = ("messaging", "messaging_scaling", "portal", "plan", "cluster")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks", description=__doc__.split("\n\n")[0])
    parser.add_argument("--only", help=f"comma-separated subset of {', '.join(STEPS)}, report")
    args = parser.parse_args(argv)
    chosen = args.only.split(",") if args.only else [*STEPS, "report"]
    unknown = set(chosen) - {*STEPS, "report"}
    if unknown:
        parser.error(f"unknown benchmark(s): {', '.join(sorted(unknown))}")
    started = time.monotonic()
    outcome: dict[str, int] = {}
    for step in (s for s in STEPS if s in chosen):
        print(f"\n==> benchmarks.{step}   [{time.monotonic() - started:4.0f} s so far]", flush=True)
        outcome[step] = subprocess.run([sys.executable, "-m", f"benchmarks.{step}"], cwd=REPO_ROOT).returncode
    failed = [step for step, code in outcome.items() if code not in (0, 1)]
    missed = [step for step, code in outcome.items() if code == 1]
    if "report" in chosen:
        if failed:
            print(f"\nnot writing the report: {', '.join(failed)} failed (its figures would be stale)")
        else:
            print("\n==> benchmarks.report", flush=True)
            if subprocess.run([sys.executable, "-m", "benchmarks.report"], cwd=REPO_ROOT).returncode != 0:
                failed.append("report")
    print(f"\nbenchmarks done in {time.monotonic() - started:.0f} s", end="")
    print(f"; targets missed in: {', '.join(missed)}" if missed else "; every target met", end="")
    print(f"; FAILED: {', '.join(failed)}" if failed else "")
    return 2 if failed else 1 if missed else 0


if __name__ == "__main__":
    sys.exit(main())
