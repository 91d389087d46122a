"""The loop a clustered node runs to forget departed members (seaport.rabbitmq_config.forget_departed_script).

The script is linted, then run under dash with stand-ins for ``rabbitmqctl``,
``rabbitmq-diagnostics`` and ``date`` on PATH (``Node`` below): each round sees
what the stand-ins print (cluster_status and discover_peers as the
CLI's JSON formatter writes them, in 3.10's form and in 4.x's) at the time the
fake clock says, and the tests read which commands it ran and what it logged.
The real CLI on a real cluster is tests/apps/test_cluster_cleanup.py.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import time
from pathlib import Path

import pytest

from seaport import rabbitmq_config as config
from tests.unit.test_broker_config import WRAPPER_VARIABLES

A, B, C, D, E = (f"rabbit@ip-10-0-{n}-{10 + n}.eu-west-1.compute.internal" for n in range(1, 6))
GRACE = config.FORGET_GRACE_SECONDS


def shellcheck(path_or_text: Path | str) -> None:
    assert shutil.which("shellcheck"), "shellcheck is missing: make sysdeps installs it"
    if isinstance(path_or_text, Path):
        result = subprocess.run(["shellcheck", str(path_or_text)], capture_output=True, text=True)
    else:
        command = ["shellcheck", "--shell=sh", "-"]
        result = subprocess.run(command, input=path_or_text, capture_output=True, text=True)
    assert result.returncode == 0, result.stdout


# -- what the CLI prints --------------------------------------------------------------------------------------------


def status_3_10(members: list[str], running: list[str]) -> str:
    """``rabbitmqctl cluster_status --formatter json`` in the form RabbitMQ 3.10.8 prints it here (one line, keys
    sorted, listeners, versions and maintenance status keyed by the running nodes' names; fewer feature flags)."""
    document = {
        "alarms": [],
        "cluster_name": f"{members[0]}",
        "disk_nodes": members,
        "feature_flags": [
            {
                "desc": "Support queues of type `quorum`",
                "doc_url": "https://www.rabbitmq.com/quorum-queues.html",
                "name": "quorum_queue",
                "provided_by": "rabbit",
                "stability": "stable",
                "state": "enabled",
            }
        ],
        "listeners": {
            node: [
                {
                    "interface": "[::]",
                    "node": node,
                    "port": 25672,
                    "protocol": "clustering",
                    "purpose": "inter-node and CLI tool communication",
                }
            ]
            for node in running
        },
        "maintenance_status": {node: "not under maintenance" for node in running},
        "partitions": {},
        "ram_nodes": [],
        "running_nodes": running,
        "versions": {
            node: {"erlang_version": "25.2.3", "rabbitmq_name": "RabbitMQ", "rabbitmq_version": "3.10.8"}
            for node in running
        },
    }
    return json.dumps(document, separators=(",", ":")) + "\n"


def status_4_x(members: list[str], running: list[str]) -> str:
    """The same command on 4.x (deps/rabbitmq_cli/lib/rabbitmq/cli/ctl/commands/cluster_status_command.ex,
    ``result_map``; OTP's ``json`` encoder through RabbitMQ.CLI.Core.JSON since 4.3): no ram_nodes, cluster tags
    and CPU cores added, and the keys in no particular order."""
    document = {
        "running_nodes": running,
        "versions": {node: {"rabbitmq_version": "4.3.5", "erlang_version": "27.3"} for node in running},
        "cpu_cores": {node: 2 for node in running},
        "cluster_tags": [],
        "partitions": {},
        "disk_nodes": members,
        "alarms": [],
        "maintenance_status": {node: "not under maintenance" for node in running},
        "listeners": {node: [{"node": node, "port": 5671, "protocol": "amqp/ssl"}] for node in running},
        "feature_flags": [{"name": "khepri_db", "state": "enabled", "stability": "stable"}],
        "cluster_name": "rabbit@ip-10-0-1-11.eu-west-1.compute.internal",
    }
    return json.dumps(document, separators=(",", ":")) + "\n"


def status_pretty(members: list[str], running: list[str]) -> str:
    """Spaces and new lines wherever JSON allows them: the script must not depend on the encoder's layout."""
    return json.dumps({"disk_nodes": members, "running_nodes": running, "partitions": {}}, indent=2) + "\n"


FORMATS = {"3.10": status_3_10, "4.x": status_4_x, "pretty": status_pretty}


# -- the stand-ins --------------------------------------------------------------------------------------------------

FAKE_RABBITMQCTL = """#!/bin/sh
echo "rabbitmqctl $*" >> "$FAKE/calls"
case "$1" in
  cluster_status)
    if [ -f "$FAKE/status.fails" ]; then echo "Error: unable to perform an operation on node" >&2; exit 69; fi
    cat "$FAKE/status.json" ;;
  forget_cluster_node)
    echo "Removing node $2 from the cluster"
    if [ -f "$FAKE/forget.fails" ]; then echo "Error: {:failed_to_remove_node, :\\"$2\\"}" >&2; exit 70; fi ;;
  *) exit 64 ;;
esac
"""
FAKE_DIAGNOSTICS = """#!/bin/sh
echo "rabbitmq-diagnostics $*" >> "$FAKE/calls"
[ "$1" = discover_peers ] || exit 64
if [ -f "$FAKE/peers.fails" ]; then echo "Error: timed out" >&2; exit 75; fi
cat "$FAKE/peers.json"
"""
FAKE_DATE = """#!/bin/sh
[ "$1" = +%s ] || exit 64
cat "$FAKE/now"
"""


class Node:
    """One node's script with fake CLI tools: set what the cluster looks like, run rounds, read what happened."""

    def __init__(self, folder: Path, status_format=status_4_x, grace: int | None = None):
        self.folder = folder
        self.fake = folder / "fake"
        self.bin = folder / "bin"
        self.fake.mkdir()
        self.bin.mkdir()
        for name, text in (
            ("rabbitmqctl", FAKE_RABBITMQCTL),
            ("rabbitmq-diagnostics", FAKE_DIAGNOSTICS),
            ("date", FAKE_DATE),
        ):
            (self.bin / name).write_text(text)
            (self.bin / name).chmod(0o755)
        self.state = folder / "state"
        self.script = folder / "forget-departed.sh"
        self.script.write_text(config.forget_departed_script(state_file=str(self.state)))
        self.status_format = status_format
        self.grace = grace

    def cluster(self, members: list[str], running: list[str], listed: list[str] | None = None) -> Node:
        """The members and running nodes cluster_status prints, and what discover_peers lists (None: no peer)."""
        (self.fake / "status.json").write_text(self.status_format(members, running))
        peers = json.dumps({"message": "No peers discovered"}) if not listed else json.dumps(listed)
        (self.fake / "peers.json").write_text(peers + "\n")
        return self

    def fails(self, command: str, failing: bool = True) -> None:
        """``status``, ``peers`` or ``forget`` exits non-zero (or no longer does)."""
        flag = self.fake / f"{command}.fails"
        flag.touch() if failing else flag.unlink(missing_ok=True)

    def round(self, now: int | str) -> list[str]:
        """One round at time ``now`` (what ``date +%s`` prints); the lines it logged, without their prefix."""
        (self.fake / "now").write_text(f"{now}\n")
        (self.fake / "calls").unlink(missing_ok=True)
        environment = {"PATH": f"{self.bin}:/usr/bin:/bin", "FAKE": str(self.fake)}
        if self.grace is not None:
            environment["SEAPORT_FORGET_GRACE_SECONDS"] = str(self.grace)
        result = subprocess.run(
            [dash(), str(self.script), "once"], env=environment, capture_output=True, text=True, timeout=30
        )
        assert result.returncode == 0, result.stdout + result.stderr
        assert result.stderr == ""
        lines = result.stdout.splitlines()
        assert all(line.startswith("seaport-forget-departed: ") for line in lines), lines
        return [line.removeprefix("seaport-forget-departed: ") for line in lines]

    def calls(self) -> list[str]:
        """The CLI commands the last round ran."""
        path = self.fake / "calls"
        return path.read_text().splitlines() if path.exists() else []

    def forgotten(self) -> list[str]:
        return [call.split()[2] for call in self.calls() if call.startswith("rabbitmqctl forget_cluster_node ")]

    def counted(self) -> dict[str, int]:
        """The state file: member -> when it was first seen down and unlisted."""
        rows = (line.split() for line in self.state.read_text().splitlines() if line)
        return {member: int(since) for member, since in rows}


def processes_running(script: str) -> list[int]:
    """PIDs of the processes whose command line names ``script``."""
    found = []
    for proc in Path("/proc").iterdir():
        if proc.name.isdigit():
            try:
                if script in proc.joinpath("cmdline").read_bytes().decode(errors="replace").split("\0"):
                    found.append(int(proc.name))
            except OSError:
                continue  # gone meanwhile
    return found


def wait_until_gone(script: str, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while processes_running(script):
        assert time.monotonic() < deadline, f"{script} still runs {timeout:g} s after its node exited"
        time.sleep(0.1)


def dash() -> str:
    shell = shutil.which("dash")
    assert shell, "dash is missing (Debian's /bin/sh): the script must run under a POSIX shell without bashisms"
    return shell


@pytest.fixture(params=list(FORMATS))
def node(request, tmp_path) -> Node:
    return Node(tmp_path, FORMATS[request.param])


# -- lint and wiring ------------------------------------------------------------------------------------------------


def test_the_template_and_the_rendered_script_pass_shellcheck():
    shellcheck(config.FORGET_SCRIPT_TEMPLATE)
    script = config.forget_departed_script()
    assert re.findall(r"@[A-Z_]+@", config.FORGET_SCRIPT_TEMPLATE.read_text()) == [
        "@GRACE_SECONDS@",
        "@INTERVAL_SECONDS@",
        "@STATE_FILE@",
    ]
    assert not re.findall(r"@[A-Z_]+@", script)  # every one filled in
    shellcheck(script)


def test_the_settings_are_filled_in_and_checked():
    script = config.forget_departed_script(grace_seconds=30, interval_seconds=5, state_file="/tmp/x")
    assert 'grace="${SEAPORT_FORGET_GRACE_SECONDS:-30}"' in script
    assert 'interval="${SEAPORT_FORGET_INTERVAL_SECONDS:-5}"' in script
    assert 'state="${SEAPORT_FORGET_STATE_FILE:-/tmp/x}"' in script
    default = config.forget_departed_script()
    assert f'grace="${{SEAPORT_FORGET_GRACE_SECONDS:-{config.FORGET_GRACE_SECONDS}}}"' in default
    assert f'state="${{SEAPORT_FORGET_STATE_FILE:-{config.FORGET_STATE_FILE}}}"' in default
    with pytest.raises(ValueError, match="state file"):
        config.forget_departed_script(state_file="/tmp/a b")
    # A restart on the node's own instance (a few minutes) must be far within the grace period.
    assert config.FORGET_GRACE_SECONDS >= 4 * config.FORGET_INTERVAL_SECONDS >= 4 * 60


def test_only_the_clustered_wrapper_writes_and_starts_the_loop_once_the_secrets_are_unset_and_before_exec():
    assert config.FORGET_SCRIPT_FILE not in config.START_COMMAND[2]
    script = config.CLUSTER_START_COMMAND[2]
    shellcheck(script)
    first_line, body = script.split("\n", 1)
    steps = first_line.split("; ")
    write = f"cat > {config.FORGET_SCRIPT_FILE} <<'{config.FORGET_SCRIPT_END}'"
    start = f'{{ sh {config.FORGET_SCRIPT_FILE} loop "$$" & }}'
    assert steps[-3:] == [write, start, "exec docker-entrypoint.sh rabbitmq-server"]
    assert steps[-4].startswith("unset ") and config.COOKIE_VARIABLE in steps[-4]
    assert body == config.forget_departed_script() + config.FORGET_SCRIPT_END + "\n"


def test_the_wrapper_runs_the_loop_beside_the_node_without_its_secrets_until_the_node_exits(tmp_path):
    """The clustered wrapper as the container runs it (paths under tmp_path, chown skipped), with a stand-in for
    the image's entry point: the loop runs rounds while the node runs, has none of the secrets in its environment,
    and ends with the node."""
    root = tmp_path / "root"
    for folder in ("etc/conf.d", "var"):
        (root / folder).mkdir(parents=True)
    fake = Node(tmp_path).cluster([A, B, C], [A, B, C])
    (fake.bin / "rabbitmqctl").write_text(FAKE_RABBITMQCTL.replace("#!/bin/sh\n", '#!/bin/sh\nenv > "$FAKE/env"\n'))
    (fake.bin / "docker-entrypoint.sh").write_text(
        '#!/bin/sh\necho "node $$ runs"\nn=0\n'
        'while [ ! -s "$FAKE/calls" ] && [ "$n" -lt 100 ]; do sleep 0.1; n=$((n + 1)); done\necho "node exits"\n'
    )
    (fake.bin / "docker-entrypoint.sh").chmod(0o755)
    (fake.fake / "now").write_text("1000\n")
    script = config.CLUSTER_START_COMMAND[2].replace("/etc/rabbitmq", f"{root}/etc")
    script = script.replace("/var/lib/rabbitmq", f"{root}/var").replace("chown rabbitmq:rabbitmq", "true")
    secrets = {**WRAPPER_VARIABLES, **config.cluster_environment()}
    environment = {
        **secrets,
        "PATH": f"{fake.bin}:/usr/bin:/bin",
        "FAKE": str(fake.fake),
        "SEAPORT_FORGET_INTERVAL_SECONDS": "1",
        "SEAPORT_FORGET_STATE_FILE": str(tmp_path / "state"),
    }
    output_file = tmp_path / "output"
    with output_file.open("w") as output:
        wrapper = subprocess.Popen(["/bin/sh", "-c", script], env=environment, stdout=output, stderr=subprocess.STDOUT)
    try:
        wrapper.wait(timeout=20)  # the node exits once the loop has run a round
    finally:
        wrapper.kill()
    loop = str(root / "etc" / Path(config.FORGET_SCRIPT_FILE).name)
    wait_until_gone(loop, timeout=10)
    output = output_file.read_text()
    lines = output.splitlines()
    assert f"node {wrapper.pid} runs" in lines  # the entry point got the wrapper's process: exec
    assert any(line.startswith("seaport-forget-departed: started: every 1 s, ") for line in lines)
    assert "node exits" in lines
    assert set(fake.calls()) == {"rabbitmqctl cluster_status --formatter json"}  # every member runs
    loop_environment = (fake.fake / "env").read_text()
    for variable in (config.COOKIE_VARIABLE, config.KEY_VARIABLE, config.CONSUL_TOKEN_VARIABLE):
        assert f"{variable}=" not in loop_environment
    assert (root / "etc" / Path(config.FORGET_SCRIPT_FILE).name).read_text() == config.forget_departed_script()


def test_a_loop_without_its_node_stops(tmp_path):
    fake = Node(tmp_path)
    gone = subprocess.Popen(["true"])
    gone.wait()
    result = subprocess.run(
        [dash(), str(fake.script), "loop", str(gone.pid)],
        env={"PATH": f"{fake.bin}:/usr/bin:/bin", "FAKE": str(fake.fake), "SEAPORT_FORGET_INTERVAL_SECONDS": "1"},
        capture_output=True,
        text=True,
        timeout=10,
    )
    assert result.returncode == 0
    assert not fake.calls()
    for arguments in (["loop"], ["sometimes"]):
        refused = subprocess.run([dash(), str(fake.script), *arguments], capture_output=True, text=True, timeout=10)
        assert refused.returncode == 64
        assert "usage:" in refused.stdout


# -- decisions --------------------------------------------------------------------------------------------------------


def test_a_member_down_and_unlisted_is_forgotten_once_the_grace_period_has_passed(node):
    node.cluster([A, B, C], [A, B], listed=[A, B])
    assert node.round(1000) == [f"{C} is down and not listed by discovery: forgotten in {GRACE} s unless it comes back"]
    assert node.calls() == [
        "rabbitmqctl cluster_status --formatter json",
        "rabbitmq-diagnostics discover_peers --formatter json",
    ]
    assert node.counted() == {C: 1000}
    assert node.round(1000 + GRACE // 2) == []
    assert node.round(1000 + GRACE - 1) == []
    assert node.forgotten() == []
    assert node.counted() == {C: 1000}  # the state file carries the first sighting from round to round

    assert node.round(1000 + GRACE) == [f"forgot {C} after {GRACE} s down and unlisted"]
    assert node.forgotten() == [C]
    assert node.counted() == {}


def test_a_member_down_but_still_listed_by_discovery_is_never_forgotten(node):
    node.cluster([A, B, C], [A, B], listed=[A, B, C])
    for now in (1000, 1000 + GRACE, 1000 + 100 * GRACE):
        assert node.round(now) == [f"{C} is down but still listed by discovery: not departed"]
        assert node.forgotten() == []
    assert node.counted() == {}


def test_running_members_are_never_forgotten_nor_is_discovery_asked(node):
    node.cluster([A, B, C], [A, B, C], listed=[A])  # discovery's answer does not matter
    for now in (1000, 1000 + 10 * GRACE):
        assert node.round(now) == []
        assert node.calls() == ["rabbitmqctl cluster_status --formatter json"]


def test_a_member_back_before_the_grace_period_starts_from_zero_when_it_goes_again(node):
    node.cluster([A, B, C], [A, B], listed=[A, B])
    node.round(1000)
    node.cluster([A, B, C], [A, B, C], listed=[A, B, C])
    assert node.round(1100) == [
        f"{C} runs, is listed by discovery again or is no longer a member: not counted any more"
    ]
    assert node.counted() == {}
    node.cluster([A, B, C], [A, B], listed=[A, B, C])  # restarting: down, still registered
    node.round(1200)
    node.cluster([A, B, C], [A, B], listed=[A, B])
    node.round(1300)
    assert node.round(1300 + GRACE - 1) == []
    assert node.round(1300 + GRACE) == [f"forgot {C} after {GRACE} s down and unlisted"]


def test_nothing_is_done_from_a_minority(node):
    node.cluster([A, B, C], [A], listed=[A])
    for now in (1000, 1000 + 10 * GRACE):
        assert node.round(now) == [
            f"only 1 of 3 members run: nothing done from a minority, nothing counted (down: {B} {C})"
        ]
        assert node.calls() == ["rabbitmqctl cluster_status --formatter json"]
    node.cluster([A, B, C, D], [A, B], listed=[A, B])  # half is not a majority
    assert node.round(1000 + 20 * GRACE)[0].startswith("only 2 of 4 members run")
    assert node.forgotten() == []


def test_a_minority_round_starts_the_count_again(node):
    node.cluster([A, B, C], [A, B], listed=[A, B])
    node.round(1000)
    node.cluster([A, B, C], [A], listed=[A])
    node.round(1100)
    node.cluster([A, B, C], [A, B], listed=[A, B])
    assert node.round(1000 + GRACE) == [
        f"{C} is down and not listed by discovery: forgotten in {GRACE} s unless it comes back"
    ]
    assert node.forgotten() == []


def test_at_most_one_member_is_forgotten_a_round_the_longest_gone_first(node):
    node.cluster([A, B, C, D, E], [A, B, C, E], listed=[A, B, C, E])
    node.round(1000)  # D first
    node.cluster([A, B, C, D, E], [A, B, C], listed=[A, B, C])
    node.round(1100)  # then E
    assert node.counted() == {D: 1000, E: 1100}
    assert node.round(1100 + GRACE) == [f"forgot {D} after {GRACE + 100} s down and unlisted"]
    assert node.forgotten() == [D]
    node.cluster([A, B, C, E], [A, B, C], listed=[A, B, C])
    assert node.round(1100 + GRACE + 120) == [f"forgot {E} after {GRACE + 120} s down and unlisted"]
    assert node.forgotten() == [E]


@pytest.mark.parametrize("failing", ["status", "peers"])
def test_a_failed_command_means_nothing_is_done_and_the_count_is_kept(node, failing):
    node.cluster([A, B, C], [A, B], listed=[A, B])
    node.round(1000)
    node.fails(failing)
    logged = node.round(1000 + 2 * GRACE)
    assert len(logged) == 1
    assert logged[0].startswith(f"{'cluster_status' if failing == 'status' else 'discover_peers'} failed (exit ")
    assert "nothing done this round" in logged[0]
    assert node.forgotten() == []
    assert node.counted() == {C: 1000}
    node.fails(failing, False)
    assert node.round(1000 + 2 * GRACE + 120) == [f"forgot {C} after {2 * GRACE + 120} s down and unlisted"]


def test_a_refused_forget_is_logged_and_tried_again_next_round(node):
    node.cluster([A, B, C], [A, B], listed=[A, B])
    node.round(1000)
    node.fails("forget")
    (logged,) = node.round(1000 + GRACE)
    assert logged.startswith(
        f"forget_cluster_node {C} failed (exit 70) after {GRACE} s down and unlisted: Removing node"
    )
    assert "failed_to_remove_node" in logged
    assert node.counted() == {C: 1000}
    node.fails("forget", False)
    assert node.round(1000 + GRACE + 120) == [f"forgot {C} after {GRACE + 120} s down and unlisted"]


@pytest.mark.parametrize(
    ("listed", "why"),
    [
        (None, f"discovery does not list {A}, which runs"),  # {"message":"No peers discovered"}
        ([B], f"discovery does not list {A}, which runs"),
        ([A, B.replace("rabbit@", "rabbit@x")], f"discovery does not list {B}, which runs"),  # names must match
    ],
)
def test_discovery_that_does_not_list_the_running_members_is_not_trusted(node, listed, why):
    node.cluster([A, B, C], [A, B], listed=listed)
    for now in (1000, 1000 + 2 * GRACE):
        assert node.round(now) == [f"{why}: its answer is not trusted, nothing done this round"]
    assert node.forgotten() == []


@pytest.mark.parametrize(
    ("status", "logged"),
    [
        ("", "cluster_status lists no member or no running node"),
        ('{"message":"something else"}', "cluster_status lists no member or no running node"),
        ('{"disk_nodes":[],"running_nodes":[]}', "cluster_status lists no member or no running node"),
    ],
)
def test_output_that_is_not_a_cluster_status_means_nothing_is_done(node, status, logged):
    node.cluster([A, B, C], [A, B], listed=[A, B])
    node.round(1000)
    (node.fake / "status.json").write_text(status)
    assert node.round(1000 + 2 * GRACE) == [f"{logged}: nothing done this round"]
    assert node.forgotten() == []
    assert node.counted() == {C: 1000}


def test_no_clock_means_nothing_is_done(node):
    node.cluster([A, B, C], [A, B], listed=[A, B])
    assert node.round("Thu Jan  1 00:00:00 UTC 1970") == [
        "no clock (Thu Jan  1 00:00:00 UTC 1970): nothing done this round"
    ]
    assert node.calls() == []


def test_the_grace_period_can_be_set_for_one_round_by_hand(tmp_path):
    node = Node(tmp_path, grace=0).cluster([A, B, C], [A, B], listed=[A, B])
    assert node.round(1000)[-1] == f"forgot {C} after 0 s down and unlisted"
