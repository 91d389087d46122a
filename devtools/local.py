"""`make local`: the apps on loopback, until Ctrl-C.

Starts weather, stocks and the portal (which calls them by explicit URL) on
127.0.0.1, and, when ``rabbitmq-server`` is installed and the messaging apps
exist, a throwaway RabbitMQ node with ``apps.send --rate 5`` and
``apps.receive``. Prints the portal's URL, then waits, printing a line with
the messaging counters (from the apps' ``progress`` log records) every few
seconds so you can see messages flow. Ctrl-C (SIGINT) or SIGTERM stops
everything: each app runs in its own process group, gets SIGTERM, and is
SIGKILLed if it has not exited after 10 s. Logs go to ``build/local/<app>.log``.

    python -m devtools.local [--port 8080] [--no-broker] [--progress-every 5] [--log-dir DIR]
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

from devtools.procs import REPO_ROOT, AppProcess, free_port, wait_for_port

HOST = "127.0.0.1"


def port_or_free(wanted: int) -> int:
    """``wanted`` if nothing listens on it, else any free port (0: any free port)."""
    if wanted:
        with socket.socket() as sock:
            try:
                sock.bind((HOST, wanted))
                return wanted
            except OSError:
                print(f"port {wanted} is taken; using another one", flush=True)
    return free_port()


def shown(path: Path) -> Path:
    """``path`` relative to the checkout when it is inside it (shorter to read)."""
    try:
        return path.relative_to(REPO_ROOT)
    except ValueError:
        return path


class ProgressTail:
    """The newest ``progress`` record of an app's JSON log, read as the file grows."""

    def __init__(self, path: Path):
        self.path = path
        self.latest: dict | None = None
        self._offset = 0

    def poll(self) -> bool:
        """Read what was appended since the last call; whether a new progress record came."""
        try:
            with open(self.path, "rb") as log:
                log.seek(self._offset)
                chunk = log.read()
        except FileNotFoundError:
            return False
        complete = chunk[: chunk.rfind(b"\n") + 1]  # a half-written last line is read next time
        self._offset += len(complete)
        updated = False
        for line in complete.splitlines():
            try:
                record = json.loads(line)
            except ValueError:
                continue
            if isinstance(record, dict) and record.get("message") == "progress":
                self.latest, updated = record, True
        return updated


class Local:
    def __init__(self, log_dir: Path, progress_every: float = 5.0):
        self.log_dir = log_dir
        self.progress_every = progress_every
        self.apps: list[tuple[str, AppProcess]] = []
        self.broker = None  # devtools.rabbitmq.RabbitMQNode when one runs
        self.progress: dict[str, ProgressTail] = {}

    def start(self, name: str, module: str, args: list[str], env: dict[str, str], port: int | None = None):
        log_path = self.log_dir / f"{name}.log"
        log_path.write_bytes(b"")
        app = AppProcess(module, args, env=env, log_path=log_path).start()
        self.apps.append((name, app))
        if port:
            wait_for_port(port, timeout=30, process=app.process)
        url = f"http://{HOST}:{port}/" if port else ""
        print(f"  {name:<8} {url:<28} pid {app.process.pid:<7} log {shown(log_path)}", flush=True)
        return app

    def start_web(self, portal_port: int) -> str:
        ports = {"weather": free_port(), "stocks": free_port()}
        # One worker each is plenty on a laptop; the containers default to 2.
        env = {"WEB_CONCURRENCY": "1", "THREADS": "16", "WEATHER_URL": "", "STOCKS_URL": ""}
        for name, port in ports.items():
            self.start(name, f"apps.{name}", ["--host", HOST, "--port", str(port)], env, port)
        portal_env = {
            **env,
            "WEATHER_URL": f"http://{HOST}:{ports['weather']}",
            "STOCKS_URL": f"http://{HOST}:{ports['stocks']}",
        }
        self.start("portal", "apps.portal", ["--host", HOST, "--port", str(portal_port)], portal_env, portal_port)
        return f"http://{HOST}:{portal_port}/"

    def start_messaging(self) -> None:
        missing = [m for m in ("devtools.rabbitmq", "apps.send", "apps.receive") if not _importable(m)]
        if missing:
            print(f"  (no broker: {', '.join(missing)} not in this checkout yet)", flush=True)
            return
        from devtools import rabbitmq  # lazily: it is the messaging work's, and optional here

        if not rabbitmq.available():
            print("  (no broker: rabbitmq-server is not installed; `make sysdeps` installs it)", flush=True)
            return
        print("  starting RabbitMQ (about 10 s)...", flush=True)
        self.broker = rabbitmq.RabbitMQNode()
        self.broker.start().wait_ready()
        print(f"  {'rabbitmq':<8} {self.broker.url:<28} pid {self.broker.process.pid}", flush=True)
        env = {"RABBITMQ_URL": self.broker.url, "METRICS_INTERVAL_SECONDS": str(self.progress_every)}
        for name, args in (("send", ["--rate", "5"]), ("receive", [])):
            app = self.start(name, f"apps.{name}", args, env)
            self.progress[name] = ProgressTail(app.log_path)

    def report_progress(self) -> None:
        """One line with the newest counters of send and receive, when either has new ones."""
        if not self.progress or not any([tail.poll() for tail in self.progress.values()]):
            return
        send = self.progress["send"].latest or {}
        receive = self.progress["receive"].latest or {}
        print(
            f"  messages: send published {send.get('published', '-')} confirmed {send.get('confirmed', '-')}"
            f" | receive processed {receive.get('processed', '-')}",
            flush=True,
        )

    def report_exits(self, reported: set[str]) -> None:
        for name, app in self.apps:
            code = app.process.poll()
            if code is not None and name not in reported:
                reported.add(name)
                print(f"  {name} exited with {code}: see {shown(app.log_path)}", flush=True)

    def stop(self, timeout: float = 10.0) -> None:
        # SIGTERM to all at once (each takes up to a second to wind down), once: a second
        # SIGTERM may mean "hurry" to an app. SIGKILL whatever is left after the timeout.
        for _name, app in self.apps:
            app.signal(signal.SIGTERM)
        deadline = time.monotonic() + timeout
        for name, app in reversed(self.apps):
            try:
                app.wait(max(deadline - time.monotonic(), 0.1))
            except subprocess.TimeoutExpired:
                print(f"  {name} did not stop in {timeout:g} s: killing it", flush=True)
                app.kill()
                app.wait(5)
        if self.broker is not None:
            self.broker.close()


def _importable(module: str) -> bool:
    try:
        return importlib.util.find_spec(module) is not None
    except ModuleNotFoundError:
        return False


def _interrupt(signum, frame):
    raise KeyboardInterrupt  # SIGTERM ends the run like Ctrl-C does


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m devtools.local", description=__doc__.split("\n\n")[0])
    parser.add_argument("--port", type=int, default=8080, help="portal port (default 8080, or a free one)")
    parser.add_argument("--no-broker", action="store_true", help="don't start RabbitMQ, send and receive")
    parser.add_argument(
        "--progress-every",
        type=float,
        default=5.0,
        metavar="SECONDS",
        help="how often send and receive report their counters (default 5)",
    )
    parser.add_argument("--log-dir", type=Path, default=REPO_ROOT / "build" / "local", help="default build/local")
    args = parser.parse_args(argv)
    log_dir = args.log_dir
    log_dir.mkdir(parents=True, exist_ok=True)
    signal.signal(signal.SIGTERM, _interrupt)
    local = Local(log_dir, args.progress_every)
    code = 0
    try:
        print("starting the apps on loopback:", flush=True)
        portal_url = local.start_web(port_or_free(args.port))
        if not args.no_broker:
            local.start_messaging()
        print(f"\nPortal: {portal_url}\nCtrl-C stops everything.", flush=True)
        reported: set[str] = set()
        while True:
            time.sleep(0.5)
            local.report_exits(reported)
            local.report_progress()
    except KeyboardInterrupt:
        print("\nstopping...", flush=True)
    except Exception as error:  # a start failed: say which, then clean up what did start
        print(f"\nlocal run failed: {error}", file=sys.stderr, flush=True)
        code = 1
    finally:
        # A second Ctrl-C must not leave half of the apps running.
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        local.stop()
    print("stopped.", flush=True)
    return code


if __name__ == "__main__":
    sys.exit(main())
