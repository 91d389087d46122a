"""The weather service: ``GET /weather/<city>`` -> ``{"city", "country", "temp", "format"}``.

Sample data, no internet: the temperature is derived from the city's name
(apps/common/sample.py), between -10 and 35 °C, and reported in Celsius or
Fahrenheit by ``TEMP_SCALE``. Unknown cities (not in cities.py) and malformed
names answer 404 JSON, as does anything else not found. ``GET
/weather?cities=a,b`` answers several at once (apps/common/lookup.py).
"""

from __future__ import annotations

from flask import Flask

from apps.common import lookup, names, web
from apps.common.sample import SAMPLE_MARK, stable_value
from apps.weather.cities import CITIES

SCALES = ("C", "F")


def reading(city: str, scale: str) -> dict | None:
    """The sample reading of a well-formed city name, None when the city is unknown."""
    known = CITIES.get(names.city_key(city))
    if known is None:
        return None
    name, country = known
    celsius = stable_value(-10.0, 35.0, "weather", name, digits=1)
    temp = celsius if scale == "C" else round(celsius * 9 / 5 + 32, 1)
    return {"city": name, "country": country, "temp": temp, "format": scale, **SAMPLE_MARK}


def create_app(scale: str = "C", delay_ms: int = 0) -> Flask:
    app = web.create_app("weather", __name__)
    lookup.add_routes(
        app,
        path="weather",
        list_param="cities",
        key="city",
        parse=names.city,
        find=lambda city: reading(city, scale),
        delay_ms=delay_ms,
    )
    return app
