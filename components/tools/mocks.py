"""Deterministic stand-ins for the providers seaport uses: resources and provider functions.

``SeaportMocks`` answers every resource registration with well-formed,
unique, deterministic ids and ARNs (the same program gives the same plan), so
references between resources can be followed by value, and answers the
provider functions the components call.
"""

from __future__ import annotations

import base64
import hashlib
from collections.abc import Callable

import pulumi

from . import sdk

ACCOUNT = "123456789012"
DEFAULT_REGION = "us-east-1"


def _digest(*parts: str) -> str:
    return hashlib.sha256(":".join(parts).encode()).hexdigest()


def _uuid(hexdigits: str) -> str:
    h = hexdigits
    return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:32]}"


def ecr_registry(account: str, region: str) -> str:
    """The ECR registry host of an account and region."""
    return ".".join([account, "dkr", "ecr", region, "amazonaws", "com"])


class SeaportMocks(pulumi.runtime.Mocks):
    """Deterministic stand-ins for the AWS, Docker and random providers.

    Every resource gets an id and (where AWS has one) an ARN in the real
    format, derived from a hash of its type and name: unique within a program
    and stable between runs. Resources that Pulumi auto-names get a physical
    ``name`` with a 7-character suffix, as the engine would give them.
    """

    def __init__(self, region: str = DEFAULT_REGION, account: str = ACCOUNT):
        self.region = region
        self.account = account

    # -- resources -----------------------------------------------------------------

    def new_resource(self, args: pulumi.runtime.MockResourceArgs) -> tuple[str, dict]:
        token, inputs = args.typ, dict(args.inputs)
        h = _digest(token, args.name)
        outputs = dict(inputs)
        if "name" not in outputs and args.custom and outputs.get("namePrefix"):
            outputs["name"] = f"{outputs['namePrefix']}{h[:26]}"  # as the provider completes a name_prefix
        elif "name" not in outputs and args.custom and token in AUTONAMED:
            outputs["name"] = f"{args.name}-{h[:7]}"
        name = outputs.get("name") or args.name
        if token.startswith("aws:") and "tagsAll" not in outputs and "tags" in outputs:
            outputs["tagsAll"] = outputs["tags"]
        handler = RESOURCE_SHAPES.get(token)
        resource_id = handler(self, outputs, name, h) if handler else f"{args.name}-{h[:8]}"
        if token.startswith("aws:") and "arn" not in outputs:
            module, kind = token.split(":")[1].split("/")
            outputs["arn"] = f"arn:aws:{module}:{self.region}:{self.account}:{kind.lower()}/{name}"
        outputs.setdefault("id", resource_id)
        return resource_id, outputs

    def arn(self, service: str, resource: str, *, regional: bool = True) -> str:
        region = self.region if regional else ""
        return f"arn:aws:{service}:{region}:{self.account}:{resource}"

    # -- provider functions ----------------------------------------------------------

    def call(self, args: pulumi.runtime.MockCallArgs) -> tuple[dict, list]:
        handler = CALLS.get(args.token)
        if handler is None:
            raise NotImplementedError(
                f"seaport.tools.mocks do not answer {args.token}; add it to CALLS in seaport/tools/mocks.py"
            )
        return handler(self, dict(args.args)), []


# -- resource shapes: id and computed outputs per type ---------------------------------

AUTONAMED = {
    "aws:ecs/cluster:Cluster",
    "aws:ecs/capacityProvider:CapacityProvider",
    "aws:ecs/service:Service",
    "aws:iam/role:Role",
    "aws:iam/instanceProfile:InstanceProfile",
    "aws:iam/rolePolicy:RolePolicy",
    "aws:ec2/securityGroup:SecurityGroup",
    "aws:ec2/launchTemplate:LaunchTemplate",
    "aws:autoscaling/group:Group",
    "aws:lb/loadBalancer:LoadBalancer",
    "aws:lb/targetGroup:TargetGroup",
    "aws:cloudwatch/logGroup:LogGroup",
    "aws:cloudwatch/metricAlarm:MetricAlarm",
    "aws:appautoscaling/policy:Policy",
    "aws:ecr/repository:Repository",
    "aws:secretsmanager/secret:Secret",
    "aws:mq/broker:Broker",
}


def _ec2(prefix: str, kind: str) -> Callable:
    def shape(m: SeaportMocks, out: dict, name: str, h: str) -> str:
        resource_id = f"{prefix}-{h[:17]}"
        out["arn"] = m.arn("ec2", f"{kind}/{resource_id}")
        return resource_id

    return shape


def _vpc(m, out, name, h):
    resource_id = _ec2("vpc", "vpc")(m, out, name, h)
    out.setdefault("defaultSecurityGroupId", f"sg-{h[17:34]}")
    out.setdefault("mainRouteTableId", f"rtb-{h[17:34]}")
    return resource_id


def _subnet(m, out, name, h):
    resource_id = _ec2("subnet", "subnet")(m, out, name, h)
    out.setdefault("availabilityZoneId", f"use1-az{int(h[0], 16) % 6 + 1}")
    return resource_id


def _eip(m, out, name, h):
    out["publicIp"] = f"198.51.100.{int(h[:2], 16) % 254 + 1}"  # TEST-NET-2
    return _ec2("eipalloc", "elastic-ip")(m, out, name, h)


def _launch_template(m, out, name, h):
    out.update(latestVersion=1, defaultVersion=1)
    return _ec2("lt", "launch-template")(m, out, name, h)


def _rule(m, out, name, h):
    resource_id = f"sgr-{h[:17]}"
    out["arn"] = m.arn("ec2", f"security-group-rule/{resource_id}")
    out["securityGroupRuleId"] = resource_id
    return resource_id


def _asg(m, out, name, h):
    out["arn"] = m.arn("autoscaling", f"autoScalingGroup:{_uuid(h)}:autoScalingGroupName/{name}")
    return name


def _ecs(kind: str) -> Callable:
    """An ECS resource whose id is its ARN."""

    def shape(m, out, name, h):
        out["arn"] = m.arn("ecs", f"{kind}/{name}")
        return out["arn"]

    return shape


def _task_definition(m, out, name, h):
    family = out.get("family", name)
    out["revision"] = 1
    out["arnWithoutRevision"] = m.arn("ecs", f"task-definition/{family}")
    out["arn"] = out["arnWithoutRevision"] + ":1"
    return family


def _ecs_service(m, out, name, h):
    cluster = str(out.get("cluster", "default")).rsplit("/", 1)[-1]
    out["arn"] = m.arn("ecs", f"service/{cluster}/{name}")
    return out["arn"]


def _iam(kind: str) -> Callable:
    def shape(m, out, name, h):
        out["arn"] = m.arn("iam", f"{kind}/{name}", regional=False)
        out.setdefault("uniqueId", "AROA" + h[:17].upper())
        return name

    return shape


def _role_policy(m, out, name, h):
    return f"{out.get('role', 'role')}:{name}"


def _load_balancer(m, out, name, h):
    lb_name = name[:32]
    out["name"] = lb_name
    out["arnSuffix"] = f"app/{lb_name}/{h[:16]}"
    out["arn"] = m.arn("elasticloadbalancing", f"loadbalancer/{out['arnSuffix']}")
    out["dnsName"] = f"{lb_name}-{int(h[:8], 16)}.{m.region}.elb.amazonaws.com".lower()
    out["zoneId"] = "Z35SXDOTRQ7X7K"
    return out["arn"]


def _target_group(m, out, name, h):
    tg_name = name[:32]
    out["name"] = tg_name
    out["arnSuffix"] = f"targetgroup/{tg_name}/{h[:16]}"
    out["arn"] = m.arn("elasticloadbalancing", out["arnSuffix"])
    return out["arn"]


def _listener(m, out, name, h):
    out["arn"] = m.arn("elasticloadbalancing", f"listener/app/{name[:32]}/{h[:16]}/{h[16:32]}")
    return out["arn"]


def _scalable_target(m, out, name, h):
    out["arn"] = m.arn("application-autoscaling", f"scalable-target/{h[:32]}")
    return str(out.get("resourceId", name))


def _scaling_policy(m, out, name, h):
    resource = out.get("resourceId", "service/cluster/service")
    out["arn"] = m.arn("autoscaling", f"scalingPolicy:{_uuid(h)}:resource/ecs/{resource}:policyName/{name}")
    out.setdefault("alarmArns", [])
    return name


def _by_name(service: str, prefix: str) -> Callable:
    """A resource whose id is its name and whose ARN ends in ``<prefix><name>``."""

    def shape(m, out, name, h):
        out["arn"] = m.arn(service, f"{prefix}{name}")
        return name

    return shape


def _ecr_repository(m, out, name, h):
    out["arn"] = m.arn("ecr", f"repository/{name}")
    out["registryId"] = m.account
    out["repositoryUrl"] = f"{ecr_registry(m.account, m.region)}/{name}"
    return name


def _docker_image(m, out, name, h):
    image = str(out.get("imageName") or name)
    repository = image.rsplit(":", 1)[0] if ":" in image.rsplit("/", 1)[-1] else image
    out["repoDigest"] = f"{repository}@sha256:{h}"
    out["digest"] = f"sha256:{h}"
    out.setdefault("platform", (out.get("build") or {}).get("platform"))
    return f"{repository}@sha256:{h}"


def _secret(m, out, name, h):
    out["arn"] = m.arn("secretsmanager", f"secret:{name}-{h[:6]}")
    return out["arn"]


def _secret_version(m, out, name, h):
    out["versionId"] = _uuid(h)
    out["arn"] = out.get("secretId", "")
    return f"{out.get('secretId', '')}|{out['versionId']}"


def _random_password(m, out, name, h):
    length = int(out.get("length") or 32)
    alphabet = "ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz23456789"
    out["result"] = "".join(alphabet[int(h[i % 64], 16) * 3 % len(alphabet)] for i in range(length))
    out["bcryptHash"] = "$2a$10$" + h[:53]
    return "none"


def _random_bytes(m, out, name, h):
    raw = bytes.fromhex(h)[: int(out.get("length") or 32)]
    out["base64"] = base64.b64encode(raw).decode()
    out["hex"] = raw.hex()
    return "none"


def _random_uuid(m, out, name, h):
    out["result"] = _uuid(h[:12] + "4" + h[13:16] + "8" + h[17:])
    return out["result"]


def _mq_broker(m, out, name, h):
    broker_id = f"b-{_uuid(h)}"
    out["arn"] = m.arn("mq", f"broker:{name}:{broker_id}")
    out["instances"] = [
        {
            "consoleUrl": f"https://{broker_id}.mq.{m.region}.amazonaws.com",
            "endpoints": [f"amqps://{broker_id}.mq.{m.region}.amazonaws.com:5671"],
            "ipAddress": "",
        }
    ]
    return broker_id


def _bucket(m, out, name, h):
    bucket = out.get("bucket") or f"{name}-{h[:7]}".lower()
    out["bucket"] = bucket
    out["arn"] = f"arn:aws:s3:::{bucket}"
    out["bucketDomainName"] = f"{bucket}.s3.amazonaws.com"
    return bucket


def _acm_certificate(m, out, name, h):
    out["arn"] = m.arn("acm", f"certificate/{_uuid(h)}")
    domain = out.get("domainName", "example.com")
    out["domainValidationOptions"] = [
        {
            "domainName": domain,
            "resourceRecordName": f"_{h[:32]}.{domain}.",
            "resourceRecordType": "CNAME",
            "resourceRecordValue": f"_{h[32:64]}.acm-validations.aws.",
        }
    ]
    out["status"] = "ISSUED"
    return out["arn"]


def _certificate_validation(m, out, name, h):
    # The provider's id is the certificate's issue time; the ARN is an output, as in AWS.
    out.setdefault("certificateArn", m.arn("acm", f"certificate/{_uuid(h)}"))
    return f"2026-01-01 00:{int(h[:2], 16) % 60:02d}:{int(h[2:4], 16) % 60:02d} +0000 UTC"


def _route53_record(m, out, name, h):
    out["fqdn"] = str(out.get("name", name)).rstrip(".")
    return f"{out.get('zoneId', 'Z0')}_{out['fqdn']}_{out.get('type', 'A')}"


def _web_acl(m, out, name, h):
    resource_id = _uuid(h)
    out["arn"] = m.arn("wafv2", f"regional/webacl/{name}/{resource_id}")
    out["capacity"] = 700
    return resource_id


def _kms_key(m, out, name, h):
    key_id = _uuid(h)
    out["arn"] = m.arn("kms", f"key/{key_id}")
    out["keyId"] = key_id
    return key_id


def _sns_topic(m, out, name, h):
    topic = out.get("name") or f"{name}-{h[:7]}"
    out["name"] = topic
    out["arn"] = m.arn("sns", topic)
    return out["arn"]


def _flow_log(m, out, name, h):
    resource_id = f"fl-{h[:17]}"
    out["arn"] = m.arn("ec2", f"vpc-flow-log/{resource_id}")
    return resource_id


def _pem(kind: str, h: str) -> str:
    body = base64.b64encode(bytes.fromhex(h * 2)).decode()
    return f"-----BEGIN {kind}-----\n{body[:64]}\n{body[64:]}\n-----END {kind}-----\n"


def _private_key(m, out, name, h):
    out["privateKeyPem"] = _pem("EC PRIVATE KEY", h)
    out["privateKeyOpenssh"] = _pem("OPENSSH PRIVATE KEY", h)
    out["publicKeyPem"] = _pem("PUBLIC KEY", h)
    out["publicKeyFingerprintSha256"] = "SHA256:" + h[:43]
    return h[:40]


def _certificate(m, out, name, h):
    out["certPem"] = _pem("CERTIFICATE", h)
    out["validityStartTime"] = "2026-01-01T00:00:00Z"
    out["validityEndTime"] = "2027-01-01T00:00:00Z"
    out["readyForRenewal"] = False
    return str(int(h[:16], 16))


def _cert_request(m, out, name, h):
    out["certRequestPem"] = _pem("CERTIFICATE REQUEST", h)
    return h[:40]


RESOURCE_SHAPES: dict[str, Callable[[SeaportMocks, dict, str, str], str]] = {
    "aws:ec2/vpc:Vpc": _vpc,
    "aws:ec2/subnet:Subnet": _subnet,
    "aws:ec2/internetGateway:InternetGateway": _ec2("igw", "internet-gateway"),
    "aws:ec2/routeTable:RouteTable": _ec2("rtb", "route-table"),
    "aws:ec2/routeTableAssociation:RouteTableAssociation": _ec2("rtbassoc", "route-table-association"),
    "aws:ec2/eip:Eip": _eip,
    "aws:ec2/natGateway:NatGateway": _ec2("nat", "natgateway"),
    "aws:ec2/securityGroup:SecurityGroup": _ec2("sg", "security-group"),
    "aws:ec2/defaultSecurityGroup:DefaultSecurityGroup": _ec2("sg", "security-group"),
    "aws:vpc/securityGroupIngressRule:SecurityGroupIngressRule": _rule,
    "aws:vpc/securityGroupEgressRule:SecurityGroupEgressRule": _rule,
    "aws:ec2/launchTemplate:LaunchTemplate": _launch_template,
    "aws:autoscaling/group:Group": _asg,
    "aws:ecs/cluster:Cluster": _ecs("cluster"),
    "aws:ecs/capacityProvider:CapacityProvider": _ecs("capacity-provider"),
    "aws:ecs/taskDefinition:TaskDefinition": _task_definition,
    "aws:ecs/service:Service": _ecs_service,
    "aws:iam/role:Role": _iam("role"),
    "aws:iam/instanceProfile:InstanceProfile": _iam("instance-profile"),
    "aws:iam/rolePolicy:RolePolicy": _role_policy,
    "aws:cloudwatch/logGroup:LogGroup": _by_name("logs", "log-group:"),
    "aws:lb/loadBalancer:LoadBalancer": _load_balancer,
    "aws:lb/targetGroup:TargetGroup": _target_group,
    "aws:lb/listener:Listener": _listener,
    "aws:appautoscaling/target:Target": _scalable_target,
    "aws:appautoscaling/policy:Policy": _scaling_policy,
    "aws:cloudwatch/metricAlarm:MetricAlarm": _by_name("cloudwatch", "alarm:"),
    "aws:ecr/repository:Repository": _ecr_repository,
    "docker:index/image:Image": _docker_image,
    "aws:secretsmanager/secret:Secret": _secret,
    "aws:secretsmanager/secretVersion:SecretVersion": _secret_version,
    "random:index/randomPassword:RandomPassword": _random_password,
    "random:index/randomBytes:RandomBytes": _random_bytes,
    "random:index/randomUuid4:RandomUuid4": _random_uuid,
    "aws:mq/broker:Broker": _mq_broker,
    "aws:s3/bucket:Bucket": _bucket,
    "aws:acm/certificate:Certificate": _acm_certificate,
    "aws:acm/certificateValidation:CertificateValidation": _certificate_validation,
    "aws:route53/record:Record": _route53_record,
    "aws:wafv2/webAcl:WebAcl": _web_acl,
    "aws:kms/key:Key": _kms_key,
    "aws:sns/topic:Topic": _sns_topic,
    "aws:ec2/flowLog:FlowLog": _flow_log,
    "tls:index/privateKey:PrivateKey": _private_key,
    "tls:index/selfSignedCert:SelfSignedCert": _certificate,
    "tls:index/locallySignedCert:LocallySignedCert": _certificate,
    "tls:index/certRequest:CertRequest": _cert_request,
}


# -- provider functions ------------------------------------------------------------------


def _ssm_parameter(m: SeaportMocks, args: dict) -> dict:
    name = args["name"]
    value = f"ami-{_digest(name)[:17]}" if "/ami" in name or "image_id" in name else f"mock-{_digest(name)[:12]}"
    return {
        "id": name,
        "name": name,
        "arn": m.arn("ssm", f"parameter{name}"),
        "type": "String",
        # The provider marks the parameter's value sensitive, which makes the whole result secret.
        "value": sdk.as_secret(value),
        "insecureValue": value,
        "version": 1,
        "withDecryption": True,
    }


def _availability_zones(m: SeaportMocks, args: dict) -> dict:
    letters = "abcdef"
    return {
        "id": m.region,
        "names": [f"{m.region}{letter}" for letter in letters],
        "zoneIds": [f"use1-az{i + 1}" for i in range(len(letters))],
        "groupNames": [m.region] * len(letters),
        "state": args.get("state"),
    }


def _caller_identity(m: SeaportMocks, args: dict) -> dict:
    return {
        "id": m.account,
        "accountId": m.account,
        "arn": f"arn:aws:iam::{m.account}:user/mock",
        "userId": "AIDAMOCKUSER000000000",
    }


def _region(m: SeaportMocks, args: dict) -> dict:
    return {
        "id": m.region,
        "name": m.region,
        "region": m.region,
        "description": "mock region",
        "endpoint": f"ec2.{m.region}.amazonaws.com",
    }


def _ecr_token(m: SeaportMocks, args: dict) -> dict:
    password = "mock-ecr-password"  # noqa: S105 - a mock value
    return {
        "id": m.region,
        "authorizationToken": base64.b64encode(f"AWS:{password}".encode()).decode(),
        "userName": "AWS",
        "password": password,
        "proxyEndpoint": f"https://{ecr_registry(m.account, m.region)}",
        "expiresAt": "2030-01-01T00:00:00Z",
        "registryId": args.get("registryId") or m.account,
    }


def _registry_image(m: SeaportMocks, args: dict) -> dict:
    name = args.get("name", "")
    return {
        "id": name,
        "name": name,
        "sha256Digest": f"sha256:{_digest('registry', name)}",
        "insecureSkipVerify": False,
    }


def _elb_service_account(m: SeaportMocks, args: dict) -> dict:
    # The region's Elastic Load Balancing account (us-east-1's, as AWS documents it).
    return {"id": "127311923021", "arn": "arn:aws:iam::127311923021:root", "region": m.region}


CALLS: dict[str, Callable[[SeaportMocks, dict], dict]] = {
    "aws:elb/getServiceAccount:getServiceAccount": _elb_service_account,
    "docker:index/getRegistryImage:getRegistryImage": _registry_image,
    "aws:ssm/getParameter:getParameter": _ssm_parameter,
    "aws:index/getAvailabilityZones:getAvailabilityZones": _availability_zones,
    "aws:index/getCallerIdentity:getCallerIdentity": _caller_identity,
    "aws:index/getRegion:getRegion": _region,
    "aws:ecr/getAuthorizationToken:getAuthorizationToken": _ecr_token,
}
