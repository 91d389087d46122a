"""Legs bound by a broker's CPU that take turns on the whole machine: each leg's processes are stopped while
the other's run, a slice at a time.

Why: on a shared VM a core's speed is not steady (benchmarks.turns). Two publishers run one after the other,
for seconds each, often ran on different machines: their ratio moved by 10 % and more from round to round.
Publishing is bound by the broker, which goes on with a publisher's backlog whatever the client does, so
threads taking turns on the client core (benchmarks.turns) cannot share it. Here each leg has a broker
node of its own, and the leg's client process and its broker node are stopped (SIGSTOP) and continued
(SIGCONT) together: a stopped leg does nothing at all, and its pipeline stays as full as it was. Both legs
see the same machine, a slice at a time; each is still timed over seconds of its own.

A leg's client is a command that prints a line once it is ready, starts when it reads a line on its stdin,
and prints its result (JSON) as its last line of output. Its instants (``time.monotonic()``, the same clock
in every process) are turned into the time it held the machine by ``Held.elapsed``.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

from devtools.procs import REPO_ROOT, child_env

SLICE_SECONDS = 0.03  # well below the ~0.5 s over which this machine's core speed stays put
READY = "ready"


@dataclass
class Leg:
    """A client command and the process group of the broker node it talks to (stopped and continued with it)."""

    name: str
    command: list[str]
    broker_pgid: int


@dataclass
class Held:
    """What a leg printed last (its result) and when it held the machine."""

    result: dict
    slices: list[tuple[float, float]] = field(default_factory=list)  # (continued, stopped), in order

    def elapsed(self, start: float, end: float) -> float:
        """Seconds between ``start`` and ``end`` (``time.monotonic()``) during which the leg held the machine."""
        return sum(max(0.0, min(until, end) - max(since, start)) for since, until in self.slices)


class Freezer:
    """Runs legs that take the machine in turns, in the order given, ``slice_seconds`` each."""

    def __init__(self, slice_seconds: float = SLICE_SECONDS, timeout: float = 600.0):
        if not slice_seconds > 0:
            raise ValueError(f"slice_seconds must be > 0, got {slice_seconds!r}")
        self.slice_seconds = slice_seconds
        self.timeout = timeout

    def run(self, legs: list[Leg], log_dir: Path) -> dict[str, Held]:
        """Each leg's result and slices, by name. Raises RuntimeError if a leg fails, with the end of its stderr
        (kept in ``log_dir``); every process stopped here is continued whatever happens."""
        logs = {leg.name: open(log_dir / f"{leg.name}.stderr", "w") for leg in legs}  # noqa: SIM115 - closed below
        processes: dict[str, subprocess.Popen] = {}
        groups: dict[str, tuple[int, ...]] = {}
        try:
            for leg in legs:
                processes[leg.name] = subprocess.Popen(
                    leg.command,
                    stdin=subprocess.PIPE,
                    stdout=subprocess.PIPE,
                    stderr=logs[leg.name],
                    text=True,
                    cwd=REPO_ROOT,
                    env=child_env(),
                    start_new_session=True,  # a process group of its own, to stop and continue
                )
                groups[leg.name] = (processes[leg.name].pid, leg.broker_pgid)
            for leg in legs:
                line = processes[leg.name].stdout.readline()
                if line.strip() != READY:
                    with contextlib.suppress(subprocess.TimeoutExpired):
                        processes[leg.name].wait(timeout=5)  # for what it says on its way out
                    raise RuntimeError(f"{leg.name} did not start: {line!r}{_tail(log_dir, leg.name)}")
            held = {leg.name: Held({}) for leg in legs}
            for leg in legs[1:]:
                _signal(groups[leg.name], signal.SIGSTOP)
            for process in processes.values():
                process.stdin.write("go\n")
                process.stdin.close()
            self._take_turns([leg.name for leg in legs], processes, groups, held)
        finally:
            for pgids in groups.values():
                _signal(pgids, signal.SIGCONT)
            for process in processes.values():
                if process.poll() is None:
                    process.kill()
                    process.wait()
            for log in logs.values():
                log.close()
        for name, process in processes.items():
            output = process.stdout.read().strip().splitlines()
            if process.returncode != 0 or not output:
                raise RuntimeError(f"{name} exited {process.returncode}{_tail(log_dir, name)}")
            held[name].result = json.loads(output[-1])
        return held

    def _take_turns(self, running: list[str], processes, groups, held: dict[str, Held]) -> None:
        """Hand the machine from leg to leg until every leg has exited; the holder is ``running[0]``."""
        deadline = time.monotonic() + self.timeout
        since = time.monotonic()
        while running:
            holder = running[0]
            if time.monotonic() > deadline:
                raise RuntimeError(f"{', '.join(running)} still running after {self.timeout:g} s")
            try:
                processes[holder].wait(timeout=self.slice_seconds)
                running.pop(0)  # done: the next leg's turn, for good
            except subprocess.TimeoutExpired:
                if len(running) == 1:
                    continue  # alone: keeps the machine
                running.append(running.pop(0))
            _signal(groups[holder], signal.SIGSTOP)  # a finished leg's broker too, until every leg is done
            held[holder].slices.append((since, time.monotonic()))
            if running:
                since = time.monotonic()  # before the signal: the leg may run at once
                _signal(tuple(reversed(groups[running[0]])), signal.SIGCONT)  # its broker first, then its client


def _tail(log_dir: Path, name: str, lines: int = 20) -> str:
    """The end of a leg's stderr, for an error message (``log_dir`` may be gone by the time it is read)."""
    text = (log_dir / f"{name}.stderr").read_text(errors="replace").strip().splitlines()[-lines:]
    return "; its stderr ends:\n" + "\n".join(text) if text else "; its stderr is empty"


def _signal(pgids: tuple[int, ...], signum: int) -> None:
    for pgid in pgids:
        with contextlib.suppress(ProcessLookupError):  # a client that has exited
            os.killpg(pgid, signum)
