"""``python -m apps.portal --port P``: serve the portal page and API (``--help`` lists the settings)."""

from __future__ import annotations

from apps.common import server

# The portal's workers are gevent's (WORKER_CLASS=gthread for threads): a page mostly waits for
# its backends, and a waiting greenlet costs no thread hand-over and no contention for the GIL.
WORKER_CLASS = "gevent"

if __name__ == "__main__":
    # Before the imports below: they bind threading, socket and ssl names that gevent must patch first.
    server.patch_for_gevent(WORKER_CLASS)

import argparse  # noqa: E402
import sys  # noqa: E402

from apps.common.config import ConfigError  # noqa: E402
from apps.common.discovery import ConsulDiscovery, DiscoveryError  # noqa: E402
from apps.portal import settings as portal_settings  # noqa: E402
from apps.portal.app import create_app  # noqa: E402


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
            worker_class=WORKER_CLASS,
        )
    )
