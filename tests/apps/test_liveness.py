"""Liveness of apps.send and apps.receive: the container health check's exit code, against the real apps and broker.

The apps refresh their heartbeat file every 0.2 s here (LIVENESS_REFRESH_SECONDS)
and the check allows 1.5 s (``--max-age``), instead of 5 s and 30 s, so that
"stays healthy for 3 s" spans two limits and "stuck" shows within seconds. The
check runs as ECS runs it: the contract's command, in the app's environment.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import pytest

from apps.common.contract import liveness as contract
from apps.common.liveness import Heartbeat, check
from devtools.procs import REPO_ROOT, child_env
from tests.apps.helpers import log_records, read_ids, wait_until

pytestmark = pytest.mark.rabbitmq

REFRESH = "0.2"
MAX_AGE = 1.5


def live_env(messaging, **extra: str) -> dict[str, str]:
    return messaging.env(LIVENESS_REFRESH_SECONDS=REFRESH, **extra)


def assert_healthy(messaging, apps, seconds: float) -> int:
    """Run every app's check over and over for ``seconds``: each must pass. How many checks ran."""
    deadline = time.monotonic() + seconds
    checks = 0
    while True:
        for app in apps:
            result = messaging.liveness(app, MAX_AGE)
            assert result.returncode == 0, f"{app.module} unhealthy: {result.stderr}\n{app.output()[-2000:]}"
            checks += 1
        if time.monotonic() >= deadline:
            return checks
        time.sleep(0.2)


def wait_health(messaging, app, healthy: bool, timeout: float) -> subprocess.CompletedProcess:
    """The first check result that says ``healthy`` (exit 0) or unhealthy (exit 1), within ``timeout``."""
    wanted = 0 if healthy else 1
    results: list[subprocess.CompletedProcess] = []

    def check():
        results.append(messaging.liveness(app, MAX_AGE))
        return results[-1].returncode == wanted

    wait_until(check, timeout, f"{app.module} to be {'healthy' if healthy else 'unhealthy'}", interval=0.1)
    return results[-1]


def count_logged(app, message: str) -> int:
    return sum(1 for record in log_records(app.output()) if record.get("message") == message)


# -- the check command on its own -------------------------------------------------------------


def run_check(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, *contract.COMMAND[1:], *args],
        env=child_env(env),
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=10,
    )


def test_check_command_exit_codes(tmp_path):
    heartbeat = tmp_path / "heartbeat"
    env = {contract.FILE_VARIABLE: str(heartbeat)}

    missing = run_check(env=env)
    assert missing.returncode == 1 and "no heartbeat file" in missing.stderr

    heartbeat.write_text('{"state": "connected"}')
    assert run_check(env=env).returncode == 0  # fresh
    stale = time.time() - contract.MAX_AGE_SECONDS - 5
    os.utime(heartbeat, (stale, stale))
    old = run_check(env=env)
    assert old.returncode == 1
    assert "no progress for 35" in old.stderr and "last state: connected" in old.stderr
    assert run_check("--max-age", "60", env=env).returncode == 0
    assert run_check(env={**env, "LIVENESS_MAX_AGE_SECONDS": "60"}).returncode == 0
    assert run_check("--file", str(tmp_path / "other"), env=env).returncode == 1

    assert run_check("--max-age", "-1", env=env).returncode == 2
    bad = run_check(env={**env, "LIVENESS_MAX_AGE_SECONDS": "soon"})
    assert bad.returncode == 2 and "LIVENESS_MAX_AGE_SECONDS" in bad.stderr


def test_heartbeat_file_is_dated_when_progress_was_last_seen_and_refreshed_at_most_every_interval(tmp_path):
    path = tmp_path / "alive"
    now = [1000.0]
    heartbeat = Heartbeat(path, refresh_seconds=5, clock=lambda: now[0])
    heartbeat.beat(990.0, "connected")  # the loop runs, but the broker was last heard from 10 s ago
    assert time.time() - path.stat().st_mtime == pytest.approx(10, abs=0.5)
    assert "no progress for 10" in check(path, max_age=9) and check(path, max_age=11) is None

    now[0] = 1003.0
    heartbeat.beat(1003.0, "connected")  # within the refresh interval: not written
    assert time.time() - path.stat().st_mtime == pytest.approx(10, abs=0.5)
    now[0] = 1005.0
    heartbeat.beat(1005.0, "connected")
    assert time.time() - path.stat().st_mtime == pytest.approx(0, abs=0.5)
    assert [p.name for p in tmp_path.iterdir()] == ["alive"]  # written through a temporary file, renamed


def test_an_unwritable_heartbeat_file_stops_the_app_at_start_up(messaging, tmp_path):
    app = messaging.receive(env=live_env(messaging, LIVENESS_FILE=str(tmp_path / "no-such-dir" / "alive")))
    assert messaging.wait_exit(app, 20) == 2
    errors = [r["message"] for r in log_records(app.output()) if r["level"] == "error"]
    assert len(errors) == 1 and errors[0].startswith("LIVENESS_FILE=") and "cannot write" in errors[0], errors


# -- the apps ----------------------------------------------------------------------------------


def test_healthy_while_working_while_the_broker_is_down_and_while_idle(messaging, broker, tmp_path):
    record = tmp_path / "received.txt"
    # No AMQP heartbeats for the receiver: on an empty queue only its own probes show the connection works.
    receiver = messaging.receive("--record", str(record), env=live_env(messaging, RABBITMQ_HEARTBEAT="0"))
    messaging.wait_logged(receiver, "consuming")
    sender = messaging.send("--rate", "300", "--run-id", "live", env=live_env(messaging))
    wait_until(lambda: len(read_ids(record)) >= 300, 30, "300 messages to go through")
    apps = [sender, receiver]
    assert_healthy(messaging, apps, 2)  # working

    broker.kill()
    for app in apps:
        messaging.wait_logged(app, "broker unavailable, retrying", timeout=10)
    assert_healthy(messaging, apps, 3)  # reconnecting with backoff, within RABBITMQ_RETRY_SECONDS (60 here)
    broker.start().wait_ready()
    for app in apps:
        wait_until(lambda app=app: count_logged(app, "connected") >= 2, 30, f"{app.module} to reconnect")
    received = len(read_ids(record))
    wait_until(lambda: len(read_ids(record)) > received + 100, 30, "messages to flow again")
    assert_healthy(messaging, apps, 1)

    assert sender.stop(20) == 0
    wait_until(lambda: messaging.depth() == 0, 30, "the queue to be drained")
    assert_healthy(messaging, [receiver], 3)  # idle on an empty queue is not stuck


def test_a_sender_blocked_by_a_memory_alarm_stays_healthy(messaging, broker):
    sender = messaging.send("--rate", "500", env=live_env(messaging))
    messaging.wait_logged(sender, "connected")
    try:
        broker.ctl("set_vm_memory_high_watermark", "absolute", "10MB")  # far below what the node uses
        messaging.wait_logged(sender, "the broker blocked publishing, pausing", timeout=20)
        assert_healthy(messaging, [sender], 3)  # paused, waiting for the broker: not stuck
    finally:
        broker.ctl("set_vm_memory_high_watermark", "0.4")
    messaging.wait_logged(sender, "the broker unblocked publishing, resuming", timeout=20)
    assert_healthy(messaging, [sender], 0.5)
    assert sender.stop(20) == 0


@pytest.mark.parametrize("app_name", ["send", "receive"])
def test_a_stuck_loop_turns_unhealthy(messaging, app_name):
    """SIGSTOP: the process is there but its loop makes no progress; healthy again once it runs."""
    # Both mostly quiet (a message every 2 s, an empty queue): healthy on the answers to their probes.
    args = ("--rate", "0.5") if app_name == "send" else ()
    app = messaging.start(app_name, *args, env=live_env(messaging))
    messaging.wait_logged(app, "connected")
    assert_healthy(messaging, [app], 2 * MAX_AGE)
    stopped_at = time.monotonic()
    app.signal(signal.SIGSTOP)
    try:
        result = wait_health(messaging, app, healthy=False, timeout=MAX_AGE + 5)
        # Not before the limit: the file is dated when progress was last seen, a refresh or two before the stop.
        assert time.monotonic() - stopped_at >= MAX_AGE - 3 * float(REFRESH)
        assert "no progress for" in result.stderr
    finally:
        app.signal(signal.SIGCONT)
    wait_health(messaging, app, healthy=True, timeout=5)
    assert app.stop(20) == 0


def test_a_connection_whose_broker_went_silent_turns_unhealthy(messaging, broker):
    """The broker frozen (SIGSTOP): the apps' loops run, but nothing comes back; healthy again once it answers."""
    receiver = messaging.receive(env=live_env(messaging))
    sender = messaging.send("--rate", "100", env=live_env(messaging))
    apps = [receiver, sender]
    for app in apps:
        messaging.wait_logged(app, "connected")
        wait_health(messaging, app, healthy=True, timeout=5)
    broker.freeze()
    try:
        for app in apps:
            result = wait_health(messaging, app, healthy=False, timeout=MAX_AGE + 5)
            assert "no progress for" in result.stderr
        assert all(app.process.poll() is None for app in apps)  # alive, and unhealthy
    finally:
        broker.thaw()
    for app in apps:
        wait_health(messaging, app, healthy=True, timeout=15)
