"""Command-line plumbing shared by apps.send and apps.receive.

Flags override environment variables; a bad setting or an unusable broker
ends the process with one JSON error line on stdout and a non-zero exit code
(see apps.common.amqp_service for the codes), never a traceback.
"""

from __future__ import annotations

import argparse
import logging
import os
import signal
from collections.abc import Callable

from apps.common.amqp_service import EXIT_CONFIG, ReconnectingService
from apps.common.config import ConfigError, env_float
from apps.common.contract import liveness, telemetry
from apps.common.liveness import Heartbeat
from apps.common.log import setup_logging
from apps.common.pika_tuning import coalesce_writes
from apps.common.rabbitmq import QUEUE_TYPES, BrokerSettings, QueueSettings

EXIT_CODES_HELP = f"""\
Every METRICS_INTERVAL_SECONDS (default 60; 0: never) and at exit the app logs a
"progress" record: its counters, and CloudWatch Embedded Metric Format metrics.
Their Cluster dimension is {telemetry.CLUSTER_VARIABLE} (the ECS cluster's name, which seaport
sets, so two stacks in one account and region write different metrics; default
{telemetry.DEFAULT_CLUSTER}; 1-255 letters, digits, _ or -).

While its loop makes progress (waiting for the broker included) the app refreshes
{liveness.FILE_VARIABLE} (default {liveness.HEARTBEAT_FILE}); `python -m {liveness.MODULE}`
is the health check that reads it.

exit codes: 0 done (or stopped by SIGTERM/SIGINT with nothing left in flight),
1 stopped with work unfinished, 2 bad setting, 3 broker unusable (unreachable for
RABBITMQ_RETRY_SECONDS, login refused)."""


def app_parser(module: str, doc: str) -> argparse.ArgumentParser:
    """The parser of ``python -m <module>``: the first paragraph of the module's ``doc`` ("python -m <module>: what
    it does") describes it, EXIT_CODES_HELP ends its help."""
    return argparse.ArgumentParser(
        prog=f"python -m {module}", description=doc.split("\n\n")[0].split(": ", 1)[1], epilog=EXIT_CODES_HELP
    )


def positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"{text} is not a positive integer")
    return value


def positive_float(text: str) -> float:
    value = float(text)
    if not value > 0:
        raise argparse.ArgumentTypeError(f"{text} is not a positive number")
    return value


def non_negative_float(text: str) -> float:
    value = float(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"{text} is negative")
    return value


def add_broker_arguments(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group(
        "broker and queue (flags override the environment variables)",
        "TLS: an amqps:// URL, or RABBITMQ_TLS=true with --service; the broker's certificate is always verified "
        "(TLS 1.2 or newer), against RABBITMQ_CA_PEM (the CA certificate's PEM text; default: the system's CAs) "
        "for the name RABBITMQ_TLS_SERVER_NAME (default: the host connected to).",
    )
    group.add_argument("--url", help="AMQP URL, amqp[s]://user:pass@host:port/vhost (RABBITMQ_URL)")
    group.add_argument(
        "--service",
        help="find the broker in Consul under this service name (RABBITMQ_SERVICE; credentials from "
        "RABBITMQ_USERNAME/RABBITMQ_PASSWORD, agent at CONSUL_HTTP_ADDR)",
    )
    group.add_argument("--queue", help="work queue name (RABBITMQ_QUEUE, default messages)")
    group.add_argument("--queue-type", choices=QUEUE_TYPES, help="queue type (RABBITMQ_QUEUE_TYPE, default quorum)")
    group.add_argument(
        "--max-deliveries",
        type=positive_int,
        metavar="N",
        help="failed deliveries of a message before receive dead-letters it to <queue>.dead; the broker "
        "policy's delivery-limit should be the same (RABBITMQ_MAX_DELIVERIES, default 10)",
    )
    group.add_argument(
        "--retry-for",
        type=non_negative_float,
        metavar="SECONDS",
        help="give up after this long without a working connection (RABBITMQ_RETRY_SECONDS, default 120)",
    )


DEFAULT_METRICS_INTERVAL = 60.0


def metrics_interval() -> float | None:
    """Seconds between an app's periodic counter records (METRICS_INTERVAL_SECONDS, default 60; 0: none)."""
    return env_float("METRICS_INTERVAL_SECONDS", DEFAULT_METRICS_INTERVAL, minimum=0.0) or None


def metrics_cluster() -> str:
    """The Cluster dimension of the app's metrics: METRICS_CLUSTER, the ECS cluster's name (default ``local``).

    Unset, the default; set, it must be an ECS cluster name (1-255 letters, digits, _ or -), else ConfigError:
    an empty or mangled value would file the metrics under a cluster no alarm reads."""
    name = telemetry.CLUSTER_VARIABLE
    raw = os.environ.get(name)
    if raw is None:
        return telemetry.DEFAULT_CLUSTER
    value = raw.strip()
    problem = telemetry.cluster_problem(value)
    if problem:
        shown = value if len(value) <= 60 else value[:60] + "..."
        raise ConfigError(
            f"{name}={shown!r} {problem}; it is the Cluster dimension of the app's metrics (seaport sets it to the "
            f"ECS cluster's name; unset, it is {telemetry.DEFAULT_CLUSTER!r})"
        )
    return value


def settings_from_args(args: argparse.Namespace) -> tuple[BrokerSettings, QueueSettings, str]:
    """The broker, the queue and the metrics' Cluster dimension (``metrics_cluster``), all checked before anything
    starts (ConfigError)."""
    broker = BrokerSettings.from_env(url=args.url, service=args.service, retry_seconds=args.retry_for)
    queue = QueueSettings.from_env(args.queue, args.queue_type, args.max_deliveries)
    return broker, queue, metrics_cluster()


def log_start(log: logging.Logger, queue: QueueSettings, cluster: str, **fields) -> None:
    """The app's "starting" record: its own settings (``fields``), the queue and the metrics' Cluster dimension."""
    log.info("starting", extra={"fields": {**fields, "queue": queue.name, "metrics_cluster": cluster}})


def run_service(
    app_name: str,
    build: Callable[[logging.Logger], ReconnectingService],
    after: Callable[[ReconnectingService], None] | None = None,
) -> int:
    """Build the service (ConfigError -> exit 2), run it until done or stopped, return its exit code."""
    log = setup_logging(app_name)
    # pika reports every failed attempt itself, some with tracebacks; the apps say
    # what happened in their own words.
    logging.getLogger("pika").setLevel(logging.CRITICAL)
    try:
        coalesce_writes()  # PIKA_COALESCE_WRITES
        service = build(log)
        service.liveness = Heartbeat.from_env()  # LIVENESS_FILE, read by the health check
    except ConfigError as error:
        log.error(str(error))
        return EXIT_CONFIG
    signal.signal(signal.SIGTERM, service.request_stop)
    signal.signal(signal.SIGINT, service.request_stop)
    code = service.run()
    if after is not None:
        after(service)
    log.info("exiting", extra={"fields": {"exit_code": code}})
    return code
