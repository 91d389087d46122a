"""The registrar sidecar as a real process, against the fake ECS metadata endpoint v4 and fake Consul.

Task metadata shapes: https://docs.aws.amazon.com/AmazonECS/latest/developerguide/task-metadata-endpoint-v4.html
Agent API: https://developer.hashicorp.com/consul/api-docs/agent/service
"""

from __future__ import annotations

import signal
import subprocess
import time

import pytest

from apps.registrar import metadata
from apps.registrar.agent import CheckSpec, registration
from devtools.procs import AppProcess
from tests.support.fake_ecs_metadata import FakeEcsMetadata, port_entries


@pytest.fixture
def ecs():
    fake = FakeEcsMetadata()
    yield fake
    fake.stop()


def start_registrar(tmp_path, ecs, consul, *args, env=None) -> AppProcess:
    return AppProcess(
        "apps.registrar",
        ["--service", "portal", "--container", "portal", "--container-port", "8080", *args],
        env={  # AppProcess starts it with child_env(env): nothing else from our environment
            "ECS_CONTAINER_METADATA_URI_V4": ecs.uri(),
            "CONSUL_HTTP_ADDR": consul.address,
            "REGISTRAR_VERIFY_SECONDS": "0.2",
            **(env or {}),
        },
        log_path=tmp_path / "registrar.log",
    ).start()


def wait_until(condition, timeout: float = 10.0, what: str = "condition", output=lambda: ""):
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}\n{output()[-3000:]}")
        time.sleep(0.05)


def test_registers_the_host_port_and_deregisters_on_sigterm(tmp_path, ecs, fake_consul):
    ecs.set_container("portal", ports={8080: 32768, 9090: 32769})
    ecs.set_container("registrar")
    registrar = start_registrar(tmp_path, ecs, fake_consul, "--tags", "web, v1")
    try:
        wait_until(lambda: fake_consul.registrations("portal"), what="registration", output=registrar.output)
        [entry] = fake_consul.registrations("portal")
        assert entry["ID"] == f"portal-{ecs.task_id}-32768"
        assert entry["Port"] == 32768
        assert "Address" not in entry  # Consul uses the agent's node address: the instance's IP
        assert entry["Tags"] == ["web", "v1"]
        assert entry["Check"]["HTTP"] == "http://127.0.0.1:32768/health"
        assert entry["Check"]["Interval"] == "10s" and entry["Check"]["DeregisterCriticalServiceAfter"] == "1m"
        assert any(path.endswith("/task") for path in ecs.requests_seen)
    finally:
        registrar.signal(signal.SIGTERM)
        code = registrar.wait(10)
    assert code == 0, registrar.output()
    assert fake_consul.registrations("portal") == []
    assert '"message": "deregistered"' in registrar.output()


def test_waits_for_the_container_to_start_then_registers_a_tcp_check(tmp_path, ecs, fake_consul):
    ecs.set_container("portal", ports=None, status="PENDING")  # not started: no Ports yet
    registrar = start_registrar(tmp_path, ecs, fake_consul, "--check", "tcp", "--address", "10.0.3.7")
    try:
        time.sleep(1.0)
        assert registrar.process.poll() is None and fake_consul.registrations() == []
        ecs.set_container("portal", ports={8080: 49153})
        wait_until(lambda: fake_consul.registrations("portal"), what="registration", output=registrar.output)
        [entry] = fake_consul.registrations("portal")
        assert entry["Port"] == 49153 and entry["Address"] == "10.0.3.7"
        assert entry["Check"]["TCP"] == "10.0.3.7:49153" and "HTTP" not in entry["Check"]
    finally:
        registrar.stop()


def test_registers_again_after_the_agent_restarted(tmp_path, ecs, fake_consul):
    ecs.set_container("portal", ports={8080: 32770})
    fake_consul.required_token = "agent-token"
    registrar = start_registrar(tmp_path, ecs, fake_consul, env={"CONSUL_HTTP_TOKEN": "agent-token"})
    try:
        wait_until(lambda: fake_consul.registrations("portal"), what="registration", output=registrar.output)
        fake_consul.clear()  # an agent restarted without its state
        wait_until(lambda: fake_consul.registrations("portal"), what="re-registration", output=registrar.output)
        assert fake_consul.registrations("portal")[0]["Port"] == 32770
        # The agent is unreachable for a while (500s): the registrar keeps going and registers when it is back.
        fake_consul.failing = True
        fake_consul.clear()
        time.sleep(0.6)
        assert registrar.process.poll() is None
        fake_consul.failing = False
        wait_until(lambda: fake_consul.registrations("portal"), what="registration after outage")
        # A container restart gave it a new host port: the registration follows.
        ecs.set_container("portal", ports={8080: 32799})
        wait_until(
            lambda: [e["Port"] for e in fake_consul.registrations("portal")] == [32799],
            what="registration of the new port",
            output=registrar.output,
        )
    finally:
        registrar.stop()
    assert {token for method, path, token in fake_consul.requests_seen} == {"agent-token"}
    assert registrar.output().count("cannot reach the consul agent") == 1  # once per outage


@pytest.mark.parametrize(
    ("containers", "error"),
    [
        ({"app": {8080: 32768}}, "container 'portal' is not in the task metadata (containers: app, registrar)"),
        ({"portal": {9090: 32768}}, "container 'portal' publishes no host port for 8080/tcp (ports: 9090/tcp"),
    ],
)
def test_clear_error_when_the_container_or_port_is_missing(tmp_path, ecs, fake_consul, containers, error):
    for name, ports in containers.items():
        ecs.set_container(name, ports=ports)
    ecs.set_container("registrar")
    registrar = start_registrar(tmp_path, ecs, fake_consul, "--wait-seconds", "1")
    code = registrar.wait(15)
    assert code == 1
    last_line = registrar.output().strip().splitlines()[-1]
    assert last_line.startswith(f"registrar: {error}") and last_line.endswith("after waiting 1 s")
    assert fake_consul.registrations() == []


def test_bad_settings_exit_2_with_one_line(tmp_path, ecs, fake_consul):
    registrar = start_registrar(tmp_path, ecs, fake_consul, "--check", "http:health")
    assert registrar.wait(15) == 2
    assert "--check='http:health'" in registrar.output()
    no_ecs = start_registrar(tmp_path, ecs, fake_consul, env={"ECS_CONTAINER_METADATA_URI_V4": ""})
    assert no_ecs.wait(15) == 2
    assert "ECS_CONTAINER_METADATA_URI_V4 is not set" in no_ecs.output()


def test_sigterm_while_waiting_for_the_container_exits_0(tmp_path, ecs, fake_consul):
    ecs.set_container("portal", ports=None)
    registrar = start_registrar(tmp_path, ecs, fake_consul)
    wait_until(lambda: ecs.requests_seen, what="a metadata request")
    registrar.signal(signal.SIGTERM)
    try:
        assert registrar.wait(5) == 0
    except subprocess.TimeoutExpired:
        registrar.kill()
        raise


def test_locate_prefers_ipv4_and_matches_protocol():
    task = {
        "TaskARN": "arn:aws:ecs:eu-west-1:111122223333:task/dev/abc123",
        "Containers": [
            {"Name": "dns", "Ports": port_entries({53: 31000}, "udp")},
            {"Name": "web", "Ports": list(reversed(port_entries({80: 31001})))},
        ],
    }
    found = metadata.locate(task, "web", 80)
    assert (found.host_port, found.task_id) == (31001, "abc123")
    assert metadata.locate(task, "dns", 53, "udp").host_port == 31000
    with pytest.raises(metadata.NotYet, match="no host port for 53/tcp"):
        metadata.locate(task, "dns", 53, "tcp")
    task["Containers"][1]["KnownStatus"] = "STOPPED"
    with pytest.raises(metadata.MetadataError, match="has stopped"):
        metadata.locate(task, "web", 80)


def test_registration_body():
    mapping = metadata.Mapping("arn:aws:ecs:r:1:task/c/t1", "web", 80, "tcp", 32768)
    body = registration("web", mapping, CheckSpec("none"), [])
    assert body["ID"] == "web-t1-32768" and "Check" not in body and "Address" not in body
    body = registration("web", mapping, CheckSpec("http", "/ready", "5s", "1s", "2m"), ["a"])
    assert body["Check"]["HTTP"] == "http://127.0.0.1:32768/ready"
    assert (body["Check"]["Interval"], body["Check"]["Timeout"]) == ("5s", "1s")
