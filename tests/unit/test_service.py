"""ContainerService: logs, least-privilege roles, task definition, service placement and deployment."""

import json

import pytest
from seaport import ContainerService, InvalidArgument
from seaport.tools.testing import run

CLUSTER = "arn:aws:ecs:us-east-1:123456789012:cluster/main-1234567"
ECR_IMAGE = "123456789012.dkr.ecr.us-east-1.amazonaws.com/app-1234567@sha256:" + "a" * 64
SECRET = "arn:aws:secretsmanager:us-east-1:123456789012:secret:db-AbCdEf"


def service_plan(name="app", **args):
    base = {
        "cluster_arn": CLUSTER,
        "capacity_provider_name": "main-capacity-1234567",
        "container": {"image": ECR_IMAGE, "port": 8080, "cpu": 128, "memory_mib": 192},
    }
    return run(lambda: ContainerService(name, {**base, **args}))


def definitions(plan):
    return json.loads(plan.one("aws:ecs/taskDefinition:TaskDefinition")["inputs"]["containerDefinitions"])


def policy(plan, name):
    return json.loads(plan.named(name, "aws:iam/rolePolicy:RolePolicy")["inputs"]["policy"])


@pytest.fixture(scope="module")
def plan():
    return service_plan(
        container={
            "image": ECR_IMAGE,
            "port": 8080,
            "cpu": 128,
            "memory_mib": 192,
            "environment": {"MODE": "fast"},
            "secrets": {"DB_PASSWORD": SECRET + ":password::"},
            "health_check": {"command": ["CMD", "python", "-m", "apps.common.healthcheck"]},
        },
        sidecars=[{"name": "helper", "image": "busybox:1.36", "command": ["sleep", "infinity"]}],
        stop_timeout_seconds=45,
        log_retention_days=14,
        desired_count=3,
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


def test_service_runs_on_the_capacity_provider_with_circuit_breaker_and_az_spread(plan):
    service = plan.one("aws:ecs/service:Service")["inputs"]
    assert service["cluster"] == CLUSTER
    assert service["capacityProviderStrategies"] == [
        {"capacityProvider": "main-capacity-1234567", "weight": 1, "base": 0}
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
    assert "loadBalancers" not in service


def test_load_balancer_attachment_uses_the_main_container_port():
    target_group = "arn:aws:elasticloadbalancing:us-east-1:123456789012:targetgroup/tg/0123456789abcdef"
    plan = service_plan(load_balancer={"target_group_arn": target_group})
    service = plan.one("aws:ecs/service:Service")["inputs"]
    assert service["loadBalancers"] == [{"targetGroupArn": target_group, "containerName": "app", "containerPort": 8080}]
    assert service["healthCheckGracePeriodSeconds"] == 60


def test_daemon_in_host_mode_runs_everywhere_with_fixed_ports():
    plan = service_plan(scheduling="DAEMON", network_mode="host", capacity_provider_name=None)
    service = plan.one("aws:ecs/service:Service")["inputs"]
    assert service["schedulingStrategy"] == "DAEMON" and service["launchType"] == "EC2"
    assert "desiredCount" not in service and "orderedPlacementStrategies" not in service
    assert (service["deploymentMinimumHealthyPercent"], service["deploymentMaximumPercent"]) == (0, 100)
    task = plan.one("aws:ecs/taskDefinition:TaskDefinition")["inputs"]
    assert task["networkMode"] == "host"
    assert definitions(plan)[0]["portMappings"][0]["hostPort"] == 8080


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


def test_family_names_project_stack_and_component(plan):
    assert plan.one("aws:ecs/taskDefinition:TaskDefinition")["inputs"]["family"] == "seaport-test-app"


@pytest.mark.parametrize(
    ("args", "message"),
    [
        ({"cluster_arn": None}, "cluster_arn is required"),
        ({"container": {"port": 80}}, "container.image is required"),
        ({"container": {"image": "x", "environment": {"DB_PASSWORD": "hunter2"}}}, "looks like a secret"),
        ({"container": {"image": "x", "environment": {"API_TOKEN": "t"}}}, "pass it in secrets"),
        ({"container": {"image": "x", "environment": {"1BAD": "v"}}}, "is not a valid variable name"),
        ({"container": {"image": "x", "secrets": {"PASSWORD": "plain-text"}}}, "is not a Secrets Manager"),
        ({"container": {"image": "x", "port": 70000}}, "port=70000 must be between 1 and 65535"),
        (
            {"container": {"image": "x"}, "load_balancer": {"target_group_arn": "arn"}},
            "load_balancer needs container.port",
        ),
        ({"scheduling": "ONCE"}, "scheduling='ONCE' must be one of REPLICA, DAEMON"),
        ({"network_mode": "awsvpc"}, "network_mode='awsvpc' must be one of bridge, host"),
        ({"log_retention_days": 2}, "log_retention_days=2 must be one of 1, 3, 5"),
        ({"stop_timeout_seconds": 600}, "stop_timeout_seconds=600 must be between 2 and 120"),
        ({"sidecars": [{"name": "app", "image": "x"}]}, "container names must be unique"),
        (
            {"container": {"image": "x", "mount_points": [{"source_volume": "nope", "container_path": "/d"}]}},
            "mount of unknown volume 'nope'",
        ),
    ],
)
def test_bad_arguments_fail_before_anything_is_registered(args, message):
    seen = {}
    base = {"cluster_arn": CLUSTER, "container": {"image": ECR_IMAGE}}

    def program():
        try:
            ContainerService("app", {**base, **args})
        except InvalidArgument as error:
            seen["error"] = str(error)

    plan = run(program)
    assert message in seen["error"]
    assert plan.resources == []
