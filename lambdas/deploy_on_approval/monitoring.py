"""The optional Model Monitor schedule of the endpoint: the project's drift job as a BYOC Model Monitor job.

Only with `USE_MODEL_MONITOR=true` (`monitoring.use_model_monitor`, for accounts that still have Model
Monitor, closed to new customers): `converge` is the only entry point, and with the setting off it makes
no Model Monitor call at all; the monitoring pipeline then watches the endpoint, on the baselines the
function copies to the champion prefix (`champion.publish`). With it on, a version registered without
baselines has its predecessor's schedule deleted, since that would judge the new model by the old data.

The one monitoring schedule carries its job definition inline (`MonitoringScheduleConfig.
MonitoringJobDefinition`): `MonitoringAppSpecification` runs the project image (`DRIFT_IMAGE_URI`) with
`python3 /opt/program/drift.py --contract model-monitor`, on the endpoint's captures, against the
statistics and constraints of the version in service (`BaselineConfig`, from the version's
`DriftCheckBaselines.ModelDataQuality`, written by the pipeline's DataQualityBaseline step), so drift is
measured against the data that trained the model actually serving. Model Monitor passes the inputs as
environment variables (`dataset_source`, `output_path`, `baseline_statistics`, `baseline_constraints`,
`start_time`, `end_time`, `sagemaker_endpoint_name`; developer guide, model-monitor-byoc-contract-inputs)
and publishes the metric file the job writes under /opt/ml/output/metrics/cloudwatch
(model-monitor-byoc-cloudwatch): the job runs with network isolation, so it cannot call CloudWatch itself.

This replaces, rather than adds to, the data-quality job of AWS's analyzer image: the drift job checks the
same constraints.json and writes `constraint_violations.json` in the analyzer's shape, and adds the KS and
PSI statistics and the `MaxPSI` metric the drift alarm (which starts retraining) watches; the analyzer's
metrics fed no alarm, and a second hourly job would double the cost for nothing. With the definition
inline there is no data-quality job definition to create: the schedule is created, or updated when its
definition (baselines, image, resources) or its cron expression differ from the wanted ones.
"""

from __future__ import annotations

from typing import Any

from botocore.exceptions import ClientError

from .config import DeployConfig
from .registry import ModelVersion
from .resources import is_missing

CAPTURE_LOCAL_PATH = "/opt/ml/processing/input/endpoint"
OUTPUT_LOCAL_PATH = "/opt/ml/processing/output"
# containers/Dockerfile copies the job scripts to /opt/program.
DRIFT_ENTRYPOINT = ["python3", "/opt/program/drift.py"]
DRIFT_ARGUMENTS = ["--contract", "model-monitor"]


def job_definition(config: DeployConfig, version: ModelVersion) -> dict[str, Any]:
    """The inline `MonitoringJobDefinition` of the drift job for `version`."""
    monitoring = config.monitoring
    assert monitoring is not None and version.baseline is not None  # checked by `converge`
    return {
        "BaselineConfig": {
            "ConstraintsResource": {"S3Uri": version.baseline.constraints_s3_uri},
            "StatisticsResource": {"S3Uri": version.baseline.statistics_s3_uri},
        },
        **_inputs_and_outputs(config),
        "MonitoringResources": {
            "ClusterConfig": {
                "InstanceCount": 1,
                "InstanceType": monitoring.instance_type,
                "VolumeSizeInGB": monitoring.volume_gb,
                "VolumeKmsKeyId": config.kms_key_arn,
            }
        },
        "MonitoringAppSpecification": {
            "ImageUri": monitoring.image_uri,
            "ContainerEntrypoint": list(DRIFT_ENTRYPOINT),
            "ContainerArguments": list(DRIFT_ARGUMENTS),
        },
        "StoppingCondition": {"MaxRuntimeInSeconds": monitoring.max_runtime_seconds},
        "NetworkConfig": {
            "EnableInterContainerTrafficEncryption": True,
            "EnableNetworkIsolation": True,
            "VpcConfig": {
                "Subnets": list(config.network.subnet_ids),
                "SecurityGroupIds": list(config.network.security_group_ids),
            },
        },
        "RoleArn": monitoring.role_arn,
    }


def _inputs_and_outputs(config: DeployConfig) -> dict[str, Any]:
    """The endpoint's captures in, the drift report out to the monitoring prefix (with the project key)."""
    assert config.monitoring is not None
    return {
        "MonitoringInputs": [
            {
                "EndpointInput": {
                    "EndpointName": config.endpoint_name,
                    "LocalPath": CAPTURE_LOCAL_PATH,
                    "S3InputMode": "File",
                    "S3DataDistributionType": "FullyReplicated",
                }
            }
        ],
        "MonitoringOutputConfig": {
            "MonitoringOutputs": [
                {
                    "S3Output": {
                        "S3Uri": config.monitoring.output_s3_uri,
                        "LocalPath": OUTPUT_LOCAL_PATH,
                        "S3UploadMode": "EndOfJob",
                    }
                }
            ],
            "KmsKeyId": config.kms_key_arn,
        },
    }


def schedule_config(config: DeployConfig, version: ModelVersion) -> dict[str, Any]:
    """The `MonitoringScheduleConfig` for `version`: the cron expression and the inline job definition."""
    assert config.monitoring is not None
    return {
        "ScheduleConfig": {"ScheduleExpression": config.monitoring.schedule_cron},
        "MonitoringJobDefinition": job_definition(config, version),
    }


def _current_schedule(sagemaker: Any, name: str) -> dict[str, Any] | None:
    try:
        return sagemaker.describe_monitoring_schedule(MonitoringScheduleName=name)
    except ClientError as error:
        if is_missing(error):
            return None
        raise


def converge(sagemaker: Any, config: DeployConfig, version: ModelVersion) -> str:
    """The schedule for `version`: "created", "updated", "unchanged", "deleted: ..." or "skipped: ..."."""
    if config.monitoring is None:
        return "skipped: Model Monitor is off; the monitoring pipeline watches the endpoint"
    if version.baseline is None:
        reason = f"v{version.version} has no DriftCheckBaselines.ModelDataQuality"
        name = config.monitoring.schedule_name
        if _current_schedule(sagemaker, name) is None:
            return f"skipped: {reason}"
        sagemaker.delete_monitoring_schedule(MonitoringScheduleName=name)
        return f"deleted: {reason}"
    return ensure_monitoring(sagemaker, config, version)


def ensure_monitoring(sagemaker: Any, config: DeployConfig, version: ModelVersion) -> str:
    """Return "created", "updated" or "unchanged" for the schedule of `version`."""
    assert config.monitoring is not None
    wanted = schedule_config(config, version)
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
    # A schedule of the former data-quality definition (by name) differs too, and is moved to this one.
    same_definition = have.get("MonitoringJobDefinition") == wanted["MonitoringJobDefinition"]
    same_cron = (
        have.get("ScheduleConfig", {}).get("ScheduleExpression")
        == wanted["ScheduleConfig"]["ScheduleExpression"]
    )
    if same_definition and same_cron:
        return "unchanged"
    sagemaker.update_monitoring_schedule(
        MonitoringScheduleName=schedule_name, MonitoringScheduleConfig=wanted
    )
    return "updated"
