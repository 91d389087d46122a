"""Consul discovery for tasks: what a task needs to look services up and to register itself.

A container finds its instance's Consul agent by a host name (``consul-agent``)
mapped to the Docker bridge gateway in the task definition, so apps are
configured with ``CONSUL_HTTP_ADDR=consul-agent:8500`` and no IP address appears
in any environment or image. A container becomes discoverable through the
registrar sidecar, which registers its dynamic host port with the local agent
(with a health check) and deregisters it when the task stops.
"""

from typing import Any, Required, TypedDict

from .args import Problem, Problems, with_defaults
from .references import get

# Bridge-mode containers reach the agent on their own host through the docker0 gateway,
# 172.17.0.1 on the ECS-optimized Amazon Linux 2023 AMI.
AGENT_HOSTNAME = "consul-agent"
AGENT_HOST_IP = "172.17.0.1"
AGENT_PORT = 8500
AGENT_ADDRESS = f"{AGENT_HOSTNAME}:{AGENT_PORT}"
AGENT_HOSTS = {AGENT_HOSTNAME: AGENT_HOST_IP}

CONSUL_SERVICE_DEFAULTS: dict[str, Any] = {"check": "http:/health"}


class ConsulService(TypedDict, total=False):
    name: Required[str]
    """Consul service name others look this container up by (e.g. ``weather``). Required."""
    check: str
    """Health check the registrar declares: ``http:<path>`` or ``tcp``. Default ``"http:/health"``."""


def client_settings(discovery: Any) -> tuple[dict[str, Any], dict[str, Any], Any]:
    """(environment, secrets, extra hosts) that let a container look services up through its agent."""
    environment = {"CONSUL_HTTP_ADDR": get(discovery, "agent_address")}
    secrets = {"CONSUL_HTTP_TOKEN": get(discovery, "reader_token_secret_arn")}
    return environment, secrets, get(discovery, "agent_hosts")


def registrar_sidecar(discovery: Any, service: ConsulService, container: str, port: int) -> dict[str, Any]:
    """The sidecar that registers ``container``'s dynamic host port for ``port`` as Consul service
    ``service["name"]``, checked by ``service["check"]``; it leaves the catalog when the task stops."""
    s = with_defaults(service, CONSUL_SERVICE_DEFAULTS)
    return {
        "name": f"{container}-registrar",
        "image": get(discovery, "registrar_image"),
        # A task nobody can find serves no one: if the registrar gives up, ECS replaces the task.
        "essential": True,
        "cpu": 32,
        "memory_mib": 64,
        "environment": {
            "REGISTRAR_SERVICE": s["name"],
            "REGISTRAR_CONTAINER": container,
            "REGISTRAR_CONTAINER_PORT": str(port),
            "REGISTRAR_CHECK": s["check"],
            "CONSUL_HTTP_ADDR": get(discovery, "agent_address"),
        },
        "secrets": {"CONSUL_HTTP_TOKEN": get(discovery, "registrar_token_secret_arn")},
        "extra_hosts": get(discovery, "agent_hosts"),
        "depends_on": {container: "START"},
    }


def problems(service: ConsulService) -> list[Problem]:
    s = with_defaults(service, CONSUL_SERVICE_DEFAULTS)
    found = Problems()
    found.require(s, "name")
    name = s.get("name") or ""
    if name and not all(ch.isalnum() or ch == "-" for ch in name):
        found.check("name", name, "must be letters, digits and - (a DNS label)")
    check = s["check"]
    if not (check == "tcp" or (isinstance(check, str) and check.startswith("http:/"))):
        found.check("check", check, "must be tcp or http:<path>, e.g. http:/health")
    return found
