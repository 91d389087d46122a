"""Run an HTTP app under gunicorn, started from Python: ``python -m apps.<name> --port P``.

Shared by weather, stocks and portal. Gunicorn's ``gthread`` workers: each of
``--workers`` processes (``WEB_CONCURRENCY``) serves ``--threads``
(``THREADS``) requests at a time, and idle keep-alive connections wait in a
poller instead of holding a thread. The app is built in each worker after the
fork (thread pools and connection pools must not cross a fork); settings are
read and checked once in the master before that, so a bad setting stops the
container with one readable line.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
from collections.abc import Callable, Sequence
from typing import Any

from gunicorn import glogging
from gunicorn.app.base import BaseApplication

from apps.common.config import ConfigError, env_int, env_str
from apps.common.log import setup_logging

# Containers listen on every interface; tests and `make local` pass 127.0.0.1.
DEFAULT_HOST = "0.0.0.0"  # noqa: S104
DEFAULT_PORT = 8080

AppFactory = Callable[[], Any]  # builds the WSGI app inside a worker
# Settings older gunicorn releases (allowed by requirements.txt) don't have.
_SINCE_GUNICORN_27 = frozenset({"control_socket_disable"})


class JsonGunicornLogger(glogging.Logger):
    """Gunicorn's own messages through the app's JSON log handler (see apps/common/log.py)."""

    def setup(self, cfg) -> None:
        super().setup(cfg)
        for logger in (self.error_log, self.access_log):
            logger.handlers[:] = []
            logger.propagate = True


class _Gunicorn(BaseApplication):
    def __init__(self, factory: AppFactory, options: dict[str, Any]):
        self.factory = factory
        self.options = options
        super().__init__()

    def load_config(self) -> None:
        for key, value in self.options.items():
            if key in _SINCE_GUNICORN_27 and key not in self.cfg.settings:
                continue
            self.cfg.set(key, value)

    def load(self):
        return self.factory()


def add_server_args(parser: argparse.ArgumentParser, threads: int = 32) -> None:
    """``--host``, ``--port``, ``--workers``, ``--threads`` with environment defaults."""
    group = parser.add_argument_group("server")
    group.add_argument("--host", default=env_str("HOST", DEFAULT_HOST), help="address to listen on (HOST)")
    group.add_argument(
        "--port",
        type=int,
        default=env_int("PORT", DEFAULT_PORT, minimum=1, maximum=65535),
        help=f"TCP port (PORT, default {DEFAULT_PORT})",
    )
    group.add_argument(
        "--workers",
        type=int,
        default=env_int("WEB_CONCURRENCY", 2, minimum=1, maximum=64),
        help="worker processes (WEB_CONCURRENCY, default 2)",
    )
    group.add_argument(
        "--threads",
        type=int,
        default=env_int("THREADS", threads, minimum=1, maximum=1024),
        help=f"requests served at a time by each worker (THREADS, default {threads})",
    )


def add_delay_argument(parser: argparse.ArgumentParser) -> None:
    """``--delay-ms`` (``DELAY_MS``): artificial latency of the data answers, for tests and benchmarks."""
    parser.add_argument(
        "--delay-ms",
        type=_milliseconds,
        default=env_int("DELAY_MS", 0, minimum=0, maximum=60_000),
        help="artificial latency of every data answer, for tests and benchmarks (DELAY_MS, default 0)",
    )


def _milliseconds(text: str) -> int:
    value = int(text)
    if not 0 <= value <= 60_000:
        raise argparse.ArgumentTypeError(f"{value} is not between 0 and 60000")
    return value


def gunicorn_options(service: str, args: argparse.Namespace) -> dict[str, Any]:
    host = f"[{args.host}]" if ":" in args.host else args.host
    options = {
        "bind": f"{host}:{args.port}",
        "workers": args.workers,
        "threads": args.threads,
        "worker_class": "gthread",
        "proc_name": service,
        "logger_class": JsonGunicornLogger,
        "accesslog": "-" if env_str("ACCESS_LOG", "") in ("1", "true") else None,
        "timeout": env_int("WORKER_TIMEOUT", 30, minimum=5),
        # ECS sends SIGTERM and SIGKILLs 30 s later (stopTimeout): finish in-flight requests before.
        "graceful_timeout": env_int("GRACEFUL_TIMEOUT", 20, minimum=1),
        # Longer than the ALB's 60 s idle timeout, so the ALB closes idle connections, not us.
        "keepalive": env_int("KEEPALIVE", 75, minimum=0),
        # gunicorn 27's runtime control socket lives in $HOME (one path shared by every
        # instance on a machine, and no home for the image's user): not needed here.
        "control_socket_disable": True,
    }
    if os.path.isdir("/dev/shm"):  # noqa: S108 - a fixed system tmpfs, nothing is created in it by name
        # Worker heartbeats on tmpfs: a container's /tmp on overlayfs can stall them.
        options["worker_tmp_dir"] = "/dev/shm"  # noqa: S108
    return options


def run(
    service: str,
    description: str,
    build: Callable[[argparse.Namespace], AppFactory],
    add_arguments: Callable[[argparse.ArgumentParser], None] | None = None,
    argv: Sequence[str] | None = None,
) -> int:
    """``main()`` of an HTTP app: parse flags, check settings, serve until SIGTERM.

    ``build(args)`` reads and checks the app's settings (raising ConfigError)
    and returns the factory each worker calls to make its WSGI app.
    """
    try:
        parser = argparse.ArgumentParser(prog=f"python -m apps.{service}", description=description)
        add_server_args(parser)
        if add_arguments:
            add_arguments(parser)
        args = parser.parse_args(argv)
        setup_logging(service)
        factory = build(args)
        options = gunicorn_options(service, args)
    except ConfigError as error:
        print(f"{service}: configuration error: {error}", file=sys.stderr)
        return 2
    logging.getLogger(service).info(
        "starting",
        extra={"fields": {"bind": options["bind"], "workers": args.workers, "threads": args.threads}},
    )
    _Gunicorn(factory, options).run()
    return 0
