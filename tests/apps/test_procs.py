"""Child processes of tests get an allow-listed environment, never a copy of the developer's."""

from __future__ import annotations

import itertools
import json
import socket
import subprocess
import sys

from devtools import procs
from devtools.procs import REPO_ROOT, AppProcess, child_env

LEAKY = {
    "AWS_ACCESS_KEY_ID": "AKIAEXAMPLE",
    "AWS_PROFILE": "prod-admin",
    "RABBITMQ_URL": "amqp://prod-user:pw@prod-broker:5672/%2F",
    "RABBITMQ_SERVER_ADDITIONAL_ERL_ARGS": "+S 64",
    "CONSUL_HTTP_TOKEN": "secret-token",
    "PYTHONPATH": "/somewhere/else",
}


def environment_seen_by_a_child(env: dict[str, str]) -> dict[str, str]:
    script = "import json, os; print(json.dumps(dict(os.environ)))"
    result = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True, check=True)
    return json.loads(result.stdout)


def test_developer_settings_do_not_reach_a_child(monkeypatch):
    for name, value in LEAKY.items():
        monkeypatch.setenv(name, value)
    monkeypatch.setenv("LC_ALL", "C.UTF-8")

    seen = environment_seen_by_a_child(child_env(RABBITMQ_QUEUE="mine"))

    assert not {name for name in seen if name.startswith(("AWS_", "RABBITMQ_SERVER", "CONSUL_"))}
    assert seen["RABBITMQ_QUEUE"] == "mine"  # what the test passes explicitly arrives
    assert "RABBITMQ_URL" not in seen
    assert seen["PYTHONPATH"] == str(REPO_ROOT)  # this checkout, not the developer's path
    assert seen["PATH"] and seen["LC_ALL"] == "C.UTF-8"  # tools and locale still work


def test_explicit_values_win_and_none_leaves_a_variable_out(monkeypatch):
    monkeypatch.setenv("LANG", "en_US.UTF-8")
    env = child_env({"LANG": "C", "LOG_LEVEL": "debug"}, LOG_LEVEL="warning", TZ=None)
    assert env["LANG"] == "C" and env["LOG_LEVEL"] == "warning" and "TZ" not in env
    assert "LANG" not in child_env(LANG=None)


def test_app_processes_use_the_allow_list(monkeypatch, tmp_path):
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "leaked")
    app = AppProcess("json.tool", ["--help"], env={"EXTRA": "1"}, log_path=tmp_path / "out.log")
    assert "AWS_SECRET_ACCESS_KEY" not in app.env and app.env["EXTRA"] == "1"


def test_free_ports_are_below_the_range_outgoing_connections_draw_from():
    # A broker restarted on its port while clients reconnect must find it free: a port from the
    # ephemeral range can be taken meanwhile as some connection's source port (EADDRINUSE in CI).
    low, _ = procs.ephemeral_port_range()
    ports = {procs.free_port() for _ in range(20)}
    assert all(procs.LOWEST_TEST_PORT <= port < low for port in ports)
    assert len(ports) > 1  # drawn at random, so concurrent test runs rarely pick the same
    for port in ports:
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", port))  # free indeed


def test_free_port_skips_a_bound_port_and_never_hands_a_port_out_twice(monkeypatch):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        busy = taken.getsockname()[1]
        other = busy + 1 if busy + 1 < 65536 else busy - 1
        monkeypatch.setattr(procs, "_handed_out", set())
        draws = iter([busy, busy, other, other, busy, other - 2 if other > 2 else other + 2])
        monkeypatch.setattr(procs.random, "randrange", lambda *_: next(draws))
        monkeypatch.setattr(procs, "ephemeral_port_range", lambda: (65535, 65535))
        first = procs.free_port()
        assert first == other  # the bound port was skipped
        assert procs.free_port() not in (busy, first)  # and a port is never handed out twice


def test_parallel_test_workers_draw_ports_from_slices_that_do_not_overlap():
    # Under pytest-xdist every worker is a process of its own: a port handed out once per process is not
    # enough, two workers could draw the same port before either binds it.
    count = 3
    slices = [
        procs.port_slice(10000, 32768, {"PYTEST_XDIST_WORKER": f"gw{n}", "PYTEST_XDIST_WORKER_COUNT": str(count)})
        for n in range(count)
    ]
    assert all(end - first >= 7000 for first, end in slices)
    assert all(end <= next_first for (_, end), (next_first, _) in itertools.pairwise(slices))
    assert slices[0][0] >= 10000 and slices[-1][1] <= 32768
    assert procs.port_slice(10000, 32768, {}) == (10000, 32768)  # a run without workers: the whole range
    assert procs.port_slice(10000, 32768, {"PYTEST_XDIST_WORKER": "master"}) == (10000, 32768)


def test_free_port_stays_in_this_workers_slice(monkeypatch):
    monkeypatch.setenv("PYTEST_XDIST_WORKER", "gw1")
    monkeypatch.setenv("PYTEST_XDIST_WORKER_COUNT", "2")
    low, _ = procs.ephemeral_port_range()
    first, end = procs.port_slice(procs.LOWEST_TEST_PORT, low)
    assert first > procs.LOWEST_TEST_PORT
    assert all(first <= procs.free_port() < end for _ in range(20))
