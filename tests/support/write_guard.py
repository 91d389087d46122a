"""``python -m tests.support.write_guard MODULE [ARGS...]``: run ``python -m MODULE`` that may write only in TMPDIR.

A sidecar that runs with a read-only root filesystem and only ``/tmp`` as a
tmpfs must never create, open for writing, rename or delete a file elsewhere.
This wrapper installs a Python audit hook (PEP 578) before the module is
imported, so every such operation, by the app or any library it loads, is
seen; the first one outside ``$TMPDIR`` prints ``write_guard: ...`` to stderr
and ends the process with exit status 70 at once (an exception could be
swallowed by the code that caused it). Writes to inherited descriptors
(stdout, stderr) are not file opens and stay allowed.
"""

from __future__ import annotations

import os
import runpy
import sys

EXIT_STATUS = 70
WRITE_FLAGS = os.O_WRONLY | os.O_RDWR | os.O_CREAT | os.O_APPEND | os.O_TRUNC
# Events that change the filesystem at their path argument(s) (see the audit events table of the Python docs).
CHANGES = {
    "os.mkdir": 1,
    "os.remove": 1,
    "os.rmdir": 1,
    "os.truncate": 1,
    "os.chmod": 1,
    "os.chown": 1,
    "os.utime": 1,
    "os.rename": 2,
    "os.link": 2,
    "os.symlink": 2,
    "shutil.copyfile": 2,
    "shutil.rmtree": 1,
}
ALLOWED_DEVICES = ("/dev/null",)


def _allowed(path, root: str) -> bool:
    if isinstance(path, int):  # an open descriptor (os.fdopen): not a new file
        return True
    real = os.path.realpath(os.fsdecode(path))
    return real == root or real.startswith(root + os.sep) or real in ALLOWED_DEVICES


def install(root: str) -> None:
    """Exit the process on the first filesystem change outside ``root``."""

    def hook(event: str, args: tuple) -> None:
        if event == "open":
            path, mode, flags = args
            writing = bool(mode and set(str(mode)) & set("wax+")) or bool((flags or 0) & WRITE_FLAGS)
            paths = [path] if writing and path is not None else []
        elif event in CHANGES:
            paths = list(args[: CHANGES[event]])
        else:
            return
        for path in paths:
            if not _allowed(path, root):
                os.write(2, f"write_guard: {event} {path!r} outside TMPDIR ({root})\n".encode(errors="replace"))
                os._exit(EXIT_STATUS)

    sys.addaudithook(hook)


def main() -> None:
    if len(sys.argv) < 2 or not os.environ.get("TMPDIR"):
        sys.exit("usage: TMPDIR=<dir> python -m tests.support.write_guard MODULE [ARGS...]")
    install(os.path.realpath(os.environ["TMPDIR"]))
    module = sys.argv[1]
    sys.argv = [module, *sys.argv[2:]]
    runpy.run_module(module, run_name="__main__", alter_sys=True)


if __name__ == "__main__":
    main()
