"""A small in-test stand-in for the Consul agent HTTP API.

Consul can't be installed on the test machines, so the apps' discovery and
registration code is tested against this server, which answers with the JSON
shapes documented by HashiCorp:

- GET  /v1/health/service/<name>?passing=true
  https://developer.hashicorp.com/consul/api-docs/health#list-service-instances-for-service
- PUT  /v1/agent/service/register
  https://developer.hashicorp.com/consul/api-docs/agent/service#register-service
- PUT  /v1/agent/service/deregister/<id>
  https://developer.hashicorp.com/consul/api-docs/agent/service#deregister-service
- GET  /v1/agent/services
  https://developer.hashicorp.com/consul/api-docs/agent/service#list-services

It runs no health checks: a registered service is passing unless the test
marks it critical. ``requests_seen`` records (method, path, token) for
assertions; ``delay`` slows every answer; ``failing = True`` makes every request answer 500; with
``required_token`` set, a request without that ``X-Consul-Token`` answers
403 as an agent with ACLs would; ``stop`` closes it.
"""

from __future__ import annotations

import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, unquote, urlsplit


class FakeConsul:
    """An agent on 127.0.0.1 with an in-memory service catalog."""

    def __init__(self, port: int = 0, node_address: str = "127.0.0.1"):
        self.node_address = node_address
        self.services: dict[str, dict] = {}  # id -> registration body (Consul's field names)
        self.status: dict[str, str] = {}  # id -> passing | warning | critical
        self.requests_seen: list[tuple[str, str, str | None]] = []
        self.failing = False
        self.required_token: str | None = None
        self.delay = 0.0  # seconds every answer waits, to play a slow agent
        self._lock = threading.Lock()
        self._server = ThreadingHTTPServer(("127.0.0.1", port), self._handler())
        self._server.daemon_threads = True
        # A short poll interval so stop() returns at once.
        self._thread = threading.Thread(target=self._server.serve_forever, args=(0.05,), daemon=True)
        self._thread.start()

    @property
    def port(self) -> int:
        return self._server.server_address[1]

    @property
    def address(self) -> str:
        """What to put in CONSUL_HTTP_ADDR."""
        return f"127.0.0.1:{self.port}"

    def add(
        self,
        name: str,
        port: int,
        address: str = "127.0.0.1",
        service_id: str | None = None,
        status: str = "passing",
    ) -> str:
        """Register an instance directly (as another node's agent would)."""
        service_id = service_id or f"{name}-{port}"
        with self._lock:
            self.services[service_id] = {"ID": service_id, "Name": name, "Address": address, "Port": port}
            self.status[service_id] = status
        return service_id

    def set_status(self, service_id: str, status: str) -> None:
        with self._lock:
            self.status[service_id] = status

    def remove(self, service_id: str) -> None:
        with self._lock:
            self.services.pop(service_id, None)
            self.status.pop(service_id, None)

    def clear(self) -> None:
        """Forget every registration, as a restarted agent with no state would."""
        with self._lock:
            self.services.clear()
            self.status.clear()

    def queries(self, name: str) -> int:
        """How many health queries for ``name`` the agent answered or refused."""
        return sum(1 for method, path, _ in list(self.requests_seen) if path == f"/v1/health/service/{name}")

    def registrations(self, name: str | None = None) -> list[dict]:
        with self._lock:
            return [dict(s) for s in self.services.values() if name is None or s["Name"] == name]

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()

    # -- HTTP ---------------------------------------------------------------

    def _health(self, name: str, passing_only: bool) -> list[dict]:
        entries = []
        with self._lock:
            for service_id, body in self.services.items():
                status = self.status.get(service_id, "passing")
                if body["Name"] != name or (passing_only and status != "passing"):
                    continue
                entries.append(
                    {
                        "Node": {"Node": "fake-node", "Address": self.node_address, "Datacenter": "dc1"},
                        "Service": {
                            "ID": service_id,
                            "Service": body["Name"],
                            "Tags": body.get("Tags") or [],
                            "Address": body.get("Address", ""),
                            "Port": body.get("Port", 0),
                            "Meta": body.get("Meta") or {},
                        },
                        "Checks": [{"CheckID": f"service:{service_id}", "ServiceID": service_id, "Status": status}],
                    }
                )
        return entries

    def _handler(self):
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):  # keep test output quiet
                pass

            def _reply(self, code: int, body=None):
                data = b"" if body is None else json.dumps(body).encode()
                self.send_response(code)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def _route(self, method: str):
                url = urlsplit(self.path)
                path = unquote(url.path)
                fake.requests_seen.append((method, path, self.headers.get("X-Consul-Token")))
                if fake.delay:
                    time.sleep(fake.delay)
                if fake.failing:
                    return self._reply(500, {"error": "fake consul failing"})
                if fake.required_token and self.headers.get("X-Consul-Token") != fake.required_token:
                    return self._reply(403, {"error": "ACL not found"})
                length = int(self.headers.get("Content-Length") or 0)
                body = json.loads(self.rfile.read(length) or b"null") if length else None
                if method == "GET" and path.startswith("/v1/health/service/"):
                    passing = parse_qs(url.query).get("passing", ["false"])[0] in ("", "1", "true")
                    return self._reply(200, fake._health(path.rsplit("/", 1)[1], passing))
                if method == "PUT" and path == "/v1/agent/service/register":
                    if not body or not body.get("Name"):
                        return self._reply(400, {"error": "missing service name"})
                    service_id = body.get("ID") or body["Name"]
                    with fake._lock:
                        fake.services[service_id] = dict(body, ID=service_id)
                        fake.status[service_id] = "passing"
                    return self._reply(200)
                if method == "PUT" and path.startswith("/v1/agent/service/deregister/"):
                    fake.remove(path.rsplit("/", 1)[1])
                    return self._reply(200)
                if method == "GET" and path == "/v1/agent/services":
                    with fake._lock:
                        listing = {
                            sid: {
                                "ID": sid,
                                "Service": b["Name"],
                                "Address": b.get("Address", ""),
                                "Port": b.get("Port", 0),
                                "Tags": b.get("Tags") or [],
                            }
                            for sid, b in fake.services.items()
                        }
                    return self._reply(200, listing)
                return self._reply(404, {"error": f"fake consul: no route {method} {path}"})

            def do_GET(self):
                self._route("GET")

            def do_PUT(self):
                self._route("PUT")

        return Handler
