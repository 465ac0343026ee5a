"""IAM stack: separate least-privilege roles for the pipeline, its jobs, Studio users and the trigger.

* ``pipeline_role`` — assumed by SageMaker Pipelines: starts processing, training and tuning jobs (only
  on the instance types from the settings, only in the project's subnets and security group), passes
  the job role, registers models in the project's model package group, reads the evaluation report.
* ``job_role`` — assumed by the jobs themselves (and, as model and monitoring role, by the endpoint and
  its data-quality monitor): reads raw data, reads and writes the pipeline's artifact, data-capture and
  monitoring prefixes, uses the key, writes ``/aws/sagemaker/*`` logs, pulls the named ECR repositories
  and manages the network interfaces a VPC job needs.
* ``studio_role`` — execution role of Studio users: their own apps and spaces, the project pipeline
  and model registry, read access to the data, a scratch prefix, and jobs with the same guardrails.
* ``trigger_role`` — assumed by EventBridge: starts the project pipeline, nothing else.

Bucket ARNs are written from the deterministic bucket names in :class:`settings.ResourceNames`, not
from cross-stack tokens, so that each wildcard (``bucket/prefix/*``) is a literal string that its
cdk-nag acknowledgement can name exactly. The key and subnets are the typed objects of their stacks.
"""

from __future__ import annotations

from collections.abc import Sequence

import aws_cdk as cdk
from aws_cdk import aws_iam as iam
from aws_cdk import aws_kms as kms
from constructs import Construct

from settings import PipelineSettings, ResourceNames
from stacks.network_stack import JobNetwork
from stacks.roles import LeastPrivilegeRole
from stacks.storage_stack import KEY_GRANT_ACTIONS, KEY_USE_ACTIONS

SAGEMAKER = iam.ServicePrincipal("sagemaker.amazonaws.com")
JOB_KINDS = ("processing-job", "training-job", "hyper-parameter-tuning-job")
CREATE_JOB_ACTIONS = [
    "sagemaker:CreateProcessingJob",
    "sagemaker:CreateTrainingJob",
    "sagemaker:CreateHyperParameterTuningJob",
]
MANAGE_JOB_ACTIONS = [
    "sagemaker:DescribeProcessingJob",
    "sagemaker:DescribeTrainingJob",
    "sagemaker:DescribeHyperParameterTuningJob",
    "sagemaker:StopProcessingJob",
    "sagemaker:StopTrainingJob",
    "sagemaker:StopHyperParameterTuningJob",
    "sagemaker:ListTrainingJobsForHyperParameterTuningJob",
    "sagemaker:AddTags",
]
# Actions that have no resource-level permissions in IAM, so "*" is the only possible resource.
ECR_TOKEN_ACTIONS = ["ecr:GetAuthorizationToken"]
EC2_DESCRIBE_ACTIONS = [
    "ec2:DescribeNetworkInterfaces",
    "ec2:DescribeVpcs",
    "ec2:DescribeDhcpOptions",
    "ec2:DescribeSubnets",
    "ec2:DescribeSecurityGroups",
]
S3_READ = ["s3:GetObject", "s3:GetObjectVersion"]
S3_WRITE = ["s3:PutObject", "s3:AbortMultipartUpload"]


def instance_type_guardrail(instance_types: Sequence[str]) -> dict[str, dict[str, object]]:
    """IAM condition: every instance type in the request is an allowed one, and the request names one.

    ``ForAllValues`` alone is true when the key is absent, so ``Null: false`` makes the key mandatory.
    """
    return {
        "ForAllValues:StringEquals": {"sagemaker:InstanceTypes": list(instance_types)},
        "Null": {"sagemaker:InstanceTypes": "false"},
    }


class IamStack(cdk.Stack):
    """The four project roles: ``pipeline_role``, ``job_role``, ``studio_role``, ``trigger_role``."""

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        names: ResourceNames,
        pipeline: PipelineSettings,
        instance_types: Sequence[str],
        key: kms.IKey,
        job_network: JobNetwork,
        image_repository_arn: str,
        **kwargs,
    ) -> None:
        super().__init__(scope, construct_id, **kwargs)
        self.image_repository_arn = image_repository_arn
        self.names = names
        self.pipeline = pipeline
        self.instance_types = tuple(instance_types)
        self.key = key
        self.job_network = job_network

        self.job_role = self._create_job_role()
        self.pipeline_role = self._create_pipeline_role()
        self.studio_role = self._create_studio_role()
        self.trigger_role = self._create_trigger_role()

    # ARNs -------------------------------------------------------------------------------------

    def _sagemaker_arn(self, resource: str, name: str) -> str:
        return self.format_arn(service="sagemaker", resource=resource, resource_name=name)

    def _objects(self, bucket: str, prefix: str) -> str:
        return f"arn:{self.partition}:s3:::{bucket}/{prefix}*"

    def _bucket(self, bucket: str) -> str:
        return f"arn:{self.partition}:s3:::{bucket}"

    @property
    def pipeline_arn(self) -> str:
        return self._sagemaker_arn("pipeline", self.names.pipeline)

    def _job_create_conditions(self) -> dict[str, dict[str, object]]:
        """Cost and network guardrails on every job a project role creates."""
        conditions = instance_type_guardrail(self.instance_types)
        conditions["ForAllValues:StringEquals"].update(
            {
                "sagemaker:VpcSubnets": self.job_network.subnet_ids,
                "sagemaker:VpcSecurityGroupIds": self.job_network.security_group_ids,
            }
        )
        conditions["Null"]["sagemaker:VpcSubnets"] = "false"
        if self.pipeline.network_isolation:
            conditions["Bool"] = {"sagemaker:NetworkIsolation": "true"}
        return conditions

    # Shared statements ------------------------------------------------------------------------

    def _allow_key_use(self, role: LeastPrivilegeRole, *, grants: bool) -> None:
        role.allow("UseProjectKey", KEY_USE_ACTIONS, [self.key.key_arn])
        if grants:
            role.allow(
                "GrantKeyToAwsResources",  # SageMaker encrypts job and space volumes through grants
                KEY_GRANT_ACTIONS,
                [self.key.key_arn],
                conditions={"Bool": {"kms:GrantIsForAWSResource": "true"}},
            )

    def _allow_pass_job_role(self, role: LeastPrivilegeRole) -> None:
        role.allow(
            "PassJobRoleToSageMaker",
            ["iam:PassRole"],
            [self.job_role.role_arn],
            conditions={"StringEquals": {"iam:PassedToService": "sagemaker.amazonaws.com"}},
        )

    def _allow_list_prefixes(
        self, role: LeastPrivilegeRole, sid: str, bucket: str, prefixes: Sequence[str]
    ) -> None:
        role.allow(
            sid,
            ["s3:ListBucket"],
            [self._bucket(bucket)],
            conditions={"StringLike": {"s3:prefix": [f"{prefix}*" for prefix in prefixes]}},
        )

    # Roles ------------------------------------------------------------------------------------

    def _create_job_role(self) -> iam.IRole:
        role = LeastPrivilegeRole(
            self,
            "JobRole",
            role_name=self.names.job_role,
            assumed_by=SAGEMAKER,
            description="Processing, training and tuning jobs of the project pipeline",
        )
        names = self.names
        role.allow(
            "ReadRawData",
            S3_READ,
            [self._objects(names.data_bucket, names.raw_data_prefix)],
            wildcard_reason="jobs read every input file under the raw-data prefix; names vary per dataset",
        )
        role.allow(
            "ReadWritePipelineArtifacts",
            [*S3_READ, *S3_WRITE],
            [
                self._objects(names.artifacts_bucket, names.intermediates_prefix),
                self._objects(names.artifacts_bucket, names.models_prefix),
            ],
            wildcard_reason="job outputs are keyed by pipeline execution id, unknown before the run",
        )
        role.allow(
            "ReadJobCodeAndChampion",
            S3_READ,
            [
                self._objects(names.artifacts_bucket, names.code_prefix),
                self._objects(names.artifacts_bucket, names.champion_prefix),
            ],
            wildcard_reason="code bundles are versioned by content hash; the champion has a fixed prefix",
        )
        # As the endpoint's model role it writes data capture; as the monitoring role it reads the
        # captures and writes the Model Monitor reports.
        role.allow(
            "ReadWriteCaptureAndMonitoring",
            [*S3_READ, *S3_WRITE],
            [
                self._objects(names.artifacts_bucket, names.data_capture_prefix),
                self._objects(names.artifacts_bucket, names.monitoring_prefix),
            ],
            wildcard_reason="captures are keyed by endpoint, variant and hour; reports by schedule and run",
        )
        self._allow_list_prefixes(role, "ListRawData", names.data_bucket, [names.raw_data_prefix])
        self._allow_list_prefixes(
            role,
            "ListPipelineArtifacts",
            names.artifacts_bucket,
            [
                names.intermediates_prefix,
                names.models_prefix,
                names.code_prefix,
                names.champion_prefix,
                names.data_capture_prefix,
                names.monitoring_prefix,
            ],
        )
        self._allow_key_use(role, grants=False)
        role.allow(
            "WriteSageMakerJobLogs",
            ["logs:CreateLogGroup", "logs:CreateLogStream", "logs:PutLogEvents", "logs:DescribeLogStreams"],
            [
                self.format_arn(
                    service="logs",
                    resource="log-group",
                    resource_name="/aws/sagemaker/*",
                    arn_format=cdk.ArnFormat.COLON_RESOURCE_NAME,
                )
            ],
            wildcard_reason="SageMaker writes to /aws/sagemaker/<JobType>Jobs log groups, one stream per job",
        )
        role.allow(
            "PullJobImages",
            ["ecr:BatchGetImage", "ecr:GetDownloadUrlForLayer", "ecr:BatchCheckLayerAvailability"],
            [self.image_repository_arn],
        )
        role.allow(
            "ActionsWithoutResourceLevelPermissions",
            [*ECR_TOKEN_ACTIONS, *EC2_DESCRIBE_ACTIONS],
            ["*"],
            wildcard_reason=(
                "ecr:GetAuthorizationToken and the EC2 Describe* calls of VPC jobs support no resource-level "
                "permissions; image pulls and interface changes are scoped in other statements"
            ),
        )
        self._allow_vpc_network_interfaces(role)
        role.acknowledge_wildcards()
        return role.role

    def _allow_vpc_network_interfaces(self, role: LeastPrivilegeRole) -> None:
        """What SageMaker needs to attach a job in VPC mode to the project subnets."""
        network_interfaces = self.format_arn(service="ec2", resource="network-interface", resource_name="*")
        role.allow(
            "CreateJobNetworkInterfaces",
            ["ec2:CreateNetworkInterface"],
            [
                network_interfaces,
                *[
                    self.format_arn(service="ec2", resource="subnet", resource_name=subnet_id)
                    for subnet_id in self.job_network.subnet_ids
                ],
                *[
                    self.format_arn(service="ec2", resource="security-group", resource_name=group_id)
                    for group_id in self.job_network.security_group_ids
                ],
            ],
            wildcard_reason="the interface id is chosen by EC2 at creation; subnets and group are fixed",
        )
        role.allow(
            "ManageJobNetworkInterfaces",
            [
                "ec2:CreateNetworkInterfacePermission",
                "ec2:DeleteNetworkInterface",
                "ec2:DeleteNetworkInterfacePermission",
            ],
            [network_interfaces],
            conditions={
                "ArnEquals": {
                    "ec2:Vpc": self.format_arn(
                        service="ec2", resource="vpc", resource_name=self.job_network.vpc.vpc_id
                    )
                }
            },
            wildcard_reason="interface ids are created per job; the ec2:Vpc condition keeps them in our VPC",
        )

    def _create_pipeline_role(self) -> iam.IRole:
        role = LeastPrivilegeRole(
            self,
            "PipelineRole",
            role_name=self.names.pipeline_role,
            assumed_by=SAGEMAKER,
            description="SageMaker Pipelines execution role of the training pipeline",
        )
        # SageMaker Pipelines names the jobs it starts itself ("pipelines-<execution>-<step>-<suffix>");
        # tuning job names are generated without that prefix (they are limited to 32 characters).
        job_arns = [
            self._sagemaker_arn("processing-job", "pipelines-*"),
            self._sagemaker_arn("training-job", "pipelines-*"),
            self._sagemaker_arn("hyper-parameter-tuning-job", "*"),
        ]
        reason = (
            "job names are generated by SageMaker Pipelines per execution; creation is limited by conditions"
        )
        role.allow(
            "CreateGuardedJobs",
            CREATE_JOB_ACTIONS,
            job_arns,
            conditions=self._job_create_conditions(),
            wildcard_reason=reason,
        )
        role.allow("ManagePipelineJobs", MANAGE_JOB_ACTIONS, job_arns, wildcard_reason=reason)
        group = self.names.model_package_group
        role.allow(
            "RegisterModels",
            [
                "sagemaker:CreateModelPackage",
                "sagemaker:DescribeModelPackage",
                "sagemaker:DescribeModelPackageGroup",
                "sagemaker:UpdateModelPackage",
                "sagemaker:AddTags",
            ],
            [
                self._sagemaker_arn("model-package-group", group),
                self._sagemaker_arn("model-package", f"{group}/*"),
            ],
            wildcard_reason="model package versions are numbered by the registry inside the project's group",
        )
        self._allow_pass_job_role(role)
        role.allow(
            "ReadEvaluationReports",  # property files (evaluation.json) read by condition steps
            S3_READ,
            [
                self._objects(self.names.artifacts_bucket, self.names.intermediates_prefix),
                self._objects(self.names.artifacts_bucket, self.names.models_prefix),
            ],
            wildcard_reason="reports and model artifacts are keyed by pipeline execution id",
        )
        self._allow_key_use(role, grants=True)
        role.acknowledge_wildcards()
        return role.role

    def _create_studio_role(self) -> iam.IRole:
        role = LeastPrivilegeRole(
            self,
            "StudioRole",
            role_name=self.names.studio_role,
            assumed_by=SAGEMAKER,
            description="Execution role of the project's SageMaker Studio users",
        )
        names = self.names
        studio_arns = [self._sagemaker_arn(kind, "*") for kind in ("domain", "user-profile", "space", "app")]
        role.allow(
            "UseStudioAppsAndSpaces",
            [
                "sagemaker:DescribeDomain",
                "sagemaker:DescribeUserProfile",
                "sagemaker:CreateApp",
                "sagemaker:DeleteApp",
                "sagemaker:DescribeApp",
                "sagemaker:CreateSpace",
                "sagemaker:UpdateSpace",
                "sagemaker:DeleteSpace",
                "sagemaker:DescribeSpace",
                "sagemaker:AddTags",
                "sagemaker:ListTags",
            ],
            studio_arns,
            wildcard_reason="the domain id exists only once the Studio stack (which needs this role) deploys",
        )
        role.allow(
            "ListStudioResources",
            [
                "sagemaker:ListApps",
                "sagemaker:ListSpaces",
                "sagemaker:ListUserProfiles",
                "sagemaker:ListDomains",
            ],
            ["*"],
            wildcard_reason="SageMaker List* actions have no resource-level permissions",
        )
        role.allow(
            "RunProjectPipeline",
            [
                "sagemaker:StartPipelineExecution",
                "sagemaker:StopPipelineExecution",
                "sagemaker:DescribePipeline",
                "sagemaker:DescribePipelineExecution",
                "sagemaker:DescribePipelineDefinitionForExecution",
                "sagemaker:ListPipelineExecutions",
                "sagemaker:ListPipelineExecutionSteps",
            ],
            [self.pipeline_arn, self._sagemaker_arn("pipeline", f"{names.pipeline}/execution/*")],
            wildcard_reason="execution ids are generated per run of the project pipeline",
        )
        group = names.model_package_group
        role.allow(
            "ReviewModels",
            [
                "sagemaker:DescribeModelPackageGroup",
                "sagemaker:DescribeModelPackage",
                "sagemaker:UpdateModelPackage",
            ],
            [
                self._sagemaker_arn("model-package-group", group),
                self._sagemaker_arn("model-package", f"{group}/*"),
            ],
            wildcard_reason="model package versions are numbered by the registry inside the project's group",
        )
        experiment_jobs = [self._sagemaker_arn(kind, f"{names.prefix}-*") for kind in JOB_KINDS]
        reason = "experiment jobs must carry the project prefix; creation is limited by conditions"
        role.allow(
            "CreateGuardedExperimentJobs",
            CREATE_JOB_ACTIONS,
            experiment_jobs,
            conditions=self._job_create_conditions(),
            wildcard_reason=reason,
        )
        role.allow("ManageExperimentJobs", MANAGE_JOB_ACTIONS, experiment_jobs, wildcard_reason=reason)
        role.allow(
            "CreateGuardedEndpointConfigs",
            ["sagemaker:CreateEndpointConfig"],
            [self._sagemaker_arn("endpoint-config", f"{names.prefix}-*")],
            conditions=instance_type_guardrail(self.instance_types),
            wildcard_reason="endpoint configs must carry the project prefix; instance types are limited",
        )
        self._allow_pass_job_role(role)
        role.allow(
            "ReadProjectData",
            S3_READ,
            [self._objects(names.data_bucket, ""), self._objects(names.artifacts_bucket, "")],
            wildcard_reason="data scientists explore all project data and pipeline outputs (read only)",
        )
        role.allow(
            "WriteStudioScratch",
            S3_WRITE,
            [self._objects(names.artifacts_bucket, names.studio_prefix)],
            wildcard_reason="notebooks write and share files under the studio prefix only",
        )
        role.allow(
            "ListProjectBuckets",
            ["s3:ListBucket"],
            [self._bucket(names.data_bucket), self._bucket(names.artifacts_bucket)],
        )
        self._allow_key_use(role, grants=True)
        role.allow(
            "WriteStudioLogs",
            ["logs:CreateLogGroup", "logs:CreateLogStream", "logs:PutLogEvents"],
            [
                self.format_arn(
                    service="logs",
                    resource="log-group",
                    resource_name="/aws/sagemaker/studio*",
                    arn_format=cdk.ArnFormat.COLON_RESOURCE_NAME,
                )
            ],
            wildcard_reason="Studio apps log to /aws/sagemaker/studio with one stream per app",
        )
        role.acknowledge_wildcards()
        return role.role

    def _create_trigger_role(self) -> iam.IRole:
        role = LeastPrivilegeRole(
            self,
            "TriggerRole",
            role_name=self.names.scheduler_role,
            assumed_by=iam.ServicePrincipal(
                "events.amazonaws.com", conditions={"StringEquals": {"aws:SourceAccount": self.account}}
            ),
            description="EventBridge target role: starts the project pipeline",
        )
        role.allow("StartProjectPipeline", ["sagemaker:StartPipelineExecution"], [self.pipeline_arn])
        role.acknowledge_wildcards()
        return role.role
