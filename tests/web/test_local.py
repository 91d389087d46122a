"""`make local` (devtools/local.py): starts the apps, prints the portal URL, messages flow, Ctrl-C stops every child."""

from __future__ import annotations

import os
import re
import signal
import time

import pytest
import requests

from devtools.procs import AppProcess, free_port

# What `make local` prints while messages flow (see devtools.local.Local.report_progress).
FLOW_LINE = re.compile(r"messages: send published (\d+) confirmed (\d+) \| receive processed (\d+)")


def run_local(tmp_path, *args) -> tuple[AppProcess, str]:
    # AppProcess passes an allow-listed environment: no developer setting reaches the apps.
    runner = AppProcess(
        "devtools.local",
        ["--port", str(free_port()), "--log-dir", str(tmp_path / "logs"), *args],
        log_path=tmp_path / "local.out",
    ).start()
    deadline = time.monotonic() + 60
    while not (match := re.search(r"^Portal: (\S+)$", runner.output(), re.MULTILINE)):
        if runner.process.poll() is not None or time.monotonic() > deadline:
            stop_everything(runner)
            pytest.fail(f"devtools.local printed no portal URL:\n{runner.output()}")
        time.sleep(0.1)
    return runner, match.group(1)


def stop_everything(runner: AppProcess) -> None:
    runner.signal(signal.SIGINT)
    try:
        runner.wait(30)
    finally:
        runner.kill()


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
def test_make_local_with_the_broker_shows_messages_flowing(tmp_path):
    from devtools import rabbitmq

    assert rabbitmq.available(), "rabbitmq-server is not installed (make sysdeps)"
    runner, url = run_local(tmp_path, "--progress-every", "1")
    try:
        assert requests.get(url, timeout=5).status_code == 200
        # send publishes 5 messages/s and receive consumes them: the counters printed
        # on the console must show messages received, and more of them as time passes.
        deadline = time.monotonic() + 45
        while True:
            processed = [int(m.group(3)) for m in FLOW_LINE.finditer(runner.output())]
            if len(processed) >= 2 and processed[0] < processed[-1] and processed[-1] >= 5:
                break
            if runner.process.poll() is not None or time.monotonic() > deadline:
                pytest.fail(f"no messages seen flowing through send and receive:\n{runner.output()}")
            time.sleep(0.2)
        published, confirmed, _processed = map(int, FLOW_LINE.findall(runner.output())[-1])
        assert published >= confirmed > 0
        assert "exited with" not in runner.output(), runner.output()
    except BaseException:
        stop_everything(runner)  # SIGINT: the runner stops its children (a SIGKILL would orphan them)
        raise
    output = interrupt_and_check_children_gone(runner)
    assert output.count(" pid ") == 6
