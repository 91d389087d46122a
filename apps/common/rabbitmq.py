"""RabbitMQ settings, connection parameters and queue topology for apps.send and apps.receive.

Where the broker is (flags of the apps override these):

- ``RABBITMQ_URL``: ``amqp://user:password@host:port/vhost`` or ``amqps://...``
  (local runs, tests, Amazon MQ). A vhost of ``/`` is written ``%2F``. A URL
  without a login or vhost (Amazon MQ's endpoint is ``amqps://host:5671``) takes
  them from the variables below.
- else ``RABBITMQ_SERVICE``: a service name looked up through the Consul agent
  at ``CONSUL_HTTP_ADDR`` (healthy instances only, asked again on every
  reconnect), with ``RABBITMQ_USERNAME`` / ``RABBITMQ_PASSWORD`` (default
  guest/guest), ``RABBITMQ_VHOST`` (``/``) and ``RABBITMQ_TLS`` (``false``;
  ``true``: speak AMQP over TLS to the discovered instances).

TLS (``amqps://`` URLs, or ``RABBITMQ_TLS=true`` with ``RABBITMQ_SERVICE``):
TLS 1.2 at least, and the broker's certificate is always verified, its chain
and the name in it; there is no way to turn that off.

- ``RABBITMQ_CA_PEM``: the PEM text of the CA certificate(s) to trust; when
  set, only these are trusted, not the system's store. Refused at start-up
  unless it holds at least one CA certificate (a private key or the broker's
  own certificate is not one).
- ``RABBITMQ_TLS_SERVER_NAME``: the DNS name (or IP address) the broker's
  certificate must be valid for, also sent as SNI. Default: the host
  connected to (the URL's, or the address Consul returned).

With seaport's container or cluster broker the infrastructure sets
``RABBITMQ_TLS=true``, ``RABBITMQ_TLS_SERVER_NAME=rabbitmq`` (Consul returns IP
addresses or EC2 host names, which the certificate cannot name) and
``RABBITMQ_CA_PEM`` (the stack's internal CA, which issued the broker's
certificate for the name ``rabbitmq``). With Amazon MQ the apps get an
``amqps://`` endpoint and neither variable: the certificate is checked against
the system's trusted CAs and the endpoint's host name. Setting either variable
without TLS (RABBITMQ_TLS unset or false, or an ``amqp://`` URL) is an error,
and so is ``RABBITMQ_TLS=true`` with an ``amqp://`` URL (use ``amqps://``).

The queue (both apps declare it, identically, since either may start first):

- ``RABBITMQ_QUEUE`` (``messages``), durable; ``RABBITMQ_QUEUE_TYPE`` ``quorum``
  (default: replicated, survives a broker crash, counts deliveries) or ``classic``.
  The type is the queue's only declared argument (apps.common.contract.broker).
- ``RABBITMQ_MAX_DELIVERIES`` (10): apps.receive dead-letters a message on its
  Nth failed delivery. The broker policy (``contract.broker.queue_policy``, loaded
  by the infrastructure) sets the same number as the quorum queue's
  ``delivery-limit``, which also counts deliveries to consumers that crashed,
  and says where dead letters go (``<queue>.dead``, declared by the apps with
  the same type) and how (at-least-once). A policy can be changed without
  deleting the queue; queue arguments cannot.

Reconnecting: ``RABBITMQ_RETRY_SECONDS`` (120) is how long an app keeps trying
without a working connection before it exits non-zero; waits between attempts
grow from ``RABBITMQ_BACKOFF_INITIAL`` (0.5 s) doubling up to
``RABBITMQ_BACKOFF_MAX`` (15 s), with jitter. ``RABBITMQ_HEARTBEAT`` (30 s).
"""

from __future__ import annotations

import functools
import ipaddress
import random
import re
import socket
import ssl
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from urllib.parse import unquote, urlsplit

import pika
import pika.exceptions
from pika.adapters.utils import connection_workflow as workflow

from apps.common.config import ConfigError, check_range, env_bool, env_float, env_int, env_str
from apps.common.contract import broker as contract
from apps.common.discovery import ConsulDiscovery, DiscoveryError, Endpoint

QUEUE_TYPES = contract.QUEUE_TYPES
# A message carrying this header (any true value) fails processing in apps.receive
# every time: a stand-in for a poison message, to exercise the dead-letter path
# (``python -m apps.send --poison`` sets it).
POISON_HEADER = "x-seaport-poison"
AMQP_PORT = contract.AMQP_PORT
AMQPS_PORT = contract.AMQPS_PORT
TLS_MINIMUM_VERSION = ssl.TLSVersion.TLSv1_2
# A DNS name as a certificate names it: dot-separated labels of letters, digits and inner hyphens.
DNS_NAME = re.compile(r"(?=.{1,253}$)(?!-)[A-Za-z0-9-]{1,63}(?<!-)(\.(?!-)[A-Za-z0-9-]{1,63}(?<!-))*")


# -- settings -------------------------------------------------------------------


@dataclass(frozen=True)
class QueueSettings:
    """The work queue and its dead-letter queue."""

    name: str = contract.DEFAULT_QUEUE
    queue_type: str = contract.DEFAULT_QUEUE_TYPE
    max_deliveries: int = contract.DEFAULT_DELIVERY_LIMIT

    @classmethod
    def from_env(cls, name=None, queue_type=None, max_deliveries=None) -> QueueSettings:
        """Settings from RABBITMQ_QUEUE* variables; arguments that are not None win."""
        settings = cls(
            name=name or env_str("RABBITMQ_QUEUE", cls.name),
            queue_type=(queue_type or env_str("RABBITMQ_QUEUE_TYPE", cls.queue_type)).lower(),
            max_deliveries=max_deliveries or env_int("RABBITMQ_MAX_DELIVERIES", cls.max_deliveries),
        )
        if settings.queue_type not in QUEUE_TYPES:
            raise ConfigError(f"RABBITMQ_QUEUE_TYPE={settings.queue_type!r}: use one of {', '.join(QUEUE_TYPES)}")
        check_range("RABBITMQ_MAX_DELIVERIES", settings.max_deliveries, 1, 1000)
        if len(settings.name.encode()) > 200:  # AMQP short string, with room for ".dead"
            raise ConfigError(f"RABBITMQ_QUEUE={settings.name!r} is too long (200 bytes at most)")
        return settings

    @property
    def dead_letter_queue(self) -> str:
        return contract.dead_letter_queue(self.name)

    def arguments(self) -> dict:
        """Arguments of the work queue. Redeclaring with other values fails, so keep one source."""
        return contract.queue_arguments(self.queue_type)

    def dead_letter_arguments(self) -> dict:
        return contract.queue_arguments(self.queue_type)

    def policy(self, vhost: str = "/", max_length: int | None = None) -> dict:
        """The broker policy this queue needs (delivery limit = ``max_deliveries``); see contract.broker."""
        return contract.queue_policy(self.name, self.queue_type, self.max_deliveries, vhost, max_length)

    def definitions(self, vhost: str = "/", max_length: int | None = None) -> dict:
        """Queues and policy as a definitions document; see contract.broker.definitions."""
        return contract.definitions(self.name, self.queue_type, self.max_deliveries, vhost, max_length)


@dataclass(frozen=True)
class BrokerSettings:
    """Where the broker is, how to log in, and how hard to try."""

    url: str | None = None
    service: str | None = None
    username: str = "guest"
    password: str = "guest"  # noqa: S105 - RabbitMQ's default, accepted on loopback only
    vhost: str = "/"
    tls: bool = False  # RABBITMQ_TLS: TLS to discovered instances (a URL says it with its scheme)
    tls_server_name: str | None = None  # the name the certificate must be valid for (default: the host)
    ca_pem: str | None = field(default=None, repr=False)  # the only CAs trusted (default: the system's)
    heartbeat: int = 30
    connect_timeout: float = 5.0
    retry_seconds: float = 120.0
    backoff_initial: float = 0.5
    backoff_max: float = 15.0

    @classmethod
    def from_env(cls, url=None, service=None, retry_seconds=None) -> BrokerSettings:
        """Settings from RABBITMQ_* variables; arguments that are not None win.

        An explicit ``url`` or ``service`` argument (a flag) beats both variables.
        """
        if not url and not service:
            url = env_str("RABBITMQ_URL")
            service = None if url else env_str("RABBITMQ_SERVICE")
        if not url and not service:
            raise ConfigError("no broker: set RABBITMQ_URL, or RABBITMQ_SERVICE to find it through Consul")
        settings = cls(
            url=url or None,
            service=None if url else service,
            username=env_str("RABBITMQ_USERNAME", cls.username),
            password=env_str("RABBITMQ_PASSWORD", cls.password),
            vhost=env_str("RABBITMQ_VHOST", cls.vhost),
            tls=env_bool("RABBITMQ_TLS", False),
            tls_server_name=env_str("RABBITMQ_TLS_SERVER_NAME"),
            ca_pem=env_str("RABBITMQ_CA_PEM"),
            heartbeat=env_int("RABBITMQ_HEARTBEAT", cls.heartbeat, minimum=0, maximum=600),
            connect_timeout=env_float("RABBITMQ_CONNECT_TIMEOUT", cls.connect_timeout, minimum=0.1),
            retry_seconds=(
                retry_seconds
                if retry_seconds is not None
                else env_float("RABBITMQ_RETRY_SECONDS", cls.retry_seconds, minimum=0)
            ),
            backoff_initial=env_float("RABBITMQ_BACKOFF_INITIAL", cls.backoff_initial, minimum=0.01),
            backoff_max=env_float("RABBITMQ_BACKOFF_MAX", cls.backoff_max, minimum=0.01),
        )
        check_range("retry seconds", settings.retry_seconds, 0)
        if settings.url:
            settings.url_address()  # fail at startup, not at the first connection
        settings.check_tls()
        return settings

    @property
    def uses_tls(self) -> bool:
        """Whether connections are TLS: the URL's scheme says so, or RABBITMQ_TLS for discovered instances."""
        if self.url:
            return self.url.strip().lower().startswith("amqps:")
        return self.tls

    def check_tls(self) -> None:
        """ConfigError for TLS settings that contradict each other or cannot work; builds the context once."""
        if self.url and self.tls and not self.uses_tls:
            raise ConfigError(
                f"RABBITMQ_TLS=true but the broker URL {redact(self.url)!r} is amqp://: "
                "use an amqps:// URL (RABBITMQ_URL or --url) for TLS"
            )
        if not self.uses_tls:
            for name, value in (("RABBITMQ_TLS_SERVER_NAME", self.tls_server_name), ("RABBITMQ_CA_PEM", self.ca_pem)):
                if value:
                    raise ConfigError(
                        f"{name} is set but the connection to the broker is not TLS: set RABBITMQ_TLS=true "
                        "(with RABBITMQ_SERVICE) or use an amqps:// RABBITMQ_URL, or unset it"
                    )
            return
        if self.tls_server_name is not None and not valid_server_name(self.tls_server_name):
            raise ConfigError(
                f"RABBITMQ_TLS_SERVER_NAME={self.tls_server_name!r} is not a DNS name or IP address: give the "
                "name the broker's certificate is issued for, e.g. rabbitmq (letters, digits, '-' and '.')"
            )
        tls_context(self.ca_pem)

    def tls_identity(self, address: BrokerAddress) -> str:
        """What a broker's certificate must be, for error messages."""
        if self.tls_server_name:
            name = f"{self.tls_server_name!r} (RABBITMQ_TLS_SERVER_NAME)"
        else:
            name = f"{address.host!r} (the host connected to; RABBITMQ_TLS_SERVER_NAME would name another)"
        issuer = "the CA in RABBITMQ_CA_PEM" if self.ca_pem else "a CA the system trusts (RABBITMQ_CA_PEM unset)"
        return f"wanted: a certificate for {name} issued by {issuer}"

    def url_address(self) -> BrokerAddress:
        """The URL's address; what it leaves out comes from the other settings."""
        return parse_amqp_url(self.url, self.username, self.password, self.vhost)


# -- where to connect -------------------------------------------------------------


@dataclass(frozen=True)
class BrokerAddress:
    """One broker endpoint with credentials; ``str()`` never shows the password."""

    host: str
    port: int
    username: str
    password: str
    vhost: str
    tls: bool
    source: str  # where it came from, for error messages: "RABBITMQ_URL" or "Consul service rabbitmq"

    def __str__(self) -> str:
        scheme = "amqps" if self.tls else "amqp"
        return f"{scheme}://{self.username}@{self.host}:{self.port}/{self.vhost.replace('/', '%2F')}"


def parse_amqp_url(url: str, username="guest", password="guest", vhost="/") -> BrokerAddress:  # noqa: S107
    """Split an AMQP URL, with a ConfigError that says what is wrong (never echoing the password).

    Parts the URL leaves out come from the arguments: Amazon MQ's endpoint is a
    bare ``amqps://host:5671``, with the login in RABBITMQ_USERNAME/RABBITMQ_PASSWORD.
    """
    shown = redact(url)
    try:
        parts = urlsplit(url.strip())
        port = parts.port
    except ValueError as error:
        raise ConfigError(f"RABBITMQ_URL={shown!r} is not a valid URL: {error}") from None
    if parts.scheme not in ("amqp", "amqps"):
        raise ConfigError(f"RABBITMQ_URL={shown!r}: the scheme must be amqp:// or amqps://")
    if not parts.hostname:
        raise ConfigError(f"RABBITMQ_URL={shown!r} has no host name")
    if parts.query or parts.fragment:
        raise ConfigError(f"RABBITMQ_URL={shown!r}: query options are not supported; use RABBITMQ_* settings")
    path = parts.path[1:] if parts.path.startswith("/") else parts.path
    if "/" in path:
        raise ConfigError(f"RABBITMQ_URL={shown!r}: write the vhost '/' as %2F")
    tls = parts.scheme == "amqps"
    return BrokerAddress(
        host=parts.hostname,
        port=port or (AMQPS_PORT if tls else AMQP_PORT),
        username=unquote(parts.username) if parts.username else username,
        password=unquote(parts.password) if parts.password is not None else password,
        vhost=unquote(path) if path else vhost,
        tls=tls,
        source="RABBITMQ_URL",
    )


def redact(url: str) -> str:
    """The URL with its password replaced by ***."""
    try:
        parts = urlsplit(url)
        if parts.password:
            return url.replace(f":{parts.password}@", ":***@", 1)
    except ValueError:
        pass
    return url


def valid_server_name(name: str) -> bool:
    """Whether ``name`` can be checked against a certificate: a DNS name or an IP address."""
    try:
        ipaddress.ip_address(name)
        return True
    except ValueError:
        return bool(DNS_NAME.fullmatch(name))


@functools.lru_cache(maxsize=4)
def tls_context(ca_pem: str | None = None) -> ssl.SSLContext:
    """The client TLS context: TLS 1.2 or newer, the chain and the host name always verified.

    ``ca_pem`` (RABBITMQ_CA_PEM): the only CAs trusted; None: the system's store.
    Strict X.509 checks, as Python 3.13 (the images') applies by default, so a
    certificate refused there is refused in tests on older Pythons too.
    Raises ConfigError when ``ca_pem`` holds no CA certificate.
    """
    if ca_pem is not None:
        if "PRIVATE KEY-----" in ca_pem:
            raise ConfigError(
                "RABBITMQ_CA_PEM holds a private key: give only the CA's certificate "
                "(-----BEGIN CERTIFICATE----- ... -----END CERTIFICATE-----)"
            )
        try:
            context = ssl.create_default_context(cadata=ca_pem)  # these CAs only, not the system's
        except (ssl.SSLError, ValueError) as error:
            reason = str(error).split(" (_ssl.c:")[0]
            raise ConfigError(
                f"RABBITMQ_CA_PEM is not a PEM certificate ({reason}): give the text of the CA's certificate, "
                "-----BEGIN CERTIFICATE----- ... -----END CERTIFICATE----- with its line breaks"
            ) from None
        if context.cert_store_stats()["x509_ca"] == 0:
            raise ConfigError(
                "RABBITMQ_CA_PEM holds no CA certificate (basicConstraints CA:TRUE): give the certificate of "
                "the CA that issued the broker's certificate, not the broker's certificate itself"
            )
    else:
        context = ssl.create_default_context()
    context.minimum_version = TLS_MINIMUM_VERSION
    context.verify_flags |= ssl.VERIFY_X509_STRICT
    context.check_hostname = True
    context.verify_mode = ssl.CERT_REQUIRED
    return context


def connection_parameters(address: BrokerAddress, settings: BrokerSettings, name: str) -> pika.ConnectionParameters:
    """pika parameters for one connection attempt; reconnecting is the app's job, not pika's."""
    ssl_options = None
    if address.tls:
        # The server name is checked against the certificate and sent as SNI.
        server_name = settings.tls_server_name or address.host
        ssl_options = pika.SSLOptions(tls_context(settings.ca_pem), server_hostname=server_name)
    return pika.ConnectionParameters(
        host=address.host,
        port=address.port,
        virtual_host=address.vhost,
        credentials=pika.PlainCredentials(address.username, address.password, erase_on_connect=False),
        ssl_options=ssl_options,
        heartbeat=settings.heartbeat,
        connection_attempts=1,
        socket_timeout=settings.connect_timeout,
        stack_timeout=settings.connect_timeout * 2,
        blocked_connection_timeout=max(60.0, settings.heartbeat * 2.0),
        client_properties={"connection_name": name, "product": "seaport"},
    )


class BrokerLocator:
    """The address to try next: the URL, or a healthy instance from Consul."""

    def __init__(self, settings: BrokerSettings, discovery: ConsulDiscovery | None = None):
        self.settings = settings
        self._last: BrokerAddress | None = None
        if settings.service and discovery is None:
            try:
                discovery = ConsulDiscovery()  # no request yet: checks CONSUL_HTTP_* settings
            except DiscoveryError as error:
                raise ConfigError(str(error)) from None
        self._discovery = discovery

    def next_address(self) -> BrokerAddress:
        """Raises ConfigError for a bad URL, DiscoveryError when Consul has no answer."""
        if self.settings.url:
            return self.settings.url_address()
        endpoint = self._discovery.pick(self.settings.service, avoid=self._failed_endpoint())
        return BrokerAddress(
            host=endpoint.host,
            port=endpoint.port,
            username=self.settings.username,
            password=self.settings.password,
            vhost=self.settings.vhost,
            tls=self.settings.tls,
            source=f"Consul service {self.settings.service!r}",
        )

    def _failed_endpoint(self) -> Endpoint | None:
        """The discovered instance at the address that just failed, as ``pick(avoid=...)`` compares it.

        Matched by host and port: discovered endpoints also carry their Consul
        service id, which a BrokerAddress does not have, so an Endpoint built
        from the address would never equal one of them and nothing would be avoided.
        """
        if self._last is None:
            return None
        failed = (self._last.host, self._last.port)
        return next((e for e in self._discovery.healthy(self.settings.service) if (e.host, e.port) == failed), None)

    def failed(self, address: BrokerAddress) -> None:
        """The address did not work: ask Consul afresh next time and prefer another instance."""
        if self.settings.service and self._discovery is not None:
            self._discovery.forget(self.settings.service)
            self._last = address

    def worked(self) -> None:
        self._last = None


# -- errors -------------------------------------------------------------------------


# What OpenSSL's verification results (X509_V_ERR_*) mean for whoever reads the error.
_VERIFY_HINTS = {
    18: " (not issued by a trusted CA)",  # DEPTH_ZERO_SELF_SIGNED_CERT
    19: " (not issued by a trusted CA)",  # SELF_SIGNED_CERT_IN_CHAIN
    20: " (not issued by a trusted CA)",  # UNABLE_TO_GET_ISSUER_CERT_LOCALLY
    21: " (not issued by a trusted CA)",  # UNABLE_TO_VERIFY_LEAF_SIGNATURE
    62: " (not issued for the name checked)",  # HOSTNAME_MISMATCH
    64: " (not issued for the address checked)",  # IP_ADDRESS_MISMATCH
}


def describe_connection_error(error: BaseException) -> tuple[str, bool]:
    """A one-line reason for a failed connection attempt, and whether retrying is pointless."""
    # pika wraps the cause: workflow failure -> phase error -> OSError / AMQP error.
    if isinstance(error, workflow.AMQPConnectionWorkflowFailed) and error.exceptions:
        return describe_connection_error(error.exceptions[-1])
    if isinstance(error, workflow.AMQPConnectorPhaseErrorBase) and error.exception is not None:
        return describe_connection_error(error.exception)
    if isinstance(error, pika.exceptions.AMQPConnectionError) and len(error.args) == 1:
        inner = error.args[0]
        if isinstance(inner, BaseException):
            return describe_connection_error(inner)
    if isinstance(error, pika.exceptions.ProbableAuthenticationError | pika.exceptions.AuthenticationError):
        return "login refused (ACCESS_REFUSED): check RABBITMQ_USERNAME / RABBITMQ_PASSWORD", True
    if isinstance(error, pika.exceptions.ProbableAccessDeniedError):
        return "access to the vhost refused: check RABBITMQ_VHOST and the user's permissions", True
    if isinstance(error, ssl.SSLCertVerificationError):
        why = _VERIFY_HINTS.get(error.verify_code, "")
        return f"TLS certificate rejected{why}: {error.verify_message or error}", True
    if isinstance(error, ssl.SSLError):
        hint = " (does the broker speak TLS on this port?)" if error.reason == "WRONG_VERSION_NUMBER" else ""
        return f"TLS handshake failed{hint}: {error}", False
    if isinstance(error, ConnectionRefusedError):
        return "connection refused (nothing listens there, or the broker is starting)", False
    if isinstance(error, socket.gaierror):
        return f"cannot resolve the host name: {error.strerror or error}", False
    if isinstance(error, TimeoutError | socket.timeout | workflow.AMQPConnectorStackTimeout):
        return "timed out", False
    if isinstance(error, pika.exceptions.IncompatibleProtocolError):
        return "the server did not speak AMQP 0-9-1 (wrong port? or one for TLS: amqps://)", False
    if isinstance(error, OSError):
        return error.strerror or str(error) or type(error).__name__, False
    text = str(error).strip() or type(error).__name__
    return " ".join(text.split()), False


# -- topology -------------------------------------------------------------------------


def declare_queues(channel, queue: QueueSettings, on_done: Callable[[], None]) -> None:
    """Declare the dead-letter queue, then the work queue, on an asynchronous channel.

    Both apps call this with the same settings, so whichever starts first creates
    the queues and the other's declaration is a no-op. A queue that exists with
    other arguments makes the broker close the channel with PRECONDITION_FAILED.
    """

    def declare_work_queue(_frame):
        channel.queue_declare(queue.name, durable=True, arguments=queue.arguments(), callback=lambda _frame: on_done())

    channel.queue_declare(
        queue.dead_letter_queue,
        durable=True,
        arguments=queue.dead_letter_arguments(),
        callback=declare_work_queue,
    )


@dataclass(frozen=True)
class QueueDepths:
    """What passive declares tell about the work queue and its dead-letter queue."""

    messages: int  # ready in the work queue (not counting delivered, unacknowledged ones)
    consumers: int  # consumers of the work queue
    dead_letters: int  # in <queue>.dead


def measure_queues(channel, queue: QueueSettings, on_done: Callable[[QueueDepths], None]) -> None:
    """Passive declares of both queues on an asynchronous channel, then ``on_done(depths)``.

    A passive declare of a queue that does not exist closes the channel
    (NOT_FOUND), which the apps treat like any lost channel: they reconnect and
    declare the queues again. ``on_done`` is not called then.
    """

    def work_queue_declared(work):
        def dead_letter_queue_declared(dead):
            on_done(QueueDepths(work.method.message_count, work.method.consumer_count, dead.method.message_count))

        channel.queue_declare(queue.dead_letter_queue, passive=True, callback=dead_letter_queue_declared)

    channel.queue_declare(queue.name, passive=True, callback=work_queue_declared)


def declare_queues_blocking(channel, queue: QueueSettings) -> None:
    """The same declarations on a pika BlockingChannel (tests, benchmarks, tools)."""
    channel.queue_declare(queue.dead_letter_queue, durable=True, arguments=queue.dead_letter_arguments())
    channel.queue_declare(queue.name, durable=True, arguments=queue.arguments())


# -- backoff ----------------------------------------------------------------------------


class Backoff:
    """Capped exponential waits between reconnection attempts, within a time budget.

    The n-th wait is ``initial * 2**n`` capped at ``maximum``, then jittered to
    between half and all of that, so many clients cut off by the same broker
    restart do not all come back in the same instant. The budget counts from the
    first failure since the last success: ``exhausted()`` says when to give up.
    """

    def __init__(self, initial=0.5, maximum=15.0, budget=120.0, clock=time.monotonic, rng=random.random):
        self.initial = initial
        self.maximum = max(maximum, initial)
        self.budget = budget
        self._clock = clock
        self._rng = rng
        self.failures = 0
        self._first_failure: float | None = None

    def failed(self) -> float:
        """Record one failure; the seconds to wait before the next attempt."""
        if self._first_failure is None:
            self._first_failure = self._clock()
        ceiling = min(self.maximum, self.initial * (2 ** min(self.failures, 30)))
        self.failures += 1
        return ceiling * (0.5 + 0.5 * self._rng())

    def succeeded(self) -> None:
        self.failures = 0
        self._first_failure = None

    def elapsed(self) -> float:
        return 0.0 if self._first_failure is None else self._clock() - self._first_failure

    def remaining(self) -> float:
        return max(0.0, self.budget - self.elapsed())

    def exhausted(self) -> bool:
        """Whether the budget is spent: the failing has gone on for ``budget`` seconds."""
        return self._first_failure is not None and self.elapsed() >= self.budget
