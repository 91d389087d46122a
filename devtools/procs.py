"""Start and stop local processes (apps, servers) for tests, benchmarks and `make local`.

Children get an allow-listed environment (``child_env``), not a copy of ours:
a developer's ``AWS_*``, ``RABBITMQ_*`` or ``CONSUL_*`` variables must not
change what an app under test does, or which account it talks to.
"""

from __future__ import annotations

import os
import random
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Mapping, Sequence
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent

# What a child inherits from this process: where programs are, the user's home,
# the locale and the temp dir. Nothing that configures an app or a cloud SDK.
INHERITED_VARIABLES = ("PATH", "HOME", "LANG", "LANGUAGE", "TZ", "TMPDIR", "TMP", "TEMP")
INHERITED_PREFIXES = ("LC_",)


def child_env(explicit: Mapping[str, str | None] | None = None, /, **more: str | None) -> dict[str, str]:
    """The environment of a child process: the allow-listed variables plus what the caller passes.

    ``PYTHONPATH`` is the repository root, so ``python -m apps.send`` (or any
    package here) imports from this checkout; ``PYTHONUNBUFFERED=1`` makes log
    lines appear as they are written. Explicit values (``explicit``, then
    keywords) win; a value of ``None`` leaves the variable out altogether.

    Example: ``child_env(RABBITMQ_URL=node.url, LOG_LEVEL="debug")``.
    """
    env = {
        name: value
        for name, value in os.environ.items()
        if name in INHERITED_VARIABLES or name.startswith(INHERITED_PREFIXES)
    }
    env["PYTHONPATH"] = str(REPO_ROOT)
    env["PYTHONUNBUFFERED"] = "1"
    for name, value in {**(explicit or {}), **more}.items():
        if value is None:
            env.pop(name, None)
        else:
            env[name] = value
    return env


# Ports handed out by free_port(): below the kernel's ephemeral range (see there).
LOWEST_TEST_PORT = 10000
EPHEMERAL_RANGE_FILE = Path("/proc/sys/net/ipv4/ip_local_port_range")
_handed_out: set[int] = set()  # free_port()'s ports so far in this process: each is handed out once


def ephemeral_port_range() -> tuple[int, int]:
    """The kernel's range for the source ports of outgoing connections (Linux's default if unreadable)."""
    try:
        low, high = EPHEMERAL_RANGE_FILE.read_text().split()
        return int(low), int(high)
    except (OSError, ValueError):
        return 32768, 60999


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing is bound to right now, below the ephemeral range.

    Why not bind to port 0: the kernel answers from its ephemeral range, the range it also draws
    the source ports of outgoing connections from. A test that stops a server and starts it again
    on the same port (a broker restart while its clients reconnect) would race every connect()
    on the machine: one of them can take the port as its source port, even connect to itself on
    it, and the restart fails with EADDRINUSE. A port below that range is never taken that way.

    A port is handed out once per process: several servers of one test (a cluster's nodes) each
    get their own, even before the first of them binds. Test processes running side by side
    (pytest-xdist workers) draw from slices of their own (``port_slice``), so two of them never
    hand out the same port either.
    """
    low = ephemeral_port_range()[0]
    if low - LOWEST_TEST_PORT < 1000:  # an unusual kernel setting: no room below the range
        return _kernel_port()
    first, end = port_slice(LOWEST_TEST_PORT, low)
    for _ in range(200):
        port = random.randrange(first, end)  # noqa: S311 (spreads test ports; not a secret)
        if port in _handed_out:
            continue
        with socket.socket() as sock:
            try:
                sock.bind(("127.0.0.1", port))
            except OSError:
                continue
        _handed_out.add(port)
        return port
    return _kernel_port()


def port_slice(low: int, high: int, environ=os.environ) -> tuple[int, int]:
    """This process's share ``[first, end)`` of ports ``[low, high)``: all of it, or one worker's slice.

    pytest-xdist names its workers gw0, gw1, ... in ``PYTEST_XDIST_WORKER`` and their count in
    ``PYTEST_XDIST_WORKER_COUNT``."""
    worker, count = environ.get("PYTEST_XDIST_WORKER", ""), environ.get("PYTEST_XDIST_WORKER_COUNT", "")
    if not (worker.startswith("gw") and worker[2:].isdigit() and count.isdigit() and int(worker[2:]) < int(count)):
        return low, high
    size = (high - low) // int(count)
    first = low + int(worker[2:]) * size
    return first, first + size


def _kernel_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_for_port(
    port: int, timeout: float = 15.0, host: str = "127.0.0.1", process: subprocess.Popen | None = None
) -> None:
    """Block until ``host:port`` accepts connections; fail early if ``process`` died."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process is not None and process.poll() is not None:
            raise RuntimeError(f"{process.args!r} exited with {process.returncode} before listening on {port}")
        if port_accepts(host, port):
            return
        time.sleep(0.05)
    raise TimeoutError(f"nothing listens on {host}:{port} after {timeout:.0f}s")


def port_accepts(host: str, port: int, timeout: float = 0.5) -> bool:
    """Whether ``host:port`` accepts a connection now."""
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


class AppProcess:
    """``python -m <module> <args>`` in its own process group, output to a log file.

    The child's environment is ``child_env(env)``: the allow-list plus ``env``.
    Use as a context manager; ``stop()`` sends SIGTERM and waits, ``kill()`` SIGKILLs the group.
    """

    def __init__(
        self,
        module: str,
        args: Sequence[str] = (),
        env: dict[str, str] | None = None,
        log_path: Path | None = None,
    ):
        self.module = module
        self.args = list(args)
        self.env = child_env(env)
        self.log_path = log_path
        self.process: subprocess.Popen | None = None
        self._log = None

    def start(self) -> AppProcess:
        output = subprocess.DEVNULL
        if self.log_path is not None:
            self._log = open(self.log_path, "ab")  # noqa: SIM115 - closed in wait()
            output = self._log
        self.process = subprocess.Popen(
            [sys.executable, "-m", self.module, *self.args],
            env=self.env,
            cwd=REPO_ROOT,
            stdout=output,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        return self

    def signal(self, signum: int) -> None:
        if self.process and self.process.poll() is None:
            os.killpg(self.process.pid, signum)

    def wait(self, timeout: float | None = None) -> int:
        assert self.process is not None
        try:
            return self.process.wait(timeout)
        finally:
            if self.process.returncode is not None and self._log:
                self._log.close()
                self._log = None

    def stop(self, timeout: float = 10.0) -> int:
        """SIGTERM, then SIGKILL if it has not exited after ``timeout`` seconds."""
        if self.process is None:
            return 0
        self.signal(signal.SIGTERM)
        try:
            return self.wait(timeout)
        except subprocess.TimeoutExpired:
            self.kill()
            return self.wait(5)

    def kill(self) -> None:
        self.signal(signal.SIGKILL)

    def output(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path and self.log_path.exists() else ""

    def __enter__(self) -> AppProcess:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()
