"""devtools.tfplan: seaport's offline plan as a Terraform plan document (what `make scan` gives checkov).

No checkov here: the conversion is checked against the providers' own name tables and the SDK's schema.
"""

import importlib
import inspect
import json

import pytest
import yaml

from devtools import scan, tfplan
from tests.unit.conftest import REPO

STACK = "urn:pulumi:prod::seaport::pulumi:pulumi:Stack::seaport-prod"


def document(plan):
    """resources.json as synth writes it (JSON round trip)."""
    return json.loads(json.dumps(plan.to_json()))


def resource(token, name, inputs, outputs=None, dependencies=(), custom=True, parent=STACK):
    return {
        "urn": f"urn:pulumi:prod::seaport::{token}::{name}",
        "type": token,
        "name": name,
        "parent": parent,
        "custom": custom,
        "inputs": inputs,
        "outputs": {**inputs, **(outputs or {})},
        "dependencies": list(dependencies),
    }


def convert(*resources):
    return tfplan.convert({"project": "seaport", "stack": "prod", "resources": list(resources), "outputs": {}})


def planned(converted, address):
    (found,) = [r for r in converted.document["planned_values"]["root_module"]["resources"] if r["address"] == address]
    return found


def configured(converted, address):
    (found,) = [r for r in converted.document["configuration"]["root_module"]["resources"] if r["address"] == address]
    return found


# --- types --------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def stack_documents(dev_plan, prod_plan, dev_amazonmq_plan):
    return {"dev": document(dev_plan), "prod": document(prod_plan), "dev-amazonmq": document(dev_amazonmq_plan)}


def test_every_type_the_stacks_create_has_its_terraform_type_in_the_providers_table(stack_documents):
    # The table is an excerpt of the providers' own bridge metadata (see "about"), not the converter's rule.
    for stack, doc in stack_documents.items():
        tokens = {r["type"] for r in doc["resources"] if r["custom"] and r["type"].split(":")[0] in tfplan.PROVIDERS}
        assert tokens, stack
        missing = sorted(t for t in tokens if tfplan.terraform_type(t) is None)
        assert not missing, f"{stack}: add these to devtools/tfplan_reference.json from the provider's table"


def test_the_stacks_convert_with_every_name_verified(stack_documents):
    for stack, doc in stack_documents.items():
        converted = tfplan.convert(doc)
        assert converted.unverified == {}, stack
        types = {r["type"] for r in converted.document["planned_values"]["root_module"]["resources"]}
        reference = set(tfplan.REFERENCE["resources"].values())
        assert types <= reference, stack


def test_the_reference_names_are_terraform_names_of_the_right_provider():
    table = tfplan.REFERENCE["resources"]
    assert set(tfplan.REFERENCE["providers"]) == set(tfplan.PROVIDERS)
    for token, tf_type in table.items():
        package, _, _ = tfplan.parse_token(token)
        assert tf_type.startswith(f"{package}_"), token
        assert not tf_type.endswith("_legacy"), token  # gone in pulumi-aws 7
    assert tfplan.REFERENCE["providers"] == tfplan.PROVIDERS


def test_the_v7_renames_are_the_aliases_the_installed_sdk_declares():
    # pulumi-aws 7 turned BucketV2 into Bucket (and so on); its SDK keeps the old token as an alias.
    for current, previous in tfplan.REFERENCE["renamed_in_v7"].items():
        cls = tfplan.resource_class(current)
        assert cls is not None, current
        assert f'Alias(type_="{previous}")' in inspect.getsource(cls), current
        assert previous in tfplan.REFERENCE["resources"], previous
    assert tfplan.terraform_type("aws:s3/bucket:Bucket") == "aws_s3_bucket"


def test_the_naming_convention_is_only_a_fallback():
    # Where the convention and the provider's table disagree; the table wins (converted types come from it).
    disagree = {
        token
        for token, tf_type in tfplan.REFERENCE["resources"].items()
        if token not in tfplan.REFERENCE["renamed_in_v7"].values() and tfplan.mechanical_type(token) != tf_type
    }
    assert disagree == {
        "aws:lb/loadBalancer:LoadBalancer",
        "aws:ec2/dedicatedHost:DedicatedHost",
        "aws:ec2/securityGroupAssociation:SecurityGroupAssociation",
        "aws:cloudtrail/trail:Trail",
        "aws:sns/dataProtectionPolicy:DataProtectionPolicy",
    }


def test_a_token_outside_the_table_is_converted_by_convention_and_reported():
    converted = convert(resource("aws:sqs/queue:Queue", "jobs", {"name": "jobs"}))
    assert planned(converted, "aws_sqs_queue.jobs")["type"] == "aws_sqs_queue"
    assert "aws_sqs_queue.*" in converted.unverified


# --- attributes -----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("pulumi", "terraform"),
    [
        ("enableHttp2", "enable_http2"),
        ("s3BucketName", "s3_bucket_name"),
        ("ipv6CidrBlock", "ipv6_cidr_block"),
        ("tagsAll", "tags_all"),
        ("name", "name"),
        ("httpPutResponseHopLimit", "http_put_response_hop_limit"),
    ],
)
def test_camel_case_keys_become_snake_case(pulumi, terraform):
    assert tfplan.snake(pulumi) == terraform


def test_objects_become_one_element_block_lists_and_maps_keep_their_keys():
    converted = convert(
        resource(
            "aws:lb/loadBalancer:LoadBalancer",
            "alb",
            {
                "accessLogs": {"bucket": "logs", "enabled": True, "prefix": "alb"},
                "dropInvalidHeaderFields": True,
                "tags": {"Name": "alb", "seaport:discovers": "stocks weather"},
            },
        )
    )
    values = planned(converted, "aws_lb.alb")["values"]
    assert values["access_logs"] == [{"bucket": "logs", "enabled": True, "prefix": "alb"}]
    assert values["drop_invalid_header_fields"] is True
    assert values["tags"] == {"Name": "alb", "seaport:discovers": "stocks weather"}


def test_pluralised_lists_take_their_terraform_names():
    converted = convert(
        resource(
            "aws:autoscaling/group:Group",
            "instances",
            {
                "maxSize": 3,
                "minSize": 1,
                "vpcZoneIdentifiers": ["subnet-1", "subnet-2"],
                "tags": [{"key": "Name", "value": "x", "propagateAtLaunch": True}],
                "launchTemplate": {"id": "lt-1", "version": "$Latest"},
                "enabledMetrics": ["GroupInServiceInstances"],
            },
        ),
        resource(
            "aws:ec2/routeTable:RouteTable",
            "private",
            {"vpcId": "vpc-1", "routes": [{"cidrBlock": "0.0.0.0/0", "natGatewayId": "nat-1"}]},
        ),
        resource(
            "aws:ec2/launchTemplate:LaunchTemplate",
            "lt",
            {
                "blockDeviceMappings": [{"deviceName": "/dev/xvda", "ebs": {"encrypted": "true", "volumeSize": 30}}],
                "metadataOptions": {"httpTokens": "required", "httpPutResponseHopLimit": 1},
            },
        ),
    )
    group = planned(converted, "aws_autoscaling_group.instances")["values"]
    assert group["vpc_zone_identifier"] == ["subnet-1", "subnet-2"]
    assert group["tag"] == [{"key": "Name", "value": "x", "propagate_at_launch": True}]
    assert group["launch_template"] == [{"id": "lt-1", "version": "$Latest"}]
    assert group["enabled_metrics"] == ["GroupInServiceInstances"]
    assert "tags" not in group
    routes = planned(converted, "aws_route_table.private")["values"]["route"]
    assert routes == [{"cidr_block": "0.0.0.0/0", "nat_gateway_id": "nat-1"}]
    template = planned(converted, "aws_launch_template.lt")["values"]
    # Plural in Terraform too; a block inside a repeated block is a list of one as well.
    assert template["block_device_mappings"] == [
        {"device_name": "/dev/xvda", "ebs": [{"encrypted": "true", "volume_size": 30}]}
    ]
    assert template["metadata_options"] == [{"http_tokens": "required", "http_put_response_hop_limit": 1}]
    assert converted.unverified == {}


def test_a_list_whose_terraform_name_nobody_checked_is_reported():
    converted = convert(
        resource("aws:lb/targetGroup:TargetGroup", "tg", {"port": 80, "targetFailovers": [{"onDeregistration": "x"}]})
    )
    assert converted.unverified == {"aws_lb_target_group.tg": ["targetFailovers"]}


def test_secret_values_stay_secret_and_are_marked_sensitive():
    converted = convert(
        resource("aws:secretsmanager/secretVersion:SecretVersion", "token", {"secretString": "[secret]"}),
        resource(
            "tls:index/selfSignedCert:SelfSignedCert", "ca", {"privateKeyPem": "[secret]", "isCaCertificate": True}
        ),
    )
    version = planned(converted, "aws_secretsmanager_secret_version.token")
    assert version["values"]["secret_string"] == "[secret]"
    assert version["sensitive_values"] == {"secret_string": True}
    cert = planned(converted, "tls_self_signed_cert.ca")
    assert cert["provider_name"] == "hashicorp/tls"
    assert cert["sensitive_values"] == {"private_key_pem": True}
    assert cert["values"]["is_ca_certificate"] is True


def test_component_resources_and_resources_without_a_terraform_counterpart_are_left_out():
    component = resource("seaport:index:ContainerImage", "portal-image", {}, custom=False)
    converted = convert(
        component,
        resource("docker:index/image:Image", "portal-image", {"imageName": "x"}, parent=component["urn"]),
        resource("random:index/randomBytes:RandomBytes", "key", {"length": 32}, parent=component["urn"]),
    )
    resources = converted.document["planned_values"]["root_module"]["resources"]
    assert [r["address"] for r in resources] == ["random_bytes.key"]
    assert resources[0]["provider_name"] == "hashicorp/random"
    assert {(token, reason.split()[0]) for token, _, reason in converted.skipped} == {
        ("seaport:index:ContainerImage", "component"),
        ("docker:index/image:Image", "pulumi-docker's"),
    }


# --- references -----------------------------------------------------------------------------------------


def test_a_value_another_resource_returned_becomes_a_reference_as_in_a_first_deploy():
    bucket = resource(
        "aws:s3/bucket:Bucket", "logs", {"bucketPrefix": "logs-"}, {"id": "logs-123", "bucket": "logs-123"}
    )
    policy = resource(
        "aws:s3/bucketPolicy:BucketPolicy",
        "logs",
        {"bucket": "logs-123", "policy": "{}"},
        {"id": "logs-123"},
        [bucket["urn"]],
    )
    block = resource(
        "aws:s3/bucketPublicAccessBlock:BucketPublicAccessBlock",
        "logs",
        {"bucket": "logs-123", "blockPublicAcls": True},
        dependencies=[bucket["urn"], policy["urn"]],
    )
    alb = resource(
        "aws:lb/loadBalancer:LoadBalancer",
        "alb",
        {"accessLogs": {"bucket": "logs-123", "enabled": True}, "name": "logs-123-not-a-dependency"},
        dependencies=[policy["urn"], bucket["urn"]],
    )
    converted = convert(bucket, policy, block, alb)

    pab = planned(converted, "aws_s3_bucket_public_access_block.logs")["values"]
    assert "bucket" not in pab and pab["block_public_acls"] is True
    change = next(
        c for c in converted.document["resource_changes"] if c["address"] == "aws_s3_bucket_public_access_block.logs"
    )
    assert change["change"]["actions"] == ["create"]
    assert change["change"]["after_unknown"] == {"bucket": True}
    expressions = configured(converted, "aws_s3_bucket_public_access_block.logs")["expressions"]
    # The bucket, not the policy that merely quotes the bucket's name as its own id.
    assert expressions == {"bucket": {"references": ["aws_s3_bucket.logs.id", "aws_s3_bucket.logs"]}}
    # References inside blocks are nested the way Terraform writes block expressions.
    assert configured(converted, "aws_lb.alb")["expressions"] == {
        "access_logs": [{"bucket": {"references": ["aws_s3_bucket.logs.id", "aws_s3_bucket.logs"]}}]
    }
    assert planned(converted, "aws_lb.alb")["values"]["access_logs"] == [{"enabled": True}]
    # A value equal to nothing a dependency returned stays a value.
    assert planned(converted, "aws_lb.alb")["values"]["name"] == "logs-123-not-a-dependency"


def test_a_value_from_a_resource_it_does_not_depend_on_stays_a_value():
    vpc = resource("aws:ec2/vpc:Vpc", "vpc", {"cidrBlock": "10.0.0.0/16"}, {"id": "vpc-1"})
    subnet = resource("aws:ec2/subnet:Subnet", "a", {"vpcId": "vpc-1", "cidrBlock": "10.0.0.0/24"})
    converted = convert(vpc, subnet)
    assert planned(converted, "aws_subnet.a")["values"]["vpc_id"] == "vpc-1"
    assert configured(converted, "aws_subnet.a")["expressions"] == {}


# --- the document -----------------------------------------------------------------------------------------


def test_the_document_has_the_terraform_show_json_shape(prod_plan):
    converted = tfplan.convert(document(prod_plan))
    doc = converted.document
    assert {"format_version", "terraform_version", "planned_values", "resource_changes", "configuration"} <= set(doc)
    resources = doc["planned_values"]["root_module"]["resources"]
    addresses = [r["address"] for r in resources]
    assert len(addresses) == len(set(addresses))
    for r in resources:
        assert r["mode"] == "managed"
        assert r["address"] == f"{r['type']}.{r['name']}"
        assert r["provider_name"] == tfplan.PROVIDERS[r["type"].split("_")[0]]
        assert isinstance(r["values"], dict)
    assert [c["address"] for c in doc["resource_changes"]] == addresses
    assert [c["address"] for c in doc["configuration"]["root_module"]["resources"]] == addresses
    by_address = {r["address"]: r for r in resources}
    assert (
        by_address["aws_lb_listener.portal-http"]["values"]["default_action"][0]["redirect"][0]["protocol"] == "HTTPS"
    )
    assert by_address["aws_lb.portal-alb"]["values"]["internal"] is False
    json.dumps(doc)  # serialisable as it is


def test_names_are_terraform_identifiers_and_addresses_unique():
    converted = convert(
        resource("aws:iam/role:Role", "portal.task", {"assumeRolePolicy": "{}"}),
        resource("aws:iam/role:Role", "portal_task", {"assumeRolePolicy": "{}"}),
        resource("aws:iam/role:Role", "9lives", {"assumeRolePolicy": "{}"}),
    )
    addresses = [r["address"] for r in converted.document["planned_values"]["root_module"]["resources"]]
    assert addresses == ["aws_iam_role.portal_task", "aws_iam_role.portal_task_2", "aws_iam_role._9lives"]


def test_the_command_writes_the_document(tmp_path, dev_plan, capsys):
    source = tmp_path / "resources.json"
    source.write_text(json.dumps(document(dev_plan)))
    assert tfplan.main([str(source), "-o", str(tmp_path / "out" / "tfplan.json")]) == 0
    written = json.loads((tmp_path / "out" / "tfplan.json").read_text())
    assert written["planned_values"]["root_module"]["resources"]
    assert "Terraform resources" in capsys.readouterr().out


# --- the scan's accepted findings ----------------------------------------------------------------------------


def test_the_accepted_findings_file_is_well_formed():
    accepted = scan.load_accepted(REPO / "policy" / "accepted_findings.yaml")
    assert accepted
    for entry in accepted:
        assert entry.check.startswith(("CKV_AWS_", "CKV2_AWS_")), entry
        assert entry.resources and all("." in p for p in entry.resources), entry
        assert len(entry.reason) > 40, entry
    raw = yaml.safe_load((REPO / "policy" / "accepted_findings.yaml").read_text())
    assert set(raw) == {"accepted"}


def test_the_scan_fails_on_findings_not_accepted_and_on_stale_acceptances():
    accepted = [
        scan.Acceptance("CKV_AWS_158", ["aws_cloudwatch_log_group.*"], "service-managed key", "KMS"),
        scan.Acceptance("CKV_AWS_260", ["aws_vpc_security_group_ingress_rule.alb-80"], "redirect only"),
    ]
    failed = [
        scan.Finding("CKV_AWS_158", "KMS", "aws_cloudwatch_log_group.a", None),
        scan.Finding("CKV_AWS_158", "KMS", "aws_cloudwatch_log_group.b", None),
        scan.Finding("CKV2_AWS_31", "WAF logging", "aws_wafv2_web_acl.waf", None),
    ]
    ok, bad, stale = scan.compare(failed, accepted)
    assert [f.resource for f in ok] == ["aws_cloudwatch_log_group.a", "aws_cloudwatch_log_group.b"]
    assert [f.check for f in bad] == ["CKV2_AWS_31"]
    assert stale == ["CKV_AWS_260 aws_vpc_security_group_ingress_rule.alb-80"]


def test_the_sdk_modules_the_conversion_reads_are_installed():
    for package in tfplan.SDK_PACKAGES.values():
        importlib.import_module(package)
