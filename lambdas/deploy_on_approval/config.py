"""Configuration of the deploy-on-approval function: environment variables validated into frozen dataclasses.

`load_config(environ)` is called by the handler on every invocation (never at import time). It collects
every problem before raising, so one failed invocation names all the bad variables and their values. The
CDK stack sets these variables; the names are the `ENV_*` constants below.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass

from lambdas.common.config import BUCKET_PATTERN, NAME_PATTERN, EnvReader
from lambdas.common.config import ConfigError as ConfigError  # raised by load_config, caught by callers
from lambdas.common.s3uri import S3_URI_PATTERN

ENV_GROUP = "MODEL_PACKAGE_GROUP_NAME"
ENV_ENDPOINT = "ENDPOINT_NAME"
ENV_MODEL_ROLE = "MODEL_EXECUTION_ROLE_ARN"
ENV_SUBNETS = "SUBNET_IDS"
ENV_SECURITY_GROUPS = "SECURITY_GROUP_IDS"
ENV_KMS_KEY = "KMS_KEY_ARN"
ENV_CAPTURE_URI = "DATA_CAPTURE_S3_URI"
ENV_CAPTURE_PERCENT = "DATA_CAPTURE_PERCENT"
ENV_CAPTURE_MODE = "DATA_CAPTURE_MODE"  # "sagemaker" (DataCaptureConfig) or "container" (serve.py uploads)
ENV_INSTANCE_TYPE = "INSTANCE_TYPE"
ENV_INSTANCE_COUNT = "INSTANCE_COUNT"
ENV_SERVING_MODE = "SERVING_MODE"  # "instances" or "serverless"
ENV_SERVERLESS_MEMORY = "SERVERLESS_MEMORY_MB"
ENV_SERVERLESS_CONCURRENCY = "SERVERLESS_MAX_CONCURRENCY"
ENV_STRATEGY = "DEPLOYMENT_STRATEGY"
ENV_TRAFFIC_PERCENT = "TRAFFIC_PERCENT"
ENV_TRAFFIC_WAIT = "TRAFFIC_WAIT_SECONDS"
ENV_TERMINATION_WAIT = "TERMINATION_WAIT_SECONDS"
ENV_ALARMS = "ROLLBACK_ALARM_NAMES"
ENV_USE_MODEL_MONITOR = "USE_MODEL_MONITOR"  # "true": also keep a Model Monitor schedule
ENV_SCHEDULE = "MONITORING_SCHEDULE_NAME"
ENV_SCHEDULE_CRON = "MONITORING_SCHEDULE_CRON"
ENV_MONITOR_IMAGE = "DRIFT_IMAGE_URI"  # the project image, runs containers/drift.py
ENV_MONITOR_ROLE = "MONITORING_ROLE_ARN"
ENV_MONITOR_OUTPUT = "MONITORING_OUTPUT_S3_URI"
ENV_MONITOR_INSTANCE_TYPE = "MONITORING_INSTANCE_TYPE"
ENV_MONITOR_VOLUME_GB = "MONITORING_VOLUME_GB"
ENV_MONITOR_MAX_RUNTIME = "MONITORING_MAX_RUNTIME_SECONDS"
ENV_ARTIFACTS_BUCKET = "ARTIFACTS_BUCKET"
ENV_CHAMPION_PREFIX = "CHAMPION_PREFIX"
ENV_AB_ENABLED = "AB_TEST_ENABLED"  # "true": a new approval joins the version in service as a challenger
ENV_AB_CHALLENGER_PERCENT = "AB_CHALLENGER_WEIGHT_PERCENT"
ENV_AB_CHALLENGER_INSTANCES = "AB_CHALLENGER_INSTANCE_COUNT"

ROLE_ARN_PATTERN = re.compile(r"^arn:aws[a-z-]*:iam::\d{12}:role/[\w+=,.@/-]+$")
KMS_ARN_PATTERN = re.compile(r"^arn:aws[a-z-]*:kms:[a-z0-9-]+:\d{12}:key/[a-zA-Z0-9-]+$")
INSTANCE_TYPE_PATTERN = re.compile(r"^ml\.[a-z0-9-]+\.[a-z0-9]+$")
SUBNET_PATTERN = re.compile(r"^subnet-[0-9a-f]+$")
SECURITY_GROUP_PATTERN = re.compile(r"^sg-[0-9a-f]+$")
# Model Monitor accepts hourly or daily cron expressions only (plus NOW for one-off runs, not used here).
CRON_PATTERN = re.compile(r"^cron\(.+\)$")
# SageMaker's blue/green canary may hold at most 50 % of a variant's instances and a linear step 10-50 %
# (TrafficRoutingConfig: CanarySize, LinearStepSize), so a shifted fleet, or variant, needs 2 instances.
MIN_SHIFTING_INSTANCES = 2
CAPTURE_MODES = ("sagemaker", "container")
SERVING_MODES = ("instances", "serverless")
SERVERLESS_MEMORY_SIZES = (1024, 2048, 3072, 4096, 5120, 6144)


@dataclass(frozen=True)
class NetworkConfig:
    """The job subnets and security groups the endpoint model and the monitoring job run in."""

    subnet_ids: tuple[str, ...]
    security_group_ids: tuple[str, ...]


@dataclass(frozen=True)
class TrafficShift:
    """Blue/green traffic shifting: `canary` (one step of `percent`, then the rest) or `linear` steps."""

    strategy: str  # "canary" | "linear"
    percent: int  # canary size or linear step, % of the green fleet's capacity
    wait_seconds: int  # baking time between steps
    termination_wait_seconds: int  # keep the blue fleet this long after the full shift
    rollback_alarms: tuple[str, ...]


@dataclass(frozen=True)
class ServerlessConfig:
    """Serverless serving: the memory size and the maximum concurrency of the endpoint."""

    memory_mb: int  # one of SERVERLESS_MEMORY_SIZES
    max_concurrency: int


@dataclass(frozen=True)
class AbTestConfig:
    """Champion/challenger variants: the challenger's initial share of requests and its fleet."""

    challenger_percent: int  # 1-99
    challenger_instance_count: int


@dataclass(frozen=True)
class MonitoringConfig:
    """The optional Model Monitor schedule: its name, cron, image, role, output and resources."""

    schedule_name: str
    schedule_cron: str
    image_uri: str
    role_arn: str
    output_s3_uri: str
    instance_type: str
    volume_gb: int
    max_runtime_seconds: int


@dataclass(frozen=True)
class DeployConfig:
    """The validated environment of the function: the endpoint, how it serves and captures, and where."""

    group_name: str
    endpoint_name: str
    model_role_arn: str
    network: NetworkConfig
    kms_key_arn: str
    capture_s3_uri: str  # the capture root; captures land under <root><endpoint>/<variant>/yyyy/mm/dd/hh/
    capture_percent: int
    capture_mode: str  # one of CAPTURE_MODES
    instance_type: str
    instance_count: int
    traffic: TrafficShift
    monitoring: MonitoringConfig | None  # None: no Model Monitor schedule (the default, any account)
    artifacts_bucket: str
    champion_prefix: str  # key prefix in the artifacts bucket, ends with "/"
    serverless: ServerlessConfig | None = None  # None: instance-based endpoint
    ab_test: AbTestConfig | None = None  # None: one variant serves the newest approved version


def _serverless(read: EnvReader, capture_mode: str, monitored: bool) -> ServerlessConfig | None:
    """The serverless sizes, or None for instances; AWS's serverless exclusions are refused by name."""
    if read.choice(ENV_SERVING_MODE, SERVING_MODES, "instances") != "serverless":
        return None
    memory = read.integer(ENV_SERVERLESS_MEMORY, 1024, 6144, default=2048)
    if memory not in SERVERLESS_MEMORY_SIZES:
        read.problems.append(f"{ENV_SERVERLESS_MEMORY}: must be a whole number of GB in MB (got {memory})")
    if capture_mode != "container":
        read.problems.append(
            f"{ENV_CAPTURE_MODE}: serverless endpoints have no data capture (got {capture_mode!r})"
        )
    if monitored:
        read.problems.append(
            f"{ENV_USE_MODEL_MONITOR}: Model Monitor needs data capture, absent on serverless"
        )
    return ServerlessConfig(memory, read.integer(ENV_SERVERLESS_CONCURRENCY, 1, 200, default=5))


def _ab_test(read: EnvReader, serverless: bool) -> AbTestConfig | None:
    if not read.flag(ENV_AB_ENABLED, default=False):
        return None
    if serverless:
        read.problems.append(
            f"{ENV_AB_ENABLED}: a serverless endpoint holds one production variant, so it cannot A/B test"
        )
    return AbTestConfig(
        challenger_percent=read.integer(ENV_AB_CHALLENGER_PERCENT, 1, 99, default=50),
        challenger_instance_count=_challenger_instances(read),
    )


def _challenger_instances(read: EnvReader) -> int:
    # A later approval replaces the challenger with a guarded (canary or linear) update of its variant.
    count = read.integer(ENV_AB_CHALLENGER_INSTANCES, 1, 100, default=MIN_SHIFTING_INSTANCES)
    if count < MIN_SHIFTING_INSTANCES:
        read.problems.append(
            f"{ENV_AB_CHALLENGER_INSTANCES}: must be at least {MIN_SHIFTING_INSTANCES}, because replacing "
            "the challenger shifts its variant's traffic by canary or linear steps of at most 50 % of its "
            f"instances (got {count})"
        )
    return count


def _traffic(read: EnvReader, instance_count: int, serverless: bool = False) -> TrafficShift:
    strategy = read.choice(ENV_STRATEGY, ("canary", "linear"), "canary")
    # SageMaker: a canary must be <= 50 % of the green fleet, a linear step 10-50 %.
    low = 10 if strategy == "linear" else 1
    percent = read.integer(ENV_TRAFFIC_PERCENT, low, 50, default=10)
    if instance_count < MIN_SHIFTING_INSTANCES and not serverless:
        read.problems.append(
            f"{ENV_INSTANCE_COUNT}: {strategy} shifting needs at least {MIN_SHIFTING_INSTANCES} instances, "
            f"because the first step may hold at most 50 % of the green fleet (got {instance_count})"
        )
    return TrafficShift(
        strategy=strategy,
        percent=percent,
        wait_seconds=read.integer(ENV_TRAFFIC_WAIT, 0, 3600, default=600),
        termination_wait_seconds=read.integer(ENV_TERMINATION_WAIT, 0, 3600, default=300),
        rollback_alarms=read.items(ENV_ALARMS, re.compile(r"^\S.{0,254}$"), 1, 10),
    )


def _monitoring(read: EnvReader) -> MonitoringConfig:
    return MonitoringConfig(
        schedule_name=read.text(ENV_SCHEDULE, NAME_PATTERN),
        schedule_cron=read.text(ENV_SCHEDULE_CRON, CRON_PATTERN, default="cron(0 * ? * * *)"),
        image_uri=read.text(
            ENV_MONITOR_IMAGE, re.compile(r"^\d{12}\.dkr\.ecr\.[a-z0-9-]+\.amazonaws\.com(\.cn)?/.+")
        ),
        role_arn=read.text(ENV_MONITOR_ROLE, ROLE_ARN_PATTERN),
        output_s3_uri=read.text(ENV_MONITOR_OUTPUT, S3_URI_PATTERN),
        instance_type=read.text(ENV_MONITOR_INSTANCE_TYPE, INSTANCE_TYPE_PATTERN, default="ml.m5.large"),
        volume_gb=read.integer(ENV_MONITOR_VOLUME_GB, 1, 16384, default=20),
        # An hourly schedule's job must end within the hour.
        max_runtime_seconds=read.integer(ENV_MONITOR_MAX_RUNTIME, 60, 3600, default=1800),
    )


def load_config(environ: Mapping[str, str]) -> DeployConfig:
    """Validate the environment into a `DeployConfig`; raise `ConfigError` naming every bad variable."""
    read = EnvReader(environ)
    instance_count = read.integer(ENV_INSTANCE_COUNT, 1, 100, default=2)
    prefix = read.text(ENV_CHAMPION_PREFIX, re.compile(r"^[\w./-]+/$"), default="champion/")
    capture_mode = read.choice(ENV_CAPTURE_MODE, CAPTURE_MODES, "sagemaker")
    monitored = read.flag(ENV_USE_MODEL_MONITOR, default=False)
    serverless = _serverless(read, capture_mode, monitored)
    config = DeployConfig(
        group_name=read.text(ENV_GROUP, NAME_PATTERN),
        endpoint_name=read.text(ENV_ENDPOINT, NAME_PATTERN),
        model_role_arn=read.text(ENV_MODEL_ROLE, ROLE_ARN_PATTERN),
        network=NetworkConfig(
            subnet_ids=read.items(ENV_SUBNETS, SUBNET_PATTERN, 1, 16),
            security_group_ids=read.items(ENV_SECURITY_GROUPS, SECURITY_GROUP_PATTERN, 1, 5),
        ),
        kms_key_arn=read.text(ENV_KMS_KEY, KMS_ARN_PATTERN),
        capture_s3_uri=read.text(ENV_CAPTURE_URI, S3_URI_PATTERN),
        capture_percent=read.integer(ENV_CAPTURE_PERCENT, 1, 100, default=20),
        capture_mode=capture_mode,
        instance_type=read.text(ENV_INSTANCE_TYPE, INSTANCE_TYPE_PATTERN, default="ml.m5.large"),
        instance_count=instance_count,
        traffic=_traffic(read, instance_count, serverless is not None),
        # The schedule's variables are read (and required) only when Model Monitor is in use.
        monitoring=_monitoring(read) if monitored else None,
        artifacts_bucket=read.text(ENV_ARTIFACTS_BUCKET, BUCKET_PATTERN),
        champion_prefix=prefix,
        serverless=serverless,
        ab_test=_ab_test(read, serverless is not None),
    )
    read.check("deploy-on-approval")
    return config
