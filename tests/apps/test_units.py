"""The messaging building blocks without a broker: settings, backoff, confirm and ack bookkeeping."""

from __future__ import annotations

import json
import logging
import re
import socket
import ssl
from collections import deque
from types import SimpleNamespace

import pika
import pytest
import trustme
from pika.adapters.utils import connection_workflow as workflow
from pika.adapters.utils import io_services_utils as transports
from pika.spec import Basic

from apps.common.config import ConfigError
from apps.common.discovery import ConsulDiscovery
from apps.common.pika_tuning import MAX_COALESCED_BYTES, TESTED_PIKA_VERSIONS, coalesce_writes
from apps.common.rabbitmq import (
    POISON_HEADER,
    Backoff,
    BrokerLocator,
    BrokerSettings,
    QueueSettings,
    connection_parameters,
    describe_connection_error,
    parse_amqp_url,
    redact,
)
from apps.receive.consumer import Consumer
from apps.send.messages import MessageFactory, MessageSource
from apps.send.publisher import Publisher

BROKER = BrokerSettings(url="amqp://guest:guest@127.0.0.1:5672/%2F")

# -- settings -----------------------------------------------------------------------


def test_url_with_everything():
    address = parse_amqp_url("amqp://app:p%40ss@broker.internal:5673/orders")
    assert (address.host, address.port, address.username, address.password, address.vhost) == (
        "broker.internal",
        5673,
        "app",
        "p@ss",
        "orders",
    )
    assert not address.tls
    assert "p@ss" not in str(address) and "p%40ss" not in str(address)


def test_amazon_mq_endpoint_takes_login_from_settings():
    address = parse_amqp_url("amqps://b-1234.mq.us-east-1.amazonaws.com:5671", "seaport", "s3cret")
    assert address.tls and address.port == 5671
    assert (address.username, address.password, address.vhost) == ("seaport", "s3cret", "/")
    assert parse_amqp_url("amqps://broker.internal").port == 5671
    assert parse_amqp_url("amqp://broker.internal/%2F").vhost == "/"


def test_tls_parameters_check_the_host_name():
    settings = BrokerSettings(url="amqps://b-1.mq.eu-west-1.amazonaws.com", username="u", password="p")
    params = connection_parameters(settings.url_address(), settings, "seaport-send")
    assert params.port == 5671 and params.credentials.username == "u"
    assert params.ssl_options.server_hostname == "b-1.mq.eu-west-1.amazonaws.com"
    assert params.ssl_options.context.check_hostname
    assert params.connection_attempts == 1  # retrying is the app's job, with its own backoff
    plain = connection_parameters(parse_amqp_url("amqp://h"), BROKER, "seaport-send")
    assert plain.ssl_options is None and plain.port == 5672


@pytest.mark.parametrize(
    ("url", "phrase"),
    [
        ("broker:5672", "scheme"),
        ("amqp://", "no host"),
        ("amqp://h:99999/", "not a valid URL"),
        ("amqp://h/a/b", "%2F"),
        ("amqp://h/?heartbeat=5", "query"),
    ],
)
def test_bad_urls(url, phrase):
    with pytest.raises(ConfigError, match=phrase):
        parse_amqp_url(url)


def test_redact_hides_only_the_password():
    assert redact("amqp://u:pw@h:1/v") == "amqp://u:***@h:1/v"
    assert redact("amqp://h/v") == "amqp://h/v"


def test_queues_are_declared_with_their_type_only():
    # Anything else is a policy (contract.broker), which can change without deleting the queue.
    quorum = QueueSettings("orders", "quorum", 4)
    assert quorum.arguments() == quorum.dead_letter_arguments() == {"x-queue-type": "quorum"}
    assert quorum.dead_letter_queue == "orders.dead"
    assert QueueSettings("orders", "classic", 4).arguments() == {"x-queue-type": "classic"}
    assert quorum.policy()["definition"]["delivery-limit"] == 4  # receive's limit and the broker's agree


def test_settings_from_environment(monkeypatch):
    monkeypatch.setenv("RABBITMQ_SERVICE", "rabbitmq")
    monkeypatch.delenv("RABBITMQ_URL", raising=False)
    monkeypatch.setenv("RABBITMQ_QUEUE_TYPE", "Classic")
    broker = BrokerSettings.from_env()
    assert broker.service == "rabbitmq" and broker.url is None
    assert QueueSettings.from_env().queue_type == "classic"
    # a flag beats the variables
    assert BrokerSettings.from_env(url="amqp://h/").service is None
    monkeypatch.setenv("RABBITMQ_QUEUE_TYPE", "stream")
    with pytest.raises(ConfigError, match="RABBITMQ_QUEUE_TYPE"):
        QueueSettings.from_env()
    monkeypatch.setenv("RABBITMQ_TLS", "maybe")
    with pytest.raises(ConfigError, match="RABBITMQ_TLS"):
        BrokerSettings.from_env()


TLS_ENV = ("RABBITMQ_URL", "RABBITMQ_SERVICE", "RABBITMQ_TLS", "RABBITMQ_TLS_SERVER_NAME", "RABBITMQ_CA_PEM")


@pytest.fixture
def tls_env(monkeypatch):
    """A clean slate of the broker-location variables; returns a setter."""
    for name in TLS_ENV:
        monkeypatch.delenv(name, raising=False)
    return lambda **values: [monkeypatch.setenv(name, value) for name, value in values.items()]


def test_tls_with_the_internal_ca_and_the_service_name(tls_env):
    """What the infrastructure sets for the container and cluster brokers: Consul addresses, verified as rabbitmq."""
    ca = trustme.CA()
    tls_env(
        RABBITMQ_SERVICE="rabbitmq",
        RABBITMQ_TLS="true",
        RABBITMQ_TLS_SERVER_NAME="rabbitmq",
        RABBITMQ_CA_PEM=ca.cert_pem.bytes().decode(),
    )
    settings = BrokerSettings.from_env()
    assert settings.uses_tls and settings.tls_server_name == "rabbitmq"
    discovered = parse_amqp_url("amqps://10.0.3.7:5671")  # an address Consul could return
    params = connection_parameters(discovered, settings, "seaport-receive")
    assert params.host == "10.0.3.7"
    assert params.ssl_options.server_hostname == "rabbitmq"  # what is verified, and sent as SNI
    context = params.ssl_options.context
    assert context.verify_mode == ssl.CERT_REQUIRED and context.check_hostname
    assert context.minimum_version == ssl.TLSVersion.TLSv1_2
    assert context.cert_store_stats() == {"x509": 1, "crl": 0, "x509_ca": 1}  # this CA only, not the system's


def test_tls_without_ca_or_name_checks_the_url_host(tls_env):
    """Amazon MQ: an amqps:// endpoint, verified by its host name against the system's store."""
    tls_env(RABBITMQ_URL="amqps://b-1.mq.eu-west-1.amazonaws.com:5671")
    settings = BrokerSettings.from_env()
    params = connection_parameters(settings.url_address(), settings, "seaport-send")
    assert params.ssl_options.server_hostname == "b-1.mq.eu-west-1.amazonaws.com"
    assert params.ssl_options.context.verify_mode == ssl.CERT_REQUIRED
    assert params.ssl_options.context.minimum_version == ssl.TLSVersion.TLSv1_2


@pytest.mark.parametrize(
    ("values", "phrase"),
    [
        ({"RABBITMQ_CA_PEM": "MIIB..."}, "RABBITMQ_CA_PEM is not a PEM certificate"),
        ({"RABBITMQ_CA_PEM": "leaf"}, "RABBITMQ_CA_PEM holds no CA certificate"),
        ({"RABBITMQ_CA_PEM": "key"}, "RABBITMQ_CA_PEM holds a private key"),
        ({"RABBITMQ_TLS_SERVER_NAME": "-rabbitmq"}, "RABBITMQ_TLS_SERVER_NAME='-rabbitmq' is not a DNS name"),
        ({"RABBITMQ_TLS_SERVER_NAME": "rabbit_mq"}, "is not a DNS name or IP address"),
        ({"RABBITMQ_TLS": "false", "RABBITMQ_TLS_SERVER_NAME": "rabbitmq"}, "RABBITMQ_TLS_SERVER_NAME is set but"),
        ({"RABBITMQ_TLS": "false", "RABBITMQ_CA_PEM": "ca"}, "RABBITMQ_CA_PEM is set but the connection"),
        ({"RABBITMQ_URL": "amqp://h", "RABBITMQ_TLS": "0", "RABBITMQ_CA_PEM": "ca"}, "use an amqps:// RABBITMQ_URL"),
        ({"RABBITMQ_URL": "amqp://u:secret@h/%2F"}, "RABBITMQ_TLS=true but the broker URL"),
    ],
)
def test_bad_tls_settings_are_refused_at_start_up(tls_env, values, phrase):
    ca = trustme.CA()
    leaf = ca.issue_cert("rabbitmq")
    pem = {
        "ca": ca.cert_pem.bytes().decode(),
        "leaf": leaf.cert_chain_pems[0].bytes().decode(),
        "key": leaf.private_key_pem.bytes().decode() + ca.cert_pem.bytes().decode(),
    }
    tls_env(RABBITMQ_SERVICE="rabbitmq", RABBITMQ_TLS="true")
    tls_env(**{name: pem.get(value, value) for name, value in values.items()})
    with pytest.raises(ConfigError, match=re.escape(phrase)) as raised:
        BrokerSettings.from_env()
    assert "secret" not in str(raised.value) and "PRIVATE" not in str(raised.value)


@pytest.mark.parametrize("name", ["rabbitmq", "rabbitmq.service.consul", "10.0.3.7", "fd00::7"])
def test_tls_server_name_may_be_a_dns_name_or_an_ip_address(tls_env, name):
    tls_env(RABBITMQ_SERVICE="rabbitmq", RABBITMQ_TLS="true", RABBITMQ_TLS_SERVER_NAME=name)
    assert BrokerSettings.from_env().tls_server_name == name


def test_connection_errors_are_described_in_one_line():
    refused = workflow.AMQPConnectionWorkflowFailed(
        [workflow.AMQPConnectorSocketConnectError(ConnectionRefusedError(111, "Connection refused"))]
    )
    assert describe_connection_error(refused) == (
        "connection refused (nothing listens there, or the broker is starting)",
        False,
    )
    login = workflow.AMQPConnectorAMQPHandshakeError(pika.exceptions.ProbableAuthenticationError("x"))
    reason, permanent = describe_connection_error(login)
    assert "login refused" in reason and permanent
    reason, permanent = describe_connection_error(socket.gaierror(-2, "Name or service not known"))
    assert "cannot resolve" in reason and not permanent


def test_fail_over_prefers_another_broker_instance(fake_consul):
    # Consul answers with service ids (rabbitmq-5001, ...) that a broker address does not carry.
    for port in (5001, 5002):
        fake_consul.add("rabbitmq", port)
    locator = BrokerLocator(BrokerSettings(service="rabbitmq"), ConsulDiscovery(fake_consul.address))
    address = locator.next_address()
    for _ in range(20):  # the choice is random: a preference that does not apply fails ~1 in 2 each round
        locator.failed(address)
        replacement = locator.next_address()
        assert replacement.port != address.port
        address = replacement


def test_fail_over_retries_the_only_instance(fake_consul):
    fake_consul.add("rabbitmq", 5001)
    locator = BrokerLocator(BrokerSettings(service="rabbitmq"), ConsulDiscovery(fake_consul.address))
    address = locator.next_address()
    locator.failed(address)
    assert locator.next_address().port == 5001


# -- backoff -------------------------------------------------------------------------


class FakeClock:
    def __init__(self):
        self.now = 100.0

    def __call__(self):
        return self.now


def test_backoff_doubles_up_to_the_cap_with_jitter():
    full = Backoff(initial=0.5, maximum=4, budget=60, rng=lambda: 1.0)
    assert [full.failed() for _ in range(6)] == [0.5, 1.0, 2.0, 4.0, 4.0, 4.0]
    half = Backoff(initial=0.5, maximum=4, budget=60, rng=lambda: 0.0)
    assert [half.failed() for _ in range(4)] == [0.25, 0.5, 1.0, 2.0]
    half.succeeded()
    assert half.failed() == 0.25


def test_backoff_budget_counts_from_the_first_failure():
    clock = FakeClock()
    backoff = Backoff(initial=1, maximum=10, budget=5, clock=clock)
    assert not backoff.exhausted()
    backoff.failed()
    clock.now += 4.9
    assert not backoff.exhausted() and backoff.remaining() == pytest.approx(0.1)
    clock.now += 0.2
    assert backoff.exhausted()
    backoff.succeeded()
    assert not backoff.exhausted()


# -- messages --------------------------------------------------------------------------


def test_message_ids_count_from_zero_and_bodies_are_persistent_json():
    source = MessageSource(MessageFactory("run1"), count=3)
    messages = [source.take() for _ in range(4)]
    assert [m.message_id for m in messages[:3]] == ["run1-0", "run1-1", "run1-2"]
    assert messages[3] is None and source.exhausted
    assert messages[0].properties.delivery_mode == 2
    assert messages[0].properties.headers is None
    assert json.loads(messages[0].body)["id"] == "run1-0"
    assert json.loads(MessageFactory("r", text='say "hi"\n').build(5).body)["text"] == 'say "hi"\n'
    with pytest.raises(ConfigError, match="run id"):
        MessageFactory('bad"id')
    poison = MessageFactory("p", poison=True).build(0)
    assert poison.properties.headers == {POISON_HEADER: True}


def test_rate_limits_and_bursts_at_most_one_second():
    clock = FakeClock()
    source = MessageSource(MessageFactory("r"), rate=10, clock=clock)
    assert source.take() is not None
    assert source.take() is None  # the first token is spent
    clock.now += 0.25
    assert sum(source.take() is not None for _ in range(10)) == 2
    clock.now += 60  # a long pause does not turn into a flood
    assert sum(source.take() is not None for _ in range(100)) == 10


# -- publisher bookkeeping ------------------------------------------------------------------


class FakePublishChannel:
    """Records publishes and declarations; the test plays the broker through the registered callbacks."""

    is_open = True

    def __init__(self):
        self.published: list[str] = []
        self.properties: dict[str, pika.BasicProperties] = {}
        self.declared: list[str] = []
        self.pending_declares: list = []  # callbacks of declarations the "broker" has not answered yet
        self.measurements: list = []  # (queue, callback) of passive declares
        self.answer_declares = True

    def basic_publish(self, exchange, routing_key, body, properties, mandatory):
        assert mandatory and routing_key == "q" and exchange == ""
        self.published.append(properties.message_id)
        self.properties[properties.message_id] = properties

    def add_on_return_callback(self, callback):
        self.on_return = callback

    def confirm_delivery(self, ack_nack_callback, callback):
        self.on_confirm = ack_nack_callback
        callback(None)

    def queue_declare(self, queue, callback, durable=False, arguments=None, passive=False):
        if passive:  # a measurement: the test answers it, or not
            self.measurements.append((queue, callback))
            return
        self.declared.append(queue)
        if self.answer_declares:
            callback(None)
        else:
            self.pending_declares.append(callback)

    def answer_pending_declares(self):
        while self.pending_declares:
            self.pending_declares.pop(0)(None)

    def return_unroutable(self, message_id):
        """What pika does on basic.return: call the registered callback with the message handed back."""
        method = Basic.Return(reply_code=312, reply_text="NO_ROUTE", exchange="", routing_key="q")
        self.on_return(self, method, self.properties[message_id], b"{}")

    def close(self):
        self.is_open = False


def confirm(publisher, method):
    publisher._on_confirm(SimpleNamespace(method=method))


def ready_publisher(count: int, window: int) -> tuple[Publisher, FakePublishChannel]:
    publisher = Publisher(BROKER, QueueSettings("q"), MessageSource(MessageFactory("r"), count=count), window=window)
    open_channel(publisher)
    return publisher, publisher.channel


def open_channel(publisher):
    publisher.channel = FakePublishChannel()
    publisher.setup_channel(publisher.channel, lambda: None)
    publisher._ready = True


def test_publisher_keeps_the_window_and_settles_multiple_acks():
    publisher, channel = ready_publisher(count=10, window=4)
    publisher._pump()
    assert channel.published == ["r-0", "r-1", "r-2", "r-3"]
    confirm(publisher, Basic.Ack(delivery_tag=2, multiple=True))
    assert publisher.confirmed == 2
    assert channel.published[4:] == ["r-4", "r-5"]
    assert list(publisher.unconfirmed) == [3, 4, 5, 6]
    confirm(publisher, Basic.Ack(delivery_tag=5, multiple=False))
    assert list(publisher.unconfirmed) == [3, 4, 6, 7]


def test_publisher_republishes_nacked_messages_after_a_growing_pause():
    publisher, channel = ready_publisher(count=4, window=4)
    clock = FakeClock()
    publisher.clock = clock
    publisher._pump()
    confirm(publisher, Basic.Nack(delivery_tag=2, multiple=True))  # e.g. the queue is full
    assert publisher.nacked == 2 and publisher.confirmed == 0
    assert channel.published == ["r-0", "r-1", "r-2", "r-3"]  # not at once: the queue is still full
    clock.now += 0.06
    publisher.on_tick()
    assert channel.published[4:] == ["r-0", "r-1"]  # tags 5 and 6
    confirm(publisher, Basic.Nack(delivery_tag=5, multiple=False))  # still full: wait longer
    clock.now += 0.06
    publisher.on_tick()
    assert channel.published[6:] == []
    clock.now += 0.06
    publisher.on_tick()
    assert channel.published[6:] == ["r-0"]
    confirm(publisher, Basic.Ack(delivery_tag=7, multiple=True))
    assert publisher.confirmed == 4 and publisher.outstanding == 0  # each message counted once
    assert publisher.exit_code == 0  # --count done


def test_unroutable_message_is_republished_never_counted_as_confirmed():
    publisher, channel = ready_publisher(count=4, window=4)
    publisher._pump()
    # The broker hands r-2 back (its queue was deleted), then acks it: an ack for a
    # message that reached no queue.
    channel.return_unroutable("r-2")
    confirm(publisher, Basic.Ack(delivery_tag=4, multiple=True))
    assert publisher.confirmed == 3  # r-0, r-1, r-3; not r-2
    assert publisher.returned_count == 1
    assert channel.declared == ["q.dead", "q"]  # the queues are declared again...
    assert channel.published[4:] == ["r-2"]  # ...and r-2 is published once more
    assert publisher.exit_code is None  # not done: r-2 is not delivered yet
    confirm(publisher, Basic.Ack(delivery_tag=5, multiple=False))
    assert publisher.confirmed == 4 and publisher.outstanding == 0
    assert publisher.exit_code == 0


def test_unroutable_messages_wait_for_the_queues_to_be_declared_again():
    publisher, channel = ready_publisher(count=3, window=3)
    channel.answer_declares = False
    publisher._pump()
    channel.return_unroutable("r-0")
    channel.return_unroutable("r-1")
    confirm(publisher, Basic.Ack(delivery_tag=3, multiple=True))
    assert publisher.confirmed == 1 and channel.declared == ["q.dead"]  # one redeclaration at a time
    assert channel.published == ["r-0", "r-1", "r-2"]  # nothing resent into the void meanwhile
    channel.answer_pending_declares()
    assert channel.published[3:] == ["r-0", "r-1"]
    confirm(publisher, Basic.Ack(delivery_tag=5, multiple=True))
    assert publisher.confirmed == 3 and publisher.exit_code == 0


def test_publisher_resends_unconfirmed_after_connection_loss_in_order():
    publisher, _channel = ready_publisher(count=6, window=4)
    publisher._pump()
    confirm(publisher, Basic.Ack(delivery_tag=1, multiple=False))  # r-0 done, r-4 goes out
    publisher.channel, publisher._ready = None, False
    publisher.on_connection_lost()
    assert [m.message_id for m in publisher.to_resend] == ["r-1", "r-2", "r-3", "r-4"]
    open_channel(publisher)
    publisher._pump()
    assert publisher.channel.published == ["r-1", "r-2", "r-3", "r-4"]  # resent first, window still 4
    assert list(publisher.unconfirmed) == [1, 2, 3, 4]  # a new channel numbers from 1 again
    assert publisher.republished == 4
    confirm(publisher, Basic.Ack(delivery_tag=4, multiple=True))
    assert publisher.channel.published[4:] == ["r-5"]


def test_publisher_pauses_while_the_broker_blocks_it():
    publisher, channel = ready_publisher(count=10, window=4)
    publisher._pump()
    publisher.on_blocked("low on memory")  # connection.blocked
    confirm(publisher, Basic.Ack(delivery_tag=2, multiple=True))  # confirms still arrive
    publisher.on_tick()
    assert channel.published == ["r-0", "r-1", "r-2", "r-3"]  # but nothing new goes out
    assert publisher.confirmed == 2 and publisher.progress()["blocked"]
    publisher.on_unblocked()  # connection.unblocked
    assert channel.published[4:] == ["r-4", "r-5"]  # the window refills
    assert not publisher.progress()["blocked"]


def declare_ok(messages, consumers=0):
    return SimpleNamespace(method=SimpleNamespace(message_count=messages, consumer_count=consumers))


def test_progress_records_carry_queue_depths_and_do_not_wait_for_them_forever(caplog):
    caplog.set_level(logging.INFO)
    publisher, channel = ready_publisher(count=10, window=4)
    clock = FakeClock()
    publisher.clock, publisher.progress_interval = clock, 60.0
    publisher._progress_due = clock.now + 60
    publisher._pump()  # 4 published
    records = lambda: [r for r in caplog.records if r.getMessage() == "progress"]  # noqa: E731
    clock.now += 60
    publisher._report_progress_if_due()
    assert [queue for queue, _callback in channel.measurements] == ["q"] and records() == []
    channel.measurements.pop()[1](declare_ok(7, consumers=2))  # the work queue...
    channel.measurements.pop()[1](declare_ok(1))  # ...then q.dead
    (first,) = records()
    assert (first.fields["QueueDepth"], first.fields["Consumers"], first.fields["DeadLetterDepth"]) == (7, 2, 1)
    assert first.fields["Published"] == 4
    # Next time the broker does not answer (the channel went): the record goes out anyway, without depths.
    clock.now += 60
    publisher._report_progress_if_due()
    clock.now += 10
    publisher._report_progress_if_due()
    second = records()[1]
    assert "QueueDepth" not in second.fields and second.fields["Published"] == 0  # nothing new since
    channel.measurements[0][1](declare_ok(9))  # a late answer is ignored
    assert len(records()) == 2


def test_publisher_stops_taking_new_work_on_sigterm():
    publisher = Publisher(BROKER, QueueSettings("q"), MessageSource(MessageFactory("r"), rate=1e9), window=3)
    open_channel(publisher)
    publisher._pump()
    publisher.request_stop()
    publisher._check_stop()
    confirm(publisher, Basic.Ack(delivery_tag=2, multiple=True))
    assert publisher.channel.published == ["r-0", "r-1", "r-2"]  # nothing new after the stop
    assert publisher.exit_code is None  # still waiting for r-2
    confirm(publisher, Basic.Ack(delivery_tag=3, multiple=False))
    assert publisher.exit_code == 0


# -- consumer bookkeeping ------------------------------------------------------------------


class FakeConsumeChannel:
    """Records what the consumer tells the broker; ``events`` keeps the order across calls."""

    is_open = True

    def __init__(self, record):
        self.record = record
        self.acks: list[tuple[int, int]] = []  # (tag, lines in the record file at that moment)
        self.nacks: list[tuple[int, bool]] = []
        self.rejects: list[tuple[int, bool]] = []
        self.events: list[tuple] = []
        self.cancel_ok = None  # the callback the broker's Basic.CancelOk would trigger

    def basic_ack(self, tag, multiple):
        assert multiple
        self.acks.append((tag, len(self.record.read_text().splitlines())))
        self.events.append(("ack", tag))

    def basic_nack(self, tag, requeue):
        self.nacks.append((tag, requeue))
        self.events.append(("nack", tag, requeue))

    def basic_reject(self, tag, requeue):
        self.rejects.append((tag, requeue))
        self.events.append(("reject", tag, requeue))

    def basic_consume(self, queue, on_message_callback):
        return "ctag-1"

    def basic_cancel(self, consumer_tag, callback):
        self.events.append(("cancel", consumer_tag))
        self.cancel_ok = callback

    def close(self):
        self.events.append(("close channel",))
        self.is_open = False


class FakeConnection:
    def __init__(self, channel):
        self.ioloop = FakeLoop()
        self.channel = channel
        self.is_closed = self.is_closing = False

    def close(self):
        self.channel.events.append(("close connection",))
        self.is_closing = True


class FakeLoop:
    def __init__(self):
        self.callbacks = []

    def call_later(self, delay, callback):
        self.callbacks.append(callback)

    def run(self):
        callbacks, self.callbacks = self.callbacks, []
        for callback in callbacks:
            callback()


def ready_consumer(tmp_path, queue_type="quorum", max_deliveries=3):
    record = tmp_path / "record.txt"
    consumer = Consumer(BROKER, QueueSettings("q", queue_type, max_deliveries), prefetch=12, record=record)
    consumer.channel = FakeConsumeChannel(record)
    consumer.connection = FakeConnection(consumer.channel)
    consumer._ready = True
    consumer.on_ready()  # basic_consume
    return consumer, consumer.channel


def deliver(consumer, tag, message_id, headers=None):
    method = SimpleNamespace(delivery_tag=tag)
    properties = pika.BasicProperties(message_id=message_id, headers=headers)
    consumer._on_message(consumer.channel, method, properties, b"{}")


def test_acks_are_batched_and_sent_after_the_record_is_flushed(tmp_path):
    consumer, channel = ready_consumer(tmp_path)
    assert consumer.ack_every == 3
    for tag in (1, 2, 3):
        deliver(consumer, tag, f"m-{tag}")
    assert channel.acks == [(3, 3)]  # one ack for three, ids already in the file
    deliver(consumer, 4, "m-4")
    assert channel.acks == [(3, 3)]
    consumer.connection.ioloop.run()  # the end of the burst
    assert channel.acks == [(3, 3), (4, 4)]
    consumer.close()


def test_graceful_stop_acks_what_was_processed_before_closing(tmp_path):
    consumer, channel = ready_consumer(tmp_path)
    deliver(consumer, 1, "m-1")
    deliver(consumer, 2, "m-2")  # processed, ack not sent yet (fewer than ack_every, burst not over)
    consumer.request_stop()  # SIGTERM
    consumer._check_stop()
    assert channel.events == [("cancel", "ctag-1")]  # stop the deliveries first
    channel.cancel_ok(None)  # the broker's Basic.CancelOk
    # Both processed deliveries acked, before the channel goes: otherwise they would be
    # delivered again (to another consumer) and processed twice.
    assert channel.events == [("cancel", "ctag-1"), ("ack", 2), ("close channel",)]
    assert consumer.exit_code == 0
    consumer.close()


def test_consumer_cancelled_by_the_broker_acks_what_was_processed(tmp_path):
    consumer, channel = ready_consumer(tmp_path)
    deliver(consumer, 1, "m-1")
    consumer._on_cancelled_by_broker(None)  # e.g. the queue's leader moved to another node
    assert channel.events == [("ack", 1), ("close connection",)]
    assert consumer.exit_code is None  # reconnects, does not exit
    consumer.close()


def test_failures_retry_then_dead_letter_on_quorum(tmp_path):
    consumer, channel = ready_consumer(tmp_path)
    deliver(consumer, 1, "ok-1")
    deliver(consumer, 2, "bad", {POISON_HEADER: True})
    assert channel.acks == [(1, 1)]  # successes settled before the failure
    deliver(consumer, 3, "bad", {POISON_HEADER: True, "x-delivery-count": 1})
    deliver(consumer, 4, "bad", {POISON_HEADER: True, "x-delivery-count": 2})
    # Each failure rejected on its own (requeue, requeue, then dead-letter); never a nack.
    assert channel.rejects == [(2, True), (3, True), (4, False)] and channel.nacks == []
    assert (consumer.retried, consumer.dead_lettered, consumer.processed) == (2, 1, 1)


def test_failures_counted_per_message_on_classic(tmp_path):
    consumer, channel = ready_consumer(tmp_path, "classic", 2)
    for tag in (1, 2):
        deliver(consumer, tag, "bad", {POISON_HEADER: True})
    deliver(consumer, 3, None)  # no id: cannot be tracked, dead-lettered at once
    assert channel.rejects == [(1, True), (2, False), (3, False)] and channel.nacks == []


class QuorumQueue43:
    """One message in a quorum queue, settled as RabbitMQ 4.3 and later settle it (rabbitmq-server#15387).

    ``basic.reject`` counts a failed delivery (``x-delivery-count`` + 1); ``basic.nack``
    with requeue does not. Past ``delivery_limit`` failed deliveries the queue
    dead-letters the message, as does any settlement without requeue.
    """

    def __init__(self, delivery_limit: int):
        self.delivery_limit = delivery_limit
        self.delivery_count = 0
        self.deliveries = 0
        self.dead_lettered = False

    def deliver(self, consumer) -> None:
        self.deliveries += 1
        headers = {POISON_HEADER: True}
        if self.delivery_count:  # 4.x adds the header to redeliveries only
            headers["x-delivery-count"] = self.delivery_count
        consumer._on_message(
            self,
            SimpleNamespace(delivery_tag=self.deliveries),
            pika.BasicProperties(message_id="poison", headers=headers),
            b"{}",
        )

    def basic_reject(self, tag, requeue):
        self.delivery_count += 1
        self._settle(requeue)

    def basic_nack(self, tag, requeue, multiple=False):
        self._settle(requeue)

    def _settle(self, requeue):
        if not requeue or self.delivery_count > self.delivery_limit:
            self.dead_lettered = True


def test_poison_message_reaches_the_dead_letter_queue_on_rabbitmq_4_3(tmp_path):
    consumer, _channel = ready_consumer(tmp_path, "quorum", max_deliveries=3)
    queue = QuorumQueue43(delivery_limit=3)
    while not queue.dead_lettered and queue.deliveries < 50:
        queue.deliver(consumer)
    assert queue.dead_lettered, f"still looping after {queue.deliveries} deliveries"
    assert queue.deliveries == 3  # receive gives up on the 3rd failed delivery, as on 3.x
    assert consumer.dead_lettered == 1


# -- pika write coalescing -------------------------------------------------------------------


class RecordingSocket:
    def __init__(self):
        self.sent: list[bytes] = []

    def send(self, data):
        self.sent.append(bytes(data))
        return len(data)


@pytest.fixture
def stock_pika():
    """Leaves pika's transport as it found it."""
    yield
    coalesce_writes("off")


def sent_chunks(frames: list[bytes]) -> list[bytes]:
    """What one write-ready event of a plaintext transport sends, with ``frames`` buffered."""
    transport = object.__new__(transports._AsyncPlaintextTransport)
    transport._sock = RecordingSocket()
    transport._tx_buffers = deque(frames)
    transport._tx_buffered_byte_count = sum(map(len, frames))
    transport._produce()
    assert transport._tx_buffered_byte_count == 0 and not transport._tx_buffers
    return transport._sock.sent


def test_coalesced_writes_send_buffered_frames_in_one_call(stock_pika):
    # "on" patches whatever pika is installed, so this checks the patch against it.
    assert coalesce_writes("on")
    assert sent_chunks([b"method", b"header", b"body"]) == [b"methodheaderbody"]
    assert coalesce_writes("on")  # installing twice does not wrap twice
    assert sent_chunks([b"a", b"b"]) == [b"ab"]


def test_a_full_window_buffered_goes_out_in_few_large_writes(stock_pika):
    # A sender with a full window has far more than one chunk's worth buffered when the socket turns writable:
    # all of it is joined (not only the first 256 KiB, leaving thousands of frames to a send() each).
    assert coalesce_writes("on")
    frames = [bytes([n % 251]) * 100 for n in range(6000)]  # 2000 messages of 3 frames: ~600 KB
    sent = sent_chunks(frames)
    assert b"".join(sent) == b"".join(frames)  # the same bytes, in order
    assert len(sent) == -(-len(b"".join(frames)) // MAX_COALESCED_BYTES)  # as few writes as the cap allows
    assert all(len(chunk) <= MAX_COALESCED_BYTES for chunk in sent)
    huge = b"x" * (MAX_COALESCED_BYTES + 1)  # a frame over the cap is sent whole, on its own
    assert sent_chunks([b"a", huge, b"b"]) == [b"a", huge, b"b"]


def test_coalescing_is_pinned_to_tested_pika_releases(monkeypatch, stock_pika):
    assert coalesce_writes() == (pika.__version__ in TESTED_PIKA_VERSIONS)
    monkeypatch.setattr(pika, "__version__", "1.99.0")  # a release the patch was never run on
    assert not coalesce_writes()
    assert sent_chunks([b"method", b"header", b"body"]) == [b"method", b"header", b"body"]  # stock pika
    monkeypatch.setenv("PIKA_COALESCE_WRITES", "on")  # the operator's choice
    assert coalesce_writes()
    assert not coalesce_writes("off")
    assert sent_chunks([b"a", b"b"]) == [b"a", b"b"]
    with pytest.raises(ConfigError, match="PIKA_COALESCE_WRITES"):
        coalesce_writes("sometimes")
