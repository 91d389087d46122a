"""The portal: ``GET /`` (HTML, a Stocks panel and a Weather panel) and a JSON API.

- ``GET /?symbols=AMZN,MSFT&cities=Paris`` chooses what the panels show
  (defaults from settings; at most ``PORTAL_MAX_ITEMS`` each; malformed names
  are shown as invalid, never sent to a backend).
- ``GET /api/weather/<city>``, ``GET /api/stock/<symbol>``: the backend's
  JSON; 400 for a malformed name, 404 when the backend doesn't know it, 502
  when the backend is down or answers badly, 504 when it is too slow.

A page asks each backend once for all its names (``/weather?cities=a,b``);
the two calls run at the same time (stocks on a thread pool, whose threads
are greenlets under the gevent worker class), and the page waits at most
``Settings.page_deadline``: a dead or slow backend turns
its panel into an "unavailable" notice while the other panel shows its data.
A page of the same query and the same answers is rendered once (pages.py).
Everything rendered goes through Jinja2's autoescaping; the page loads no
script and its Content-Security-Policy forbids any.
"""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout

from flask import Flask, Response, render_template, request

from apps.common import names, web
from apps.common.discovery import ConsulDiscovery
from apps.portal.backends import INVALID, Backend, Outcome, timed_out
from apps.portal.client import KeepAliveClient
from apps.portal.pages import RecentPages
from apps.portal.settings import Settings
from apps.portal.view import MAX_QUERY_CHARS, Item, Panel, requested

PAGE_CSP = (
    "default-src 'none'; style-src 'self'; img-src 'self'; form-action 'self'; base-uri 'none'; frame-ancestors 'none'"
)


def create_app(settings: Settings) -> Flask:
    app = web.create_app("portal", __name__)
    app.jinja_env.trim_blocks = app.jinja_env.lstrip_blocks = True  # tidy HTML, same escaping
    # Compiled now, once: Jinja2's template cache has no lock, so a worker that starts under load
    # would otherwise compile the page in every one of its threads serving the first requests.
    app.jinja_env.get_template("index.html")
    http = KeepAliveClient(settings.connect_timeout, settings.read_timeout)
    discovery = None
    if settings.needs_consul:
        discovery = ConsulDiscovery(
            cache_seconds=settings.discovery_cache_seconds,
            timeout=settings.connect_timeout + settings.read_timeout,
        )
    weather = Backend(
        "weather",
        "/weather/{}",
        "/weather?cities=",
        ("city", "country", "temp", "format"),
        http,
        url=settings.weather_url,
        discovery=discovery,
        consul_service=settings.weather_service,
        coalesce=settings.coalesce,
    )
    stocks = Backend(
        "stocks",
        "/stock/{}",
        "/stock?symbols=",
        ("symbol", "name", "price"),
        http,
        url=settings.stocks_url,
        discovery=discovery,
        consul_service=settings.stocks_service,
        coalesce=settings.coalesce,
    )
    recent = RecentPages()
    calls = ThreadPoolExecutor(max_workers=settings.fanout_threads, thread_name_prefix="backend")

    def panel(key, title, backend, param, defaults, parse) -> tuple[Panel, list[Item], list[str]]:
        """The panel with its malformed names marked, its other items, and their names to ask for."""
        wanted, note = requested(request.args.get(param), defaults, parse, settings.max_items)
        invalid = Outcome(INVALID, 400, message="malformed name")
        items = [Item(label, invalid) for label, _name in wanted]
        asked = [item for item, (_label, name) in zip(items, wanted, strict=True) if name]
        return Panel(key, title, param, items, note), asked, [name for _label, name in wanted if name]

    def fill(items: list[Item], outcomes: list[Outcome]) -> None:
        for item, outcome in zip(items, outcomes, strict=True):
            item.outcome = outcome

    @app.get("/")
    def page():
        started = time.monotonic()
        stocks_panel, stock_items, symbols = panel(
            "stocks", "Stocks", stocks, "symbols", settings.symbols, names.symbol
        )
        weather_panel, weather_items, cities = panel(
            "weather", "Weather", weather, "cities", settings.cities, names.city
        )
        # Both backends at the same time, each asked once for all its names: stocks on the
        # pool, weather on this thread (one hand-over less; its own timeouts bound it).
        stock_call = calls.submit(stocks.ask_many, symbols)
        weather_answer = weather.ask_many(cities)
        try:
            # ask_many() never raises; still running at the deadline counts as timed out.
            stock_answer = stock_call.result(timeout=max(settings.page_deadline - (time.monotonic() - started), 0))
        except FutureTimeout:
            stock_answer = timed_out(f"no answer within {settings.page_deadline:g} s")

        def render() -> tuple[str, bool]:
            fill(stock_items, stocks.read_many(symbols, stock_answer))
            fill(weather_items, weather.read_many(cities, weather_answer))
            html = render_template("index.html", panels=[stocks_panel, weather_panel], max_query=MAX_QUERY_CHARS)
            return html, stocks_panel.state == weather_panel.state == "ok"

        if isinstance(stock_answer, Outcome) or isinstance(weather_answer, Outcome):
            html, _keep = render()  # a failed call: rendered (and logged) for this request alone
        else:
            html = recent.get((request.script_root, request.query_string, stock_answer, weather_answer), render)
        return Response(html, 200, {"Cache-Control": "no-store"}, mimetype="text/html")

    def api(backend: Backend, raw: str, parse, what: str):
        try:
            name = parse(raw)
        except names.InvalidName as error:
            return web.json_error(400, f"malformed {what}: {error}")
        outcome = backend.fetch(name)
        if outcome.status == 200:
            return outcome.data
        return web.json_error(outcome.status, outcome.message, backend=backend.service)

    @app.get("/api/weather/<city>")
    def api_weather(city: str):
        return api(weather, city, names.city, "city name")

    @app.get("/api/stock/<symbol>")
    def api_stock(symbol: str):
        return api(stocks, symbol, names.symbol, "stock symbol")

    @app.after_request
    def page_policy(response: Response) -> Response:
        if response.mimetype == "text/html":
            response.headers["Content-Security-Policy"] = PAGE_CSP
            response.headers["X-Frame-Options"] = "DENY"
        return response

    return app
