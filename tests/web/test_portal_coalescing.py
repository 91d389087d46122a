"""The portal coalesces identical backend calls in flight (apps/portal/flight.py), as a real process over HTTP.

The backend is a real HTTP server in this test that counts what it is asked
and answers when the test opens its gate: the portal's requests are all in
flight at once, whatever the machine's load, and the count says how many
calls reached the backend.
"""

from __future__ import annotations

import json
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit

import pytest
import requests

from apps.portal import flight
from tests.web.conftest import refusal, run_python

CALLERS = 8  # identical requests at the same time
JOIN_SECONDS = 0.8  # time the other requests get to reach the portal once the first one reached the backend


def record(path: str, name: str, price: float = 12.5) -> dict:
    if path.startswith("/stock"):
        return {"symbol": name, "name": f"{name} Corp.", "price": price}
    return {"city": name, "country": "XX", "temp": 20.0, "format": "C"}


class CountingBackend:
    """stocks and weather in one HTTP server: counts each path asked, answers once ``gate`` is open.

    ``plan`` scripts the first requests (in the order they arrive): ``("answer", delay)``,
    ``("error", delay)`` for an HTTP 500, ``("drop", delay)`` to close the connection unanswered.
    """

    def __init__(self):
        self.asked: list[str] = []
        self.gate = threading.Event()
        self.gate.set()
        self.plan: list[tuple[str, float]] = []
        self.price = 12.5  # of every stock
        lock = threading.Lock()
        backend = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def do_GET(self):
                with lock:
                    backend.asked.append(self.path)
                    n = len(backend.asked) - 1
                action, delay = backend.plan[n] if n < len(backend.plan) else ("answer", 0.0)
                backend.gate.wait(10)
                time.sleep(delay)
                if action == "drop":
                    return  # HTTP/1.0: the connection closes without an answer
                self.send_response(500 if action == "error" else 200)
                body = b"<html>oops</html>" if action == "error" else json.dumps(self.answer()).encode()
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def answer(self) -> dict:
                parts = urlsplit(self.path)
                if "?" in self.path:
                    listed = next(iter(parse_qs(parts.query).values()))[0].split(",")
                    return {"results": [record(parts.path, name, backend.price) for name in listed]}
                return record(parts.path, parts.path.rsplit("/", 1)[1], backend.price)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        threading.Thread(target=self.server.serve_forever, args=(0.05,), daemon=True).start()
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"

    def close(self) -> None:
        """Answer whatever still waits for the gate, and stop serving."""
        self.gate.set()
        self.server.shutdown()

    def count(self, path: str) -> int:
        return self.asked.count(path)

    def wait_asked(self, count: int, timeout: float = 10.0) -> None:
        deadline = time.monotonic() + timeout
        while len(self.asked) < count:
            assert time.monotonic() < deadline, f"the backend was asked {len(self.asked)} times, not {count}"
            time.sleep(0.01)


@pytest.fixture
def backend():
    server = CountingBackend()
    yield server
    server.close()


def start_portal(apps, backend, *args, env=None):
    return apps.start(
        "apps.portal",
        ["--read-timeout", "5", *args],
        env={"WEATHER_URL": backend.url, "STOCKS_URL": backend.url, "THREADS": "32", **(env or {})},
    )


def all_at_once(backend, urls: list[str]) -> list[requests.Response]:
    """GET every URL at the same time while the backend holds its answers; the responses, in order."""
    backend.gate.clear()
    before = len(backend.asked)
    with ThreadPoolExecutor(len(urls)) as pool:
        futures = [pool.submit(requests.get, url, timeout=10) for url in urls]
        backend.wait_asked(before + 1)
        time.sleep(JOIN_SECONDS)
        backend.gate.set()
        return [future.result() for future in futures]


def test_identical_calls_in_flight_share_one_backend_call(apps, backend):
    portal = start_portal(apps, backend)
    urls = [f"{portal.url}/api/stock/AMZN", f"{portal.url}/api/stock/MSFT"] * CALLERS
    answers = all_at_once(backend, urls)
    assert [answer.status_code for answer in answers] == [200] * len(urls)
    assert [answer.json()["symbol"] for answer in answers] == ["AMZN", "MSFT"] * CALLERS
    # One call per path: identical ones shared, different ones not.
    assert backend.count("/stock/AMZN") == 1 and backend.count("/stock/MSFT") == 1, backend.asked
    # Nothing is cached: once the flight has landed, the next call asks again.
    assert requests.get(f"{portal.url}/api/stock/AMZN", timeout=10).json()["symbol"] == "AMZN"
    assert backend.count("/stock/AMZN") == 2


def test_pages_in_flight_share_their_backend_calls(apps, backend):
    portal = start_portal(apps, backend)
    pages = all_at_once(backend, [portal.url + "/"] * CALLERS)
    for page in pages:
        assert page.status_code == 200
        assert page.text.count('data-state="ok"') == 2 + 6  # both panels and their six items
    assert sorted(backend.asked) == ["/stock?symbols=AMZN,MSFT,GOOG", "/weather?cities=Seattle,London,Tokyo"]


def test_a_page_shows_each_new_answer_of_its_backend(apps, backend):
    # Pages of the same answers are rendered once (apps/portal/pages.py): by the answers' bytes, not the names.
    portal = start_portal(apps, backend)
    for price in ("12.50", "12.50", "13.25", "12.50"):
        backend.price = float(price)
        page = requests.get(portal.url + "/", timeout=10)
        assert page.text.count(f">{price}<") == 3 and page.text.count('data-state="ok"') == 2 + 6, page.text
    assert len(backend.asked) == 2 * 4  # every page asked both backends: nothing kept but the rendering


# Under gevent, a flight's waiters go on one per turn of the worker's loop: the request a served client
# sends at once is read before the other waiters are served. Run in a child: gevent patches the process.
ONE_PER_TURN = """
import json, socket, time
from gevent import monkey
monkey.patch_all()
import gevent, threading
from apps.portal import flight

flights, gate, order = flight.Flights(), threading.Event(), []
client, portal_side = socket.socketpair()

def call():
    gate.wait()
    return "answer"

def waiter(n):
    flights.call("key", call, 5)
    order.append(f"waiter {n}")
    if n == 0:
        client.sendall(b"GET /")  # the first client served asks again at once
    busy_until = time.perf_counter() + 0.005  # a page's CPU
    while time.perf_counter() < busy_until:
        pass

def next_request():
    portal_side.recv(5)
    order.append("next request")

leader = gevent.spawn(flights.call, "key", call, 5)
gevent.sleep(0.01)
greenlets = [leader, gevent.spawn(next_request), *(gevent.spawn(waiter, n) for n in range(8))]
gevent.sleep(0.05)
gate.set()
gevent.joinall(greenlets, timeout=5)

# Second flight: each waiter may wait 0.2 s and the flight lands after 0.1 s, but the waiters' turns take
# 0.05 s each: the last ones' own time runs out after the answer arrived, before their turn came.
gate.clear()
answers = []

def patient_waiter():
    try:
        answers.append(flights.call("key", call, 0.2))
    except flight.WaitTimeout:
        answers.append("timed out")
    busy_until = time.perf_counter() + 0.05
    while time.perf_counter() < busy_until:
        pass

leader = gevent.spawn(flights.call, "key", call, 5)
gevent.sleep(0.01)
greenlets = [leader, *(gevent.spawn(patient_waiter) for _ in range(8))]
gevent.sleep(0.1)
gate.set()
gevent.joinall(greenlets, timeout=5)
print(json.dumps({"order": order, "answers": answers}))
"""


def test_under_gevent_a_flights_waiters_leave_room_for_new_requests():
    result = run_python("-c", ONE_PER_TURN, timeout=60)
    assert result.returncode == 0, result.stderr
    seen = json.loads(result.stdout)
    order = seen["order"]
    assert sorted(order) == sorted(["next request", *(f"waiter {n}" for n in range(8))]), order
    # Woken all at once, the eight waiters would each finish before the new request was read.
    assert order.index("next request") <= 2, order
    # A waiter whose time ran out while it waited for its turn gets the answer that had arrived.
    assert seen["answers"] == ["answer"] * 8, seen["answers"]


def test_a_waiter_times_out_at_its_own_deadline(apps, backend):
    # The first caller's call takes longer than the read timeout: its first connection is dropped
    # after 0.5 s, and the retry answers after another 0.5 s. A caller that joined 0.1 s in
    # must not wait for it past its own 0.6 s.
    portal = start_portal(apps, backend, "--read-timeout", "0.6")
    backend.plan = [("drop", 0.5), ("answer", 0.5)]
    url = f"{portal.url}/api/stock/AMZN"
    with ThreadPoolExecutor(1) as pool:
        first = pool.submit(requests.get, url, timeout=10)
        backend.wait_asked(1)
        time.sleep(0.1)
        started = time.monotonic()
        waiter = requests.get(url, timeout=10)
        waited = time.monotonic() - started
        assert first.result().status_code == 200  # the leader's retry succeeded
    assert waiter.status_code == 504, waiter.text
    assert waiter.json() == {"error": "no answer within 0.6 s", "status": 504, "backend": "stocks"}
    assert 0.55 <= waited < 0.85, waited
    assert backend.asked == ["/stock/AMZN"] * 2  # the leader's two attempts, nothing from the waiter
    logged = [json.loads(line) for line in portal.process.output().splitlines() if "backend call failed" in line]
    assert any(entry.get("error") == "no answer within 0.6 s" for entry in logged), logged


def test_a_failed_flight_fails_its_waiters_and_the_next_call_asks_again(apps, backend):
    portal = start_portal(apps, backend)
    backend.plan = [("error", 0.0)]
    answers = all_at_once(backend, [f"{portal.url}/api/weather/Paris"] * CALLERS)
    for answer in answers:
        assert answer.status_code == 502
        assert answer.json() == {"error": "bad answer (HTTP 500)", "status": 502, "backend": "weather"}
    assert backend.asked == ["/weather/Paris"]
    # The failure is not kept: the next call reaches the backend, which answers this time.
    assert requests.get(f"{portal.url}/api/weather/Paris", timeout=10).json()["city"] == "Paris"
    assert backend.asked == ["/weather/Paris"] * 2


def test_with_coalescing_off_every_call_reaches_the_backend(apps, backend):
    portal = start_portal(apps, backend, env={"PORTAL_COALESCE": "false"})
    answers = all_at_once(backend, [f"{portal.url}/api/stock/AMZN"] * CALLERS)
    assert [answer.status_code for answer in answers] == [200] * CALLERS
    assert backend.asked == ["/stock/AMZN"] * CALLERS


def test_a_bad_coalesce_setting_stops_the_portal_with_one_line():
    result = run_python("-m", "apps.portal", "--port", "1", env={"PORTAL_COALESCE": "sometimes"})
    assert refusal(result) == (
        "portal: configuration error: PORTAL_COALESCE='sometimes' is not a boolean: use true or false"
    )


def test_waiters_of_a_leader_that_raised_are_not_left_waiting():
    flights = flight.Flights()
    entered, release = threading.Event(), threading.Event()
    calls = []

    def broken():
        calls.append(1)
        entered.set()
        release.wait(10)
        raise RuntimeError("a bug")

    with ThreadPoolExecutor(1 + CALLERS) as pool:
        leader = pool.submit(flights.call, "key", broken, 10)
        entered.wait(10)
        waiters = [pool.submit(flights.call, "key", broken, 10) for _ in range(CALLERS)]
        time.sleep(0.3)  # the waiters join the flight
        release.set()
        with pytest.raises(RuntimeError, match="a bug"):
            leader.result(timeout=5)
        for waiter in waiters:
            with pytest.raises(flight.LeaderFailed, match="a bug"):
                waiter.result(timeout=5)  # not the waiters' 10 s
    assert len(calls) == 1
    assert flights.call("key", lambda: "again", 1) == "again"  # a new flight, not the failed one
