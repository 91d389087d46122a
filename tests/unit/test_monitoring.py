"""Monitoring by value: the encrypted topic, alarms that page with a runbook, what each alarm reads, the deployment
alarm, coverage of every service and internet-facing load balancer, in composed systems and the real stacks."""

import json
from unittest import mock

import pulumi
import pytest

from policy.offline import check
from seaport import InvalidArgument, rules
from seaport.contract import telemetry
from seaport.monitoring import RUNBOOKS, Monitoring, deployment_alarm_names
from seaport.tools import mocks
from seaport.tools.mocks import ACCOUNT
from seaport.tools.testing import run, run_program, stack_config
from tests.unit import watched
from tests.unit.monitored import MAIN, QUEUE, REPO, stack_plan, system_plan
from tests.unit.references import CLUSTER
from tests.unit.refusals import assert_refused

ALARM = "aws:cloudwatch/metricAlarm:MetricAlarm"
MONITORING = "seaport:index:Monitoring"


@pytest.fixture(scope="module")
def amazonmq():
    return system_plan("amazonmq", False)


def alarms(plan):
    """Monitoring's alarms by purpose (the resource name after ``monitoring-``)."""
    owner = plan.one(MONITORING)
    return {a["name"].removeprefix("monitoring-"): a for a in plan.children(owner, ALARM)}


def topic(plan):
    return plan.one("aws:sns/topic:Topic")


# -- the topic ----------------------------------------------------------------------------------------------


def test_the_topic_is_encrypted_with_a_rotated_key_cloudwatch_may_use_for_this_account_only(system):
    key = system.one("aws:kms/key:Key")
    assert topic(system)["inputs"]["kmsMasterKeyId"] == key["outputs"]["arn"]
    assert key["inputs"]["enableKeyRotation"] is True
    statements = {s["Sid"]: s for s in json.loads(key["inputs"]["policy"])["Statement"]}
    cloudwatch = statements["CloudWatchPublishesAlarms"]
    assert cloudwatch["Principal"] == {"Service": "cloudwatch.amazonaws.com"}
    assert sorted(cloudwatch["Action"]) == ["kms:Decrypt", "kms:GenerateDataKey*"]
    assert cloudwatch["Condition"] == {"StringEquals": {"aws:SourceAccount": ACCOUNT}}
    assert statements["AccountAdministers"]["Principal"] == {"AWS": f"arn:aws:iam::{ACCOUNT}:root"}


def test_the_alarm_email_subscribes_to_the_topic(system):
    subscription = system.one("aws:sns/topicSubscription:TopicSubscription")["inputs"]
    assert subscription == {
        "topic": topic(system)["outputs"]["arn"],
        "protocol": "email",
        "endpoint": "ops@example.com",
    }


def test_without_an_email_nothing_subscribes():
    assert system_plan("container", True, email="").of_type("aws:sns/topicSubscription:TopicSubscription") == []


# -- every alarm pages, says what broke and where the runbook is -------------------------------------------


def test_every_alarm_of_the_plan_has_the_topic_as_an_action_or_drives_scaling(any_system):
    topic_arn = topic(any_system)["outputs"]["arn"]
    scaling = {p["outputs"]["arn"] for p in any_system.of_type("aws:appautoscaling/policy:Policy")}
    for alarm in any_system.of_type(ALARM):
        actions = alarm["inputs"]["alarmActions"]
        assert topic_arn in actions or set(actions) <= scaling, alarm["name"]
    for alarm in alarms(any_system).values():
        assert alarm["inputs"]["alarmActions"] == alarm["inputs"]["okActions"] == [topic_arn]


def test_each_description_names_what_broke_and_links_its_runbook(system):
    for purpose, alarm in alarms(system).items():
        description = alarm["inputs"]["alarmDescription"]
        anchor = description.rsplit(rules.RUNBOOK, 1)[-1]
        assert anchor in RUNBOOKS.values(), purpose
        assert description.startswith(("portal:", "weather:", "send:", "receive:", "consul-agent:", "broker:",
                                       "messaging:", "Consul:")), description  # fmt: skip
        assert len(description) <= 1024


def github_anchor(heading: str) -> str:
    """The anchor GitHub gives a Markdown heading: lower case, spaces to hyphens, punctuation dropped."""
    kept = "".join(c for c in heading.strip().lower() if c.isalnum() or c in " -_")
    return kept.replace(" ", "-")


def test_every_runbook_link_lands_on_a_readme_heading():
    """An alarm's link is what the person paged clicks: each anchor must be a heading of README.md."""
    headings = [line.lstrip("#") for line in (REPO / "README.md").read_text().splitlines() if line.startswith("#")]
    anchors = {github_anchor(heading) for heading in headings}
    assert {purpose: anchor for purpose, anchor in RUNBOOKS.items() if anchor not in anchors} == {}
    assert rules.RUNBOOK == "README.md#"


def test_alarm_names_are_project_stack_monitoring_purpose_and_outputs_list_them(system):
    found = alarms(system)
    outputs = system.one(MONITORING)["outputs"]
    assert set(outputs["alarm_names"]) == set(found)
    for purpose, alarm in found.items():
        assert alarm["inputs"]["name"] == f"seaport-test-monitoring-{purpose}" == outputs["alarm_names"][purpose]
        assert outputs["alarm_arns"][purpose] == alarm["outputs"]["arn"]
    assert outputs["topic_arn"] == topic(system)["outputs"]["arn"]


def test_the_alarms_of_a_system(system, amazonmq):
    expected = {
        "portal-5xx", "portal-unhealthy-targets", "portal-latency-p99", "portal-tasks", "weather-tasks",
        "send-tasks", "receive-tasks", "consul-agent-tasks", "dead-letters", "backlog", "no-consumer",
        "broker-memory", "consul-servers",
    }  # fmt: skip
    assert set(alarms(system)) == expected | {"broker-tasks"}
    assert set(alarms(amazonmq)) == expected  # Amazon MQ is no ECS service


# -- what each alarm reads exists: a resource of the plan, or a record the apps write ------------------------


def apps_cluster(plan) -> str:
    """The Cluster value the plan's send and receive write: their METRICS_CLUSTER (RabbitMessaging sets it); the
    composed systems run send and receive as plain services, which would be given the cluster's name."""
    given = set(watched.apps_clusters(plan).values())
    if not given:
        return watched.cluster_name(plan)
    (cluster,) = given
    return cluster


@pytest.mark.parametrize("source", [watched.alarm_metrics, watched.dashboard_metrics, watched.scaling_metrics])
def test_every_metric_read_is_a_resource_of_the_plan_or_a_record_the_apps_write(any_system, source):
    emitted = watched.contract_emitted(QUEUE, apps_cluster(any_system))
    found = source(any_system)
    assert found or source is watched.scaling_metrics
    problems = [(name, p) for name, metric in found for p in watched.problems(metric, any_system, emitted)]
    assert problems == []


def test_the_checks_by_value_catch_a_metric_nothing_publishes(system):
    cluster = watched.cluster_name(system)
    emitted = watched.contract_emitted(QUEUE, cluster)
    per_queue = telemetry.queue_dimensions(cluster, QUEUE)
    assert watched.problems((telemetry.NAMESPACE, telemetry.QUEUE_DEPTH, per_queue), system, emitted) == []
    assert watched.problems(("AWS/ECS", "CPUUtilization", {"ClusterName": "x", "ServiceName": "y"}), system, emitted)
    send = telemetry.app_dimensions(cluster, "send", QUEUE)
    assert watched.problems(("Seaport/Messaging", "QueueDepth", send), system, emitted)
    assert watched.problems(("Seaport/Messaging", "QueueDepth", {**per_queue, "Queue": "other"}), system, emitted)
    assert watched.problems(("Seaport/Messaging", "Processed", send), system, emitted)
    # another stack's queue of the same name, and the queue of no stack in particular (the dimensions before Cluster)
    assert watched.problems(("Seaport/Messaging", "QueueDepth", {**per_queue, "Cluster": "other"}), system, emitted)
    assert watched.problems(("Seaport/Messaging", "QueueDepth", {"Queue": QUEUE}), system, emitted)


# -- two stacks in one account and region read their own messaging metrics ---------------------------------------


def engine_named(stack: str):
    """The real stack's plan with physical names as the engine gives them: an auto-named resource (the ECS cluster)
    gets a random suffix, so two stacks' names differ. seaport's mocks derive names from the logical name alone,
    the same in every stack; here the stack's name goes into the hash as well."""
    digest = mocks._digest
    with mock.patch.object(mocks, "_digest", lambda *parts: digest(pulumi.get_stack(), *parts)):
        return run_program(MAIN, stack=stack, config=stack_config(REPO, stack))


def messaging_metrics(plan) -> set[tuple[str, str, tuple[tuple[str, str], ...]]]:
    """Every ``Seaport/Messaging`` metric the plan's alarms and scaling policies read (what pages and scales)."""
    return {
        (namespace, name, tuple(sorted(dimensions.items())))
        for source in (watched.alarm_metrics, watched.scaling_metrics)
        for _, (namespace, name, dimensions) in source(plan)
        if namespace == telemetry.NAMESPACE
    }


def test_two_stacks_in_one_account_and_region_page_and_scale_on_their_own_queue():
    dev, prod = engine_named("dev"), engine_named("prod")
    clusters = {"dev": watched.cluster_name(dev), "prod": watched.cluster_name(prod)}
    assert clusters["dev"] != clusters["prod"]  # ECS cluster names are unique in an account and region
    read = {"dev": messaging_metrics(dev), "prod": messaging_metrics(prod)}
    # Same account, same region, same queue name, same metric names...
    assert {(ns, name) for ns, name, _ in read["dev"]} == {(ns, name) for ns, name, _ in read["prod"]}
    assert {(ns, name, tuple(d for d in dims if d[0] != telemetry.CLUSTER)) for ns, name, dims in read["dev"]} == {
        (ns, name, tuple(d for d in dims if d[0] != telemetry.CLUSTER)) for ns, name, dims in read["prod"]
    }  # without the Cluster dimension, prod's backlog alarm and scaling would read dev's metrics
    # ... and still not one metric in common: each stack reads its own cluster's, which its own apps write.
    assert read["dev"].isdisjoint(read["prod"])
    for stack, plan in (("dev", dev), ("prod", prod)):
        assert {dict(dims)[telemetry.CLUSTER] for _, _, dims in read[stack]} == {clusters[stack]}, stack
        assert watched.apps_clusters(plan) == {"send": clusters[stack], "receive": clusters[stack]}, stack
        emitted = watched.contract_emitted(QUEUE, clusters[stack])
        other = watched.contract_emitted(QUEUE, clusters["prod" if stack == "dev" else "dev"])
        for namespace, name, dims in read[stack]:
            assert watched.problems((namespace, name, dict(dims)), plan, emitted) == []
            assert watched.problems((namespace, name, dict(dims)), plan, other)  # the other stack's apps: no data


@pytest.mark.parametrize("stack", ["dev", "prod", "dev-amazonmq"])
def test_the_apps_of_a_stack_write_the_cluster_its_alarms_dashboard_and_scaling_read(stack):
    plan = stack_plan(*stack.split("-"))
    cluster = watched.cluster_name(plan)
    assert watched.apps_clusters(plan) == {"send": cluster, "receive": cluster}
    read = [
        metric
        for source in (watched.alarm_metrics, watched.dashboard_metrics, watched.scaling_metrics)
        for _, metric in source(plan)
        if metric[0] == telemetry.NAMESPACE
    ]
    assert read and {dimensions.get(telemetry.CLUSTER) for _, _, dimensions in read} == {cluster}


# -- coverage: the policy pack passes, with Monitoring ---------------------------------------------------------


def test_the_policy_pack_passes_every_monitored_system(any_system):
    assert check(any_system.to_json()["resources"]) == []


def test_without_monitoring_the_coverage_policy_names_every_service_and_the_load_balancer(system):
    without = [r for r in system.to_json()["resources"] if r["type"] != ALARM]
    found = [v for v in check(without) if v.policy == "alarms-cover-services-and-load-balancers"]
    flagged = {v.urn.rsplit("::", 1)[-1] for v in found}
    assert flagged == {"portal", "weather", "send", "receive", "consul-agent", "broker", "portal-alb"}


# -- the portal's deployments roll back on its 5xx alarm ---------------------------------------------------------


def test_the_portal_deployment_is_watched_by_its_5xx_alarm_and_rolls_back(system):
    portal = system.within("seaport:index:ScaledWebService", "aws:ecs/service:Service")["inputs"]
    five_xx = alarms(system)["portal-5xx"]
    assert portal["alarms"] == {"alarmNames": [five_xx["inputs"]["name"]], "enable": True, "rollback": True}
    assert portal["deploymentCircuitBreaker"] == {"enable": True, "rollback": True}  # in addition
    assert system.one(MONITORING)["outputs"]["deployment_alarm_names"] == {"portal": [five_xx["inputs"]["name"]]}
    balancer = system.one("aws:lb/loadBalancer:LoadBalancer")["outputs"]["arnSuffix"]
    assert {d.get("LoadBalancer") for _, _, d in rules.watched_metrics(five_xx["inputs"])} == {balancer}


def test_deployment_alarm_names_are_known_before_the_monitoring_exists():
    names = {}
    run(lambda: names.update(portal=deployment_alarm_names("ops", "portal")), stack="prod")
    assert names == {"portal": ["seaport-prod-ops-portal-5xx"]}


# -- each alarm, and what it does with missing data -------------------------------------------------------------


def test_the_5xx_alarm_is_the_share_of_load_balancer_and_target_5xx_in_requests(system):
    alarm = alarms(system)["portal-5xx"]["inputs"]
    queries = {q["id"]: q for q in alarm["metricQueries"]}
    assert queries["share"]["expression"] == "IF(requests >= 10, 100 * (FILL(elb, 0) + FILL(target, 0)) / requests, 0)"
    assert [q["id"] for q in alarm["metricQueries"] if q["returnData"]] == ["share"]
    names = {k: (q["metric"]["metricName"], q["metric"]["stat"], q["metric"]["period"]) for k, q in queries.items()
             if "metric" in q}  # fmt: skip
    assert names == {
        "elb": ("HTTPCode_ELB_5XX_Count", "Sum", 60),
        "target": ("HTTPCode_Target_5XX_Count", "Sum", 60),
        "requests": ("RequestCount", "Sum", 60),
    }
    assert set(queries["target"]["metric"]["dimensions"]) == {"LoadBalancer", "TargetGroup"}
    assert (alarm["threshold"], alarm["comparisonOperator"]) == (5, "GreaterThanThreshold")
    assert (alarm["evaluationPeriods"], alarm["datapointsToAlarm"]) == (3, 2)
    assert "period" not in alarm  # metric math: each metric has its own


@pytest.mark.parametrize(
    ("purpose", "missing"),
    [
        ("portal-5xx", "notBreaching"),  # no traffic, no data: nothing failed
        ("portal-unhealthy-targets", "notBreaching"),
        ("portal-latency-p99", "notBreaching"),
        ("weather-tasks", "breaching"),  # ECS publishes nothing for a service with no running task
        ("dead-letters", "notBreaching"),
        ("backlog", "missing"),  # apps restarting: keep the state
        ("no-consumer", "breaching"),  # no app reports: nothing consumes
        ("broker-memory", "missing"),
        ("consul-servers", "breaching"),  # the group collects no metrics, or is gone
    ],
)
def test_missing_data_is_treated_deliberately(system, purpose, missing):
    assert alarms(system)[purpose]["inputs"]["treatMissingData"] == missing


@pytest.mark.parametrize(
    ("plan", "metric"),
    [
        (lambda: system_plan("container", True), ("ECS/ContainerInsights", "RunningTaskCount", "Minimum")),
        (lambda: system_plan("amazonmq", False), ("AWS/ECS", "CPUUtilization", "SampleCount")),
    ],
    ids=["container-insights", "without-container-insights"],
)
def test_running_tasks_below_the_floor_for_several_minutes(plan, metric):
    found = alarms(plan())
    portal, weather = found["portal-tasks"]["inputs"], found["weather-tasks"]["inputs"]
    for alarm in (portal, weather):
        assert (alarm["namespace"], alarm["metricName"], alarm["statistic"]) == metric
        assert (alarm["period"], alarm["evaluationPeriods"], alarm["datapointsToAlarm"]) == (60, 5, 5)
        assert alarm["comparisonOperator"] == "LessThanThreshold"
    assert (portal["threshold"], weather["threshold"]) == (2, 1)  # the portal's fewest tasks; a service's floor


def test_messaging_alarms_read_the_apps_queue_metrics(system):
    found = alarms(system)
    dead, backlog = found["dead-letters"]["inputs"], found["backlog"]["inputs"]
    per_queue = {telemetry.CLUSTER: watched.cluster_name(system), telemetry.QUEUE: QUEUE}
    assert (dead["namespace"], dead["metricName"], dead["dimensions"]) == (
        telemetry.NAMESPACE,
        telemetry.DEAD_LETTER_DEPTH,
        per_queue,
    )
    assert backlog["dimensions"] == per_queue
    assert (dead["threshold"], dead["comparisonOperator"], dead["evaluationPeriods"]) == (0, "GreaterThanThreshold", 1)
    assert (backlog["metricName"], backlog["statistic"], backlog["threshold"]) == (
        telemetry.QUEUE_DEPTH,
        "Maximum",
        1000,
    )
    assert (backlog["evaluationPeriods"], backlog["datapointsToAlarm"]) == (10, 10)
    stranded = found["no-consumer"]["inputs"]
    queries = {q["id"]: q for q in stranded["metricQueries"]}
    assert queries["stranded"]["expression"] == "IF(depth > 0, IF(FILL(consumers, 0) < 1, 1, 0), 0)"
    assert (queries["consumers"]["metric"]["metricName"], queries["consumers"]["metric"]["stat"]) == (
        telemetry.CONSUMERS,
        "Minimum",
    )
    assert queries["consumers"]["metric"]["dimensions"] == queries["depth"]["metric"]["dimensions"] == per_queue


def test_broker_memory_against_its_watermark_on_the_cluster(system):
    alarm = alarms(system)["broker-memory"]["inputs"]
    broker = system.named("broker", "aws:ecs/service:Service")["outputs"]["name"]
    assert (alarm["namespace"], alarm["metricName"], alarm["statistic"]) == ("AWS/ECS", "MemoryUtilization", "Maximum")
    assert alarm["dimensions"]["ServiceName"] == broker
    assert alarm["threshold"] == 40  # 80 % of a watermark at 50 % of the task's memory


def test_broker_memory_of_amazon_mq_from_its_broker_metrics(amazonmq):
    alarm = alarms(amazonmq)["broker-memory"]["inputs"]
    broker = amazonmq.one("aws:mq/broker:Broker")["outputs"]["brokerName"]
    queries = {q["id"]: q for q in alarm["metricQueries"]}
    assert queries["memory"]["expression"] == "100 * used / limit"
    assert {k: (q["metric"]["namespace"], q["metric"]["metricName"], q["metric"]["dimensions"])
            for k, q in queries.items() if "metric" in q} == {
        "used": ("AWS/AmazonMQ", "RabbitMQMemUsed", {"Broker": broker}),
        "limit": ("AWS/AmazonMQ", "RabbitMQMemLimit", {"Broker": broker}),
    }  # fmt: skip
    assert alarm["threshold"] == 80


def test_fewer_consul_servers_in_service_than_configured(system):
    alarm = alarms(system)["consul-servers"]["inputs"]
    group = system.named("consul-servers", "aws:autoscaling/group:Group")["outputs"]["name"]
    assert (alarm["namespace"], alarm["metricName"], alarm["statistic"]) == (
        "AWS/AutoScaling",
        "GroupInServiceInstances",
        "Minimum",
    )
    assert alarm["dimensions"] == {"AutoScalingGroupName": group}
    assert (alarm["threshold"], alarm["comparisonOperator"]) == (3, "LessThanThreshold")


def test_a_service_with_a_floor_of_zero_is_not_watched():
    plan = run(
        lambda: Monitoring(
            "ops", {"cluster": CLUSTER, "services": [{"name": "batch", "service_name": "b", "min_running_tasks": 0}]}
        )
    )
    assert plan.of_type(ALARM) == []


# -- bad arguments --------------------------------------------------------------------------------------------

WEB = {"name": "portal", "load_balancer_arn_suffix": "app/p/1", "target_group_arn": "arn:x:targetgroup/p/1",
       "service_name": "p"}  # fmt: skip


@pytest.mark.parametrize(
    ("args", "path", "message"),
    [
        ({"cluster": None}, "cluster", "is required"),
        ({"cluster": {k: v for k, v in CLUSTER.items() if k != "name"}}, "cluster.name", "is required"),
        ({"web_services": [{**WEB, "name": "Portal!"}]}, "web_services[0].name", "lower-case letters"),
        (
            {"web_services": [{k: v for k, v in WEB.items() if k != "service_name"}]},
            "web_services[0].service_name",
            "is required",
        ),
        (
            {"web_services": [{**WEB, "autoscaling": {"min_tasks": 0}}]},
            "web_services[0].autoscaling.min_tasks",
            "must be between 1 and 1000",
        ),
        ({"services": [{"name": "portal", "service_name": "x"}], "web_services": [WEB]}, "services", "unique"),
        (
            {"services": [{"name": "a", "service_name": "x", "min_running_tasks": -1}]},
            "services[0].min_running_tasks",
            "must be between 0 and 1000",
        ),
        ({"messaging": {"queue_name": "q"}}, "messaging.broker_service_name", "give exactly one"),
        (
            {"messaging": {"queue_name": "q", "broker_service_name": "b", "amazon_mq_broker_name": "m"}},
            "messaging.broker_service_name",
            "give exactly one",
        ),
        ({"messaging": {"queue_name": "amq.x", "broker_service_name": "b"}}, "messaging.queue_name", "amq."),
        (
            {"messaging": {"queue_name": "q", "broker_service_name": "b", "memory_watermark_share": 2}},
            "messaging.memory_watermark_share",
            "at most 1",
        ),
        ({"consul": {"server_autoscaling_group_name": "g", "servers": 2}}, "consul.servers", "one of 1, 3, 5"),
        ({"consul": {"servers": 3}}, "consul.server_autoscaling_group_name", "is required"),
        ({"alarm_email": "ops"}, "alarm_email", "email address"),
        ({"error_rate_percent": 0}, "error_rate_percent", "between 1 and 100"),
        ({"latency_p99_seconds": 0}, "latency_p99_seconds", "above 0"),
        ({"backlog_minutes": 61}, "backlog_minutes", "between 1 and 60"),
        ({"broker_memory_percent": 101}, "broker_memory_percent", "between 10 and 100"),
        ({"tags": {"aws:x": "y"}}, "tags", "aws:x"),
    ],
)
def test_bad_arguments_fail_before_anything_is_registered(args, path, message):
    assert_refused(lambda: Monitoring("ops", {"cluster": CLUSTER, **args}), path, message)


def test_every_bad_argument_is_reported_at_once():
    args = {
        "cluster": CLUSTER,
        "web_services": [{**WEB, "name": "Portal!"}],
        "messaging": {"queue_name": "q"},
        "alarm_email": "ops",
        "backlog_messages": 0,
    }
    error = run(lambda: Monitoring("ops", args), expect=InvalidArgument)
    assert sorted(p.path for p in error.problems) == [
        "alarm_email",
        "backlog_messages",
        "messaging.broker_service_name",
        "web_services[0].name",
    ]


# -- other languages ------------------------------------------------------------------------------------------


def test_the_component_provider_infers_its_schema():
    """What provider/__main__.py serves once Monitoring is in seaport.COMPONENTS: typed, described inputs."""
    from pulumi.provider.experimental.component import ComponentProvider

    import seaport
    from seaport.tools import sdk

    sdk.document_inherited_fields()
    schema = json.loads(ComponentProvider([Monitoring], "seaport", None, seaport.__version__).schema)
    resource = schema["resources"]["seaport:index:Monitoring"]
    assert resource["requiredInputs"] == ["cluster"]
    assert resource["inputProperties"]["cluster"]["$ref"] == "#/types/seaport:index:ClusterReference"
    for name, spec in resource["inputProperties"].items():
        assert "Default" in spec["description"] or "Required" in spec["description"], name
    assert set(resource["properties"]) == {
        "topicArn", "alarmArns", "alarmNames", "deploymentAlarmNames", "dashboardName", "dashboardUrl",
    }  # fmt: skip
    for token in ("WebServiceWatch", "ServiceWatch", "MessagingWatch", "ConsulWatch"):
        for name, spec in schema["types"][f"seaport:index:{token}"]["properties"].items():
            assert "Default" in spec["description"] or "Required" in spec["description"], f"{token}.{name}"
