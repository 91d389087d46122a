"""Keep-alive HTTP GETs to the backends: idle connections shared by a process's requests, connect and read timeouts.

Why not urllib3 or requests: on the small instances the portal runs on, the
HTTP client's own bookkeeping (a shared pool with locks and queues, URL
parsing, response wrappers) cost more CPU than the rest of a page together.
Here a call takes an idle connection to its backend from a stack (the most
recently used first), or opens one, and puts it back after a complete answer.
Taking and putting back are single ``deque`` operations, atomic under the GIL:
no lock, and the same code serves gunicorn's threads and its gevent workers'
greenlets (one greenlet per client connection: connections kept per greenlet
would be opened again for every new client connection, and would grow with the
client connections instead of with the calls in flight). So a process holds
about as many connections to a backend as it had calls to it at the same time.

Failures are raised as the four cases the caller treats differently:
``Refused`` (nothing listens, or the host is unreachable), ``ConnectTimeout``,
``ReadTimeout`` and ``Lost`` (the connection broke: a backend that closed an
idle keep-alive connection, or died mid-answer). ``BadResponse`` is anything
that is not a well-formed HTTP answer. A kept connection that turns out to be
closed takes the backend's other idle connections with it (a backend that
restarted or timed them out closed them all), so the caller's retry opens a
fresh one.
"""

from __future__ import annotations

import http.client
import time
from collections import deque
from urllib.parse import urlsplit

MAX_BODY = 1 << 20  # a backend answer is a few hundred bytes; refuse to buffer more than 1 MiB
MAX_HOSTS = 8  # backend instances with idle connections; more means old instances: drop the least recently used
MAX_IDLE_PER_HOST = 256  # idle connections kept to one backend; a connection beyond that is closed after its call


class ClientError(Exception):
    """A GET failed; the subclass says how."""


class Refused(ClientError):
    """The connection could not be opened (refused, unreachable, name unknown)."""


class ConnectTimeout(ClientError):
    """The connection did not open within the connect timeout."""


class ReadTimeout(ClientError):
    """The backend did not answer within the read timeout."""


class Lost(ClientError):
    """The connection broke before a complete answer arrived."""


class BadResponse(ClientError):
    """The answer was not well-formed HTTP, or too large."""


class KeepAliveClient:
    def __init__(self, connect_timeout: float, read_timeout: float):
        self.connect_timeout = connect_timeout
        self.read_timeout = read_timeout
        self._idle: dict[str, deque[http.client.HTTPConnection]] = {}  # by base URL, most recently used last
        self._used: dict[str, float] = {}  # base URL: when a connection to it was last put back

    def get(self, base_url: str, path: str) -> tuple[int, bytes]:
        """``(status, body)`` of ``GET base_url + path``, or a ClientError."""
        connection = self._take(base_url)
        kept = connection is not None
        if connection is None:
            connection = self._connect(base_url)
        try:
            connection.request("GET", path, headers={"Accept": "application/json"})
            response = connection.getresponse()
            body = response.read(MAX_BODY + 1)
        except TimeoutError:
            connection.close()
            raise ReadTimeout(f"no answer within {self.read_timeout:g} s") from None
        except (ConnectionError, http.client.RemoteDisconnected, http.client.IncompleteRead) as error:
            connection.close()
            if kept:
                self._drop(base_url)
            raise Lost(repr(error)) from None
        except (http.client.HTTPException, OSError) as error:
            connection.close()
            raise BadResponse(repr(error)) from None
        if len(body) > MAX_BODY:
            connection.close()
            raise BadResponse(f"answer larger than {MAX_BODY} bytes")
        if response.will_close:
            connection.close()
        else:
            self._put_back(base_url, connection)
        return response.status, body

    def _take(self, base_url: str) -> http.client.HTTPConnection | None:
        idle = self._idle.get(base_url)
        try:
            return idle.pop() if idle is not None else None
        except IndexError:
            return None

    def _put_back(self, base_url: str, connection: http.client.HTTPConnection) -> None:
        self._used[base_url] = time.monotonic()
        idle = self._idle.get(base_url)
        if idle is None:
            if len(self._idle) >= MAX_HOSTS:
                oldest = min(list(self._idle), key=lambda url: self._used.get(url, 0.0), default=None)
                if oldest is not None:
                    self._drop(oldest)
            idle = self._idle.setdefault(base_url, deque())
        if len(idle) < MAX_IDLE_PER_HOST:
            idle.append(connection)
        else:
            connection.close()

    def _drop(self, base_url: str) -> None:
        """Close the idle connections to ``base_url`` and forget it."""
        idle = self._idle.pop(base_url, None)
        self._used.pop(base_url, None)
        while idle:
            try:
                idle.pop().close()
            except IndexError:
                break

    def _connect(self, base_url: str) -> http.client.HTTPConnection:
        parts = urlsplit(base_url)
        kind = http.client.HTTPSConnection if parts.scheme == "https" else http.client.HTTPConnection
        connection = kind(parts.hostname, parts.port, timeout=self.connect_timeout)
        try:
            connection.connect()
        except TimeoutError:
            connection.close()
            raise ConnectTimeout(f"no connection within {self.connect_timeout:g} s") from None
        except OSError as error:  # refused, unreachable, unknown name
            connection.close()
            raise Refused(repr(error)) from None
        connection.sock.settimeout(self.read_timeout)  # connect() has set TCP_NODELAY
        return connection
