"""python -m apps.send: publish persistent messages with publisher confirms.

Two modes: ``--rate R`` publishes R messages/s until SIGTERM (the ECS service);
``--count N`` publishes N messages and exits 0 once all N are confirmed (tests,
one-off loads). Both together: N messages at R/s. Message ids are
``<run id>-<n>``, n from 0.
"""

from __future__ import annotations

import argparse
import sys

from apps.common.amqp_cli import (
    add_broker_arguments,
    app_parser,
    log_start,
    metrics_interval,
    positive_float,
    positive_int,
    run_service,
    settings_from_args,
)
from apps.common.config import env_float, env_int, env_str
from apps.send.messages import POISON_HEADER, MessageFactory, MessageSource, new_run_id
from apps.send.publisher import Publisher

DEFAULT_RATE = 10.0


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = app_parser("apps.send", __doc__)
    mode = parser.add_argument_group("what to send (flags override the environment variables)")
    mode.add_argument(
        "--rate",
        type=positive_float,
        metavar="R",
        help=f"messages per second (SEND_RATE; default {DEFAULT_RATE:g} without --count, unlimited with it)",
    )
    mode.add_argument("--count", type=positive_int, metavar="N", help="send N messages, then exit (SEND_COUNT)")
    mode.add_argument("--run-id", help="message id prefix (SEND_RUN_ID; default random)")
    mode.add_argument("--text", help="greeting carried in each body (SEND_TEXT; default 'Hello World!')")
    mode.add_argument(
        "--poison",
        action="store_true",
        help=f"mark every message as poison (header {POISON_HEADER}): apps.receive fails on it and it "
        "ends in the dead-letter queue; for testing that path",
    )
    tuning = parser.add_argument_group("tuning")
    tuning.add_argument(
        "--window",
        type=positive_int,
        metavar="N",
        help="most unconfirmed messages in flight (SEND_WINDOW, default 2000)",
    )
    tuning.add_argument(
        "--drain-timeout",
        type=positive_float,
        metavar="SECONDS",
        help="after SIGTERM, wait this long for outstanding confirms (SEND_DRAIN_TIMEOUT, default 20)",
    )
    add_broker_arguments(parser)
    return parser.parse_args(argv)


def build_publisher(args: argparse.Namespace, log) -> Publisher:
    broker, queue, cluster = settings_from_args(args)
    count = args.count or (env_int("SEND_COUNT", 0, minimum=0) or None)
    rate = args.rate or env_float("SEND_RATE", 0.0, minimum=0.0) or None
    if rate is None and count is None:
        rate = DEFAULT_RATE
    factory = MessageFactory(
        run_id=args.run_id or env_str("SEND_RUN_ID") or new_run_id(),
        text=args.text or env_str("SEND_TEXT", "Hello World!"),
        poison=args.poison,
    )
    log_start(log, queue, cluster, run_id=factory.run_id, count=count, rate=rate)
    return Publisher(
        broker,
        queue,
        MessageSource(factory, count=count, rate=rate),
        window=args.window or env_int("SEND_WINDOW", 2000, minimum=1, maximum=65535),
        drain_timeout=args.drain_timeout or env_float("SEND_DRAIN_TIMEOUT", 20.0, minimum=0.1),
        log=log,
        progress_interval=metrics_interval(),
        metrics_cluster=cluster,
    )


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    return run_service("send", lambda log: build_publisher(args, log), after=lambda p: p.log_summary())


if __name__ == "__main__":
    sys.exit(main())
