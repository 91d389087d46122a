"""The liveness heartbeat of apps.send / apps.receive, and the health check that reads it.

``python -m apps.common.liveness [--file PATH] [--max-age SECONDS]`` exits 0
when the heartbeat file was refreshed at most ``--max-age`` seconds ago
(``LIVENESS_MAX_AGE_SECONDS``, default 30), 1 when it is older or missing
(why on stderr), 2 for bad arguments. The file is ``--file``, else
``LIVENESS_FILE``, else ``/tmp/seaport-heartbeat``. What refreshes it, and
when, is described in apps.common.contract.liveness, with the timings the
task definitions use. Standard library only, so the check starts fast.

``Heartbeat`` is the writing side: the apps call ``beat(progress_at, state)``
from their I/O loop, and it rewrites the file at most every
``refresh_seconds`` with its modification time set to ``progress_at`` (when
progress was last seen), so a loop that runs but gets nowhere does not look
alive. ``LIVENESS_REFRESH_SECONDS`` (default 5) shortens the refresh for
tests.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import logging
import os
import sys
import time
from pathlib import Path

from apps.common.config import ConfigError, env_float, env_str
from apps.common.contract import liveness as contract

MAX_AGE_VARIABLE = "LIVENESS_MAX_AGE_SECONDS"
REFRESH_VARIABLE = "LIVENESS_REFRESH_SECONDS"

log = logging.getLogger(__name__)


def heartbeat_path() -> Path:
    """The heartbeat file: LIVENESS_FILE, else the contract's default."""
    return Path(env_str(contract.FILE_VARIABLE, contract.HEARTBEAT_FILE))


class Heartbeat:
    """Rewrites the heartbeat file at most every ``refresh_seconds``, dated when progress was last seen.

    Args:
        path: the file (its folder must exist and be writable).
        refresh_seconds: least time between two rewrites.
        clock: the monotonic clock ``progress_at`` is measured on.
    """

    def __init__(self, path: Path, refresh_seconds: float = contract.REFRESH_SECONDS, clock=time.monotonic):
        self.path = Path(path)
        self.refresh_seconds = refresh_seconds
        self._clock = clock
        self._due = 0.0
        self._failing = False

    @classmethod
    def from_env(cls) -> Heartbeat:
        """From LIVENESS_FILE and LIVENESS_REFRESH_SECONDS; writes the file once, so a bad path fails at start-up."""
        heartbeat = cls(
            heartbeat_path(),
            env_float(REFRESH_VARIABLE, contract.REFRESH_SECONDS, minimum=0.05, maximum=contract.MAX_AGE_SECONDS),
        )
        try:
            heartbeat.write(heartbeat._clock(), "starting")
        except OSError as error:
            raise ConfigError(
                f"{contract.FILE_VARIABLE}={str(heartbeat.path)!r}: cannot write the liveness heartbeat file "
                f"({error.strerror or error}); the health check reads it, so it must be in a writable folder "
                f"(default {contract.HEARTBEAT_FILE})"
            ) from None
        return heartbeat

    def due(self) -> bool:
        """Whether a refresh is due (cheap: called on every tick of the loop)."""
        return self._clock() >= self._due

    def beat(self, progress_at: float, state: str) -> None:
        """Record that the app last made progress at ``progress_at`` (its monotonic clock); at most every refresh."""
        now = self._clock()
        if now < self._due:
            return
        self._due = now + self.refresh_seconds
        try:
            self.write(progress_at, state)
        except OSError as error:
            if not self._failing:  # once per episode: the health check will say the rest
                self._failing = True
                log.warning("cannot refresh the liveness heartbeat file %s: %s", self.path, error)
            return
        self._failing = False

    def write(self, progress_at: float, state: str) -> None:
        """Replace the file (atomically) with one dated ``progress_at``; OSError when that fails."""
        wall = time.time() - max(0.0, self._clock() - progress_at)
        temporary = self.path.with_name(f".{self.path.name}.{os.getpid()}.tmp")
        try:
            temporary.write_text(json.dumps({"pid": os.getpid(), "state": state, "progress_at": round(wall, 3)}))
            os.utime(temporary, (wall, wall))
            os.replace(temporary, self.path)
        except OSError:
            temporary.unlink(missing_ok=True)
            raise


# -- the check ---------------------------------------------------------------------------


def check(path: Path, max_age: float, now: float | None = None) -> str | None:
    """None when ``path`` was refreshed at most ``max_age`` seconds ago, else why not."""
    try:
        modified = path.stat().st_mtime
    except FileNotFoundError:
        return f"no heartbeat file {path} (the app has not started, or writes it elsewhere: {contract.FILE_VARIABLE})"
    except OSError as error:
        return f"cannot read {path}: {error.strerror or error}"
    age = (time.time() if now is None else now) - modified
    if age <= max_age:
        return None
    state = ""
    with contextlib.suppress(OSError, ValueError, AttributeError):  # only for the message
        state = json.loads(path.read_text()).get("state", "")
    return f"no progress for {age:.1f} s (limit {max_age:g} s)" + (f"; last state: {state}" if state else "")


def positive_seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number of seconds") from None
    if not value > 0:
        raise argparse.ArgumentTypeError(f"{text} must be > 0")
    return value


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog=f"python -m {contract.MODULE}",
        description="Exit 0 when the app's heartbeat file is fresh, 1 when it is stale or missing.",
    )
    parser.add_argument(
        "--file", type=Path, help=f"the heartbeat file ({contract.FILE_VARIABLE}, default {contract.HEARTBEAT_FILE})"
    )
    parser.add_argument(
        "--max-age",
        type=positive_seconds,
        metavar="SECONDS",
        help=f"oldest acceptable heartbeat ({MAX_AGE_VARIABLE}, default {contract.MAX_AGE_SECONDS:g})",
    )
    args = parser.parse_args(argv)
    try:
        max_age = args.max_age or env_float(MAX_AGE_VARIABLE, contract.MAX_AGE_SECONDS, minimum=0.001)
    except ConfigError as error:
        print(f"liveness: {error}", file=sys.stderr)
        return 2
    path = args.file or heartbeat_path()
    reason = check(path, max_age)
    if reason:
        print(f"liveness: unhealthy: {reason}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
