"""The serving side: model, endpoint config and endpoint of one registered version, created or reused.

Names are derived from the version and a digest of everything that goes into the resource, so a repeated
event reuses what exists (describe first; an "already exists" race is treated as success), and a changed
setting (instance type, capture percentage, role...) yields a new name instead of a stale reuse. Endpoint
configs carry tags naming the version they serve; `endpoint_state` reads them back to tell which version
is in service. An existing endpoint is only ever changed through a blue/green update with canary or
linear traffic shifting and CloudWatch-alarm auto-rollback. A serverless endpoint (`SERVING_MODE=serverless`)
gets a `ServerlessConfig` variant, no VPC, no network isolation, no volume key, and is updated blue/green
all at once under the same alarms (its fleet has no instance capacity to shift by percent).

Captures come from one of two writers, in the same layout (`<root><endpoint>/<variant>/yyyy/mm/dd/hh/`):
`sagemaker` mode sets the endpoint config's `DataCaptureConfig` and keeps the model network-isolated;
`container` mode leaves `DataCaptureConfig` out and tells the serving container (`serve.py`,
`rul.capture_upload`) through its environment where to upload its own captures. That model runs without
network isolation, because isolation blocks every outbound call of the container, S3 included, and gives
it no credentials; it stays in the job subnets, whose only routes are the VPC endpoints.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from botocore.exceptions import ClientError

from .config import DeployConfig
from .registry import ModelVersion
from .resources import (
    TAG_CHALLENGER,
    TAG_CHAMPION,
    TAG_VERSION,
    bounded_name,
    create_unless_exists,
    digest,
    is_missing,
    version_tags,
)

VARIANT_NAME = "AllTraffic"
# The serving container's variables (containers/serve.py, containers/rul/capture_upload.py; the function
# cannot import them, a test checks that both sides agree).
CAPTURE_ENVIRONMENT = {
    "dir": "RUL_CAPTURE_DIR",
    "percentage": "RUL_CAPTURE_PERCENTAGE",
    "endpoint": "RUL_ENDPOINT_NAME",
    "variant": "RUL_VARIANT_NAME",
    "s3_uri": "RUL_CAPTURE_S3_URI",
    "kms_key": "RUL_CAPTURE_KMS_KEY_ID",
}
# Inside the serving container; the uploader empties it as it uploads.
CONTAINER_CAPTURE_DIR = "/tmp/rul-capture"
# Endpoint states in which SageMaker refuses an update; the function fails so Lambda retries it later.
BUSY_STATES = frozenset(
    {"Creating", "Updating", "SystemUpdating", "RollingBack", "Deleting", "UpdateRollbackFailed"}
)


class EndpointBusy(RuntimeError):
    """The endpoint cannot be changed now (being created, updated or rolled back); retry later."""


@dataclass(frozen=True)
class EndpointState:
    """What the endpoint serves now, read from its (pending or current) config's tags."""

    exists: bool
    status: str | None = None
    config_name: str | None = None  # the config serving traffic (or being deployed, when updating)
    version: int | None = None  # from that config's tags (with an A/B test: the challenger's)
    champion: int | None = None  # with an A/B test in the config: the champion's version
    challenger: int | None = None  # with an A/B test in the config: the challenger's version

    def versions(self) -> set[int]:
        """Every version the endpoint serves (or is being moved to)."""
        return {v for v in (self.version, self.champion, self.challenger) if v is not None}


def container_capture_environment(config: DeployConfig, variant: str = VARIANT_NAME) -> dict[str, str]:
    """The serving container's capture variables in `container` mode (empty in `sagemaker` mode); the
    variant name tells the container which variant it serves, so its captures land in that folder."""
    if config.capture_mode != "container":
        return {}
    names = CAPTURE_ENVIRONMENT
    return {
        names["dir"]: CONTAINER_CAPTURE_DIR,
        names["percentage"]: str(config.capture_percent),
        names["endpoint"]: config.endpoint_name,
        names["variant"]: variant,
        names["s3_uri"]: f"{config.capture_s3_uri.rstrip('/')}/{config.endpoint_name}/",
        names["kms_key"]: config.kms_key_arn,
    }


def model_request(config: DeployConfig, version: ModelVersion, variant: str = VARIANT_NAME) -> dict[str, Any]:
    """CreateModel of `version` for the production variant `variant` (named in the container's capture
    environment, so each variant of an A/B test gets its own model in `container` capture mode)."""
    container: dict[str, Any] = {"Image": version.image, "ModelDataUrl": version.model_data_url}
    environment = container_capture_environment(config, variant)
    if environment:
        container["Environment"] = environment
    vpc = {
        "Subnets": list(config.network.subnet_ids),
        "SecurityGroupIds": list(config.network.security_group_ids),
    }
    if config.serverless is not None:  # serverless endpoints take neither a VPC nor network isolation
        suffix = f"v{version.version}-{digest(container, 'serverless', config.model_role_arn)}"
        return {
            "ModelName": bounded_name(config.group_name, suffix),
            "PrimaryContainer": container,
            "ExecutionRoleArn": config.model_role_arn,
            "Tags": version_tags(version),
        }
    suffix = f"v{version.version}-{digest(container, vpc, config.model_role_arn)}"
    return {
        "ModelName": bounded_name(config.group_name, suffix),
        "PrimaryContainer": container,
        "ExecutionRoleArn": config.model_role_arn,
        "VpcConfig": vpc,
        "EnableNetworkIsolation": not environment,  # the container uploads its captures itself
        "Tags": version_tags(version),
    }


def _variant(config: DeployConfig, model_name: str) -> dict[str, Any]:
    variant: dict[str, Any] = {
        "VariantName": VARIANT_NAME,
        "ModelName": model_name,
        "InitialVariantWeight": 1.0,
    }
    if config.serverless is not None:
        variant["ServerlessConfig"] = {
            "MemorySizeInMB": config.serverless.memory_mb,
            "MaxConcurrency": config.serverless.max_concurrency,
        }
    else:
        variant.update(InstanceType=config.instance_type, InitialInstanceCount=config.instance_count)
    return variant


def capture_config(config: DeployConfig) -> dict[str, Any] | None:
    """The endpoint config's DataCaptureConfig in `sagemaker` capture mode, else None."""
    if config.capture_mode != "sagemaker":
        return None
    return {
        "EnableCapture": True,
        "InitialSamplingPercentage": config.capture_percent,
        "DestinationS3Uri": config.capture_s3_uri,
        "KmsKeyId": config.kms_key_arn,
        "CaptureOptions": [{"CaptureMode": "Input"}, {"CaptureMode": "Output"}],
    }


def endpoint_config_request(config: DeployConfig, version: ModelVersion, model_name: str) -> dict[str, Any]:
    """The CreateEndpointConfig request serving `version` as `model_name`, named by version and digest."""
    variant = _variant(config, model_name)
    capture = capture_config(config)
    suffix = f"v{version.version}-{digest(variant, capture, config.kms_key_arn)}"
    request: dict[str, Any] = {
        "EndpointConfigName": bounded_name(config.endpoint_name, suffix),
        "ProductionVariants": [variant],
        "Tags": version_tags(version),
    }
    if config.serverless is None:
        request["KmsKeyId"] = config.kms_key_arn  # the instances' ML storage volumes (serverless has none)
    if capture is not None:
        request["DataCaptureConfig"] = capture
    return request


def deployment_config(config: DeployConfig) -> dict[str, Any]:
    """The blue/green `DeploymentConfig`: traffic shifting (all at once when serverless) and auto-rollback."""
    traffic = config.traffic
    routing: dict[str, Any] = {"WaitIntervalInSeconds": traffic.wait_seconds}
    if config.serverless is not None:
        # A serverless fleet has no instances to shift by capacity: all at once, watched by the same alarms.
        routing["Type"] = "ALL_AT_ONCE"
    else:
        routing["Type"] = traffic.strategy.upper()
        step = {"Type": "CAPACITY_PERCENT", "Value": traffic.percent}
        routing["CanarySize" if traffic.strategy == "canary" else "LinearStepSize"] = step
    return {
        "BlueGreenUpdatePolicy": {
            "TrafficRoutingConfiguration": routing,
            "TerminationWaitInSeconds": traffic.termination_wait_seconds,
        },
        "AutoRollbackConfiguration": {"Alarms": [{"AlarmName": name} for name in traffic.rollback_alarms]},
    }


def ensure_model_and_config(
    sagemaker: Any, config: DeployConfig, version: ModelVersion
) -> tuple[str, list[str]]:
    """Create (or reuse) the version's model and endpoint config; return the config name and what was new."""
    created: list[str] = []
    model = model_request(config, version)
    if create_unless_exists(
        lambda: sagemaker.describe_model(ModelName=model["ModelName"]),
        lambda: sagemaker.create_model(**model),
    ):
        created.append(f"model {model['ModelName']}")
    endpoint_config = endpoint_config_request(config, version, model["ModelName"])
    name = endpoint_config["EndpointConfigName"]
    if create_unless_exists(
        lambda: sagemaker.describe_endpoint_config(EndpointConfigName=name),
        lambda: sagemaker.create_endpoint_config(**endpoint_config),
    ):
        created.append(f"endpoint config {name}")
    return name, created


def _config_versions(sagemaker: Any, config_name: str) -> tuple[int | None, int | None, int | None]:
    """(version, champion, challenger) from the config's tags; None for each tag absent or not a number."""
    arn = sagemaker.describe_endpoint_config(EndpointConfigName=config_name)["EndpointConfigArn"]
    tags = {tag["Key"]: tag["Value"] for tag in sagemaker.list_tags(ResourceArn=arn).get("Tags", [])}

    def number(key: str) -> int | None:
        value = tags.get(key)
        return int(value) if value is not None and value.isdigit() else None

    return number(TAG_VERSION), number(TAG_CHAMPION), number(TAG_CHALLENGER)


def endpoint_state(sagemaker: Any, endpoint_name: str) -> EndpointState:
    """Describe the endpoint and the config it serves or moves to; `exists=False` when there is none."""
    try:
        endpoint = sagemaker.describe_endpoint(EndpointName=endpoint_name)
    except ClientError as error:
        if is_missing(error):
            return EndpointState(exists=False)
        raise
    pending = endpoint.get("PendingDeploymentSummary", {}).get("EndpointConfigName")
    config_name = pending or endpoint.get("EndpointConfigName")
    versions = _config_versions(sagemaker, config_name) if config_name else (None, None, None)
    return EndpointState(True, endpoint["EndpointStatus"], config_name, *versions)


def create_or_update(
    sagemaker: Any, config: DeployConfig, state: EndpointState, config_name: str, guarded: bool = True
) -> str:
    """Point the endpoint at `config_name`; return "created", "updated" or "unchanged".

    `guarded` False when the variant names change (entering or leaving an A/B test): SageMaker's
    deployment guardrails need the same variant names in both configs, so that update goes without a
    DeploymentConfig (SageMaker's default blue/green, all at once, without alarm rollback)."""
    if not state.exists:
        sagemaker.create_endpoint(
            EndpointName=config.endpoint_name,
            EndpointConfigName=config_name,
            Tags=[{"Key": "ManagedBy", "Value": "deploy-on-approval"}],
        )
        return "created"
    if state.status == "Failed":
        raise EndpointBusy(
            f"endpoint {config.endpoint_name} is Failed and cannot be updated; delete it and replay the event"
        )
    if state.config_name == config_name:  # in service, or the update to it is already running
        return "unchanged"
    if state.status in BUSY_STATES:
        raise EndpointBusy(
            f"endpoint {config.endpoint_name} is {state.status} (config {state.config_name}); "
            f"cannot switch to {config_name} now"
        )
    if not guarded:
        sagemaker.update_endpoint(EndpointName=config.endpoint_name, EndpointConfigName=config_name)
        return "updated (variants changed: all at once, no alarm rollback)"
    sagemaker.update_endpoint(
        EndpointName=config.endpoint_name,
        EndpointConfigName=config_name,
        DeploymentConfig=deployment_config(config),
        RetainAllVariantProperties=False,
    )
    return "updated"
