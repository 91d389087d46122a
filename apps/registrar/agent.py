"""The Consul agent calls the registrar makes, and the registration it sends.

- PUT /v1/agent/service/register
  https://developer.hashicorp.com/consul/api-docs/agent/service#register-service
- GET /v1/agent/services
  https://developer.hashicorp.com/consul/api-docs/agent/service#list-services
- PUT /v1/agent/service/deregister/<id>
  https://developer.hashicorp.com/consul/api-docs/agent/service#deregister-service
"""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import quote

import requests

from apps.registrar.metadata import Mapping


class AgentError(RuntimeError):
    """The agent could not be reached or refused the call."""


@dataclass(frozen=True)
class CheckSpec:
    """How the agent checks the service: ``http`` (GET ``path``) or ``tcp``, or ``none``."""

    kind: str
    path: str = "/health"
    interval: str = "10s"
    timeout: str = "2s"
    deregister_after: str = "1m"


def registration(service: str, mapping: Mapping, check: CheckSpec, tags: list[str], address: str | None = None) -> dict:
    """The service definition for ``PUT /v1/agent/service/register`` (Consul's field names).

    Without ``address`` Consul uses the agent's node address (the instance's
    private IP): no IP is configured anywhere. The check runs in the agent, on
    the host network, so it reaches the published host port on 127.0.0.1.
    """
    service_id = f"{service}-{mapping.task_id}-{mapping.host_port}"
    body: dict = {
        "ID": service_id,
        "Name": service,
        "Port": mapping.host_port,
        "Tags": tags,
        "Meta": {"ecs_task_id": mapping.task_id[:512], "ecs_container": mapping.container[:512]},
    }
    if address:
        body["Address"] = address
    target = f"{address or '127.0.0.1'}:{mapping.host_port}"
    common = {
        "Interval": check.interval,
        "Timeout": check.timeout,
        # A task that dies without deregistering (SIGKILL, instance loss) is removed by Consul.
        "DeregisterCriticalServiceAfter": check.deregister_after,
    }
    if check.kind == "http":
        body["Check"] = {
            "Name": f"{service} HTTP {check.path}",
            "HTTP": f"http://{target}{check.path}",
            **common,
        }
    elif check.kind == "tcp":
        body["Check"] = {"Name": f"{service} TCP", "TCP": target, **common}
    return body


class Agent:
    """The local Consul agent's service endpoints."""

    def __init__(self, base_url: str, session: requests.Session, timeout: float = 5.0):
        self.base_url = base_url
        self.session = session
        self.timeout = timeout

    def register(self, body: dict) -> None:
        # replace-existing-checks: a re-registration replaces the check instead of adding one.
        self._call("PUT", "/v1/agent/service/register", params={"replace-existing-checks": "true"}, json=body)

    def registered_ids(self) -> set[str]:
        return set(self._call("GET", "/v1/agent/services").json() or {})

    def deregister(self, service_id: str) -> None:
        self._call("PUT", f"/v1/agent/service/deregister/{quote(service_id, safe='')}")

    def _call(self, method: str, path: str, **kwargs) -> requests.Response:
        try:
            response = self.session.request(method, self.base_url + path, timeout=self.timeout, **kwargs)
        except requests.RequestException as error:
            raise AgentError(f"Consul agent at {self.base_url} not reachable: {error}") from None
        if response.status_code != 200:
            raise AgentError(
                f"Consul agent at {self.base_url} answered HTTP {response.status_code} to {method} {path}: "
                f"{response.text.strip()[:200]}"
            )
        return response
