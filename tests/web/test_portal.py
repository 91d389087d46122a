"""The portal as a real process over HTTP: page, API, failures of its backends, discovery, escaping."""

from __future__ import annotations

import argparse
import re
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
import requests

from apps.common.config import ConfigError
from apps.portal import settings as portal_settings
from devtools.procs import free_port


def panel_state(html: str, panel: str) -> str:
    match = re.search(rf'<section id="{panel}" class="panel {panel}" data-state="(\w+)"', html)
    assert match, f"no {panel} panel in the page:\n{html}"
    return match.group(1)


def section(html: str, panel: str) -> str:
    return html.split(f'<section id="{panel}"', 1)[1].split("</section>", 1)[0]


def test_page_shows_both_panels_with_data(stack):
    response = requests.get(stack.portal.url + "/", timeout=5)
    assert response.status_code == 200
    assert response.headers["Content-Type"].startswith("text/html")
    assert "script-src" not in response.headers["Content-Security-Policy"]  # default-src 'none' covers it
    assert "default-src 'none'" in response.headers["Content-Security-Policy"]
    html = response.text
    assert panel_state(html, "stocks") == "ok" and panel_state(html, "weather") == "ok"
    price = requests.get(f"{stack.stocks.url}/stock/AMZN", timeout=5).json()["price"]
    assert f"{price:.2f} USD" in section(html, "stocks")
    temp = requests.get(f"{stack.weather.url}/weather/Tokyo", timeout=5).json()["temp"]
    assert f"{temp:.1f} °C" in section(html, "weather")
    assert "sample data" in html


def test_query_string_chooses_and_bounds_what_the_panels_show(stack):
    symbols = ",".join(["MSFT", "nflx", "ZZZZ", "MSFT"] + [f"Q{chr(65 + i)}" for i in range(20)])
    html = requests.get(stack.portal.url + "/", params={"symbols": symbols, "cities": "oslo"}, timeout=5).text
    stocks = section(html, "stocks")
    assert stocks.count('<tr class="item') == 8  # PORTAL_MAX_ITEMS
    assert "Netflix, Inc." in stocks and "unknown symbol" in stocks
    assert "showing the first 8 of 23" in stocks
    assert "Oslo" in section(html, "weather") and "Tokyo" not in section(html, "weather")
    assert 'name="cities" maxlength="512"\n           value="oslo"' in html  # the form shows the lists
    emptied = requests.get(stack.portal.url + "/?symbols=&cities=,", timeout=5).text
    assert "Tokyo" in section(emptied, "weather") and "AMZN" in section(emptied, "stocks")  # the defaults


def test_api_answers_the_backend_json(stack):
    weather = requests.get(f"{stack.portal.url}/api/weather/Paris", timeout=5)
    assert weather.status_code == 200
    assert weather.json() == requests.get(f"{stack.weather.url}/weather/Paris", timeout=5).json()
    stock = requests.get(f"{stack.portal.url}/api/stock/nvda", timeout=5)
    assert stock.status_code == 200 and stock.json()["symbol"] == "NVDA"
    assert requests.get(f"{stack.portal.url}/health", timeout=5).json()["status"] == "ok"


@pytest.mark.parametrize(
    ("path", "status", "error"),
    [
        ("/api/weather/%3Cscript%3E", 400, "malformed city name"),
        ("/api/weather/" + "x" * 65, 400, "malformed city name"),
        ("/api/stock/TOOLONG", 400, "malformed stock symbol"),
        ("/api/stock/A%20B", 400, "malformed stock symbol"),
        ("/api/weather/Atlantis", 404, "unknown city"),
        ("/api/stock/ZZZZ", 404, "unknown symbol"),
        ("/api/nothing", 404, "not found"),
    ],
)
def test_api_4xx_json_for_malformed_or_unknown_names(stack, path, status, error):
    response = requests.get(stack.portal.url + path, timeout=5)
    assert response.status_code == status
    assert response.headers["Content-Type"] == "application/json"
    assert error in response.json()["error"]


def test_hostile_input_is_escaped(stack):
    hostile_city = "<script>alert(1)</script>"
    hostile_symbol = '"><img src=x onerror=alert(2)>'
    response = requests.get(
        stack.portal.url + "/", params={"cities": f"{hostile_city},Paris", "symbols": hostile_symbol}, timeout=5
    )
    assert response.status_code == 200
    html = response.text
    assert "<script" not in html and "<img" not in html
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html
    assert "&#34;&gt;&lt;img src=x onerror=alert(2)&gt;" in html
    assert "not a valid city name" in section(html, "weather") and "Paris" in section(html, "weather")


def test_weather_down_page_still_renders_with_stocks(apps, stack):
    weather = apps.start("apps.weather")
    portal = apps.start("apps.portal", env={"WEATHER_URL": weather.url, "STOCKS_URL": stack.stocks.url})
    assert panel_state(requests.get(portal.url, timeout=5).text, "weather") == "ok"
    weather.stop()
    response = requests.get(portal.url, timeout=5)
    assert response.status_code == 200
    html = response.text
    assert panel_state(html, "stocks") == "ok" and "Amazon.com, Inc." in section(html, "stocks")
    assert panel_state(html, "weather") == "unavailable"
    assert "Weather unavailable: not reachable" in section(html, "weather")
    api = requests.get(f"{portal.url}/api/weather/Paris", timeout=5)
    assert api.status_code == 502
    assert api.json() == {"error": "not reachable", "status": 502, "backend": "weather"}
    assert requests.get(f"{portal.url}/api/stock/AMZN", timeout=5).status_code == 200


@pytest.mark.parametrize("slow", ["weather", "stocks"])
def test_slow_backend_page_returns_within_the_timeout_and_api_answers_504(apps, stack, slow):
    slow_app = apps.start(f"apps.{slow}", ["--delay-ms", "1500"])
    fast, fast_name = (stack.stocks, "stocks") if slow == "weather" else (stack.weather, "weather")
    portal = apps.start(
        "apps.portal",
        ["--connect-timeout", "0.2", "--read-timeout", "0.4"],
        env={f"{slow.upper()}_URL": slow_app.url, f"{fast_name.upper()}_URL": fast.url},
    )
    started = time.monotonic()
    response = requests.get(portal.url, timeout=5)
    elapsed = time.monotonic() - started
    assert response.status_code == 200
    assert elapsed < 0.2 + 0.4 + 0.25 + 0.3, elapsed  # the page deadline, plus slack for a loaded machine
    assert panel_state(response.text, fast_name) == "ok"
    assert panel_state(response.text, slow) == "unavailable"
    assert "no answer within 0.4 s" in section(response.text, slow)
    started = time.monotonic()
    path = "/api/weather/Paris" if slow == "weather" else "/api/stock/AMZN"
    api = requests.get(portal.url + path, timeout=5)
    assert api.status_code == 504 and api.json()["error"] == "no answer within 0.4 s"
    assert time.monotonic() - started < 1.0


def test_both_backends_are_called_at_the_same_time(apps):
    weather = apps.start("apps.weather", ["--delay-ms", "400"])
    stocks = apps.start("apps.stocks", ["--delay-ms", "400"])
    portal = apps.start("apps.portal", env={"WEATHER_URL": weather.url, "STOCKS_URL": stocks.url})
    requests.get(portal.url, timeout=5)  # connections opened, code warm
    started = time.monotonic()
    html = requests.get(portal.url, timeout=5).text
    elapsed = time.monotonic() - started
    assert panel_state(html, "stocks") == "ok" and panel_state(html, "weather") == "ok"
    assert 0.4 <= elapsed < 0.7, elapsed  # one after the other would take 0.8 s or more


class BadBackend:
    """An HTTP server answering 500 with an HTML page, or 200 without the expected JSON."""

    def __init__(self, status: int, body: bytes):
        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def do_GET(self):
                self.send_response(status)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.server.serve_forever, args=(0.05,), daemon=True).start()
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"


@pytest.mark.parametrize(
    ("status", "body", "error"),
    [
        (500, b"<html>Internal Server Error</html>", "bad answer (HTTP 500)"),
        (200, b'{"x": 1}', "bad answer (HTTP 200)"),
    ],
)
def test_bad_backend_answers_are_502(apps, status, body, error):
    bad = BadBackend(status, body)
    try:
        portal = apps.start("apps.portal", env={"WEATHER_URL": bad.url, "STOCKS_URL": bad.url})
        api = requests.get(f"{portal.url}/api/stock/AMZN", timeout=5)
        assert api.status_code == 502 and api.json()["error"] == error
        html = requests.get(portal.url, timeout=5).text
        assert panel_state(html, "stocks") == "unavailable" and "Internal Server Error" not in html
    finally:
        bad.server.shutdown()


def test_discovery_through_consul_follows_a_backend_that_moved(apps, fake_consul):
    weather = apps.start("apps.weather")
    stocks = apps.start("apps.stocks")
    old_id = fake_consul.add("weather", weather.port, address="")
    fake_consul.add("stocks", stocks.port)
    # A long cache: without "forget and ask again" the portal would keep calling the old port.
    portal = apps.start("apps.portal", env={"CONSUL_HTTP_ADDR": fake_consul.address, "DISCOVERY_CACHE_SECONDS": "300"})
    html = requests.get(portal.url, timeout=5).text
    assert panel_state(html, "weather") == "ok" and panel_state(html, "stocks") == "ok"
    # weather moves: the old task stops, a new one starts on another port and replaces the registration.
    weather.stop()
    moved = apps.start("apps.weather")
    fake_consul.remove(old_id)
    fake_consul.add("weather", moved.port, address="")
    api = requests.get(f"{portal.url}/api/weather/Paris", timeout=5)
    assert api.status_code == 200, api.text
    assert panel_state(requests.get(portal.url, timeout=5).text, "weather") == "ok"
    asked = fake_consul.queries("weather")
    assert asked >= 2
    # With nothing healthy the panel says so, and the API answers 502.
    fake_consul.clear()
    moved.stop()
    html = requests.get(portal.url, timeout=5).text
    assert panel_state(html, "weather") == "unavailable"
    assert "no healthy instance in Consul" in section(html, "weather")
    assert requests.get(f"{portal.url}/api/weather/Paris", timeout=5).status_code == 502


def test_backends_are_looked_up_under_the_configured_service_names(apps, stack, fake_consul):
    # Decoys under the default names: a portal that ignored WEATHER_SERVICE/STOCKS_SERVICE would call them.
    dead = free_port()
    fake_consul.add("weather", dead)
    fake_consul.add("stocks", dead)
    fake_consul.add("weather-blue", stack.weather.port)
    fake_consul.add("stocks-blue", stack.stocks.port)
    names = {"WEATHER_SERVICE": "weather-blue", "STOCKS_SERVICE": "stocks-blue"}
    portal = apps.start("apps.portal", env={"CONSUL_HTTP_ADDR": fake_consul.address, **names})
    html = requests.get(portal.url, timeout=5).text
    assert panel_state(html, "weather") == "ok" and panel_state(html, "stocks") == "ok"
    assert requests.get(f"{portal.url}/api/weather/Paris", timeout=5).status_code == 200
    assert fake_consul.queries("weather-blue") >= 1 and fake_consul.queries("stocks-blue") >= 1
    assert fake_consul.queries("weather") == 0 and fake_consul.queries("stocks") == 0


@pytest.mark.parametrize("name", ["weather blue", "-weather", "weather.service.consul", "w" * 64])
def test_a_service_name_consul_cannot_resolve_is_a_setting_error(name, monkeypatch):
    monkeypatch.setenv("WEATHER_SERVICE", name)
    parser = argparse.ArgumentParser()
    portal_settings.add_arguments(parser)
    with pytest.raises(ConfigError, match=r"WEATHER_SERVICE=.*a Consul service name"):
        portal_settings.from_args(parser.parse_args([]))


def test_portal_with_unreachable_consul_still_renders(apps):
    portal = apps.start("apps.portal", env={"CONSUL_HTTP_ADDR": f"127.0.0.1:{free_port()}"})
    response = requests.get(portal.url, timeout=5)
    assert response.status_code == 200
    assert panel_state(response.text, "weather") == "unavailable"
    assert "service discovery failed" in section(response.text, "stocks")
