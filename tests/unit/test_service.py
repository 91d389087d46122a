"""ContainerService: logs, least-privilege roles, task definition, service placement, deployment and ordering."""

import json

import pytest

from seaport import ContainerService
from seaport.tools.mocks import ACCOUNT, ecr_registry
from seaport.tools.testing import run
from tests.unit.programs import on_a_new_cluster
from tests.unit.references import CLUSTER, CLUSTER_ARN, DISCOVERY
from tests.unit.refusals import assert_refused, refused_paths

ECR_IMAGE = f"{ecr_registry(ACCOUNT, 'us-east-1')}/app-1234567@sha256:" + "a" * 64
SECRET = "arn:aws:secretsmanager:us-east-1:123456789012:secret:db-AbCdEf"
CONTAINER = {"image": ECR_IMAGE, "port": 8080, "cpu": 128, "memory_mib": 192}


def service_plan(name="app", **args):
    base = {"cluster": CLUSTER, "container": CONTAINER}
    return run(lambda: ContainerService(name, {**base, **args}))


def definitions(plan):
    return json.loads(plan.one("aws:ecs/taskDefinition:TaskDefinition")["inputs"]["containerDefinitions"])


def policy(plan, name):
    return json.loads(plan.named(name, "aws:iam/rolePolicy:RolePolicy")["inputs"]["policy"])


def ecs_service(plan):
    return plan.one("aws:ecs/service:Service")["inputs"]


@pytest.fixture(scope="module")
def plan():
    return service_plan(
        container={
            **CONTAINER,
            "environment": {"MODE": "fast"},
            "secrets": {"DB_PASSWORD": SECRET + ":password::"},
            "health_check": {"command": ["CMD", "python", "-m", "apps.common.healthcheck"]},
        },
        sidecars=[{"name": "helper", "image": "busybox:1.36", "command": ["sleep", "infinity"]}],
        stop_timeout_seconds=45,
        log_retention_days=14,
        desired_tasks=3,
    )


def test_log_group_has_the_retention_and_every_container_logs_to_it(plan):
    group = plan.one("aws:cloudwatch/logGroup:LogGroup")
    assert group["inputs"]["retentionInDays"] == 14
    for definition in definitions(plan):
        options = definition["logConfiguration"]["options"]
        assert definition["logConfiguration"]["logDriver"] == "awslogs"
        assert options["awslogs-group"] == group["outputs"]["name"]
        assert options["awslogs-region"] == "us-east-1"


def test_bridge_mode_with_dynamic_host_ports(plan):
    task = plan.one("aws:ecs/taskDefinition:TaskDefinition")["inputs"]
    assert task["networkMode"] == "bridge" and task["requiresCompatibilities"] == ["EC2"]
    main = definitions(plan)[0]
    assert main["portMappings"] == [{"containerPort": 8080, "hostPort": 0, "protocol": "tcp"}]
    assert (main["cpu"], main["memory"], main["essential"]) == (128, 192, True)


def test_environment_secrets_health_check_and_stop_timeout(plan):
    main, helper = definitions(plan)
    assert main["environment"] == [{"name": "MODE", "value": "fast"}]
    assert main["secrets"] == [{"name": "DB_PASSWORD", "valueFrom": SECRET + ":password::"}]
    assert main["healthCheck"]["command"] == ["CMD", "python", "-m", "apps.common.healthcheck"]
    assert main["healthCheck"]["interval"] == 15 and main["healthCheck"]["retries"] == 3
    assert main["stopTimeout"] == helper["stopTimeout"] == 45
    assert main["readonlyRootFilesystem"] is True
    assert helper["essential"] is False and helper["command"] == ["sleep", "infinity"]


def test_execution_role_reads_only_its_secrets_its_repository_and_its_logs(plan):
    document = policy(plan, "app-execution")
    by_action = {action: s["Resource"] for s in document["Statement"] for action in s["Action"]}
    assert by_action["secretsmanager:GetSecretValue"] == [SECRET]
    assert by_action["ecr:BatchGetImage"] == ["arn:aws:ecr:us-east-1:123456789012:repository/app-1234567"]
    log_group = plan.one("aws:cloudwatch/logGroup:LogGroup")["outputs"]["arn"]
    assert by_action["logs:PutLogEvents"] == [f"{log_group}:*"]
    assert by_action["ecr:GetAuthorizationToken"] == ["*"]  # the one action AWS can't scope
    assert all(s["Effect"] == "Allow" and "*" not in "".join(s["Action"]) for s in document["Statement"])
    execution = plan.named("app-execution", "aws:iam/rolePolicy:RolePolicy")
    roles = {r["name"]: r for r in plan.of_type("aws:iam/role:Role")}
    assert execution["inputs"]["role"] == roles["app-execution"]["outputs"]["name"]
    task = plan.one("aws:ecs/taskDefinition:TaskDefinition")["inputs"]
    assert task["executionRoleArn"] == roles["app-execution"]["outputs"]["arn"]
    assert task["taskRoleArn"] == roles["app-task"]["outputs"]["arn"]


def test_roles_trust_only_ecs_tasks_of_this_account(plan):
    for role in plan.of_type("aws:iam/role:Role"):
        (statement,) = json.loads(role["inputs"]["assumeRolePolicy"])["Statement"]
        assert statement["Principal"] == {"Service": "ecs-tasks.amazonaws.com"}
        assert statement["Condition"] == {"StringEquals": {"aws:SourceAccount": "123456789012"}}


def test_task_role_gets_no_policy_unless_asked(plan):
    assert [p["name"] for p in plan.of_type("aws:iam/rolePolicy:RolePolicy")] == ["app-execution"]
    statements = [{"Effect": "Allow", "Action": ["ec2:DescribeInstances"], "Resource": ["*"]}]
    with_policy = service_plan(task_role_statements=statements)
    assert policy(with_policy, "app-task")["Statement"] == statements


def test_replicas_run_on_the_capacity_provider_with_circuit_breaker_and_az_spread(plan):
    service = ecs_service(plan)
    assert service["cluster"] == CLUSTER_ARN
    assert service["capacityProviderStrategies"] == [
        {"capacityProvider": CLUSTER["capacity_provider"], "weight": 1, "base": 0}
    ]
    assert "launchType" not in service
    assert service["deploymentCircuitBreaker"] == {"enable": True, "rollback": True}
    assert (service["deploymentMinimumHealthyPercent"], service["deploymentMaximumPercent"]) == (100, 200)
    assert service["orderedPlacementStrategies"] == [
        {"type": "spread", "field": "attribute:ecs.availability-zone"},
        {"type": "binpack", "field": "memory"},
    ]
    assert service["desiredCount"] == 3 and service["schedulingStrategy"] == "REPLICA"
    assert service["taskDefinition"] == plan.one("aws:ecs/taskDefinition:TaskDefinition")["outputs"]["arn"]
    assert "loadBalancers" not in service and "healthCheckGracePeriodSeconds" not in service


def test_replicas_use_the_capacity_provider_of_a_cluster_in_the_same_program():
    plan = on_a_new_cluster(ContainerService, "app", CONTAINER)
    (strategy,) = ecs_service(plan)["capacityProviderStrategies"]
    assert strategy["capacityProvider"] == plan.one("aws:ecs/capacityProvider:CapacityProvider")["outputs"]["name"]
    assert ecs_service(plan)["cluster"] == plan.one("aws:ecs/cluster:Cluster")["outputs"]["arn"]


def test_the_service_waits_for_the_capacity_provider_association():
    """ECS refuses a strategy naming a provider not yet associated with the cluster (deploy-day issue 1)."""
    plan = on_a_new_cluster(ContainerService, "app", CONTAINER)
    association = plan.one("aws:ecs/clusterCapacityProviders:ClusterCapacityProviders")
    assert plan.depends_on(plan.one("aws:ecs/service:Service"), association)


def test_a_daemon_has_no_circuit_breaker_and_no_capacity_provider_strategy():
    service = ecs_service(service_plan(scheduling="DAEMON"))
    assert service["schedulingStrategy"] == "DAEMON" and service["launchType"] == "EC2"
    assert "deploymentCircuitBreaker" not in service  # ECS never trips it without a desired count
    assert "capacityProviderStrategies" not in service  # ECS refuses a strategy on a DAEMON service
    assert "desiredCount" not in service and "orderedPlacementStrategies" not in service


def test_daemon_in_host_mode_runs_everywhere_with_fixed_ports():
    plan = service_plan(scheduling="DAEMON", network_mode="host")
    service = ecs_service(plan)
    assert (service["deploymentMinimumHealthyPercent"], service["deploymentMaximumPercent"]) == (0, 100)
    task = plan.one("aws:ecs/taskDefinition:TaskDefinition")["inputs"]
    assert task["networkMode"] == "host"
    assert definitions(plan)[0]["portMappings"][0]["hostPort"] == 8080


def test_explicit_deployment_percentages_win_over_the_daemon_defaults():
    service = ecs_service(service_plan(scheduling="DAEMON", min_healthy_percent=50, max_percent=150))
    assert (service["deploymentMinimumHealthyPercent"], service["deploymentMaximumPercent"]) == (50, 150)


def test_load_balancer_attachment_uses_the_main_container_port():
    target_group = "arn:aws:elasticloadbalancing:us-east-1:123456789012:targetgroup/tg/0123456789abcdef"
    service = ecs_service(service_plan(target_group_arn=target_group))
    assert service["loadBalancers"] == [{"targetGroupArn": target_group, "containerName": "app", "containerPort": 8080}]
    assert service["healthCheckGracePeriodSeconds"] == 60
    later = ecs_service(service_plan(target_group_arn=target_group, health_check_grace_period_seconds=300))
    assert later["healthCheckGracePeriodSeconds"] == 300


def test_placement_constraints_pass_through():
    constraints = [{"type": "distinctInstance"}, {"type": "memberOf", "expression": "attribute:seaport.broker == true"}]
    service = ecs_service(service_plan(placement_constraints=constraints))
    assert service["placementConstraints"] == constraints


def test_docker_volume_and_mount_points():
    plan = service_plan(
        volumes=[{"name": "data", "docker_volume": True}],
        container={"image": ECR_IMAGE, "mount_points": [{"source_volume": "data", "container_path": "/data"}]},
    )
    (volume,) = plan.one("aws:ecs/taskDefinition:TaskDefinition")["inputs"]["volumes"]
    assert volume["dockerVolumeConfiguration"] == {"scope": "shared", "autoprovision": True, "driver": "local"}
    assert definitions(plan)[0]["mountPoints"] == [
        {"sourceVolume": "data", "containerPath": "/data", "readOnly": False}
    ]


def test_a_volume_without_docker_volume_is_a_host_path():
    plan = service_plan(
        volumes=[{"name": "data", "host_path": "/srv/data"}],
        container={"image": ECR_IMAGE, "mount_points": [{"source_volume": "data", "container_path": "/data"}]},
    )
    (volume,) = plan.one("aws:ecs/taskDefinition:TaskDefinition")["inputs"]["volumes"]
    assert volume == {"name": "data", "hostPath": "/srv/data"}


def test_family_names_project_stack_and_component(plan):
    assert plan.one("aws:ecs/taskDefinition:TaskDefinition")["inputs"]["family"] == "seaport-test-app"
    assert service_plan(family="custom").one("aws:ecs/taskDefinition:TaskDefinition")["inputs"]["family"] == "custom"


def test_an_autoscaled_service_is_still_created_with_its_first_count():
    assert ecs_service(service_plan(autoscaled=True, desired_tasks=2))["desiredCount"] == 2


def test_tags_name_every_resource_and_say_how_the_service_is_wired():
    plan = service_plan(
        tags={"team": "platform"}, discovery=DISCOVERY, discovers=["weather", "stocks"], consul_service={"name": "web"}
    )
    tags = ecs_service(plan)["tags"]
    assert tags == {
        "team": "platform",
        "seaport:discovers": "stocks weather",
        "seaport:consul-service": "web",
        "Name": "app",
    }
    assert ecs_service(plan)["propagateTags"] == "SERVICE" and ecs_service(plan)["enableEcsManagedTags"] is True
    for resource in plan.resources:
        if resource["custom"] and resource["type"] != "aws:iam/rolePolicy:RolePolicy":  # inline policies have none
            assert resource["inputs"]["tags"]["team"] == "platform", resource["type"]


def test_outputs_name_the_created_resources(plan):
    outputs = plan.one("seaport:index:ContainerService")["outputs"]
    service = plan.one("aws:ecs/service:Service")["outputs"]
    roles = {r["name"]: r["outputs"] for r in plan.of_type("aws:iam/role:Role")}
    assert outputs["service_name"] == service["name"] and outputs["service_arn"] == service["id"]
    assert outputs["task_definition_arn"] == plan.one("aws:ecs/taskDefinition:TaskDefinition")["outputs"]["arn"]
    assert outputs["log_group_name"] == plan.one("aws:cloudwatch/logGroup:LogGroup")["outputs"]["name"]
    assert outputs["execution_role_arn"] == roles["app-execution"]["arn"]
    assert (outputs["task_role_arn"], outputs["task_role_name"]) == (
        roles["app-task"]["arn"],
        roles["app-task"]["name"],
    )


def test_every_child_is_parented_to_the_component(plan):
    component = plan.one("seaport:index:ContainerService")
    custom = [r for r in plan.resources if r["custom"]]
    assert custom and all(r["parent"] == component["urn"] for r in custom)


@pytest.mark.parametrize(
    ("args", "path", "message"),
    [
        ({"cluster": None}, "cluster", "is required"),
        ({"container": {"port": 80}}, "container.image", "is required"),
        (
            {"container": {"image": "x", "environment": {"DB_PASSWORD": "hunter2"}}},
            "container.environment.DB_PASSWORD",
            "looks like a secret",
        ),
        (
            {"container": {"image": "x", "environment": {"API_TOKEN": "t"}}},
            "container.environment.API_TOKEN",
            "pass it in secrets",
        ),
        (
            {"container": {"image": "x", "environment": {"1BAD": "v"}}},
            "container.environment.1BAD",
            "is not a valid variable name",
        ),
        (
            {"container": {"image": "x", "secrets": {"PASSWORD": "plain-text"}}},
            "container.secrets.PASSWORD",
            "is not a Secrets Manager",
        ),
        (
            {"container": {"image": "x", "port": 70000}},
            "container.port",
            "container.port=70000 must be between 1 and 65535",
        ),
        (
            {"container": {"image": "x"}, "target_group_arn": "arn"},
            "container.port",
            "is required with a load balancer",
        ),
        ({"scheduling": "ONCE"}, "scheduling", "scheduling='ONCE' must be one of REPLICA, DAEMON"),
        ({"network_mode": "awsvpc"}, "network_mode", "network_mode='awsvpc' must be one of bridge, host"),
        ({"log_retention_days": 2}, "log_retention_days", "log_retention_days=2 must be one of 1, 3, 5"),
        ({"stop_timeout_seconds": 600}, "stop_timeout_seconds", "stop_timeout_seconds=600 must be between 2 and 120"),
        ({"desired_tasks": -1}, "desired_tasks", "desired_tasks=-1 must be between 0 and 1000"),
        ({"max_percent": 50}, "max_percent", "max_percent=50 must be between 100 and 400"),
        ({"placement_constraints": [{"type": "anywhere"}]}, "placement_constraints[0].type", "must be one of"),
        ({"sidecars": [{"name": "app", "image": "x"}]}, "sidecars", "need a name each, unique in the task"),
        (
            {"container": {"image": "x", "mount_points": [{"source_volume": "nope", "container_path": "/d"}]}},
            "container.mount_points[0].source_volume",
            "'nope' is not one of volumes",
        ),
        ({"discovers": ["weather"]}, "discovery", "is required with discovers or consul_service"),
        (
            {"consul_service": {"name": "web"}, "discovery": DISCOVERY},
            "container.port",
            "is required with consul_service",
        ),
        ({"consul_service": {"name": "a b"}, "discovery": DISCOVERY}, "consul_service.name", "a DNS label"),
        ({"tags": {"aws:x": "y"}}, "tags", "has tag key 'aws:x'"),
    ],
)
def test_bad_arguments_fail_before_anything_is_registered(args, path, message):
    base = {"cluster": CLUSTER, "container": {"image": ECR_IMAGE}}
    assert_refused(lambda: ContainerService("app", {**base, **args}), path, message)


def test_every_bad_argument_is_reported_at_once():
    args = {
        "cluster": CLUSTER,
        "container": {"image": "x", "port": 70000, "cpu": -1, "environment": {"DB_PASSWORD": "p"}},
        "sidecars": [{"name": "helper", "image": "y", "memory_mib": 1}],
        "scheduling": "ONCE",
        "log_retention_days": 2,
        "stop_timeout_seconds": 600,
        "consul_service": {"name": "web"},
    }
    assert set(refused_paths(lambda: ContainerService("app", args))) == {
        "container.port",
        "container.cpu",
        "container.environment.DB_PASSWORD",
        "sidecars[0].memory_mib",
        "scheduling",
        "log_retention_days",
        "stop_timeout_seconds",
        "discovery",
    }
