"""Helpers shared by the benchmarks: CPU accounting, medians and spreads, the machine, JSON output."""

from __future__ import annotations

import json
import os
import platform
import statistics
import time
from collections.abc import Iterator, Sequence
from importlib import metadata
from pathlib import Path

from devtools.procs import REPO_ROOT

BENCH_DIR = REPO_ROOT / "build" / "bench"
AGREEMENT = 0.05  # two runs (or two series of one run) agree when their ratios differ by at most 5 %
RATIOS = ("send_vs_fire_and_forget", "receive_vs_auto_ack")  # the messaging benchmark's paired, per-round ratios
_TICKS = os.sysconf("SC_CLK_TCK")
# What the benchmarks run apps.send / apps.receive with, through the variables the apps read (a variable
# already set in the environment wins). RECEIVE_PREFETCH 2000 (acks then go every 500 messages): with the
# app's default of 500, each consumer's CPU per message measured 15-25 % above the auto-ack consumer's on a
# 2-core machine, with 2000 within a few %; the deployment should set the same (or the default change).
APP_TUNING = {"RECEIVE_PREFETCH": "2000"}


def own_cpu() -> float:
    """CPU seconds (user + system) used by this process so far."""
    times = os.times()
    return times.user + times.system


def group_cpu(pgid: int) -> float:
    """CPU seconds used so far by the live processes of process group ``pgid`` (a broker node, an app)."""
    # After the command: state, ppid, pgrp, ..., utime (12th), stime (13th).
    return sum(int(fields[11]) + int(fields[12]) for _, fields in _group_stats(pgid)) / _TICKS


def _group_stats(pgid: int) -> Iterator[tuple[str, list[str]]]:
    """``(pid, fields of /proc/<pid>/stat after the command)`` of each live process of process group ``pgid``."""
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            with open(f"/proc/{entry.name}/stat") as stat:
                fields = stat.read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[2]) == pgid:  # state, ppid, pgrp
            yield entry.name, fields


def apply_app_tuning() -> dict[str, str]:
    """Set APP_TUNING's variables that are not set already; the ones this set (reported with the figures)."""
    applied = {}
    for name, value in APP_TUNING.items():
        if name not in os.environ:
            os.environ[name] = value
            applied[name] = value
    return applied


def median(values: Sequence[float]) -> float:
    return statistics.median(values)


def spread(a: float, b: float) -> float:
    """How far apart two figures are, relative to their mean (0.03: 3 %)."""
    mean = (a + b) / 2
    return abs(a - b) / mean if mean else 0.0


def cpu_steadiness(windows: int = 8, window_s: float = 1.0) -> dict:
    """How steady this process's core is: a fixed CPU-bound loop, counted over ``windows`` windows.

    On a shared VM a core's speed moves with what its neighbours do (no steal time shows it: the
    same work simply takes longer). A ratio of runs made seconds apart, one after the other, cannot be
    steadier than this in a single round; the medians of several rounds are, and so are runs that take
    turns on the core (benchmarks.turns).
    """
    counts = []
    for _ in range(windows):
        started, count = time.perf_counter(), 0
        while time.perf_counter() - started < window_s:
            table = {}
            for n in range(200):  # a fixed chunk of interpreter work: dict stores, small strings
                table[n] = str(n) * 3
            count += 1
        counts.append(count)
    middle = median(counts)
    return {
        "windows": windows,
        "window_s": window_s,
        "slowest_vs_median": round(min(counts) / middle, 3),
        "fastest_vs_median": round(max(counts) / middle, 3),
    }


def percentile(values: Sequence[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))]


def load_previous(path: Path) -> dict | None:
    """The report a previous run left at ``path`` (read before this run overwrites it), or None."""
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None


def write_report(path: Path, report: dict) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(report, indent=2) + "\n")
    print(f"written to {shown(path)}")


def shown(path: Path) -> str:
    """``path`` relative to the repository when it is inside it (what gets printed)."""
    path = Path(path).resolve()
    return str(path.relative_to(REPO_ROOT)) if path.is_relative_to(REPO_ROOT) else str(path)


def now_utc() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())


def machine() -> dict:
    """What the figures were measured on: CPU model and count, memory, OS, Python and key packages."""
    model = "unknown"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = " ".join(line.split(":", 1)[1].split())
                break
    except OSError:
        pass
    memory_gib = None
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                memory_gib = round(int(line.split()[1]) / 1024 / 1024, 1)
                break
    except OSError:
        pass
    os_name = platform.system()
    try:
        for line in Path("/etc/os-release").read_text().splitlines():
            if line.startswith("PRETTY_NAME="):
                os_name = line.split("=", 1)[1].strip('"')
    except OSError:
        pass
    packages = {}
    for name in ("pika", "gunicorn", "flask", "pulumi", "pulumi-aws"):
        try:
            packages[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            packages[name] = None
    return {
        "cpu": model,
        "cpus": os.cpu_count(),
        "memory_gib": memory_gib,
        "os": os_name,
        "python": platform.python_version(),
        "packages": packages,
    }


def wait_until(predicate, timeout: float, what: str, interval: float = 0.05) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise RuntimeError(f"timed out after {timeout:g} s waiting for {what}")
        time.sleep(interval)


def pin_group(pgid: int, cpus: set[int]) -> int:
    """Run every thread of process group ``pgid`` (a broker node) on ``cpus`` only; how many threads were moved."""
    moved = 0
    for pid, _ in _group_stats(pgid):
        try:
            tasks = os.listdir(f"/proc/{pid}/task")
        except OSError:
            continue
        for task in tasks:
            try:
                os.sched_setaffinity(int(task), cpus)
                moved += 1
            except OSError:
                pass
    return moved
