"""The portal's settings, from flags and environment variables, checked once at start."""

from __future__ import annotations

import argparse
from dataclasses import dataclass
from urllib.parse import urlsplit

from apps.common import consul, names
from apps.common.config import ConfigError, env_bool, env_float, env_int, env_str

DEFAULT_SYMBOLS = "AMZN,MSFT,GOOG"
DEFAULT_CITIES = "Seattle,London,Tokyo"


@dataclass(frozen=True)
class Settings:
    weather_url: str | None  # explicit backend URL; None: ask Consul for weather_service
    stocks_url: str | None  # explicit backend URL; None: ask Consul for stocks_service
    symbols: tuple[str, ...]  # shown when the query string has no ?symbols=
    cities: tuple[str, ...]  # shown when the query string has no ?cities=
    connect_timeout: float  # seconds to open a connection to a backend
    read_timeout: float  # seconds to wait for a backend's answer
    max_items: int  # most symbols (and cities) one page shows
    fanout_threads: int  # backend calls in flight at a time, per worker
    discovery_cache_seconds: float
    # PORTAL_COALESCE (default true): a backend GET identical to one already in flight in this
    # worker (same backend, same path) waits for that call's answer instead of making its own.
    # Nothing is cached: the next call after the answer is a new one. false: every call its own.
    coalesce: bool
    # The Consul service names the backends are looked up by. Set explicitly by the infrastructure,
    # so the name a backend registers under and the name the portal asks for are one value.
    weather_service: str
    stocks_service: str

    @property
    def page_deadline(self) -> float:
        """The longest the page waits for its backend calls before rendering without them."""
        return self.connect_timeout + self.read_timeout + 0.25

    @property
    def needs_consul(self) -> bool:
        return not (self.weather_url and self.stocks_url)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--weather-url", default=env_str("WEATHER_URL"), help="weather base URL, else Consul")
    parser.add_argument("--stocks-url", default=env_str("STOCKS_URL"), help="stocks base URL, else Consul")
    parser.add_argument(
        "--weather-service",
        default=env_str("WEATHER_SERVICE", "weather"),
        help="Consul service name of weather, when WEATHER_URL is not set (WEATHER_SERVICE, default weather)",
    )
    parser.add_argument(
        "--stocks-service",
        default=env_str("STOCKS_SERVICE", "stocks"),
        help="Consul service name of stocks, when STOCKS_URL is not set (STOCKS_SERVICE, default stocks)",
    )
    parser.add_argument("--symbols", default=env_str("PORTAL_SYMBOLS", DEFAULT_SYMBOLS), help="default stock symbols")
    parser.add_argument("--cities", default=env_str("PORTAL_CITIES", DEFAULT_CITIES), help="default cities")
    parser.add_argument(
        "--connect-timeout",
        type=float,
        default=env_float("BACKEND_CONNECT_TIMEOUT", 0.5, minimum=0.05, maximum=30),
        help="seconds to connect to a backend (BACKEND_CONNECT_TIMEOUT, default 0.5)",
    )
    parser.add_argument(
        "--read-timeout",
        type=float,
        default=env_float("BACKEND_READ_TIMEOUT", 1.0, minimum=0.05, maximum=60),
        help="seconds to wait for a backend's answer (BACKEND_READ_TIMEOUT, default 1.0)",
    )


def from_args(args: argparse.Namespace) -> Settings:
    """Settings from parsed flags (whose defaults come from the environment); ConfigError if bad."""
    symbols = _name_list("PORTAL_SYMBOLS", args.symbols, names.symbol)
    cities = _name_list("PORTAL_CITIES", args.cities, names.city)
    max_items = env_int("PORTAL_MAX_ITEMS", 8, minimum=1, maximum=50)
    for setting, listed in (("PORTAL_SYMBOLS", symbols), ("PORTAL_CITIES", cities)):
        if len(listed) > max_items:
            raise ConfigError(f"{setting} lists {len(listed)} names; PORTAL_MAX_ITEMS is {max_items}")
    for setting, value in (
        ("--connect-timeout", args.connect_timeout),
        ("--read-timeout", args.read_timeout),
    ):
        if not 0 < value <= 60:
            raise ConfigError(f"{setting}={value} must be between 0 and 60 seconds")
    return Settings(
        weather_url=_base_url("WEATHER_URL", args.weather_url),
        stocks_url=_base_url("STOCKS_URL", args.stocks_url),
        symbols=symbols,
        cities=cities,
        connect_timeout=args.connect_timeout,
        read_timeout=args.read_timeout,
        max_items=max_items,
        fanout_threads=env_int("PORTAL_FANOUT_THREADS", 64, minimum=2, maximum=1024),
        discovery_cache_seconds=env_float("DISCOVERY_CACHE_SECONDS", 5.0, minimum=0, maximum=300),
        coalesce=env_bool("PORTAL_COALESCE", True),
        weather_service=consul.service_name("WEATHER_SERVICE", args.weather_service),
        stocks_service=consul.service_name("STOCKS_SERVICE", args.stocks_service),
    )


def _base_url(setting: str, value: str | None) -> str | None:
    if not value:
        return None
    parts = urlsplit(value.strip())
    if parts.scheme not in ("http", "https") or not parts.hostname or parts.query or parts.fragment:
        raise ConfigError(f"{setting}={value!r} is not a base URL like http://host:port")
    return value.strip().rstrip("/")


def _name_list(setting: str, value: str, parse) -> tuple[str, ...]:
    listed = []
    for raw in value.split(","):
        if not raw.strip():
            continue
        try:
            listed.append(parse(raw))
        except names.InvalidName as error:
            raise ConfigError(f"{setting}: {raw.strip()!r}: {error}") from None
    if not listed:
        raise ConfigError(f"{setting} lists no names")
    return tuple(dict.fromkeys(listed))
