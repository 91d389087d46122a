"""brokerMode cluster (prod) and Amazon MQ's cluster deployment, checked by value in the plans."""

import base64
import json
import math
import re

import pytest

import settings
from seaport import InvalidArgument, RabbitMessaging, rabbitmq_config
from seaport.messaging import dedicated_instance_counts, dedicated_instances
from seaport.tools.testing import run, run_program, stack_config
from tests.unit.conftest import REPO
from tests.unit.references import CA, CLUSTER, DISCOVERY
from tests.unit.test_consul import RecordingMocks

IMAGE = "123456789012.dkr.ecr.us-east-1.amazonaws.com/app@sha256:" + "a" * 64
# A cluster as EcsCluster hands it over with the instances a clustered broker needs.
NODE_CLUSTER = {**CLUSTER, "dedicated_instances": ["broker-node"]}
BASE = {"cluster": NODE_CLUSTER, "discovery": DISCOVERY, "ca": CA, "send_image": IMAGE, "receive_image": IMAGE}


@pytest.fixture(scope="module")
def recorded_prod():
    mocks = RecordingMocks()
    plan = run_program(REPO / "__main__.py", stack="prod", config=stack_config(REPO, "prod"), mocks=mocks)
    return plan, mocks


def broker(plan):
    service = plan.named("messaging-broker", "aws:ecs/service:Service")
    task = plan.referenced(service["inputs"]["taskDefinition"])
    (container,) = json.loads(task["inputs"]["containerDefinitions"])
    return service["inputs"], task["inputs"], container


def test_prod_runs_three_nodes_one_per_dedicated_instance_in_the_instances_network(recorded_prod):
    plan, _ = recorded_prod
    service, task, container = broker(plan)
    assert service["desiredCount"] == 3
    assert task["networkMode"] == "host"
    assert service["placementConstraints"] == [
        {"type": "distinctInstance"},
        {"type": "memberOf", "expression": "attribute:seaport.dedicated == broker-node"},
    ]
    # the broker-node instances are outside the capacity provider: the service is placed by launch type
    assert service["launchType"] == "EC2" and "capacityProviderStrategies" not in service
    # one node at a time during a deployment: the other two keep the majority. ECS rounds the floor up, so 66 %
    # of 3 is 2 (67 % would be 3 of 3: no node could stop, and max 100 % lets none start beside it)
    assert (service["deploymentMinimumHealthyPercent"], service["deploymentMaximumPercent"]) == (66, 100)
    assert container["portMappings"] == [{"containerPort": 5671, "hostPort": 5671, "protocol": "tcp"}]  # AMQPS
    assert task["volumes"] == [{"name": "rabbitmq-data", "hostPath": "/var/lib/seaport/rabbitmq"}]
    assert not plan.of_type("aws:mq/broker:Broker")
    assert "seaport-broker" not in {g["name"] for g in plan.of_type("aws:autoscaling/group:Group")}


@pytest.mark.parametrize("nodes", [3, 5, 7])
def test_a_deployment_stops_exactly_one_node_at_a_time(nodes):
    """ECS keeps ceil(desired x minimum healthy percent) tasks running and starts none beyond maximum percent:
    with 100 % that is one node down at a time, whatever the number of nodes."""
    args = {**BASE, "broker_mode": "cluster", "broker_nodes": nodes}
    service = run(lambda: RabbitMessaging("mq", args)).named("mq-broker", "aws:ecs/service:Service")["inputs"]
    floor = math.ceil(nodes * service["deploymentMinimumHealthyPercent"] / 100)
    assert (floor, service["deploymentMaximumPercent"]) == (nodes - 1, 100)


# -- where the nodes live --------------------------------------------------------------------------------------


def container_instances(plan):
    """Every container instance the plan's Auto Scaling groups start (their minimum), as ECS places tasks on it:
    the group, whether the capacity provider owns it, the custom attributes it registers with, its subnets."""
    provided = {
        p["inputs"]["autoScalingGroupProvider"]["autoScalingGroupArn"]
        for p in plan.of_type("aws:ecs/capacityProvider:CapacityProvider")
    }
    found = []
    for group in plan.of_type("aws:autoscaling/group:Group"):
        template = plan.referenced(group["inputs"]["launchTemplate"]["id"])
        script = base64.b64decode(template["inputs"]["userData"]).decode()
        if "ECS_CLUSTER=" not in script:
            continue  # not a container instance (the Consul servers)
        match = re.search(r"^ECS_INSTANCE_ATTRIBUTES=(.*)$", script, re.MULTILINE)
        for index in range(group["inputs"]["minSize"]):
            found.append(
                {
                    "id": f"{group['name']}/{index}",
                    "group": group["name"],
                    "provided": group["outputs"]["arn"] in provided,
                    "attributes": json.loads(match.group(1)) if match else {},
                    "subnets": group["inputs"]["vpcZoneIdentifiers"],
                }
            )
    return found


def eligible(service, instances, occupied=()):
    """The instances ECS may place a task of ``service`` on, with ``occupied`` holding one of its tasks already:
    a capacity provider strategy reaches only the provider's instances, a launch type all of them; then the
    placement constraints (the two kinds seaport uses)."""
    inputs = service["inputs"]
    candidates = [i for i in instances if i["provided"]] if inputs.get("capacityProviderStrategies") else instances
    for constraint in inputs.get("placementConstraints") or []:
        if constraint["type"] == "distinctInstance":
            candidates = [i for i in candidates if i["id"] not in occupied]
        else:
            attribute, value = re.fullmatch(r"attribute:(\S+) == (\S+)", constraint["expression"]).groups()
            candidates = [i for i in candidates if i["attributes"].get(attribute) == value]
    return {i["id"] for i in candidates}


def node_groups(plan):
    return [g for g in plan.of_type("aws:autoscaling/group:Group") if g["name"].startswith("seaport-broker-node-")]


def test_each_node_has_an_instance_of_its_own_in_its_own_az(recorded_prod):
    """brokerNodes Auto Scaling groups of exactly one instance, outside the capacity provider and its instance
    refreshes, each in one subnet of its own: together the three AZs' instance subnets."""
    plan, _ = recorded_prod
    groups = node_groups(plan)
    assert [g["name"] for g in groups] == [f"seaport-broker-node-{n}" for n in (1, 2, 3)]
    private = [s["outputs"]["id"] for s in plan.of_type("aws:ec2/subnet:Subnet") if "private" in s["name"]]
    assert len(private) == 3
    assert [g["inputs"]["vpcZoneIdentifiers"] for g in groups] == [[subnet] for subnet in private]
    (provider,) = plan.of_type("aws:ecs/capacityProvider:CapacityProvider")
    for group in groups:
        inputs = group["inputs"]
        assert (inputs["minSize"], inputs["maxSize"], inputs["desiredCapacity"]) == (1, 1, 1), group["name"]
        assert "instanceRefresh" not in inputs, "a refresh would replace every node's instance, name and data"
        assert group["outputs"]["arn"] != provider["inputs"]["autoScalingGroupProvider"]["autoScalingGroupArn"]
        tags = {t["key"]: t["value"] for t in inputs["tags"]}
        assert tags["seaport.dedicated"] == "broker-node" and "AmazonECSManaged" not in tags
    # one launch template for the three: prod's brokerInstanceType, the cluster's security group and role
    (template,) = {plan.referenced(g["inputs"]["launchTemplate"]["id"])["name"] for g in groups}
    template = plan.named(template, "aws:ec2/launchTemplate:LaunchTemplate")["inputs"]
    cluster = plan.named("seaport-instances", "aws:ec2/launchTemplate:LaunchTemplate")["inputs"]
    assert (template["instanceType"], cluster["instanceType"]) == ("t3.medium", "m6i.large")
    assert template["iamInstanceProfile"] == cluster["iamInstanceProfile"]
    # the instances' security group, which admits the cluster's ports from itself: the nodes reach each other
    (group,) = {sg for t in (template, cluster) for sg in t["networkInterfaces"][0]["securityGroups"]}
    assert group == plan.named("seaport-instances", "aws:ec2/securityGroup:SecurityGroup")["outputs"]["id"]
    admitted = {
        (r["inputs"]["fromPort"], r["inputs"]["toPort"])
        for r in plan.of_type("aws:vpc/securityGroupIngressRule:SecurityGroupIngressRule")
        if r["inputs"]["securityGroupId"] == group and r["inputs"].get("referencedSecurityGroupId") == group
    }
    assert {(4369, 4369), (25672, 25672), (35672, 35682), (5671, 5671)} <= admitted


def test_a_node_can_only_start_on_the_instance_it_left(recorded_prod):
    """Placement as ECS evaluates it: the broker's tasks fit the three broker-node instances and nothing else,
    and with the other nodes running, a restarted or redeployed node has exactly one instance to go to: its own
    (its name, the instance's DNS name, and its data come back with it)."""
    plan, _ = recorded_prod
    instances = container_instances(plan)
    service = plan.named("messaging-broker", "aws:ecs/service:Service")
    homes = {i["id"] for i in instances if i["group"].startswith("seaport-broker-node-")}
    assert len(homes) == 3 and len(instances) == 3 + 3  # minInstances of the capacity provider's group, and theirs
    assert eligible(service, instances) == homes
    for home in sorted(homes):
        assert eligible(service, instances, occupied=homes - {home}) == {home}


@pytest.mark.parametrize("stack", ["dev_plan", "prod_plan"])
def test_no_other_service_lands_on_the_broker_instances_and_every_instance_gets_a_consul_agent(stack, request):
    """Every other replica service is placed by the capacity provider, which owns none of the broker's
    instances; the Consul agent (DAEMON, no constraint) runs on all of them, since the nodes register in Consul
    through their instance's agent (container mode's dedicated instance likewise)."""
    plan = request.getfixturevalue(stack)
    instances = container_instances(plan)
    dedicated = {i["id"] for i in instances if i["attributes"]}
    assert dedicated and all(not i["provided"] for i in instances if i["id"] in dedicated)
    for service in plan.of_type("aws:ecs/service:Service"):
        if service["name"] == "consul-agent":
            assert service["inputs"]["schedulingStrategy"] == "DAEMON"
            assert eligible(service, instances) == {i["id"] for i in instances}
        elif service["name"] != "messaging-broker":
            assert eligible(service, instances), service["name"]
            assert not eligible(service, instances) & dedicated, service["name"]


def test_the_dev_stack_keeps_its_single_broker_instance(dev_plan):
    """Container mode is unchanged: one broker instance, in any of the instance subnets, and no node instance."""
    groups = {g["name"]: g["inputs"] for g in dev_plan.of_type("aws:autoscaling/group:Group")}
    assert not [name for name in groups if name.startswith("seaport-broker-node")]
    instances = dev_plan.named("seaport-instances", "aws:autoscaling/group:Group")["inputs"]
    assert groups["seaport-broker"]["vpcZoneIdentifiers"] == instances["vpcZoneIdentifiers"]
    service = dev_plan.named("messaging-broker", "aws:ecs/service:Service")["inputs"]
    assert service["placementConstraints"] == [
        {"type": "memberOf", "expression": "attribute:seaport.dedicated == broker"}
    ]


def test_with_fewer_azs_than_nodes_the_nodes_take_the_subnets_in_turn():
    """dev's two AZs with brokerMode cluster (and minInstances 1: the nodes no longer need the cluster's
    instances): nodes 1 and 3 share the first AZ."""
    config = {**stack_config(REPO, "dev"), "seaport:brokerMode": "cluster"}
    plan = run_program(REPO / "__main__.py", stack="dev", config=config)
    public = [s["outputs"]["id"] for s in plan.of_type("aws:ec2/subnet:Subnet") if "public" in s["name"]]
    assert len(public) == 2  # dev's instances sit in the public subnets
    assert [g["inputs"]["vpcZoneIdentifiers"] for g in node_groups(plan)] == [[public[0]], [public[1]], [public[0]]]
    assert eligible(plan.named("messaging-broker", "aws:ecs/service:Service"), container_instances(plan)) == {
        f"seaport-broker-node-{n}/0" for n in (1, 2, 3)
    }
    # without brokerInstanceType, the broker's instances are of the cluster's type
    templates = {
        plan.referenced(g["inputs"]["launchTemplate"]["id"])["inputs"]["instanceType"] for g in node_groups(plan)
    }
    assert templates == {stack_config(REPO, "dev")["seaport:instanceType"]}


def test_a_bad_broker_instance_type_is_refused_by_name():
    config = {**stack_config(REPO, "dev"), "seaport:brokerInstanceType": "large"}
    with pytest.raises(settings.SettingsError, match=r"brokerInstanceType.*is not an EC2 instance type"):
        run_program(REPO / "__main__.py", stack="dev", config=config)


def test_the_nodes_form_the_cluster_through_consul_and_keep_three_replicas(recorded_prod):
    plan, _ = recorded_prod
    _, _, container = broker(plan)
    variables = {e["name"]: e["value"] for e in container["environment"]}
    conf = dict(line.split(" = ", 1) for line in variables["SEAPORT_RABBITMQ_CONF"].splitlines())
    assert conf["cluster_formation.peer_discovery_backend"] == "consul"
    assert (conf["cluster_formation.consul.host"], conf["cluster_formation.consul.port"]) == ("localhost", "8500")
    assert conf["cluster_formation.consul.svc"] == "rabbitmq"  # what send and receive look up
    # A node deregisters from Consul when it stops and its check fails while it restarts: forced clean-up would
    # evict every node a deployment restarts (an evicted node cannot rejoin with its data). Log, never remove.
    assert conf["cluster_formation.node_cleanup.only_log_warning"] == "true"
    assert conf["cluster_partition_handling"] == "pause_minority"
    assert conf["cluster_name"] == "seaport-prod"  # one name for all nodes, none looked up per connection
    conf_4x = dict(line.split(" = ", 1) for line in variables["SEAPORT_RABBITMQ_CONF_4X"].splitlines())
    assert conf_4x["quorum_queue.continuous_membership_reconciliation.enabled"] == "true"
    assert conf_4x["quorum_queue.continuous_membership_reconciliation.target_group_size"] == "3"
    assert variables["RABBITMQ_USE_LONGNAME"] == "true"
    assert "acl_token" not in variables["SEAPORT_RABBITMQ_CONF"], "the Consul token comes from a secret"


def test_the_nodes_talk_to_each_other_and_to_the_cli_tools_over_tls(recorded_prod):
    """Distribution over TLS with the broker's certificate (issued by the internal CA for rabbitmq): the options
    file's text for the wrapper, the server's and the CLI tools' (the health check's) Erlang arguments; the same
    ports as before between the instances, 25672 and the CLI range now carrying TLS."""
    plan, _ = recorded_prod
    _, _, container = broker(plan)
    variables = {e["name"]: e["value"] for e in container["environment"]}
    args = "-proto_dist inet_tls -ssl_dist_optfile /etc/rabbitmq/inter_node_tls.config"
    assert variables["RABBITMQ_SERVER_ADDITIONAL_ERL_ARGS"] == variables["RABBITMQ_CTL_ERL_ARGS"] == args
    assert variables["SEAPORT_RABBITMQ_INTER_NODE_TLS"] == rabbitmq_config.inter_node_tls_config()
    assert container["healthCheck"]["command"] == ["CMD", "rabbitmq-diagnostics", "-q", "check_running"]
    assert "SEAPORT_RABBITMQ_INTER_NODE_TLS" in container["command"][2]  # written by the wrapper
    # the certificate both ends present and check: the internal CA's, for the name the options file checks
    assert plan.named("messaging-broker-tls-request", "tls:index/certRequest:CertRequest")["inputs"]["dnsNames"] == [
        "rabbitmq",
        "localhost",
    ]
    # each node presents it as a client too (it dials its peers): OTP refuses a client certificate without clientAuth
    certificate = plan.named("messaging-broker-tls-cert", "tls:index/locallySignedCert:LocallySignedCert")
    assert {"server_auth", "client_auth"} <= set(certificate["inputs"]["allowedUses"])
    ca = plan.one("seaport:index:CertificateAuthority")["outputs"]["certificate_pem"]
    assert variables["SEAPORT_RABBITMQ_CA_PEM"] == ca  # the options file's cacertfile: the internal CA only
    ports = {
        (r["inputs"]["fromPort"], r["inputs"]["toPort"])
        for r in plan.of_type("aws:vpc/securityGroupIngressRule:SecurityGroupIngressRule")
        if r["name"].startswith("messaging-broker-")
    }
    assert ports == {(5671, 5671), (4369, 4369), (25672, 25672), (35672, 35682)}


def test_a_single_node_broker_keeps_plain_distribution(dev_plan):
    """Container mode (dev) has no peers: no distribution options, and ``rabbitmq-diagnostics ping`` (its health
    check) talks plain distribution inside the container, whose distribution port is not published."""
    service = dev_plan.named("messaging-broker", "aws:ecs/service:Service")
    task = dev_plan.referenced(service["inputs"]["taskDefinition"])
    container = next(c for c in json.loads(task["inputs"]["containerDefinitions"]) if c["name"] == "rabbitmq")
    names = {e["name"] for e in container["environment"]}
    assert not names & {
        "SEAPORT_RABBITMQ_INTER_NODE_TLS",
        "RABBITMQ_SERVER_ADDITIONAL_ERL_ARGS",
        "RABBITMQ_CTL_ERL_ARGS",
    }
    assert "inter_node_tls" not in container["command"][2]
    assert container["healthCheck"]["command"] == ["CMD", "rabbitmq-diagnostics", "-q", "ping"]
    assert [m["containerPort"] for m in container["portMappings"]] == [5671]  # AMQPS only: no distribution port


def test_the_erlang_cookie_is_only_a_secret(recorded_prod):
    plan, mocks = recorded_prod
    _, _, container = broker(plan)
    secrets = {s["name"]: s["valueFrom"] for s in container["secrets"]}
    cookie = plan.named("messaging-erlang-cookie", "aws:secretsmanager/secret:Secret")["outputs"]["arn"]
    token = plan.named("consul-broker-token", "aws:secretsmanager/secret:Secret")["outputs"]["arn"]
    assert secrets["SEAPORT_ERLANG_COOKIE"] == cookie and secrets["SEAPORT_CONSUL_TOKEN"] == token
    assert "SEAPORT_ERLANG_COOKIE" not in {e["name"] for e in container["environment"]}
    value = mocks.generated["messaging-erlang-cookie.result"]
    assert len(value) == 64 and value not in json.dumps(plan.to_json())
    command = " ".join(container["command"])
    # written to the cookie file (0400), then removed from the environment before the server starts
    assert "chmod 0400 /var/lib/rabbitmq/.erlang.cookie" in command
    assert (
        "unset SEAPORT_RABBITMQ_DEFINITIONS SEAPORT_RABBITMQ_KEY_PEM SEAPORT_CONSUL_TOKEN SEAPORT_ERLANG_COOKIE"
        in command
    )


def test_the_nodes_do_not_need_the_clusters_instances():
    """The nodes have instances of their own: minInstances below brokerNodes is fine."""
    values = {"brokerMode": "cluster", "minInstances": 1, "allowPlainHttp": True}  # the others: their defaults
    assert settings.from_values(values, "test")["cluster"]["min_instances"] == 1


def test_cluster_mode_needs_the_broker_node_instances():
    """Without the cluster's broker-node instances the nodes could not be placed: refused before anything is
    created, saying what EcsCluster needs."""
    args = {**BASE, "cluster": {**CLUSTER, "dedicated_instances": ["broker"]}, "broker_mode": "cluster"}
    error = run(lambda: RabbitMessaging("mq", args), expect=InvalidArgument)
    assert [p.path for p in error.problems] == ["broker_mode"]
    assert "broker_mode='cluster' needs the cluster's dedicated instance 'broker-node'" in str(error)
    assert "dedicated_instances={'broker-node': ''} and dedicated_instance_counts={'broker-node': 3}" in str(error)
    assert dedicated_instances({"broker_mode": "cluster"}) == {"broker-node": ""}  # the cluster's instance type
    assert dedicated_instance_counts({"broker_mode": "cluster", "broker_nodes": 5}) == {"broker-node": 5}
    for mode in ("container", "amazonmq"):
        assert dedicated_instance_counts({"broker_mode": mode}) == {}
    assert dedicated_instances({"broker_mode": "amazonmq"}) == {}


def test_cluster_mode_needs_the_brokers_consul_token():
    discovery = {k: v for k, v in DISCOVERY.items() if k != "broker_token_secret_arn"}
    args = {**BASE, "discovery": discovery}
    error = run(lambda: RabbitMessaging("mq", {**args, "broker_mode": "cluster"}), expect=InvalidArgument)
    assert [p.path for p in error.problems] == ["discovery.broker_token_secret_arn"]
    error = run(
        lambda: RabbitMessaging("mq", {**args, "broker_mode": "cluster", "broker_nodes": 4}), expect=InvalidArgument
    )
    assert "broker_nodes=4 must be one of 3, 5, 7" in str(error)


def test_prod_with_amazon_mq_plans_a_multi_az_cluster():
    config = {**stack_config(REPO, "prod"), "seaport:brokerMode": "amazonmq"}
    plan = run_program(REPO / "__main__.py", stack="prod", config=config)
    mq = plan.one("aws:mq/broker:Broker")["inputs"]
    assert mq["deploymentMode"] == "CLUSTER_MULTI_AZ"
    assert (mq["engineVersion"], mq["hostInstanceType"]) == ("4.2", "mq.m7g.large")
    private = sorted(s["outputs"]["id"] for s in plan.of_type("aws:ec2/subnet:Subnet") if "private" in s["name"])
    assert sorted(mq["subnetIds"]) == private and len(private) == 3
    assert mq["publiclyAccessible"] is False
    # no broker instances: only the cluster's capacity and the Consul servers
    assert {g["name"] for g in plan.of_type("aws:autoscaling/group:Group")} == {"seaport-instances", "consul-servers"}
    assert {i["group"] for i in container_instances(plan)} == {"seaport-instances"}


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (
            {
                "amazon_mq_deployment_mode": "CLUSTER_MULTI_AZ",
                "amazon_mq_instance_type": "mq.t3.micro",
                "amazon_mq_engine_version": "3.13",
            },
            "amazon_mq_instance_type='mq.t3.micro' runs single-instance brokers only",
        ),
        (
            {"amazon_mq_instance_type": "mq.m5.large"},
            "cannot run amazon_mq_engine_version=4.2 (RabbitMQ 4.x runs on mq.m7g.* only)",
        ),
        ({"amazon_mq_deployment_mode": "ACTIVE_STANDBY_MULTI_AZ"}, "must be one of SINGLE_INSTANCE, CLUSTER_MULTI_AZ"),
    ],
)
def test_amazon_mq_pairings_are_checked_before_anything_is_created(args, message):
    base = {"cluster": CLUSTER, "send_image": IMAGE, "receive_image": IMAGE, "broker_mode": "amazonmq"}
    error = run(lambda: RabbitMessaging("mq", {**base, **args}), expect=InvalidArgument)
    assert message in str(error)
