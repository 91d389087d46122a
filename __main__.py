"""seaport: the composition. Settings -> components -> exports; the details live in the seaport package.

Network -> EcsCluster -> images -> ConsulMesh -> RabbitMessaging, the weather and
stocks backends (found through Consul), and the portal behind the load balancer.
"""

import pulumi

import settings
import watchlist
from seaport import (
    CertificateAuthority,
    ConsulMesh,
    ContainerImage,
    ContainerService,
    EcsCluster,
    Monitoring,
    Network,
    RabbitMessaging,
    ScaledWebService,
    deployment_alarm_names,
)
from seaport.messaging import dedicated_instance_counts as messaging_host_counts
from seaport.messaging import dedicated_instances as messaging_hosts

APPS = ("send", "receive", "portal", "weather", "stocks", "registrar")
APP_PORT = 8080  # every HTTP app listens here inside its container (bridge mode maps it to a dynamic host port)
HEALTH_CHECK = {"command": ["CMD", "python", "-m", "apps.common.healthcheck"]}  # no curl in slim images
MONITORING = "monitoring"

config = settings.load()
tags = {"project": "seaport", "stack": config.stack, **config.tags}

network = Network("seaport", {**config["network"], "tags": tags})
# The broker keeps its data on instances of its own (messaging.dedicated_instances): one for a container-mode
# broker, one per node, spread over the AZs, for a clustered one, so a node always comes back to its data.
cluster = EcsCluster(
    settings.CLUSTER_NAME,
    {
        **config["cluster"],
        "network": network.reference,
        "dedicated_instances": messaging_hosts(config["messaging"]),
        "dedicated_instance_counts": messaging_host_counts(config["messaging"]),
        "tags": tags,
    },
)

# One Dockerfile, a build target per app, built from apps/ (so apps/common is shared) for the instances.
images = {
    app: ContainerImage(
        f"{app}-image",
        {**config["images"], "context": "apps", "dockerfile": "apps/Dockerfile", "target": app, "tags": tags},
    )
    for app in APPS
}

# One internal CA signs the certificates of what serves TLS inside the system (Consul servers, the broker).
ca = CertificateAuthority("internal-ca", {"tags": tags})

mesh = ConsulMesh(
    "consul",
    {
        **config["consul"],
        "cluster": cluster.reference,
        "ca": ca.reference,
        "registrar_image": images["registrar"].repo_digest,
        "tags": tags,
    },
)

# receive scales on its backlog (ready messages per task) between receiveMinTasks and receiveMaxTasks.
receive_scaling = {**config["messaging"].get("receive_autoscaling", {}), "scaling_mode": "backlog"}
messaging = RabbitMessaging(
    "messaging",
    {
        **config["messaging"],
        "receive_autoscaling": receive_scaling,
        "cluster": cluster.reference,
        "discovery": mesh.discovery,
        "ca": ca.reference,
        "send_image": images["send"].repo_digest,
        "receive_image": images["receive"].repo_digest,
        "tags": tags,
    },
)

# The portal's backends: registered in Consul by name, so the portal finds them without an address.
backend_environment = {"weather": {"TEMP_SCALE": config.temp_scale}, "stocks": {}}
backends = {
    app: ContainerService(
        app,
        {
            **config["backends"],
            "cluster": cluster.reference,
            "discovery": mesh.discovery,
            "consul_service": {"name": app, "check": "http:/health"},
            "container": {
                "name": app,
                "image": images[app].repo_digest,
                "port": APP_PORT,
                "cpu": 128,
                "memory_mib": 192,
                "environment": backend_environment[app],
                "health_check": HEALTH_CHECK,
            },
            "tags": tags,
        },
    )
    for app in ("weather", "stocks")
}

portal_config = config["portal"]
web_cpu = portal_config.get("container", {}).get("cpu", 256)
portal = ScaledWebService(
    "portal",
    {
        **portal_config,
        "cluster": cluster.reference,
        "container": {
            **portal_config.get("container", {}),
            "name": "portal",
            "image": images["portal"].repo_digest,
            "port": APP_PORT,
            "environment": {
                # the Consul services the portal calls (its defaults too; explicit so the plan shows the wiring)
                "WEATHER_SERVICE": "weather",
                "STOCKS_SERVICE": "stocks",
                # one gunicorn worker per quarter vCPU reserved (threads serve the concurrency)
                "WEB_CONCURRENCY": str(max(1, web_cpu // 256)),
            },
            "health_check": HEALTH_CHECK,
        },
        "service": {
            **portal_config.get("service", {}),
            "discovery": mesh.discovery,
            "discovers": ["weather", "stocks"],
            # a release whose 5xx share pages is rolled back, on top of the circuit breaker
            "deployment_alarms": deployment_alarm_names(MONITORING, "portal"),
        },
        "tags": tags,
    },
)

# Alarms that page through one topic (seaport:alarmEmail), and the dashboard.
monitoring = Monitoring(
    MONITORING,
    {
        **config["monitoring"],
        "cluster": cluster.reference,
        "cluster_autoscaling_group_name": cluster.autoscaling_group_name,
        "web_services": [
            {
                "name": "portal",
                "load_balancer_arn_suffix": portal.load_balancer_arn_suffix,
                "target_group_arn": portal.target_group_arn,
                "service_name": portal.service_name,
                "autoscaling": portal_config.get("autoscaling", {}),
            }
        ],
        "services": watchlist.services(config, backends, messaging, mesh, receive_scaling.get("min_tasks", 2)),
        "messaging": watchlist.queue(config, messaging),
        "consul": {
            "server_autoscaling_group_name": mesh.server_autoscaling_group_name,
            "servers": config["consul"].get("servers", 3),
            "agent_service_name": mesh.agent_service_name,
        },
        "tags": tags,
    },
)

pulumi.export("portalUrl", portal.url)
pulumi.export("clusterName", cluster.cluster_name)
pulumi.export("consulServersGroup", mesh.server_autoscaling_group_name)  # the UI: README, Operating
pulumi.export("internalCaCertificate", ca.certificate_pem)
pulumi.export("brokerEndpoint", messaging.broker_endpoint)
pulumi.export("imageDigests", {app: image.repo_digest for app, image in images.items()})
pulumi.export("vpcId", network.vpc_id)
pulumi.export("alarmTopicArn", monitoring.topic_arn)
pulumi.export("dashboardUrl", monitoring.dashboard_url)
