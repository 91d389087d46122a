"""One publishing run of benchmarks.messaging, (b) or (c), in a process of its own, so that benchmarks.freezing
can stop and continue it, together with its broker node, while the other run holds the machine.

    python -m benchmarks.publish_leg {b,c} URL QUEUE QUEUE_TYPE COUNT RUN_ID WINDOW {on,off}

(the last argument: whether writes are coalesced, as apps.send runs). Prints ``ready`` once imported, starts
when it reads a line on stdin, and prints its result as its last line, in JSON: ``start`` and ``end``
(``time.monotonic()``, the same clock in every process: from the open channel until the broker holds every
message (b), or until the last confirm (c)), ``messages`` (what the broker queued, for (b)) and ``cpu_s``
(this process's CPU seconds from the start signal on, connection included).
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import time

from apps.common.pika_tuning import coalesce_writes
from apps.common.rabbitmq import QUEUE_TYPES, QueueSettings
from benchmarks import messaging
from benchmarks.freezing import READY


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.publish_leg", description=__doc__.split("\n\n")[0])
    parser.add_argument("kind", choices=("b", "c"))
    parser.add_argument("url")
    parser.add_argument("queue")
    parser.add_argument("queue_type", choices=QUEUE_TYPES)
    parser.add_argument("count", type=int)
    parser.add_argument("run_id")
    parser.add_argument("window", type=int)
    parser.add_argument("coalesce_writes", choices=("on", "off"))
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    logging.getLogger("pika").setLevel(logging.CRITICAL)
    coalesce_writes(args.coalesce_writes)
    queue = QueueSettings(args.queue, args.queue_type)
    print(READY, flush=True)
    sys.stdin.readline()
    cpu = time.process_time()
    if args.kind == "b":
        start, end, messages = messaging.fire_and_forget(args.url, queue, args.count)
    else:
        start, end = messaging.timed_send(args.url, queue, args.count, args.run_id, args.window)
        messages = args.count
    result = {"start": start, "end": end, "messages": messages, "cpu_s": time.process_time() - cpu}
    print(json.dumps(result), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
