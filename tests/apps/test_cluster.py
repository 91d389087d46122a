"""apps.send and apps.receive on a real three-node RabbitMQ cluster, through node crashes and a lost majority.

The cluster (devtools.rabbitmq_cluster, one per session) is three nodes of
Debian's RabbitMQ 3.10 on loopback, each with its own node name, ports and data,
running seaport's generated clustered-node settings (``pause_minority`` among
them) but formed by the **classic_config** peer-discovery backend (the node list
in rabbitmq.conf), not by Consul: on one machine, 3.10's Consul backend
registers every node under the same host name (service id ``rabbitmq:<host>``,
so the three registrations would overwrite each other) and derives each peer's
Erlang node name from that host name, so it cannot form a cluster of several
nodes on one host. The Consul backend itself is booted with the exact
generated configuration in test_cluster_config.py.

As on ECS, the nodes talk to each other and to the CLI tools over TLS only
(Erlang distribution over TLS with seaport's options file): each presents a
certificate for ``rabbitmq`` from the cluster's test CA, which names no host the
nodes dial (they dial ``localhost``), and accepts only a certificate from that CA
naming ``rabbitmq``. The first tests prove that (the connections, the port, the
CLI tools, a node from another CA that tries to join); the fault tests after them
run on that cluster.

The apps find the nodes as on ECS: through a (fake) Consul agent where each node
is an instance of the service ``rabbitmq``. A killed node stays registered and
passing, as it would in Consul until its TTL check expires (30 s), so the apps
have to cope with an address that refuses connections. The work queue is a
quorum queue with a replica on each node.

Each test prints and asserts what was sent, confirmed, received, duplicated and
lost (confirmed but never received: must be 0; duplicates are allowed,
delivery is at-least-once).
"""

from __future__ import annotations

import re
import secrets
import socket
import ssl
import subprocess
import threading
import time
from pathlib import Path

import pika
import pytest
import trustme

from devtools.rabbitmq import RabbitMQError, RabbitMQNode, ServerTls, erlang_string
from seaport import rabbitmq_config
from tests.apps.helpers import Counts, log_records, wait_until

pytestmark = pytest.mark.rabbitmq

COUNT = 20_000
RATE = "4000"  # messages/s: the send lasts ~5 s, long enough for a crash to land in the middle of it


def start_receiver(messaging, record, *args):
    receiver = messaging.receive("--record", str(record), *args)
    messaging.wait_logged(receiver, "consuming")
    return receiver


def wait_queue_replicated(messaging, declared_at: float) -> None:
    """RabbitMQ 3.10 writes a new quorum queue's membership to disk lazily (within a second or so)."""
    time.sleep(max(0.0, 2.0 - (time.monotonic() - declared_at)))


def distribution_links(node: RabbitMQNode) -> set[tuple[str, str, str, str]]:
    """(node, peer, connection type, protocol) of every distribution connection of every node ``node`` knows,
    as those nodes report them (``net_kernel:nodes_info``); the CLI tool that asks is a hidden peer."""
    output = node.ctl(
        "eval",
        "[{N, P, proplists:get_value(type, I), element(4, proplists:get_value(address, I))}"
        " || N <- [node() | nodes()], {ok, Is} <- [rpc:call(N, net_kernel, nodes_info, [])], {P, I} <- Is].",
    )
    return set(re.findall(r"\{'?([^,{}']+)'?,'?([^,{}']+)'?,(\w+),(\w+)\}", output))


def dist_handshake(port: int, ca_pem: str, client: ServerTls | None, folder: Path) -> tuple[str, str | None, dict]:
    """What a TLS client (trusting ``ca_pem``, presenting ``client``) gets from a node's distribution port:
    ``("accepted", TLS version, peer certificate)``, or ``("refused: <why>", ...)``."""
    context = ssl.create_default_context(cadata=ca_pem)
    context.check_hostname = False  # dialled by address; the name the node presents is checked by the caller
    if client is not None:
        write_dist_tls(folder, client)
        context.load_cert_chain(folder / "cert.pem", folder / "key.pem")
    try:
        with context.wrap_socket(socket.create_connection(("127.0.0.1", port), timeout=5)) as sock:
            version, peer = sock.version(), sock.getpeercert()
            sock.settimeout(0.5)
            try:
                # TLS 1.2: a refused client certificate ends the handshake with an alert (raised above or here);
                # an accepted client waits here for the Erlang distribution handshake, which it never starts.
                data = sock.recv(1)
            except TimeoutError:
                return "accepted", version, peer
            return f"refused: {data!r}", version, peer  # b'' when the server just closed
    except (ssl.SSLError, ConnectionError) as error:
        return f"refused: {error}", None, {}


def write_dist_tls(folder: Path, tls: ServerTls) -> Path:
    """``tls``'s files in ``folder`` and seaport's distribution options file naming them; the options file."""
    folder.mkdir(parents=True, exist_ok=True)
    files = {"ca.pem": tls.ca_pem, "cert.pem": tls.cert_pem, "key.pem": tls.key_pem}
    for name, text in files.items():
        (folder / name).write_text(text)
    options = folder / "inter_node_tls.config"
    options.write_text(rabbitmq_config.inter_node_tls_config(*(str(folder / name) for name in files)))
    return options


def erl_node(name: str, cookie: str, tls: ServerTls | None, folder: Path, expression: str) -> list[str]:
    """The command of a bare Erlang node named ``name`` that evaluates ``expression``: distribution over TLS with
    seaport's options and ``tls``, or plain distribution without."""
    args = rabbitmq_config.distribution_erl_args(str(write_dist_tls(folder, tls))).split() if tls else []
    return ["erl", "-noshell", "-hidden", "-sname", name, "-setcookie", cookie, *args, "-eval", expression]


def erl_ping(target: str, cookie: str, tls: ServerTls | None, folder: Path) -> bool:
    """Whether a bare Erlang node reaches ``target`` (net_adm:ping -> pong)."""
    ping = f"io:format(\"~p~n\", [net_adm:ping('{erlang_string(target)}')]), halt()."
    command = erl_node(f"probe{secrets.token_hex(3)}@localhost", cookie, tls, folder, ping)
    result = subprocess.run(command, capture_output=True, text=True, timeout=30)
    return result.stdout.strip().splitlines()[-1:] == ["pong"]


def issued(issuer, *names: str, trusting: str | None = None) -> ServerTls:
    """A certificate for ``names`` from ``issuer`` (a trustme CA), trusting ``trusting`` (default: ``issuer``)."""
    tls = ServerTls.issued_by(issuer, *names)
    return ServerTls(tls.cert_pem, tls.key_pem, trusting or tls.ca_pem)


def test_the_nodes_and_the_cli_tools_talk_over_tls_only(cluster, tmp_path):
    """Every distribution connection is TLS; the port speaks TLS and wants a client certificate from the CA; the
    CLI tools (the container's health check) work with the CLI arguments and not without; queues replicate."""
    first, *_ = cluster.nodes
    names = {node.nodename for node in cluster.nodes}

    links = distribution_links(first)
    between_nodes = {(a, b, kind, proto) for a, b, kind, proto in links if a in names and b in names}
    assert {(a, b) for a, b, _, _ in between_nodes} == {(a, b) for a in names for b in names if a != b}, links
    assert {(kind, proto) for _, _, kind, proto in between_nodes} == {("normal", "tls")}
    assert {proto for a, b, kind, proto in links if kind == "hidden"} == {"tls"}, "the CLI tool's connection"

    # The distribution port: TLS 1.2 with the broker's name; a client without a certificate is refused.
    ca_pem = cluster.dist_ca.cert_pem.bytes().decode()
    verdict, version, peer = dist_handshake(first.dist_port, ca_pem, issued(cluster.dist_ca, "rabbitmq"), tmp_path)
    assert (verdict, version) == ("accepted", "TLSv1.2")
    assert peer["subjectAltName"] == (("DNS", "rabbitmq"),)
    verdict, _, _ = dist_handshake(first.dist_port, ca_pem, None, tmp_path / "no-certificate")
    assert verdict.startswith("refused"), verdict

    # The health check's command as the container runs it, then the same without the CLI's TLS arguments.
    started = time.monotonic()
    assert "fully booted and running" in first.ctl("check_running", tool="rabbitmq-diagnostics")
    print(f"\nrabbitmq-diagnostics check_running over TLS: {time.monotonic() - started:.1f} s")
    assert cluster.running_nodes(first) == names  # rabbitmqctl cluster_status
    with pytest.raises(RabbitMQError, match="unable to perform an operation on node"):
        first.ctl("check_running", tool="rabbitmq-diagnostics", env={rabbitmq_config.CTL_ERL_ARGS_VARIABLE: None})

    # A quorum queue declared on one node has a replica on every node, and its message is read on another.
    queue = f"tls-{secrets.token_hex(4)}"
    connection = pika.BlockingConnection(pika.URLParameters(first.url))
    try:
        channel = connection.channel()
        channel.confirm_delivery()
        channel.queue_declare(queue, durable=True, arguments={"x-queue-type": "quorum"})
        channel.basic_publish("", queue, b"over tls", pika.BasicProperties(delivery_mode=2), mandatory=True)
    finally:
        connection.close()
    members = wait_until(
        lambda: (m := cluster.queue_members(queue, via=first)) and set(m["online"]) == names and m,
        30,
        "every replica online",
        interval=0.5,
    )
    assert set(members["members"]) == names
    connection = pika.BlockingConnection(pika.URLParameters(cluster.nodes[-1].url))
    try:
        channel = connection.channel()
        _method, _properties, body = channel.basic_get(queue, auto_ack=True)
        assert body == b"over tls"
        channel.queue_delete(queue)
    finally:
        connection.close()


def test_only_a_certificate_from_the_ca_naming_rabbitmq_opens_a_connection(cluster, tmp_path):
    """Bare Erlang nodes with seaport's options file (and the cluster's cookie) try a cluster node: only the one
    whose certificate comes from the CA and names rabbitmq gets in; a node dials only such a certificate."""
    first = cluster.nodes[0]
    ca = cluster.dist_ca
    foreign = trustme.CA()
    both_cas = ca.cert_pem.bytes().decode() + foreign.cert_pem.bytes().decode()
    cases = {
        "the CA, rabbitmq (control)": (issued(ca, "rabbitmq"), True),
        # the name a default host name check would accept here (the host dialled is localhost), but not rabbitmq
        "the CA, consul.example and localhost": (issued(ca, "consul.example", "localhost"), False),
        # a foreign CA's certificate for rabbitmq (the probe itself trusts both CAs)
        "another CA, rabbitmq": (issued(foreign, "rabbitmq", trusting=both_cas), False),
        "no TLS (plain distribution)": (None, False),
    }
    started = time.monotonic()
    outcome = {
        label: erl_ping(first.nodename, cluster.cookie, material, tmp_path / f"probe{number}")
        for number, (label, (material, _)) in enumerate(cases.items())
    }
    print(f"\nprobes ({time.monotonic() - started:.1f} s): {outcome}")
    assert outcome == {label: expected for label, (_, expected) in cases.items()}

    # The other direction: a cluster node dials nodes whose certificates come from the CA, naming rabbitmq or not.
    dialled = {names: dial(first, cluster.cookie, issued(ca, *names), tmp_path) for names in LISTENER_NAMES}
    assert dialled == {("rabbitmq",): "pong", ("consul.example", "localhost"): "pang"}


LISTENER_NAMES = (("rabbitmq",), ("consul.example", "localhost"))


def dial(node: RabbitMQNode, cookie: str, tls: ServerTls, tmp_path: Path) -> str:
    """What ``net_adm:ping`` on ``node`` says of a bare Erlang node presenting ``tls`` (pong or pang)."""
    name = f"listener{secrets.token_hex(3)}"
    command = erl_node(f"{name}@localhost", cookie, tls, tmp_path / name, "timer:sleep(60000), halt().")
    listener = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_until(
            lambda: f"name {name} " in subprocess.run(["epmd", "-names"], capture_output=True, text=True).stdout,
            20,
            "the listener's distribution port",
            interval=0.1,
        )
        return node.ctl("eval", f"net_adm:ping('{name}@localhost').").strip()
    finally:
        listener.kill()
        listener.wait()


def test_a_node_with_a_certificate_from_another_ca_cannot_join(cluster, tmp_path):
    """A RabbitMQ node with the cluster's cookie but a certificate from another CA (trusting the cluster's CA as
    well) is refused by the cluster's nodes; it stays alone and the cluster stays whole."""
    foreign = trustme.CA()
    trusting_both = cluster.dist_ca.cert_pem.bytes().decode() + foreign.cert_pem.bytes().decode()
    outsider = RabbitMQNode(
        data_dir=tmp_path / "outsider",
        cookie=cluster.cookie,
        schedulers=1,
        dist_tls=issued(foreign, "rabbitmq", trusting=trusting_both),
    )
    logs = {node.nodename: node.log_path.stat().st_size for node in cluster.nodes}
    try:
        outsider.start().wait_ready()
        outsider.ctl("stop_app")
        with pytest.raises(RabbitMQError) as refused:
            outsider.ctl("join_cluster", cluster.nodes[0].nodename)
        print(f"\njoin_cluster refused: {str(refused.value).splitlines()[1:3]}")
    finally:
        outsider.close()
    refusals = [
        line
        for node in cluster.nodes
        for line in node.log_path.read_text(errors="replace")[logs[node.nodename] :].splitlines()
        if "Unknown CA" in line
    ]
    assert refusals, "no cluster node logged refusing the foreign certificate"
    assert "SERVER ALERT" in refusals[0], refusals[0]
    assert cluster.running_nodes() == {node.nodename for node in cluster.nodes}  # without the outsider


def finish(messaging, sender, receiver, record, run_id: str, count: int, label: str) -> Counts:
    """Wait for the send to end (every message confirmed) and the receiver to have every id; the counts."""
    assert messaging.wait_exit(sender, 90) == 0, sender.output()[-3000:]
    messaging.wait_received(record, run_id, count, 60)
    receiver.stop()
    assert receiver.process.returncode == 0, receiver.output()[-3000:]
    counts = Counts.of(messaging.summary(sender), run_id, count, record)
    counts.show(label)
    assert counts.sent == count
    assert counts.confirmed == count
    assert counts.received == count
    assert counts.lost == 0
    return counts


def test_sigkill_one_of_three_nodes_while_sending(cluster_messaging, cluster, tmp_path):
    """The node leading the queue dies mid-send: a new leader takes over, no confirmed message is lost."""
    messaging = cluster_messaging
    record = tmp_path / "received.txt"
    receiver = start_receiver(messaging, record)
    declared_at = time.monotonic()
    # The leader is looked up before the send: a CLI call (a second or more over TLS) would eat into the ~5 s
    # the send lasts, and the crash has to land in the middle of it.
    wait_queue_replicated(messaging, declared_at)
    leader = cluster.queue_members(messaging.queue)["leader"]
    victim = next(node for node in cluster.nodes if node.nodename == leader)
    sender = messaging.send("--count", str(COUNT), "--rate", RATE, "--run-id", "kill1")
    wait_until(lambda: len(record.read_text().split()) >= 3000 if record.exists() else False, 30, "3000 received")
    assert sender.process.poll() is None, "the send finished before the crash"
    victim.kill()
    victim.start()  # boots again on its data while the apps go on (the next test waits for it)

    counts = finish(messaging, sender, receiver, record, "kill1", COUNT, f"SIGKILL of {victim.nodename} (queue leader)")
    assert counts.lost == 0


def test_sigkill_the_node_receive_is_connected_to(cluster_messaging, cluster, tmp_path):
    """receive loses its node: it reconnects to another, consumes again, and every message arrives."""
    messaging = cluster_messaging
    record = tmp_path / "received.txt"
    receiver = start_receiver(messaging, record)
    declared_at = time.monotonic()
    victim = cluster.node_at(messaging.connections(receiver)[0])
    sender = messaging.send("--count", str(COUNT), "--rate", RATE, "--run-id", "kill2")
    wait_until(lambda: len(record.read_text().split()) >= 3000 if record.exists() else False, 30, "3000 received")
    wait_queue_replicated(messaging, declared_at)
    assert sender.process.poll() is None, "the send finished before the crash"
    victim.kill()
    killed_at = time.monotonic()
    victim.start()

    reconnected = wait_until(lambda: messaging.connections(receiver)[1:], 30, "receive to reconnect")
    assert reconnected[0] != victim.amqp_port
    print(f"\nreceive reconnected to another node {time.monotonic() - killed_at:.1f} s after the SIGKILL")
    finish(messaging, sender, receiver, record, "kill2", COUNT, f"SIGKILL of {victim.nodename} (receive's node)")
    consuming = [r for r in log_records(receiver.output()) if r.get("message") == "consuming"]
    assert len(consuming) >= 2, "receive did not consume again after the reconnection"


def test_killed_node_restarts_and_rejoins(cluster_messaging, cluster, tmp_path):
    """A node killed while messages flow comes back on its data, rejoins, and its queue replica catches up."""
    messaging = cluster_messaging
    messaging.declare()
    declared_at = time.monotonic()
    wait_queue_replicated(messaging, declared_at)
    leader = cluster.queue_members(messaging.queue)["leader"]
    victim = next(node for node in cluster.nodes if node.nodename != leader)
    others = [node for node in cluster.nodes if node is not victim]
    victim.kill()
    count = 5000
    sender = messaging.send("--count", str(count), "--run-id", "rejoin")
    assert messaging.wait_exit(sender, 60) == 0, sender.output()[-3000:]  # published while the node is down

    victim.start().wait_ready()
    cluster.wait_formed()
    assert cluster.running_nodes(others[0]) == {node.nodename for node in cluster.nodes}
    members = wait_until(
        lambda: (m := cluster.queue_members(messaging.queue)) and victim.nodename in m["online"] and m,
        30,
        "the restarted node's replica to be online",
    )
    assert set(members["members"]) == {node.nodename for node in cluster.nodes}

    # Consumed through the restarted node only: the other two are critical in Consul for this receiver.
    for node in others:
        messaging.consul.set_status(f"rabbitmq:{node.nodename}", "critical")
    record = tmp_path / "received.txt"
    receiver = start_receiver(messaging, record)
    assert messaging.connections(receiver) == [victim.amqp_port]
    for node in others:
        messaging.consul.set_status(f"rabbitmq:{node.nodename}", "passing")
    messaging.wait_received(record, "rejoin", count, 30)
    receiver.stop()
    counts = Counts.of(messaging.summary(sender), "rejoin", count, record)
    counts.show(f"{victim.nodename} killed, {count} sent while down, restarted")
    assert (counts.sent, counts.confirmed, counts.received, counts.lost) == (count, count, count, 0)


def test_majority_down_pauses_publishing_until_it_is_back(cluster_messaging, cluster, tmp_path):
    """Two of three nodes stop: publishing stops (and says so), nothing is lost; one is back: it resumes."""
    messaging = cluster_messaging
    record = tmp_path / "received.txt"
    receiver = start_receiver(messaging, record)
    declared_at = time.monotonic()
    sender = messaging.send("--count", str(COUNT), "--rate", "2000", "--run-id", "majority")
    wait_until(lambda: len(record.read_text().split()) >= 2000 if record.exists() else False, 30, "2000 received")
    wait_queue_replicated(messaging, declared_at)
    survivor = cluster.node_at(messaging.connections(sender)[-1])  # the node send publishes through stays
    stopped = [node for node in cluster.nodes if node is not survivor]
    threads = [threading.Thread(target=node.stop) for node in stopped]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    down_at = time.monotonic()

    paused = messaging.wait_logged(sender, "publishing paused", timeout=30)
    print(f"\nsend paused {time.monotonic() - down_at:.1f} s after the majority stopped: {paused}")
    time.sleep(2)
    assert sender.process.poll() is None, "send gave up while the majority was down"

    back = stopped[0]
    back.start().wait_ready()
    resumed = messaging.wait_logged(sender, "publishing resumed", timeout=60)
    print(f"send resumed {time.monotonic() - down_at:.1f} s after the majority stopped: {resumed}")
    finish(messaging, sender, receiver, record, "majority", COUNT, "two of three nodes stopped, one brought back")
    stopped[1].start()  # boots in the background; the next cluster test waits for it
