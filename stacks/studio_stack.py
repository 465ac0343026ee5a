"""Studio stack: a VPC-only SageMaker Studio domain with IAM auth, the project key and idle shutdown.

Studio traffic stays in the project VPC (``VpcOnly``: no SageMaker-managed internet access); the EFS
home volume and space volumes are encrypted with the project key; notebooks are shared to the
artifacts bucket under ``studio/`` with the same key. JupyterLab apps shut down after the idle time
from the settings (``JupyterLabAppSettings.AppLifecycleManagement.IdleSettings``), a cost guardrail.

Per-user attribution: ``ExecutionRoleIdentityConfig=USER_PROFILE_NAME`` makes every session of the
shared execution role carry the user profile name as ``sts:SourceIdentity`` (CloudTrail shows who did
what). Once the domain exists, this stack attaches the execution role's Studio permissions scoped to the
domain id (:mod:`stacks.studio_access`): spaces and apps only for their owner, only on the instance
types in ``studio.app_instance_types``, the first of which is the domain's default.
"""

from __future__ import annotations

import aws_cdk as cdk
from aws_cdk import aws_ec2 as ec2
from aws_cdk import aws_iam as iam
from aws_cdk import aws_kms as kms
from aws_cdk import aws_s3 as s3
from aws_cdk import aws_sagemaker as sagemaker
from constructs import Construct

from settings import ResourceNames, StudioSettings
from stacks.studio_access import attach_studio_access


class StudioStack(cdk.Stack):
    """The Studio ``domain`` and one ``user_profiles[name]`` per configured user."""

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        studio: StudioSettings,
        names: ResourceNames,
        vpc: ec2.IVpc,
        subnets: list[ec2.ISubnet],
        security_group: ec2.ISecurityGroup,
        execution_role: iam.IRole,
        key: kms.IKey,
        artifacts_bucket: s3.IBucket,
        **kwargs,
    ) -> None:
        super().__init__(scope, construct_id, **kwargs)
        self.studio = studio
        self.names = names
        self.domain = self._create_domain(vpc, subnets, security_group, execution_role, key, artifacts_bucket)
        self.user_profiles = {name: self._create_user_profile(name) for name in studio.user_profiles}
        self.access = attach_studio_access(
            self,
            domain_id=self.domain.attr_domain_id,
            role=execution_role,
            instance_types=studio.app_instance_types,
        )

    def _idle_jupyterlab(self) -> sagemaker.CfnDomain.JupyterLabAppSettingsProperty:
        minutes = self.studio.idle_shutdown_minutes
        return sagemaker.CfnDomain.JupyterLabAppSettingsProperty(
            default_resource_spec=sagemaker.CfnDomain.ResourceSpecProperty(
                instance_type=self.studio.app_instance_types[0]
            ),
            app_lifecycle_management=sagemaker.CfnDomain.AppLifecycleManagementProperty(
                idle_settings=sagemaker.CfnDomain.IdleSettingsProperty(
                    lifecycle_management="ENABLED",
                    idle_timeout_in_minutes=minutes,
                    min_idle_timeout_in_minutes=60,  # users may shorten it, never below an hour
                    max_idle_timeout_in_minutes=minutes,  # nor lengthen it past the project limit
                )
            ),
        )

    def _create_domain(
        self,
        vpc: ec2.IVpc,
        subnets: list[ec2.ISubnet],
        security_group: ec2.ISecurityGroup,
        execution_role: iam.IRole,
        key: kms.IKey,
        artifacts_bucket: s3.IBucket,
    ) -> sagemaker.CfnDomain:
        security_groups = [security_group.security_group_id]
        return sagemaker.CfnDomain(
            self,
            "Domain",
            domain_name=self.names.studio_domain,
            auth_mode="IAM",
            app_network_access_type="VpcOnly",
            domain_settings=sagemaker.CfnDomain.DomainSettingsProperty(
                execution_role_identity_config="USER_PROFILE_NAME"
            ),
            kms_key_id=key.key_arn,
            vpc_id=vpc.vpc_id,
            subnet_ids=[subnet.subnet_id for subnet in subnets],
            default_user_settings=sagemaker.CfnDomain.UserSettingsProperty(
                execution_role=execution_role.role_arn,
                security_groups=security_groups,
                sharing_settings=sagemaker.CfnDomain.SharingSettingsProperty(
                    notebook_output_option="Allowed",
                    s3_output_path=artifacts_bucket.s3_url_for_object(f"{self.names.studio_prefix}shared"),
                    s3_kms_key_id=key.key_arn,
                ),
                jupyter_lab_app_settings=self._idle_jupyterlab(),
            ),
            default_space_settings=sagemaker.CfnDomain.DefaultSpaceSettingsProperty(
                execution_role=execution_role.role_arn,
                security_groups=security_groups,
                jupyter_lab_app_settings=self._idle_jupyterlab(),
            ),
        )

    def _create_user_profile(self, name: str) -> sagemaker.CfnUserProfile:
        construct_id = "UserProfile" + "".join(part.capitalize() for part in name.split("-"))
        return sagemaker.CfnUserProfile(
            self, construct_id, domain_id=self.domain.attr_domain_id, user_profile_name=name
        )
