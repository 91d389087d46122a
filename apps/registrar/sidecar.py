"""The registrar's life: find the host port, register, keep the registration, deregister on stop.

- Waits (bounded) for the app container's port to appear in the task
  metadata, then registers it with the local agent.
- Every ``verify_seconds`` it checks the agent still has the registration
  (an agent restarted without its data dir forgets it) and registers again
  if not; it also re-reads the metadata, and moves the registration if the
  host port changed (a container restarted by an ECS restart policy gets a
  new dynamic port).
- While the agent can't be reached it keeps trying, backing off up to
  ``verify_seconds``, logging once per outage rather than once per try.
- When ``stop`` is set (SIGTERM) it deregisters and returns.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass

from apps.registrar import metadata
from apps.registrar.agent import Agent, AgentError, CheckSpec, registration

log = logging.getLogger("registrar")


@dataclass(frozen=True)
class Target:
    """What to register: which container port, under which service name, checked how."""

    service: str
    container: str
    container_port: int
    protocol: str
    check: CheckSpec
    tags: list[str]
    address: str | None = None


class Sidecar:
    def __init__(
        self,
        target: Target,
        agent: Agent,
        read_task: Callable[[], dict],
        stop: threading.Event,
        verify_seconds: float = 10.0,
    ):
        self.target = target
        self.agent = agent
        self.read_task = read_task
        self.stop = stop
        self.verify_seconds = verify_seconds
        self.body: dict | None = None  # what is (or should be) registered
        self.attempted = False  # a register call was sent, so deregister on the way out

    def run(self, wait_seconds: float) -> None:
        """Register and keep the registration until ``stop``; MetadataError if the port never appears."""
        t = self.target
        mapping = metadata.wait_for_mapping(
            self.read_task, t.container, t.container_port, t.protocol, wait_seconds, self.stop
        )
        if mapping is None:
            return  # stopped while waiting
        self.body = self._body(mapping)
        log.info(
            "found host port",
            extra={
                "fields": {
                    "container": t.container,
                    "container_port": t.container_port,
                    "host_port": mapping.host_port,
                    "task": mapping.task_id,
                }
            },
        )
        registered, outage, delay = False, False, 1.0
        while not self.stop.is_set():
            try:
                self._follow_port_change()
                if not registered or self.body["ID"] not in self.agent.registered_ids():
                    if registered:
                        log.warning("registration lost (agent restarted?), registering again")
                    self.attempted = True
                    self.agent.register(self.body)
                    registered = True
                    log.info("registered", extra={"fields": self._summary()})
                if outage:
                    log.info("consul agent reachable again")
                outage, delay = False, self.verify_seconds
            except AgentError as error:
                if not outage:
                    log.warning("cannot reach the consul agent, retrying", extra={"fields": {"error": str(error)}})
                outage, delay = True, min(delay * 2, self.verify_seconds) if outage else 1.0
            self.stop.wait(delay)
        self.deregister()

    def deregister(self) -> None:
        if not (self.attempted and self.body):
            return
        try:
            self.agent.deregister(self.body["ID"])
            log.info("deregistered", extra={"fields": {"id": self.body["ID"]}})
        except AgentError as error:
            # Consul removes it after DeregisterCriticalServiceAfter once its check fails.
            log.warning("could not deregister", extra={"fields": {"id": self.body["ID"], "error": str(error)}})

    def _body(self, mapping: metadata.Mapping) -> dict:
        t = self.target
        return registration(t.service, mapping, t.check, t.tags, t.address)

    def _follow_port_change(self) -> None:
        t = self.target
        try:
            mapping = metadata.locate(self.read_task(), t.container, t.container_port, t.protocol)
        except (metadata.NotYet, metadata.MetadataError):
            return  # keep what is registered; the agent's check tells whether it still works
        body = self._body(mapping)
        if body["ID"] != self.body["ID"]:
            log.info("host port changed", extra={"fields": {"old": self.body["ID"], "new": body["ID"]}})
            self.deregister()
            self.body = body
            self.agent.register(body)

    def _summary(self) -> dict:
        check = self.body.get("Check") or {}
        return {
            "id": self.body["ID"],
            "service": self.body["Name"],
            "port": self.body["Port"],
            "check": check.get("HTTP") or check.get("TCP") or "none",
        }
