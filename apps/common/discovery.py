"""Find services by name through the local Consul agent's HTTP API.

Apps never carry an IP address: they ask the agent for the healthy instances
of a service (``GET /v1/health/service/<name>?passing=true``, documented at
https://developer.hashicorp.com/consul/api-docs/health#list-service-instances-for-service)
and pick one.

- Answers are cached for ``cache_seconds`` so a busy app does not query the
  agent on every request; only one thread refreshes a service at a time, and
  while it does, the others keep using the expired answer instead of queueing.
- When the agent cannot be reached (or answers an error), the last answer
  that worked is used, and the agent is asked again after ``retry_seconds``
  rather than on every call: a restarting agent must not take every app down
  with it, nor slow every request by a timeout.
- ``forget(service)`` after a connection to an instance failed makes the next
  ``pick`` ask the agent again (waiting for the fresh answer), and
  ``pick(service, avoid=failed)`` prefers another instance when there is one.
- ``NoHealthyInstance`` is raised when Consul answers that no instance passes
  its checks; ``DiscoveryError`` when the agent can't be asked and nothing is
  known yet.

Settings (environment, see apps/common/consul.py): ``CONSUL_HTTP_ADDR``
(``host:port`` or a URL, default ``127.0.0.1:8500``), ``CONSUL_HTTP_TOKEN``
(ACL token, optional).
"""

from __future__ import annotations

import logging
import os
import random
import threading
import time
from dataclasses import dataclass
from urllib.parse import quote

import requests

from apps.common import consul
from apps.common.config import ConfigError

log = logging.getLogger(__name__)

DEFAULT_AGENT = consul.DEFAULT_AGENT


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
        host = f"[{self.host}]" if ":" in self.host else self.host  # IPv6 literal
        return f"{scheme}://{host}:{self.port}"


def agent_url(address: str | None = None) -> str:
    """Normalise ``CONSUL_HTTP_ADDR`` (``host:port`` or ``http(s)://host:port``) to a base URL."""
    try:
        return consul.agent_url(address)
    except ConfigError as error:
        raise DiscoveryError(str(error)) from None


def parse_health(entries: list) -> list[Endpoint]:
    """Endpoints from the health endpoint's JSON (Service.Address, else Node.Address).

    An empty ``Service.Address`` means "the node's address": that is how the
    registrar registers (the instance's private IP, known only to the agent).
    Entries without a usable address or port are skipped.
    """
    endpoints = []
    for entry in entries:
        if not isinstance(entry, dict):
            continue
        service = entry.get("Service") or {}
        node = entry.get("Node") or {}
        host = service.get("Address") or node.get("Address")
        port = service.get("Port")
        if host and isinstance(port, int) and 0 < port < 65536:
            endpoints.append(Endpoint(host, port, service.get("ID", "")))
    return endpoints


@dataclass
class _Answer:
    endpoints: list[Endpoint]
    expires: float  # time.monotonic() after which the agent is asked again
    forgotten: bool = False  # an instance failed: callers wait for a fresh answer


class ConsulDiscovery:
    """Healthy instances of services, from the local Consul agent.

    Args:
        address: agent address; default ``CONSUL_HTTP_ADDR`` or ``127.0.0.1:8500``.
        token: ACL token; default ``CONSUL_HTTP_TOKEN`` (none).
        cache_seconds: how long an answer is reused before asking again (5 s).
        timeout: connect/read timeout of one query in seconds (2 s).
        retry_seconds: after a failed query, how long the last known answer is
            used before the agent is asked again (1 s); an empty answer is also
            kept only this long, so a service that comes up is found quickly.
    """

    def __init__(
        self,
        address: str | None = None,
        token: str | None = None,
        cache_seconds: float = 5.0,
        timeout: float = 2.0,
        retry_seconds: float = 1.0,
    ):
        self.base_url = agent_url(address)
        self.cache_seconds = cache_seconds
        self.retry_seconds = retry_seconds
        self.timeout = timeout
        try:
            self._session = consul.agent_session(token)
        except ConfigError as error:
            raise DiscoveryError(str(error)) from None
        self._answers: dict[str, _Answer] = {}
        self._refreshing: dict[str, threading.Lock] = {}
        self._lock = threading.Lock()  # guards the two dicts above

    def healthy(self, service: str) -> list[Endpoint]:
        """Every instance of ``service`` that passes its checks (may be empty)."""
        answer = self._answers.get(service)
        if answer and not answer.forgotten and time.monotonic() < answer.expires:
            return answer.endpoints
        refresh = self._refresh_lock(service)
        if answer and not answer.forgotten:
            # Expired: if another thread is already asking, use the old answer meanwhile.
            if not refresh.acquire(blocking=False):
                return answer.endpoints
        else:
            refresh.acquire()
        try:
            answer = self._answers.get(service)
            if answer and not answer.forgotten and time.monotonic() < answer.expires:
                return answer.endpoints  # refreshed by the thread we waited for
            return self._refresh(service, answer)
        finally:
            refresh.release()

    def pick(self, service: str, avoid: Endpoint | None = None) -> Endpoint:
        """One healthy instance of ``service``, chosen at random to spread load.

        ``avoid``: an instance that just failed; another one is chosen if any.
        """
        endpoints = self.healthy(service)
        if not endpoints:
            raise NoHealthyInstance(f"no healthy instance of {service!r} in Consul at {self.base_url}")
        others = [endpoint for endpoint in endpoints if endpoint != avoid]
        return random.choice(others or endpoints)  # noqa: S311 - load spreading, not security

    def forget(self, service: str) -> None:
        """Drop the cached answer (after a connection to an instance failed).

        The answer is kept as last-known-good, should the agent be unreachable.
        """
        with self._lock:
            answer = self._answers.get(service)
            if answer:
                answer.forgotten = True

    def _refresh_lock(self, service: str) -> threading.Lock:
        with self._lock:
            return self._refreshing.setdefault(service, threading.Lock())

    def _refresh(self, service: str, previous: _Answer | None) -> list[Endpoint]:
        now = time.monotonic()
        try:
            endpoints = self._query(service)
        except DiscoveryError as error:
            if previous is None:
                raise
            log.warning(
                "consul unreachable, using last known instances",
                extra={"fields": {"service": service, "error": str(error)}},
            )
            self._answers[service] = _Answer(previous.endpoints, now + self.retry_seconds)
            return previous.endpoints
        keep = self.cache_seconds if endpoints else min(self.retry_seconds, self.cache_seconds)
        self._answers[service] = _Answer(endpoints, now + keep)
        return endpoints

    def _query(self, service: str) -> list[Endpoint]:
        where = f"Consul at {self.base_url}"
        try:
            response = self._session.get(
                f"{self.base_url}/v1/health/service/{quote(service, safe='')}",
                params={"passing": "true"},
                timeout=self.timeout,
            )
        except requests.RequestException as error:
            raise DiscoveryError(f"cannot ask {where} for {service!r}: {error}") from None
        if response.status_code == 403:
            raise DiscoveryError(f"{where} refused the ACL token (403) asking for {service!r}")
        if response.status_code != 200:
            raise DiscoveryError(f"{where} answered HTTP {response.status_code} asking for {service!r}")
        try:
            entries = response.json()
        except ValueError:
            raise DiscoveryError(f"{where} answered something that is not JSON for {service!r}") from None
        if not isinstance(entries, list):
            raise DiscoveryError(f"{where} answered an unexpected JSON shape for {service!r}")
        return parse_health(entries)


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
