"""A small in-test stand-in for the ECS task metadata endpoint v4.

ECS gives every container ``ECS_CONTAINER_METADATA_URI_V4`` (e.g.
``http://169.254.170.2/v4/<container id>``); ``GET <uri>/task`` answers the
task's metadata and ``GET <uri>`` the container's own. The JSON shapes follow
https://docs.aws.amazon.com/AmazonECS/latest/developerguide/task-metadata-endpoint-v4.html
(EC2 launch type, bridge network mode): each container has ``Name``,
``DockerId``, ``KnownStatus`` and, once it has started, ``Ports`` with an
IPv4 and an IPv6 entry for every published port.

``set_container(name, ports=...)`` adds or changes a container while the
test runs (``ports=None``: not started yet, no ``Ports`` key); ``failing =
True`` makes it answer 500.
"""

from __future__ import annotations

import json
import threading
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


def port_entries(mappings: dict[int, int], protocol: str = "tcp") -> list[dict]:
    """``Ports`` for {container port: host port}, as bridge mode lists them (IPv4 then IPv6)."""
    entries = []
    for container_port, host_port in mappings.items():
        for host_ip in ("0.0.0.0", "::"):
            entries.append(
                {"ContainerPort": container_port, "Protocol": protocol, "HostPort": host_port, "HostIp": host_ip}
            )
    return entries


class FakeEcsMetadata:
    """A task with containers, served on 127.0.0.1 like the agent's metadata endpoint."""

    def __init__(self, cluster: str = "seaport-dev", family: str = "portal"):
        self.task_id = uuid.uuid4().hex
        self.cluster = cluster
        self.family = family
        self.containers: dict[str, dict] = {}
        self.requests_seen: list[str] = []
        self.failing = False
        self._lock = threading.Lock()
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self._server.daemon_threads = True
        threading.Thread(target=self._server.serve_forever, args=(0.05,), daemon=True).start()

    @property
    def task_arn(self) -> str:
        return f"arn:aws:ecs:us-east-1:111122223333:task/{self.cluster}/{self.task_id}"

    def uri(self, container: str = "registrar") -> str:
        """What ECS would put in the container's ECS_CONTAINER_METADATA_URI_V4."""
        return f"http://127.0.0.1:{self._server.server_address[1]}/v4/{container}-{self.task_id[:8]}"

    def set_container(
        self, name: str, ports: dict[int, int] | None = None, status: str = "RUNNING", protocol: str = "tcp"
    ) -> None:
        """Add or update a container; ``ports`` {container port: host port}, None before it starts."""
        docker_id = uuid.uuid5(uuid.NAMESPACE_DNS, name + self.task_id).hex * 2
        container = {
            "DockerId": docker_id,
            "Name": name,
            "DockerName": f"ecs-{self.family}-1-{name}-{docker_id[:20]}",
            "Image": f"111122223333.dkr.ecr.us-east-1.amazonaws.com/{name}@sha256:{'0' * 64}",
            "Labels": {
                "com.amazonaws.ecs.cluster": self.cluster,
                "com.amazonaws.ecs.container-name": name,
                "com.amazonaws.ecs.task-arn": self.task_arn,
            },
            "DesiredStatus": "RUNNING",
            "KnownStatus": status,
            "Limits": {"CPU": 128, "Memory": 256},
            "Type": "NORMAL",
            "Networks": [{"NetworkMode": "bridge", "IPv4Addresses": ["172.17.0.2"]}],
        }
        if ports is not None:
            container["Ports"] = port_entries(ports, protocol)
        with self._lock:
            self.containers[name] = container

    def task(self) -> dict:
        with self._lock:
            containers = [dict(c) for c in self.containers.values()]
        return {
            "Cluster": self.cluster,
            "TaskARN": self.task_arn,
            "Family": self.family,
            "Revision": "1",
            "DesiredStatus": "RUNNING",
            "KnownStatus": "RUNNING",
            "Containers": containers,
            "LaunchType": "EC2",
            "AvailabilityZone": "us-east-1a",
        }

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()

    def _handler(self):
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):  # keep test output quiet
                pass

            def do_GET(self):
                fake.requests_seen.append(self.path)
                prefix, _, rest = self.path.partition("/v4/")
                container_path = rest.split("/", 1)
                if fake.failing or prefix:
                    code, body = (500, {"error": "failing"}) if fake.failing else (404, {"error": "not found"})
                elif len(container_path) == 2 and container_path[1] == "task":
                    code, body = 200, fake.task()
                elif len(container_path) == 1:
                    name = container_path[0].rsplit("-", 1)[0]
                    code, body = 200, fake.containers.get(name, {})
                else:
                    code, body = 404, {"error": "not found"}
                data = json.dumps(body).encode()
                self.send_response(code)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

        return Handler
