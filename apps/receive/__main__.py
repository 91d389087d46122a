"""python -m apps.receive: consume messages, ack each only after it is processed.

Runs until SIGTERM/SIGINT (then stops consuming, acks what it has processed
and exits 0), or with ``--idle-exit`` until the queue has been quiet that long.
Messages that keep failing go to ``<queue>.dead`` after ``--max-deliveries``
deliveries (through the broker policy of apps.common.contract.broker, which
the infrastructure loads); a message with the header ``x-seaport-poison``
always fails (``python -m apps.send --poison`` sends such messages, to test
that path).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from apps.common.amqp_cli import (
    add_broker_arguments,
    app_parser,
    log_start,
    metrics_interval,
    non_negative_float,
    positive_float,
    positive_int,
    run_service,
    settings_from_args,
)
from apps.common.config import env_float, env_int, env_str
from apps.receive.consumer import Consumer


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = app_parser("apps.receive", __doc__)
    group = parser.add_argument_group("consuming (flags override the environment variables)")
    group.add_argument(
        "--prefetch",
        type=positive_int,
        metavar="N",
        help="most unacknowledged messages held at once (RECEIVE_PREFETCH, default 500)",
    )
    group.add_argument(
        "--ack-every",
        type=positive_int,
        metavar="N",
        help="ack at least every N processed messages (RECEIVE_ACK_EVERY, default prefetch/4)",
    )
    group.add_argument(
        "--record",
        type=Path,
        metavar="FILE",
        help="append each processed message id to FILE, flushed before the ack (RECEIVE_RECORD)",
    )
    group.add_argument(
        "--idle-exit",
        type=positive_float,
        metavar="SECONDS",
        help="exit 0 after this long connected without a message (RECEIVE_IDLE_EXIT)",
    )
    group.add_argument(
        "--work-ms",
        type=non_negative_float,
        metavar="MS",
        help="simulated processing time per message (RECEIVE_WORK_MS, default 0)",
    )
    add_broker_arguments(parser)
    return parser.parse_args(argv)


def build_consumer(args: argparse.Namespace, log) -> Consumer:
    broker, queue, cluster = settings_from_args(args)
    prefetch = args.prefetch or env_int("RECEIVE_PREFETCH", 500, minimum=1, maximum=65535)
    record = args.record or (Path(env_str("RECEIVE_RECORD")) if env_str("RECEIVE_RECORD") else None)
    idle_exit = args.idle_exit or env_float("RECEIVE_IDLE_EXIT", 0.0, minimum=0.0) or None
    work_ms = args.work_ms if args.work_ms is not None else env_float("RECEIVE_WORK_MS", 0.0, minimum=0.0)
    log_start(log, queue, cluster, prefetch=prefetch, record=str(record) if record else None)
    return Consumer(
        broker,
        queue,
        prefetch=prefetch,
        ack_every=args.ack_every or env_int("RECEIVE_ACK_EVERY", 0, minimum=0) or None,
        record=record,
        idle_exit=idle_exit,
        work_seconds=work_ms / 1000.0,
        log=log,
        progress_interval=metrics_interval(),
        metrics_cluster=cluster,
    )


def report(consumer: Consumer) -> None:
    consumer.close()
    consumer.log.info("summary", extra={"fields": consumer.stats()})


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    return run_service("receive", lambda log: build_consumer(args, log), after=report)


if __name__ == "__main__":
    sys.exit(main())
