"""A throwaway RabbitMQ cluster on loopback (three nodes by default), for tests and benchmarks.

Every node is a devtools.rabbitmq.RabbitMQNode (the release ``SEAPORT_RABBITMQ_ROOT``
selects: 4.3 under ``make test``, else the machine's ``rabbitmq-server``) with its
own node name (``seaport<amqp port>@localhost``), AMQP and distribution ports,
data and log directories, the same Erlang cookie, and one Erlang scheduler
(``+S 1:1``: three nodes share the machine's cores). The nodes run the
clustered node's settings that seaport generates for ECS
(``seaport.rabbitmq_config.cluster_conf``: memory watermark, disk limit,
heartbeat, ``pause_minority``), except how the cluster forms:

- **classic_config** peer discovery (the node list in ``rabbitmq.conf``), not
  Consul. On one machine, 3.10's Consul backend cannot tell the nodes apart:
  it registers each node under the machine's host name (service id
  ``rabbitmq:<hostname>``, so three nodes overwrite one registration) and
  derives a peer's Erlang node name from that address with the *local* node's
  name prefix. (4.x adds the node name as service metadata; on ECS each node
  has its own instance and host name, so neither problem arises there.) The
  Consul backend is exercised by booting one node with the exact generated
  configuration against a fake agent (tests/apps/test_cluster_config.py).
- no ``load_definitions`` file: tests import definitions through ``rabbitmqctl``.

Like the ECS nodes, the members talk to each other and to the CLI tools over
TLS only (Erlang distribution over TLS with seaport's options,
``seaport.rabbitmq_config.inter_node_tls_config``): every node presents one
certificate for the name ``rabbitmq`` from a throwaway CA (``dist_ca``, trustme)
and accepts only a certificate from that CA naming ``rabbitmq``. The certificate
does not name ``localhost``, the host the nodes dial each other by, just as the
broker's certificate on ECS names no instance's host name. ``ctl`` runs the CLI
tools with the same arguments (``RABBITMQ_CTL_ERL_ARGS``), as the container's
health check does. ``distribution_tls=False`` makes a plain-distribution cluster.

The first node boots alone; the others start once it runs, so they find it and
join it (three fresh nodes started at once can each decide they are first,
since a joining node needs a peer that already runs). A killed or stopped node
started again on its data rejoins by itself. A node the others have forgotten
(``rabbitmqctl forget_cluster_node``) cannot rejoin with its data: ``replaced``
marks it, and ``ensure_running`` starts it again on an empty database, a new
member with the same name (a replacement), which joins through its node list.
The first node lists only itself, so it is never the one to forget.

Usage::

    with RabbitMQCluster() as cluster:        # start() + wait_formed(); close() at exit
        cluster.nodes[1].kill()
        cluster.nodes[1].start().wait_ready()
        cluster.wait_formed()
        cluster.queue_members("messages")     # {"leader": ..., "members": [...], "online": [...]}
        cluster.replaced(cluster.nodes[2])    # forgotten by the others: ensure_running starts it afresh
        cluster.dist_ca, cluster.cookie       # what a node needs to join (a certificate from dist_ca, the cookie)

``python -m devtools.rabbitmq_cluster`` starts one and prints its nodes until Ctrl-C.
"""

from __future__ import annotations

import argparse
import json
import secrets
import shutil
import signal
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from devtools.procs import free_port, port_accepts
from devtools.rabbitmq import RabbitMQError, RabbitMQNode, ServerTls
from seaport import rabbitmq_config
from seaport.contract import broker as contract

# The generated keys the local members run with: the ones that shape how a cluster behaves. The others are
# about the container (TLS files, Consul discovery, the definitions file, the management listener).
KEPT = ("vm_memory_high_watermark.absolute", "disk_free_limit.absolute", "heartbeat", "cluster_partition_handling")
LEFT_OUT = {
    "cluster_formation.": "peer discovery is classic_config on one machine (see the module docstring)",
    "definitions.": "definitions are imported with rabbitmqctl (the generated path is the container's)",
    "listeners.": "the local nodes listen for plain AMQP on 127.0.0.1 (the apps' tests connect without TLS)",
    "ssl_options.": "no TLS locally (the certificate files are the container's)",
    "management.": "no management plugin locally",
}
TASK_MEMORY_MIB = 2048  # what each node's memory watermark is derived from, as for an ECS task of this size


def local_conf(nodenames: list[str], task_memory_mib: int = TASK_MEMORY_MIB) -> dict[str, str]:
    """rabbitmq.conf keys of a local member: cluster_conf's ``KEPT`` keys, with classic_config peer discovery."""
    generated = rabbitmq_config.cluster_conf(task_memory_mib, len(nodenames))
    keys = {key: value for key, value in generated.items() if key in KEPT}
    keys["cluster_formation.peer_discovery_backend"] = "classic_config"
    for number, name in enumerate(nodenames, start=1):
        keys[f"cluster_formation.classic_config.nodes.{number}"] = name
    return keys


def left_out_keys(task_memory_mib: int = TASK_MEMORY_MIB, nodes: int = 3) -> dict[str, str]:
    """The generated keys a local member does not use -> why."""
    generated = rabbitmq_config.cluster_conf(task_memory_mib, nodes)
    reasons = {}
    for key in generated:
        if key not in KEPT:
            reasons[key] = next(
                (why for prefix, why in LEFT_OUT.items() if key.startswith(prefix)), "about the container, not used"
            )
    return reasons


class RabbitMQCluster:
    """``size`` nodes on 127.0.0.1 forming one cluster; data under ``base_dir`` (a temp dir by default)."""

    def __init__(
        self,
        size: int = 3,
        base_dir: Path | None = None,
        schedulers: int = 1,
        startup_timeout: float = 90.0,
        task_memory_mib: int = TASK_MEMORY_MIB,
        distribution_tls: bool = True,
    ):
        self._owns_dir = base_dir is None
        self.base_dir = Path(base_dir or tempfile.mkdtemp(prefix="seaport-cluster-"))
        ports: list[int] = []
        while len(ports) < size:
            port = free_port()
            if port not in ports:
                ports.append(port)
        names = [f"seaport{port}@localhost" for port in ports]
        self.conf_keys = local_conf(names, task_memory_mib)
        # The first node lists only itself: it starts the cluster at once instead of trying the others
        # (not running yet) for a few seconds. The list is read only on a node's first boot.
        first_conf = local_conf(names[:1], task_memory_mib)
        self.cookie = secrets.token_hex(20)
        self.dist_ca = None
        dist_tls = None
        if distribution_tls:
            import trustme  # a test dependency

            self.dist_ca = trustme.CA()
            dist_tls = ServerTls.issued_by(self.dist_ca, contract.SERVICE_NAME)  # not "localhost": see the docstring
        self.nodes = [
            RabbitMQNode(
                data_dir=self.base_dir / f"node{number}",
                amqp_port=port,
                nodename=name,
                cookie=self.cookie,
                conf=rabbitmq_config.render(first_conf if number == 1 else self.conf_keys),
                schedulers=schedulers,
                startup_timeout=startup_timeout,
                dist_tls=dist_tls,
            )
            for number, (port, name) in enumerate(zip(ports, names, strict=True), start=1)
        ]
        for node in self.nodes:
            node.data_dir.mkdir(parents=True, exist_ok=True)
        self._replaced: set[str] = set()

    # -- lifecycle ---------------------------------------------------------------

    def start(self) -> RabbitMQCluster:
        """Boot the first node, then the others together; returns once the cluster has every node."""
        first, *others = self.nodes
        first.start()
        # The others need several seconds before they look for a peer; by then the first node, past its own
        # discovery (3.10 logs this line), has its database running, which is all a joining node asks of it.
        # 4.x logs no such line for a node that lists only itself, and boots in about 2 s: its port opens.
        deadline = time.monotonic() + first.startup_timeout
        while "Discovered no peer nodes" not in (first.log_path.read_text() if first.log_path.exists() else ""):
            if port_accepts(first.host, first.amqp_port):
                break
            if not first.is_running() or time.monotonic() > deadline:
                first.wait_ready(0.1)  # raises with the node's log
            time.sleep(0.1)
        for node in others:
            node.start()
        first.wait_ready()
        with ThreadPoolExecutor(max_workers=len(others) or 1) as pool:
            for future in [pool.submit(node.wait_ready) for node in others]:
                future.result()
        return self.wait_formed()

    def replaced(self, node: RabbitMQNode) -> None:
        """``node`` (stopped) was forgotten by the others: ``ensure_running`` starts it on an empty database."""
        if node is self.nodes[0]:
            raise RabbitMQError("the first node lists only itself: started afresh, it would form a cluster of its own")
        if node.is_running():
            raise RabbitMQError(f"{node.nodename} runs: stop it before it is forgotten")
        self._replaced.add(node.nodename)

    def ensure_running(self, timeout: float = 90.0) -> RabbitMQCluster:
        """Start whatever node is down (on its data: it rejoins; a ``replaced`` one afresh), and wait for the
        whole cluster."""
        down = [node for node in self.nodes if not node.is_running()]
        for node in down:
            if node.nodename in self._replaced:
                shutil.rmtree(node.data_dir / "mnesia", ignore_errors=True)  # RABBITMQ_MNESIA_BASE: the database
                self._replaced.discard(node.nodename)
            node.start()
        for node in down:
            node.wait_ready(timeout)
        return self.wait_formed(timeout)

    def wait_formed(self, timeout: float = 60.0) -> RabbitMQCluster:
        """Wait until a running node lists every node as running (the cluster is whole again)."""
        wanted = {node.nodename for node in self.nodes}
        deadline = time.monotonic() + timeout
        seen: set[str] = set()
        while True:
            running = self.running()
            if running:
                try:
                    seen = self.running_nodes(running[0])
                except RabbitMQError:
                    seen = set()
                if seen == wanted:
                    return self
            if time.monotonic() > deadline:
                raise RabbitMQError(
                    f"cluster not formed after {timeout:g} s: running {sorted(seen)}, want {sorted(wanted)}"
                )
            time.sleep(0.5)

    def close(self) -> None:
        """Stop every node (together) and delete the data if this object made the directory."""
        with ThreadPoolExecutor(max_workers=len(self.nodes)) as pool:
            list(pool.map(lambda node: node.close(), self.nodes))
        if self._owns_dir:
            shutil.rmtree(self.base_dir, ignore_errors=True)

    def __enter__(self) -> RabbitMQCluster:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.close()

    # -- questions ---------------------------------------------------------------

    def running(self) -> list[RabbitMQNode]:
        return [node for node in self.nodes if node.is_running()]

    def node_at(self, port: int) -> RabbitMQNode:
        """The node whose AMQP port is ``port``."""
        for node in self.nodes:
            if node.amqp_port == port:
                return node
        raise KeyError(port)

    def running_nodes(self, via: RabbitMQNode | None = None) -> set[str]:
        """The nodes ``via`` (default: the first running one) sees running in its cluster."""
        via = via or self.running()[0]
        status = json.loads(via.ctl("cluster_status", "--formatter", "json"))
        return set(status.get("running_nodes", []))

    def queue_members(self, queue: str, vhost: str = "/", via: RabbitMQNode | None = None) -> dict:
        """A quorum queue's leader, members and online members, as a running node reports them."""
        via = via or self.running()[0]
        rows = json.loads(
            via.ctl("list_queues", "-p", vhost, "name", "leader", "members", "online", "--formatter", "json") or "[]"
        )
        for row in rows:
            if row.get("name") == queue:
                return {key: row.get(key) for key in ("leader", "members", "online")}
        raise RabbitMQError(f"no queue {queue!r} on {via.nodename}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m devtools.rabbitmq_cluster", description=__doc__.split("\n\n")[0])
    parser.add_argument("--size", type=int, default=3)
    args = parser.parse_args(argv)
    started = time.monotonic()
    with RabbitMQCluster(size=args.size) as cluster:
        print(f"cluster of {args.size} formed in {time.monotonic() - started:.1f} s (Ctrl-C stops it):")
        for node in cluster.nodes:
            print(f"  {node.nodename}  {node.url}  data {node.data_dir}")
        signal.signal(signal.SIGTERM, signal.default_int_handler)
        try:
            while True:
                time.sleep(3600)
        except KeyboardInterrupt:
            pass
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
