"""Monitoring: alarms that page through one encrypted SNS topic, and a dashboard of the whole system.

Metrics and where they come from:

- web services: ``AWS/ApplicationELB`` (5xx counts and requests, unhealthy targets, p99 response time);
- every ECS service: its RUNNING task count, Container Insights' ``RunningTaskCount`` when the cluster has it,
  else the SampleCount of ``AWS/ECS`` ``CPUUtilization`` per minute (one sample per running task, the ECS
  developer guide's "Service RUNNING task count"): works with or without Container Insights;
- messaging: the EMF records of send and receive (``seaport.contract.telemetry``: ``QueueDepth``,
  ``DeadLetterDepth``, ``Consumers`` per cluster and queue: the ``Cluster`` dimension, the cluster's name, keeps
  two stacks with the same queue name in one account and region apart) in every broker mode. Amazon MQ does not
  publish per-queue CloudWatch metrics for RabbitMQ 4.x brokers (only broker-level ones), so the apps' queue
  metrics are the one source everywhere; broker memory comes from ``AWS/AmazonMQ`` ``RabbitMQMemUsed`` /
  ``RabbitMQMemLimit`` for Amazon MQ, from the broker service's ``AWS/ECS`` ``MemoryUtilization`` for a broker on
  the cluster;
- Consul: ``AWS/AutoScaling`` ``GroupInServiceInstances`` of the servers' group (the group must collect its
  metrics: ``enabled_metrics``).

Every alarm notifies the topic when it fires and when it recovers; its description names what broke and the
README section (``Operating``) that says what to do.
"""

import re
from typing import Any, Required, TypedDict

import pulumi
import pulumi_aws as aws

from . import autoscaling, dashboard, iam, outputs, rabbitmq_config, references
from . import validation as check
from .args import Problem, Problems, raise_if, with_defaults
from .autoscaling import AutoscalingOptions, ScalingMode
from .contract import telemetry
from .references import ClusterReference, get
from .rules import RUNBOOK

ALB = "AWS/ApplicationELB"
ECS = "AWS/ECS"
INSIGHTS = "ECS/ContainerInsights"
AUTOSCALING = "AWS/AutoScaling"
AMAZON_MQ = "AWS/AmazonMQ"
PERIOD = 60
# The 5xx share is computed only over minutes with at least this many requests: one error in two requests is
# no outage.
MIN_REQUESTS = 10
# README "Operating" anchors, by what broke: the GitHub anchors of headings "#### Alarm: web 5xx", ...
RUNBOOKS = {
    "5xx": "alarm-web-5xx",
    "unhealthy-targets": "alarm-unhealthy-targets",
    "latency": "alarm-slow-responses",
    "tasks": "alarm-tasks-below-desired",
    "dead-letters": "alarm-dead-letters",
    "backlog": "alarm-backlog",
    "no-consumer": "alarm-no-consumer",
    "broker-memory": "alarm-broker-memory",
    "consul-servers": "alarm-consul-servers",
}
_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
_NAME = re.compile(r"^[a-z][a-z0-9-]{0,39}$")

DEFAULTS: dict[str, Any] = {
    "web_services": [],
    "services": [],
    "alarm_email": "",
    "container_insights": True,
    "error_rate_percent": 5,
    "latency_p99_seconds": 1.5,
    "running_tasks_minutes": 5,
    "backlog_messages": 1000,
    "backlog_minutes": 10,
    "broker_memory_percent": 80,
    "tags": {},
}
WEB_SERVICE_DEFAULTS: dict[str, Any] = {"autoscaling": {}}
SERVICE_DEFAULTS: dict[str, Any] = {"min_running_tasks": 1}
MESSAGING_DEFAULTS: dict[str, Any] = {
    "memory_watermark_share": rabbitmq_config.MEMORY_WATERMARK_SHARE,
    "receive_autoscaling": {},
}
CONSUL_DEFAULTS: dict[str, Any] = {"servers": 3}
WEB_SERVICE_REQUIRED = ("name", "load_balancer_arn_suffix", "target_group_arn", "service_name")


class WebServiceWatch(TypedDict, total=False):
    """A web service behind an internet-facing load balancer (``ScaledWebService``'s outputs)."""

    name: Required[str]
    """What alarms and the dashboard call it, e.g. ``portal`` (lower-case letters, digits, -). Required."""
    load_balancer_arn_suffix: Required[pulumi.Input[str]]
    """``ScaledWebService.load_balancer_arn_suffix`` (the ``LoadBalancer`` dimension). Required."""
    target_group_arn: Required[pulumi.Input[str]]
    """``ScaledWebService.target_group_arn`` (its suffix is the ``TargetGroup`` dimension). Required."""
    service_name: Required[pulumi.Input[str]]
    """``ScaledWebService.service_name``. Required."""
    autoscaling: AutoscalingOptions
    """The autoscaling options the service was given: its fewest tasks are the running-tasks alarm's floor, and
    its bounds and CPU thresholds are drawn on the dashboard. Default ``{}``."""


class ServiceWatch(TypedDict, total=False):
    """An ECS service of the cluster whose running tasks must not fall below a floor."""

    name: Required[str]
    """What the alarm and the dashboard call it, e.g. ``weather`` (lower-case letters, digits, -). Required."""
    service_name: Required[pulumi.Input[str]]
    """The ECS service's name (``ContainerService.service_name``). Required."""
    min_running_tasks: int
    """Page when fewer tasks run than this for ``running_tasks_minutes``: its desired count (its fewest when
    autoscaled; a daemon's fewest instances); ``0`` watches nothing. Default ``1``."""


class MessagingWatch(TypedDict, total=False):
    """The work queue and the broker (``RabbitMessaging``'s settings and outputs)."""

    queue_name: Required[pulumi.Input[str]]
    """The queue send and receive use; their EMF queue metrics carry it as the ``Queue`` dimension (and the
    cluster's name as the ``Cluster`` one). Required."""
    broker_service_name: pulumi.Input[str]
    """The ECS service of a broker on the cluster (``container`` or ``cluster`` mode): its memory against the
    watermark. Give this or ``amazon_mq_broker_name``. Default: none."""
    amazon_mq_broker_name: pulumi.Input[str]
    """The Amazon MQ broker's name (``amazonmq`` mode; the ``Broker`` dimension of ``AWS/AmazonMQ``). Give this
    or ``broker_service_name``. Default: none."""
    memory_watermark_share: float
    """Share of its task's memory at which a broker on the cluster blocks publishers (its
    ``vm_memory_high_watermark``). Default ``0.5``."""
    receive_service_name: pulumi.Input[str]
    """The receive service, to graph its ready messages per task against its scaling target. Default: none."""
    receive_autoscaling: AutoscalingOptions
    """receive's autoscaling options (backlog mode: ``target_backlog_per_task`` is drawn). Default ``{}``."""


class ConsulWatch(TypedDict, total=False):
    """The Consul servers (``ConsulMesh``'s outputs and settings)."""

    server_autoscaling_group_name: Required[pulumi.Input[str]]
    """``ConsulMesh.server_autoscaling_group_name``; the group must collect ``GroupInServiceInstances``.
    Required."""
    servers: int
    """How many servers the mesh is configured with: fewer in service pages. Default ``3``."""
    agent_service_name: pulumi.Input[str]
    """The agents' DAEMON service, graphed against the cluster's instances. Default: none."""


class MonitoringArgs(TypedDict, total=False):
    cluster: Required[pulumi.Input[ClusterReference]]
    """The cluster the services run on (``EcsCluster.reference``). Required."""
    cluster_autoscaling_group_name: pulumi.Input[str]
    """``EcsCluster.autoscaling_group_name``, to graph the instances (the group must collect its metrics).
    Default: none."""
    web_services: list[WebServiceWatch]
    """Web services: 5xx share, unhealthy targets, p99 response time, running tasks. Default ``[]``."""
    services: list[ServiceWatch]
    """Other ECS services: running tasks below their floor. Default ``[]``."""
    messaging: MessagingWatch
    """The queue and the broker: dead letters, backlog, backlog without a consumer, broker memory. Default:
    none."""
    consul: ConsulWatch
    """The Consul servers: fewer in service than configured. Default: none."""
    alarm_email: str
    """Subscribe this address to the alarms (AWS mails a confirmation link first). Default ``""`` (none)."""
    container_insights: bool
    """Whether the cluster has Container Insights (running tasks from ``RunningTaskCount``; else from ECS's
    free ``CPUUtilization`` sample count). Default ``True``."""
    error_rate_percent: int
    """Page when 5xx answers (load balancer's and targets') exceed this share of requests (1-100); the
    deployment alarm. Default ``5``."""
    latency_p99_seconds: float
    """Page when the targets' p99 response time stays above this (seconds). Default ``1.5``."""
    running_tasks_minutes: int
    """Minutes a service may run below its floor before it pages (deployments and replacements stay under it).
    Default ``5``."""
    backlog_messages: int
    """Page when more messages than this wait in the queue for ``backlog_minutes``. Default ``1000``."""
    backlog_minutes: int
    """Minutes the backlog may stay above ``backlog_messages`` (1-60). Default ``10``."""
    broker_memory_percent: int
    """Page when the broker's memory reaches this share of its high watermark (where it blocks publishers).
    Default ``80``."""
    tags: dict[str, str]
    """Tags added to every resource. Default ``{}``."""


def alarm_name(monitoring: str, purpose: str) -> str:
    """The CloudWatch name of a Monitoring's alarm: ``<project>-<stack>-<monitoring>-<purpose>``."""
    return f"{pulumi.get_project()}-{pulumi.get_stack()}-{monitoring}-{purpose}"


def deployment_alarm_names(monitoring: str, web_service: str) -> list[str]:
    """The alarms of ``Monitoring(monitoring)`` that fail (and roll back) ``web_service``'s deployments: pass them
    as its ``service.deployment_alarms`` when creating it, before the Monitoring exists (names are fixed)."""
    return [alarm_name(monitoring, f"{web_service}-5xx")]


class Monitoring(pulumi.ComponentResource):
    """Alarms that page, the topic they page through, and the system's dashboard.

    One SNS topic, encrypted with a KMS key of its own whose policy lets CloudWatch publish (the AWS managed
    ``aws/sns`` key can't: its policy can't be changed), with an optional email subscription. Alarms, each
    acting on the topic: for each web service its 5xx share of requests (the deployment alarm), unhealthy
    targets, p99 response time; for every service running tasks below its floor; for messaging dead letters,
    a lasting backlog, a backlog with no consumer, broker memory near its watermark; for Consul fewer servers
    in service than configured. A CloudWatch dashboard laid out like the system.
    """

    topic_arn: pulumi.Output[str]
    """ARN of the SNS topic every alarm notifies."""
    alarm_arns: pulumi.Output[dict[str, str]]
    """Alarm ARNs by purpose (``portal-5xx``, ``weather-tasks``, ``dead-letters``, ...)."""
    alarm_names: pulumi.Output[dict[str, str]]
    """Alarm names by purpose."""
    deployment_alarm_names: pulumi.Output[dict[str, list[str]]]
    """Web service name -> the alarms that fail its deployments (``deployment_alarm_names()`` gives them before)."""
    dashboard_name: pulumi.Output[str]
    """Name of the CloudWatch dashboard."""
    dashboard_url: pulumi.Output[str]
    """Console URL of the dashboard."""

    def __init__(self, name: str, args: MonitoringArgs, opts: pulumi.ResourceOptions | None = None):
        raise_if(problems(args))  # before anything is registered
        super().__init__("seaport:index:Monitoring", name, None, opts)
        a = resolve(args)
        self._name, self._tags = name, a["tags"]
        self._cluster_name = get(a["cluster"], "name")
        topic = self._topic(name, a)
        self._topic_arn = topic.arn
        alarms: dict[str, aws.cloudwatch.MetricAlarm] = {}
        for web in a["web_services"]:
            alarms |= self._web_alarms(web, a)
        for service in a["services"]:
            if service["min_running_tasks"] > 0:
                alarms[f"{service['name']}-tasks"] = self._tasks_alarm(service, a)
        if a.get("messaging"):
            alarms |= self._messaging_alarms(a["messaging"], a)
        if a.get("consul"):
            alarms["consul-servers"] = self._consul_alarm(a["consul"], a)
        region = aws.get_region_output(opts=pulumi.InvokeOutputOptions(parent=self)).region
        board = self._dashboard(name, a, alarms, region)

        outputs.register(
            self,
            topic_arn=topic.arn,
            alarm_arns=pulumi.Output.from_input({k: v.arn for k, v in alarms.items()}),
            alarm_names=pulumi.Output.from_input({k: v.name for k, v in alarms.items()}),
            deployment_alarm_names=pulumi.Output.from_input(
                {w["name"]: [alarms[f"{w['name']}-5xx"].name] for w in a["web_services"]}
            ),
            dashboard_name=board.dashboard_name,
            dashboard_url=pulumi.Output.all(region, board.dashboard_name).apply(lambda v: console_url(*v)),
        )

    # -- the topic -------------------------------------------------------------------------------

    def _topic(self, name: str, a: dict[str, Any]) -> aws.sns.Topic:
        """The alarms' topic, encrypted with a key CloudWatch may use, and the email subscription."""
        child = pulumi.ResourceOptions(parent=self)
        account = aws.get_caller_identity_output(opts=pulumi.InvokeOutputOptions(parent=self)).account_id
        key = aws.kms.Key(
            f"{name}-alarms",
            description=f"encrypts the alarm topic of {name}; CloudWatch may use it to publish alarms",
            enable_key_rotation=True,
            deletion_window_in_days=7,
            policy=account.apply(topic_key_policy),
            tags=a["tags"],
            opts=child,
        )
        topic = aws.sns.Topic(f"{name}-alarms", kms_master_key_id=key.arn, tags=a["tags"], opts=child)
        if a["alarm_email"]:
            aws.sns.TopicSubscription(
                f"{name}-alarm-email", topic=topic.arn, protocol="email", endpoint=a["alarm_email"], opts=child
            )
        return topic

    # -- alarms ----------------------------------------------------------------------------------

    def _alarm(self, purpose: str, runbook: str, what: str, **settings: Any) -> aws.cloudwatch.MetricAlarm:
        """One alarm acting on the topic (when it fires and when it recovers), its runbook in the description.
        A single-metric alarm reads one-minute periods; a metric-math one sets the period of each metric."""
        if "metric_queries" not in settings:
            settings["period"] = PERIOD
        return aws.cloudwatch.MetricAlarm(
            f"{self._name}-{purpose}",
            name=alarm_name(self._name, purpose),
            alarm_description=f"{what} What to do: {RUNBOOK}{RUNBOOKS[runbook]}",
            alarm_actions=[self._topic_arn],
            ok_actions=[self._topic_arn],
            tags=self._tags,
            opts=pulumi.ResourceOptions(parent=self),
            **settings,
        )

    def _web_alarms(self, web: dict[str, Any], a: dict[str, Any]) -> dict[str, aws.cloudwatch.MetricAlarm]:
        label = web["name"]
        balancer = {"LoadBalancer": web["load_balancer_arn_suffix"]}
        target = {**balancer, "TargetGroup": pulumi.Output.from_input(web["target_group_arn"]).apply(arn_suffix)}
        share = f"IF(requests >= {MIN_REQUESTS}, 100 * (FILL(elb, 0) + FILL(target, 0)) / requests, 0)"
        found = {
            f"{label}-5xx": self._alarm(
                f"{label}-5xx",
                "5xx",
                f"{label}: more than {a['error_rate_percent']}% of requests answered 5xx (load balancer or tasks) "
                "in 2 of the last 3 minutes; fails and rolls back a deployment in progress.",
                metric_queries=[
                    query("elb", ALB, "HTTPCode_ELB_5XX_Count", balancer, "Sum"),
                    query("target", ALB, "HTTPCode_Target_5XX_Count", target, "Sum"),
                    query("requests", ALB, "RequestCount", balancer, "Sum"),
                    query("share", expression=share, label="5xx, % of requests"),
                ],
                **over(a["error_rate_percent"], 3, 2, "notBreaching"),
            ),
            f"{label}-unhealthy-targets": self._alarm(
                f"{label}-unhealthy-targets",
                "unhealthy-targets",
                f"{label}: the load balancer has found tasks failing their health check for 5 minutes.",
                namespace=ALB,
                metric_name="UnHealthyHostCount",
                dimensions=target,
                statistic="Maximum",
                **over(0, 5, 5, "notBreaching"),
            ),
            f"{label}-latency-p99": self._alarm(
                f"{label}-latency-p99",
                "latency",
                f"{label}: p99 response time above {a['latency_p99_seconds']} s for 5 minutes.",
                namespace=ALB,
                metric_name="TargetResponseTime",
                dimensions=target,
                extended_statistic="p99",
                **over(a["latency_p99_seconds"], 5, 5, "notBreaching"),
            ),
        }
        floor = {"name": label, "service_name": web["service_name"], "min_running_tasks": web["min_tasks"]}
        found[f"{label}-tasks"] = self._tasks_alarm(floor, a)
        return found

    def _tasks_alarm(self, service: dict[str, Any], a: dict[str, Any]) -> aws.cloudwatch.MetricAlarm:
        namespace, metric_name, statistic = running_tasks(a["container_insights"])
        minutes, floor = a["running_tasks_minutes"], service["min_running_tasks"]
        return self._alarm(
            f"{service['name']}-tasks",
            "tasks",
            f"{service['name']}: fewer than {floor} task(s) running for {minutes} minutes.",
            namespace=namespace,
            metric_name=metric_name,
            dimensions={"ClusterName": self._cluster_name, "ServiceName": service["service_name"]},
            statistic=statistic,
            evaluation_periods=minutes,
            datapoints_to_alarm=minutes,
            threshold=floor,
            comparison_operator="LessThanThreshold",
            # ECS publishes nothing for a service with no running task: no data is the outage itself.
            treat_missing_data="breaching",
        )

    def _messaging_alarms(self, m: dict[str, Any], a: dict[str, Any]) -> dict[str, aws.cloudwatch.MetricAlarm]:
        queue = telemetry.queue_dimensions(self._cluster_name, m["queue_name"])  # this stack's queue only
        minutes = a["backlog_minutes"]
        return {
            "dead-letters": self._alarm(
                "dead-letters",
                "dead-letters",
                "messaging: messages were dead-lettered (receive gave up on them after the delivery limit).",
                namespace=telemetry.NAMESPACE,
                metric_name=telemetry.DEAD_LETTER_DEPTH,
                dimensions=queue,
                statistic="Maximum",
                **over(0, 1, 1, "notBreaching"),
            ),
            "backlog": self._alarm(
                "backlog",
                "backlog",
                f"messaging: more than {a['backlog_messages']} messages waiting for {minutes} minutes.",
                namespace=telemetry.NAMESPACE,
                metric_name=telemetry.QUEUE_DEPTH,
                dimensions=queue,
                statistic="Maximum",
                # No record for a while (apps restarting): keep the state, other alarms cover the apps.
                **over(a["backlog_messages"], minutes, minutes, "missing"),
            ),
            "no-consumer": self._alarm(
                "no-consumer",
                "no-consumer",
                "messaging: messages are waiting and no consumer is on the queue (or no app reports at all) for "
                "3 minutes.",
                metric_queries=[
                    query("depth", telemetry.NAMESPACE, telemetry.QUEUE_DEPTH, queue, "Maximum"),
                    query("consumers", telemetry.NAMESPACE, telemetry.CONSUMERS, queue, "Minimum"),
                    query(
                        "stranded", expression="IF(depth > 0, IF(FILL(consumers, 0) < 1, 1, 0), 0)", label="stranded"
                    ),
                ],
                # Nothing reported: neither app is connected, so nothing consumes.
                **over(0, 3, 3, "breaching"),
            ),
            "broker-memory": self._broker_memory_alarm(m, a),
        }

    def _broker_memory_alarm(self, m: dict[str, Any], a: dict[str, Any]) -> aws.cloudwatch.MetricAlarm:
        percent = a["broker_memory_percent"]
        what = f"messaging: the broker's memory is above {percent}% of its watermark for 3 minutes (at 100% it "
        what += "blocks every publisher)."
        if m.get("amazon_mq_broker_name"):
            broker = {"Broker": m["amazon_mq_broker_name"]}
            return self._alarm(
                "broker-memory",
                "broker-memory",
                what,
                metric_queries=[
                    query("used", AMAZON_MQ, "RabbitMQMemUsed", broker, "Maximum"),
                    query("limit", AMAZON_MQ, "RabbitMQMemLimit", broker, "Minimum"),
                    query("memory", expression="100 * used / limit", label="memory, % of the watermark"),
                ],
                **over(percent, 3, 3, "missing"),
            )
        # ECS measures the broker task's memory as a share of its hard limit; the watermark is a share of it too.
        return self._alarm(
            "broker-memory",
            "broker-memory",
            what,
            namespace=ECS,
            metric_name="MemoryUtilization",
            dimensions={"ClusterName": self._cluster_name, "ServiceName": m["broker_service_name"]},
            statistic="Maximum",
            **over(round(percent * m["memory_watermark_share"], 2), 3, 3, "missing"),
        )

    def _consul_alarm(self, c: dict[str, Any], a: dict[str, Any]) -> aws.cloudwatch.MetricAlarm:
        return self._alarm(
            "consul-servers",
            "consul-servers",
            f"Consul: fewer than {c['servers']} servers in service for 5 minutes (the mesh loses its quorum "
            "when a majority is gone).",
            namespace=AUTOSCALING,
            metric_name="GroupInServiceInstances",
            dimensions={"AutoScalingGroupName": c["server_autoscaling_group_name"]},
            statistic="Minimum",
            evaluation_periods=5,
            datapoints_to_alarm=5,
            threshold=c["servers"],
            comparison_operator="LessThanThreshold",
            # No data: the group does not collect its metrics (enabled_metrics), or is gone.
            treat_missing_data="breaching",
        )

    # -- the dashboard ---------------------------------------------------------------------------

    def _dashboard(
        self,
        name: str,
        a: dict[str, Any],
        alarms: dict[str, aws.cloudwatch.MetricAlarm],
        region: pulumi.Output[str],
    ) -> aws.cloudwatch.Dashboard:
        view = dashboard_view(a, self._cluster_name, region, [alarm.arn for alarm in alarms.values()])
        return aws.cloudwatch.Dashboard(
            f"{name}-dashboard",
            dashboard_name=dashboard_name(name),
            dashboard_body=pulumi.Output.from_input(view).apply(dashboard.body),
            opts=pulumi.ResourceOptions(parent=self),
        )


def over(threshold: float, periods: int, datapoints: int, missing: str) -> dict[str, Any]:
    """Settings of a one-minute alarm firing above ``threshold`` in ``datapoints`` of ``periods`` minutes."""
    return {
        "threshold": threshold,
        "comparison_operator": "GreaterThanThreshold",
        "evaluation_periods": periods,
        "datapoints_to_alarm": datapoints,
        "treat_missing_data": missing,
    }


def query(
    id_: str,
    namespace: str | None = None,
    metric_name: str | None = None,
    dimensions: dict[str, Any] | None = None,
    stat: str | None = None,
    *,
    expression: str | None = None,
    label: str | None = None,
) -> aws.cloudwatch.MetricAlarmMetricQueryArgs:
    """A one-minute metric of a metric-math alarm, or (with ``expression``) the expression it alarms on."""
    if expression:
        return aws.cloudwatch.MetricAlarmMetricQueryArgs(id=id_, expression=expression, label=label, return_data=True)
    metric = aws.cloudwatch.MetricAlarmMetricQueryMetricArgs(
        namespace=namespace, metric_name=metric_name, dimensions=dimensions, stat=stat, period=PERIOD
    )
    return aws.cloudwatch.MetricAlarmMetricQueryArgs(id=id_, metric=metric, return_data=False)


def running_tasks(container_insights: bool) -> tuple[str, str, str]:
    """(namespace, metric, statistic) of a service's running task count."""
    return (INSIGHTS, "RunningTaskCount", "Minimum") if container_insights else autoscaling.RUNNING_TASKS


def arn_suffix(arn: str) -> str:
    """A target group's CloudWatch dimension, ``targetgroup/<name>/<id>``, from its ARN."""
    return arn.split(":", 5)[-1]


def dashboard_name(name: str) -> str:
    """``<project>-<stack>-<name>``, in the characters dashboard names allow."""
    return re.sub(r"[^A-Za-z0-9_-]", "-", f"{pulumi.get_project()}-{pulumi.get_stack()}-{name}")


def console_url(region: str, name: str) -> str:
    return f"https://{region}.console.aws.amazon.com/cloudwatch/home?region={region}#dashboards/dashboard/{name}"


def topic_key_policy(account: str) -> str:
    """The alarm topic key's policy: the account administers it; CloudWatch (acting for this account) may use it
    to publish to the encrypted topic."""
    return iam.json_document(
        [
            iam.statement(
                ["kms:*"], ["*"], Sid="AccountAdministers", Principal={"AWS": f"arn:aws:iam::{account}:root"}
            ),
            iam.statement(
                ["kms:Decrypt", "kms:GenerateDataKey*"],
                ["*"],
                Sid="CloudWatchPublishesAlarms",
                Principal={"Service": "cloudwatch.amazonaws.com"},
                Condition={"StringEquals": {"aws:SourceAccount": account}},
            ),
        ]
    )


def dashboard_view(
    a: dict[str, Any], cluster_name: pulumi.Output[str], region: pulumi.Output[str], alarm_arns: list[Any]
) -> dict[str, Any]:
    """What ``dashboard.body`` lays out: the arguments' values, outputs left to resolve."""
    web_services = [
        {
            "name": w["name"],
            "load_balancer": w["load_balancer_arn_suffix"],
            "target_group": pulumi.Output.from_input(w["target_group_arn"]).apply(arn_suffix),
            "service": w["service_name"],
            "min_tasks": w["min_tasks"],
            "max_tasks": w["max_tasks"],
            "cpu_thresholds": cpu_thresholds(w["autoscaling"]),
            "error_rate_percent": a["error_rate_percent"],
            "latency_seconds": a["latency_p99_seconds"],
        }
        for w in a["web_services"]
    ]
    view: dict[str, Any] = {
        "region": region,
        "title": f"# {pulumi.get_project()} {pulumi.get_stack()}\nEvery alarm notifies the alarm topic; what each "
        f"one means and what to do: {RUNBOOK}operating",
        "alarms": alarm_arns,
        "cluster": cluster_name,
        "autoscaling_group": a.get("cluster_autoscaling_group_name"),
        "running_tasks": running_tasks(a["container_insights"]),
        "web_services": web_services,
        "services": [{"name": s["name"], "service": s["service_name"]} for s in a["services"]],
    }
    if a.get("messaging"):
        m = a["messaging"]
        receive = with_defaults(m["receive_autoscaling"], autoscaling.DEFAULTS)
        view["messaging"] = {
            "queue": m["queue_name"],
            "broker_service": m.get("broker_service_name"),
            "amazon_mq_broker": m.get("amazon_mq_broker_name"),
            "watermark_share": m["memory_watermark_share"],
            "memory_alarm_percent": a["broker_memory_percent"],
            "backlog_messages": a["backlog_messages"],
            "receive_service": m.get("receive_service_name"),
            "receive_running_tasks": autoscaling.RUNNING_TASKS,
            "backlog_target": receive["target_backlog_per_task"],
        }
    if a.get("consul"):
        c = a["consul"]
        view["consul"] = {
            "servers_group": c["server_autoscaling_group_name"],
            "servers": c["servers"],
            "agent_service": c.get("agent_service_name"),
        }
    return view


def cpu_thresholds(options: AutoscalingOptions) -> list[tuple[str, int]]:
    """The CPU percents a web service's scaling acts at, to draw on its task graph."""
    s = with_defaults(options, autoscaling.DEFAULTS)
    if s["scaling_mode"] == ScalingMode.STEP:
        return [("scale out", s["scale_out_cpu_percent"]), ("scale in", s["scale_in_cpu_percent"])]
    if s["scaling_mode"] == ScalingMode.TARGET_TRACKING:
        return [("CPU target", s["target_cpu_percent"])]
    return []


def resolve(args: MonitoringArgs) -> dict[str, Any]:
    """The arguments with every default filled in, nested watches included."""
    a = with_defaults(args, DEFAULTS)
    webs = []
    for web in a["web_services"]:
        w = with_defaults(web, WEB_SERVICE_DEFAULTS)
        scaling = with_defaults(w["autoscaling"], autoscaling.DEFAULTS)
        webs.append({**w, "min_tasks": scaling["min_tasks"], "max_tasks": scaling["max_tasks"]})
    a["web_services"] = webs
    a["services"] = [with_defaults(s, SERVICE_DEFAULTS) for s in a["services"]]
    if a.get("messaging"):
        a["messaging"] = with_defaults(a["messaging"], MESSAGING_DEFAULTS)
    if a.get("consul"):
        a["consul"] = with_defaults(a["consul"], CONSUL_DEFAULTS)
    return a


def problems(args: MonitoringArgs) -> list[Problem]:
    """Every bad argument of a Monitoring."""
    found = Problems()
    found.require(args or {}, "cluster")
    found.extend_under("cluster", references.problems((args or {}).get("cluster"), ClusterReference))
    a = resolve(args)
    names: list[str] = []
    for index, web in enumerate(a["web_services"]):
        path = f"web_services[{index}]"
        found.extend_under(path, _watch_problems(web, WEB_SERVICE_REQUIRED))
        found.extend_under(f"{path}.autoscaling", autoscaling.options_problems(web["autoscaling"]))
        names.append(web.get("name"))
    for index, service in enumerate(a["services"]):
        found.extend_under(f"services[{index}]", _watch_problems(service, ("name", "service_name")))
        floor = service["min_running_tasks"]
        found.check(f"services[{index}].min_running_tasks", floor, check.int_between(floor, 0, 1000))
        names.append(service.get("name"))
    if len(set(names)) != len(names):
        found.check("services", names, "need names unique across web_services and services (they name alarms)")
    if a.get("messaging"):
        found.extend_under("messaging", _messaging_problems(a["messaging"]))
    if a.get("consul"):
        consul = a["consul"]
        found.extend_under("consul", _watch_problems(consul, ("server_autoscaling_group_name",)))
        found.check("consul.servers", consul["servers"], check.one_of(consul["servers"], (1, 3, 5)))
    email = a["alarm_email"]
    if email:
        found.check("alarm_email", email, None if _EMAIL.match(str(email)) else "must be an email address")
    for key, low, high in (
        ("error_rate_percent", 1, 100),
        ("running_tasks_minutes", 1, 60),
        ("backlog_messages", 1, 10_000_000),
        ("backlog_minutes", 1, 60),
        ("broker_memory_percent", 10, 100),
    ):
        found.check(key, a[key], check.int_between(a[key], low, high))
    latency = a["latency_p99_seconds"]
    if isinstance(latency, bool) or not isinstance(latency, int | float) or not 0 < latency <= 60:
        found.check("latency_p99_seconds", latency, "must be a number of seconds above 0 and at most 60")
    found.check("tags", a["tags"], check.tags(a["tags"]))
    return found


def _watch_problems(watch: dict[str, Any], required: tuple[str, ...]) -> list[Problem]:
    found = Problems()
    found.require(watch, *required)
    if "name" in required and watch.get("name") and not _NAME.match(str(watch["name"])):
        found.check("name", watch["name"], "must be 1-40 lower-case letters, digits or -, from a letter")
    return found


def _messaging_problems(m: dict[str, Any]) -> list[Problem]:
    found = Problems()
    found.require(m, "queue_name")
    if isinstance(m.get("queue_name"), str):
        found.check("queue_name", m["queue_name"], check.queue_name(m["queue_name"]))
    if bool(m.get("broker_service_name")) == bool(m.get("amazon_mq_broker_name")):
        found.check(
            "broker_service_name",
            m.get("broker_service_name"),
            "or amazon_mq_broker_name: give exactly one (where the broker's memory is measured)",
        )
    share = m["memory_watermark_share"]
    if isinstance(share, bool) or not isinstance(share, int | float) or not 0 < share <= 1:
        found.check("memory_watermark_share", share, "must be a share above 0 and at most 1")
    receive = {"queue_name": m.get("queue_name"), **m["receive_autoscaling"]}  # its queue is this one by default
    found.extend_under("receive_autoscaling", autoscaling.options_problems(receive))
    return found
