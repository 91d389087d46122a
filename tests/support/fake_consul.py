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

and what RabbitMQ's Consul peer discovery plugin calls (rabbitmq-server's
deps/rabbitmq_peer_discovery_consul/src/rabbit_peer_discovery_consul.erl, 3.10
and 4.x), with the fields it sends and reads:

- a registration's ``Check`` with a ``TTL`` (``"30s"``), ``Status`` and
  ``DeregisterCriticalServiceAfter``: the service turns critical when no pass
  came for the TTL, and is removed after being critical that long
  (https://developer.hashicorp.com/consul/api-docs/agent/check#ttl);
- PUT  /v1/agent/check/pass/service:<service id> (empty 200; 404 for an
  unknown check, as Consul 1.11+ answers, which makes the plugin register again)
  https://developer.hashicorp.com/consul/api-docs/agent/check#ttl-check-pass
- PUT  /v1/session/create (``{"Name", "TTL"}`` -> ``{"ID"}``),
  /v1/session/renew/<id>, /v1/session/destroy/<id>: a destroyed or expired
  session releases its locks
  https://developer.hashicorp.com/consul/api-docs/session
- PUT  /v1/kv/<key>?acquire=<session> and ?release=<session> (``true`` or
  ``false``), GET /v1/kv/<key> (``[{"Key", "Session", "ModifyIndex", ...}]``,
  404 when missing) and its blocking form ``?index=N&wait=Ns``: the startup
  lock (``rabbitmq/default/startup_lock``) a node holds while it discovers peers
  https://developer.hashicorp.com/consul/api-docs/kv
- the health listing's ``passing`` flag with or without a value, and ``tag``.

Services registered without a TTL check are not checked: one is passing unless
the test marks it critical. ``requests_seen`` records (method, path, token) for
assertions, ``queries_seen`` (method, path, query string), ``lock_events``
every acquire/release/session end on a key with its result; ``delay`` slows
every answer; ``failing = True`` makes every request answer 500; with
``required_token`` set, a request without that ``X-Consul-Token`` answers
403 as an agent with ACLs would; ``stop`` closes it.
"""

from __future__ import annotations

import base64
import json
import re
import threading
import time
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, unquote, urlsplit


class FakeConsul:
    """An agent on 127.0.0.1 with an in-memory service catalog."""

    def __init__(self, port: int = 0, node_address: str = "127.0.0.1"):
        self.node_address = node_address
        self.services: dict[str, dict] = {}  # id -> registration body (Consul's field names)
        self.status: dict[str, str] = {}  # id -> passing | warning | critical
        self.requests_seen: list[tuple[str, str, str | None]] = []
        self.queries_seen: list[tuple[str, str, str]] = []
        self.checks: dict[str, dict] = {}  # service id -> its TTL check: ttl, deregister_after, passed, critical_since
        self.sessions: dict[str, dict] = {}  # id -> {"Name", "TTL", "renewed": t}
        self.kv: dict[str, dict] = {}  # key -> Value (bytes or None), Session, LockIndex, CreateIndex, ModifyIndex
        self.lock_events: list[tuple[str, str, str, bool]] = []  # (acquire|release|session-ended, key, session, result)
        self.index = 1  # Consul's raft index, for ModifyIndex / X-Consul-Index
        self._changed = threading.Condition()
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
            check = self.checks.get(service_id)
            if check is not None:
                check["passed"] = time.monotonic() if status == "passing" else float("-inf")

    def remove(self, service_id: str) -> None:
        with self._lock:
            self.services.pop(service_id, None)
            self.status.pop(service_id, None)
            self.checks.pop(service_id, None)

    def clear(self) -> None:
        """Forget every registration, as a restarted agent with no state would."""
        with self._lock:
            self.services.clear()
            self.status.clear()
            self.checks.clear()

    def lock_holder(self, key: str) -> str | None:
        """The session holding ``key`` (None: free or missing)."""
        with self._lock:
            self._expire_sessions()
            entry = self.kv.get(key)
            return entry.get("Session") if entry else None

    def _register(self, body: dict) -> None:
        """A service registration, with its TTL check if it has one (caller holds the lock)."""
        service_id = body.get("ID") or body["Name"]
        self.services[service_id] = dict(body, ID=service_id)
        self.index += 1
        self.services[service_id].setdefault("CreateIndex", self.index)
        check = body.get("Check") or {}
        if check.get("TTL"):
            # Consul starts a TTL check critical unless the registration says otherwise.
            status = check.get("Status") or "critical"
            self.checks[service_id] = {
                "ttl": seconds(check["TTL"]),
                "deregister_after": seconds(check["DeregisterCriticalServiceAfter"])
                if check.get("DeregisterCriticalServiceAfter")
                else None,
                "passed": time.monotonic() if status == "passing" else float("-inf"),
                "critical_since": None if status == "passing" else time.monotonic(),
            }
        else:
            self.checks.pop(service_id, None)
        self.status[service_id] = "passing"

    def _expire_checks(self) -> None:
        """TTL checks that got no pass in time turn critical; long-critical ones are deregistered."""
        now = time.monotonic()
        for service_id, check in list(self.checks.items()):
            if now - check["passed"] <= check["ttl"]:
                self.status[service_id] = "passing"
                check["critical_since"] = None
                continue
            self.status[service_id] = "critical"
            if check["critical_since"] is None:
                check["critical_since"] = check["passed"] + check["ttl"] if check["passed"] > 0 else now
            after = check["deregister_after"]
            if after is not None and now - check["critical_since"] > after:
                self.services.pop(service_id, None)
                self.status.pop(service_id, None)
                self.checks.pop(service_id, None)

    def _expire_sessions(self) -> None:
        now = time.monotonic()
        for session_id, session in list(self.sessions.items()):
            # Consul invalidates a session some time after its TTL (up to twice the TTL).
            if now - session["renewed"] > 2 * session["ttl"]:
                self._end_session(session_id)

    def _end_session(self, session_id: str) -> None:
        """Destroy a session and release what it held (behavior "release")."""
        self.sessions.pop(session_id, None)
        for key, entry in self.kv.items():
            if entry.get("Session") == session_id:
                entry.pop("Session")
                self.index += 1
                entry["ModifyIndex"] = self.index
                self.lock_events.append(("session-ended", key, session_id, True))
        with self._changed:
            self._changed.notify_all()

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

    def _health(self, name: str, passing_only: bool, tag: str | None = None) -> list[dict]:
        entries = []
        with self._lock:
            self._expire_checks()
            for service_id, body in self.services.items():
                status = self.status.get(service_id, "passing")
                if body["Name"] != name or (passing_only and status != "passing"):
                    continue
                if tag is not None and tag not in (body.get("Tags") or []):
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
                            "Meta": body.get("Meta") or body.get("meta") or {},
                            "CreateIndex": body.get("CreateIndex", 0),
                            "ModifyIndex": body.get("CreateIndex", 0),
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

            def _reply(self, code: int, body=None, index: int | None = None):
                data = b"" if body is None else json.dumps(body).encode()
                self.send_response(code)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                if index is not None:
                    self.send_header("X-Consul-Index", str(index))
                self.end_headers()
                self.wfile.write(data)

            def _reply_text(self, code: int, text: str):
                data = text.encode()
                self.send_response(code)
                self.send_header("Content-Type", "text/plain; charset=utf-8")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def _session(self, method: str, rest: str, raw: bytes):
                if method != "PUT":
                    return self._reply(405, {"error": "sessions: PUT only here"})
                action, _, session_id = rest.partition("/")
                with fake._lock:
                    fake._expire_sessions()
                    if action == "create":
                        request = json.loads(raw or b"{}") or {}
                        new_id = str(uuid.uuid4())
                        fake.sessions[new_id] = {
                            "Name": request.get("Name", ""),
                            "ttl": seconds(request["TTL"]) if request.get("TTL") else 86400.0,
                            "renewed": time.monotonic(),
                        }
                        return self._reply(200, {"ID": new_id})
                    if action == "renew":
                        session = fake.sessions.get(session_id)
                        if session is None:
                            return self._reply_text(404, f"Session id '{session_id}' not found")
                        session["renewed"] = time.monotonic()
                        return self._reply(200, [{"ID": session_id, "Name": session["Name"]}])
                    if action == "destroy":
                        fake._end_session(session_id)
                        return self._reply(200, True)
                return self._reply(404, {"error": f"fake consul: no session route {rest}"})

            def _kv(self, method: str, key: str, query: dict, raw: bytes):
                if method == "GET":
                    index = int(query.get("index", ["0"])[0] or 0)
                    wait = min(seconds(query["wait"][0]) if "wait" in query else 0.0, 30.0)
                    deadline = time.monotonic() + wait
                    while True:
                        with fake._lock:
                            fake._expire_sessions()
                            entry = fake.kv.get(key)
                            current = entry["ModifyIndex"] if entry else fake.index
                            if not index or current > index or time.monotonic() >= deadline:
                                if entry is None:
                                    return self._reply(404, None, index=fake.index)
                                shown = {k: v for k, v in entry.items() if k != "Value"}
                                value = entry.get("Value")
                                shown["Value"] = base64.b64encode(value).decode() if value is not None else None
                                return self._reply(200, [dict(shown, Key=key, Flags=0)], index=current)
                        with fake._changed:
                            fake._changed.wait(max(0.0, min(0.1, deadline - time.monotonic())))
                if method == "DELETE":
                    with fake._lock:
                        fake.kv.pop(key, None)
                        fake.index += 1
                    return self._reply(200, True)
                if method != "PUT":
                    return self._reply(405, {"error": f"kv: no {method}"})
                with fake._lock:
                    fake._expire_sessions()
                    fake.index += 1
                    entry = fake.kv.get(key)
                    if entry is None:
                        entry = {"CreateIndex": fake.index, "ModifyIndex": fake.index, "LockIndex": 0, "Value": None}
                    if "acquire" in query:
                        session_id = query["acquire"][0]
                        if session_id not in fake.sessions:
                            return self._reply_text(500, f'invalid session "{session_id}"')
                        holder = entry.get("Session")
                        ok = holder in (None, session_id)
                        if ok:
                            entry.update(Session=session_id, Value=raw or entry.get("Value"), ModifyIndex=fake.index)
                            if holder is None:
                                entry["LockIndex"] += 1
                        fake.kv[key] = entry
                        fake.lock_events.append(("acquire", key, session_id, ok))
                    elif "release" in query:
                        session_id = query["release"][0]
                        ok = entry.get("Session") == session_id
                        if ok:
                            entry.pop("Session")
                            entry["ModifyIndex"] = fake.index
                        fake.kv[key] = entry
                        fake.lock_events.append(("release", key, session_id, ok))
                    else:
                        entry.update(Value=raw, ModifyIndex=fake.index)
                        fake.kv[key] = entry
                        ok = True
                with fake._changed:
                    fake._changed.notify_all()
                return self._reply(200, ok)

            def _route(self, method: str):
                url = urlsplit(self.path)
                path = unquote(url.path)
                fake.requests_seen.append((method, path, self.headers.get("X-Consul-Token")))
                fake.queries_seen.append((method, path, url.query))
                if fake.delay:
                    time.sleep(fake.delay)
                if fake.failing:
                    return self._reply(500, {"error": "fake consul failing"})
                if fake.required_token and self.headers.get("X-Consul-Token") != fake.required_token:
                    return self._reply(403, {"error": "ACL not found"})
                length = int(self.headers.get("Content-Length") or 0)
                raw = self.rfile.read(length) if length else b""
                query = parse_qs(url.query, keep_blank_values=True)
                if path.startswith("/v1/kv/"):
                    return self._kv(method, path[len("/v1/kv/") :], query, raw)
                if path.startswith("/v1/session/"):
                    return self._session(method, path[len("/v1/session/") :], raw)
                try:
                    body = json.loads(raw or b"null")
                except ValueError:
                    return self._reply(400, {"error": "request body is not JSON"})
                if method == "GET" and path.startswith("/v1/health/service/"):
                    passing = query.get("passing", ["false"])[0] in ("", "1", "true")
                    tag = query.get("tag", [None])[0]
                    return self._reply(200, fake._health(path.rsplit("/", 1)[1], passing, tag))
                if method == "PUT" and path == "/v1/agent/service/register":
                    if not body or not body.get("Name"):
                        return self._reply(400, {"error": "missing service name"})
                    with fake._lock:
                        fake._register(body)
                    return self._reply(200)
                if method == "PUT" and path.startswith("/v1/agent/check/pass/"):
                    check_id = path[len("/v1/agent/check/pass/") :]
                    service_id = check_id.removeprefix("service:")
                    with fake._lock:
                        check = fake.checks.get(service_id) if check_id.startswith("service:") else None
                        if check is None:
                            return self._reply_text(404, f'Unknown check ID "{check_id}"')
                        check["passed"] = time.monotonic()
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

            def do_DELETE(self):
                self._route("DELETE")

        return Handler


def seconds(duration: str) -> float:
    """A Consul duration (``"30s"``, ``"1m"``, ``"500ms"``, ``"1h"``) in seconds."""
    match = re.fullmatch(r"\s*([0-9.]+)\s*(ms|s|m|h)?\s*", str(duration))
    if not match:
        raise ValueError(f"not a Consul duration: {duration!r}")
    factor = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0}[match.group(2) or "s"]
    return float(match.group(1)) * factor
