"""Keep-alive HTTP GETs to the backends: one connection per thread and backend, connect and read timeouts.

Why not urllib3 or requests: on the small instances the portal runs on, the
HTTP client's own bookkeeping (a shared pool with locks and queues, URL
parsing, response wrappers) cost more CPU than the rest of a page together.
The portal's threads are long-lived (gunicorn's and the fan-out pool's), so
each keeps its own connections in thread-local storage: no locking, and a
connection is reused for every later call of that thread to the same backend.

Failures are raised as the four cases the caller treats differently:
``Refused`` (nothing listens, or the host is unreachable), ``ConnectTimeout``,
``ReadTimeout`` and ``Lost`` (the connection broke: a backend that closed an
idle keep-alive connection, or died mid-answer). ``BadResponse`` is anything
that is not a well-formed HTTP answer.
"""

from __future__ import annotations

import http.client
import threading
from urllib.parse import urlsplit

MAX_BODY = 1 << 20  # a backend answer is a few hundred bytes; refuse to buffer more than 1 MiB
MAX_HOSTS_PER_THREAD = 8  # backends seen by one thread; more means old instances: drop their connections


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
        self._local = threading.local()

    def get(self, base_url: str, path: str) -> tuple[int, bytes]:
        """``(status, body)`` of ``GET base_url + path``, or a ClientError."""
        connections: dict[str, http.client.HTTPConnection] = self._local.__dict__.setdefault("connections", {})
        connection = connections.pop(base_url, None) or self._connect(base_url)
        try:
            connection.request("GET", path, headers={"Accept": "application/json"})
            response = connection.getresponse()
            body = response.read(MAX_BODY + 1)
        except TimeoutError:
            connection.close()
            raise ReadTimeout(f"no answer within {self.read_timeout:g} s") from None
        except (ConnectionError, http.client.RemoteDisconnected, http.client.IncompleteRead) as error:
            connection.close()
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
            if len(connections) >= MAX_HOSTS_PER_THREAD:
                connections.pop(next(iter(connections))).close()
            connections[base_url] = connection  # most recently used last
        return response.status, body

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
