"""The broker seaport runs itself: a dedicated instance, its configuration and definitions as data."""

import base64
import hashlib
import json
import subprocess

import pytest

from seaport import ContainerService, EcsCluster, InvalidArgument, RabbitMessaging
from seaport import rabbitmq_config as config
from seaport.tools.testing import run
from tests.unit.references import CA, CLUSTER, DISCOVERY, NETWORK

IMAGE = "123456789012.dkr.ecr.us-east-1.amazonaws.com/app@sha256:" + "a" * 64


def test_a_dedicated_instance_is_one_instance_outside_the_capacity_provider_marked_by_an_attribute():
    plan = run(lambda: EcsCluster("main", {"network": NETWORK, "dedicated_instances": {"broker": "t3.medium"}}))
    group = plan.named("main-broker", "aws:autoscaling/group:Group")["inputs"]
    assert (group["minSize"], group["maxSize"], group["desiredCapacity"]) == (1, 1, 1)
    assert "instanceRefresh" not in group, "a refresh would replace the instance and lose its data"
    (provider,) = plan.of_type("aws:ecs/capacityProvider:CapacityProvider")
    assert (
        provider["inputs"]["autoScalingGroupProvider"]["autoScalingGroupArn"]
        == plan.named("main-instances", "aws:autoscaling/group:Group")["outputs"]["arn"]
    )
    template = plan.named("main-broker", "aws:ec2/launchTemplate:LaunchTemplate")["inputs"]
    assert template["instanceType"] == "t3.medium"
    assert template["metadataOptions"]["httpTokens"] == "required"
    script = base64.b64decode(template["userData"]).decode()
    assert 'ECS_INSTANCE_ATTRIBUTES={"seaport.dedicated": "broker"}' in script
    reference = plan.one("seaport:index:EcsCluster")["outputs"]["reference"]
    assert reference["dedicated_instances"] == ["broker"]


def test_several_dedicated_instances_of_one_name_take_the_instance_subnets_in_turn():
    """A clustered broker's nodes: one group of one instance each, the i-th in subnet i mod the subnets, all with
    the same attribute and one launch template; the name stays one entry of the reference."""
    args = {"network": NETWORK, "dedicated_instances": {"node": ""}, "dedicated_instance_counts": {"node": 3}}
    plan = run(lambda: EcsCluster("main", args))
    groups = [g for g in plan.of_type("aws:autoscaling/group:Group") if g["name"].startswith("main-node")]
    assert [g["name"] for g in groups] == ["main-node-1", "main-node-2", "main-node-3"]
    subnets = NETWORK["instance_subnet_ids"]
    assert [g["inputs"]["vpcZoneIdentifiers"] for g in groups] == [[subnets[0]], [subnets[1]], [subnets[0]]]
    template = plan.named("main-node", "aws:ec2/launchTemplate:LaunchTemplate")
    for group in groups:
        inputs = group["inputs"]
        assert (inputs["minSize"], inputs["maxSize"], inputs["desiredCapacity"]) == (1, 1, 1)
        assert "instanceRefresh" not in inputs
        assert inputs["launchTemplate"]["id"] == template["outputs"]["id"]
        assert {t["key"]: t["value"] for t in inputs["tags"]}["Name"] == group["name"]
    assert template["inputs"]["instanceType"] == "t3.small"  # "": the cluster's instance type
    script = base64.b64decode(template["inputs"]["userData"]).decode()
    assert 'ECS_INSTANCE_ATTRIBUTES={"seaport.dedicated": "node"}' in script
    assert plan.one("seaport:index:EcsCluster")["outputs"]["reference"]["dedicated_instances"] == ["node"]


@pytest.mark.parametrize(
    ("counts", "message"),
    [
        ({"broker": 0}, "dedicated_instance_counts.broker=0 must be between 1 and 100"),
        ({"cache": 2}, "dedicated_instance_counts.cache=2 names none of dedicated_instances"),
    ],
)
def test_dedicated_instance_counts_are_checked(counts, message):
    args = {"network": NETWORK, "dedicated_instances": {"broker": ""}, "dedicated_instance_counts": counts}
    error = run(lambda: EcsCluster("main", args), expect=InvalidArgument)
    assert message in str(error)


def test_a_service_on_a_dedicated_instance_is_placed_there_by_launch_type():
    args = {"cluster": CLUSTER, "container": {"image": IMAGE}, "dedicated_instance": "broker"}
    service = run(lambda: ContainerService("db", args)).one("aws:ecs/service:Service")["inputs"]
    assert service["launchType"] == "EC2" and "capacityProviderStrategies" not in service
    assert service["placementConstraints"] == [
        {"type": "memberOf", "expression": "attribute:seaport.dedicated == broker"}
    ]
    unknown = {**args, "dedicated_instance": "cache"}
    error = run(lambda: ContainerService("db", unknown), expect=InvalidArgument)
    assert [p.path for p in error.problems] == ["dedicated_instance"]
    assert "not one of the cluster's dedicated_instances ['broker']" in str(error)


def test_container_mode_refuses_a_cluster_without_the_broker_instance():
    cluster = {**CLUSTER, "dedicated_instances": []}
    args = {"cluster": cluster, "discovery": DISCOVERY, "ca": CA, "send_image": IMAGE, "receive_image": IMAGE}
    error = run(lambda: RabbitMessaging("mq", args), expect=InvalidArgument)
    assert "broker_mode='container' needs the cluster's dedicated instance 'broker'" in str(error)
    assert "dedicated_instances={'broker': ''}" in str(error)


def test_the_watermark_is_half_the_task_memory_and_every_key_is_one_rabbitmq_accepts():
    assert config.memory_watermark_mib(1024) == 512
    rendered = config.render(config.conf(1024))
    assert rendered.splitlines() == [
        "cluster_name = seaport",
        "vm_memory_high_watermark.absolute = 512MiB",
        "disk_free_limit.absolute = 2GB",
        "definitions.import_backend = local_filesystem",
        "definitions.local.path = /etc/rabbitmq/seaport-definitions.json",
        "definitions.skip_if_unchanged = true",
        "heartbeat = 30",
        # AMQP over TLS only, with the certificate the internal CA issued for "rabbitmq"
        "listeners.tcp = none",
        "listeners.ssl.default = 5671",
        "ssl_options.cacertfile = /etc/rabbitmq/tls/ca.pem",
        "ssl_options.certfile = /etc/rabbitmq/tls/cert.pem",
        "ssl_options.keyfile = /etc/rabbitmq/tls/key.pem",
        "ssl_options.verify = verify_none",
        "ssl_options.fail_if_no_peer_cert = false",
        "ssl_options.versions.1 = tlsv1.3",
        "ssl_options.versions.2 = tlsv1.2",
        "management.tcp.ip = 127.0.0.1",
    ]


@pytest.mark.parametrize("name", ["", "-x", "two words", "a\nb", "x" * 201, "seaport#1"])
def test_a_cluster_name_rabbitmq_conf_cannot_hold_is_refused_with_what_is_accepted(name):
    with pytest.raises(ValueError, match=r"cluster_name .*: use up to 200 letters, digits, '\.', '_' or '-'"):
        config.conf(1024, cluster_name=name)
    with pytest.raises(ValueError, match=r"cluster_name"):
        config.cluster_conf(1024, 3, cluster_name=name)


def test_the_password_hash_is_rabbitmqs_salted_sha256_and_stable():
    first = config.password_hash("s3cret", "seaport:seaport")
    raw = base64.b64decode(first)
    assert len(raw) == 36 and raw[4:] == hashlib.sha256(raw[:4] + b"s3cret").digest()
    assert config.password_hash("s3cret", "seaport:seaport") == first, "same password, same definitions"
    assert config.password_hash("other", "seaport:seaport") != first


def test_definitions_hold_the_user_with_publish_and_consume_rights_only():
    document = json.loads(config.definitions_json("seaport", "pw", "orders", "classic"))
    assert document["permissions"] == [
        {"user": "seaport", "vhost": "/", "configure": ".*", "write": ".*", "read": ".*"}
    ]
    assert document["users"][0]["tags"] == []
    (policy,) = document["policies"]
    assert "delivery-limit" not in policy["definition"]  # a classic queue has none (the policy would not apply)


@pytest.mark.parametrize(
    "keys",
    [config.conf(1024), {**config.cluster_conf(2048, 3), **config.cluster_conf_4x(3)}],
    ids=["container", "cluster"],
)
def test_definitions_are_loaded_the_one_way_4x_boots_with(keys):
    """RabbitMQ (3.10 and 4.x, rabbit_definitions) treats any ``definitions.*`` key as a pluggable import source
    and refuses to boot without ``definitions.import_backend``; the classic ``load_definitions`` beside it would
    also import the file a second time."""
    assert "load_definitions" not in keys
    assert keys["definitions.import_backend"] == "local_filesystem"
    assert keys["definitions.local.path"] == config.DEFINITIONS_FILE
    assert keys["definitions.skip_if_unchanged"] == "true"


INTER_NODE_TLS = """%% coding: utf-8
%% Erlang distribution over TLS (RabbitMQ nodes and CLI tools), written by seaport's wrapper.
%% Both ends accept only a certificate that chains to the internal CA and names "rabbitmq".
[{server,
  [{cacertfile, "/etc/rabbitmq/tls/ca.pem"},
   {certfile, "/etc/rabbitmq/tls/cert.pem"},
   {keyfile, "/etc/rabbitmq/tls/key.pem"},
   {verify, verify_peer},
   {fail_if_no_peer_cert, true},
   {verify_fun,
    {fun (_, {bad_cert, _} = Reason, _) -> {fail, Reason};
         (_, {extension, _}, State) -> {unknown, State};
         (_, valid, State) -> {valid, State};
         (Cert, valid_peer, State) ->
             case public_key:pkix_verify_hostname(Cert, [{dns_id, "rabbitmq"}]) of
                 true -> {valid, State};
                 false -> {fail, {bad_cert, hostname_check_failed}}
             end
     end, []}},
   {versions, ['tlsv1.2']}]},
 {client,
  [{cacertfile, "/etc/rabbitmq/tls/ca.pem"},
   {certfile, "/etc/rabbitmq/tls/cert.pem"},
   {keyfile, "/etc/rabbitmq/tls/key.pem"},
   {verify, verify_peer},
   {customize_hostname_check, [{match_fun, fun (_, {dNSName, "rabbitmq"}) -> true; (_, _) -> false end}]},
   {versions, ['tlsv1.2']}]}].
"""


def test_distribution_tls_checks_the_internal_ca_and_the_name_rabbitmq_on_both_ends():
    """The options file, exactly: a change to what a peer must prove shows up here (the real nodes read it in
    tests/apps/test_cluster.py). Server: verify_peer + a certificate required + the name rabbitmq (verify_fun, every
    chain error failed); client: verify_peer + the name rabbitmq whatever host was dialled (match_fun)."""
    assert config.inter_node_tls_config() == INTER_NODE_TLS
    # The same files as AMQP's listener: the certificate the internal CA issued for "rabbitmq", its key, the CA.
    for key in ("cacertfile", "certfile", "keyfile"):
        assert INTER_NODE_TLS.count(f'{{{key}, "{config.conf(1024)[f"ssl_options.{key}"]}"}}') == 2
    local = config.inter_node_tls_config('/tmp/a "b"/ca.pem', "/c/cert.pem", "/c/key.pem", peer_name="broker")
    assert '{cacertfile, "/tmp/a \\"b\\"/ca.pem"}' in local
    assert '[{dns_id, "broker"}]' in local and '{dNSName, "broker"}' in local and "rabbitmq" not in local


def test_a_clustered_node_and_its_cli_tools_use_distribution_over_tls():
    args = "-proto_dist inet_tls -ssl_dist_optfile /etc/rabbitmq/inter_node_tls.config"
    assert config.cluster_environment() == {
        "SEAPORT_RABBITMQ_INTER_NODE_TLS": INTER_NODE_TLS,
        "RABBITMQ_SERVER_ADDITIONAL_ERL_ARGS": args,  # the server (rabbitmq-server)
        "RABBITMQ_CTL_ERL_ARGS": args,  # rabbitmqctl, rabbitmq-diagnostics: the health check and operators
    }
    with pytest.raises(ValueError, match="split Erlang arguments on blanks"):
        config.distribution_erl_args("/tmp/with space/inter_node_tls.config")


def run_wrapper(command: list[str], root, environment: dict[str, str]) -> dict[str, tuple[int, str]]:
    """Run a start command's script with its paths under ``root`` and without chown/exec; path -> (mode, text)."""
    script = command[2].replace("/etc/rabbitmq", f"{root}/etc").replace("/var/lib/rabbitmq", f"{root}/var")
    script = script.replace("chown rabbitmq:rabbitmq", "true").replace("exec docker-entrypoint.sh", "exit 0; :")
    for folder in ("etc/conf.d", "var"):
        (root / folder).mkdir(parents=True)
    subprocess.run(["/bin/sh", "-c", script], env=environment, check=True)
    return {
        str(path.relative_to(root)): (path.stat().st_mode & 0o777, path.read_text())
        for path in sorted(root.rglob("*"))
        if path.is_file()
    }


WRAPPER_VARIABLES = {
    config.CONF_VARIABLE: "heartbeat = 30",
    config.DEFINITIONS_VARIABLE: "{}",
    config.CA_VARIABLE: "CA PEM",
    config.CERT_VARIABLE: "CERT PEM",
    config.KEY_VARIABLE: "KEY PEM",
    config.CONSUL_TOKEN_VARIABLE: "token",
    config.COOKIE_VARIABLE: "cookie",
}


def test_the_clustered_wrapper_writes_the_distribution_options_for_rabbitmq_alone(tmp_path):
    files = run_wrapper(config.CLUSTER_START_COMMAND, tmp_path, {**WRAPPER_VARIABLES, **config.cluster_environment()})
    assert files["etc/inter_node_tls.config"] == (0o600, INTER_NODE_TLS + "\n")
    assert files["etc/tls/key.pem"] == (0o600, "KEY PEM\n")
    assert files["var/.erlang.cookie"] == (0o400, "cookie")
    assert files["etc/tls/cert.pem"][0] == files["etc/tls/ca.pem"][0] == 0o640  # public, but not for everyone
    script = config.CLUSTER_START_COMMAND[2]
    chown = next(step for step in script.split("; ") if step.startswith("chown rabbitmq:rabbitmq "))
    assert {config.INTER_NODE_TLS_FILE, f"{config.TLS_DIR}/key.pem"} <= set(chown.split()[2:])
    assert script.index(chown) < script.index("exec docker-entrypoint.sh")
    # a task without the options in its environment does not start (set -u), instead of starting without TLS
    with pytest.raises(subprocess.CalledProcessError):
        run_wrapper(config.CLUSTER_START_COMMAND, tmp_path / "without", WRAPPER_VARIABLES)


def test_a_single_node_keeps_plain_distribution_and_its_health_check():
    """No peers: container mode writes no distribution options and its CLI tools (``rabbitmq-diagnostics ping``,
    the health check) talk plain distribution inside the container, whose distribution port is not published."""
    assert "inter_node_tls" not in " ".join(config.START_COMMAND)
    assert "INTER_NODE_TLS" not in " ".join(config.START_COMMAND)
