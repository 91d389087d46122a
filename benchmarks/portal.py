"""`make bench` (portal part): the portal page and API under 32 concurrent clients.

Both backends answer after ``--delay-ms 100``. A page shows 3 stocks and 3
cities and asks each backend once for its three (``/stock?symbols=...``,
``/weather?cities=...``); made one after the other, the two calls would take
>= 200 ms (one call per name, >= 600 ms), so the target p50 < 1.5 x the
backend delay shows they really run at the same time. Each run also measures
the backend directly (one call at a time) as the baseline the ratios are
printed against.

Writes build/bench/portal.json: ``requests``, ``errors``, ``rps``, ``p50_ms``,
``p99_ms`` over every measured request (page and API), ``backend_delay_ms``,
and per endpoint the same figures under ``endpoints``. Exits 1 if a target
is missed (p50 of each endpoint < 1.5 x delay, no errors).

    python -m benchmarks.portal [--clients 32] [--requests 640] [--delay-ms 100]
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

from devtools.procs import REPO_ROOT, AppProcess, free_port, wait_for_port

HOST = "127.0.0.1"
CITIES = ["Seattle", "London", "Tokyo", "Paris", "Oslo"]
SYMBOLS = ["AMZN", "MSFT", "GOOG", "NVDA", "IBM"]


def percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))]


def start(module: str, port: int, env: dict[str, str], args: list[str], logs: Path) -> AppProcess:
    app = AppProcess(
        module, ["--host", HOST, "--port", str(port), *args], env=env, log_path=logs / f"{module}.log"
    ).start()
    wait_for_port(port, timeout=30, process=app.process)
    return app


def load(port: int, paths: list[str], clients: int, check) -> dict:
    """GET every path once, ``clients`` at a time (each client its own keep-alive connection)."""
    latencies: list[float] = []
    errors: list[str] = []
    next_index = iter(range(len(paths)))
    lock = threading.Lock()

    def client():
        # Plain http.client on one keep-alive connection: the load generator shares the
        # machine's CPUs with what it measures, so it should cost as little as possible.
        connection = http.client.HTTPConnection(HOST, port, timeout=10)
        while True:
            with lock:
                index = next(next_index, None)
            if index is None:
                connection.close()
                return
            started = time.perf_counter()
            try:
                connection.request("GET", paths[index])
                response = connection.getresponse()
                problem = check(response.status, response.read())
            except (OSError, http.client.HTTPException) as error:
                problem = repr(error)
                connection.close()  # reconnects on the next request
            elapsed = time.perf_counter() - started
            with lock:
                latencies.append(elapsed)
                if problem:
                    errors.append(problem)

    threads = [threading.Thread(target=client) for _ in range(clients)]
    started = time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    wall = time.perf_counter() - started
    return {
        "requests": len(latencies),
        "errors": len(errors),
        "rps": round(len(latencies) / wall, 1),
        "p50_ms": round(percentile(latencies, 0.50) * 1000, 1),
        "p99_ms": round(percentile(latencies, 0.99) * 1000, 1),
        "mean_ms": round(statistics.fmean(latencies) * 1000, 1),
        "wall_s": round(wall, 2),
        "first_errors": errors[:3],
        "_latencies": latencies,
    }


def page_ok(status: int, body: bytes) -> str | None:
    if status != 200:
        return f"HTTP {status}"
    if body.count(b'data-state="ok"') < 2 + 6:  # two panels, six items
        return "a panel or item is not ok"
    return None


def api_ok(status: int, body: bytes) -> str | None:
    return None if status == 200 else f"HTTP {status}"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.portal", description=__doc__.split("\n\n")[0])
    parser.add_argument("--clients", type=int, default=32)
    parser.add_argument("--requests", type=int, default=640, help="per endpoint (page, API)")
    parser.add_argument("--delay-ms", type=int, default=100, help="backend latency")
    parser.add_argument("--out", type=Path, default=REPO_ROOT / "build" / "bench" / "portal.json")
    args = parser.parse_args(argv)
    delay = args.delay_ms
    logs = Path(tempfile.mkdtemp(prefix="seaport-bench-portal-"))
    # AppProcess starts each app with child_env(env), so no WEATHER_URL, CONSUL_* etc. of ours leaks in.
    # Every backend call of 32 pages at once (32 x 3 per backend) must find a free thread.
    backend_env = {"WEB_CONCURRENCY": os.environ.get("BACKEND_WORKERS", "2"), "THREADS": "64"}
    portal_env = {
        "WEB_CONCURRENCY": os.environ.get("WEB_CONCURRENCY", "2"),
        "THREADS": os.environ.get("THREADS", "32"),
    }
    ports = {"weather": free_port(), "stocks": free_port(), "portal": free_port()}
    started: list[AppProcess] = []
    try:
        for name in ("weather", "stocks"):
            started.append(start(f"apps.{name}", ports[name], backend_env, ["--delay-ms", str(delay)], logs))
        portal_env["WEATHER_URL"] = f"http://{HOST}:{ports['weather']}"
        portal_env["STOCKS_URL"] = f"http://{HOST}:{ports['stocks']}"
        started.append(start("apps.portal", ports["portal"], portal_env, [], logs))
        portal = ports["portal"]

        # Warm up: workers booted, connection pools filled, code paths imported.
        load(portal, ["/"] * args.clients * 2, args.clients, page_ok)
        baseline = load(ports["weather"], ["/weather/Paris"] * 20, 1, api_ok)
        page = load(portal, ["/"] * args.requests, args.clients, page_ok)
        api_paths = [
            f"/api/weather/{CITIES[i % len(CITIES)]}" if i % 2 else f"/api/stock/{SYMBOLS[i % len(SYMBOLS)]}"
            for i in range(args.requests)
        ]
        api = load(portal, api_paths, args.clients, api_ok)
    finally:
        for app in started:
            app.signal(15)
        for app in started:
            app.stop()

    everything = page["_latencies"] + api["_latencies"]
    wall = page["wall_s"] + api["wall_s"]
    endpoints = {"page": page, "api": api, "backend_direct": baseline}
    for figures in endpoints.values():
        figures.pop("_latencies")
    result = {
        "requests": len(everything),
        "errors": page["errors"] + api["errors"],
        "rps": round(len(everything) / wall, 1),
        "p50_ms": round(percentile(everything, 0.50) * 1000, 1),
        "p99_ms": round(percentile(everything, 0.99) * 1000, 1),
        "backend_delay_ms": delay,
        "clients": args.clients,
        "backend_calls_per_page": 2,
        "names_per_page": 6,
        "portal_workers": int(portal_env["WEB_CONCURRENCY"]),
        "portal_threads": int(portal_env["THREADS"]),
        "cpus": os.cpu_count(),
        "endpoints": endpoints,
    }
    targets = {f"{name} p50 < 1.5 x {delay} ms": endpoints[name]["p50_ms"] < 1.5 * delay for name in ("page", "api")}
    targets["errors == 0"] = result["errors"] == 0
    result["targets_met"] = all(targets.values())
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")

    base = baseline["p50_ms"]
    print(f"portal benchmark: {args.clients} clients, backends at --delay-ms {delay}, {os.cpu_count()} CPUs")
    print(f"{'endpoint':<16}{'requests':>9}{'errors':>8}{'rps':>9}{'p50 ms':>9}{'p99 ms':>9}{'p50/backend':>13}")
    for name, figures in endpoints.items():
        ratio = figures["p50_ms"] / base if base else float("nan")
        print(
            f"{name:<16}{figures['requests']:>9}{figures['errors']:>8}{figures['rps']:>9.1f}"
            f"{figures['p50_ms']:>9.1f}{figures['p99_ms']:>9.1f}{ratio:>12.2f}x"
        )
    print(f"(a page's 2 backend calls one after the other would take >= {2 * delay} ms)")
    for target, met in targets.items():
        print(f"  {'ok  ' if met else 'MISS'} {target}")
    print(f"wrote {args.out.relative_to(REPO_ROOT)}")
    for name in ("page", "api"):
        if endpoints[name]["first_errors"]:
            print(f"first {name} errors: {endpoints[name]['first_errors']} (logs in {logs})", file=sys.stderr)
    return 0 if result["targets_met"] else 1


if __name__ == "__main__":
    sys.exit(main())
