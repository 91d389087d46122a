"""The registrar writes nothing outside /tmp: its sidecar runs with a read-only root filesystem.

The task definition gives the registrar ``readonlyRootFilesystem`` and only
``/tmp`` as a tmpfs. Without Docker, two emulations of a full run (wait for the
container, register, SIGTERM, deregister, exit 0), with the image's
``PYTHONDONTWRITEBYTECODE=1``:

- under ``tests.support.write_guard``: a Python audit hook ends the process on
  any file opened for writing, created, renamed or deleted outside ``$TMPDIR``
  (by the registrar or any library it loads), with ``HOME`` an empty directory
  that must stay empty;
- the same inside a private mount namespace (``unshare``) where every mount is
  remounted read-only and ``/tmp`` is a fresh tmpfs, as in the task: this also
  catches writes the audit hook can't see (from C code).
"""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from devtools.procs import REPO_ROOT, child_env
from tests.support.fake_ecs_metadata import FakeEcsMetadata
from tests.support.write_guard import EXIT_STATUS

ARGS = ["--service", "portal", "--container", "portal", "--container-port", "8080"]
# Inside the new mount namespace: every mount read-only (except the kernel's /proc, /sys, /dev), /tmp a tmpfs.
READ_ONLY_ROOT = r"""
set -e
for m in $(awk '$5 !~ /\\/ {print $5}' /proc/self/mountinfo | sort -u); do
  case $m in /proc|/proc/*|/sys|/sys/*|/dev|/dev/*) ;; *) mount -o remount,bind,ro "$m" ;; esac
done
mount -t tmpfs -o size=16m,mode=1777 tmpfs /tmp
touch / 2>/dev/null && { echo "the root filesystem is still writable" >&2; exit 99; }
exec "$@"
"""


@pytest.fixture
def ecs():
    fake = FakeEcsMetadata()
    yield fake
    fake.stop()


def guarded(module: str, *args: str) -> list[str]:
    return [sys.executable, "-m", "tests.support.write_guard", module, *args]


def run_registrar(command: list[str], env: dict[str, str], log: Path, ecs, consul) -> tuple[int, str]:
    """Start, wait for the registration, SIGTERM, and return the exit status and output."""
    ecs.set_container("portal", ports={8080: 32768})
    with log.open("wb") as output:
        process = subprocess.Popen(
            command, env=env, cwd=REPO_ROOT, stdout=output, stderr=subprocess.STDOUT, start_new_session=True
        )
        try:
            deadline = time.monotonic() + 15
            while not consul.registrations("portal") and process.poll() is None and time.monotonic() < deadline:
                time.sleep(0.05)
            registered = bool(consul.registrations("portal"))
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)
            code = process.wait(10)
        finally:
            if process.poll() is None:
                process.kill()
                process.wait()
    text = log.read_text(errors="replace")
    assert registered, f"never registered (exit {process.returncode})\n{text[-3000:]}"
    return code, text


def registrar_env(ecs, consul, **more: str) -> dict[str, str]:
    return child_env(
        ECS_CONTAINER_METADATA_URI_V4=ecs.uri(),
        CONSUL_HTTP_ADDR=consul.address,
        REGISTRAR_VERIFY_SECONDS="0.2",
        PYTHONDONTWRITEBYTECODE="1",  # as in the image
        **more,
    )


def test_the_guard_stops_a_write_outside_tmpdir(tmp_path):
    # The guard itself: json.tool writes its output file where it is told to.
    source = tmp_path / "in.json"
    source.write_text("{}")
    allowed, outside = tmp_path / "tmp", tmp_path / "home"
    allowed.mkdir()
    outside.mkdir()
    env = child_env(TMPDIR=str(allowed))
    ok = subprocess.run(guarded("json.tool", str(source), str(allowed / "out.json")), env=env, check=False)
    assert ok.returncode == 0 and (allowed / "out.json").exists()
    stopped = subprocess.run(
        guarded("json.tool", str(source), str(outside / "out.json")),
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    assert stopped.returncode == EXIT_STATUS and "write_guard: open" in stopped.stderr
    assert not (outside / "out.json").exists()


def test_registrar_writes_nothing_outside_tmpdir(tmp_path, ecs, fake_consul):
    home, tmp = tmp_path / "home", tmp_path / "tmp"
    home.mkdir()
    tmp.mkdir()
    env = registrar_env(ecs, fake_consul, HOME=str(home), TMPDIR=str(tmp))
    code, output = run_registrar(guarded("apps.registrar", *ARGS), env, tmp_path / "out.log", ecs, fake_consul)
    assert code == 0, output
    assert '"message": "deregistered"' in output and fake_consul.registrations() == []
    assert list(home.iterdir()) == []


def read_only_namespace() -> list[str]:
    """The command prefix that runs a program with a read-only root and a tmpfs /tmp, or skip."""
    prefix = ["unshare", "--map-root-user", "--mount", "sh", "-c", READ_ONLY_ROOT, "read-only-root"]
    for what, path in (("checkout", REPO_ROOT), ("Python", Path(sys.executable))):
        if path.resolve().is_relative_to("/tmp"):  # the namespace mounts a fresh tmpfs over /tmp
            pytest.skip(f"the {what} is under /tmp, which the namespace hides: the audit-hook test is the check")
    try:
        probe = subprocess.run([*prefix, "true"], env=child_env(), capture_output=True, text=True, timeout=10)
    except FileNotFoundError:
        pytest.skip("no unshare(1) here: the audit-hook test above is the check")
    if probe.returncode != 0:
        pytest.skip(
            f"no private mount namespace here ({probe.stderr.strip()[-200:]}): the audit-hook test is the check"
        )
    return prefix


def test_registrar_runs_with_a_read_only_root_and_a_tmpfs_tmp(tmp_path, ecs, fake_consul):
    prefix = read_only_namespace()
    # HOME as in the image: the user's home directory does not exist (useradd --no-create-home).
    env = registrar_env(ecs, fake_consul, HOME="/nonexistent", TMPDIR="/tmp")
    command = [*prefix, *guarded("apps.registrar", *ARGS)]
    code, output = run_registrar(command, env, tmp_path / "out.log", ecs, fake_consul)
    assert code == 0, output
    assert '"message": "deregistered"' in output and fake_consul.registrations() == []
