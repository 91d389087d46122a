"""Run an HTTP app under gunicorn, started from Python: ``python -m apps.<name> --port P``.

Shared by weather, stocks and portal. Each of ``--workers`` processes
(``WEB_CONCURRENCY``) serves requests with one of two worker classes
(``--worker-class``, ``WORKER_CLASS``; an app chooses its default):

- ``gthread`` (weather, stocks): ``--threads`` (``THREADS``) requests at a
  time on a thread pool; idle keep-alive connections wait in a poller instead
  of holding a thread.
- ``gevent`` (the portal; needs the gevent package, which only the portal's
  image has): every connection is a greenlet on the worker's one OS thread,
  up to ``--worker-connections`` (``WORKER_CONNECTIONS``) at a time, and a
  greenlet waiting for a backend costs no thread. No hand-over between a
  poller and a thread pool, no threads contending for the GIL; ``--threads``
  doesn't apply. The standard library is monkey-patched (threads, locks,
  thread-locals, sockets and timeouts become greenlet-aware) by
  ``patch_for_gevent()``, which the app's ``__main__`` calls before its other
  imports: patched later, as gunicorn's worker does after the fork, modules
  that bound ssl's classes at import (urllib3) would keep blocking ones. When
  told to stop, a gevent worker closes its idle keep-alive connections at once,
  as gthread does, instead of keeping them until ``GRACEFUL_TIMEOUT``.

A worker of either class that the master tells to stop while it is still
starting stops as soon as it can act (gunicorn alone loses that signal:
``_keep_master_signal_queue``).

The app is built in each worker after the fork (thread pools and connection
pools must not cross a fork); settings are read and checked once in the master
before that, so a bad setting stops the container with one readable line.
"""

from __future__ import annotations

import argparse
import contextlib
import logging
import os
import queue
import signal
import socket
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
WORKER_CLASSES = ("gthread", "gevent")  # the values of --worker-class / WORKER_CLASS
# How long a stopping gevent worker's connections wait for a request (see _gevent_worker).
_STOPPING_WAIT = 1.0


class JsonGunicornLogger(glogging.Logger):
    """Gunicorn's own messages through the app's JSON log handler (see apps/common/log.py)."""

    def setup(self, cfg) -> None:
        super().setup(cfg)
        for logger in (self.error_log, self.access_log):
            logger.handlers[:] = []
            logger.propagate = True

    def info(self, msg, *args, **kwargs) -> None:
        # With a socket per worker (reuse_port) the master holds none: gunicorn's "Listening at: %s (%s)"
        # would name no address.
        if msg.startswith("Listening at:") and args and args[0] == "":
            where = ",".join(f"http://{address}" for address in self.cfg.bind)
            args = (f"{where}, a socket per worker", *args[1:])
        super().info(msg, *args, **kwargs)


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


def add_server_args(parser: argparse.ArgumentParser, threads: int = 32, worker_class: str = "gthread") -> None:
    """``--host``, ``--port``, ``--workers``, ``--worker-class``, ``--threads``, ``--worker-connections``.

    Their defaults come from the environment; ``worker_class`` is the app's default worker class.
    """
    group = parser.add_argument_group("server")
    group.add_argument("--host", default=env_str("HOST", DEFAULT_HOST), help="address to listen on (HOST)")
    _int_argument(group, "--port", "PORT", DEFAULT_PORT, maximum=65535, what="TCP port")
    _int_argument(group, "--workers", "WEB_CONCURRENCY", 2, maximum=64, what="worker processes")
    group.add_argument(
        "--worker-class",
        choices=WORKER_CLASSES,
        default=worker_class_setting(worker_class),
        help="gthread: a thread per request in flight; gevent: a greenlet per connection, on one thread per "
        f"worker, needs the gevent package (WORKER_CLASS, default {worker_class})",
    )
    _int_argument(
        group, "--threads", "THREADS", threads, maximum=1024, what="gthread: requests served at a time by each worker"
    )
    _int_argument(
        group,
        "--worker-connections",
        "WORKER_CONNECTIONS",
        1000,
        maximum=100_000,
        what="connections open at a time per worker; gevent: also the requests served at a time",
    )


def _int_argument(group, flag: str, variable: str, default: int, *, maximum: int, what: str) -> None:
    """``flag``, a whole number from 1 to ``maximum``: ``variable``, else ``default``; its help ``what`` names both."""
    group.add_argument(
        flag,
        type=int,
        default=env_int(variable, default, minimum=1, maximum=maximum),
        help=f"{what} ({variable}, default {default})",
    )


def worker_class_setting(default: str) -> str:
    """``WORKER_CLASS``, else ``default``: one of WORKER_CLASSES (ConfigError otherwise)."""
    raw = env_str("WORKER_CLASS") or default
    if raw.lower() not in WORKER_CLASSES:
        raise ConfigError(f"WORKER_CLASS={raw!r} is not a worker class: use {' or '.join(WORKER_CLASSES)}")
    return raw.lower()


def patch_for_gevent(default_worker_class: str, argv: Sequence[str] | None = None) -> bool:
    """Monkey-patch the standard library for gevent if this app will run gevent workers; True if it did.

    Call it first in an app's ``__main__``, before importing the modules that bind threading,
    socket or ssl names at import (requests, urllib3, flask): they keep what they bound. It
    reads ``--worker-class`` and ``WORKER_CLASS`` as ``run()`` will; a bad value, or gevent
    missing, patches nothing and leaves the one-line error to ``run()``.
    """

    class Quiet(argparse.ArgumentParser):
        def error(self, message):
            raise ValueError(message)

    parser = Quiet(add_help=False)
    parser.add_argument("--worker-class")
    try:
        chosen = parser.parse_known_args(argv)[0].worker_class or worker_class_setting(default_worker_class)
    except (ValueError, ConfigError):
        return False
    if chosen != "gevent" or not _gevent_installed():
        return False
    from gevent import monkey

    monkey.patch_all()
    return True


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
    if args.worker_class == "gevent" and not _gevent_installed():
        raise ConfigError("worker class gevent needs the gevent package, which is not installed: use gthread")
    options = {
        "bind": f"{host}:{args.port}",
        "workers": args.workers,
        "threads": args.threads,
        "worker_class": _gevent_worker() if args.worker_class == "gevent" else "gthread",
        "worker_connections": args.worker_connections,
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
        # A listening socket per worker (SO_REUSEPORT), so the kernel spreads new connections
        # evenly over the workers. On one shared socket, whichever worker wakes first accepts:
        # under a burst of keep-alive connections one worker got 92 of 128, and its requests
        # queued behind each other while the other worker idled. (The master holds no socket
        # then: check_port_free() makes a taken port fail at start, as a shared socket would.)
        "reuse_port": True,
        "post_fork": _keep_master_signal_queue,
        "post_worker_init": _obey_signals_before_handlers,
    }
    if os.path.isdir("/dev/shm"):  # noqa: S108 - a fixed system tmpfs, nothing is created in it by name
        # Worker heartbeats on tmpfs: a container's /tmp on overlayfs can stall them.
        options["worker_tmp_dir"] = "/dev/shm"  # noqa: S108
    return options


# Signals a worker acts on if they came before its own handlers did (see _obey_signals_before_handlers).
_STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT, signal.SIGQUIT)


def _keep_master_signal_queue(arbiter, worker) -> None:
    """gunicorn's post_fork hook, in a new worker: keep the master's signal queue, as the worker copied it.

    From its fork until it installs its own handlers (``init_signals``, in ``init_process``), a worker
    runs the handlers it inherited from the master, which only put a signal on that queue: the worker's
    copy, which nobody reads. A SIGTERM the master sends then (an ECS task stopped while a worker
    starts) is lost, and the worker serves on until the master SIGKILLs it ``GRACEFUL_TIMEOUT`` later.
    """
    worker.signals_before_handlers = getattr(arbiter, "SIG_QUEUE", None)  # a private attribute: tolerate its absence


def _obey_signals_before_handlers(worker) -> None:
    """gunicorn's post_worker_init hook: act on a stop signal that reached the worker before its handlers."""
    queued = getattr(worker, "signals_before_handlers", None)
    if queued is None:
        return
    if isinstance(queued, list):  # gunicorn 23-26; 27 has a queue.SimpleQueue
        signals, queued[:] = list(queued), []
    elif hasattr(queued, "get_nowait"):
        signals = []
        with contextlib.suppress(queue.Empty):
            while True:
                signals.append(queued.get_nowait())
    else:  # a gunicorn that keeps its signals otherwise: nothing to read
        return
    stops = [sig for sig in signals if sig in _STOP_SIGNALS]
    if not stops:
        return
    worker.log.info("Stop signal %s came while the worker was starting: stopping", signal.Signals(stops[0]).name)
    if stops[0] == signal.SIGTERM:
        worker.handle_exit(stops[0], None)  # graceful: serves nothing new, as after a SIGTERM on time
    else:
        worker.handle_quit(stops[0], None)


def check_port_free(host: str, port: int) -> None:
    """ConfigError if nothing can listen on ``host:port`` now (taken, or not an address of this host).

    With a socket per worker, gunicorn's workers bind, not its master, and a worker that
    cannot bind is started again and again: without this check a taken port would leave the
    app running and never serving. A plain bind (no SO_REUSEPORT) also fails when another
    instance of these apps holds the port, which would otherwise share its connections.
    """
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((host, port))
        except OSError as error:
            raise ConfigError(f"cannot listen on {host}:{port} (--host/HOST, --port/PORT): {error.strerror}") from None


def _gevent_installed() -> bool:
    try:
        import gevent  # noqa: F401 - only whether it imports
    except ImportError:
        return False
    return True


def _gevent_worker() -> type:
    """gunicorn's gevent worker, made to close its idle keep-alive connections when told to stop.

    gunicorn's own keeps serving every open connection until it closes or ``GRACEFUL_TIMEOUT``
    runs out, and a browser or a load balancer keeps idle connections open for a minute: each
    stop would take the whole graceful timeout. Here, on SIGTERM, the connections waiting for a
    request are shut down and the requests in flight finish; from then on a connection waits at
    most ``_STOPPING_WAIT`` seconds for a request (answered with ``Connection: close``): one
    whose answer was in flight, or one accepted in the moment before the listener closes.
    """
    import gevent
    from gunicorn.workers.ggevent import GeventWorker

    class Worker(GeventWorker):
        def init_process(self):
            self.connections: dict[Any, Any] = {}  # greenlet: its client socket
            self.waiting: set[Any] = set()  # greenlets waiting for a request on their connection
            super().init_process()

        def handle(self, listener, client, addr):
            greenlet = gevent.getcurrent()
            self.connections[greenlet] = client
            try:
                super().handle(listener, client, addr)
            finally:
                del self.connections[greenlet]

        @contextlib.contextmanager
        def timeout_ctx(self):  # wraps each wait for a connection's next request
            greenlet = gevent.getcurrent()
            self.waiting.add(greenlet)
            try:
                with gevent.Timeout(self.cfg.keepalive if self.alive else _STOPPING_WAIT, False):
                    yield
            finally:
                self.waiting.discard(greenlet)

        def handle_exit(self, sig, frame):
            super().handle_exit(sig, frame)
            gevent.spawn(self.close_idle)  # out of the signal handler, as gunicorn's own does for SIGQUIT

        def close_idle(self):
            for greenlet in list(self.waiting):
                client = self.connections.get(greenlet)
                if client is None:
                    continue
                # Shut down through a duplicate: gevent's shutdown() would also fail the waiting read
                # with EBADF, which gunicorn logs as an error. This way the read ends as at a client's
                # close, and gunicorn closes the connection quietly.
                with contextlib.suppress(OSError), socket.fromfd(client.fileno(), client.family, client.type) as twin:
                    twin.shutdown(socket.SHUT_RDWR)

    # gunicorn logs a worker class given as a class by its name: "Using worker: gevent".
    Worker.__name__ = Worker.__qualname__ = "gevent"
    return Worker


def run(
    service: str,
    description: str,
    build: Callable[[argparse.Namespace], AppFactory],
    add_arguments: Callable[[argparse.ArgumentParser], None] | None = None,
    argv: Sequence[str] | None = None,
    worker_class: str = "gthread",
) -> int:
    """``main()`` of an HTTP app: parse flags, check settings, serve until SIGTERM.

    ``build(args)`` reads and checks the app's settings (raising ConfigError)
    and returns the factory each worker calls to make its WSGI app.
    ``worker_class`` is the app's default (``WORKER_CLASS`` overrides it); an
    app whose default is gevent calls ``patch_for_gevent()`` first.
    """
    try:
        parser = argparse.ArgumentParser(prog=f"python -m apps.{service}", description=description)
        add_server_args(parser, worker_class=worker_class)
        if add_arguments:
            add_arguments(parser)
        args = parser.parse_args(argv)
        setup_logging(service)
        factory = build(args)
        options = gunicorn_options(service, args)
        check_port_free(args.host, args.port)
    except ConfigError as error:
        print(f"{service}: configuration error: {error}", file=sys.stderr)
        return 2
    fields = {"bind": options["bind"], "workers": args.workers, "worker_class": args.worker_class}
    if args.worker_class == "gthread":
        fields["threads"] = args.threads
    fields["worker_connections"] = args.worker_connections
    logging.getLogger(service).info("starting", extra={"fields": fields})
    _Gunicorn(factory, options).run()
    return 0
