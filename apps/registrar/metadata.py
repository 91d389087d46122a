"""Where a container of this ECS task is published: the task metadata endpoint v4.

ECS sets ``ECS_CONTAINER_METADATA_URI_V4`` in every container; ``GET
${ECS_CONTAINER_METADATA_URI_V4}/task`` describes the whole task, including
for each container its ``Name`` and, once it has started, its ``Ports``
(``[{"ContainerPort": 80, "Protocol": "tcp", "HostPort": 32768, "HostIp":
"0.0.0.0"}]``; bridge mode lists an IPv6 twin with ``"HostIp": "::"``).
https://docs.aws.amazon.com/AmazonECS/latest/developerguide/task-metadata-endpoint-v4.html
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from threading import Event

import requests


class NotYet(Exception):
    """The mapping is not (yet) in the metadata; the message says what is missing."""


class MetadataError(RuntimeError):
    """The mapping did not appear within the wait, or can never appear (the container stopped)."""


@dataclass(frozen=True)
class Mapping:
    """A container port published on the host."""

    task_arn: str
    container: str
    container_port: int
    protocol: str
    host_port: int

    @property
    def task_id(self) -> str:
        """The last part of the task ARN (``arn:aws:ecs:<region>:<account>:task/<cluster>/<id>``)."""
        return self.task_arn.rsplit("/", 1)[-1] or "task"


def read_task(metadata_uri: str, session: requests.Session, timeout: float = 2.0) -> dict:
    """The task metadata JSON; NotYet when the endpoint can't answer right now."""
    try:
        response = session.get(f"{metadata_uri.rstrip('/')}/task", timeout=timeout)
        response.raise_for_status()
        task = response.json()
    except (requests.RequestException, ValueError) as error:
        raise NotYet(f"task metadata endpoint not answering: {error}") from None
    if not isinstance(task, dict):
        raise NotYet("task metadata is not a JSON object")
    return task


def locate(task: dict, container: str, container_port: int, protocol: str = "tcp") -> Mapping:
    """The host port of ``container``'s ``container_port``; NotYet or MetadataError if absent."""
    containers = [c for c in task.get("Containers") or [] if isinstance(c, dict)]
    found = next((c for c in containers if c.get("Name") == container), None)
    if found is None:
        listed = ", ".join(sorted(str(c.get("Name")) for c in containers)) or "none"
        raise NotYet(f"container {container!r} is not in the task metadata (containers: {listed})")
    if found.get("KnownStatus") == "STOPPED":
        raise MetadataError(f"container {container!r} has stopped")
    ports = [p for p in found.get("Ports") or [] if isinstance(p, dict)]
    matches = [
        p
        for p in ports
        if p.get("ContainerPort") == container_port
        and str(p.get("Protocol") or "tcp").lower() == protocol
        and isinstance(p.get("HostPort"), int)
        and p["HostPort"] > 0
    ]
    if not matches:
        listed = ", ".join(f"{p.get('ContainerPort')}/{p.get('Protocol') or 'tcp'}" for p in ports) or "none yet"
        wanted = f"{container_port}/{protocol}"
        raise NotYet(f"container {container!r} publishes no host port for {wanted} (ports: {listed})")
    # Prefer the IPv4 binding; bridge mode lists the same host port for "::" too.
    best = min(matches, key=lambda p: p.get("HostIp") != "0.0.0.0")  # noqa: S104 - reading, not binding
    return Mapping(str(task.get("TaskARN") or ""), container, container_port, protocol, best["HostPort"])


def wait_for_mapping(
    read: Callable[[], dict],
    container: str,
    container_port: int,
    protocol: str,
    wait_seconds: float,
    stop: Event,
    poll_seconds: float = 1.0,
) -> Mapping | None:
    """Poll until the mapping appears (None if ``stop`` is set first); MetadataError after the wait."""
    deadline = time.monotonic() + wait_seconds
    while True:
        try:
            return locate(read(), container, container_port, protocol)
        except NotYet as error:
            if time.monotonic() >= deadline:
                raise MetadataError(f"{error} after waiting {wait_seconds:g} s") from None
        if stop.wait(min(poll_seconds, max(deadline - time.monotonic(), 0.01))):
            return None
