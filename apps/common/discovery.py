"""Find services by name through the local Consul agent's HTTP API.

Apps never carry an IP address: they ask the agent for the healthy instances
of a service (``GET /v1/health/service/<name>?passing=true``, documented at
https://developer.hashicorp.com/consul/api-docs/health#list-service-instances-for-service)
and pick one. Answers are cached for a few seconds so a busy app does not
query the agent on every request, and when the agent cannot be reached the
last answer that worked is used (a restarting agent must not take every app
down with it). ``NoHealthyInstance`` is raised when Consul answers that no
instance passes its checks.

Settings (environment): ``CONSUL_HTTP_ADDR`` (``host:port`` or a URL, default
``127.0.0.1:8500``), ``CONSUL_HTTP_TOKEN`` (ACL token, optional).
"""

from __future__ import annotations

import logging
import os
import random
import threading
import time
from dataclasses import dataclass
from urllib.parse import quote, urlsplit

import requests

log = logging.getLogger(__name__)

DEFAULT_AGENT = "127.0.0.1:8500"


class DiscoveryError(RuntimeError):
    """Consul could not be asked and nothing is known about the service."""


class NoHealthyInstance(DiscoveryError):
    """Consul answered, and no instance of the service passes its checks."""


@dataclass(frozen=True)
class Endpoint:
    """One healthy instance of a service."""

    host: str
    port: int
    service_id: str = ""

    def url(self, scheme: str = "http") -> str:
        return f"{scheme}://{self.host}:{self.port}"


def agent_url(address: str | None = None) -> str:
    """Normalise ``CONSUL_HTTP_ADDR`` (``host:port`` or ``http(s)://host:port``) to a base URL."""
    address = (address or os.environ.get("CONSUL_HTTP_ADDR") or DEFAULT_AGENT).strip().rstrip("/")
    if "://" not in address:
        address = "http://" + address
    parts = urlsplit(address)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise DiscoveryError(
            f"CONSUL_HTTP_ADDR={address!r} is not a Consul address: use host:port or http(s)://host:port"
        )
    return f"{parts.scheme}://{parts.netloc}"


def parse_health(entries: list) -> list[Endpoint]:
    """Endpoints from the health endpoint's JSON (Service.Address, else Node.Address)."""
    endpoints = []
    for entry in entries:
        service = entry.get("Service") or {}
        node = entry.get("Node") or {}
        host = service.get("Address") or node.get("Address")
        port = service.get("Port")
        if host and port:
            endpoints.append(Endpoint(host, int(port), service.get("ID", "")))
    return endpoints


class ConsulDiscovery:
    """Healthy instances of services, from the local Consul agent.

    Args:
        address: agent address; default ``CONSUL_HTTP_ADDR`` or ``127.0.0.1:8500``.
        token: ACL token; default ``CONSUL_HTTP_TOKEN`` (none).
        cache_seconds: how long an answer is reused before asking again (5 s).
        timeout: connect/read timeout of one query in seconds (2 s).
    """

    def __init__(
        self,
        address: str | None = None,
        token: str | None = None,
        cache_seconds: float = 5.0,
        timeout: float = 2.0,
    ):
        self.base_url = agent_url(address)
        self.cache_seconds = cache_seconds
        self.timeout = timeout
        self._session = requests.Session()
        token = token if token is not None else os.environ.get("CONSUL_HTTP_TOKEN")
        if token:
            self._session.headers["X-Consul-Token"] = token
        self._cache: dict[str, tuple[float, list[Endpoint]]] = {}
        self._lock = threading.Lock()

    def healthy(self, service: str) -> list[Endpoint]:
        """Every instance of ``service`` that passes its checks (may be empty)."""
        now = time.monotonic()
        with self._lock:
            cached = self._cache.get(service)
        if cached and now - cached[0] < self.cache_seconds:
            return cached[1]
        try:
            endpoints = self._query(service)
        except (requests.RequestException, ValueError) as error:
            if cached:
                log.warning(
                    "consul unreachable, using last known instances",
                    extra={"fields": {"service": service, "error": str(error)}},
                )
                return cached[1]
            raise DiscoveryError(f"cannot ask Consul at {self.base_url} for {service!r}: {error}") from None
        with self._lock:
            self._cache[service] = (now, endpoints)
        return endpoints

    def pick(self, service: str) -> Endpoint:
        """One healthy instance of ``service``, chosen at random to spread load."""
        endpoints = self.healthy(service)
        if not endpoints:
            raise NoHealthyInstance(f"no healthy instance of {service!r} in Consul at {self.base_url}")
        return random.choice(endpoints)  # noqa: S311 - load spreading, not security

    def forget(self, service: str) -> None:
        """Drop the cached answer (after a connection to an instance failed)."""
        with self._lock:
            cached = self._cache.get(service)
            if cached:
                # keep it as last-known-good, but make it stale
                self._cache[service] = (float("-inf"), cached[1])

    def _query(self, service: str) -> list[Endpoint]:
        response = self._session.get(
            f"{self.base_url}/v1/health/service/{quote(service, safe='')}",
            params={"passing": "true"},
            timeout=self.timeout,
        )
        response.raise_for_status()
        return parse_health(response.json())


def service_url(explicit_env: str, service: str, discovery: ConsulDiscovery | None) -> str:
    """Base URL of a dependency: ``$explicit_env`` when set, else a Consul pick.

    Explicit URLs serve local runs and tests; on ECS the variable is unset and
    the agent answers.
    """
    explicit = os.environ.get(explicit_env, "").strip()
    if explicit:
        return explicit.rstrip("/")
    if discovery is None:
        raise DiscoveryError(f"{explicit_env} is not set and no Consul agent is configured")
    return discovery.pick(service).url()
