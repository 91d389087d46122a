"""What stands in front of an internet-facing load balancer: its certificate and name, its access logs, a WAF."""

import json
from collections.abc import Callable
from typing import Any

import pulumi
import pulumi_aws as aws

from .tagging import name_tags

# AWS managed rules every internet-facing web service wants (OWASP-style common rules; request patterns known
# to be malicious, Log4j's included), and a per-address request ceiling.
MANAGED_RULE_GROUP = "AWSManagedRulesCommonRuleSet"
KNOWN_BAD_INPUTS_RULE_GROUP = "AWSManagedRulesKnownBadInputsRuleSet"
MANAGED_RULE_GROUPS = (MANAGED_RULE_GROUP, KNOWN_BAD_INPUTS_RULE_GROUP)
# WAF logs only to log groups with this prefix. Credentials in requests are redacted from them.
WAF_LOG_PREFIX = "aws-waf-logs-"
REDACTED_HEADERS = ("authorization", "cookie")
ELB_LOG_DELIVERY = "logdelivery.elasticloadbalancing.amazonaws.com"


def certificate_for(
    name: str, domain_name: str, hosted_zone_id: pulumi.Input[str], tags: dict[str, str], parent: pulumi.Resource
) -> pulumi.Output[str]:
    """A DNS-validated ACM certificate for ``domain_name``; returns its ARN once it is issued (validated)."""
    child = pulumi.ResourceOptions(parent=parent)
    certificate = aws.acm.Certificate(
        f"{name}-certificate",
        domain_name=domain_name,
        validation_method="DNS",
        tags=name_tags(tags, f"{name}-certificate"),
        opts=pulumi.ResourceOptions(parent=parent, delete_before_replace=False),
    )
    option = certificate.domain_validation_options[0]
    record = aws.route53.Record(
        f"{name}-certificate-validation",
        zone_id=hosted_zone_id,
        name=option.resource_record_name,
        type=option.resource_record_type,
        records=[option.resource_record_value],
        ttl=300,
        allow_overwrite=True,
        opts=child,
    )
    validation = aws.acm.CertificateValidation(
        f"{name}-certificate",
        certificate_arn=certificate.arn,
        validation_record_fqdns=[record.fqdn],
        opts=child,
    )
    return validation.certificate_arn


def alias_record(
    name: str,
    domain_name: str,
    hosted_zone_id: pulumi.Input[str],
    balancer: aws.lb.LoadBalancer,
    parent: pulumi.Resource,
) -> aws.route53.Record:
    """``domain_name`` -> the load balancer (an alias A record, checked by Route 53's target health)."""
    return aws.route53.Record(
        f"{name}-alias",
        zone_id=hosted_zone_id,
        name=domain_name,
        type="A",
        aliases=[
            aws.route53.RecordAliasArgs(name=balancer.dns_name, zone_id=balancer.zone_id, evaluate_target_health=True)
        ],
        opts=pulumi.ResourceOptions(parent=parent),
    )


def access_log_bucket(
    name: str, retention_days: int, tags: dict[str, str], parent: pulumi.Resource
) -> tuple[aws.s3.Bucket, aws.s3.BucketPolicy]:
    """A private, encrypted bucket the load balancer writes its access logs to; logs expire after
    ``retention_days``. (ALB access logs support SSE-S3 only, not KMS keys.)"""
    child = pulumi.ResourceOptions(parent=parent)
    bucket = aws.s3.Bucket(
        f"{name}-access-logs", force_destroy=True, tags=name_tags(tags, f"{name}-access-logs"), opts=child
    )

    def setting(resource: Callable[..., pulumi.CustomResource], **inputs: Any) -> None:
        """One setting of the bucket: a resource of its own, named after the bucket."""
        resource(f"{name}-access-logs", bucket=bucket.id, opts=child, **inputs)

    setting(
        aws.s3.BucketPublicAccessBlock,
        block_public_acls=True,
        block_public_policy=True,
        ignore_public_acls=True,
        restrict_public_buckets=True,
    )
    setting(
        aws.s3.BucketOwnershipControls,
        rule=aws.s3.BucketOwnershipControlsRuleArgs(object_ownership="BucketOwnerEnforced"),
    )
    setting(
        aws.s3.BucketServerSideEncryptionConfiguration,
        rules=[
            aws.s3.BucketServerSideEncryptionConfigurationRuleArgs(
                apply_server_side_encryption_by_default=aws.s3.BucketServerSideEncryptionConfigurationRuleApplyServerSideEncryptionByDefaultArgs(
                    sse_algorithm="AES256"
                )
            )
        ],
    )
    setting(
        aws.s3.BucketVersioning,
        versioning_configuration=aws.s3.BucketVersioningVersioningConfigurationArgs(status="Enabled"),
    )
    setting(
        aws.s3.BucketLifecycleConfiguration,
        rules=[
            aws.s3.BucketLifecycleConfigurationRuleArgs(
                id="expire-access-logs",
                status="Enabled",
                filter=aws.s3.BucketLifecycleConfigurationRuleFilterArgs(prefix=""),
                expiration=aws.s3.BucketLifecycleConfigurationRuleExpirationArgs(days=retention_days),
                noncurrent_version_expiration=aws.s3.BucketLifecycleConfigurationRuleNoncurrentVersionExpirationArgs(
                    noncurrent_days=1
                ),
                abort_incomplete_multipart_upload=aws.s3.BucketLifecycleConfigurationRuleAbortIncompleteMultipartUploadArgs(
                    days_after_initiation=1
                ),
            )
        ],
    )
    account = aws.get_caller_identity_output(opts=pulumi.InvokeOutputOptions(parent=parent)).account_id
    elb_account = aws.elb.get_service_account_output(opts=pulumi.InvokeOutputOptions(parent=parent)).arn
    policy = aws.s3.BucketPolicy(
        f"{name}-access-logs",
        bucket=bucket.id,
        policy=pulumi.Output.all(bucket.arn, account, elb_account).apply(lambda v: access_log_policy(*v)),
        opts=child,
    )
    return bucket, policy


def access_log_policy(bucket_arn: str, account: str, elb_account_arn: str) -> str:
    """The load balancer log-delivery policy: the region's ELB account (regions before August 2022) and the
    log-delivery service (newer regions) may put objects under this account's prefix; nothing over plain HTTP."""
    logs = f"{bucket_arn}/AWSLogs/{account}/*"
    return json.dumps(
        {
            "Version": "2012-10-17",
            "Statement": [
                {
                    "Sid": "ElbAccountDelivers",
                    "Effect": "Allow",
                    "Principal": {"AWS": elb_account_arn},
                    "Action": "s3:PutObject",
                    "Resource": logs,
                },
                {
                    "Sid": "ElbServiceDelivers",
                    "Effect": "Allow",
                    "Principal": {"Service": ELB_LOG_DELIVERY},
                    "Action": "s3:PutObject",
                    "Resource": logs,
                    "Condition": {"StringEquals": {"aws:SourceAccount": account}},
                },
                {
                    "Sid": "TlsOnly",
                    "Effect": "Deny",
                    "Principal": "*",
                    "Action": "s3:*",
                    "Resource": [bucket_arn, f"{bucket_arn}/*"],
                    "Condition": {"Bool": {"aws:SecureTransport": "false"}},
                },
            ],
        },
        sort_keys=True,
    )


def web_acl(
    name: str,
    balancer_arn: pulumi.Input[str],
    rate_limit: int,
    log_retention_days: int,
    tags: dict[str, str],
    parent: pulumi.Resource,
) -> aws.wafv2.WebAcl:
    """A regional WAF in front of the load balancer: AWS's common and known-bad-inputs rule sets, at most
    ``rate_limit`` requests per 5 minutes from one address, and a log of what it decided (credentials
    redacted) kept ``log_retention_days``."""
    child = pulumi.ResourceOptions(parent=parent)

    def visibility(metric: str) -> Any:
        return aws.wafv2.WebAclVisibilityConfigArgs(
            cloudwatch_metrics_enabled=True, metric_name=metric, sampled_requests_enabled=True
        )

    managed = [
        aws.wafv2.WebAclRuleArgs(
            name=f"aws-{group.removeprefix('AWSManagedRules').removesuffix('RuleSet').lower()}",
            priority=priority,
            override_action=aws.wafv2.WebAclRuleOverrideActionArgs(none=aws.wafv2.WebAclRuleOverrideActionNoneArgs()),
            statement=aws.wafv2.WebAclRuleStatementArgs(
                managed_rule_group_statement=aws.wafv2.WebAclRuleStatementManagedRuleGroupStatementArgs(
                    vendor_name="AWS", name=group
                )
            ),
            visibility_config=visibility(f"{name}-{group}"),
        )
        for priority, group in enumerate(MANAGED_RULE_GROUPS, start=1)
    ]
    rate = aws.wafv2.WebAclRuleArgs(
        name="rate-limit-per-address",
        priority=len(managed) + 1,
        action=aws.wafv2.WebAclRuleActionArgs(block=aws.wafv2.WebAclRuleActionBlockArgs()),
        statement=aws.wafv2.WebAclRuleStatementArgs(
            rate_based_statement=aws.wafv2.WebAclRuleStatementRateBasedStatementArgs(
                limit=rate_limit, aggregate_key_type="IP"
            )
        ),
        visibility_config=visibility(f"{name}-rate"),
    )
    acl = aws.wafv2.WebAcl(
        f"{name}-waf",
        scope="REGIONAL",
        default_action=aws.wafv2.WebAclDefaultActionArgs(allow=aws.wafv2.WebAclDefaultActionAllowArgs()),
        rules=[*managed, rate],
        visibility_config=visibility(f"{name}-waf"),
        tags=name_tags(tags, f"{name}-waf"),
        opts=child,
    )
    aws.wafv2.WebAclAssociation(f"{name}-waf", resource_arn=balancer_arn, web_acl_arn=acl.arn, opts=child)
    logs = aws.cloudwatch.LogGroup(
        f"{name}-waf-logs",
        name_prefix=f"{WAF_LOG_PREFIX}{name}-",
        retention_in_days=log_retention_days,
        tags=name_tags(tags, f"{name}-waf-logs"),
        opts=child,
    )
    aws.wafv2.WebAclLoggingConfiguration(
        f"{name}-waf",
        resource_arn=acl.arn,
        log_destination_configs=[logs.arn],
        redacted_fields=[
            aws.wafv2.WebAclLoggingConfigurationRedactedFieldArgs(
                single_header=aws.wafv2.WebAclLoggingConfigurationRedactedFieldSingleHeaderArgs(name=header)
            )
            for header in REDACTED_HEADERS
        ],
        opts=child,
    )
    return acl
