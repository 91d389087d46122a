"""Messaging curves: confirmed msg/s with 1, 2 and 4 apps.send processes, consumed msg/s with 1, 2 and 4 apps.receive.

``python -m benchmarks.messaging_scaling`` (``make bench``) starts one throwaway
RabbitMQ node and runs the apps as they run in their containers
(``python -m apps.send`` / ``python -m apps.receive``, one process each), all
on one durable quorum queue:

- send: N processes publish as fast as their window of unconfirmed messages
  lets them (persistent messages, publisher confirms); the figure is their total
  confirmed msg/s;
- receive: N processes consume the queue those runs filled (prefetch, manual
  acks after processing, every id recorded to a file and flushed before its
  ack, as in benchmarks.messaging); the figure is their total processed msg/s.

Each point is measured in steady state: once every process is connected and a
second has passed, over ``--window`` seconds, from the counters the apps log in
their own ``progress`` records (``METRICS_INTERVAL_SECONDS``), so process
start-up and shutdown are not in it. Before each receive point the queue holds
enough messages for the whole point (topped up by apps.send when not), so the
consumers never wait for work. The broker's and the apps' CPU use during the
window (in cores of the machine) show which side becomes the limit.

apps.send / apps.receive get the tuning variables of this environment
(``SEND_WINDOW``, ``RECEIVE_PREFETCH``, ``RECEIVE_ACK_EVERY``,
``PIKA_COALESCE_WRITES``) and benchmarks.common.APP_TUNING, as in
benchmarks.messaging. Processes are not pinned to cores here: the points show
what the whole machine does.

Writes build/bench/messaging_scaling.json; it has no target (it shows where the
limits are), so it exits 0 unless a run fails.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

import pika

from benchmarks.common import BENCH_DIR, apply_app_tuning, group_cpu, machine, now_utc, wait_until, write_report
from devtools.procs import AppProcess
from devtools.rabbitmq import RabbitMQNode

PROCESSES = (1, 2, 4)
QUEUE = "bench-scaling"
TUNING_VARIABLES = ("SEND_WINDOW", "RECEIVE_PREFETCH", "RECEIVE_ACK_EVERY", "PIKA_COALESCE_WRITES")
PROGRESS_INTERVAL = 0.5  # seconds between the apps' progress records
WARM_UP = 1.0  # seconds after every process is connected before the window starts


class Apps:
    """``count`` processes of ``module`` against the benchmark queue, each logging to its own file."""

    def __init__(self, module: str, count: int, url: str, work_dir: Path, tag: str, args: list[str]):
        self.module = module
        self.processes: list[AppProcess] = []
        for index in range(count):
            env = {
                "RABBITMQ_URL": url,
                "RABBITMQ_QUEUE": QUEUE,
                "RABBITMQ_QUEUE_TYPE": "quorum",
                "METRICS_INTERVAL_SECONDS": str(PROGRESS_INTERVAL),
                "LIVENESS_FILE": str(work_dir / f"{tag}-{index}.alive"),
                **{name: os.environ[name] for name in TUNING_VARIABLES if name in os.environ},
            }
            extra = [arg.replace("{index}", str(index)) for arg in args]
            log = work_dir / f"{tag}-{index}.log"
            self.processes.append(AppProcess(module, extra, env=env, log_path=log).start())

    def records(self, index: int, message: str) -> list[dict]:
        found = []
        for line in self.processes[index].output().splitlines():
            try:
                record = json.loads(line)
            except ValueError:
                continue
            if isinstance(record, dict) and record.get("message") == message:
                found.append(record)
        return found

    def all_connected(self) -> bool:
        for index, app in enumerate(self.processes):
            if app.process.poll() is not None:
                raise RuntimeError(f"{self.module} exited early:\n{app.output()[-2000:]}")
            if not self.records(index, "connected"):
                return False
        return True

    def cpu(self) -> float:
        return sum(group_cpu(app.process.pid) for app in self.processes)

    def stop(self) -> None:
        for app in self.processes:
            app.signal(signal.SIGTERM)  # all at once: they finish what is in flight in parallel
        for app in self.processes:
            try:
                code = app.wait(timeout=30)
            except subprocess.TimeoutExpired:
                app.kill()
                code = app.wait(5)
            if code != 0:
                raise RuntimeError(f"{self.module} exited {code}:\n{app.output()[-2000:]}")

    def rate(self, counter: str, start: float, end: float) -> float:
        """Total ``counter``/s over [start, end] (wall clock), from each process's progress records inside it."""
        total = 0.0
        for index in range(len(self.processes)):
            points = [
                (_epoch(record["time"]), record[counter])
                for record in self.records(index, "progress")
                if counter in record and start <= _epoch(record["time"]) <= end
            ]
            if len(points) < 2:
                raise RuntimeError(f"{self.module}: fewer than two progress records in the window")
            (t0, v0), (t1, v1) = points[0], points[-1]
            total += (v1 - v0) / (t1 - t0)
        return total


def _epoch(stamp: str) -> float:
    return datetime.strptime(stamp, "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=UTC).timestamp()


def queue_depth(url: str) -> int:
    connection = pika.BlockingConnection(pika.URLParameters(url))
    try:
        return connection.channel().queue_declare(QUEUE, passive=True).method.message_count
    finally:
        connection.close()


def measure(apps: Apps, counter: str, window: float, broker_pgid: int) -> dict:
    """Steady-state total rate of ``counter`` over ``window`` seconds, with the CPU the broker and the apps used."""
    wait_until(apps.all_connected, 60, f"{apps.module} to connect")
    time.sleep(WARM_UP)
    broker_cpu, apps_cpu = group_cpu(broker_pgid), apps.cpu()
    start = time.time()
    time.sleep(window)
    end = time.time()
    broker_cpu, apps_cpu = group_cpu(broker_pgid) - broker_cpu, apps.cpu() - apps_cpu
    time.sleep(2 * PROGRESS_INTERVAL)  # a record after the window's end, so the window is covered
    apps.stop()
    return {
        "msgs_per_s": round(apps.rate(counter, start, end), 1),
        "broker_cores": round(broker_cpu / (end - start), 2),
        "apps_cores": round(apps_cpu / (end - start), 2),
    }


def top_up(url: str, wanted: int, work_dir: Path, tag: str) -> None:
    """Publish with apps.send until the queue holds at least ``wanted`` messages."""
    depth = queue_depth(url)
    if depth >= wanted:
        return
    missing = wanted - depth
    print(f"    topping the queue up from {depth} to {wanted} messages", flush=True)
    per_process = missing // 4 + 1
    senders = Apps("apps.send", 4, url, work_dir, tag, ["--count", str(per_process), "--run-id", f"{tag}-{{index}}"])
    for app in senders.processes:
        code = app.wait(timeout=600)
        if code != 0:
            raise RuntimeError(f"apps.send (top-up) exited {code}:\n{app.output()[-2000:]}")


def run(window: float, work_dir: Path) -> dict:
    started = time.monotonic()
    curves: dict[str, list[dict]] = {"send": [], "receive": []}
    with RabbitMQNode(data_dir=work_dir / "rabbitmq") as node:
        url = node.url
        pgid = node.process.pid
        print(f"broker up; {window:g} s steady-state windows, processes {', '.join(map(str, PROCESSES))}")
        for count in PROCESSES:
            senders = Apps(
                "apps.send",
                count,
                url,
                work_dir,
                f"send{count}",
                ["--count", "100000000", "--run-id", f"scale{count}-{{index}}"],
            )
            point = {"processes": count, **measure(senders, "confirmed", window, pgid)}
            curves["send"].append(point)
            print(
                f"  send    x{count}: {point['msgs_per_s']:8.0f} confirmed msg/s  (broker {point['broker_cores']:.2f} "
                f"cores, apps {point['apps_cores']:.2f})   [{time.monotonic() - started:4.0f} s]",
                flush=True,
            )
        # Enough work for a whole receive point: start-up, warm-up, window and stop at the fastest rate so far.
        point_seconds = window + WARM_UP + 6
        fastest = max(p["msgs_per_s"] for p in curves["send"])
        for count in PROCESSES:
            guess = max([fastest * 2] + [p["msgs_per_s"] for p in curves["receive"]])
            top_up(url, int(guess * point_seconds * 1.3), work_dir, f"topup{count}")
            receivers = Apps(
                "apps.receive",
                count,
                url,
                work_dir,
                f"receive{count}",
                ["--record", str(work_dir / f"received-{count}-{{index}}.txt")],
            )
            point = {"processes": count, **measure(receivers, "processed", window, pgid)}
            point["queue_left"] = queue_depth(url)
            if point["queue_left"] == 0:
                print("  warning: the queue ran dry during the point: the rate is a lower bound", file=sys.stderr)
            curves["receive"].append(point)
            print(
                f"  receive x{count}: {point['msgs_per_s']:8.0f} processed msg/s  (broker {point['broker_cores']:.2f} "
                f"cores, apps {point['apps_cores']:.2f})   [{time.monotonic() - started:4.0f} s]",
                flush=True,
            )
    return {
        "finished_at": now_utc(),
        "queue_type": "quorum",
        "window_s": window,
        "send": curves["send"],
        "receive": curves["receive"],
        "settings": {name: os.environ.get(name) for name in TUNING_VARIABLES},
        "machine": machine(),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.messaging_scaling", description=__doc__.split("\n\n")[0]
    )
    parser.add_argument("--window", type=float, default=4.0, help="seconds measured per point (4)")
    parser.add_argument("--out", type=Path, default=BENCH_DIR / "messaging_scaling.json")
    args = parser.parse_args(argv)
    apply_app_tuning()
    with tempfile.TemporaryDirectory(prefix="seaport-bench-scaling-") as work_dir:
        report = run(args.window, Path(work_dir))
    write_report(args.out, report)
    return 0


if __name__ == "__main__":
    sys.exit(main())
