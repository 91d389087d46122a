"""`make bench` (portal part): the portal page and API with 8, 32 and 128 concurrent clients.

Both backends answer after ``--delay-ms 100``. A page shows 3 stocks and 3
cities and asks each backend once for its three (``/stock?symbols=...``,
``/weather?cities=...``); made one after the other, the two calls would take
>= 200 ms, so a p50 close to the backend delay shows they really run at the
same time. The API (``/api/weather/<city>``, ``/api/stock/<symbol>``) makes one
backend call per request.

For each number of clients, each endpoint is loaded for ``--seconds`` after a
warm-up: every client keeps one keep-alive connection and sends its next
request as soon as the previous answer arrived (a closed loop, like a browser
tab reloading). Counted are the requests that started inside the measured
window, each to its end. ``share_of_ideal`` is requests/s over what the
clients could make if every answer took exactly the backend delay
(clients / delay): 1.0 would mean the portal adds no time at all.

The load generator is one asyncio loop in this process (it shares the CPUs
with what it measures, so it should cost as little as possible); weather,
stocks and the portal run as their containers do (gunicorn, ``python -m
apps.<name>``), with the workers and threads the report lists
(``WEB_CONCURRENCY``/``THREADS`` for the portal, ``BACKEND_WORKERS``/
``BACKEND_THREADS`` for the backends, from this environment if set). The
portal runs its default worker class (gevent) unless ``--worker-class`` (or
``WORKER_CLASS``) says otherwise; the report names the class its startup line
named (``THREADS`` applies to gthread only). It coalesces identical backend
calls in flight (its default); ``--no-coalesce`` runs it with
``PORTAL_COALESCE=false``, for comparison.

Writes build/bench/portal.json. Exits 1 if a target is missed: at 128 clients,
p50 of the page and of the API <= 1.3 x the backend delay; no errors at any
level.

    python -m benchmarks.portal [--clients 8,32,128] [--seconds 5] [--delay-ms 100] [--worker-class gevent]
                                [--no-coalesce]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from apps.common.server import WORKER_CLASSES
from benchmarks.common import BENCH_DIR, group_cpu, machine, now_utc, own_cpu, percentile, write_report
from devtools.procs import AppProcess, free_port, wait_for_port

HOST = "127.0.0.1"
CITIES = ["Seattle", "London", "Tokyo", "Paris", "Oslo"]
SYMBOLS = ["AMZN", "MSFT", "GOOG", "NVDA", "IBM"]
CLIENTS = (8, 32, 128)
TARGET_CLIENTS = 128
TARGET_P50_VS_DELAY = 1.3


def start(module: str, port: int, env: dict[str, str], args: list[str], logs: Path) -> AppProcess:
    app = AppProcess(
        module, ["--host", HOST, "--port", str(port), *args], env=env, log_path=logs / f"{module}.log"
    ).start()
    wait_for_port(port, timeout=30, process=app.process)
    return app


# -- the load generator -------------------------------------------------------------------


def _parse_head(head: bytes) -> tuple[int, int, bool]:
    """(status, content length, the server will close) of a response head."""
    status = int(head[9:12])
    lower = head.lower()
    at = lower.find(b"\r\ncontent-length:")
    if at < 0:
        raise ValueError("no Content-Length")
    end = lower.index(b"\r\n", at + 2)
    length = int(lower[at + 17 : end])
    return status, length, b"\r\nconnection: close" in lower


async def _load(port: int, path_of: Callable[[int], str], clients: int, check, warm_up: float, seconds: float):
    latencies: list[float] = []
    errors: list[str] = []
    made = 0
    measure_from = time.perf_counter() + warm_up
    measure_until = measure_from + seconds

    async def client(first: int) -> None:
        nonlocal made
        reader = writer = None
        n = first
        while True:
            started = time.perf_counter()
            if started >= measure_until:
                break
            request = f"GET {path_of(n)} HTTP/1.1\r\nHost: {HOST}\r\n\r\n".encode()
            n += clients
            try:
                if writer is None:
                    reader, writer = await asyncio.open_connection(HOST, port)
                writer.write(request)
                status, length, closing = _parse_head(await reader.readuntil(b"\r\n\r\n"))
                problem = check(status, await reader.readexactly(length))
                if closing:
                    writer.close()
                    writer = None
            except (OSError, asyncio.IncompleteReadError, asyncio.LimitOverrunError, ValueError) as error:
                problem = repr(error)
                if writer is not None:
                    writer.close()
                writer = None
            made += 1
            if started >= measure_from:
                latencies.append(time.perf_counter() - started)
            if problem:
                errors.append(problem)
        if writer is not None:
            writer.close()

    await asyncio.gather(*(client(index) for index in range(clients)))
    return latencies, errors, made


def load(port: int, path_of: Callable[[int], str], clients: int, check, seconds: float, warm_up: float = 1.0) -> dict:
    """Load ``port`` with ``clients`` keep-alive clients for ``warm_up`` + ``seconds``; figures of the window."""
    latencies, errors, total = asyncio.run(_load(port, path_of, clients, check, warm_up, seconds))
    if not latencies:
        raise RuntimeError(f"no request completed: {errors[:3]}")
    return {
        "requests": len(latencies),
        "requests_all": total,
        "errors": len(errors),
        "rps": round(len(latencies) / seconds, 1),
        "p50_ms": round(percentile(latencies, 0.50) * 1000, 1),
        "p99_ms": round(percentile(latencies, 0.99) * 1000, 1),
        "mean_ms": round(sum(latencies) / len(latencies) * 1000, 1),
        "first_errors": errors[:3],
    }


def page_ok(status: int, body: bytes) -> str | None:
    if status != 200:
        return f"HTTP {status}"
    if body.count(b'data-state="ok"') < 2 + 6:  # two panels, six items
        return "a panel or item is not ok"
    return None


def api_ok(status: int, body: bytes) -> str | None:
    return None if status == 200 else f"HTTP {status}"


def page_path(_n: int) -> str:
    return "/"


def api_path(n: int) -> str:
    return f"/api/weather/{CITIES[n % len(CITIES)]}" if n % 2 else f"/api/stock/{SYMBOLS[n % len(SYMBOLS)]}"


# -- the run ---------------------------------------------------------------------------------


def settings() -> dict[str, int]:
    return {
        "portal_workers": int(os.environ.get("WEB_CONCURRENCY", "2")),
        "portal_threads": int(os.environ.get("THREADS", "64")),
        "backend_workers": int(os.environ.get("BACKEND_WORKERS", "2")),
        "backend_threads": int(os.environ.get("BACKEND_THREADS", "128")),
    }


def started_worker_class(app: AppProcess) -> str:
    """The worker class the app's "starting" log line names."""
    for line in app.output().splitlines():
        if line.startswith("{"):
            record = json.loads(line)
            if record.get("message") == "starting":
                return record.get("worker_class", "?")
    return "?"


def run(
    clients_levels: list[int],
    seconds: float,
    delay: int,
    logs: Path,
    coalesce: bool = True,
    worker_class: str | None = None,
) -> dict:
    config: dict = {**settings(), "portal_coalesce": coalesce}
    backend_env = {"WEB_CONCURRENCY": str(config["backend_workers"]), "THREADS": str(config["backend_threads"])}
    portal_env = {
        "WEB_CONCURRENCY": str(config["portal_workers"]),
        "THREADS": str(config["portal_threads"]),
        "PORTAL_COALESCE": "true" if coalesce else "false",
    }
    worker_class = worker_class or os.environ.get("WORKER_CLASS")
    if worker_class:
        portal_env["WORKER_CLASS"] = worker_class
    ports = {"weather": free_port(), "stocks": free_port(), "portal": free_port()}
    started: list[AppProcess] = []
    curve = []
    clock = time.monotonic()
    try:
        for name in ("weather", "stocks"):
            started.append(start(f"apps.{name}", ports[name], backend_env, ["--delay-ms", str(delay)], logs))
        portal_env["WEATHER_URL"] = f"http://{HOST}:{ports['weather']}"
        portal_env["STOCKS_URL"] = f"http://{HOST}:{ports['stocks']}"
        started.append(start("apps.portal", ports["portal"], portal_env, [], logs))
        portal = ports["portal"]
        config["portal_worker_class"] = started_worker_class(started[2])
        baseline = load(ports["weather"], lambda _n: "/weather/Paris", 1, api_ok, seconds=2.0, warm_up=0.5)
        per_worker = f" x {config['portal_threads']} threads" if config["portal_worker_class"] == "gthread" else ""
        print(
            f"portal: {config['portal_worker_class']} worker class, {config['portal_workers']} workers{per_worker}, "
            f"{'coalescing' if coalesce else 'not coalescing'} identical backend calls; backends "
            f"{config['backend_workers']} x {config['backend_threads']}, answering after {delay} ms "
            f"(measured: p50 {baseline['p50_ms']} ms); {seconds:g} s per point"
        )
        groups = {"portal": [started[2]], "backends": started[:2]}
        for clients in clients_levels:
            point = {"clients": clients, "ideal_rps": round(clients / (delay / 1000), 1)}
            for name, path_of, check in (("page", page_path, page_ok), ("api", api_path, api_ok)):
                before = {key: sum(group_cpu(app.process.pid) for app in apps) for key, apps in groups.items()}
                before["load_generator"] = own_cpu()
                figures = load(portal, path_of, clients, check, seconds)
                after = {key: sum(group_cpu(app.process.pid) for app in apps) for key, apps in groups.items()}
                after["load_generator"] = own_cpu()
                # CPU per request over the whole load (warm-up included): what a request costs each side
                total = figures["requests_all"]
                figures["cpu_ms_per_request"] = {
                    key: round((after[key] - before[key]) / total * 1000, 2) for key in after
                }
                figures["share_of_ideal"] = round(figures["rps"] / point["ideal_rps"], 3)
                figures["p50_vs_delay"] = round(figures["p50_ms"] / delay, 2)
                point[name] = figures
                print(
                    f"  {clients:>4} clients {name:<4}: {figures['rps']:7.1f} req/s ({figures['share_of_ideal']:6.1%} "
                    f"of {point['ideal_rps']:g}), p50 {figures['p50_ms']:6.1f} ms ({figures['p50_vs_delay']:.2f} x "
                    f"delay), p99 {figures['p99_ms']:6.1f} ms, {figures['errors']} errors; CPU ms per request: "
                    + ", ".join(f"{key} {value:.2f}" for key, value in figures["cpu_ms_per_request"].items())
                    + f"   [{time.monotonic() - clock:4.0f} s]",
                    flush=True,
                )
            curve.append(point)
    finally:
        for app in started:
            app.signal(15)
        for app in started:
            app.stop()
    target = next((point for point in curve if point["clients"] == TARGET_CLIENTS), None)
    targets = {}
    if target is not None:
        for name in ("page", "api"):
            targets[f"{name} p50 <= {TARGET_P50_VS_DELAY} x {delay} ms at {TARGET_CLIENTS} clients"] = (
                target[name]["p50_ms"] <= TARGET_P50_VS_DELAY * delay
            )
    targets["errors == 0"] = all(point[name]["errors"] == 0 for point in curve for name in ("page", "api"))
    return {
        "finished_at": now_utc(),
        "backend_delay_ms": delay,
        "seconds_per_point": seconds,
        "backend_calls_per_page": 2,
        "names_per_page": 6,
        **config,
        "backend_direct": baseline,
        "curve": curve,
        "targets": targets,
        "targets_met": all(targets.values()),
        "machine": machine(),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.portal", description=__doc__.split("\n\n")[0])
    parser.add_argument("--clients", default=",".join(map(str, CLIENTS)), help="client counts (8,32,128)")
    parser.add_argument("--seconds", type=float, default=5.0, help="measured seconds per point and endpoint (5)")
    parser.add_argument("--delay-ms", type=int, default=100, help="backend latency (100)")
    parser.add_argument("--out", type=Path, default=BENCH_DIR / "portal.json")
    parser.add_argument(
        "--worker-class",
        choices=WORKER_CLASSES,
        help="the portal's worker class (default: WORKER_CLASS, else the portal's default)",
    )
    parser.add_argument(
        "--no-coalesce",
        action="store_true",
        help="run the portal with PORTAL_COALESCE=false: every request makes its own backend calls",
    )
    args = parser.parse_args(argv)
    logs = Path(tempfile.mkdtemp(prefix="seaport-bench-portal-"))
    levels = [int(value) for value in args.clients.split(",")]
    result = run(
        levels, args.seconds, args.delay_ms, logs, coalesce=not args.no_coalesce, worker_class=args.worker_class
    )
    for target, met in result["targets"].items():
        print(f"  {'ok  ' if met else 'MISS'} {target}")
    for point in result["curve"]:
        for name in ("page", "api"):
            if point[name]["first_errors"]:
                errors = point[name]["first_errors"]
                print(f"first {name} errors at {point['clients']} clients: {errors}", file=sys.stderr)
    print(f"(server logs in {logs})")
    write_report(args.out, result)
    return 0 if result["targets_met"] else 1


if __name__ == "__main__":
    sys.exit(main())
