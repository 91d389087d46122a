"""A throwaway RabbitMQ node on loopback, for tests, benchmarks and `make local`.

Runs Debian's ``rabbitmq-server`` start script directly (``/usr/sbin/rabbitmq-server``
switches to the ``rabbitmq`` user and drops the environment when run as root),
configured only through ``RABBITMQ_*`` environment variables that all point into
one data directory, so nothing is read from or written to ``/etc/rabbitmq`` or
``/var/lib/rabbitmq``. The node listens on free 127.0.0.1 ports and lives in its
own process group, so it can be stopped gracefully, SIGKILLed as a whole (what a
crash looks like to clients) and started again on the same data.

Usage::

    with RabbitMQNode() as node:            # start() + wait_ready(); close() at exit
        url = node.url                      # amqp://guest:guest@127.0.0.1:<port>/%2F
        node.kill(); node.start().wait_ready()
        node.restart()                      # graceful stop, start, wait
        node.import_definitions(document)   # queues and policies, waits until they apply
        node.ctl("set_vm_memory_high_watermark", "absolute", "1MB")  # any rabbitmqctl command
        node.freeze(); node.thaw()          # SIGSTOP / SIGCONT: a broker that goes silent, then returns

    ca = trustme.CA()                       # AMQP over TLS as well, on another free port
    with RabbitMQNode(tls=ServerTls.issued_by(ca, "rabbitmq")) as node:
        url = node.tls_url()                # amqps://guest:guest@127.0.0.1:<amqps port>/%2F

Starting takes about 8 s on a 2-core machine (Erlang boot and the database
schema check dominate); stopping about 1 s. No plugins are enabled. The default
``guest`` user is allowed because clients connect over loopback.

With ``tls`` the node also listens for AMQP over TLS (1.2 and 1.3) on
``amqps_port``, with that certificate and key; the plain AMQP port stays open
for the test's own connections and ``wait_ready``. The listener is configured
in ``advanced.config`` (Erlang terms), which costs no boot time, where a
``rabbitmq.conf`` would add seconds of schema processing.

With ``root`` (by default ``SEAPORT_RABBITMQ_ROOT``'s), the server and the CLI tools run from a Debian root
that holds the RabbitMQ release seaport deploys (devtools.rabbitmq_root), not from the machine's package.

Cluster members (devtools.rabbitmq_cluster) and the node that boots the generated
ECS configuration (tests/apps/test_cluster_config.py) pass more: a node name, a
shared Erlang cookie, a ``rabbitmq.conf`` or ``advanced.config``, plugins, a
scheduler limit (``+S 1:1``: several nodes share 2 cores), other variables, or
another command (a wrapper that execs the server script).

With ``dist_tls`` the node's Erlang distribution (its peers, and the CLI tools
``ctl`` runs) is TLS only, with the options seaport's clustered nodes get
(``seaport.rabbitmq_config.inter_node_tls_config``: both ends present that
certificate and accept only one from the same CA that names ``rabbitmq``)::

    ca = trustme.CA()
    node = RabbitMQNode(dist_tls=ServerTls.issued_by(ca, "rabbitmq"), cookie=shared)
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from devtools import rabbitmq_root
from devtools.procs import child_env, free_port, wait_for_port

# The start scripts' variables for the server's and the CLI tools' Erlang arguments (seaport.rabbitmq_config has the
# same names; importing seaport takes seconds, so only a node with ``dist_tls`` does).
SERVER_ERL_ARGS_VARIABLE = "RABBITMQ_SERVER_ADDITIONAL_ERL_ARGS"
CTL_ERL_ARGS_VARIABLE = "RABBITMQ_CTL_ERL_ARGS"

SERVER_SCRIPT_CANDIDATES = ("/usr/lib/rabbitmq/bin/rabbitmq-server", "/usr/lib/rabbitmq/sbin/rabbitmq-server")

# Runs next to every node: when the process that started the node dies without
# stopping it (a test run interrupted, a timeout), the pipe on its stdin closes
# and it SIGKILLs the node's process group, so no broker is left behind.
WATCHDOG = """
import os, signal, sys
sys.stdin.buffer.read()
try:
    os.killpg(int(sys.argv[1]), signal.SIGKILL)
except OSError:
    pass
"""


class RabbitMQError(RuntimeError):
    """The node could not be started, or did not become ready in time."""


@dataclass(frozen=True)
class ServerTls:
    """What a node's TLS listener presents, as PEM text: its certificate chain and key, and the CA to trust."""

    cert_pem: str  # the node's certificate, then any intermediates
    key_pem: str = field(repr=False)
    ca_pem: str  # the CA that issued it: what clients trust

    @classmethod
    def issued_by(cls, ca, *names: str) -> ServerTls:
        """A certificate for ``names`` (DNS names or IP addresses) issued by ``ca``, a ``trustme.CA``."""
        issued = ca.issue_cert(*names)
        return cls(
            cert_pem="".join(blob.bytes().decode() for blob in issued.cert_chain_pems),
            key_pem=issued.private_key_pem.bytes().decode(),
            ca_pem=ca.cert_pem.bytes().decode(),
        )


def server_script(root: Path | None = None) -> str:
    """Path of the start script that honours RABBITMQ_* variables: ``root``'s (as commands run there see it), or
    the machine's (RabbitMQError when it has none)."""
    if root is not None:
        return rabbitmq_root.SERVER_SCRIPT
    for candidate in SERVER_SCRIPT_CANDIDATES:
        if os.access(candidate, os.X_OK):
            return candidate
    raise RabbitMQError("rabbitmq-server is not installed (apt-get install rabbitmq-server, or `make sysdeps`)")


def ctl_script(root: Path | None = None) -> str:
    """Path of rabbitmqctl, next to the server script (``root``'s, or the machine's)."""
    return str(Path(server_script(root)).with_name("rabbitmqctl"))


def available() -> bool:
    """Whether a node can be started on this machine (from ``SEAPORT_RABBITMQ_ROOT``'s root, if set)."""
    try:
        if rabbitmq_root.selected() is None:
            server_script()
    except (RabbitMQError, rabbitmq_root.RootError):
        return False
    return True


class RabbitMQNode:
    """One RabbitMQ node with its data in ``data_dir`` (a new temp dir by default).

    Args:
        data_dir: where the database, logs and Erlang cookie live; reused by ``start``
            after ``stop``/``kill``, so messages on durable queues survive. A temp dir
            made here is deleted by ``close``.
        amqp_port: AMQP listener port on 127.0.0.1 (a free one by default).
        startup_timeout: seconds ``wait_ready`` waits for a connection to succeed.
    """

    host = "127.0.0.1"

    def __init__(
        self,
        data_dir: Path | None = None,
        amqp_port: int | None = None,
        startup_timeout=60.0,
        *,
        nodename: str | None = None,
        dist_port: int | None = None,
        cookie: str | None = None,
        conf: str | None = None,
        advanced_config: str | None = None,
        plugins: Sequence[str] = (),
        schedulers: int | None = None,
        env: Mapping[str, str | None] | None = None,
        command: Sequence[str] | None = None,
        tls: ServerTls | None = None,
        amqps_port: int | None = None,
        dist_tls: ServerTls | None = None,
        root: Path | None = None,
    ):
        """More arguments (all optional; the defaults make the standalone test node):

        nodename: Erlang node name (default ``seaport<amqp port>@localhost``).
        dist_port: Erlang distribution port (default: a free one).
        cookie: Erlang cookie, written to ``<data_dir>/.erlang.cookie`` (mode 0400) before each start;
            nodes of one cluster need the same one (default: the node creates a random one).
        conf, advanced_config: text of ``rabbitmq.conf`` / ``advanced.config`` (default: none).
        plugins: plugins to enable (``enabled_plugins``).
        schedulers: Erlang schedulers (``+S n:n``), for several nodes on few cores.
        env: more variables for the server process (None removes one), applied last.
        command: what to run instead of the server script (a wrapper that ends by exec-ing it).
        tls: also listen for AMQP over TLS with this certificate (written under ``<data_dir>/tls``);
            not together with ``advanced_config``, which then holds the listener.
        amqps_port: the TLS listener's port on 127.0.0.1 (default: a free one; only with ``tls``).
        dist_tls: Erlang distribution over TLS with this certificate (files and the options file under
            ``<data_dir>/dist-tls``), for the server and for the CLI tools ``ctl`` runs.
        root: run the server and its CLI tools from this Debian root (devtools.rabbitmq_root: RabbitMQ as
            seaport deploys it) rather than the machine's; default: ``SEAPORT_RABBITMQ_ROOT``'s, if set
            (``rabbitmq_root.MACHINE``: the machine's, even then).
        """
        if tls is not None and advanced_config is not None:
            raise RabbitMQError("tls and advanced_config together: put the TLS listener in advanced_config")
        self.root = Path(root).resolve() if root is not None else rabbitmq_root.selected()
        if self.root == rabbitmq_root.MACHINE:
            self.root = None
        if self.root is not None and command:
            raise RabbitMQError("command and root together: a command names the machine's paths, not the root's")
        self._owns_dir = data_dir is None
        self.data_dir = Path(data_dir or tempfile.mkdtemp(prefix="seaport-rabbitmq-"))
        self.amqp_port = amqp_port or free_port()
        self.dist_port = dist_port or free_port()
        # The node name names the database directory: it must not change between
        # restarts, and must differ between nodes sharing the machine's epmd.
        self.nodename = nodename or f"seaport{self.amqp_port}@localhost"
        self.cookie = cookie
        self.conf = conf
        self.advanced_config = advanced_config
        self.plugins = list(plugins)
        self.schedulers = schedulers
        self.extra_env = dict(env or {})
        self.command = list(command) if command else None
        self.tls = tls
        self.amqps_port = (amqps_port or free_port()) if tls else None
        self.dist_tls = dist_tls
        self.startup_timeout = startup_timeout
        self.process: subprocess.Popen | None = None
        self._output = None
        self._watchdog: subprocess.Popen | None = None
        self._watchdog_pipe: int | None = None

    # -- addresses ----------------------------------------------------------

    @property
    def url(self) -> str:
        """AMQP URL of the node (guest user, default vhost)."""
        return self.url_for("guest", "guest")

    def url_for(self, username: str, password: str, vhost: str = "%2F") -> str:
        return f"amqp://{username}:{password}@{self.host}:{self.amqp_port}/{vhost}"

    def tls_url(self, username: str = "guest", password: str = "guest", host: str | None = None) -> str:  # noqa: S107
        """amqps URL of the TLS listener; ``host`` is what the URL names (e.g. ``localhost``), 127.0.0.1 by default."""
        if self.amqps_port is None:
            raise RabbitMQError("this node has no TLS listener: create it with tls=ServerTls(...)")
        return f"amqps://{username}:{password}@{host or self.host}:{self.amqps_port}/%2F"

    def connection_parameters(self):
        """pika parameters of a client connection to this node (``url``'s)."""
        import pika

        return pika.URLParameters(self.url)

    @property
    def log_path(self) -> Path:
        return self.data_dir / "log" / f"{self.nodename}.log"

    # -- lifecycle ----------------------------------------------------------

    def is_running(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def start(self) -> RabbitMQNode:
        """Launch the node (returns at once; call ``wait_ready``)."""
        if self.is_running():
            raise RabbitMQError(f"node {self.nodename} is already running")
        script = server_script(self.root)
        if self.root:
            rabbitmq_root.version(self.root)  # still there, and the release wanted
        # No rabbitmq.conf by default: parsing one costs seconds of boot time,
        # and the defaults plus the variables below are all a test node needs.
        (self.data_dir / "log").mkdir(parents=True, exist_ok=True)
        (self.data_dir / "enabled_plugins").write_text(f"[{','.join(self.plugins)}].\n")
        (self.data_dir / "rabbitmq-env.conf").write_text("# empty: keeps /etc/rabbitmq out\n")
        advanced_config = self._tls_config() if self.tls else self.advanced_config
        for name, text in (("rabbitmq.conf", self.conf), ("advanced.config", advanced_config)):
            path = self.data_dir / name
            if text is None:
                path.unlink(missing_ok=True)
            else:
                path.write_text(text)
        if self.cookie is not None:
            write_cookie(self.data_dir / ".erlang.cookie", self.cookie)
        if self.dist_tls is not None:
            self._write_dist_tls()
        for port in (self.amqp_port, self.dist_port, self.amqps_port):
            if port is not None:
                wait_until_bindable(port)
        self._output = open(self.data_dir / "server.out", "ab")  # noqa: SIM115 - closed in _reap()
        self.process = subprocess.Popen(
            self.in_root(self.command or [script]),
            env=self._environment(),
            cwd=self.data_dir,
            stdin=subprocess.DEVNULL,
            stdout=self._output,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        self._start_watchdog()
        return self

    def wait_ready(self, timeout: float | None = None) -> RabbitMQNode:
        """Block until the AMQP port accepts and a pika connection opens and closes cleanly.

        With ``tls``, also until the TLS port accepts (it opens along with the plain one).
        """
        import pika  # a test/bench dependency; keep importing this module cheap

        deadline = time.monotonic() + (timeout or self.startup_timeout)
        assert self.process is not None, "start() first"
        self._wait_for_port(self.amqp_port, deadline)
        params = self.connection_parameters()
        params.socket_timeout = 2
        last_error: Exception | None = None
        # The listener opens slightly before the node accepts logins.
        while time.monotonic() < deadline:
            if not self.is_running():
                break
            try:
                pika.BlockingConnection(params).close()
            except pika.exceptions.AMQPError as error:
                last_error = error
                time.sleep(0.1)
                continue
            if self.amqps_port is not None:
                self._wait_for_port(self.amqps_port, deadline)
            return self
        raise RabbitMQError(f"RabbitMQ node not ready: {last_error!r}\n{self.log_tail()}")

    def _wait_for_port(self, port: int, deadline: float) -> None:
        try:
            wait_for_port(port, max(0.1, deadline - time.monotonic()), self.host, self.process)
        except (RuntimeError, TimeoutError) as error:
            raise RabbitMQError(f"{error}\n{self.log_tail()}") from None

    def stop(self, timeout: float = 30.0) -> None:
        """Graceful shutdown (SIGTERM: the node closes connections and syncs queues)."""
        if not self.is_running():
            self._reap()
            return
        self._signal(signal.SIGTERM)
        try:
            self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            self.kill()
        self._reap()

    def terminate(self) -> None:
        """SIGTERM (a graceful stop), without waiting for the node to exit; ``stop``/``kill`` reap it."""
        if self.is_running():
            self._signal(signal.SIGTERM)

    def freeze(self) -> None:
        """SIGSTOP the whole node: connections stay open but nothing answers (``thaw`` resumes it)."""
        if self.is_running():
            self._signal(signal.SIGSTOP)

    def thaw(self) -> None:
        """SIGCONT after ``freeze``."""
        if self.is_running():
            self._signal(signal.SIGCONT)

    def kill(self) -> None:
        """SIGKILL the whole node (a crash: nothing is flushed or closed politely)."""
        if self.is_running():
            self._signal(signal.SIGKILL)
            self.process.wait(10)
        self._reap()

    def restart(self, graceful: bool = True, timeout: float | None = None) -> RabbitMQNode:
        """Stop (or kill) and start again on the same data and ports, then wait until ready."""
        if graceful:
            self.stop()
        else:
            self.kill()
        return self.start().wait_ready(timeout)

    def close(self) -> None:
        """Stop the node and delete its data dir if this object created it."""
        self.stop()
        if self._owns_dir:
            shutil.rmtree(self.data_dir, ignore_errors=True)

    def __enter__(self) -> RabbitMQNode:
        return self.start().wait_ready()

    def __exit__(self, *exc) -> None:
        self.close()

    # -- administration -----------------------------------------------------

    def ctl(
        self,
        *args: str,
        stdin: str | None = None,
        timeout: float = 60.0,
        tool: str = "rabbitmqctl",
        env: Mapping[str, str | None] | None = None,
    ) -> str:
        """Run ``rabbitmqctl <args>`` against this node (about 1 s: it boots an Erlang VM); its output.

        ``tool`` runs another CLI tool (``rabbitmq-diagnostics``, as a container's health check does); ``env``
        changes its environment (None removes a variable, e.g. ``RABBITMQ_CTL_ERL_ARGS``).
        Raises RabbitMQError with the tool's output when it fails.
        """
        environment = self._environment()  # the same HOME (so the same Erlang cookie) and distribution
        for name, value in (env or {}).items():
            if value is None:
                environment.pop(name, None)
            else:
                environment[name] = value
        try:
            result = subprocess.run(
                self.in_root([str(self.cli_dir / tool), "-n", self.nodename, *args]),
                input=stdin,
                env=environment,
                capture_output=True,
                text=True,
                timeout=timeout,
            )
        except subprocess.TimeoutExpired:
            raise RabbitMQError(f"{tool} {' '.join(args)} did not finish in {timeout:g} s") from None
        if result.returncode != 0:
            output = f"{result.stdout}{result.stderr}"
            raise RabbitMQError(f"{tool} {' '.join(args)} failed ({result.returncode}):\n{output}")
        return result.stdout

    def import_definitions(self, document: dict, timeout: float = 30.0, wait: bool = True) -> None:
        """Load a definitions document (queues, policies, ...) and wait until its policies are listed.

        ``rabbitmqctl import_definitions`` returns before the import is done; this
        polls ``list_policies`` until every policy of the document is there
        (``wait=False``: return at once, for a caller that checks something else).
        """
        # From a file in the data dir: 4.3's CLI (Erlang 29) cannot read definitions from a pipe on stdin.
        path = self.data_dir / "definitions-import.json"
        path.touch(mode=0o600)  # definitions may hold users' password hashes
        path.write_text(json.dumps(document))
        self.ctl("import_definitions", str(path))
        wanted = {(policy["vhost"], policy["name"]) for policy in document.get("policies", [])} if wait else set()
        deadline = time.monotonic() + timeout
        while wanted:
            listed = set()
            for vhost in {vhost for vhost, _name in wanted}:
                for policy in json.loads(self.ctl("list_policies", "-p", vhost, "--formatter", "json") or "[]"):
                    listed.add((vhost, policy["name"]))
            wanted -= listed
            if wanted and time.monotonic() > deadline:
                raise RabbitMQError(f"policies not in force {timeout:g} s after the import: {sorted(wanted)}")

    def queue_policies(self, vhost: str = "/") -> dict[str, str]:
        """Queue name -> the name of the policy that applies to it ('' for none)."""
        rows = json.loads(self.ctl("list_queues", "-p", vhost, "name", "policy", "--formatter", "json") or "[]")
        return {row["name"]: row.get("policy") or "" for row in rows}

    # -- helpers ------------------------------------------------------------

    def log_tail(self, lines: int = 30) -> str:
        """The last lines of the node's output and log, for error messages."""
        chunks = []
        for path in (self.data_dir / "server.out", self.log_path):
            if path.exists():
                text = path.read_text(errors="replace").splitlines()[-lines:]
                chunks.append(f"--- {path.name}\n" + "\n".join(text))
        return "\n".join(chunks)

    def in_root(self, argv: list[str], *directories: Path) -> list[str]:
        """``argv`` as run for this node: in its root, if it has one, with its data dir and ``directories`` at
        their own paths."""
        return rabbitmq_root.command(self.root, [self.data_dir, *directories], argv) if self.root else argv

    @property
    def cli_dir(self) -> Path:
        """Where this node's CLI tools are, as ``in_root`` commands see it."""
        return Path(ctl_script(self.root)).parent

    def _environment(self) -> dict[str, str]:
        base = self.data_dir
        extra: dict[str, str | None] = {}
        erl_args = []
        if self.schedulers:
            erl_args.append(f"+S {self.schedulers}:{self.schedulers}")
        if self.dist_tls is not None:
            from seaport.rabbitmq_config import distribution_erl_args

            distribution = distribution_erl_args(str(self.dist_tls_file))
            erl_args.append(distribution)
            extra[CTL_ERL_ARGS_VARIABLE] = distribution  # rabbitmqctl, rabbitmq-diagnostics
        if erl_args:
            extra[SERVER_ERL_ARGS_VARIABLE] = " ".join(erl_args)
        # No inherited RABBITMQ_* (or ERL_*) variable may reconfigure the node.
        return child_env(
            {
                "HOME": str(base),  # the Erlang cookie is created here
                "RABBITMQ_NODENAME": self.nodename,
                "RABBITMQ_NODE_IP_ADDRESS": self.host,
                "RABBITMQ_NODE_PORT": str(self.amqp_port),
                "RABBITMQ_DIST_PORT": str(self.dist_port),
                "RABBITMQ_MNESIA_BASE": str(base / "mnesia"),
                "RABBITMQ_LOG_BASE": str(base / "log"),
                "RABBITMQ_ENABLED_PLUGINS_FILE": str(base / "enabled_plugins"),
                "RABBITMQ_PID_FILE": str(base / "rabbitmq.pid"),
                "RABBITMQ_CONF_ENV_FILE": str(base / "rabbitmq-env.conf"),
                "RABBITMQ_CONFIG_FILE": str(base / "rabbitmq"),  # the script appends .conf
                "RABBITMQ_ADVANCED_CONFIG_FILE": str(base / "advanced.config"),
                # conf.d: none by default (not /etc/rabbitmq/conf.d)
                "RABBITMQ_CONFIG_FILES": str(base / "conf.d" / "*.conf"),
                **extra,
                **self.extra_env,
            }
        )

    def _tls_config(self) -> str:
        """advanced.config with the TLS listener; writes the certificate, key and CA files it names."""
        folder = self.data_dir / "tls"
        folder.mkdir(exist_ok=True)
        files = {"cacertfile": "ca.pem", "certfile": "cert.pem", "keyfile": "key.pem"}
        texts = {"cacertfile": self.tls.ca_pem, "certfile": self.tls.cert_pem, "keyfile": self.tls.key_pem}
        for key, name in files.items():
            path = folder / name
            path.write_text(texts[key])
            path.chmod(0o600)
        options = ", ".join(f'{{{key}, "{erlang_string(str(folder / name))}"}}' for key, name in files.items())
        # Clients are not asked for certificates (verify_none is about the client's, not the server's).
        return (
            f'[{{rabbit, [{{ssl_listeners, [{{"{self.host}", {self.amqps_port}}}]}},\n'
            f"  {{ssl_options, [{options},\n"
            "    {verify, verify_none}, {fail_if_no_peer_cert, false}, {versions, ['tlsv1.3', 'tlsv1.2']}]}]}].\n"
        )

    @property
    def dist_tls_file(self) -> Path:
        """The distribution's TLS options file (``-ssl_dist_optfile``), with ``dist_tls``."""
        return self.data_dir / "dist-tls" / "inter_node_tls.config"

    def _write_dist_tls(self) -> None:
        """The certificate, key and CA of ``dist_tls``, and the options file naming them (all 0600)."""
        from seaport.rabbitmq_config import inter_node_tls_config

        folder = self.dist_tls_file.parent
        folder.mkdir(exist_ok=True)
        texts = {"ca.pem": self.dist_tls.ca_pem, "cert.pem": self.dist_tls.cert_pem, "key.pem": self.dist_tls.key_pem}
        options = inter_node_tls_config(*(str(folder / name) for name in texts))
        for path, text in [*((folder / name, text) for name, text in texts.items()), (self.dist_tls_file, options)]:
            path.write_text(text)
            path.chmod(0o600)

    def _signal(self, signum: int) -> None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.process.pid, signum)

    def _start_watchdog(self) -> None:
        read_end, self._watchdog_pipe = os.pipe()  # not inherited by other children
        try:
            self._watchdog = subprocess.Popen(
                [sys.executable, "-c", WATCHDOG, str(self.process.pid)],
                stdin=read_end,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
                start_new_session=True,
            )
        finally:
            os.close(read_end)

    def _reap(self) -> None:
        """Release what belongs to a node that has exited (log file, watchdog)."""
        if self._output is not None:
            self._output.close()
            self._output = None
        if self._watchdog_pipe is not None:
            os.close(self._watchdog_pipe)  # the watchdog wakes up and exits
            self._watchdog_pipe = None
        if self._watchdog is not None:
            self._watchdog.wait(5)
            self._watchdog = None


def erlang_string(text: str) -> str:
    """``text`` escaped for an Erlang string literal."""
    return text.replace("\\", "\\\\").replace('"', '\\"')


def write_cookie(path: Path, cookie: str) -> None:
    """An Erlang cookie file as Erlang wants it: readable by its owner only."""
    if path.exists():
        if path.read_text() == cookie:
            return
        path.chmod(0o600)
    path.write_text(cookie)
    path.chmod(0o400)


def wait_until_bindable(port: int, timeout: float = 10.0, host: str = "127.0.0.1") -> None:
    """Wait until ``port`` can be listened on again (a killed node's socket may linger)."""
    deadline = time.monotonic() + timeout
    while True:
        with socket.socket() as probe:
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                probe.bind((host, port))
                return
            except OSError:
                if time.monotonic() > deadline:
                    raise RabbitMQError(f"port {host}:{port} is still in use") from None
        time.sleep(0.1)
