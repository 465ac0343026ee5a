"""Network stack: a private VPC with no internet path, reached only through VPC endpoints.

``mode="create"`` builds a VPC with one private isolated subnet per availability zone (no internet or
NAT gateway), interface endpoints for every AWS API the jobs and Studio call, and an S3 gateway
endpoint. ``mode="import"`` uses an existing VPC and subnets (ids from the settings) and adds the same
endpoints and security groups to it. Flow logs go to a KMS-encrypted log group with a retention.

Every endpoint has an endpoint policy (``stacks.data_perimeter``): the S3 gateway endpoint reaches only
the project's buckets and the AWS-owned bucket of ECR image layers; the interface endpoints serve only
principals of the project account acting on resources of the project account (all ten services accept
endpoint policies), and the ECR ones also serve pulls of AWS-owned images.

Security groups carry only the rules that are needed: jobs and Studio may open HTTPS (443) connections
(the route tables only know the VPC and the S3 gateway endpoint, so that reaches AWS endpoints only);
the endpoints accept 443 from those two groups; instances of one multi-instance job talk to each other;
Studio apps reach their EFS home (NFS 2049) and each other (8192-65535), as SageMaker documents.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import cast

import aws_cdk as cdk
from aws_cdk import aws_ec2 as ec2
from aws_cdk import aws_iam as iam
from aws_cdk import aws_kms as kms
from aws_cdk import aws_logs as logs
from constructs import Construct

from settings import NetworkSettings, ResourceNames
from stacks.data_perimeter import interface_endpoint_statements, s3_endpoint_statements
from stacks.nag import skip_checkov
from stacks.roles import LeastPrivilegeRole

INTERFACE_ENDPOINTS: dict[str, ec2.InterfaceVpcEndpointAwsService] = {
    "SageMakerApi": ec2.InterfaceVpcEndpointAwsService.SAGEMAKER_API,
    "SageMakerRuntime": ec2.InterfaceVpcEndpointAwsService.SAGEMAKER_RUNTIME,
    "SageMakerStudio": ec2.InterfaceVpcEndpointAwsService.SAGEMAKER_STUDIO,
    "Sts": ec2.InterfaceVpcEndpointAwsService.STS,
    "CloudWatchLogs": ec2.InterfaceVpcEndpointAwsService.CLOUDWATCH_LOGS,
    "CloudWatchMonitoring": ec2.InterfaceVpcEndpointAwsService.CLOUDWATCH_MONITORING,
    "EcrApi": ec2.InterfaceVpcEndpointAwsService.ECR,
    "EcrDocker": ec2.InterfaceVpcEndpointAwsService.ECR_DOCKER,
    "Kms": ec2.InterfaceVpcEndpointAwsService.KMS,
    "EventBridge": ec2.InterfaceVpcEndpointAwsService.EVENTBRIDGE,
}
ECR_ENDPOINTS = frozenset({"EcrApi", "EcrDocker"})
HTTPS = ec2.Port.tcp(443)


@dataclass(frozen=True)
class JobNetwork:
    """Where SageMaker jobs run: the subnets and the security group of their VpcConfig."""

    vpc: ec2.IVpc
    subnets: tuple[ec2.ISubnet, ...]
    security_group: ec2.ISecurityGroup

    @property
    def subnet_ids(self) -> list[str]:
        """The ids of the job subnets."""
        return [subnet.subnet_id for subnet in self.subnets]

    @property
    def security_group_ids(self) -> list[str]:
        """The id of the jobs' security group, as a one-item list."""
        return [self.security_group.security_group_id]


class NetworkStack(cdk.Stack):
    """VPC (``vpc``, ``subnets``), security groups and endpoints; ``job_network`` for SageMaker jobs."""

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        network: NetworkSettings,
        names: ResourceNames,
        key: kms.IKey,
        **kwargs,
    ) -> None:
        super().__init__(scope, construct_id, **kwargs)
        self.network = network
        self.names = names
        self.key = key

        self.vpc, self.subnets = self._create_vpc() if network.mode == "create" else self._import_vpc()
        self.flow_log_group = self._create_flow_logs()
        self.job_security_group = self._create_job_security_group()
        self.studio_security_group = self._create_studio_security_group()
        self.endpoint_security_group = self._create_endpoint_security_group()
        self.endpoints = self._create_interface_endpoints()
        self.s3_endpoint = self._create_s3_endpoint()
        self.job_network = JobNetwork(self.vpc, tuple(self.subnets), self.job_security_group)

    @property
    def availability_zones(self) -> list[str]:
        """Override the stack's zones so nothing (VPC, endpoints) needs an account lookup at synth."""
        return self._availability_zones()

    @property
    def subnet_selection(self) -> ec2.SubnetSelection:
        """The project's subnets, as a selection for constructs that place resources in them."""
        return ec2.SubnetSelection(subnets=list(self.subnets))

    def _availability_zones(self) -> list[str]:
        if self.network.mode == "import":
            return list(self.network.availability_zones)
        # Fn::Select over Fn::GetAZs: no account lookup at synth and no hard-coded zone names.
        return [cdk.Fn.select(index, cdk.Fn.get_azs()) for index in range(self.network.max_azs)]

    def _create_vpc(self) -> tuple[ec2.IVpc, list[ec2.ISubnet]]:
        vpc = ec2.Vpc(
            self,
            "Vpc",
            ip_addresses=ec2.IpAddresses.cidr(self.network.cidr),
            max_azs=self.network.max_azs,
            nat_gateways=0,
            subnet_configuration=[
                ec2.SubnetConfiguration(
                    name="Private", subnet_type=ec2.SubnetType.PRIVATE_ISOLATED, cidr_mask=20
                )
            ],
            restrict_default_security_group=True,
        )
        self._drop_redundant_depends_on()
        return vpc, list(vpc.isolated_subnets)

    def _drop_redundant_depends_on(self) -> None:
        """The default-SG custom resource's handler already references its role (cfn-lint W3005)."""
        provider = self.node.try_find_child("Custom::VpcRestrictDefaultSGCustomResourceProvider")
        if provider is not None:
            handler = cast(cdk.CfnResource, provider.node.find_child("Handler"))
            handler.remove_resource_dependency(cast(cdk.CfnResource, provider.node.find_child("Role")))
            reason = (
                "CDK-managed one-shot custom resource that revokes the default security group's rules at "
                "deploy time; it calls only the EC2 API and is not part of the data path."
            )
            for check_id in ("CKV_AWS_115", "CKV_AWS_116", "CKV_AWS_117"):
                skip_checkov(handler, check_id, reason)

    def _import_vpc(self) -> tuple[ec2.IVpc, list[ec2.ISubnet]]:
        assert self.network.vpc_id is not None  # the settings require it in mode "import"
        subnets = [
            ec2.Subnet.from_subnet_attributes(
                self, f"Subnet{index}", subnet_id=subnet_id, availability_zone=az
            )
            for index, (subnet_id, az) in enumerate(
                zip(self.network.subnet_ids, self.network.availability_zones, strict=True)
            )
        ]
        vpc = ec2.Vpc.from_vpc_attributes(
            self,
            "Vpc",
            vpc_id=self.network.vpc_id,
            availability_zones=list(self.network.availability_zones),
            isolated_subnet_ids=list(self.network.subnet_ids),
        )
        return vpc, subnets

    def _create_flow_logs(self) -> logs.LogGroup:
        log_group = logs.LogGroup(
            self,
            "FlowLogGroup",
            log_group_name=f"{self.names.log_group_prefix}vpc-flow-logs",
            encryption_key=self.key,
            removal_policy=cdk.RemovalPolicy.RETAIN,
        )
        # The settings allow only the retention periods CloudWatch Logs accepts, as a number of days.
        cfn_log_group = cast(logs.CfnLogGroup, log_group.node.default_child)
        cfn_log_group.retention_in_days = self.network.flow_log_retention_days
        role = LeastPrivilegeRole(
            self,
            "FlowLogRole",
            role_name=self.names.flow_logs_role,
            assumed_by=iam.ServicePrincipal(
                "vpc-flow-logs.amazonaws.com",
                conditions={"StringEquals": {"aws:SourceAccount": self.account}},
            ),
            description="VPC flow logs delivery to the project's flow-log group",
        )
        role.allow(
            "DeliverFlowLogs",
            ["logs:CreateLogStream", "logs:PutLogEvents", "logs:DescribeLogStreams"],
            [log_group.log_group_arn],
        )
        ec2.FlowLog(
            self,
            "FlowLog",
            resource_type=ec2.FlowLogResourceType.from_vpc(self.vpc),
            # An immutable reference: CDK would otherwise add an inline default policy to the role.
            destination=ec2.FlowLogDestination.to_cloud_watch_logs(
                log_group, iam.Role.from_role_arn(self, "FlowLogRoleRef", role.role_arn, mutable=False)
            ),
            traffic_type=ec2.FlowLogTrafficType.ALL,
        )
        return log_group

    def _security_group(self, construct_id: str, description: str) -> ec2.SecurityGroup:
        return ec2.SecurityGroup(
            self, construct_id, vpc=self.vpc, description=description, allow_all_outbound=False
        )

    def _create_job_security_group(self) -> ec2.SecurityGroup:
        group = self._security_group("JobSecurityGroup", "SageMaker processing and training jobs")
        # No internet route exists: 443 reaches only the interface endpoints and the S3 gateway endpoint.
        group.add_egress_rule(ec2.Peer.any_ipv4(), HTTPS, "HTTPS to VPC endpoints and S3 gateway endpoint")
        # Instances of one multi-instance job exchange data (distributed training, processing shards).
        group.add_ingress_rule(group, ec2.Port.all_tcp(), "Between instances of one job")
        group.add_egress_rule(group, ec2.Port.all_tcp(), "Between instances of one job")
        return group

    def _create_studio_security_group(self) -> ec2.SecurityGroup:
        group = self._security_group("StudioSecurityGroup", "SageMaker Studio apps (VpcOnly domain)")
        group.add_egress_rule(ec2.Peer.any_ipv4(), HTTPS, "HTTPS to VPC endpoints and S3 gateway endpoint")
        nfs = ec2.Port.tcp(2049)
        apps = ec2.Port.tcp_range(8192, 65535)
        group.add_ingress_rule(group, nfs, "NFS between Studio apps and the domain's EFS home volume")
        group.add_egress_rule(group, nfs, "NFS between Studio apps and the domain's EFS home volume")
        group.add_ingress_rule(group, apps, "Between Studio apps (JupyterServer and kernel gateways)")
        group.add_egress_rule(group, apps, "Between Studio apps (JupyterServer and kernel gateways)")
        return group

    def _create_endpoint_security_group(self) -> ec2.SecurityGroup:
        group = self._security_group(
            "EndpointSecurityGroup", "Interface VPC endpoints: HTTPS from jobs and Studio"
        )
        group.add_ingress_rule(self.job_security_group, HTTPS, "HTTPS from SageMaker jobs")
        group.add_ingress_rule(self.studio_security_group, HTTPS, "HTTPS from SageMaker Studio")
        return group

    @property
    def s3_endpoint_id(self) -> str | None:
        """Id of the S3 gateway endpoint this stack created (None when the imported VPC brings its own)."""
        if self.s3_endpoint is None:
            return None
        if isinstance(self.s3_endpoint, ec2.CfnVPCEndpoint):
            return self.s3_endpoint.ref
        return self.s3_endpoint.vpc_endpoint_id

    def _create_interface_endpoints(self) -> dict[str, ec2.InterfaceVpcEndpoint]:
        endpoints = {}
        for name, service in INTERFACE_ENDPOINTS.items():
            endpoint = ec2.InterfaceVpcEndpoint(
                self,
                f"{name}Endpoint",
                vpc=self.vpc,
                service=service,
                subnets=self.subnet_selection,
                security_groups=[self.endpoint_security_group],
                open=False,  # only the ingress rules above, not the whole VPC CIDR
                private_dns_enabled=True,
            )
            for statement in interface_endpoint_statements(self.account, ecr=name in ECR_ENDPOINTS):
                endpoint.add_to_policy(statement)
            endpoints[name] = endpoint
        return endpoints

    def _s3_endpoint_statements(self) -> list[iam.PolicyStatement]:
        buckets = [self.names.data_bucket, self.names.artifacts_bucket]
        return s3_endpoint_statements(buckets, self.partition, self.account, self.region)

    def _create_s3_endpoint(self) -> ec2.IVpcEndpoint | ec2.CfnVPCEndpoint | None:
        if self.network.mode == "create":
            endpoint = self.vpc.add_gateway_endpoint(
                "S3Endpoint", service=ec2.GatewayVpcEndpointAwsService.S3, subnets=[self.subnet_selection]
            )
            for statement in self._s3_endpoint_statements():
                endpoint.add_to_policy(statement)
            return endpoint
        if not self.network.route_table_ids:
            return None  # route tables unknown: the imported VPC must bring its own S3 gateway endpoint
        return ec2.CfnVPCEndpoint(
            self,
            "S3Endpoint",
            vpc_id=self.vpc.vpc_id,
            service_name=f"com.amazonaws.{self.region}.s3",
            vpc_endpoint_type="Gateway",
            route_table_ids=list(self.network.route_table_ids),
            policy_document=iam.PolicyDocument(statements=self._s3_endpoint_statements()),
        )
