"""RabbitMQ as seaport deploys it (4.3), next to the machine's own (Debian 12's 3.10), for tests and benchmarks.

Debian 12 packages RabbitMQ 3.10 on Erlang 25; 4.3 needs Erlang 27 or later, built against a newer C library
than Debian 12's. So 4.3 gets a Debian root of its own: ``mmdebstrap`` installs Debian's ``rabbitmq-server``
package from a suite that has 4.3 (``SUITES``) into a directory, and a node runs in it through ``chroot``::

    python -m devtools.rabbitmq_root build     # build/rabbitmq-root, about 30 s and 230 MB (needs root)
    SEAPORT_RABBITMQ_ROOT=build/rabbitmq-root .venv/bin/python -m pytest tests/apps   # nodes run 4.3

(``make test``, ``make bench`` and ``make local`` do both; ``RABBITMQ=debian`` runs the machine's 3.10.)

How a node runs in the root (``command``): in a mount namespace of its own (``unshare --mount``, private
propagation), the node's data directory (and any other the caller names) is bind-mounted at the same path
inside the root, ``/proc`` is mounted and the machine's ``/etc/hosts`` is bound (read-only) over the root's,
then ``chroot``. The node reads and writes the paths it would on the machine, its process group is the one the
caller started (so SIGSTOP, SIGKILL and the watchdog reach it), and the mounts vanish with the namespace's
last process: nothing is mounted on the machine.

The root is checked when it is built and before a node starts in it: its server must be release ``RELEASE``,
the one in seaport's default image (``seaport.broker.DEFAULT_RABBITMQ_IMAGE``, pinned by a unit test).
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Mapping, Sequence
from pathlib import Path

from devtools.procs import REPO_ROOT

RELEASE = "4.3"  # major.minor of the server in the root: the release seaport deploys
SUITES = ("forky", "sid")  # the Debian suites that package it, in order (14, testing in 2026; unstable)
DEFAULT_ROOT = REPO_ROOT / "build" / "rabbitmq-root"
VARIABLE = "SEAPORT_RABBITMQ_ROOT"  # a root's path: every RabbitMQNode that is not given one runs in it
MACHINE = Path("/")  # as a node's root: the machine's own server, whatever SEAPORT_RABBITMQ_ROOT says
SERVER_SCRIPT = "/usr/lib/rabbitmq/bin/rabbitmq-server"  # inside the root; honours RABBITMQ_* variables
SERVER_LIB = "usr/lib/rabbitmq/lib"  # rabbitmq_server-<version> in here names the installed version
CA_BUNDLE = "etc/ssl/certs/ca-certificates.crt"  # the system's CA certificates (package ca-certificates)
MACHINE_HOSTS = "/etc/hosts"  # bound over the root's when a command runs there (IN_ROOT)

# What follows runs in a mount namespace of its own: what it mounts, no one else sees, and it goes with it.
PRIVATE_MOUNTS = ("unshare", "--mount", "--propagation", "private")
# $1 the root, then (directory, path inside the root) pairs up to "--", then the command: run with each directory
# bound at its path, in the first one.
# The machine's /etc/hosts is bound (read-only) over the root's: the root then resolves the names the machine
# does, its own host name among them, whatever it was called when the root was built. A node without a
# cluster_name (test nodes have none) looks the host name up as it opens connections; unresolvable, each lookup
# waited for the DNS timeout, and every ~100th connection took 5 s to open.
IN_ROOT = (
    'set -e; root=$1; shift; work=$2; while [ "$1" != -- ]; do mkdir -p "$root$2"; mount --bind "$1" "$root$2"; '
    'shift 2; done; shift; mount -t proc proc "$root/proc"; '
    f'mount --bind {MACHINE_HOSTS} "$root{MACHINE_HOSTS}"; mount -o remount,bind,ro "$root{MACHINE_HOSTS}"; '
    'exec chroot "$root" /usr/bin/env -C "$work" "$@"'
)


class RootError(RuntimeError):
    """The root cannot be built, or holds no usable server."""


def selected() -> Path | None:
    """The root named by ``SEAPORT_RABBITMQ_ROOT`` (checked), or None when unset or empty: the machine's server."""
    value = os.environ.get(VARIABLE, "").strip()
    if not value:
        return None
    root = Path(value).resolve()
    try:
        version(root)  # a clear error now rather than a node that never boots
    except RootError as error:
        raise RootError(f"{VARIABLE}={value}: {error}") from None
    return root


def installed(root: Path) -> str | None:
    """The version of the RabbitMQ server installed in ``root`` (``MACHINE``: the machine's own), or None."""
    found = sorted((root / SERVER_LIB).glob("rabbitmq_server-*")) if (root / SERVER_LIB).is_dir() else []
    if not found or not (root / SERVER_SCRIPT.lstrip("/")).exists():
        return None
    return found[-1].name.removeprefix("rabbitmq_server-")


def version(root: Path) -> str:
    """The RabbitMQ version installed in ``root``; RootError when there is none, or not release ``RELEASE``."""
    installed_version = installed(root)
    if installed_version is None:
        raise RootError(
            f"no RabbitMQ server in {root}; build one with `python -m devtools.rabbitmq_root build --root {root}`"
        )
    if installed_version != RELEASE and not installed_version.startswith(f"{RELEASE}."):
        raise RootError(f"{root}: RabbitMQ {installed_version} is installed there, {RELEASE}.x is wanted")
    if not (root / CA_BUNDLE).exists():
        raise RootError(f"{root}: no CA certificates (/{CA_BUNDLE}); build the root again")
    return installed_version


def command(
    root: Path, directories: Sequence[Path], argv: list[str], elsewhere: Mapping[str, Path] | None = None
) -> list[str]:
    """``argv`` (paths inside the root) run in ``root``, with each of ``directories`` at its own path, and each
    directory of ``elsewhere`` at the path inside the root that maps to it; in the first of ``directories``."""
    pairs = [(str(Path(directory).resolve()),) * 2 for directory in directories]
    if not pairs:
        raise ValueError("command needs at least one directory: the one the command runs in")
    pairs += [(str(Path(directory).resolve()), inside) for inside, directory in (elsewhere or {}).items()]
    bound = [path for pair in pairs for path in pair]
    return [*PRIVATE_MOUNTS, "/bin/sh", "-c", IN_ROOT, "sh", str(root), *bound, "--", *argv]


def user_ids(root: Path, name: str = "rabbitmq") -> tuple[int, int]:
    """(uid, gid) of user ``name`` in the root (its package created it: not the machine's ids)."""
    for line in (root / "etc" / "passwd").read_text().splitlines():
        fields = line.split(":")
        if fields[0] == name:
            return int(fields[2]), int(fields[3])
    raise RootError(f"{root}: no user {name!r} in its /etc/passwd")


def build(root: Path = DEFAULT_ROOT, suites: Sequence[str] = SUITES) -> str:
    """Install rabbitmq-server from the first of Debian ``suites`` that gives release ``RELEASE`` into ``root``
    (replacing what is there); its version.

    Built next to ``root`` and renamed into place once checked, so an interrupted build leaves no half root.
    The next suite is tried when one fails: a suite under development can be briefly uninstallable.
    """
    if shutil.which("mmdebstrap") is None:
        raise RootError("mmdebstrap is not installed: apt-get install mmdebstrap (or `make sysdeps`)")
    if os.geteuid() != 0:
        raise RootError("building the root installs Debian packages into it: run as root (or with sudo)")
    root = Path(root).resolve()
    partial = root.with_name(root.name + ".partial")
    failures = []
    for suite in suites:
        print(f"==> installing Debian {suite}'s rabbitmq-server into {root} (about 30 s)", flush=True)
        started = time.monotonic()
        try:
            got = install(partial, suite)
        except RootError as error:
            print(f"    {suite}: {str(error).splitlines()[0]}", flush=True)
            failures.append(f"{suite}: {error}")
            continue
        shutil.rmtree(root, ignore_errors=True)
        partial.rename(root)
        print(f"    RabbitMQ {got} in {root}, in {time.monotonic() - started:.0f} s", flush=True)
        return got
    raise RootError("no suite gave a usable root:\n" + "\n".join(failures))


def install(target: Path, suite: str) -> str:
    """A root with Debian ``suite``'s rabbitmq-server in ``target`` (made afresh; removed if it fails); its
    version, checked."""
    shutil.rmtree(target, ignore_errors=True)
    target.parent.mkdir(parents=True, exist_ok=True)
    arguments = [
        "mmdebstrap",
        "--quiet",
        "--variant=essential",
        # ca-certificates, as the official image has: 4.x's HTTP client (the Consul peer discovery plugin's)
        # loads the system's CA certificates even for plain http, and the node fails to boot without them.
        "--include=rabbitmq-server,ca-certificates",
        '--aptopt=Acquire::Retries "3"',
        # A mirror may serve a snapshot whose Release file has expired: its signature is still checked.
        '--aptopt=Acquire::Check-Valid-Until "false"',
        suite,
        str(target),
    ]
    result = subprocess.run(arguments, capture_output=True, text=True)
    try:
        if result.returncode != 0:
            output = "\n".join(f"{result.stdout}{result.stderr}".splitlines()[-20:])
            raise RootError(f"mmdebstrap failed ({result.returncode}):\n{output}")
        # The root has no /etc/hosts of its own (a command run there sees the machine's: IN_ROOT); this one
        # serves chroot by hand, where Erlang's distribution still resolves localhost.
        (target / "etc" / "hosts").write_text("127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n")
        return version(target)
    except RootError:
        shutil.rmtree(target, ignore_errors=True)
        raise


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m devtools.rabbitmq_root", description=__doc__.split("\n\n")[0])
    parser.add_argument("action", choices=("build", "version"), help="build the root, or print its server's version")
    parser.add_argument("--root", type=Path, default=DEFAULT_ROOT, help="where the root is (build/rabbitmq-root)")
    parser.add_argument(
        "--suite", action="append", help=f"a Debian suite to install from, in order (default: {', '.join(SUITES)})"
    )
    args = parser.parse_args(argv)
    try:
        print(build(args.root, args.suite or SUITES) if args.action == "build" else version(args.root.resolve()))
    except RootError as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
