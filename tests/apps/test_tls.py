"""apps.send and apps.receive over TLS against the real broker, as the infrastructure configures them.

The session's node (conftest) listens for AMQP over TLS with a certificate for
``rabbitmq`` (and ``localhost``) from a test CA. The apps connect to 127.0.0.1,
which the certificate does not name, so they must verify it as
RABBITMQ_TLS_SERVER_NAME=rabbitmq against RABBITMQ_CA_PEM, as on ECS where
Consul hands out addresses; with neither (Amazon MQ), against the system's
trust store and the URL's host name.
"""

from __future__ import annotations

import json

import pika
import pika.exceptions
import pytest
import trustme

from apps.common.contract import broker as contract
from tests.apps.helpers import TlsMessaging, expected_ids, log_records, read_ids, wait_until
from tests.apps.test_errors import assert_one_error_line, run_app

pytestmark = pytest.mark.rabbitmq

APP_ARGS = {"send": ("--count", "50"), "receive": ("--idle-exit", "1")}


def tls_connections(broker) -> dict[str, dict]:
    """The broker's client connections by connection name: whether each is TLS, and its protocol version."""
    rows = json.loads(broker.ctl("list_connections", "client_properties", "ssl", "ssl_protocol", "--formatter", "json"))
    found = {}
    for row in rows:
        properties = row["client_properties"]
        # rabbitmqctl's JSON shows a field table as [name, type, value] triples.
        names = [value for name, _type, value in properties if name == "connection_name"]
        if names:
            found[names[0]] = {"ssl": row["ssl"], "protocol": row["ssl_protocol"]}
    return found


def round_trip(messaging, tmp_path, run_id: str, count: int) -> tuple:
    """Receiver and sender through ``messaging``; asserts every id arrived exactly once; both apps."""
    record = tmp_path / "received.txt"
    receiver = messaging.receive("--record", str(record), "--idle-exit", "2")
    messaging.wait_logged(receiver, "consuming")
    sender = messaging.send("--count", str(count), "--run-id", run_id, "--rate", "500")
    messaging.wait_logged(sender, "connected")
    return receiver, sender, record


def test_round_trip_over_tls_verified_as_rabbitmq(tls_messaging, broker, tmp_path):
    record = tmp_path / "received.txt"
    receiver = tls_messaging.receive("--record", str(record))
    tls_messaging.wait_logged(receiver, "consuming")
    sender = tls_messaging.send("--rate", "500", "--run-id", "tls")
    tls_messaging.wait_logged(sender, "connected")
    # Both connected over TLS: the broker says so (its plain port is open too, for the test's own connections).
    connections = wait_until(
        lambda: (found := tls_connections(broker)).keys() >= {"seaport-send", "seaport-receive"} and found,
        20,
        "both apps' connections to be listed",
    )
    for name in ("seaport-send", "seaport-receive"):
        assert connections[name]["ssl"] is True, connections
        assert connections[name]["protocol"] in ("tlsv1.2", "tlsv1.3"), connections
    wait_until(lambda: len(read_ids(record)) >= 1000, 30, "1000 messages to arrive")

    assert sender.stop(30) == 0, sender.output()  # SIGTERM: it exits once all it published is confirmed
    summary = tls_messaging.summary(sender)
    count = summary["published"]
    assert summary["confirmed"] == count >= 1000
    wanted = expected_ids("tls", count)
    wait_until(lambda: wanted <= set(read_ids(record)), 30, "every confirmed message to arrive")
    assert receiver.stop(30) == 0, receiver.output()
    assert sorted(read_ids(record)) == sorted(wanted)  # none lost, none twice
    for app in (sender, receiver):
        connected = next(r for r in log_records(app.output()) if r["message"] == "connected")
        assert connected["broker"].startswith(f"amqps://guest@127.0.0.1:{broker.amqps_port}/")


def test_discovery_over_tls(broker, fake_consul, queue_name, tmp_path):
    """As on ECS: the address comes from Consul, the name to verify and the CA from the environment."""
    fake_consul.add(contract.SERVICE_NAME, broker.amqps_port)

    class Discovered(TlsMessaging):
        def env(self, **extra: str) -> dict[str, str]:
            return super().env(
                RABBITMQ_URL="",
                RABBITMQ_SERVICE=contract.SERVICE_NAME,
                RABBITMQ_TLS="true",
                CONSUL_HTTP_ADDR=fake_consul.address,
                **extra,
            )

    messaging = Discovered(broker, queue_name, tmp_path)
    try:
        count = 500
        receiver, sender, record = round_trip(messaging, tmp_path, "found", count)
        assert messaging.wait_exit(sender, 60) == 0, sender.output()
        assert messaging.wait_exit(receiver, 60) == 0, receiver.output()
        assert sorted(read_ids(record)) == sorted(expected_ids("found", count))
        connected = next(r for r in log_records(sender.output()) if r["message"] == "connected")
        assert connected["broker"] == f"amqps://guest@127.0.0.1:{broker.amqps_port}/%2F"
        assert fake_consul.queries(contract.SERVICE_NAME) >= 1
    finally:
        messaging.cleanup()


def assert_queue_missing(messaging) -> None:
    """Nothing was declared, so nothing was delivered: the app never got as far as the queue."""
    connection, channel = messaging.channel()
    try:
        with pytest.raises(pika.exceptions.ChannelClosedByBroker, match="NOT_FOUND"):
            channel.queue_declare(messaging.queue, passive=True)
    finally:
        connection.close()


@pytest.mark.parametrize("app", ["send", "receive"])
@pytest.mark.parametrize(
    ("change", "phrases"),
    [
        (
            {"RABBITMQ_CA_PEM": trustme.CA().cert_pem.bytes().decode()},
            ["TLS certificate rejected (not issued by a trusted CA)", "issued by the CA in RABBITMQ_CA_PEM"],
        ),
        (
            {"RABBITMQ_TLS_SERVER_NAME": "broker.example"},
            ["TLS certificate rejected (not issued for the name checked)", "'broker.example'"],
        ),
    ],
    ids=["another-ca", "another-name"],
)
def test_a_certificate_that_does_not_verify_is_refused(tls_messaging, app, change, phrases):
    """Another CA's certificate, or one for another name: one clear error, exit 3 at once, nothing delivered."""
    result = run_app(app, *APP_ARGS[app], env={**tls_messaging.env(), **change})
    message = assert_one_error_line(result, 3, *phrases)
    assert "gave up" not in message  # not retried for RABBITMQ_RETRY_SECONDS: retrying cannot fix it
    assert "connected" not in [r["message"] for r in log_records(result.stdout)]
    assert_queue_missing(tls_messaging)


def test_without_ca_and_name_the_system_store_and_the_url_host_are_checked(tls_messaging, broker, tls_ca, tmp_path):
    """Amazon MQ's way: an amqps:// endpoint, no RABBITMQ_CA_PEM, no RABBITMQ_TLS_SERVER_NAME."""
    ca_file = tmp_path / "system-ca.pem"
    tls_ca.cert_pem.write_to_path(str(ca_file))
    base = {**tls_messaging.env(), "RABBITMQ_CA_PEM": "", "RABBITMQ_TLS_SERVER_NAME": ""}
    by_name = broker.tls_url(host="localhost")  # a name the certificate holds

    # The test CA is not in the system's store: refused.
    result = run_app("send", "--count", "10", env={**base, "RABBITMQ_URL": by_name})
    assert_one_error_line(result, 3, "not issued by a trusted CA", "a CA the system trusts")
    # Trusted through OpenSSL's store (SSL_CERT_FILE stands in for a public CA here), but the URL's host,
    # 127.0.0.1, is not in the certificate: the host name is checked even without RABBITMQ_TLS_SERVER_NAME.
    trusted = {**base, "SSL_CERT_FILE": str(ca_file)}
    result = run_app("send", "--count", "10", env={**trusted, "RABBITMQ_URL": broker.tls_url()})
    assert_one_error_line(result, 3, "not issued for the address checked", "'127.0.0.1'")
    assert_queue_missing(tls_messaging)
    # Trusted, and the name matches: delivered.
    result = run_app("send", "--count", "10", "--run-id", "sys", env={**trusted, "RABBITMQ_URL": by_name})
    assert result.returncode == 0, result.stdout
    assert tls_messaging.depth() == 10


@pytest.mark.parametrize(
    ("change", "phrases"),
    [
        ({"RABBITMQ_CA_PEM": "not a certificate"}, ["RABBITMQ_CA_PEM is not a PEM certificate", "BEGIN CERTIFICATE"]),
        ({"RABBITMQ_TLS_SERVER_NAME": "rabbit mq"}, ["RABBITMQ_TLS_SERVER_NAME='rabbit mq' is not a DNS name"]),
        (
            {"RABBITMQ_URL": "amqp://guest:guest@127.0.0.1:1/%2F"},
            ["RABBITMQ_TLS_SERVER_NAME is set but the connection to the broker is not TLS", "RABBITMQ_TLS=true"],
        ),
    ],
    ids=["ca-not-pem", "bad-server-name", "name-without-tls"],
)
def test_bad_tls_settings_stop_the_app_at_start_up(tls_messaging, change, phrases):
    result = run_app("receive", env={**tls_messaging.env(), **change}, timeout=20)
    assert_one_error_line(result, 2, *phrases)
