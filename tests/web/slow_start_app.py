"""An HTTP app on apps.common.server whose new workers stall for ``SLOW_START_SECONDS`` between their fork and
their own signal handlers, so a test can stop it while a worker starts (tests/web/test_portal_server.py).

``python -m tests.web.slow_start_app --port P --worker-class gevent|gthread``; it prints "worker forked" from
each new worker as the stall begins.
"""

from __future__ import annotations

import os
import sys
import time

from apps.common import server

if __name__ == "__main__":
    server.patch_for_gevent("gthread")
    keep_queue = server._keep_master_signal_queue

    def stalling_post_fork(arbiter, worker) -> None:
        keep_queue(arbiter, worker)
        print("worker forked", flush=True)
        time.sleep(float(os.environ["SLOW_START_SECONDS"]))

    server._keep_master_signal_queue = stalling_post_fork

    def hello(environ, start_response):
        start_response("200 OK", [("Content-Type", "text/plain")])
        return [b"ok\n"]

    sys.exit(server.run("slow_start", __doc__, lambda _args: lambda: hello))
