"""Security promises of the network stack: private VPC, endpoints, tight security groups, flow logs."""

from __future__ import annotations

import json

import pytest
from aws_cdk.assertions import Match, Template
from cdk_helpers import IMPORTED_NETWORK, template_of

from settings import Settings
from stacks.network_stack import INTERFACE_ENDPOINTS

pytestmark = pytest.mark.slow

IMPORTED = json.dumps({"network": IMPORTED_NETWORK}, sort_keys=True)


@pytest.fixture(scope="module")
def template() -> Template:
    return template_of("Network")


@pytest.fixture(scope="module")
def imported() -> Template:
    return template_of("Network", IMPORTED)


def test_vpc_has_no_internet_or_nat_gateway(template: Template) -> None:
    template.resource_count_is("AWS::EC2::VPC", 1)
    for resource_type in (
        "AWS::EC2::InternetGateway",
        "AWS::EC2::NatGateway",
        "AWS::EC2::EgressOnlyInternetGateway",
    ):
        template.resource_count_is(resource_type, 0)
    routes = template.find_resources("AWS::EC2::Route")
    assert not routes, "isolated subnets have only the local route (and the S3 gateway endpoint)"


def test_private_isolated_subnets_in_two_zones(template: Template) -> None:
    subnets = template.find_resources("AWS::EC2::Subnet")
    assert len(subnets) == 2
    for subnet in subnets.values():
        assert subnet["Properties"]["MapPublicIpOnLaunch"] is False
    zones = [json.dumps(s["Properties"]["AvailabilityZone"]) for s in subnets.values()]
    assert len(set(zones)) == 2 and all("Fn::GetAZs" in zone for zone in zones)


def _service_names(template: Template, endpoint_type: str) -> list[str]:
    endpoints = template.find_resources(
        "AWS::EC2::VPCEndpoint", {"Properties": {"VpcEndpointType": endpoint_type}}
    )
    return [json.dumps(e["Properties"]["ServiceName"]) for e in endpoints.values()]


def test_interface_endpoints_for_every_service(template: Template) -> None:
    names = _service_names(template, "Interface")
    assert len(names) == len(INTERFACE_ENDPOINTS) == 10
    for suffix in (
        "sagemaker.api",
        "sagemaker.runtime",
        "studio",
        "sts",
        ".logs",
        "monitoring",
        "ecr.api",
        "ecr.dkr",
        ".kms",
        ".events",
    ):
        assert any(suffix in name for name in names), suffix


def test_s3_gateway_endpoint(template: Template) -> None:
    (name,) = _service_names(template, "Gateway")
    assert ".s3" in name


def _security_group_id(template: Template, description_start: str) -> str:
    groups = template.find_resources("AWS::EC2::SecurityGroup")
    (group_id,) = [
        k for k, g in groups.items() if g["Properties"]["GroupDescription"].startswith(description_start)
    ]
    return group_id


def test_endpoint_security_group_allows_only_https_from_jobs_and_studio(template: Template) -> None:
    endpoint_sg = _security_group_id(template, "Interface VPC endpoints")
    ingress = [
        rule["Properties"]
        for rule in template.find_resources("AWS::EC2::SecurityGroupIngress").values()
        if rule["Properties"]["GroupId"] == {"Fn::GetAtt": [endpoint_sg, "GroupId"]}
    ]
    sources = {rule["SourceSecurityGroupId"]["Fn::GetAtt"][0] for rule in ingress}
    assert sources == {
        _security_group_id(template, "SageMaker processing"),
        _security_group_id(template, "SageMaker Studio"),
    }
    assert all(
        (rule["FromPort"], rule["ToPort"], rule["IpProtocol"]) == (443, 443, "tcp") for rule in ingress
    )


def test_no_security_group_is_open_to_the_internet(template: Template) -> None:
    for group in template.find_resources("AWS::EC2::SecurityGroup").values():
        for rule in group["Properties"].get("SecurityGroupIngress", []):
            assert rule.get("CidrIp") != "0.0.0.0/0"
        for rule in group["Properties"].get("SecurityGroupEgress", []):
            # Egress to anywhere only on 443: the route tables have no internet route.
            if rule.get("CidrIp") == "0.0.0.0/0":
                assert (rule["FromPort"], rule["ToPort"]) == (443, 443)
    for rule in template.find_resources("AWS::EC2::SecurityGroupIngress").values():
        assert "CidrIp" not in rule["Properties"]


def test_studio_security_group_self_references_for_efs_and_apps(template: Template) -> None:
    studio = _security_group_id(template, "SageMaker Studio")
    ports = {
        (rule["Properties"]["FromPort"], rule["Properties"]["ToPort"])
        for rule in template.find_resources("AWS::EC2::SecurityGroupIngress").values()
        if rule["Properties"]["GroupId"] == {"Fn::GetAtt": [studio, "GroupId"]}
        and rule["Properties"]["SourceSecurityGroupId"] == {"Fn::GetAtt": [studio, "GroupId"]}
    }
    assert ports == {(2049, 2049), (8192, 65535)}


def test_default_security_group_is_restricted(template: Template) -> None:
    template.resource_count_is("Custom::VpcRestrictDefaultSG", 1)


def test_flow_logs_to_encrypted_log_group_with_retention(template: Template) -> None:
    template.has_resource_properties(
        "AWS::EC2::FlowLog",
        {"ResourceType": "VPC", "TrafficType": "ALL", "LogDestinationType": "cloud-watch-logs"},
    )
    template.has_resource_properties(
        "AWS::Logs::LogGroup",
        {
            "KmsKeyId": Match.any_value(),
            "RetentionInDays": Settings().network.flow_log_retention_days,
            "LogGroupName": f"{Settings().names.log_group_prefix}vpc-flow-logs",
        },
    )


def test_import_mode_synthesizes_into_the_given_vpc(imported: Template) -> None:
    imported.resource_count_is("AWS::EC2::VPC", 0)
    imported.resource_count_is("AWS::EC2::Subnet", 0)
    endpoints = imported.find_resources("AWS::EC2::VPCEndpoint")
    assert len(endpoints) == 11
    for endpoint in endpoints.values():
        assert endpoint["Properties"]["VpcId"] == "vpc-0123456789abcdef0"
    imported.has_resource_properties(
        "AWS::EC2::VPCEndpoint",
        {"VpcEndpointType": "Gateway", "RouteTableIds": ["rtb-0123456789abcdef0", "rtb-0123456789abcdef1"]},
    )
    imported.has_resource_properties("AWS::EC2::FlowLog", {"ResourceId": "vpc-0123456789abcdef0"})
