"""Legs of a benchmark that take turns on one core, a slice at a time, so they see the same machine.

Why: on a shared VM a core's speed is not steady. On the machine these benchmarks were tuned on, a
fixed loop ran at either about 0.8 x or 1.2-1.5 x its mean speed, switching every 0.5-5 s (the
autocorrelation of its speed fell to 0.4 after 0.5 s and 0.2 after 1 s). Two client-bound legs run
one after the other, for seconds each, therefore often ran on different machines: their ratio moved
by 10 % from round to round. Taken in turns of 30 ms, both legs run on the same machine: the ratio
of an auto-ack consumer and apps.receive moved by 1-2 %, at the same median.

Each leg runs in a thread of its own, on its own pika ioloop, and holds the turn until its ioloop's
timer hands it on (``Turn.take_turns``). The other legs wait without using the CPU. A leg is still
timed over seconds: ``Turn.elapsed`` is the time it held the turn between two instants. Work a leg
left to someone else (a broker on another core, say) goes on while it waits, so legs bound by
another process's CPU gain nothing from this: they take turns with benchmarks.freezing instead.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import TypeVar

SLICE_SECONDS = 0.03  # well below the ~0.5 s over which this machine's core speed stays put

T = TypeVar("T")


class Turn:
    """One leg's share of the core: when it held it, and the timer that hands it on."""

    def __init__(self, turns: Turns | None, name: str):
        self.turns = turns
        self.name = name
        self.slices: list[tuple[float, float]] = []  # (took the turn, handed it on), in order
        self.took_at: float | None = None

    def take_turns(self, ioloop) -> None:
        """Hand the turn on every slice from this pika ``ioloop`` (call it once the leg's timing starts)."""
        if self.turns is None:
            return
        slice_seconds = self.turns.slice_seconds

        def hand_on() -> None:
            self.turns.hand_on(self)
            ioloop.call_later(slice_seconds, hand_on)

        ioloop.call_later(slice_seconds, hand_on)

    def elapsed(self, start: float, end: float) -> float:
        """Seconds between ``start`` and ``end`` (``time.monotonic()``) during which this leg held the turn."""
        if self.turns is None:
            return end - start
        held = [*self.slices, (self.took_at, time.monotonic())] if self.took_at is not None else self.slices
        return sum(max(0.0, min(until, end) - max(since, start)) for since, until in held)


ALONE = Turn(None, "alone")  # a leg that runs by itself: elapsed is wall time


class Turns:
    """Runs legs in threads that take the core in turns, in the order given, ``slice_seconds`` each."""

    def __init__(self, slice_seconds: float = SLICE_SECONDS):
        if not slice_seconds > 0:
            raise ValueError(f"slice_seconds must be > 0, got {slice_seconds!r}")
        self.slice_seconds = slice_seconds
        self._lock = threading.Condition()
        self._queue: list[Turn] = []  # legs still running, the holder first

    def run(self, legs: dict[str, Callable[[Turn], T]]) -> dict[str, T]:
        """Each leg's result, by name; each leg is called with its Turn. The first error of a leg is raised."""
        turns = [Turn(self, name) for name in legs]
        self._queue = list(turns)
        results: dict[str, T] = {}
        errors: list[BaseException] = []

        def leg(turn: Turn) -> None:
            try:
                self._wait_for(turn)
                results[turn.name] = legs[turn.name](turn)
            except BaseException as error:  # raised again in the caller's thread
                errors.append(error)
            finally:
                self._leave(turn)

        threads = [threading.Thread(target=leg, args=(turn,), name=f"turn-{turn.name}") for turn in turns]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        if errors:
            raise errors[0]
        return results

    def hand_on(self, turn: Turn) -> None:
        """Called by the holder: the next leg's turn; returns when it is ``turn``'s again."""
        with self._lock:
            if len(self._queue) < 2:
                return  # the others finished: keep going
            self._release(turn)
            self._queue.append(self._queue.pop(0))
            self._lock.notify_all()
        self._wait_for(turn)

    def _wait_for(self, turn: Turn) -> None:
        with self._lock:
            self._lock.wait_for(lambda: self._queue[0] is turn)
            turn.took_at = time.monotonic()

    def _leave(self, turn: Turn) -> None:
        with self._lock:
            if turn.took_at is not None:
                self._release(turn)
            if turn in self._queue:
                self._queue.remove(turn)
            self._lock.notify_all()

    @staticmethod
    def _release(turn: Turn) -> None:
        turn.slices.append((turn.took_at, time.monotonic()))
        turn.took_at = None
