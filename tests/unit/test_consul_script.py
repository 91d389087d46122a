"""The Consul servers' boot script and the agents' shell commands, linted and run.

The rendered user data is run under bash in a scratch root (its /etc and /opt moved under a temp
directory) with stand-ins for dnf, aws, systemctl, curl and consul on PATH, so what it writes,
what it refuses and how it fails are checked by value. jq, install and chmod are the real ones.
"""

import json
import os
import shutil
import subprocess
import textwrap
from pathlib import Path

import pytest

from seaport.consul_config import SERVER_SCRIPT, server_config, server_user_data
from tests.unit.test_consul import server_data, user_data

DATA_MARKER = "cat > /etc/seaport/consul-server.json <<'SEAPORT_DATA'\n"
SECRET_VALUES = {
    "gossip": "Cj6OU5hT9KdEpvsPzJbCXFNV151okcytjumWYLnlFK8=",
    "management": "cdb4f292-f725-441c-8675-1ea99c9dfa4f",
    "agent": "760b88c9-21fe-4576-83a1-6cd5a0f86510",
    "registrar": "2f34a3bf-1cbd-437a-8c48-e3636d617353",
    "reader": "793dafda-3720-4c62-84d5-b3f77576b7c2",
    "broker": "0b0b5f2a-9c51-4d7e-a3c6-2f1e8d4b6a70",
    "server_key": "-----BEGIN EC PRIVATE KEY-----\nMHcCAQEEIserverkey\n-----END EC PRIVATE KEY-----",
}
ARNS = {k: f"arn:aws:secretsmanager:us-east-1:123456789012:secret:consul-{k}-AbCdEf" for k in SECRET_VALUES}


def shellcheck(script: str) -> None:
    assert shutil.which("shellcheck"), "shellcheck is missing: make sysdeps installs it"
    result = subprocess.run(["shellcheck", "--shell=bash", "-"], input=script, capture_output=True, text=True)
    assert result.returncode == 0, result.stdout


# -- lint -------------------------------------------------------------------------------------------


def test_template_file_passes_shellcheck():
    assert shutil.which("shellcheck"), "shellcheck is missing: make sysdeps installs it"
    result = subprocess.run(["shellcheck", str(SERVER_SCRIPT)], capture_output=True, text=True)
    assert result.returncode == 0, result.stdout


@pytest.mark.parametrize("stack", ["dev_plan", "prod_plan"])
def test_rendered_user_data_of_each_stack_passes_shellcheck(stack, request):
    shellcheck(user_data(request.getfixturevalue(stack)))


def test_user_data_for_any_arns_passes_shellcheck():
    shellcheck(
        server_user_data(
            "1.22.7",
            server_config(1, "dc1", ["provider=aws tag_key=k tag_value=v"]),
            ARNS,
            {"ca": "x", "certificate": "y"},
        )
    )


# -- running the boot script ---------------------------------------------------------------------

STUBS = {
    # Every stand-in appends its command line to $CALLS.
    "dnf": 'echo "dnf $*" >> "$CALLS"',
    "systemctl": 'echo "systemctl $*" >> "$CALLS"',
    "chown": 'echo "chown $*" >> "$CALLS"',
    "sleep": 'echo "sleep $*" >> "$CALLS"',
    # install, without the owner and group (no consul user here)
    "install": textwrap.dedent(
        """\
        args=()
        while [ $# -gt 0 ]; do
          case "$1" in -o|-g) shift 2 ;; *) args+=("$1"); shift ;; esac
        done
        exec /usr/bin/install "${args[@]}"
        """
    ),
    # aws secretsmanager get-secret-value --secret-id ARN ...: $SECRETS maps ARN -> value, or -> null to fail
    "aws": textwrap.dedent(
        """\
        echo "aws $*" >> "$CALLS"
        while [ $# -gt 0 ]; do [ "$1" = --secret-id ] && arn="$2"; shift; done
        jq -er --arg arn "$arn" '.[$arn] // error("not found")' "$SECRETS" 2>/dev/null \\
          || { echo "An error occurred (AccessDeniedException)" >&2; exit 254; }
        """
    ),
    # curl: print the next line of $LEADERS (the last one forever)
    "curl": textwrap.dedent(
        """\
        n=$(( $(cat "$CALLS.curl" 2>/dev/null || echo 0) + 1 )); echo "$n" > "$CALLS.curl"
        line="$(sed -n "${n}p" "$LEADERS")"; [ -n "$line" ] || line="$(tail -n 1 "$LEADERS")"
        printf '%s' "$line"
        """
    ),
    # consul acl ...: nothing exists yet; every create succeeds
    "consul": textwrap.dedent(
        """\
        echo "consul [$CONSUL_HTTP_TOKEN] $*" >> "$CALLS"
        case "$*" in *" read "*) exit 1 ;; esac
        """
    ),
}


class Boot:
    """One run of the boot script in a scratch root."""

    def __init__(self, tmp_path: Path, script: str):
        self.root = tmp_path / "root"
        self.bin = tmp_path / "bin"
        self.calls_file = tmp_path / "calls.log"
        self.root.mkdir()
        self.bin.mkdir()
        for name, body in STUBS.items():
            stub = self.bin / name
            stub.write_text("#!/bin/bash\nset -u\n" + body)
            stub.chmod(0o755)
        self.data = _data(script)
        # Paths move under the scratch root in the script's code, not in the data it writes.
        head, rest = script.split(DATA_MARKER, 1)
        document, tail = rest.split("\nSEAPORT_DATA\n", 1)
        head, tail = (self._moved(part) for part in (head, tail))
        self.script = f"{head}{self._moved(DATA_MARKER)}{document}\nSEAPORT_DATA\n{tail}"
        self.tmp = tmp_path

    def _moved(self, code: str) -> str:
        return code.replace("/etc/", f"{self.root}/etc/").replace("/opt/consul", f"{self.root}/opt/consul")

    def run(self, secrets: dict[str, str | None], leaders: list[str]) -> subprocess.CompletedProcess:
        (self.tmp / "secrets.json").write_text(json.dumps({self.data["secrets"][k]: v for k, v in secrets.items()}))
        (self.tmp / "leaders").write_text("\n".join(leaders) + "\n")
        script_file = self.tmp / "user-data.sh"
        script_file.write_text(self.script)
        env = {
            "PATH": f"{self.bin}:{os.environ['PATH']}",
            "HOME": str(self.tmp),
            "CALLS": str(self.calls_file),
            "SECRETS": str(self.tmp / "secrets.json"),
            "LEADERS": str(self.tmp / "leaders"),
        }
        return subprocess.run(["bash", str(script_file)], env=env, capture_output=True, text=True, timeout=60)

    def file(self, path: str) -> Path:
        return self.root / path.lstrip("/")

    @property
    def calls(self) -> list[str]:
        return self.calls_file.read_text().splitlines() if self.calls_file.exists() else []


def _data(script: str) -> dict:
    return json.loads(script.split(DATA_MARKER, 1)[1].split("\nSEAPORT_DATA\n", 1)[0])


def _with_data(script: str, **changes) -> str:
    """The script with some values of its data document replaced."""
    head, rest = script.split(DATA_MARKER, 1)
    document, tail = rest.split("\nSEAPORT_DATA\n", 1)
    data = {**json.loads(document), **changes}
    return f"{head}{DATA_MARKER}{json.dumps(data, indent=2)}\nSEAPORT_DATA\n{tail}"


@pytest.fixture(scope="module")
def script(dev_plan):
    return user_data(dev_plan)


def test_boot_writes_the_configuration_secrets_and_tokens(script, tmp_path):
    boot = Boot(tmp_path, script)
    result = boot.run(SECRET_VALUES, ['""', '"10.10.0.5:8300"'])  # no leader yet, then one
    assert result.returncode == 0, result.stderr
    assert result.stderr.rstrip().endswith("seaport-consul: ready")
    data = _data(script)
    assert json.loads(boot.file("/etc/consul.d/consul.json").read_text()) == data["config"]
    assert json.loads(boot.file("/etc/consul.d/secrets.json").read_text()) == {
        "encrypt": SECRET_VALUES["gossip"],
        "acl": {"tokens": {"initial_management": SECRET_VALUES["management"], "agent": SECRET_VALUES["agent"]}},
    }
    assert oct(boot.file("/etc/consul.d/secrets.json").stat().st_mode & 0o777) == "0o640"
    for policy, rules in data["acl_policies"].items():
        assert json.loads(boot.file(f"/etc/consul.d/acl/{policy}.json").read_text()) == rules
    # TLS: the certificates from the data, the key from Secrets Manager, readable by the consul user only
    assert boot.file("/etc/consul.d/tls/ca.pem").read_text() == data["tls"]["ca"]
    assert boot.file("/etc/consul.d/tls/server.pem").read_text() == data["tls"]["certificate"]
    key = boot.file("/etc/consul.d/tls/server-key.pem")
    assert key.read_text() == SECRET_VALUES["server_key"] + "\n"
    assert oct(key.stat().st_mode & 0o777) == "0o600"
    calls = boot.calls
    assert "dnf install -y consul-1.22.7" in calls
    assert calls.index("systemctl daemon-reload") < calls.index("systemctl enable --now consul")
    management = SECRET_VALUES["management"]
    for policy in ("agent", "registrar", "reader", "broker"):
        assert (
            f"consul [{management}] acl policy create -name {policy} -rules @{boot.root}/etc/consul.d/acl/{policy}.json"
            in calls
        )
        assert (
            f"consul [{management}] acl token create -secret {SECRET_VALUES[policy]} -policy-name {policy} "
            f"-description seaport {policy}" in calls
        )
    assert [c for c in calls if c.startswith("sleep")] == ["sleep 5"]  # waited once for the leader
    for value in SECRET_VALUES.values():
        assert value not in result.stdout + result.stderr  # never logged


def test_systemd_never_skips_the_unit_for_an_empty_hcl_file(script, tmp_path):
    boot = Boot(tmp_path, script)
    assert boot.run(SECRET_VALUES, ['"10.10.0.5:8300"']).returncode == 0
    hcl = boot.file("/etc/consul.d/consul.hcl").read_text()
    assert hcl.strip(), "consul.hcl must not be empty (ConditionFileNotEmpty)"
    assert all(line.startswith("#") for line in hcl.splitlines())  # valid HCL that sets nothing
    drop_in = boot.file("/etc/systemd/system/consul.service.d/seaport.conf").read_text()
    assert drop_in == "[Unit]\nConditionFileNotEmpty=\n"


@pytest.mark.parametrize(
    ("secret", "value", "message"),
    [
        ("gossip", "", "FAILED: secret gossip ({arn}) is empty"),
        ("management", "None", "FAILED: secret management ({arn}) is empty"),  # what the CLI prints for null
        ("agent", None, "FAILED: cannot read secret agent ({arn})"),
    ],
)
def test_an_empty_or_unreadable_secret_fails_the_boot_before_anything_is_written(
    script, tmp_path, secret, value, message
):
    boot = Boot(tmp_path, script)
    result = boot.run({**SECRET_VALUES, secret: value}, ['"10.10.0.5:8300"'])
    assert result.returncode != 0
    assert message.format(arn=boot.data["secrets"][secret]) in result.stderr
    assert not boot.file("/etc/consul.d").exists()
    assert not [c for c in boot.calls if c.startswith(("systemctl", "consul"))]


def test_an_empty_token_fails_the_boot_before_its_token_is_created(script, tmp_path):
    boot = Boot(tmp_path, script)
    result = boot.run({**SECRET_VALUES, "reader": ""}, ['"10.10.0.5:8300"'])
    assert result.returncode != 0
    assert f"FAILED: secret reader ({boot.data['secrets']['reader']}) is empty" in result.stderr
    assert not [c for c in boot.calls if "-policy-name reader" in c]
    assert "seaport-consul: ready" not in result.stderr


def test_no_leader_fails_the_boot_loudly_after_the_timeout(script, tmp_path):
    boot = Boot(tmp_path, _with_data(script, leader_timeout=0))
    result = boot.run(SECRET_VALUES, ['""'])
    assert result.returncode != 0
    assert "FAILED: no Consul leader after 0 s (see journalctl -u consul)" in result.stderr
    assert not [c for c in boot.calls if "acl token create" in c]


def test_the_leader_wait_is_bounded_by_the_data(script, tmp_path):
    boot = Boot(tmp_path, _with_data(script, leader_timeout=3600))
    leaders = ['""'] * 5 + ['"10.10.0.5:8300"']
    assert boot.run(SECRET_VALUES, leaders).returncode == 0
    assert [c for c in boot.calls if c.startswith("sleep")] == ["sleep 5"] * 5
    assert _data(script)["leader_timeout"] == 900


# -- the agents' commands ---------------------------------------------------------------------------


def agent_container(plan):
    (task,) = [t for t in plan.of_type("aws:ecs/taskDefinition:TaskDefinition") if t["name"] == "consul-agent-task"]
    (agent,) = json.loads(task["inputs"]["containerDefinitions"])
    return agent


def _stub_curl(tmp_path, output, status=0):
    stub = tmp_path / "curl"
    stub.write_text(f"#!/bin/sh\nprintf '%s' '{output}'\nexit {status}\n")
    stub.chmod(0o755)
    return {"PATH": f"{tmp_path}:{os.environ['PATH']}"}


@pytest.mark.parametrize(
    ("answer", "status", "healthy"),
    [
        ('"10.0.0.1:8300"', 0, True),
        ('""', 0, False),  # /v1/status/leader answers "" (and 200) while there is no leader
        ("", 7, False),  # the agent does not answer
        ("", 22, False),  # an HTTP error
    ],
)
def test_agent_health_check_needs_a_leader(dev_plan, tmp_path, answer, status, healthy):
    kind, command = agent_container(dev_plan)["healthCheck"]["command"]
    assert kind == "CMD-SHELL"
    result = subprocess.run(["sh", "-c", command], env=_stub_curl(tmp_path, answer, status), capture_output=True)
    assert (result.returncode == 0) is healthy, (answer, result)


def test_agent_command_writes_its_secrets_file_and_starts_the_agent(dev_plan, tmp_path):
    shell, flag, command = agent_container(dev_plan)["command"]
    assert (shell, flag) == ("/bin/sh", "-c")
    target = tmp_path / "secrets.json"
    assert command.count("/consul/config/secrets.json") == 1
    entrypoint = tmp_path / "docker-entrypoint.sh"
    entrypoint.write_text('#!/bin/sh\necho "entrypoint $*"\n')
    entrypoint.chmod(0o755)
    env = {
        "PATH": f"{tmp_path}:{os.environ['PATH']}",
        "CONSUL_GOSSIP_ENCRYPTION": SECRET_VALUES["gossip"],
        "CONSUL_AGENT_ACL": SECRET_VALUES["agent"],
        "CONSUL_CA_PEM": "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----",
    }
    ca_file = tmp_path / "ca.pem"
    command = command.replace("/consul/config/secrets.json", str(target)).replace("/consul/config/ca.pem", str(ca_file))
    result = subprocess.run(
        [shell, flag, command],
        env=env,
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout == "entrypoint agent\n"
    assert json.loads(target.read_text()) == {
        "encrypt": SECRET_VALUES["gossip"],
        "acl": {"tokens": {"agent": SECRET_VALUES["agent"]}},
    }
    assert ca_file.read_text() == env["CONSUL_CA_PEM"] + "\n"  # the CA the agent verifies the servers with


def test_server_data_helper_reads_the_plan(dev_plan):
    assert server_data(dev_plan) == _data(user_data(dev_plan))
