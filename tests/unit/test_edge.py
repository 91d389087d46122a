"""The internet edge of a web service: HTTPS under its own name, access logs, the WAF, and their rules."""

import json
from unittest import mock

import pytest

from seaport import InvalidArgument, ScaledWebService
from seaport.edge import ELB_LOG_DELIVERY, MANAGED_RULE_GROUP
from seaport.edge import KNOWN_BAD_INPUTS_RULE_GROUP as KNOWN_BAD_INPUTS
from seaport.load_balancer import TLS_POLICY
from seaport.tools.mocks import SeaportMocks
from seaport.tools.testing import run
from tests.unit.references import CLUSTER

CONTAINER = {"image": "nginx:1.27", "port": 8080}
CERT = "arn:aws:acm:us-east-1:123456789012:certificate/0d1e2f3a-1234-4cde-8f00-123456789abc"
DOMAIN, ZONE = "portal.example.com", "Z0123456789EXAMPLE"


def web_plan(**load_balancer):
    return run(
        lambda: ScaledWebService("web", {"cluster": CLUSTER, "container": CONTAINER, "load_balancer": load_balancer})
    )


@pytest.fixture(scope="module")
def defaults():
    return web_plan()


@pytest.fixture(scope="module")
def named():
    return web_plan(domain_name=DOMAIN, hosted_zone_id=ZONE, waf=True, waf_rate_limit=500)


def listeners(plan):
    return {r["inputs"]["port"]: r for r in plan.of_type("aws:lb/listener:Listener")}


# -- HTTPS under the service's own name --------------------------------------------------------------


def test_a_domain_name_gets_a_dns_validated_certificate_in_its_zone(named):
    certificate = named.one("aws:acm/certificate:Certificate")
    assert (certificate["inputs"]["domainName"], certificate["inputs"]["validationMethod"]) == (DOMAIN, "DNS")
    option = certificate["outputs"]["domainValidationOptions"][0]
    record = named.named("web-certificate-validation", "aws:route53/record:Record")["inputs"]
    assert record["zoneId"] == ZONE
    assert (record["name"], record["type"], record["records"]) == (
        option["resourceRecordName"],
        option["resourceRecordType"],
        [option["resourceRecordValue"]],
    )
    validation = named.one("aws:acm/certificateValidation:CertificateValidation")
    assert validation["inputs"]["certificateArn"] == certificate["outputs"]["arn"]
    assert validation["inputs"]["validationRecordFqdns"] == [
        named.named("web-certificate-validation", "aws:route53/record:Record")["outputs"]["fqdn"]
    ]


def test_the_https_listener_waits_for_the_issued_certificate_and_http_redirects(named):
    found = listeners(named)
    assert set(found) == {80, 443}
    https = found[443]
    validation = named.one("aws:acm/certificateValidation:CertificateValidation")
    assert https["inputs"]["certificateArn"] == validation["outputs"]["certificateArn"]
    assert named.depends_on(https, validation)  # ELB refuses a certificate that is still pending validation
    assert https["inputs"]["sslPolicy"] == TLS_POLICY
    (redirect,) = found[80]["inputs"]["defaultActions"]
    assert redirect["redirect"] == {"protocol": "HTTPS", "port": "443", "statusCode": "HTTP_301"}


def test_the_name_points_at_the_load_balancer_and_is_the_url(named):
    balancer = named.one("aws:lb/loadBalancer:LoadBalancer")["outputs"]
    alias = named.named("web-alias", "aws:route53/record:Record")["inputs"]
    assert (alias["zoneId"], alias["name"], alias["type"]) == (ZONE, DOMAIN, "A")
    assert alias["aliases"] == [
        {"name": balancer["dnsName"], "zoneId": balancer["zoneId"], "evaluateTargetHealth": True}
    ]
    assert named.one("seaport:index:ScaledWebService")["outputs"]["url"] == f"https://{DOMAIN}/"


def test_without_a_name_or_certificate_the_url_is_plain_http_on_the_balancer(defaults):
    balancer = defaults.one("aws:lb/loadBalancer:LoadBalancer")["outputs"]
    assert defaults.one("seaport:index:ScaledWebService")["outputs"]["url"] == f"http://{balancer['dnsName']}/"
    assert set(listeners(defaults)) == {80}
    assert defaults.of_type("aws:acm/certificate:Certificate") == []


# -- access logs ---------------------------------------------------------------------------------------


def test_access_logs_go_to_a_private_encrypted_expiring_bucket_by_default(defaults):
    bucket = defaults.one("aws:s3/bucket:Bucket")
    balancer = defaults.one("aws:lb/loadBalancer:LoadBalancer")
    assert balancer["inputs"]["accessLogs"] == {"bucket": bucket["outputs"]["id"], "enabled": True}
    block = defaults.one("aws:s3/bucketPublicAccessBlock:BucketPublicAccessBlock")["inputs"]
    assert all(
        block[k] is True for k in ("blockPublicAcls", "blockPublicPolicy", "ignorePublicAcls", "restrictPublicBuckets")
    )
    ownership = defaults.one("aws:s3/bucketOwnershipControls:BucketOwnershipControls")["inputs"]
    assert ownership["rule"]["objectOwnership"] == "BucketOwnerEnforced"  # no ACLs at all
    (encryption,) = defaults.one(
        "aws:s3/bucketServerSideEncryptionConfiguration:BucketServerSideEncryptionConfiguration"
    )["inputs"]["rules"]
    # ALB log delivery supports SSE-S3 only; a KMS key would make every delivery fail
    assert encryption["applyServerSideEncryptionByDefault"]["sseAlgorithm"] == "AES256"
    (lifecycle,) = defaults.one("aws:s3/bucketLifecycleConfiguration:BucketLifecycleConfiguration")["inputs"]["rules"]
    assert lifecycle["status"] == "Enabled" and lifecycle["expiration"]["days"] == 90


def test_only_elb_may_write_logs_only_under_this_account_and_only_over_tls(defaults):
    bucket = defaults.one("aws:s3/bucket:Bucket")["outputs"]["arn"]
    policy = defaults.one("aws:s3/bucketPolicy:BucketPolicy")
    statements = {s["Sid"]: s for s in json.loads(policy["inputs"]["policy"])["Statement"]}
    account = SeaportMocks().account
    for sid in ("ElbAccountDelivers", "ElbServiceDelivers"):
        assert statements[sid]["Effect"] == "Allow" and statements[sid]["Action"] == "s3:PutObject"
        assert statements[sid]["Resource"] == f"{bucket}/AWSLogs/{account}/*"
    assert statements["ElbServiceDelivers"]["Principal"] == {"Service": ELB_LOG_DELIVERY}
    assert statements["ElbServiceDelivers"]["Condition"] == {"StringEquals": {"aws:SourceAccount": account}}
    assert statements["ElbAccountDelivers"]["Principal"]["AWS"].startswith("arn:aws:iam::")
    tls = statements["TlsOnly"]
    assert (tls["Effect"], tls["Condition"]) == ("Deny", {"Bool": {"aws:SecureTransport": "false"}})


def test_the_balancer_is_created_after_the_policy_that_lets_it_write_its_logs(defaults):
    # ELB tests write access at creation: without the policy first, the first `pulumi up` fails
    balancer = defaults.one("aws:lb/loadBalancer:LoadBalancer")
    assert defaults.depends_on(balancer, defaults.one("aws:s3/bucketPolicy:BucketPolicy"))


def test_access_logs_can_be_turned_off_and_kept_longer():
    assert web_plan(access_logs=False).of_type("aws:s3/bucket:Bucket") == []
    longer = web_plan(access_log_retention_days=400)
    (rule,) = longer.one("aws:s3/bucketLifecycleConfiguration:BucketLifecycleConfiguration")["inputs"]["rules"]
    assert rule["expiration"]["days"] == 400


# -- the WAF ---------------------------------------------------------------------------------------------


def test_the_waf_blocks_with_aws_managed_rules_and_a_rate_limit_per_address(named):
    acl = named.one("aws:wafv2/webAcl:WebAcl")["inputs"]
    assert acl["scope"] == "REGIONAL" and "allow" in acl["defaultAction"]
    rules = sorted(acl["rules"], key=lambda r: r["priority"])
    assert [r["priority"] for r in rules] == [1, 2, 3]
    managed = [r["statement"]["managedRuleGroupStatement"] for r in rules[:2]]
    assert [(m["vendorName"], m["name"]) for m in managed] == [("AWS", MANAGED_RULE_GROUP), ("AWS", KNOWN_BAD_INPUTS)]
    assert all(
        r["overrideAction"] == {"none": {}} and not m.get("ruleActionOverrides")
        for r, m in zip(rules[:2], managed, strict=True)
    )
    rate = rules[2]
    assert rate["statement"]["rateBasedStatement"] == {"limit": 500, "aggregateKeyType": "IP"}
    assert "block" in rate["action"]
    association = named.one("aws:wafv2/webAclAssociation:WebAclAssociation")["inputs"]
    assert association["resourceArn"] == named.one("aws:lb/loadBalancer:LoadBalancer")["outputs"]["arn"]
    assert association["webAclArn"] == named.one("aws:wafv2/webAcl:WebAcl")["outputs"]["arn"]


def test_the_waf_logs_its_decisions_without_credentials(named):
    logs = named.named("web-waf-logs", "aws:cloudwatch/logGroup:LogGroup")
    assert logs["outputs"]["name"].startswith("aws-waf-logs-")  # WAF refuses other log group names
    assert logs["inputs"]["retentionInDays"] == 30
    config = named.one("aws:wafv2/webAclLoggingConfiguration:WebAclLoggingConfiguration")["inputs"]
    assert config["resourceArn"] == named.one("aws:wafv2/webAcl:WebAcl")["outputs"]["arn"]
    assert config["logDestinationConfigs"] == [logs["outputs"]["arn"]]
    redacted = {f["singleHeader"]["name"] for f in config["redactedFields"]}
    assert redacted == {"authorization", "cookie"}


def test_no_waf_unless_asked(defaults):
    assert defaults.of_type("aws:wafv2/webAcl:WebAcl") == []


# -- rules -------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("options", "path", "message"),
    [
        ({"domain_name": "portal"}, "load_balancer.domain_name", "is not a DNS name"),
        ({"domain_name": DOMAIN}, "load_balancer.hosted_zone_id", "is required with domain_name"),
        ({"domain_name": DOMAIN, "hosted_zone_id": "zone"}, "load_balancer.hosted_zone_id", "not a Route 53"),
        (
            {
                "domain_name": DOMAIN,
                "hosted_zone_id": ZONE,
                "certificate_arn": CERT,
            },
            "load_balancer.certificate_arn",
            "and domain_name are two ways to the same thing",
        ),
        ({"access_log_retention_days": 0}, "load_balancer.access_log_retention_days", "must be between 1 and 3650"),
        ({"waf": True, "waf_rate_limit": 9}, "load_balancer.waf_rate_limit", "must be between 10 and"),
        ({"waf": True, "log_retention_days": 10}, "load_balancer.log_retention_days", "must be one of 1, 3, 5"),
    ],
)
def test_bad_edge_options_fail_before_anything_is_registered(options, path, message):
    with mock.patch.object(
        SeaportMocks, "new_resource", autospec=True, side_effect=SeaportMocks.new_resource
    ) as registered:
        error = run(
            lambda: ScaledWebService("web", {"cluster": CLUSTER, "container": CONTAINER, "load_balancer": options}),
            expect=InvalidArgument,
        )
    registered.assert_not_called()
    assert [str(p) for p in error.problems if p.path == path and message in str(p)], str(error)
