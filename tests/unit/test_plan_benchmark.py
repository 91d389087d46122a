"""benchmarks.plan: one process per size, driven in rounds of alternating order; medians and the growth's spread."""

import io
import json
import sys

import pytest

from benchmarks import plan


def sample(resources, cpu_seconds):
    return {"resources": resources, "seconds": cpu_seconds * 2, "cpu_seconds": cpu_seconds, "gc_cpu_seconds": 0.3}


def test_a_point_is_the_median_of_its_plans():
    point = plan.point(10, [sample(96, 0.5), sample(96, 0.3), sample(96, 0.4)])
    assert (point["resources"], point["cpu_seconds"], point["seconds"], point["gc_cpu_seconds"]) == (96, 0.4, 0.8, 0.3)
    assert point["cpu_ms_per_resource"] == round(0.4 / 96 * 1000, 2)
    assert point["cpu_runs"] == [0.5, 0.3, 0.4]


def test_the_growth_of_each_series_of_rounds():
    samples = {10: [sample(100, 1.0), sample(100, 2.0)], 100: [sample(1000, 10.0), sample(1000, 30.0)]}
    assert plan.cpu_growth(samples, [10, 100], slice(0, None, 2)) == 1.0
    assert plan.cpu_growth(samples, [10, 100], slice(1, None, 2)) == 1.5


# A stand-in for ``--worker N``: ready, then one sample per line read (resources = N, CPU = how many so far).
FAKE_WORKER = """
import json, sys
services = int(sys.argv[1])
print(json.dumps({"ready": services}), flush=True)
for count, _ in enumerate(sys.stdin, 1):
    print(json.dumps({"resources": services, "seconds": count, "cpu_seconds": count, "gc_cpu_seconds": 0}), flush=True)
"""


def test_each_size_plans_in_its_own_process_once_per_round_in_alternating_order(monkeypatch):
    monkeypatch.setattr(plan, "worker_command", lambda services: [sys.executable, "-c", FAKE_WORKER, str(services)])
    orders = []
    original = plan.Worker.plan

    def plan_and_note(worker):
        orders.append(worker.services)
        return original(worker)

    monkeypatch.setattr(plan.Worker, "plan", plan_and_note)
    samples = plan.measure([10, 50, 100], repeat=3)
    assert orders == [10, 50, 100, 100, 50, 10, 10, 50, 100]
    for services in (10, 50, 100):
        assert [(s["resources"], s["cpu_seconds"]) for s in samples[services]] == [(services, n) for n in (1, 2, 3)]


def test_a_worker_warms_up_then_times_one_plan_per_line(monkeypatch, capsys):
    monkeypatch.setattr(sys, "stdin", io.StringIO("plan\nplan\n"))
    assert plan.worker(2) == 0
    lines = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert lines[0] == {"ready": 2}
    assert len(lines) == 3 and lines[1]["resources"] == lines[2]["resources"] > 0
    assert all(line["cpu_seconds"] > 0 and line["gc_cpu_seconds"] > 0 for line in lines[1:])


def test_a_failed_plan_says_which_size_and_why(monkeypatch):
    failing = "import sys; print('Traceback: the plan failed', file=sys.stderr); sys.exit(3)"
    monkeypatch.setattr(plan, "worker_command", lambda services: [sys.executable, "-c", failing])
    with pytest.raises(RuntimeError, match=r"the 10-service plan process exited \(3\):\nTraceback: the plan failed"):
        plan.measure([10], repeat=1)
