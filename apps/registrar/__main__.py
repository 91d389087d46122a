"""``python -m apps.registrar --service NAME --container C --container-port P``.

The sidecar that makes a container of its ECS task discoverable in Consul:
it finds the container's dynamic host port in the task metadata (v4),
registers it with the local agent with a health check, keeps the
registration while it runs and removes it on SIGTERM (exit 0). If the
container or port does not show up within ``--wait-seconds`` it prints one
line and exits 1; a bad setting exits 2. Every flag has an environment
variable (``--help``); the agent address and token come from
``CONSUL_HTTP_ADDR`` / ``CONSUL_HTTP_TOKEN`` as for the apps.
"""

from __future__ import annotations

import argparse
import logging
import re
import signal
import sys
import threading

import requests

from apps.common import consul
from apps.common.config import ConfigError, env_float, env_int, env_str
from apps.common.log import setup_logging
from apps.registrar import metadata
from apps.registrar.agent import Agent, CheckSpec
from apps.registrar.sidecar import Sidecar, Target

DURATION = re.compile(r"\d+(ms|s|m|h)")


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m apps.registrar", description=__doc__.split("\n\n")[1])
    p.add_argument("--service", default=env_str("REGISTRAR_SERVICE"), help="Consul service name (REGISTRAR_SERVICE)")
    p.add_argument(
        "--container",
        default=env_str("REGISTRAR_CONTAINER"),
        help="container name in the task (REGISTRAR_CONTAINER)",
    )
    p.add_argument(
        "--container-port",
        type=int,
        default=env_int("REGISTRAR_CONTAINER_PORT", 0),
        help="the container's port to publish (REGISTRAR_CONTAINER_PORT)",
    )
    p.add_argument(
        "--protocol",
        default=env_str("REGISTRAR_PROTOCOL", "tcp"),
        choices=["tcp", "udp"],
        help="(REGISTRAR_PROTOCOL, default tcp)",
    )
    p.add_argument(
        "--check",
        default=env_str("REGISTRAR_CHECK", "http:/health"),
        help="http:<path>, tcp or none (REGISTRAR_CHECK, default http:/health)",
    )
    p.add_argument("--check-interval", default=env_str("REGISTRAR_CHECK_INTERVAL", "10s"), help="(10s)")
    p.add_argument("--check-timeout", default=env_str("REGISTRAR_CHECK_TIMEOUT", "2s"), help="(2s)")
    p.add_argument(
        "--deregister-after",
        default=env_str("REGISTRAR_DEREGISTER_AFTER", "1m"),
        help="Consul removes the service after its check is critical this long (1m)",
    )
    p.add_argument("--tags", default=env_str("REGISTRAR_TAGS", ""), help="comma-separated (REGISTRAR_TAGS)")
    p.add_argument(
        "--address",
        default=env_str("REGISTRAR_ADDRESS"),
        help="address to register (REGISTRAR_ADDRESS); default: the agent's node address",
    )
    p.add_argument(
        "--verify-seconds",
        type=float,
        default=env_float("REGISTRAR_VERIFY_SECONDS", 10.0, minimum=0.1),
        help="how often the registration is checked (REGISTRAR_VERIFY_SECONDS, default 10)",
    )
    p.add_argument(
        "--wait-seconds",
        type=float,
        default=env_float("REGISTRAR_WAIT_SECONDS", 180.0, minimum=0),
        help="how long to wait for the container's port (REGISTRAR_WAIT_SECONDS, default 180)",
    )
    p.add_argument(
        "--metadata-uri",
        default=env_str("ECS_CONTAINER_METADATA_URI_V4"),
        help="task metadata endpoint v4 (ECS_CONTAINER_METADATA_URI_V4, set by ECS)",
    )
    return p


def check_spec(args: argparse.Namespace) -> CheckSpec:
    kind, _, path = args.check.partition(":")
    kind = kind.strip().lower()
    if kind not in ("http", "tcp", "none") or (kind != "http" and path):
        raise ConfigError(f"--check={args.check!r}: use http:/path, tcp or none")
    path = path or "/health"
    if kind == "http" and (not path.startswith("/") or any(ch.isspace() for ch in path)):
        raise ConfigError(f"--check={args.check!r}: the HTTP path must start with / and have no spaces")
    for flag, value in (
        ("--check-interval", args.check_interval),
        ("--check-timeout", args.check_timeout),
        ("--deregister-after", args.deregister_after),
    ):
        if not DURATION.fullmatch(value):
            raise ConfigError(f"{flag}={value!r} is not a duration like 10s, 500ms or 1m")
    return CheckSpec(kind, path, args.check_interval, args.check_timeout, args.deregister_after)


def target(args: argparse.Namespace) -> Target:
    consul.service_name("--service", args.service)
    if not args.container:
        raise ConfigError("--container (REGISTRAR_CONTAINER) is required")
    if not 0 < args.container_port < 65536:
        raise ConfigError(f"--container-port={args.container_port} must be a port number (1-65535)")
    if not args.metadata_uri:
        raise ConfigError("ECS_CONTAINER_METADATA_URI_V4 is not set: the registrar runs inside an ECS task")
    tags = [tag.strip() for tag in args.tags.split(",") if tag.strip()]
    return Target(
        args.service, args.container, args.container_port, args.protocol, check_spec(args), tags, args.address
    )


def main(argv: list[str] | None = None) -> int:
    try:
        args = parser().parse_args(argv)
        wanted = target(args)
        base_url = consul.agent_url()
        session = consul.agent_session()
    except ConfigError as error:
        print(f"registrar: configuration error: {error}", file=sys.stderr)
        return 2
    log = setup_logging("registrar")
    stop = threading.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: stop.set())
    metadata_session = requests.Session()
    metadata_session.trust_env = False  # the endpoint is link-local, never behind a proxy
    sidecar = Sidecar(
        wanted,
        Agent(base_url, session),
        lambda: metadata.read_task(args.metadata_uri, metadata_session),
        stop,
        verify_seconds=args.verify_seconds,
    )
    try:
        sidecar.run(args.wait_seconds)
    except metadata.MetadataError as error:
        log.error("giving up", extra={"fields": {"error": str(error)}})
        print(f"registrar: {error}", file=sys.stderr)
        return 1
    logging.shutdown()
    return 0


if __name__ == "__main__":
    sys.exit(main())
