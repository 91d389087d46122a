"""benchmarks.freezing: legs (a client process and its broker's process group) take the machine in turns."""

import itertools
import os
import signal
import subprocess
import sys
import textwrap
import time
import types

import pytest

from benchmarks import messaging
from benchmarks.freezing import Freezer, Leg

# Stands in for a broker node: a process group that works all the time, noting when it ran.
BUSY = textwrap.dedent(
    """
    import sys, time
    with open(sys.argv[1], "w") as out:
        while True:
            out.write(f"{time.monotonic()}\\n")
            out.flush()
            deadline = time.monotonic() + 0.001
            while time.monotonic() < deadline:
                pass
    """
)

# A leg's client: ready, then a line on stdin, then CPU work noting when it ran, then its result.
CLIENT = textwrap.dedent(
    """
    import json, sys, time
    cpu_seconds, samples, code = float(sys.argv[1]), sys.argv[2], int(sys.argv[3])
    print("ready", flush=True)
    sys.stdin.readline()
    if code:
        sys.exit(code)
    start = time.monotonic()
    with open(samples, "w") as out:
        while time.process_time() < cpu_seconds:
            out.write(f"{time.monotonic()}\\n")
            deadline = time.monotonic() + 0.001
            while time.monotonic() < deadline:
                pass
    print(json.dumps({"start": start, "end": time.monotonic(), "cpu": time.process_time()}))
    """
)

TOLERANCE = 0.005  # a stop signal takes effect within this (seconds)


@pytest.fixture
def brokers(tmp_path):
    """Two stand-in broker process groups, each noting when it ran; killed at the end."""
    processes = {
        name: subprocess.Popen([sys.executable, "-c", BUSY, str(tmp_path / f"{name}.broker")], start_new_session=True)
        for name in ("a", "b")
    }
    yield processes
    for process in processes.values():
        os.killpg(process.pid, signal.SIGCONT)
        os.killpg(process.pid, signal.SIGKILL)
        process.wait()


def client(tmp_path, name: str, cpu_seconds: float = 0.3, exit_code: int = 0) -> list[str]:
    return [sys.executable, "-c", CLIENT, str(cpu_seconds), str(tmp_path / f"{name}.client"), str(exit_code)]


def samples(path) -> list[float]:
    return [float(line) for line in path.read_text().split()]


def inside(instant: float, slices) -> bool:
    return any(since - TOLERANCE <= instant <= until + TOLERANCE for since, until in slices)


def state(pid: int) -> str:
    with open(f"/proc/{pid}/stat") as stat:
        return stat.read().rsplit(")", 1)[1].split()[0]


def test_legs_run_with_their_brokers_one_at_a_time_and_each_is_timed_over_its_own_turns(tmp_path, brokers):
    legs = [Leg(name, client(tmp_path, name), brokers[name].pid) for name in ("a", "b")]
    started = time.monotonic()
    held = Freezer(slice_seconds=0.02).run(legs, tmp_path)
    span = time.monotonic() - started

    # The turns alternate, first leg first, and never overlap.
    turns = sorted((since, until, name) for name, leg in held.items() for since, until in leg.slices)
    assert turns[0][2] == "a" and {name for _, _, name in turns[:4]} == {"a", "b"}
    assert all(earlier[1] <= later[0] for earlier, later in itertools.pairwise(turns))
    for name in ("a", "b"):
        leg = held[name]
        # Neither the client nor its broker ran outside the leg's own turns, from the moment both legs had
        # started (before, the second leg was getting ready) until the last turn (then all run again).
        both_started, last = max(held["a"].slices[0][0], held["b"].slices[0][0]), turns[-1][1]
        for path in (tmp_path / f"{name}.client", tmp_path / f"{name}.broker"):
            outside = [t for t in samples(path) if both_started < t < last and not inside(t, leg.slices)]
            assert not outside, f"{path.name} ran outside its turns at {outside[:3]}"
        # Timed over its turns: at least the CPU it used, well under the wall time the two legs took.
        elapsed = leg.elapsed(leg.result["start"], leg.result["end"])
        assert elapsed >= 0.9 * leg.result["cpu"] - 0.05
        assert elapsed < 0.8 * (leg.result["end"] - leg.result["start"])
    assert sum(leg.elapsed(leg.result["start"], leg.result["end"]) for leg in held.values()) <= span
    # Every broker runs again afterwards.
    assert all(state(process.pid) != "T" for process in brokers.values())


def test_a_failing_leg_is_named_and_leaves_nothing_stopped(tmp_path, brokers):
    legs = [
        Leg("a", client(tmp_path, "a", cpu_seconds=5.0), brokers["a"].pid),
        Leg("b", client(tmp_path, "b", exit_code=3), brokers["b"].pid),
    ]
    with pytest.raises(RuntimeError, match=r"b exited 3; its stderr is empty"):
        Freezer(slice_seconds=0.02).run(legs, tmp_path)
    time.sleep(0.05)
    assert all(state(process.pid) != "T" for process in brokers.values())


def test_a_leg_that_never_gets_ready_is_named(tmp_path, brokers):
    legs = [Leg("a", [sys.executable, "-c", "import sys; print('no'); sys.exit('cannot import it')"], brokers["a"].pid)]
    with pytest.raises(RuntimeError, match="a did not start: 'no\\\\n'; its stderr ends:\ncannot import it"):
        Freezer().run(legs, tmp_path)


def test_each_pair_of_publishing_legs_has_two_nodes_and_each_side_uses_both_in_a_round():
    for pair in messaging.NODE_OF:
        assert pair["b"] != pair["c"]
    assert {pair["b"] for pair in messaging.NODE_OF} == {pair["c"] for pair in messaging.NODE_OF} == {0, 1}
    assert messaging.PUBLISH[1] == messaging.PUBLISH[0][::-1]  # mirrored order: each side goes first once


class AnsweringChannel:
    """Stands in for a channel asked for a queue's depth: each answer takes the time given (a process stopped
    while it waited for the answer reads it that much later)."""

    def __init__(self, answers):
        self.answers = list(answers)
        self.now = 0.0

    def clock(self) -> float:
        return self.now

    def queue_declare(self, queue, passive):
        depth, seconds = self.answers.pop(0)
        self.now += seconds
        return types.SimpleNamespace(method=types.SimpleNamespace(message_count=depth))


def queue_depth(answers) -> messaging.QueueDepth:
    channel = AnsweringChannel(answers)
    depth = messaging.QueueDepth("amqp://unused", "q", clock=channel.clock)
    depth.channel = channel
    return depth


def test_an_answer_read_late_does_not_end_the_wait_for_the_queue():
    # Asked at 0.001 s, read 11 s later (stopped meanwhile): still the depth of 0.001 s, not 11 s of no change.
    depth = queue_depth([(2979, 0.001), (2979, 11.0), (3000, 0.001)])
    assert depth.wait_for(3000, settle=10.0)[0] == 3000


def test_a_queue_that_stops_growing_ends_the_wait_with_what_it_holds():
    depth = queue_depth([(2979, 0.001)] + [(2979, 1.0)] * 12)
    assert depth.wait_for(3000, settle=10.0) == (2979, 0.0)
