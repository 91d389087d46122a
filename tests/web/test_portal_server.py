"""The portal's server layer as a real process: its worker class (gevent by default), a bad one refused,
SIGTERM with requests in flight and idle keep-alive connections, kept connections to a backend that restarted.

The backend is the gated one of test_portal_coalescing: it answers only when the test opens its gate, so
what is in flight at once doesn't depend on the machine's load.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import time
from concurrent.futures import ThreadPoolExecutor

import pytest
import requests
from packaging.utils import canonicalize_name

from devtools.procs import AppProcess, free_port
from tests.web.conftest import refusal, run_python
from tests.web.test_app_locks import lock
from tests.web.test_portal_coalescing import CountingBackend

NAMES = ["AMZN", "MSFT", "GOOG", "NVDA", "IBM", "ORCL"]


@pytest.fixture
def backend():
    server = CountingBackend()
    yield server
    server.close()


def start_portal(apps, backend, env=None):
    # One worker and one thread: what a gthread worker can serve at a time is one request.
    env = {"WEATHER_URL": backend.url, "STOCKS_URL": backend.url, "WEB_CONCURRENCY": "1", "THREADS": "1", **(env or {})}
    return apps.start("apps.portal", ["--read-timeout", "5"], env={"PORTAL_COALESCE": "false", **env})


def started_with(output: str) -> str:
    """The worker class in the portal's "starting" line, checked against the one gunicorn names."""
    starting = next(json.loads(line) for line in output.splitlines() if '"message": "starting"' in line)
    assert f'"Using worker: {starting["worker_class"]}"' in output
    return starting["worker_class"]


def in_flight_at_once(backend, urls: list[str], wait: float = 2.0) -> tuple[int, list[requests.Response]]:
    """GET every URL at the same time with the backend's gate closed: how many reached it, then the answers."""
    backend.gate.clear()
    before = len(backend.asked)
    with ThreadPoolExecutor(len(urls)) as pool:
        futures = [pool.submit(requests.get, url, timeout=15) for url in urls]
        deadline = time.monotonic() + wait
        while len(backend.asked) - before < len(urls) and time.monotonic() < deadline:
            time.sleep(0.02)
        reached = len(backend.asked) - before
        backend.gate.set()
        return reached, [future.result() for future in futures]


def read_response(sock: socket.socket) -> bytes:
    """One whole HTTP response (it has a Content-Length) from a kept-alive connection."""
    data = b""
    while b"\r\n\r\n" not in data:
        data += sock.recv(4096) or pytest.fail(f"connection closed after {data!r}")
    head, body = data.split(b"\r\n\r\n", 1)
    length = int(next(line for line in head.lower().split(b"\r\n") if line.startswith(b"content-length:"))[15:])
    while len(body) < length:
        body += sock.recv(4096) or pytest.fail("connection closed in the body")
    return head + b"\r\n\r\n" + body


@pytest.mark.parametrize(("env", "expected"), [({}, "gevent"), ({"WORKER_CLASS": "gthread"}, "gthread")])
def test_the_portal_runs_gevent_by_default_and_gthread_when_asked(apps, backend, env, expected):
    portal = start_portal(apps, backend, env)
    assert started_with(portal.process.output()) == expected
    reached, answers = in_flight_at_once(backend, [f"{portal.url}/api/stock/{name}" for name in NAMES])
    assert [answer.status_code for answer in answers] == [200] * len(NAMES)
    if expected == "gevent":
        # Greenlets: every request waits for the backend at the same time, whatever THREADS says.
        assert reached == len(NAMES)
    else:
        assert reached == 1  # THREADS=1: the others wait for the thread


BAD_CLASS = "portal: configuration error: WORKER_CLASS='eventlet' is not a worker class: use gthread or gevent"


@pytest.mark.parametrize(
    ("args", "env", "message"),
    [
        ((), {"WORKER_CLASS": "eventlet"}, BAD_CLASS),
        (("--worker-class", "sync"), {}, "error: argument --worker-class: invalid choice: 'sync'"),
    ],
)
def test_a_bad_worker_class_is_refused_with_a_clear_message(args, env, message):
    result = run_python("-m", "apps.portal", "--port", "1", *args, env=env)
    assert result.returncode == 2
    assert message in result.stderr.strip().splitlines()[-1], result.stderr
    if env:
        assert result.stderr.strip() == message


def test_without_gevent_installed_the_gevent_worker_class_is_refused():
    # As in an image without gevent (weather's, stocks'): the import fails.
    code = "import runpy, sys; sys.modules['gevent'] = None; runpy.run_module('apps.portal', run_name='__main__')"
    assert refusal(run_python("-c", code, "--port", "1")) == (
        "portal: configuration error: worker class gevent needs the gevent package, which is not installed: use gthread"
    )


def test_sigterm_answers_the_requests_in_flight_and_closes_idle_keep_alive_connections(apps, backend):
    portal = start_portal(apps, backend, {"WEB_CONCURRENCY": "2", "GRACEFUL_TIMEOUT": "20"})
    idle = socket.create_connection(("127.0.0.1", portal.port), timeout=10)  # a browser's or a load balancer's
    idle.sendall(b"GET /health HTTP/1.1\r\nHost: portal\r\n\r\n")
    assert read_response(idle).startswith(b"HTTP/1.1 200 ")
    backend.gate.clear()
    with ThreadPoolExecutor(1) as pool:
        in_flight = pool.submit(requests.get, f"{portal.url}/api/stock/AMZN", timeout=15)
        backend.wait_asked(1)
        os.kill(portal.process.process.pid, signal.SIGTERM)  # to gunicorn's master only, as docker stop does
        stopping = time.monotonic()
        time.sleep(1.5)  # the workers are stopping while the call waits for the backend
        backend.gate.set()
        answer = in_flight.result()
    assert answer.status_code == 200 and answer.json()["symbol"] == "AMZN"
    assert idle.recv(4096) == b""  # closed by the portal, not kept until GRACEFUL_TIMEOUT
    # A clean exit, within about 2 s of the answer, well before GRACEFUL_TIMEOUT (20 s). The second worker may
    # still be starting when SIGTERM comes (the test below).
    assert portal.process.wait(30) == 0
    took = time.monotonic() - stopping
    print(f"\nportal stopped {took:.1f} s after SIGTERM")
    assert took < 12, f"the portal took {took:.1f} s to stop: a worker waited for GRACEFUL_TIMEOUT"
    idle.close()


@pytest.mark.parametrize("module", ["apps.portal", "apps.weather"])
def test_the_log_says_where_the_app_listens(apps, module):
    app = apps.start(module)
    starts = [json.loads(line) for line in app.process.output().splitlines() if '"Listening at:' in line]
    assert [line["message"] for line in starts] == [
        f"Listening at: http://127.0.0.1:{app.port}, a socket per worker ({app.process.process.pid})"
    ]


@pytest.mark.parametrize("worker_class", ["gevent", "gthread"])
def test_a_sigterm_while_a_worker_starts_stops_it_as_soon_as_it_can_act(tmp_path, worker_class):
    # An ECS task stopped just after it started: gunicorn's master passes SIGTERM on to a worker that has not
    # yet installed its own handlers. Lost, the worker served on until the master SIGKILLed it
    # GRACEFUL_TIMEOUT later (seen in about 1 run in 30 of the test above, under load).
    stall = 2.0
    app = AppProcess(
        "tests.web.slow_start_app",
        ["--host", "127.0.0.1", "--port", str(free_port()), "--worker-class", worker_class, "--workers", "1"],
        env={"SLOW_START_SECONDS": str(stall), "GRACEFUL_TIMEOUT": "30"},
        log_path=tmp_path / "app.log",
    ).start()
    try:
        deadline = time.monotonic() + 20
        while "worker forked" not in app.output():
            assert time.monotonic() < deadline and app.process.poll() is None, app.output()
            time.sleep(0.02)
        os.kill(app.process.pid, signal.SIGTERM)  # to the master only, as docker stop does
        stopping = time.monotonic()
        assert app.wait(25) == 0, app.output()
    finally:
        app.kill()
    took = time.monotonic() - stopping
    assert took < stall + 5, f"stopped after {took:.1f} s (GRACEFUL_TIMEOUT is 30):\n{app.output()}"
    log = app.output()
    assert "Stop signal SIGTERM came while the worker was starting: stopping" in log
    assert "Worker exiting" in log and "SIGKILL" not in log, log


def test_kept_connections_to_a_backend_that_restarted_are_replaced(apps):
    weather = apps.start("apps.weather", ["--delay-ms", "300"])  # the calls below overlap: a connection each
    portal = apps.start(
        "apps.portal", env={"WEATHER_URL": weather.url, "STOCKS_URL": weather.url, "PORTAL_COALESCE": "false"}
    )
    cities = ["Paris", "Oslo", "Tokyo", "London"]
    with ThreadPoolExecutor(len(cities)) as pool:  # several kept connections to weather
        answers = list(pool.map(requests.get, [f"{portal.url}/api/weather/{city}" for city in cities]))
    assert [answer.status_code for answer in answers] == [200] * len(cities)
    assert weather.stop() == 0  # closes them all
    apps.start("apps.weather", port=weather.port)
    for city in cities:  # the first call finds its kept connection closed: once more, on a fresh one
        answer = requests.get(f"{portal.url}/api/weather/{city}", timeout=5)
        assert answer.status_code == 200, answer.text


# In a fresh interpreter: the distributions that the portal's gevent worker loads, as gunicorn loads it
# (in the master, after the portal's __main__ patched the standard library and imported its modules).
PROBE = """
import json, runpy, sys
from importlib.metadata import packages_distributions
before = set(sys.modules)
sys.argv = ["apps.portal", "--help"]
try:
    runpy.run_module("apps.portal", run_name="__main__")
except SystemExit:
    pass
from apps.common import server
server._gevent_worker()
owners = packages_distributions()
print(json.dumps(sorted({d for m in set(sys.modules) - before for d in owners.get(m.split(".")[0], [])})))
"""


def test_the_portal_lock_holds_what_its_gevent_worker_imports():
    result = run_python("-c", PROBE, timeout=60)
    assert result.returncode == 0, result.stderr
    imported = {canonicalize_name(name) for name in json.loads(result.stdout.strip().splitlines()[-1])}
    assert {"gevent", "greenlet", "gunicorn", "packaging"} <= imported
    assert imported - set(lock("portal")) - {"seaport"} == set()


def worker_sockets(master_pid: int, port: int, state: str) -> list[int]:
    """How many TCP sockets on ``port`` in ``state`` ("01" established, "0A" listening) each worker holds."""
    inodes = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        with open(table) as lines:
            next(lines)
            for fields in map(str.split, lines):
                if fields[3] == state and int(fields[1].rsplit(":", 1)[1], 16) == port:
                    inodes.add(fields[9])
    counts = []
    with open(f"/proc/{master_pid}/task/{master_pid}/children") as children:
        for worker in children.read().split():
            links = [os.readlink(os.path.join(f"/proc/{worker}/fd", fd)) for fd in os.listdir(f"/proc/{worker}/fd")]
            counts.append(len({link[8:-1] for link in links if link.startswith("socket:")} & inodes))
    return counts


@pytest.mark.parametrize("app", ["apps.portal", "apps.weather"])
def test_a_burst_of_connections_is_spread_over_the_workers(apps, backend, app):
    # A listening socket per worker: the kernel spreads new connections over them. On one shared socket,
    # the worker that woke first took most of a burst (92 of 128 seen), while the other idled.
    server = apps.start(app, env={"WEATHER_URL": backend.url, "STOCKS_URL": backend.url, "WEB_CONCURRENCY": "2"})
    master = server.process.process.pid
    deadline = time.monotonic() + 15
    while worker_sockets(master, server.port, "0A") != [1, 1]:  # serving from the first worker's bind on
        assert time.monotonic() < deadline, "the second worker never listened"
        time.sleep(0.05)
    clients = [socket.create_connection(("127.0.0.1", server.port)) for _ in range(48)]
    try:
        for client in clients:
            client.sendall(b"GET /health HTTP/1.1\r\nHost: test\r\n\r\n")
        for client in clients:
            assert read_response(client).startswith(b"HTTP/1.1 200")
        counts = worker_sockets(master, server.port, "01")
        assert len(counts) == 2 and sum(counts) == 48, counts
        assert min(counts) >= 12, counts  # by the kernel's hash: fewer is a chance of about 1 in 4500
    finally:
        for client in clients:
            client.close()


@pytest.mark.parametrize("taken_by", ["another program", "another instance"])
def test_a_taken_port_stops_the_app_at_once_with_one_line(apps, backend, taken_by):
    if taken_by == "another program":
        holder = socket.create_server(("127.0.0.1", 0))
        port = holder.getsockname()[1]
    else:  # its workers' sockets allow sharing the port with each other, not with a second instance
        holder = None
        port = apps.start("apps.weather").port
    try:
        result = run_python("-m", "apps.weather", "--host", "127.0.0.1", "--port", str(port))
    finally:
        if holder:
            holder.close()
    assert refusal(result) == (
        f"weather: configuration error: cannot listen on 127.0.0.1:{port} (--host/HOST, --port/PORT): "
        "Address already in use"
    )
