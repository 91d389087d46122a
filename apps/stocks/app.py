"""The stocks service: ``GET /stock/<symbol>`` -> ``{"symbol", "name", "price"}``.

Sample data, no internet: the price (USD, 5 to 950) is derived from the
symbol (apps/common/sample.py). Unknown symbols (not in symbols.py) and
malformed ones answer 404 JSON, as does anything else not found.
"""

from __future__ import annotations

from flask import Flask

from apps.common import names, web
from apps.common.sample import SAMPLE_MARK, stable_value
from apps.stocks.symbols import SYMBOLS


def quote(symbol: str) -> dict | None:
    """The sample quote of a well-formed symbol, None when the symbol is unknown."""
    name = SYMBOLS.get(symbol)
    if name is None:
        return None
    price = stable_value(5.0, 950.0, "stocks", symbol)
    return {"symbol": symbol, "name": name, "price": price, "currency": "USD", **SAMPLE_MARK}


def create_app(delay_ms: int = 0) -> Flask:
    app = web.create_app("stocks", __name__)

    @app.get("/stock/<symbol>")
    def stock(symbol: str):
        web.pause(delay_ms)
        try:
            symbol = names.symbol(symbol)
        except names.InvalidName as error:
            return web.json_error(404, f"malformed stock symbol: {error}")
        answer = quote(symbol)
        if answer is None:
            return web.json_error(404, "unknown symbol", symbol=symbol)
        return answer

    return app
