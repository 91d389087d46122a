"""``python -m apps.portal --port P``: serve the portal page and API (``--help`` lists the settings)."""

from __future__ import annotations

import argparse
import sys

from apps.common import server
from apps.common.config import ConfigError
from apps.common.discovery import ConsulDiscovery, DiscoveryError
from apps.portal import settings as portal_settings
from apps.portal.app import create_app


def build(args: argparse.Namespace):
    settings = portal_settings.from_args(args)
    if settings.needs_consul:
        try:
            ConsulDiscovery()  # checks CONSUL_HTTP_ADDR / CONSUL_HTTP_TOKEN_FILE now, not per request
        except DiscoveryError as error:
            raise ConfigError(str(error)) from None
    return lambda: create_app(settings)


if __name__ == "__main__":
    sys.exit(
        server.run(
            "portal",
            "The portal page (Stocks and Weather panels) and its JSON API. Backends come from "
            "WEATHER_URL / STOCKS_URL, else from the Consul agent (services WEATHER_SERVICE and STOCKS_SERVICE, "
            "default weather and stocks).",
            build,
            portal_settings.add_arguments,
        )
    )
