"""The liveness health check of apps.send and apps.receive, for the apps and the task definitions.

A process that is still there is not necessarily working: its event loop may
be blocked in a callback, or its connection to the broker may have gone
silent. So each app refreshes a heartbeat file (``HEARTBEAT_FILE``, under the
writable ``/tmp`` of the read-only container) every ``REFRESH_SECONDS`` from
its I/O loop, and only while that loop makes progress:

- connected: the broker was heard from lately (any frame: deliveries,
  confirms, heartbeats, or the answer to a cheap request the app sends when
  the connection has been quiet for ``REFRESH_SECONDS``, so an idle consumer
  on an empty queue stays healthy);
- connected while the broker blocks publishing (a memory or disk alarm),
  connecting, or waiting to reconnect: waiting for the broker is not being
  stuck. It is bounded: the app exits by itself once it has had no working
  connection for RABBITMQ_RETRY_SECONDS.

The file's modification time is when that progress was last seen. The check
(``python -m apps.common.liveness``, standard library only) exits 0 while it
is at most ``MAX_AGE_SECONDS`` old, 1 when it is older or missing (the reason
on stderr), 2 for bad arguments. A loop stuck for good is then reported
unhealthy after at most ``MAX_AGE_SECONDS`` plus ``RETRIES`` checks
``INTERVAL_SECONDS`` apart, and ECS replaces the task.

``HEALTH_CHECK`` is the container health check for seaport's
``ContainerService`` (``container.health_check``); ``HEALTH_CHECK_COMMAND`` is
the ECS form of the command (``CMD`` first, no shell). The image's Docker
``HEALTHCHECK`` (apps/Dockerfile) runs the same command with the same timings.

Both the app and the check read ``FILE_VARIABLE`` (``LIVENESS_FILE``) when it
is set, so several apps on one machine (tests, local runs) keep separate files.
"""

from __future__ import annotations

HEARTBEAT_FILE = "/tmp/seaport-heartbeat"  # noqa: S108 - the container's private tmpfs
FILE_VARIABLE = "LIVENESS_FILE"  # overrides HEARTBEAT_FILE, for the app and the check alike
REFRESH_SECONDS = 5.0  # how often an app whose loop makes progress refreshes the file
MAX_AGE_SECONDS = 30.0  # the check fails once the file is older than this

MODULE = "apps.common.liveness"
COMMAND = ["python", "-m", MODULE]  # exit 0 healthy, 1 unhealthy (reason on stderr), 2 bad usage
HEALTH_CHECK_COMMAND = ["CMD", *COMMAND]  # an ECS container health check's command

INTERVAL_SECONDS = 10  # between checks
TIMEOUT_SECONDS = 5  # for one check (starting Python takes well under a second)
RETRIES = 3  # consecutive failures before the container is unhealthy
START_PERIOD_SECONDS = 30  # failures while the app starts do not count

# seaport's ContainerService ``health_check`` (keys as components.containers.HealthCheck spells them).
HEALTH_CHECK = {
    "command": HEALTH_CHECK_COMMAND,
    "interval_seconds": INTERVAL_SECONDS,
    "timeout_seconds": TIMEOUT_SECONDS,
    "retries": RETRIES,
    "start_period_seconds": START_PERIOD_SECONDS,
}
