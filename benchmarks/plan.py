"""How the offline plan's time grows with the program: 10, 50 and 100 ContainerServices.

``python -m benchmarks.plan`` (``make bench``) plans a benchmark program made
of the components, a ``Network``, an ``EcsCluster`` and N ``ContainerService``s
on it (each with its log group, roles, task definition and ECS service), with
``seaport.tools.testing.run``: what ``make plan`` and users' unit tests do,
under seaport's mocks. Each N has its own Python process (nothing left over
from other sizes) that first plans a one-service program (imports and caches
warm, as in a test session). Then ``--repeat`` rounds each time one plan of
every size, in alternating order (10, 50, 100, then 100, 50, 10, ...): a load
on the shared machine that rises or falls during the run weighs on every size
alike instead of on whichever ran at the time. The median per size is kept.

Reported per N: seconds (wall clock) and CPU seconds of the planning process
(less disturbed by whatever else runs on the machine), resources, milliseconds
per resource; and a least-squares line through the points (seconds = fixed +
per-resource x resources): if the cost stays linear, every point is close to
the line and the per-resource cost at 100 services is close to the one at 10
(``per_resource_growth``, 1.0 when exactly linear; ``cpu_per_resource_growth``
the same in CPU time). How far that ratio can be trusted: the rounds form two
interleaved series (even and odd rounds), whose ratios are compared
(``cpu_growth_spread``). Every plan starts from the same heap: a full garbage
collection follows it, untimed, and its CPU seconds are reported apart
(``gc_cpu_seconds``: what a plan leaves for the collector, once, mostly the
scan of the imported modules).

Writes build/bench/plan.json; it has no target, so it exits 0 unless a plan fails.
"""

from __future__ import annotations

import argparse
import gc
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from benchmarks.common import BENCH_DIR, machine, now_utc, spread, write_report
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


def worker(services: int) -> int:
    """The process of one size: warm up, say so, then one timed plan of ``services`` services per line read."""
    from seaport.tools.testing import run

    run(program(1))
    gc.collect()  # the first plan starts from the heap every later one starts from
    print(json.dumps({"ready": services}), flush=True)
    for _ in sys.stdin:
        started, cpu_started = time.perf_counter(), time.process_time()
        plan = run(program(services))
        cpu_seconds = time.process_time() - cpu_started
        seconds = time.perf_counter() - started
        resources = len(plan.resources)
        del plan
        gc_started = time.process_time()
        gc.collect()  # what the plan left; the next plan starts from the same heap as this one
        gc_cpu_seconds = time.process_time() - gc_started
        print(
            json.dumps(
                {
                    "resources": resources,
                    "seconds": seconds,
                    "cpu_seconds": cpu_seconds,
                    "gc_cpu_seconds": gc_cpu_seconds,
                }
            ),
            flush=True,
        )
    return 0


class Worker:
    """A ``--worker`` process of one size, driven one plan at a time."""

    def __init__(self, services: int):
        self.services = services
        self.stderr = tempfile.TemporaryFile(mode="w+")  # noqa: SIM115 - closed in close()
        self.process = subprocess.Popen(
            worker_command(services),
            cwd=REPO_ROOT,
            env=child_env(),
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=self.stderr,
            text=True,
        )

    def read(self) -> dict:
        line = self.process.stdout.readline()
        if not line:
            self.process.wait(timeout=60)
            self.stderr.seek(0)
            tail = "".join(self.stderr.readlines()[-20:])
            raise RuntimeError(f"the {self.services}-service plan process exited ({self.process.returncode}):\n{tail}")
        return json.loads(line)

    def plan(self) -> dict:
        self.process.stdin.write("plan\n")
        self.process.stdin.flush()
        return self.read()

    def close(self) -> None:
        if self.process.stdin:
            self.process.stdin.close()
        try:
            self.process.wait(timeout=60)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        self.stderr.close()


def worker_command(services: int) -> list[str]:
    return [sys.executable, "-m", "benchmarks.plan", "--worker", str(services)]


def measure(sizes: list[int], repeat: int) -> dict[int, list[dict]]:
    """``repeat`` rounds of one plan per size, in alternating order; every plan's figures, by size."""
    workers = [Worker(services) for services in sizes]
    try:
        for each in workers:
            each.read()  # warmed up: no warm-up runs beside a timed plan
        samples: dict[int, list[dict]] = {services: [] for services in sizes}
        for round_ in range(repeat):
            for each in workers if round_ % 2 == 0 else workers[::-1]:
                samples[each.services].append(each.plan())
        return samples
    finally:
        for each in workers:
            each.close()


def point(services: int, samples: list[dict]) -> dict:
    """The median figures of one size's plans."""
    resources = samples[-1]["resources"]
    seconds = statistics.median(s["seconds"] for s in samples)
    cpu_seconds = statistics.median(s["cpu_seconds"] for s in samples)
    return {
        "services": services,
        "resources": resources,
        "seconds": round(seconds, 3),
        "cpu_seconds": round(cpu_seconds, 3),
        "ms_per_resource": round(seconds / resources * 1000, 2),
        "cpu_ms_per_resource": round(cpu_seconds / resources * 1000, 2),
        "gc_cpu_seconds": round(statistics.median(s["gc_cpu_seconds"] for s in samples), 3),
        "runs": [round(s["seconds"], 3) for s in samples],
        "cpu_runs": [round(s["cpu_seconds"], 3) for s in samples],
    }


def cpu_growth(samples: dict[int, list[dict]], sizes: list[int], rounds: slice) -> float:
    """CPU per resource at the largest size / at the smallest, from the medians of the given rounds."""

    def per_resource(services: int) -> float:
        chosen = samples[services][rounds]
        return statistics.median(s["cpu_seconds"] for s in chosen) / chosen[-1]["resources"]

    return per_resource(sizes[-1]) / per_resource(sizes[0])


def fit(points: list[dict], key: str = "seconds") -> tuple[float, float]:
    """Least-squares (fixed seconds, seconds per resource) through (resources, ``key``)."""
    xs = [p["resources"] for p in points]
    ys = [p[key] for p in points]
    mean_x, mean_y = statistics.fmean(xs), statistics.fmean(ys)
    slope = sum((x - mean_x) * (y - mean_y) for x, y in zip(xs, ys, strict=True)) / sum((x - mean_x) ** 2 for x in xs)
    return mean_y - slope * mean_x, slope


def run(sizes: list[int], repeat: int) -> dict:
    started = time.monotonic()
    samples = measure(sizes, repeat)
    points = [point(services, samples[services]) for services in sizes]
    for p in points:
        print(
            f"  {p['services']:>4} services: {p['resources']:>5} resources planned in {p['seconds']:6.2f} s "
            f"({p['ms_per_resource']:.2f} ms per resource; CPU {p['cpu_seconds']:.2f} s, "
            f"{p['cpu_ms_per_resource']:.2f} ms per resource; then {p['gc_cpu_seconds']:.2f} s of full collection)",
            flush=True,
        )
    print(f"  [{time.monotonic() - started:.0f} s]")
    fixed, per_resource = fit(points)
    cpu_fixed, cpu_per_resource = fit(points, "cpu_seconds")
    for p in points:
        p["line_seconds"] = round(fixed + per_resource * p["resources"], 3)
    series = None
    if repeat >= 2:
        even, odd = cpu_growth(samples, sizes, slice(0, None, 2)), cpu_growth(samples, sizes, slice(1, None, 2))
        series = {"even_rounds": round(even, 2), "odd_rounds": round(odd, 2), "spread": round(spread(even, odd), 3)}
    return {
        "finished_at": now_utc(),
        "program": "Network + EcsCluster + N ContainerService (seaport.tools.testing.run, seaport's mocks)",
        "repeat": repeat,
        "points": points,
        "fit": {"fixed_s": round(fixed, 3), "ms_per_resource": round(per_resource * 1000, 3)},
        "cpu_fit": {"fixed_s": round(cpu_fixed, 3), "ms_per_resource": round(cpu_per_resource * 1000, 3)},
        "per_resource_growth": round(points[-1]["ms_per_resource"] / points[0]["ms_per_resource"], 2),
        "cpu_per_resource_growth": round(points[-1]["cpu_ms_per_resource"] / points[0]["cpu_ms_per_resource"], 2),
        "cpu_growth_spread": series,
        "machine": machine(),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.plan", description=__doc__.split("\n\n")[0])
    parser.add_argument("--services", default=",".join(map(str, SERVICES)), help="program sizes (10,50,100)")
    parser.add_argument("--repeat", type=int, default=7, help="rounds, one plan per size each; medians kept (7)")
    parser.add_argument("--worker", type=int, help=argparse.SUPPRESS)  # the process of one size
    parser.add_argument("--out", type=Path, default=BENCH_DIR / "plan.json")
    args = parser.parse_args(argv)
    if args.worker is not None:
        return worker(args.worker)
    sizes = [int(value) for value in args.services.split(",")]
    print(
        f"offline plan of Network + EcsCluster + N ContainerServices, median of {args.repeat} plans per size "
        "(rounds of one plan per size, alternating order)"
    )
    report = run(sizes, args.repeat)
    fit_ = report["fit"]
    print(
        f"  line: {fit_['fixed_s']:.2f} s + {fit_['ms_per_resource']:.2f} ms per resource; per-resource cost at "
        f"{sizes[-1]} services / at {sizes[0]}: {report['per_resource_growth']:.2f} (1.0: linear); in CPU time "
        f"{report['cpu_per_resource_growth']:.2f}"
    )
    if series := report["cpu_growth_spread"]:
        print(
            f"  in CPU time, even rounds alone {series['even_rounds']:.2f}, odd rounds alone {series['odd_rounds']:.2f}"
        )
    write_report(args.out, report)
    return 0


if __name__ == "__main__":
    sys.exit(main())
