"""Calls from the portal to its backends (weather, stocks), with every failure turned into an answer.

``Backend.fetch(name)`` and ``Backend.read_many(names, Backend.ask_many(names))``
never raise: they return ``Outcome``s whose ``status`` is what the portal's API
answers (200, 404, 502, 504) and whose ``message`` is safe to show.
``ask_many`` asks for all of a page's names in one request
(``GET /weather?cities=a,b``); its raw answer is what a page is kept by (pages.py).

Connections are kept alive and shared by the process's calls (client.py),
with connect and read timeouts. A connection-level
failure (refused, reset, or a pooled keep-alive connection the backend
closed) is retried once: with Consul, on a fresh answer that avoids the
instance that failed, which is how the portal follows a backend that moved to
another host or port. A read timeout is not retried: the page must not wait
twice for a slow backend.

Identical GETs (same backend, same path) in flight at the same time in one
process are coalesced (flight.py, ``PORTAL_COALESCE``): the first caller
makes the call, retry included, and the others wait for its answer, each at
most the read timeout. What they share is immutable (the body's bytes or a
frozen failure ``Outcome``): each caller parses its own copy of the JSON.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass, field
from urllib.parse import quote

from apps.common.discovery import ConsulDiscovery, DiscoveryError, Endpoint, NoHealthyInstance
from apps.portal import client, flight

log = logging.getLogger(__name__)

OK, UNKNOWN, INVALID, UNAVAILABLE, TIMEOUT = "ok", "unknown", "invalid", "unavailable", "timeout"


@dataclass(frozen=True)
class Outcome:
    """What asking a backend about one name came to."""

    state: str  # OK, UNKNOWN (the backend doesn't know the name), INVALID, UNAVAILABLE or TIMEOUT
    status: int  # the API's HTTP status for it
    data: dict = field(default_factory=dict)
    message: str = ""

    @property
    def failed(self) -> bool:
        """The backend itself failed (as opposed to answering about the name)."""
        return self.state in (UNAVAILABLE, TIMEOUT)


# What one GET came to: ``(status, body)``, or the failure. Immutable: a flight's callers share it.
Answer = tuple[int, bytes] | Outcome


def _json(body: bytes):
    """The parsed body (each caller parses its own copy), or None if it is not JSON."""
    try:
        return json.loads(body)
    except ValueError:
        return None


def unavailable(message: str) -> Outcome:
    return Outcome(UNAVAILABLE, 502, message=message)


def timed_out(message: str) -> Outcome:
    return Outcome(TIMEOUT, 504, message=message)


class Backend:
    """One backend service: where it is, how to ask it about names, what a good answer holds.

    Args:
        service: the backend's name in logs and API errors (``weather``, ``stocks``).
        path: the one-name path with ``{}`` for the quoted name, e.g. ``/weather/{}``.
        list_path: the several-names path ending in ``=``, e.g. ``/weather?cities=``.
        fields: the keys a good answer has.
        url: the backend's base URL; without it, ``discovery`` finds an instance.
        consul_service: the name to look up in Consul; default ``service``.
        coalesce: identical GETs in flight at the same time share one call.
    """

    def __init__(
        self,
        service: str,
        path: str,
        list_path: str,
        fields: tuple[str, ...],
        http: client.KeepAliveClient,
        url: str | None = None,
        discovery: ConsulDiscovery | None = None,
        consul_service: str | None = None,
        coalesce: bool = True,
    ):
        if not url and discovery is None:
            raise ValueError(f"{service}: give a URL or a discovery client")
        self.service = service
        self.consul_service = consul_service or service
        self.path = path
        self.list_path = list_path
        self.fields = fields
        self.http = http
        self.url = url
        self.discovery = discovery
        self.flights = flight.Flights() if coalesce else None

    def fetch(self, name: str) -> Outcome:
        answer = self._get(self.path.format(quote(name, safe="")), name)
        if isinstance(answer, Outcome):
            return answer
        status, body = answer
        if status == 404:
            error = body.get("error") if isinstance(body, dict) else None
            return Outcome(UNKNOWN, 404, message=str(error or "not found"))
        return self._record(status, body, name)

    def ask_many(self, names: list[str]) -> Answer | None:
        """The answer of the backend's one GET for all of ``names`` (None for no names); never raises."""
        if not names:
            return None
        what = ",".join(names)
        return self._answer(self.list_path + quote(what, safe=","), what)

    def read_many(self, names: list[str], answer: Answer | None) -> list[Outcome]:
        """An Outcome per name, from ``ask_many(names)``'s answer."""
        if not names:
            return []
        if isinstance(answer, Outcome):
            return [answer] * len(names)
        status, body = answer[0], _json(answer[1])
        results = body.get("results") if isinstance(body, dict) else None
        if status != 200 or not isinstance(results, list) or len(results) != len(names):
            return [self._bad(status, ",".join(names))] * len(names)
        outcomes = []
        for name, entry in zip(names, results, strict=True):
            if isinstance(entry, dict) and "error" in entry:
                outcomes.append(Outcome(UNKNOWN, 404, message=str(entry["error"])))
            else:
                outcomes.append(self._record(200, entry, name))
        return outcomes

    def _record(self, status: int, body, name: str) -> Outcome:
        if status == 200 and isinstance(body, dict) and all(key in body for key in self.fields):
            return Outcome(OK, 200, data=body)
        return self._bad(status, name)

    def _bad(self, status: int, name: str) -> Outcome:
        return self._failure(unavailable(f"bad answer (HTTP {status})"), self.url or "consul", name)

    def _get(self, path: str, name: str) -> tuple[int, object] | Outcome:
        """``(status, JSON body or None)``, or the failure Outcome."""
        answer = self._answer(path, name)
        if isinstance(answer, Outcome):
            return answer
        return answer[0], _json(answer[1])  # a copy of our own, whoever made the call

    def _answer(self, path: str, name: str) -> Answer:
        """``(status, body)`` of the GET, or the failure Outcome: the identical call's in flight, if coalescing."""
        if self.flights is None:
            return self._call(path, name)
        try:
            return self.flights.call(path, lambda: self._call(path, name), wait=self.http.read_timeout)
        except flight.WaitTimeout:
            # Waiting for someone else's call must not take longer than a call of our own could.
            message = f"no answer within {self.http.read_timeout:g} s"
            return self._failure(timed_out(message), self.url or "consul", name)

    def _call(self, path: str, name: str) -> tuple[int, bytes] | Outcome:
        """``(status, body)`` of one GET (once more on another instance if the connection failed), or the failure."""
        failed: Endpoint | None = None
        outcome = unavailable("not reachable")
        base = self.url or "consul"
        for _attempt in range(2):
            try:
                base, endpoint = self._locate(avoid=failed)
            except NoHealthyInstance:
                return self._failure(unavailable("no healthy instance in Consul"), "consul", name)
            except DiscoveryError as error:
                return self._failure(unavailable("service discovery failed"), str(error), name)
            try:
                status, data = self.http.get(base, path)
            except client.ReadTimeout as error:
                return self._failure(timed_out(str(error)), base, name)
            except (client.Refused, client.Lost, client.ConnectTimeout) as error:
                # The instance is gone, moved, or closed a kept-alive connection: once more, afresh.
                outcome = (
                    timed_out(str(error)) if isinstance(error, client.ConnectTimeout) else unavailable("not reachable")
                )
                failed = endpoint
                if self.discovery is not None and endpoint is not None:
                    self.discovery.forget(self.consul_service)
                continue
            except client.BadResponse as error:
                return self._failure(unavailable("bad answer"), f"{base}: {error}", name)
            return status, data
        return self._failure(outcome, base, name)

    def _locate(self, avoid: Endpoint | None) -> tuple[str, Endpoint | None]:
        if self.url:
            return self.url, None
        endpoint = self.discovery.pick(self.consul_service, avoid=avoid)
        return endpoint.url(), endpoint

    def _failure(self, outcome: Outcome, where: str, name: str) -> Outcome:
        log.warning(
            "backend call failed",
            extra={"fields": {"backend": self.service, "name": name, "where": where, "error": outcome.message}},
        )
        return outcome
