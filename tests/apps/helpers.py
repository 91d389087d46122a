"""Helpers for the messaging tests: run the apps as processes, read what they recorded."""

from __future__ import annotations

import contextlib
import json
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pika

from apps.common.contract import broker as contract
from apps.common.contract import liveness
from apps.common.rabbitmq import QueueSettings, declare_queues_blocking
from devtools.procs import REPO_ROOT, AppProcess


def wait_until(condition: Callable[[], object], timeout: float, what: str, interval: float = 0.05):
    """Poll ``condition`` until it is true; AssertionError naming ``what`` after ``timeout`` s."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout:g} s waiting for {what}")


def log_records(output: str) -> list[dict]:
    """The JSON log lines of an app's output (other lines are ignored)."""
    records = []
    for line in output.splitlines():
        if line.startswith("{"):
            with contextlib.suppress(json.JSONDecodeError):
                records.append(json.loads(line))
    return records


def expected_ids(run_id: str, count: int) -> set[str]:
    return {f"{run_id}-{n}" for n in range(count)}


def read_ids(*paths: Path) -> list[str]:
    ids = []
    for path in paths:
        if path.exists():
            ids += [line for line in path.read_text().splitlines() if line]
    return ids


class Messaging:
    """Runs apps.send / apps.receive against one broker and queue, with logs in ``tmp``."""

    def __init__(self, broker, queue: str, tmp: Path, queue_type: str = "quorum", max_deliveries: int = 10):
        self.broker = broker
        self.queue = queue
        self.tmp = tmp
        self.queue_type = queue_type
        self.max_deliveries = max_deliveries
        self.apps: list[AppProcess] = []
        self._count = 0

    def env(self, **extra: str) -> dict[str, str]:
        """What the apps get on top of devtools.procs.child_env's allow-list."""
        return {
            "RABBITMQ_URL": self.broker.url,
            "RABBITMQ_QUEUE": self.queue,
            "RABBITMQ_QUEUE_TYPE": self.queue_type,
            "RABBITMQ_MAX_DELIVERIES": str(self.max_deliveries),
            # Come back quickly after a broker restart, give up in reasonable time.
            "RABBITMQ_BACKOFF_INITIAL": "0.2",
            "RABBITMQ_BACKOFF_MAX": "1",
            "RABBITMQ_RETRY_SECONDS": "60",
            **extra,
        }

    def start(self, app: str, *args: str, env: dict[str, str] | None = None) -> AppProcess:
        self._count += 1
        log_path = self.tmp / f"{self._count:02d}-{app}.log"
        # A heartbeat file of its own (the default /tmp/seaport-heartbeat is the container's).
        env = {liveness.FILE_VARIABLE: str(log_path.with_suffix(".alive")), **(env or self.env())}
        process = AppProcess(f"apps.{app}", list(args), env=env, log_path=log_path).start()
        self.apps.append(process)
        return process

    def send(self, *args: str, **kwargs) -> AppProcess:
        return self.start("send", *args, **kwargs)

    def receive(self, *args: str, **kwargs) -> AppProcess:
        return self.start("receive", *args, **kwargs)

    def wait_logged(self, app: AppProcess, message: str, timeout: float = 30.0) -> dict:
        """The first log record of ``app`` with this message (fails if the app exits first)."""

        def find():
            for record in log_records(app.output()):
                if record.get("message") == message:
                    return record
            if app.process.poll() is not None:
                raise AssertionError(
                    f"{app.module} exited ({app.process.returncode}) before logging "
                    f"{message!r}:\n{app.output()[-3000:]}"
                )
            return None

        return wait_until(find, timeout, f"{app.module} to log {message!r}")

    def liveness(self, app: AppProcess, max_age: float) -> subprocess.CompletedProcess:
        """The app's container health check, run as ECS runs it: the contract's command, in the app's environment."""
        assert liveness.COMMAND[0] == "python"
        return subprocess.run(
            [sys.executable, *liveness.COMMAND[1:], "--max-age", str(max_age)],
            env=app.env,
            cwd=REPO_ROOT,
            capture_output=True,
            text=True,
            timeout=10,
        )

    def summary(self, app: AppProcess) -> dict:
        records = [r for r in log_records(app.output()) if r.get("message") == "summary"]
        assert records, f"no summary in the log of {app.module}:\n{app.output()[-3000:]}"
        return records[-1]

    def wait_exit(self, app: AppProcess, timeout: float) -> int:
        try:
            return app.wait(timeout)
        except subprocess.TimeoutExpired:
            raise AssertionError(f"{app.module} still running after {timeout:g} s:\n{app.output()[-3000:]}") from None

    def channel(self):
        connection = pika.BlockingConnection(pika.URLParameters(self.broker.url))
        return connection, connection.channel()

    def queue_settings(self) -> QueueSettings:
        return QueueSettings(self.queue, self.queue_type, self.max_deliveries)

    def load_definitions(self, max_length: int | None = None) -> dict:
        """Load the queues and the broker policy the infrastructure loads (contract.broker); the policy."""
        settings = self.queue_settings()
        self.broker.import_definitions(settings.definitions(max_length=max_length), wait=False)
        policy = settings.policy(max_length=max_length)
        # The import is asynchronous: wait until the queue exists and the policy applies to it.
        applies = lambda: self.broker.queue_policies().get(self.queue) == policy["name"]  # noqa: E731
        wait_until(applies, 20, f"policy {policy['name']} to apply to the queue", interval=0.2)
        return policy

    def declare(self) -> None:
        connection, channel = self.channel()
        try:
            declare_queues_blocking(channel, self.queue_settings())
        finally:
            connection.close()

    def depth(self, queue: str | None = None) -> int:
        """Messages ready in the queue (not counting unacknowledged ones)."""
        connection, channel = self.channel()
        try:
            return channel.queue_declare(queue or self.queue, passive=True).method.message_count
        finally:
            connection.close()

    def get_all(self, queue: str) -> list[tuple[pika.BasicProperties, bytes]]:
        """Every message in ``queue``, acked (removed)."""
        connection, channel = self.channel()
        messages = []
        try:
            while True:
                method, properties, body = channel.basic_get(queue, auto_ack=True)
                if method is None:
                    return messages
                messages.append((properties, body))
        finally:
            connection.close()

    def cleanup(self) -> None:
        for app in self.apps:
            if app.process is not None and app.process.poll() is None:
                app.kill()
                app.wait(5)


def connected_port(record: dict) -> int:
    """The AMQP port of a ``connected`` log record's broker (``amqp://user@host:port/vhost``)."""
    return int(record["broker"].rsplit(":", 1)[1].split("/", 1)[0])


@dataclass(frozen=True)
class Counts:
    """What a fault test sent, had confirmed, received, received more than once, and never received."""

    sent: int
    confirmed: int
    received: int  # distinct ids
    duplicated: int  # deliveries beyond the first of an id
    lost: int  # confirmed ids never received

    @classmethod
    def of(cls, summary: dict, run_id: str, count: int, *records: Path) -> Counts:
        ids = read_ids(*records)
        distinct = set(ids)
        return cls(
            sent=summary["published"],
            confirmed=summary["confirmed"],
            received=len(distinct),
            duplicated=len(ids) - len(distinct),
            lost=len(expected_ids(run_id, count) - distinct),
        )

    def show(self, label: str) -> str:
        line = (
            f"{label}: sent {self.sent}, confirmed {self.confirmed}, received {self.received}, "
            f"duplicated {self.duplicated}, lost {self.lost}"
        )
        print(f"\n{line}")
        return line


class TlsMessaging(Messaging):
    """Runs the apps over TLS as the infrastructure configures them: the broker's address (here 127.0.0.1, which
    its certificate does not name), the name to verify (``rabbitmq``) and the CA to trust (the node's)."""

    def env(self, **extra: str) -> dict[str, str]:
        tls = {
            "RABBITMQ_URL": self.broker.tls_url(),
            "RABBITMQ_TLS_SERVER_NAME": contract.SERVICE_NAME,
            "RABBITMQ_CA_PEM": self.broker.tls.ca_pem,
        }
        return super().env(**{**tls, **extra})


class ClusterMessaging(Messaging):
    """Runs the apps against a cluster they find through a (fake) Consul agent, as on ECS.

    Every node is registered as an instance of the service ``rabbitmq`` on 127.0.0.1
    with its AMQP port, as the nodes' peer discovery registers them on ECS; a
    node that dies stays registered and passing (Consul notices only when its TTL
    check expires, 30 s later), so the apps must cope with a dead address.
    """

    def __init__(self, cluster, consul, queue: str, tmp: Path):
        self.cluster = cluster
        self.consul = consul
        super().__init__(cluster.nodes[0], queue, tmp, queue_type="quorum")
        for node in cluster.nodes:
            consul.add("rabbitmq", node.amqp_port, service_id=f"rabbitmq:{node.nodename}")

    @property
    def broker(self):
        """Any running node (for the test's own connections and rabbitmqctl)."""
        return self.cluster.running()[0]

    @broker.setter
    def broker(self, _node) -> None:
        pass

    def env(self, **extra: str) -> dict[str, str]:
        return super().env(RABBITMQ_URL="", RABBITMQ_SERVICE="rabbitmq", CONSUL_HTTP_ADDR=self.consul.address, **extra)

    def connections(self, app: AppProcess) -> list[int]:
        """The AMQP ports ``app`` connected to, in order."""
        return [connected_port(r) for r in log_records(app.output()) if r.get("message") == "connected"]

    def wait_received(self, record: Path, run_id: str, count: int, timeout: float) -> None:
        wanted = expected_ids(run_id, count)
        wait_until(lambda: wanted <= set(read_ids(record)), timeout, f"all {count} ids of {run_id} to be received")
