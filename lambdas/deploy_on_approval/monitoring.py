"""The data-quality monitor of the endpoint, pointed at the baselines registered with the version in service.

A data-quality job definition is immutable, so each version gets its own (`<schedule>-v<N>-<digest>`,
created or reused like models); the one monitoring schedule is created, or updated to reference the new
definition. The statistics and constraints come from the version's `DriftCheckBaselines.ModelDataQuality`
(written by the pipeline's DataQualityBaseline step), so drift is measured against the data that
trained the model actually serving.
"""

from __future__ import annotations

from typing import Any

from botocore.exceptions import ClientError

from .config import DeployConfig
from .registry import ModelVersion
from .resources import bounded_name, create_unless_exists, digest, is_missing, version_tags

CAPTURE_LOCAL_PATH = "/opt/ml/processing/input/endpoint"
OUTPUT_LOCAL_PATH = "/opt/ml/processing/output"


def job_definition_request(config: DeployConfig, version: ModelVersion) -> dict[str, Any]:
    monitoring = config.monitoring
    assert version.baseline is not None  # checked by the caller
    body = {
        "DataQualityBaselineConfig": {
            "ConstraintsResource": {"S3Uri": version.baseline.constraints_s3_uri},
            "StatisticsResource": {"S3Uri": version.baseline.statistics_s3_uri},
        },
        "DataQualityAppSpecification": {"ImageUri": monitoring.image_uri},
        "DataQualityJobInput": {
            "EndpointInput": {
                "EndpointName": config.endpoint_name,
                "LocalPath": CAPTURE_LOCAL_PATH,
                "S3InputMode": "File",
                "S3DataDistributionType": "FullyReplicated",
            }
        },
        "DataQualityJobOutputConfig": {
            "MonitoringOutputs": [
                {
                    "S3Output": {
                        "S3Uri": monitoring.output_s3_uri,
                        "LocalPath": OUTPUT_LOCAL_PATH,
                        "S3UploadMode": "EndOfJob",
                    }
                }
            ],
            "KmsKeyId": config.kms_key_arn,
        },
        "JobResources": {
            "ClusterConfig": {
                "InstanceCount": 1,
                "InstanceType": monitoring.instance_type,
                "VolumeSizeInGB": monitoring.volume_gb,
                "VolumeKmsKeyId": config.kms_key_arn,
            }
        },
        "NetworkConfig": {
            "EnableInterContainerTrafficEncryption": True,
            "EnableNetworkIsolation": True,
            "VpcConfig": {
                "Subnets": list(config.network.subnet_ids),
                "SecurityGroupIds": list(config.network.security_group_ids),
            },
        },
        "RoleArn": monitoring.role_arn,
        "StoppingCondition": {"MaxRuntimeInSeconds": monitoring.max_runtime_seconds},
    }
    name = bounded_name(monitoring.schedule_name, f"v{version.version}-{digest(body)}")
    return {"JobDefinitionName": name, **body, "Tags": version_tags(version)}


def _schedule_config(config: DeployConfig, job_definition_name: str) -> dict[str, Any]:
    return {
        "ScheduleConfig": {"ScheduleExpression": config.monitoring.schedule_cron},
        "MonitoringJobDefinitionName": job_definition_name,
        "MonitoringType": "DataQuality",
    }


def _current_schedule(sagemaker: Any, name: str) -> dict[str, Any] | None:
    try:
        return sagemaker.describe_monitoring_schedule(MonitoringScheduleName=name)
    except ClientError as error:
        if is_missing(error):
            return None
        raise


def ensure_monitoring(sagemaker: Any, config: DeployConfig, version: ModelVersion) -> str:
    """Return "created", "updated" or "unchanged" for the schedule of `version`."""
    definition = job_definition_request(config, version)
    name = definition["JobDefinitionName"]
    create_unless_exists(
        lambda: sagemaker.describe_data_quality_job_definition(JobDefinitionName=name),
        lambda: sagemaker.create_data_quality_job_definition(**definition),
    )
    wanted = _schedule_config(config, name)
    schedule_name = config.monitoring.schedule_name
    current = _current_schedule(sagemaker, schedule_name)
    if current is None:
        sagemaker.create_monitoring_schedule(
            MonitoringScheduleName=schedule_name,
            MonitoringScheduleConfig=wanted,
            Tags=[{"Key": "ManagedBy", "Value": "deploy-on-approval"}],
        )
        return "created"
    have = current.get("MonitoringScheduleConfig", {})
    if (
        have.get("MonitoringJobDefinitionName") == name
        and have.get("ScheduleConfig", {}).get("ScheduleExpression") == config.monitoring.schedule_cron
    ):
        return "unchanged"
    sagemaker.update_monitoring_schedule(
        MonitoringScheduleName=schedule_name, MonitoringScheduleConfig=wanted
    )
    return "updated"
