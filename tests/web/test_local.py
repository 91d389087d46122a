"""`make local` (devtools/local.py): starts the apps, prints the portal URL, Ctrl-C stops every child."""

from __future__ import annotations

import importlib.util
import os
import re
import signal
import time

import pytest
import requests

from devtools.procs import AppProcess, free_port
from tests.web.conftest import CLEAN_ENV


def run_local(tmp_path, *args) -> tuple[AppProcess, str]:
    runner = AppProcess(
        "devtools.local", ["--port", str(free_port()), *args], env=CLEAN_ENV, log_path=tmp_path / "local.out"
    ).start()
    deadline = time.monotonic() + 60
    while not (match := re.search(r"^Portal: (\S+)$", runner.output(), re.MULTILINE)):
        if runner.process.poll() is not None or time.monotonic() > deadline:
            runner.kill()
            pytest.fail(f"devtools.local printed no portal URL:\n{runner.output()}")
        time.sleep(0.1)
    return runner, match.group(1)


def group_alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    return True


def interrupt_and_check_children_gone(runner: AppProcess) -> str:
    children = [int(pid) for pid in re.findall(r" pid (\d+)", runner.output())]
    assert children and all(group_alive(pid) for pid in children)
    runner.signal(signal.SIGINT)  # what Ctrl-C sends to the foreground process group: the runner only
    try:
        assert runner.wait(30) == 0
    finally:
        runner.kill()
    output = runner.output()
    assert output.rstrip().endswith("stopped.")
    # Each app ran in its own process group, and every one of them is gone: masters, workers, broker.
    assert [pid for pid in children if group_alive(pid)] == [], output
    return output


def test_make_local_serves_the_portal_and_ctrl_c_stops_everything(tmp_path):
    runner, url = run_local(tmp_path, "--no-broker")
    page = requests.get(url, timeout=5)
    assert page.status_code == 200
    assert page.text.count('data-state="ok"') >= 2, page.text
    output = interrupt_and_check_children_gone(runner)
    assert output.count(" pid ") == 3  # weather, stocks, portal


@pytest.mark.rabbitmq
def test_make_local_with_the_broker_and_messaging_apps(tmp_path):
    missing = [m for m in ("devtools.rabbitmq", "apps.send", "apps.receive") if importlib.util.find_spec(m) is None]
    if missing:
        pytest.skip(f"the messaging work has not landed yet: {', '.join(missing)}")
    from devtools import rabbitmq

    assert rabbitmq.available(), "rabbitmq-server is not installed (make sysdeps)"
    runner, url = run_local(tmp_path)
    assert requests.get(url, timeout=5).status_code == 200
    time.sleep(2)  # send publishes at 5/s; receive consumes
    output = runner.output()
    assert "rabbitmq" in output and " send " in output and " receive " in output, output
    assert "exited with" not in output, output
    output = interrupt_and_check_children_gone(runner)
    assert output.count(" pid ") == 6
