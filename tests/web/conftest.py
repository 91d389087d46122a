"""Start the web apps as real processes on loopback for the tests in this folder.

Every child process here gets ``devtools.procs.child_env``: an allow-list of
the test run's environment (PATH, HOME, locale, temp dir) plus the values a
test passes, so a developer's ``CONSUL_*``, ``WEATHER_URL`` or ``AWS_*`` can't
change what an app under test does. ``AppProcess`` applies it to ``env``.
"""

from __future__ import annotations

import contextlib
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import pytest
import requests

from devtools.procs import REPO_ROOT, AppProcess, child_env, free_port, wait_for_port

# Settings a developer's shell might have that would change what the apps do. child_env already leaves
# them out; kept for tests/web/test_local.py, which still passes it.
CLEAN_ENV = {
    name: ""
    for name in (
        "WEATHER_URL",
        "STOCKS_URL",
        "CONSUL_HTTP_ADDR",
        "CONSUL_HTTP_TOKEN",
        "CONSUL_HTTP_TOKEN_FILE",
        "PORTAL_SYMBOLS",
        "PORTAL_CITIES",
        "DELAY_MS",
        "TEMP_SCALE",
        "WEB_CONCURRENCY",
        "THREADS",
        "HOST",
        "PORT",
        "ECS_CONTAINER_METADATA_URI_V4",
        "HTTP_PROXY",
        "http_proxy",
    )
}


@dataclass
class App:
    process: AppProcess
    port: int

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def stop(self) -> int:
        return self.process.stop()


def start_app(module: str, log_dir: Path, args=(), env=None, port: int | None = None) -> App:
    """``python -m <module> --host 127.0.0.1 --port P``, returned once /health answers."""
    port = port or free_port()
    name = module.rsplit(".", 1)[-1]
    process = AppProcess(
        module,
        ["--host", "127.0.0.1", "--port", str(port), *args],
        env={"WEB_CONCURRENCY": "1", "THREADS": "16", **(env or {})},  # AppProcess: child_env(env)
        log_path=log_dir / f"{name}-{port}.log",
    ).start()
    try:
        wait_for_port(port, timeout=20, process=process.process)
        wait_healthy(f"http://127.0.0.1:{port}/health")
    except Exception as error:
        process.kill()
        raise RuntimeError(f"{module} did not start: {error}\n{process.output()[-3000:]}") from None
    return App(process, port)


def run_python(*args: str, env=None, timeout: float = 30) -> subprocess.CompletedProcess:
    """``python <args>`` run to the end from the repository's root, with ``child_env(env)``; its output as text."""
    return subprocess.run(
        [sys.executable, *args], cwd=REPO_ROOT, env=child_env(env), capture_output=True, text=True, timeout=timeout
    )


def refusal(result: subprocess.CompletedProcess) -> str:
    """The line an app that refused a bad setting wrote: fails unless it exited 2 with that one line on stderr."""
    assert result.returncode == 2, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    return lines[0]


def wait_healthy(url: str, timeout: float = 15.0) -> None:
    deadline = time.monotonic() + timeout
    while True:
        with contextlib.suppress(requests.RequestException):
            if requests.get(url, timeout=1).status_code == 200:
                return
        if time.monotonic() > deadline:
            raise TimeoutError(f"{url} not healthy after {timeout:.0f}s")
        time.sleep(0.05)


class Apps:
    """Starts apps for one test (or module) and stops them all afterwards."""

    def __init__(self, log_dir: Path):
        self.log_dir = log_dir
        self.started: list[App] = []

    def start(self, module: str, args=(), env=None, port: int | None = None) -> App:
        app = start_app(module, self.log_dir, args, env, port)
        self.started.append(app)
        return app

    def stop_all(self) -> None:
        # SIGTERM to all at once: each gunicorn takes up to a second to wind down.
        for app in self.started:
            app.process.signal(signal.SIGTERM)
        for app in reversed(self.started):
            app.stop()


@pytest.fixture
def apps(tmp_path):
    started = Apps(tmp_path)
    yield started
    started.stop_all()


@dataclass
class Stack:
    weather: App
    stocks: App
    portal: App


@pytest.fixture(scope="module")
def stack(tmp_path_factory):
    """weather, stocks and a portal that calls them by explicit URL, shared by a module's tests."""
    started = Apps(tmp_path_factory.mktemp("stack"))
    try:
        weather = started.start("apps.weather")
        stocks = started.start("apps.stocks")
        portal = started.start("apps.portal", env={"WEATHER_URL": weather.url, "STOCKS_URL": stocks.url})
        yield Stack(weather, stocks, portal)
    finally:
        started.stop_all()
