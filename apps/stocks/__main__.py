"""``python -m apps.stocks --port P``: serve sample stock prices (``--help`` lists the settings)."""

from __future__ import annotations

import argparse
import sys

from apps.common import server
from apps.stocks.app import create_app


def build(args: argparse.Namespace):
    return lambda: create_app(args.delay_ms)


if __name__ == "__main__":
    sys.exit(server.run("stocks", "Sample stock prices by symbol (JSON over HTTP).", build, server.add_delay_argument))
