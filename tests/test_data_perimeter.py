"""The data perimeter: a policy on every VPC endpoint, bucket policies that deny outside the endpoints.

CDK assertions on the Network and Storage templates (default, perimeter off, custom deploy principals,
imported VPC), plus the pure statement builders of ``stacks.data_perimeter``.
"""

from __future__ import annotations

import json

import pytest
from aws_cdk.assertions import Template
from cdk_helpers import as_list, template_of

from settings import Settings, SettingsError, load_settings
from stacks.data_perimeter import (
    DENY_OUTSIDE_PERIMETER_SID,
    ECR_PULL_ACTIONS,
    bootstrap_role_arns,
    key_admin_arns,
)
from stacks.network_stack import ECR_ENDPOINTS, INTERFACE_ENDPOINTS

pytestmark = pytest.mark.slow

NAMES = Settings().names
ACCOUNT = "111111111111"
DEPLOYERS = [
    f"arn:aws:iam::{ACCOUNT}:role/cdk-hnb659fds-{role}-role-{ACCOUNT}-eu-west-1"
    for role in ("cfn-exec", "deploy", "file-publishing")
]
SERVICE_SIDE = [
    f"arn:aws:iam::{ACCOUNT}:role/{name}"
    for name in (NAMES.pipeline_role, NAMES.code_deployment_role, NAMES.mlflow_role, NAMES.mirror_role)
]
IMPORTED_VPC = {
    "mode": "import",
    "vpc_id": "vpc-0123456789abcdef0",
    "subnet_ids": ["subnet-0123456789abcdef0", "subnet-0123456789abcdef1"],
    "availability_zones": ["eu-west-1a", "eu-west-1b"],
}


def _perimeter(template: Template, bucket_name: str) -> dict | None:
    buckets = template.find_resources("AWS::S3::Bucket")
    (bucket_id,) = [k for k, b in buckets.items() if b["Properties"]["BucketName"] == bucket_name]
    for policy in template.find_resources("AWS::S3::BucketPolicy").values():
        if policy["Properties"]["Bucket"] == {"Ref": bucket_id}:
            for statement in policy["Properties"]["PolicyDocument"]["Statement"]:
                if statement.get("Sid") == DENY_OUTSIDE_PERIMETER_SID:
                    return statement
    return None


def _endpoints(template: Template) -> dict[str, dict]:
    return template.find_resources("AWS::EC2::VPCEndpoint")


@pytest.mark.parametrize("bucket", [NAMES.data_bucket, NAMES.artifacts_bucket])
def test_buckets_deny_requests_from_outside_the_s3_endpoint(bucket: str) -> None:
    statement = _perimeter(template_of("Storage"), bucket)
    assert statement is not None
    assert statement["Effect"] == "Deny" and statement["Principal"] == {"AWS": "*"}
    assert statement["Action"] == "s3:*"
    conditions = statement["Condition"]
    (vpce,) = conditions["StringNotEqualsIfExists"]["aws:SourceVpce"]
    (s3_endpoint_id,) = [
        k
        for k, e in _endpoints(template_of("Network")).items()
        if e["Properties"]["VpcEndpointType"] == "Gateway"
    ]
    assert s3_endpoint_id in vpce["Fn::ImportValue"], "the Network stack's S3 gateway endpoint"
    # Each exception, and nothing else: deployers, service-side roles, AWS services.
    assert conditions["ArnNotEquals"]["aws:PrincipalArn"] == DEPLOYERS + SERVICE_SIDE
    assert conditions["BoolIfExists"] == {"aws:ViaAWSService": "false", "aws:PrincipalIsAWSService": "false"}
    assert set(conditions) == {"StringNotEqualsIfExists", "ArnNotEquals", "BoolIfExists"}


def test_access_log_bucket_is_outside_the_perimeter() -> None:
    # S3 delivers server access logs as a service principal; nothing in the VPC reads them.
    assert _perimeter(template_of("Storage"), NAMES.access_logs_bucket) is None


def test_perimeter_can_be_switched_off() -> None:
    template = template_of("Storage", json.dumps({"security": {"data_perimeter": False}}))
    assert _perimeter(template, NAMES.data_bucket) is None
    assert _perimeter(template, NAMES.artifacts_bucket) is None


def test_named_deploy_principals_replace_the_bootstrap_roles() -> None:
    admin = f"arn:aws:iam::{ACCOUNT}:role/platform-admin"
    template = template_of("Storage", json.dumps({"security": {"deploy_principal_arns": [admin]}}))
    exempt = _perimeter(template, NAMES.data_bucket)["Condition"]["ArnNotEquals"]["aws:PrincipalArn"]
    assert exempt == [admin, *SERVICE_SIDE]


def test_imported_vpc_without_an_s3_endpoint_needs_one_named() -> None:
    with pytest.raises(SettingsError, match=r"security\.perimeter_vpc_endpoint_ids"):
        template_of("Storage", json.dumps({"network": IMPORTED_VPC}, sort_keys=True))
    settings = {
        "network": IMPORTED_VPC,
        "security": {"perimeter_vpc_endpoint_ids": ["vpce-0123456789abcdef0"]},
    }
    template = template_of("Storage", json.dumps(settings, sort_keys=True))
    vpces = _perimeter(template, NAMES.data_bucket)["Condition"]["StringNotEqualsIfExists"]["aws:SourceVpce"]
    assert vpces == ["vpce-0123456789abcdef0"]


def test_s3_gateway_endpoint_reaches_only_project_buckets_and_ecr_layers() -> None:
    (gateway,) = [
        e
        for e in _endpoints(template_of("Network")).values()
        if e["Properties"]["VpcEndpointType"] == "Gateway"
    ]
    statements = {s["Sid"]: s for s in gateway["Properties"]["PolicyDocument"]["Statement"]}
    assert set(statements) == {"ProjectPrincipalsToProjectBuckets", "EcrImageLayers"}
    project = statements["ProjectPrincipalsToProjectBuckets"]
    expected = {
        f"arn:aws:s3:::{b}{suffix}"
        for b in (NAMES.data_bucket, NAMES.artifacts_bucket)
        for suffix in ("", "/*")
    }
    assert set(project["Resource"]) == expected
    assert project["Condition"] == {"StringEquals": {"aws:PrincipalAccount": ACCOUNT}}
    layers = statements["EcrImageLayers"]
    assert layers["Action"] == "s3:GetObject"
    assert layers["Resource"] == "arn:aws:s3:::prod-eu-west-1-starport-layer-bucket/*"
    assert all(s["Effect"] == "Allow" for s in statements.values())


def test_every_interface_endpoint_serves_only_the_project_account() -> None:
    interfaces = {
        k: e
        for k, e in _endpoints(template_of("Network")).items()
        if e["Properties"]["VpcEndpointType"] == "Interface"
    }
    assert len(interfaces) == len(INTERFACE_ENDPOINTS)
    for logical_id, endpoint in interfaces.items():
        statements = {s["Sid"]: s for s in endpoint["Properties"]["PolicyDocument"]["Statement"]}
        main = statements["ProjectPrincipalsToProjectResources"]
        assert main["Condition"] == {
            "StringEquals": {"aws:PrincipalAccount": ACCOUNT, "aws:ResourceAccount": ACCOUNT}
        }
        is_ecr = any(logical_id.startswith(name) for name in ECR_ENDPOINTS)
        assert set(statements) == (
            {"ProjectPrincipalsToProjectResources", "ProjectPrincipalsPullAwsOwnedImages"}
            if is_ecr
            else {"ProjectPrincipalsToProjectResources"}
        ), logical_id
        if is_ecr:
            pull = statements["ProjectPrincipalsPullAwsOwnedImages"]
            assert sorted(as_list(pull["Action"])) == sorted(ECR_PULL_ACTIONS)
            assert pull["Condition"] == {"StringEquals": {"aws:PrincipalAccount": ACCOUNT}}


def test_imported_vpc_endpoints_carry_the_same_policies() -> None:
    network = {**IMPORTED_VPC, "route_table_ids": ["rtb-0123456789abcdef0"]}
    endpoints = _endpoints(template_of("Network", json.dumps({"network": network}, sort_keys=True)))
    assert len(endpoints) == len(INTERFACE_ENDPOINTS) + 1
    assert all(e["Properties"].get("PolicyDocument") for e in endpoints.values())


# Pure builders ----------------------------------------------------------------------------------------


def test_bootstrap_roles_follow_the_qualifier() -> None:
    security = load_settings({"security": {"cdk_bootstrap_qualifier": "abc123"}}).security
    arns = bootstrap_role_arns(security, "aws", ACCOUNT, "us-east-1")
    assert arns[0] == f"arn:aws:iam::{ACCOUNT}:role/cdk-abc123-cfn-exec-role-{ACCOUNT}-us-east-1"
    assert len(arns) == 3


def test_key_admins_always_include_the_deployer_once() -> None:
    deployer = DEPLOYERS[0]
    security = load_settings({"security": {"key_admin_arns": [deployer]}}).security
    assert key_admin_arns(security, "aws", ACCOUNT, "eu-west-1") == [deployer]


def test_perimeter_endpoint_ids_are_validated() -> None:
    with pytest.raises(SettingsError, match=r"perimeter_vpc_endpoint_ids"):
        load_settings({"security": {"perimeter_vpc_endpoint_ids": ["vpc-0123456789abcdef0"]}})
