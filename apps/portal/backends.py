"""Calls from the portal to its backends (weather, stocks), with every failure turned into an answer.

``Backend.fetch(name)`` never raises: it returns an ``Outcome`` whose
``status`` is what the portal's API answers (200, 404, 502, 504) and whose
``message`` is safe to show. Connections are pooled (urllib3's PoolManager is
thread-safe, unlike a shared requests.Session) with connect and read
timeouts. A connection-level failure (refused, reset, or a pooled keep-alive
connection the backend closed) is retried once: with Consul, on a fresh
answer that avoids the instance that failed, which is how the portal follows
a backend that moved to another host or port. A read timeout is not retried:
the page must not wait twice for a slow backend.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass, field
from urllib.parse import quote

import urllib3
from urllib3.exceptions import (
    ConnectTimeoutError,
    HTTPError,
    NewConnectionError,
    ProtocolError,
    ReadTimeoutError,
)

from apps.common.discovery import ConsulDiscovery, DiscoveryError, Endpoint, NoHealthyInstance

log = logging.getLogger(__name__)

OK, UNKNOWN, INVALID, UNAVAILABLE, TIMEOUT = "ok", "unknown", "invalid", "unavailable", "timeout"


@dataclass(frozen=True)
class Outcome:
    """What one backend call came to."""

    state: str  # OK, UNKNOWN (the backend doesn't know the name), INVALID, UNAVAILABLE or TIMEOUT
    status: int  # the API's HTTP status for it
    data: dict = field(default_factory=dict)
    message: str = ""

    @property
    def failed(self) -> bool:
        """The backend itself failed (as opposed to answering about the name)."""
        return self.state in (UNAVAILABLE, TIMEOUT)


def unavailable(message: str) -> Outcome:
    return Outcome(UNAVAILABLE, 502, message=message)


def timed_out(message: str) -> Outcome:
    return Outcome(TIMEOUT, 504, message=message)


class Backend:
    """One backend service: where it is, how to ask it for a name, what a good answer holds."""

    def __init__(
        self,
        service: str,
        path: str,
        fields: tuple[str, ...],
        http: urllib3.PoolManager,
        timeout: urllib3.Timeout,
        url: str | None = None,
        discovery: ConsulDiscovery | None = None,
    ):
        if not url and discovery is None:
            raise ValueError(f"{service}: give a URL or a discovery client")
        self.service = service
        self.path = path  # with one {} for the quoted name, e.g. "/weather/{}"
        self.fields = fields
        self.http = http
        self.timeout = timeout
        self.url = url
        self.discovery = discovery

    def fetch(self, name: str) -> Outcome:
        path = self.path.format(quote(name, safe=""))
        failed: Endpoint | None = None
        outcome = unavailable("not reachable")
        for _attempt in range(2):
            try:
                base, endpoint = self._locate(avoid=failed)
            except NoHealthyInstance:
                return self._failure(unavailable("no healthy instance in Consul"), "consul", name)
            except DiscoveryError as error:
                return self._failure(unavailable("service discovery failed"), str(error), name)
            try:
                response = self.http.request("GET", base + path, timeout=self.timeout, retries=False, redirect=False)
            except ReadTimeoutError:
                return self._failure(timed_out(f"no answer within {self.timeout.read_timeout:g} s"), base, name)
            except (NewConnectionError, ConnectTimeoutError, ProtocolError) as error:
                # NewConnectionError (refused) is a subclass of ConnectTimeoutError: test it first.
                if isinstance(error, NewConnectionError) or not isinstance(error, ConnectTimeoutError):
                    outcome = unavailable("not reachable")
                else:
                    outcome = timed_out(f"no connection within {self.timeout.connect_timeout:g} s")
                failed = endpoint
                if self.discovery is not None and endpoint is not None:
                    self.discovery.forget(self.service)
                continue
            except HTTPError as error:
                return self._failure(unavailable("request failed"), f"{base}: {error!r}", name)
            return self._judge(response, base, name)
        return self._failure(outcome, base, name)

    def _locate(self, avoid: Endpoint | None) -> tuple[str, Endpoint | None]:
        if self.url:
            return self.url, None
        endpoint = self.discovery.pick(self.service, avoid=avoid)
        return endpoint.url(), endpoint

    def _judge(self, response: urllib3.BaseHTTPResponse, base: str, name: str) -> Outcome:
        try:
            body = json.loads(response.data)
        except ValueError:
            body = None
        if response.status == 200 and isinstance(body, dict) and all(key in body for key in self.fields):
            return Outcome(OK, 200, data=body)
        if response.status == 404:
            error = body.get("error") if isinstance(body, dict) else None
            return Outcome(UNKNOWN, 404, message=str(error or "not found"))
        return self._failure(unavailable(f"bad answer (HTTP {response.status})"), base, name)

    def _failure(self, outcome: Outcome, where: str, name: str) -> Outcome:
        log.warning(
            "backend call failed",
            extra={"fields": {"backend": self.service, "name": name, "where": where, "error": outcome.message}},
        )
        return outcome
