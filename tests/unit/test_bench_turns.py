"""Benchmark legs that take turns on the core: one at a time, each timed over its own turns only."""

import itertools
import threading
import time

import pytest
from pika.adapters.select_connection import IOLoop

from benchmarks import messaging
from benchmarks.freezing import Freezer
from benchmarks.turns import ALONE, Turns

SLICE = 0.01


def busy_leg(cpu_seconds: float, fail: bool = False):
    """A leg that works on its own pika ioloop until it used ``cpu_seconds`` of CPU, as a client-bound consumer does."""

    def leg(turn):
        loop = IOLoop()
        started, cpu_at_start = time.monotonic(), time.thread_time()
        finished = {}
        turn.take_turns(loop)

        def step():
            spin_until = time.thread_time() + 0.001
            while time.thread_time() < spin_until:
                pass
            if time.thread_time() - cpu_at_start >= cpu_seconds:
                finished["at"] = time.monotonic()
                loop.stop()
            else:
                loop.call_later(0, step)

        loop.call_later(0, step)
        loop.start()
        loop.close()
        if fail:
            raise RuntimeError("the leg failed")
        return {
            "turn": turn,
            "span": (started, finished["at"]),
            "wall": finished["at"] - started,
            "held": turn.elapsed(started, finished["at"]),
            "cpu": time.thread_time() - cpu_at_start,
        }

    return leg


def overlaps(a: list[tuple[float, float]], b: list[tuple[float, float]]) -> bool:
    return any(start_a < end_b and start_b < end_a for start_a, end_a in a for start_b, end_b in b)


def test_legs_hold_the_core_one_at_a_time_and_each_is_timed_over_its_own_turns():
    results = Turns(SLICE).run({"first": busy_leg(0.15), "second": busy_leg(0.15)})
    first, second = results["first"], results["second"]
    assert not overlaps(first["turn"].slices, second["turn"].slices)
    slices = sorted([(s, "first") for s in first["turn"].slices] + [(s, "second") for s in second["turn"].slices])
    assert slices[0][1] == "first"  # in the order given
    takers = [name for _, name in slices]
    assert sum(a != b for a, b in itertools.pairwise(takers)) >= 6  # they alternate, many times
    for leg in (first, second):
        # Timed over its own turns: at least the CPU it used (it works only while it holds the core), and
        # well under its wall time, which includes the other's turns. (Not "about its CPU": other work on a
        # loaded machine may take the core during a turn.)
        assert leg["held"] >= leg["cpu"] * 0.9
        assert leg["held"] < leg["wall"] * 0.8
    both_from, both_to = min(first["span"][0], second["span"][0]), max(first["span"][1], second["span"][1])
    assert first["held"] + second["held"] <= both_to - both_from  # no time counted twice


def test_a_leg_left_alone_keeps_the_core():
    results = Turns(SLICE).run({"short": busy_leg(0.03), "long": busy_leg(0.2)})
    short_end = results["short"]["turn"].slices[-1][1]
    after = [(start, end) for start, end in results["long"]["turn"].slices if start >= short_end]
    assert len(after) == 1 and after[0][1] - after[0][0] > 5 * SLICE  # no more handing on to nobody


def test_a_failing_leg_is_raised_and_the_other_still_finishes():
    outcome = {}

    def run():
        try:
            Turns(SLICE).run({"bad": busy_leg(0.02, fail=True), "good": busy_leg(0.05)})
        except RuntimeError as error:
            outcome["error"] = str(error)

    thread = threading.Thread(target=run)
    thread.start()
    thread.join(timeout=30)
    assert not thread.is_alive(), "the legs deadlocked"
    assert outcome == {"error": "the leg failed"}


def test_a_leg_alone_is_timed_by_the_wall_clock():
    ALONE.take_turns(None)  # nothing to hand on to: no timer
    assert ALONE.elapsed(10.0, 12.5) == 2.5


@pytest.mark.parametrize("slice_seconds", [0, -0.1])
@pytest.mark.parametrize("taking_turns", [Turns, Freezer])  # on the client core; on the whole machine
def test_a_slice_must_be_positive(taking_turns, slice_seconds):
    with pytest.raises(ValueError, match="slice_seconds must be > 0"):
        taking_turns(slice_seconds)


@pytest.mark.parametrize("option", ["--drain-slice", "--publish-slice"])
def test_the_messaging_benchmark_refuses_a_bad_slice_before_starting_a_broker(option, capsys, monkeypatch):
    monkeypatch.setattr(messaging, "RabbitMQNode", None)  # would fail if reached
    with pytest.raises(SystemExit) as exit_info:
        messaging.main([option, "0"])
    assert exit_info.value.code == 2
    assert f"{option} must be a number of seconds > 0, got 0.0" in capsys.readouterr().err
