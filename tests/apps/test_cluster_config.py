"""The configuration seaport generates for a clustered RabbitMQ node on ECS, booted for real: on RabbitMQ 4.3,
the release seaport deploys (its Debian root, devtools.rabbitmq_root), and on Debian 12's own 3.10.

``seaport.rabbitmq_config`` writes a clustered node's files through a shell
wrapper (``CLUSTER_START_COMMAND``) that ends by exec-ing the official image's
``docker-entrypoint.sh``. This test runs *that wrapper*, unchanged, with the
task's variables (the generated ``rabbitmq.conf`` text ``render(cluster_conf(...))``,
the definitions, the Consul ACL token, the Erlang cookie), in a private mount
namespace where a temp dir stands in for ``/etc/rabbitmq`` and another for
``/var/lib/rabbitmq``, so every file lands at the path the container uses and the
machine's own directories are never touched. A stand-in ``docker-entrypoint.sh``
then starts Debian's server script as the ``rabbitmq`` user, as the image's does. On 4.3 the
namespace is also the root's: the temp dirs appear at those paths inside it, and the wrapper runs there.

When the generated keys make the node speak AMQP over TLS only, the test
gives the wrapper a certificate from a throwaway CA (trustme) and connects
with TLS. One file of its own, ``conf.d/99-test-only.conf``, moves the
management plugin's listener (which the wrapper enables) off its fixed port
15672, so that runs on a shared machine do not collide.

The task's environment includes ``cluster_environment()`` unchanged: the
wrapper writes the distribution's TLS options file, the server starts with
distribution over TLS, and the container's health check
(``rabbitmq-diagnostics -q check_running``, as root, with the task's
``RABBITMQ_CTL_ERL_ARGS``) is run in the same namespace against it, then once
without those arguments, which must fail. The scheduler limit of a shared test
machine goes to ``RABBITMQ_SERVER_START_ARGS``, so the generated
``RABBITMQ_SERVER_ADDITIONAL_ERL_ARGS`` stays as the task definition has it.

The Consul endpoint in the generated keys is this test's fake agent
(tests/support/fake_consul.py, which requires the token), so a key the release
refuses, a token that is not read, a wrong file path or a plugin call the fake
does not answer fails here, not in a deploy. 4.3 gets the keys only 4.x knows
(``cluster_conf_4x``) as seaport.broker gives them, and must register its Erlang
node name in the registration's metadata (how peers find each other on ECS). On
3.10 they go to a file the node does not load; the test prints which and why,
and which of them 3.10's own schema would have accepted.
"""

from __future__ import annotations

import os
import re
import secrets
import shutil
import socket
import ssl
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

import pika
import pika.exceptions
import pytest

from apps.common.contract import broker as contract
from devtools import rabbitmq, rabbitmq_root
from devtools.procs import free_port
from seaport import rabbitmq_config
from tests.apps.helpers import wait_until
from tests.support.fake_consul import FakeConsul

pytestmark = pytest.mark.rabbitmq

TASK_MEMORY_MIB = 2048
NODES = 3
USER = "seaport"
LOCK_KEY = "rabbitmq/default/startup_lock"  # the plugin's lock_prefix / cluster_name / startup_lock

# The official image's entry point, reduced to what matters here: it runs the server as the rabbitmq user.
ENTRYPOINT = """#!/bin/sh
[ "$1" = rabbitmq-server ] || { echo "unexpected: $*" >&2; exit 64; }
exec setpriv --reuid=rabbitmq --regid=rabbitmq --init-groups "$SEAPORT_TEST_SERVER_SCRIPT"
"""
# Private mount namespace: the temp dirs appear at the container's paths for the wrapper and the server only.
NAMESPACE = 'mount --bind "$1" /etc/rabbitmq && mount --bind "$2" /var/lib/rabbitmq && shift 2 && exec "$@"'
HEALTH_CHECK = ["rabbitmq-diagnostics", "-q", "check_running"]  # what seaport.broker gives a clustered node


@dataclass(frozen=True)
class Release:
    """Where the node's server and CLI tools come from: the machine's package (Debian 12's 3.10), or the root
    that holds the release seaport deploys (devtools.rabbitmq_root, 4.3)."""

    name: str
    root: Path | None = None

    def prefix(self, etc: Path, var: Path, work: Path) -> list[str]:
        """The command prefix that runs what follows with ``etc`` and ``var`` at the container's paths (and in
        the root, ``work`` at its own path)."""
        if self.root is None:
            return [*rabbitmq_root.PRIVATE_MOUNTS, "/bin/sh", "-c", NAMESPACE, "sh", str(etc), str(var)]
        # In ``var``, as the machine's server starts (RabbitMQNode's working dir): the rabbitmq user can read it.
        return rabbitmq_root.command(self.root, [var, work], [], {"/etc/rabbitmq": etc, "/var/lib/rabbitmq": var})

    @property
    def server_script(self) -> str:
        return rabbitmq.server_script(self.root)

    @property
    def diagnostics(self) -> str:
        return str(Path(self.server_script).with_name("rabbitmq-diagnostics"))

    def rabbitmq_user(self) -> tuple[int, int]:
        """(uid, gid) of the rabbitmq user the wrapper hands the files to."""
        return rabbitmq_root.user_ids(self.root or rabbitmq_root.MACHINE)

    def schema_mappings(self) -> list[str]:
        """Every rabbitmq.conf key (pattern) the server and its plugins declare. 4.x declares shared blocks (TLS
        options) once, in ``.partial`` files that a schema includes under a prefix."""
        script = Path(self.server_script)
        if self.root:
            script = self.root / self.server_script.lstrip("/")
        folders = list(script.resolve().parent.parent.glob("plugins/*/priv/schema"))
        partials = {
            path.stem: mappings(path.read_text(errors="replace")) for d in folders for path in d.glob("*.partial")
        }
        patterns = []
        for schema in (path for folder in folders for path in folder.glob("*.schema")):
            text = schema.read_text(errors="replace")
            patterns += mappings(text)
            for name, prefix in re.findall(
                r'\{include_partial,\s*\{\w+,\s*"([^"]+)"\},\s*\[\{prefix,\s*"([^"]+)"\}', text
            ):
                patterns += [f"{prefix}.{mapping}" for mapping in partials[name]]
        return patterns


def mappings(schema_text: str) -> list[str]:
    """The keys (patterns) a cuttlefish schema or partial maps."""
    return re.findall(r'\{mapping,\s*"([^"]+)"', schema_text)


def mount_namespaces_work() -> bool:
    try:
        probe = subprocess.run(["unshare", "--mount", "true"], capture_output=True, timeout=10)
    except (OSError, subprocess.TimeoutExpired):
        return False
    return probe.returncode == 0


def known_to_installed_server(key: str, patterns: list[str]) -> bool:
    for pattern in patterns:
        regex = (
            "^" + "\\.".join("[^.]+" if part.startswith("$") else re.escape(part) for part in pattern.split(".")) + "$"
        )
        if re.match(regex, key):
            return True
    return False


class WrappedNode(rabbitmq.RabbitMQNode):
    """A node started by the generated wrapper; clients log in as the definitions' user (over TLS if set)."""

    password = secrets.token_urlsafe(16)
    ca_pem: str | None = None  # the CA to trust when the node speaks TLS
    release: Release = Release("debian")

    @property
    def url(self) -> str:
        return self.url_for(USER, self.password)

    def health_check(self, etc: Path, var: Path, **changes: str | None) -> subprocess.CompletedProcess:
        """The container's health check command, as root in this node's mount namespace and task environment
        (``changes`` to that environment; None removes a variable)."""
        environment = self._environment()
        for name, value in changes.items():
            if value is None:
                environment.pop(name, None)
            else:
                environment[name] = value
        command = [
            *self.release.prefix(etc, var, var),
            self.release.diagnostics,
            "-n",
            self.nodename,
            *HEALTH_CHECK[1:],
        ]
        return subprocess.run(command, env=environment, capture_output=True, text=True, timeout=60)

    def connection_parameters(self) -> pika.ConnectionParameters:
        ssl_options = None
        if self.ca_pem:
            ssl_options = pika.SSLOptions(ssl.create_default_context(cadata=self.ca_pem), server_hostname="localhost")
        return pika.ConnectionParameters(
            host=self.host,
            port=self.amqp_port,
            credentials=pika.PlainCredentials(USER, self.password),
            ssl_options=ssl_options,
        )


def server_pid(node: rabbitmq.RabbitMQNode) -> int:
    """The Erlang VM (beam.smp) the wrapper ended up exec-ing: the node's process group's beam."""
    group = os.getpgid(node.process.pid)
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
            command = (stat.parent / "comm").read_text().strip()
        except OSError:
            continue
        if int(fields[2]) == group and command.startswith("beam"):
            return int(stat.parent.name)
    raise AssertionError(f"no Erlang VM in process group {group}")


def tls_material() -> dict[str, str]:
    """A throwaway CA and a server certificate for the names a client may use here."""
    import trustme

    ca = trustme.CA()
    server = ca.issue_cert("localhost", "127.0.0.1", socket.gethostname(), contract.SERVICE_NAME)
    return {
        "ca": ca.cert_pem.bytes().decode(),
        "cert": "".join(blob.bytes().decode() for blob in server.cert_chain_pems),
        "key": server.private_key_pem.bytes().decode(),
    }


@pytest.fixture
def consul():
    agent = FakeConsul()
    agent.required_token = secrets.token_hex(16)
    yield agent
    agent.stop()


@pytest.fixture(params=["debian", "deployed"], ids=["debian-3.10", f"deployed-{rabbitmq_root.RELEASE}"])
def release(request) -> Release:
    if request.param == "debian":
        return Release("3.10")
    root = rabbitmq_root.selected()
    if root is None:
        pytest.skip(f"RABBITMQ=debian: no RabbitMQ {rabbitmq_root.RELEASE} root (make test builds one)")
    return Release(rabbitmq_root.RELEASE, root)


@pytest.fixture
def generated_node(tmp_path, consul, release):
    """The node, booted by CLUSTER_START_COMMAND with the generated configuration; yields (node, files)."""
    if os.geteuid() != 0 or not mount_namespaces_work() or not shutil.which("setpriv"):
        pytest.fail("this test runs as root with mount namespaces (unshare) and setpriv, as `make test` does in CI")
    etc = tmp_path / "etc-rabbitmq"  # /etc/rabbitmq in the container
    var = tmp_path / "var-lib-rabbitmq"  # /var/lib/rabbitmq: HOME (cookie), database, logs
    shim = tmp_path / "bin"
    for folder in (etc / "conf.d", var / "log", shim):
        folder.mkdir(parents=True)
    for folder in (etc, etc / "conf.d", var, var / "log"):
        os.chown(folder, *release.rabbitmq_user())
    (shim / "docker-entrypoint.sh").write_text(ENTRYPOINT)
    (shim / "docker-entrypoint.sh").chmod(0o755)

    port = free_port()
    # Positional: the last argument is the port the node serves clients on (and registers in Consul).
    keys = rabbitmq_config.cluster_conf(TASK_MEMORY_MIB, NODES, "127.0.0.1", consul.port, contract.SERVICE_NAME, port)
    conf_text = rabbitmq_config.render(keys)
    tls = "listeners.ssl.default" in keys
    (etc / "conf.d" / "99-test-only.conf").write_text(f"management.tcp.port = {free_port()}\n")
    keys_4x = rabbitmq_config.cluster_conf_4x(NODES)
    if release.root is None:
        # 4.x-only keys: kept in a file outside conf.d (no SEAPORT_RABBITMQ_CONF_4X for the wrapper: 3.10 refuses them).
        (tmp_path / "not-loaded-91-seaport-4x.conf").write_text(rabbitmq_config.render(keys_4x))
    token = consul.required_token
    cookie = secrets.token_hex(20)
    definitions = rabbitmq_config.definitions_json(USER, WrappedNode.password, "cfg-messages", "quorum")

    task_variables = {
        rabbitmq_config.CONF_VARIABLE: conf_text,
        rabbitmq_config.DEFINITIONS_VARIABLE: definitions,
        rabbitmq_config.CONSUL_TOKEN_VARIABLE: token,
        rabbitmq_config.COOKIE_VARIABLE: cookie,
        **rabbitmq_config.cluster_environment(),  # distribution over TLS: the options file, the ERL args
    }
    if release.root is not None:
        task_variables[rabbitmq_config.CONF_4X_VARIABLE] = rabbitmq_config.render(keys_4x)  # as seaport.broker does
    listener: dict[str, str | None] = {}
    if tls:
        material = tls_material()
        task_variables[rabbitmq_config.CA_VARIABLE] = material["ca"]
        task_variables[rabbitmq_config.CERT_VARIABLE] = material["cert"]
        task_variables[rabbitmq_config.KEY_VARIABLE] = material["key"]
        listener = {"RABBITMQ_NODE_PORT": None, "RABBITMQ_NODE_IP_ADDRESS": None}  # the conf's listeners only
    container = "/var/lib/rabbitmq"
    node = WrappedNode(
        data_dir=var,
        amqp_port=port,
        nodename=f"seaportcfg{port}@localhost",
        startup_timeout=90,
        command=[*release.prefix(etc, var, tmp_path), *rabbitmq_config.CLUSTER_START_COMMAND],
        root=rabbitmq_root.MACHINE,  # the prefix puts it in the release's root, if any
        env={
            # The container's paths (the server's defaults), seen through the mount namespace.
            "HOME": container,
            "RABBITMQ_MNESIA_BASE": f"{container}/mnesia",
            "RABBITMQ_LOG_BASE": f"{container}/log",
            "RABBITMQ_PID_FILE": f"{container}/rabbitmq.pid",
            "RABBITMQ_CONFIG_FILE": None,
            "RABBITMQ_CONFIG_FILES": None,
            "RABBITMQ_ADVANCED_CONFIG_FILE": None,
            "RABBITMQ_ENABLED_PLUGINS_FILE": None,
            "RABBITMQ_CONF_ENV_FILE": None,
            "PATH": f"{shim}:{os.environ.get('PATH', '/usr/bin:/bin')}",
            "SEAPORT_TEST_SERVER_SCRIPT": release.server_script,
            "RABBITMQ_SERVER_START_ARGS": "+S 1:1",  # several nodes share 2 cores (the generated args stay as they are)
            **listener,
            **task_variables,  # the task's variables (ECS environment and secrets)
        },
    )
    node.release = release
    if tls:
        node.ca_pem = material["ca"]
    files = {
        "etc": etc,
        "var": var,
        "conf_text": conf_text,
        "keys": keys,
        "keys_4x": keys_4x,
        "token": token,
        "cookie": cookie,
        "tls": tls,
        "task_variables": task_variables,
    }
    try:
        node.start().wait_ready()
        yield node, files
    finally:
        node.close()


def test_generated_cluster_config_boots_and_joins_consul(generated_node, consul):
    """The release accepts every key it is given (4.3: those of cluster_conf_4x too); the node registers as
    "rabbitmq" and holds then frees the startup lock."""
    node, files = generated_node
    etc = files["etc"]
    release = node.release
    deployed = release.root is not None  # 4.3, with every key seaport.broker gives it
    hostname = socket.gethostname()  # what the plugin registers (svc_addr_auto, not the node name)

    # -- the wrapper wrote what the container gets, where it gets it
    assert (etc / "conf.d" / "90-seaport.conf").read_text() == files["conf_text"] + "\n"
    keys_4x_text = rabbitmq_config.render(files["keys_4x"]) if deployed else ""
    assert (etc / "conf.d" / "91-seaport-4x.conf").read_text().strip() == keys_4x_text.strip()
    secret_conf = (etc / "conf.d" / "92-seaport-secrets.conf").read_text()
    assert secret_conf == f"cluster_formation.consul.acl_token = {files['token']}\n"
    assert "acl_token" not in files["conf_text"]
    cookie = files["var"] / ".erlang.cookie"
    assert cookie.read_text() == files["cookie"]
    assert cookie.stat().st_mode & 0o777 == 0o400
    rabbit_uid = release.rabbitmq_user()[0]
    generated = [
        etc / "conf.d" / f"{n}-seaport{suffix}.conf" for n, suffix in (("90", ""), ("91", "-4x"), ("92", "-secrets"))
    ]
    assert {p.stat().st_uid for p in [*generated, etc / "enabled_plugins", cookie]} == {rabbit_uid}
    log = node.log_path.read_text()
    assert "config file(s) : /etc/rabbitmq/conf.d/90-seaport.conf" in log, node.log_tail()

    # -- distribution over TLS: the options file from the task's variable and the broker's key, rabbitmq's alone
    options = etc / "inter_node_tls.config"
    assert options.read_text() == rabbitmq_config.inter_node_tls_config() + "\n"
    for secret in (options, etc / "tls" / "key.pem"):
        assert (secret.stat().st_uid, secret.stat().st_mode & 0o777) == (rabbit_uid, 0o600), secret
    erl_args = files["task_variables"][rabbitmq_config.SERVER_ERL_ARGS_VARIABLE]
    assert erl_args == f"-proto_dist inet_tls -ssl_dist_optfile {rabbitmq_config.INTER_NODE_TLS_FILE}"
    server_args = (Path("/proc") / str(server_pid(node)) / "cmdline").read_bytes().replace(b"\0", b" ").decode()
    assert f" {erl_args} " in server_args, server_args
    # the health check, as root with the task's environment: over TLS it passes, with plain distribution it fails
    started = time.monotonic()
    check = node.health_check(etc, files["var"])
    assert check.returncode == 0, check.stdout + check.stderr
    print(f"\nhealth check over TLS distribution: {time.monotonic() - started:.1f} s")
    plain = node.health_check(etc, files["var"], **{rabbitmq_config.CTL_ERL_ARGS_VARIABLE: None})
    assert plain.returncode != 0 and "unable to perform an operation" in plain.stdout + plain.stderr

    # -- it serves AMQP as the definitions' user (imported from the generated path); the queues wait for the
    # cluster's size (target_cluster_size_hint), so quorum queues are created with every replica, not one
    connection = pika.BlockingConnection(node.connection_parameters())
    try:
        # The configured cluster name, which the node tells a client without looking up its host name.
        announced = connection._impl.server_properties["cluster_name"]
        assert (announced.decode() if isinstance(announced, bytes) else announced) == files["keys"]["cluster_name"]
        with pytest.raises(pika.exceptions.ChannelClosedByBroker, match="NOT_FOUND"):
            connection.channel().queue_declare("cfg-messages", passive=True)
    finally:
        connection.close()

    # -- Consul: registered as the service the apps look up, with a TTL check the plugin keeps passing
    service_id = f"{contract.SERVICE_NAME}:{hostname}"
    registration = wait_until(
        lambda: next(iter(consul.registrations(contract.SERVICE_NAME)), None), 20, "the node's registration"
    )
    assert registration["ID"] == service_id
    assert registration["Address"] == hostname
    assert registration["Port"] == node.amqp_port
    if deployed:  # how peers learn each other's node name on ECS, where the address is the instance's host name
        assert registration["Meta"] == {"erlang-node-name": node.nodename}
    assert registration["Check"]["TTL"] == f"{files['keys']['cluster_formation.consul.svc_ttl']}s"
    assert registration["Check"]["DeregisterCriticalServiceAfter"] == (
        f"{files['keys']['cluster_formation.consul.deregister_after']}s"
    )
    wait_until(
        lambda: ("PUT", f"/v1/agent/check/pass/service:{service_id}") in {(m, p) for m, p, _ in consul.requests_seen},
        20,
        "the plugin's first TTL check pass",
    )
    assert consul._health(contract.SERVICE_NAME, passing_only=True), "the registration is not passing"
    assert {token for _, _, token in consul.requests_seen} == {files["token"]}, "a request went without the token"

    # -- the startup lock: acquired with a session while discovering peers, then released
    events = [(action, ok) for action, key, _session, ok in consul.lock_events if key == LOCK_KEY]
    assert events[:2] == [("acquire", True), ("release", True)], consul.lock_events
    assert consul.lock_holder(LOCK_KEY) is None
    sessions = {session for _, key, session, _ in consul.lock_events if key == LOCK_KEY}
    assert len(sessions) == 1
    discovery = [q for m, p, q in consul.queries_seen if p == f"/v1/health/service/{contract.SERVICE_NAME}"]
    assert discovery, "the node never listed its peers"

    # -- the keys against the release's own schemas: 4.3 loads cluster_conf_4x as well; 3.10 must not get them
    patterns = release.schema_mappings()
    assert all(known_to_installed_server(key, patterns) for key in files["keys"]), f"a key {release.name} lacks"
    known_4x = {key: known_to_installed_server(key, patterns) for key in files["keys_4x"]}
    print(f"\nAMQP over TLS only: {files['tls']}; test-only file: conf.d/99-test-only.conf (management port)")
    # Neither release asks Consul for passing registrations only (seaport's clean-up loop allows for it).
    print(f"discovery query string sent by {release.name}: {discovery[0]!r}")
    if deployed:
        assert all(known_4x.values()), f"cluster_conf_4x keys {release.name} does not declare: {known_4x}"
        log = node.log_path.read_text()
        assert "/etc/rabbitmq/conf.d/91-seaport-4x.conf" in log, "4.3 did not load the 4.x keys"
    else:
        print("rabbitmq.conf keys left out on 3.10 (cluster_conf_4x, in a file the node does not load):")
        for key, known in known_4x.items():
            why = "3.10's schema declares it too (could be loaded)" if known else "unknown to 3.10: it refuses to boot"
            print(f"  {key} = {files['keys_4x'][key]}  -- {why}")
        assert not any(known for key, known in known_4x.items() if "continuous_membership_reconciliation" in key)

    # -- a graceful stop deregisters the node (early in the shutdown; the rest of it is not waited for)
    node.terminate()
    wait_until(lambda: consul.registrations(contract.SERVICE_NAME) == [], 20, "the node to deregister")
    node.kill()
