"""The stocks service: ``GET /stock/<symbol>`` -> ``{"symbol", "name", "price"}``.

Sample data, no internet: the price (USD, 5 to 950) is derived from the
symbol (apps/common/sample.py). Unknown symbols (not in symbols.py) and
malformed ones answer 404 JSON, as does anything else not found. ``GET
/stock?symbols=a,b`` answers several at once (apps/common/lookup.py).
"""

from __future__ import annotations

from flask import Flask

from apps.common import lookup, names, web
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
    lookup.add_routes(
        app, path="stock", list_param="symbols", key="symbol", parse=names.symbol, find=quote, delay_ms=delay_ms
    )
    return app
