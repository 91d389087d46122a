"""Containers of a task: container definitions, Consul discovery and registration, secrets kept out of plain text."""

import json
from unittest import mock

import pulumi
import pytest

from seaport import ContainerService, InvalidArgument
from seaport import containers as containers_module
from seaport.containers import CONTAINER_DEFAULTS, SIDECAR_DEFAULTS
from seaport.tools.mocks import ACCOUNT, SeaportMocks, ecr_registry
from seaport.tools.testing import run
from tests.unit.references import CLUSTER, DISCOVERY

IMAGE = f"{ecr_registry(ACCOUNT, 'us-east-1')}/portal@sha256:" + "b" * 64
MAIN = {"image": IMAGE, "port": 8080}


def definitions(**args):
    """The container definitions of a ContainerService "app" with these arguments, by container name."""
    plan = run(lambda: ContainerService("app", {"cluster": CLUSTER, "container": MAIN, **args}))
    task = plan.one("aws:ecs/taskDefinition:TaskDefinition")["inputs"]
    return {d["name"]: d for d in json.loads(task["containerDefinitions"])}


def env(definition):
    return {e["name"]: e["value"] for e in definition["environment"]}


def secrets(definition):
    return {s["name"]: s["valueFrom"] for s in definition["secrets"]}


# -- read-only root filesystems, sidecar sizes ---------------------------------------------------


def test_main_container_and_sidecars_have_read_only_root_filesystems_by_default():
    found = definitions(sidecars=[{"name": "helper", "image": "busybox:1.36"}])
    for name in ("app", "helper"):
        assert found[name]["readonlyRootFilesystem"] is True, name
        # A small tmpfs on /tmp is the one writable place.
        assert found[name]["linuxParameters"] == {"tmpfs": [{"containerPath": "/tmp", "size": 64}]}, name


def test_a_container_may_opt_out_of_the_read_only_root_filesystem():
    found = definitions(
        container={**MAIN, "read_only_root_filesystem": False},
        sidecars=[{"name": "helper", "image": "busybox:1.36", "read_only_root_filesystem": False}],
    )
    for name in ("app", "helper"):
        assert found[name]["readonlyRootFilesystem"] is False
        assert "linuxParameters" not in found[name]


def test_a_read_only_container_may_have_more_tmpfs_directories():
    found = definitions(container={**MAIN, "tmpfs": ["/etc/app"]})
    assert found["app"]["readonlyRootFilesystem"] is True
    assert found["app"]["linuxParameters"]["tmpfs"] == [
        {"containerPath": "/tmp", "size": 64},
        {"containerPath": "/etc/app", "size": 64},
    ]


@pytest.mark.parametrize(
    ("container", "message"),
    [
        ({"tmpfs": ["etc/app"]}, "tmpfs[0]='etc/app' must be an absolute directory other than / and /tmp"),
        ({"tmpfs": ["/tmp"]}, "tmpfs[0]='/tmp' must be an absolute directory other than / and /tmp"),
        (
            {"tmpfs": ["/etc/app"], "read_only_root_filesystem": False},
            "tmpfs[0]='/etc/app' is only used with read_only_root_filesystem=True",
        ),
    ],
)
def test_bad_tmpfs_directories_are_refused(container, message):
    error = run(
        lambda: ContainerService("app", {"cluster": CLUSTER, "container": {**MAIN, **container}}),
        expect=InvalidArgument,
    )
    assert message in str(error)


def test_sidecars_are_small_and_not_essential_unless_they_say_so():
    found = definitions(
        sidecars=[
            {"name": "helper", "image": "busybox:1.36"},
            {"name": "guard", "image": "busybox:1.36", "essential": True, "cpu": 128, "memory_mib": 96},
        ]
    )
    main, helper, guard = found["app"], found["helper"], found["guard"]
    assert (main["essential"], main["cpu"], main["memory"]) == (True, 256, 512)
    assert (helper["essential"], helper["cpu"], helper["memory"]) == (False, 64, 64)
    assert (guard["essential"], guard["cpu"], guard["memory"]) == (True, 128, 96)
    assert "portMappings" not in helper


def test_health_check_defaults_and_overrides():
    check = {"command": ["CMD", "true"], "retries": 5}
    (definition,) = definitions(container={**MAIN, "health_check": check}).values()
    assert definition["healthCheck"] == {
        "command": ["CMD", "true"],
        "interval": 15,
        "timeout": 5,
        "retries": 5,
        "startPeriod": 30,
    }


def test_hostname_extra_hosts_and_depends_on():
    found = definitions(
        container={**MAIN, "hostname": "rabbit1", "extra_hosts": {"db": "10.0.0.5"}},
        sidecars=[{"name": "helper", "image": "busybox:1.36", "depends_on": {"app": "HEALTHY"}}],
    )
    assert found["app"]["hostname"] == "rabbit1"
    assert found["app"]["extraHosts"] == [{"hostname": "db", "ipAddress": "10.0.0.5"}]
    assert found["helper"]["dependsOn"] == [{"containerName": "app", "condition": "HEALTHY"}]


def test_mount_points_are_read_write_unless_asked():
    volumes = [{"name": "data", "docker_volume": True}]
    mounts = [
        {"source_volume": "data", "container_path": "/data"},
        {"source_volume": "data", "container_path": "/ro", "read_only": True},
    ]
    (definition,) = definitions(volumes=volumes, container={**MAIN, "mount_points": mounts}).values()
    assert [m["readOnly"] for m in definition["mountPoints"]] == [False, True]


# -- Consul: looking services up (discovers) and being found (consul_service) -----------------


def test_discovers_gives_the_main_container_the_agent_address_the_reader_token_and_the_agent_host():
    found = definitions(discovery=DISCOVERY, discovers=["weather", "stocks"], container={**MAIN, "environment": {}})
    main = found["app"]
    assert env(main)["CONSUL_HTTP_ADDR"] == "consul-agent:8500"
    # The token is an ECS secret (resolved at task start), never a plain environment value.
    assert secrets(main)["CONSUL_HTTP_TOKEN"] == DISCOVERY["reader_token_secret_arn"]
    assert "CONSUL_HTTP_TOKEN" not in env(main)
    assert main["extraHosts"] == [{"hostname": "consul-agent", "ipAddress": "172.17.0.1"}]
    assert set(found) == {"app"}  # looking up needs no registrar


def test_discovery_settings_join_the_containers_own_environment_and_secrets():
    db = "arn:aws:secretsmanager:us-east-1:123456789012:secret:db-AbCdEf"
    container = {**MAIN, "environment": {"MODE": "fast"}, "secrets": {"DB_PASSWORD": db}}
    main = definitions(discovery=DISCOVERY, discovers=["weather"], container=container)["app"]
    assert env(main) == {"CONSUL_HTTP_ADDR": "consul-agent:8500", "MODE": "fast"}
    assert secrets(main) == {"CONSUL_HTTP_TOKEN": DISCOVERY["reader_token_secret_arn"], "DB_PASSWORD": db}


def test_without_discovers_the_container_gets_no_consul_settings():
    main = definitions(discovery=DISCOVERY)["app"]
    assert "CONSUL_HTTP_ADDR" not in env(main) and not main["secrets"] and "extraHosts" not in main


def test_the_execution_role_may_read_the_reader_token():
    plan = run(
        lambda: ContainerService(
            "app", {"cluster": CLUSTER, "container": MAIN, "discovery": DISCOVERY, "discovers": ["weather"]}
        )
    )
    document = json.loads(plan.named("app-execution", "aws:iam/rolePolicy:RolePolicy")["inputs"]["policy"])
    readable = [
        r for s in document["Statement"] if "secretsmanager:GetSecretValue" in s["Action"] for r in s["Resource"]
    ]
    assert readable == [DISCOVERY["reader_token_secret_arn"]]


def test_consul_service_adds_an_essential_registrar_that_starts_after_the_main_container():
    found = definitions(discovery=DISCOVERY, consul_service={"name": "portal"})
    assert list(found) == ["app", "app-registrar"]
    registrar = found["app-registrar"]
    assert registrar["image"] == DISCOVERY["registrar_image"]
    assert registrar["essential"] is True  # a task nobody can find is replaced
    assert env(registrar) == {
        "REGISTRAR_SERVICE": "portal",
        "REGISTRAR_CONTAINER": "app",
        "REGISTRAR_CONTAINER_PORT": "8080",
        "REGISTRAR_CHECK": "http:/health",
        "CONSUL_HTTP_ADDR": "consul-agent:8500",
    }
    assert secrets(registrar) == {"CONSUL_HTTP_TOKEN": DISCOVERY["registrar_token_secret_arn"]}
    assert registrar["dependsOn"] == [{"containerName": "app", "condition": "START"}]
    assert registrar["extraHosts"] == [{"hostname": "consul-agent", "ipAddress": "172.17.0.1"}]
    assert registrar["readonlyRootFilesystem"] is True
    assert "portMappings" not in registrar


def test_the_registrar_declares_the_given_check_for_a_named_main_container():
    found = definitions(
        discovery=DISCOVERY,
        container={**MAIN, "name": "web", "port": 9000},
        consul_service={"name": "w", "check": "tcp"},
    )
    registrar = found["web-registrar"]
    assert env(registrar)["REGISTRAR_CHECK"] == "tcp"
    assert (env(registrar)["REGISTRAR_CONTAINER"], env(registrar)["REGISTRAR_CONTAINER_PORT"]) == ("web", "9000")
    assert registrar["dependsOn"] == [{"containerName": "web", "condition": "START"}]


def test_registering_alone_does_not_give_the_main_container_the_reader_token():
    main = definitions(discovery=DISCOVERY, consul_service={"name": "portal"})["app"]
    assert not main["secrets"] and "CONSUL_HTTP_ADDR" not in env(main)


# -- secrets stay out of plain environment variables ----------------------------------------


@pytest.mark.parametrize(
    "variable",
    [
        "PASSWORD",
        "DB_PASSWORD",
        "RABBITMQ_DEFAULT_PASS",
        "DB_PASSWD",
        "TOKEN",
        "CONSUL_HTTP_TOKEN",
        "API_KEY",
        "COOKIE",
    ],
)
def test_secret_looking_names_are_refused(variable):
    container = {**MAIN, "environment": {variable: "value"}}
    with mock.patch.object(
        SeaportMocks, "new_resource", autospec=True, side_effect=SeaportMocks.new_resource
    ) as registered:
        error = run(
            lambda: ContainerService("app", {"cluster": CLUSTER, "container": container}), expect=InvalidArgument
        )
    registered.assert_not_called()
    (problem,) = error.problems
    assert problem.path == f"container.environment.{variable}"
    assert "looks like a secret" in problem.message


@pytest.mark.parametrize("variable", ["KEYCLOAK_URL", "PASSAGE_COUNT", "MONKEY_MODE", "TOKENIZER", "COOKIES_ENABLED"])
def test_names_that_merely_contain_a_secret_word_are_accepted(variable):
    assert env(definitions(container={**MAIN, "environment": {variable: "v"}})["app"]) == {variable: "v"}


def test_secret_looking_names_in_a_sidecar_are_refused_too():
    sidecar = {"name": "helper", "image": "busybox:1.36", "environment": {"ADMIN_PASSWORD": "x"}}
    error = run(
        lambda: ContainerService("app", {"cluster": CLUSTER, "container": MAIN, "sidecars": [sidecar]}),
        expect=InvalidArgument,
    )
    assert [p.path for p in error.problems] == ["sidecars[0].environment.ADMIN_PASSWORD"]


class Registrations(SeaportMocks):
    """Mocks that keep what each registration would have created."""

    def __init__(self):
        super().__init__()
        self.inputs = []

    def new_resource(self, args):
        self.inputs.append((args.typ, args.inputs))
        return super().new_resource(args)


def secret_environment_program():
    container = {**MAIN, "environment": {"MODE": "fast", "UPSTREAM": pulumi.Output.secret("s3cr3t-value")}}
    ContainerService("app", {"cluster": CLUSTER, "container": container})


def test_a_secret_value_in_the_environment_fails_the_run_naming_the_variable():
    error = run(secret_environment_program, expect=InvalidArgument)
    (problem,) = error.problems
    assert problem.path.endswith("environment.UPSTREAM")
    assert "s3cr3t-value" not in str(error)


def test_a_secret_value_never_reaches_a_task_definition():
    registrations = Registrations()
    with pytest.raises(Exception, match=r"environment\.UPSTREAM"):
        run(secret_environment_program, mocks=registrations)
    assert "aws:ecs/taskDefinition:TaskDefinition" not in [kind for kind, _ in registrations.inputs]
    assert "s3cr3t-value" not in repr(registrations.inputs)


def test_a_plain_output_in_the_environment_is_fine():
    container = {**MAIN, "environment": {"UPSTREAM": pulumi.Output.from_input("http://weather")}}
    assert env(definitions(container=container)["app"]) == {"UPSTREAM": "http://weather"}


# -- the checks of one container -----------------------------------------------------------


def test_one_container_reports_every_problem():
    container = {
        **CONTAINER_DEFAULTS,
        "image": None,
        "cpu": 20000,
        "memory_mib": 2,
        "port": 0,
        "environment": {"1BAD": "v", "SECRET_KEY": "k"},
        "secrets": {"TOKEN": "plain"},
        "mount_points": [{"source_volume": "nope", "container_path": "/d"}],
        "depends_on": {"other": "READY"},
        "health_check": {"command": []},
    }
    found = containers_module.problems(container, volumes={"data"})
    assert sorted(p.path for p in found) == sorted(
        [
            "image",
            "cpu",
            "memory_mib",
            "port",
            "environment.1BAD",
            "environment.SECRET_KEY",
            "secrets.TOKEN",
            "mount_points[0].source_volume",
            "depends_on.other",
            "health_check.command",
        ]
    )


def test_defaults_of_a_sidecar_differ_only_in_size_and_essential():
    changed = {k for k in CONTAINER_DEFAULTS if CONTAINER_DEFAULTS[k] != SIDECAR_DEFAULTS[k]}
    assert changed == {"essential", "cpu", "memory_mib"}
