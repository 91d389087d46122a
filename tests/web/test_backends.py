"""weather and stocks as real processes: sample data, 404s, validation, delay, settings."""

from __future__ import annotations

import time

import pytest
import requests

from apps.common import names
from apps.common.sample import stable_value
from devtools.procs import free_port
from tests.web.conftest import refusal, run_python


def test_weather_answers_deterministic_marked_sample_data(stack):
    first = requests.get(f"{stack.weather.url}/weather/london", timeout=5)
    assert first.status_code == 200
    body = first.json()
    assert {k: body[k] for k in ("city", "country", "format")} == {"city": "London", "country": "GB", "format": "C"}
    assert body["sample"] is True and "sample data" in body["source"]
    assert -10 <= body["temp"] <= 35
    # Same answer for the same city, however it is spelled.
    again = requests.get(f"{stack.weather.url}/weather/%20LONDON", timeout=5).json()
    assert again["temp"] == body["temp"]
    other = requests.get(f"{stack.weather.url}/weather/S%C3%A3o%20Paulo", timeout=5).json()
    assert other["city"] == "São Paulo" and other["country"] == "BR"


def test_stocks_answers_deterministic_marked_sample_data(stack):
    response = requests.get(f"{stack.stocks.url}/stock/msft", timeout=5)
    assert response.status_code == 200
    body = response.json()
    assert body["symbol"] == "MSFT" and body["name"] == "Microsoft Corporation"
    assert body["price"] == stable_value(5.0, 950.0, "stocks", "MSFT")
    assert body["sample"] is True
    assert requests.get(f"{stack.stocks.url}/stock/BRK.B", timeout=5).json()["symbol"] == "BRK.B"


@pytest.mark.parametrize(
    ("path", "error"),
    [
        ("/weather/Atlantis", "unknown city"),
        ("/weather/%3Cscript%3E", "malformed city name"),
        ("/weather/" + "a" * 65, "malformed city name"),
        ("/weather/rm%20-rf%3B", "malformed city name"),
        ("/nowhere", "not found"),
    ],
)
def test_weather_404_json_for_unknown_or_malformed_cities(stack, path, error):
    response = requests.get(stack.weather.url + path, timeout=5)
    assert response.status_code == 404
    assert response.headers["Content-Type"] == "application/json"
    assert error in response.json()["error"]


@pytest.mark.parametrize(
    ("symbol", "error"),
    [("ZZZZ", "unknown symbol"), ("TOOLONG", "malformed"), ("AB1", "malformed"), ("%3Cb%3E", "malformed")],
)
def test_stocks_404_json_for_unknown_or_malformed_symbols(stack, symbol, error):
    response = requests.get(f"{stack.stocks.url}/stock/{symbol}", timeout=5)
    assert response.status_code == 404
    assert error in response.json()["error"]


def test_health_and_json_errors_for_other_methods(stack):
    for app, service in ((stack.weather, "weather"), (stack.stocks, "stocks")):
        assert requests.get(f"{app.url}/health", timeout=5).json() == {"status": "ok", "service": service}
        refused = requests.post(f"{app.url}/health", timeout=5)
        assert refused.status_code == 405 and refused.json()["status"] == 405
        assert refused.headers["Allow"]


def test_fahrenheit_and_delay(apps):
    celsius = stable_value(-10.0, 35.0, "weather", "Oslo", digits=1)
    weather = apps.start("apps.weather", ["--delay-ms", "300"], env={"TEMP_SCALE": "f"})
    started = time.monotonic()
    body = requests.get(f"{weather.url}/weather/oslo", timeout=5).json()
    assert time.monotonic() - started >= 0.3
    assert body["format"] == "F" and body["temp"] == round(celsius * 9 / 5 + 32, 1)
    started = time.monotonic()
    requests.get(f"{weather.url}/health", timeout=5)
    assert time.monotonic() - started < 0.25  # health checks are not delayed


@pytest.mark.parametrize("module", ["apps.weather", "apps.stocks", "apps.portal", "apps.registrar"])
def test_help(module):
    result = run_python("-m", module, "--help")
    assert result.returncode == 0 and f"python -m {module}" in result.stdout


@pytest.mark.parametrize(
    ("module", "env", "message"),
    [
        ("apps.weather", {"TEMP_SCALE": "K"}, "TEMP_SCALE='K' must be C or F"),
        ("apps.stocks", {"PORT": "http"}, "PORT='http' is not an integer"),
        ("apps.portal", {"PORTAL_CITIES": "Paris,<b>"}, "PORTAL_CITIES: '<b>'"),
        ("apps.portal", {"CONSUL_HTTP_ADDR": "ftp://x"}, "is not a Consul agent address"),
        ("apps.portal", {"WEATHER_URL": "weather:80", "STOCKS_URL": "http://s"}, "WEATHER_URL='weather:80'"),
    ],
)
def test_bad_settings_stop_the_app_with_one_line(module, env, message):
    assert message in refusal(run_python("-m", module, "--port", "1", env=env))


def test_name_validation_shared_by_backends_and_portal():
    assert names.city("  rio   de janeiro ") == "rio de janeiro"
    assert names.city_key("Rio de  JANEIRO") == "rio de janeiro"
    assert names.city("St. John's") == "St. John's"
    assert names.symbol(" brk.b ") == "BRK.B"
    for bad in ("", "1town", "a/b", "<script>", "x" * 65, "Paris\n"[:-1] + "\x00"):
        with pytest.raises(names.InvalidName):
            names.city(bad)
    for bad in ("", "ABCDEF", "A1", "A.BCD", "ÄB"):
        with pytest.raises(names.InvalidName):
            names.symbol(bad)


def test_container_healthcheck_command(stack, monkeypatch, capsys):
    from apps.common import healthcheck

    assert healthcheck.main([f"{stack.weather.url}/health"]) == 0
    monkeypatch.setenv("PORT", str(stack.stocks.port))
    assert healthcheck.main([]) == 0  # default: http://127.0.0.1:$PORT/health, as in the images
    assert healthcheck.main([f"{stack.weather.url}/nowhere"]) == 1
    assert "unhealthy: HTTP 404" in capsys.readouterr().err
    monkeypatch.setenv("PORT", str(free_port()))
    assert healthcheck.main([]) == 1
    assert "Connection refused" in capsys.readouterr().err
    assert healthcheck.main(["file:///etc/passwd"]) == 2
