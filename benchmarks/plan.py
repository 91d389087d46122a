"""How the offline plan's time grows with the program: 10, 50 and 100 ContainerServices.

``python -m benchmarks.plan`` (``make bench``) plans a benchmark program made
of the components, a ``Network``, an ``EcsCluster`` and N ``ContainerService``s
on it (each with its log group, roles, task definition and ECS service), with
``seaport.tools.testing.run``: what ``make plan`` and users' unit tests do,
under seaport's mocks. Each N runs in a fresh Python process that first plans a
one-service program (imports and caches warm, as in a test session), then
times ``--repeat`` plans of N services and keeps the median.

Reported per N: seconds (wall clock) and CPU seconds of the planning process
(less disturbed by whatever else runs on the machine), resources, milliseconds
per resource; and a least-squares line through the points (seconds = fixed +
per-resource x resources): if the cost stays linear, every point is close to
the line and the per-resource cost at 100 services is close to the one at 10
(``per_resource_growth``, 1.0 when exactly linear; ``cpu_per_resource_growth``
the same in CPU time).

Writes build/bench/plan.json; it has no target, so it exits 0 unless a plan fails.
"""

from __future__ import annotations

import argparse
import gc
import json
import statistics
import subprocess
import sys
import time
from pathlib import Path

from benchmarks.common import BENCH_DIR, machine, now_utc, write_report
from devtools.procs import REPO_ROOT, child_env

SERVICES = (10, 50, 100)
IMAGE = "public.ecr.aws/nginx/nginx@sha256:" + "0" * 64


def program(services: int):
    """The benchmark program: one network, one cluster, ``services`` ContainerServices on it."""

    def body() -> None:
        from seaport import ContainerService, EcsCluster, Network

        network = Network("bench", {})
        cluster = EcsCluster("bench", {"network": network.reference})
        for index in range(services):
            ContainerService(
                f"svc{index}",
                {"cluster": cluster.reference, "container": {"image": IMAGE, "port": 8080}},
            )

    return body


def time_plans(services: int, repeat: int) -> dict:
    """In this process: warm up, then the median of ``repeat`` timed plans of ``services`` services."""
    from seaport.tools.testing import run

    run(program(1))
    seconds, cpu_seconds = [], []
    resources = 0
    for _ in range(repeat):
        gc.collect()  # each plan starts from the same heap, not from the previous plan's garbage
        started, cpu_started = time.perf_counter(), time.process_time()
        plan = run(program(services))
        cpu_seconds.append(time.process_time() - cpu_started)
        seconds.append(time.perf_counter() - started)
        resources = len(plan.resources)
    return {
        "services": services,
        "resources": resources,
        "seconds": statistics.median(seconds),
        "cpu_seconds": statistics.median(cpu_seconds),
        "runs": seconds,
    }


def measure(services: int, repeat: int) -> dict:
    """``time_plans`` in a fresh interpreter (nothing left over from other sizes)."""
    output = subprocess.run(
        [sys.executable, "-m", "benchmarks.plan", "--one", str(services), "--repeat", str(repeat)],
        cwd=REPO_ROOT,
        env=child_env(),
        capture_output=True,
        text=True,
        check=True,
        timeout=900,
    ).stdout
    return json.loads(output.strip().splitlines()[-1])


def fit(points: list[dict], key: str = "seconds") -> tuple[float, float]:
    """Least-squares (fixed seconds, seconds per resource) through (resources, ``key``)."""
    xs = [p["resources"] for p in points]
    ys = [p[key] for p in points]
    mean_x, mean_y = statistics.fmean(xs), statistics.fmean(ys)
    slope = sum((x - mean_x) * (y - mean_y) for x, y in zip(xs, ys, strict=True)) / sum((x - mean_x) ** 2 for x in xs)
    return mean_y - slope * mean_x, slope


def run(sizes: list[int], repeat: int) -> dict:
    points = []
    started = time.monotonic()
    for services in sizes:
        point = measure(services, repeat)
        point["ms_per_resource"] = round(point["seconds"] / point["resources"] * 1000, 2)
        point["cpu_ms_per_resource"] = round(point["cpu_seconds"] / point["resources"] * 1000, 2)
        point["seconds"] = round(point["seconds"], 3)
        point["cpu_seconds"] = round(point["cpu_seconds"], 3)
        point["runs"] = [round(value, 3) for value in point["runs"]]
        points.append(point)
        print(
            f"  {services:>4} services: {point['resources']:>5} resources planned in {point['seconds']:6.2f} s "
            f"({point['ms_per_resource']:.2f} ms per resource; CPU {point['cpu_seconds']:.2f} s, "
            f"{point['cpu_ms_per_resource']:.2f} ms per resource)   [{time.monotonic() - started:4.0f} s]",
            flush=True,
        )
    fixed, per_resource = fit(points)
    cpu_fixed, cpu_per_resource = fit(points, "cpu_seconds")
    for point in points:
        point["line_seconds"] = round(fixed + per_resource * point["resources"], 3)
    return {
        "finished_at": now_utc(),
        "program": "Network + EcsCluster + N ContainerService (seaport.tools.testing.run, seaport's mocks)",
        "repeat": repeat,
        "points": points,
        "fit": {"fixed_s": round(fixed, 3), "ms_per_resource": round(per_resource * 1000, 3)},
        "cpu_fit": {"fixed_s": round(cpu_fixed, 3), "ms_per_resource": round(cpu_per_resource * 1000, 3)},
        "per_resource_growth": round(points[-1]["ms_per_resource"] / points[0]["ms_per_resource"], 2),
        "cpu_per_resource_growth": round(points[-1]["cpu_ms_per_resource"] / points[0]["cpu_ms_per_resource"], 2),
        "machine": machine(),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.plan", description=__doc__.split("\n\n")[0])
    parser.add_argument("--services", default=",".join(map(str, SERVICES)), help="program sizes (10,50,100)")
    parser.add_argument("--repeat", type=int, default=5, help="plans per size; the median is kept (5)")
    parser.add_argument("--one", type=int, help=argparse.SUPPRESS)  # the child process: time one size
    parser.add_argument("--out", type=Path, default=BENCH_DIR / "plan.json")
    args = parser.parse_args(argv)
    if args.one is not None:
        print(json.dumps(time_plans(args.one, args.repeat)))
        return 0
    sizes = [int(value) for value in args.services.split(",")]
    print(f"offline plan of Network + EcsCluster + N ContainerServices, median of {args.repeat} plans per size")
    report = run(sizes, args.repeat)
    fit_ = report["fit"]
    print(
        f"  line: {fit_['fixed_s']:.2f} s + {fit_['ms_per_resource']:.2f} ms per resource; per-resource cost at "
        f"{sizes[-1]} services / at {sizes[0]}: {report['per_resource_growth']:.2f} (1.0: linear); in CPU time "
        f"{report['cpu_per_resource_growth']:.2f}"
    )
    write_report(args.out, report)
    return 0


if __name__ == "__main__":
    sys.exit(main())
