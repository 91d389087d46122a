"""Misconfiguration and unusable brokers: one clear error line, a non-zero exit code, no traceback."""

from __future__ import annotations

import subprocess
import sys

import pytest

from devtools.procs import REPO_ROOT, child_env, free_port
from tests.apps.helpers import log_records

pytestmark = pytest.mark.rabbitmq
APPS = ["send", "receive"]


def run_app(app: str, *args: str, env: dict[str, str], timeout: float = 30) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", f"apps.{app}", *args],
        env=child_env(env),
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def assert_one_error_line(result: subprocess.CompletedProcess, exit_code: int, *phrases: str) -> str:
    output = result.stdout + result.stderr
    assert result.returncode == exit_code, output
    assert "Traceback" not in output
    errors = [r for r in log_records(result.stdout) if r["level"] == "error"]
    assert len(errors) == 1, output
    for phrase in phrases:
        assert phrase in errors[0]["message"], errors[0]["message"]
    return errors[0]["message"]


@pytest.mark.parametrize("app", APPS)
@pytest.mark.parametrize(
    ("url", "phrase"),
    [
        ("rabbitmq.example:5672", "the scheme must be amqp:// or amqps://"),
        ("amqp://guest:secret@127.0.0.1:port/%2F", "is not a valid URL"),
        ("amqp:///%2F", "has no host name"),
    ],
)
def test_malformed_url(app, url, phrase):
    result = run_app(app, "--url", url, "--count" if app == "send" else "--idle-exit", "1", env={})
    assert_one_error_line(result, 2, "RABBITMQ_URL", phrase)
    assert "secret" not in result.stdout  # passwords are never echoed


@pytest.mark.parametrize("app", APPS)
def test_bad_credentials(app, broker):
    url = broker.url_for("guest", "not-the-password")
    result = run_app(app, env={"RABBITMQ_URL": url, "RABBITMQ_RETRY_SECONDS": "5"})
    assert_one_error_line(result, 3, "login refused", f"127.0.0.1:{broker.amqp_port}")
    assert "not-the-password" not in result.stdout


@pytest.mark.parametrize("app", APPS)
def test_unreachable_broker_gives_up_after_the_retry_budget(app):
    closed_port = free_port()
    initial = 0.1
    result = run_app(
        app,
        "--retry-for",
        "2",
        env={
            "RABBITMQ_URL": f"amqp://guest:guest@127.0.0.1:{closed_port}/%2F",
            "RABBITMQ_BACKOFF_INITIAL": str(initial),
            "RABBITMQ_BACKOFF_MAX": "15",
        },
    )
    assert_one_error_line(result, 3, "connection refused", "gave up after")
    retries = [r for r in log_records(result.stdout) if r["message"] == "broker unavailable, retrying"]
    assert [r["attempt"] for r in retries] == list(range(1, len(retries) + 1))
    assert len(retries) >= 4, result.stdout
    # The n-th wait is jittered between half and all of initial * 2**(n-1): the ceiling doubles,
    # so the 4th wait (>= 0.4 s) is longer than any first wait (<= 0.1 s) could be. The last wait
    # may be cut short by the retry budget; every other one must be at least half its ceiling.
    for record in retries[:-1]:
        ceiling = initial * 2 ** (record["attempt"] - 1)
        assert ceiling / 2 - 0.01 <= record["retry_in_s"] <= ceiling + 0.01, record
    assert retries[3]["retry_in_s"] > initial >= retries[0]["retry_in_s"]


def test_no_healthy_instance_in_consul(fake_consul):
    fake_consul.add("rabbitmq", free_port(), status="critical")
    result = run_app(
        "receive",
        env={"RABBITMQ_SERVICE": "rabbitmq", "CONSUL_HTTP_ADDR": fake_consul.address, "RABBITMQ_RETRY_SECONDS": "1"},
    )
    assert_one_error_line(result, 3, "no healthy instance of 'rabbitmq'")


def test_bad_consul_address_is_a_setting_error():
    result = run_app("send", env={"RABBITMQ_SERVICE": "rabbitmq", "CONSUL_HTTP_ADDR": "ftp://consul:8500"})
    assert_one_error_line(result, 2, "CONSUL_HTTP_ADDR")


def test_no_broker_configured():
    result = run_app("send", env={})
    assert_one_error_line(result, 2, "RABBITMQ_URL", "RABBITMQ_SERVICE")


def test_queue_declared_elsewhere_with_other_arguments(messaging):
    """Send and receive must agree on the queue arguments; a mismatch is a config error, not a retry loop."""
    messaging.queue_type = "classic"
    messaging.declare()
    result = run_app("send", "--count", "1", env={**messaging.env(), "RABBITMQ_QUEUE_TYPE": "quorum"})
    assert_one_error_line(result, 2, "PRECONDITION_FAILED", messaging.queue)


def test_help_lists_flags_and_variables():
    for app, flags in {"send": ["--rate", "--count", "--window"], "receive": ["--record", "--idle-exit"]}.items():
        result = run_app(app, "--help", env={})
        assert result.returncode == 0
        variables = ["RABBITMQ_URL", "RABBITMQ_SERVICE", "RABBITMQ_CA_PEM", "RABBITMQ_TLS_SERVER_NAME", "LIVENESS_FILE"]
        for text in [*flags, "--url", *variables, "exit codes"]:
            assert text in result.stdout, (app, text)
