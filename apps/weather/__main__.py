"""``python -m apps.weather --port P``: serve sample weather (``--help`` lists the settings)."""

from __future__ import annotations

import argparse
import sys

from apps.common import server
from apps.common.config import ConfigError, env_str
from apps.weather.app import SCALES, create_app


def arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--temp-scale", default=env_str("TEMP_SCALE", "C"), help="C or F (TEMP_SCALE)")
    server.add_delay_argument(parser)


def build(args: argparse.Namespace):
    scale = args.temp_scale.strip().upper()
    if scale not in SCALES:
        raise ConfigError(f"TEMP_SCALE={args.temp_scale!r} must be C or F")
    return lambda: create_app(scale, args.delay_ms)


if __name__ == "__main__":
    sys.exit(server.run("weather", "Sample weather by city (JSON over HTTP).", build, arguments))
