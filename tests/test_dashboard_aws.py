"""The dashboard's AWS source: SageMaker and S3 through moto, CloudWatch through botocore's Stubber.

moto holds a deployed-looking account (the project's model package group with two versions whose
evaluation reports are in S3, the endpoint whose config carries the deploy function's version tag, both
pipelines with executions); the CloudWatch calls are checked request by request with a Stubber on a real
client, including units (ModelLatency is in microseconds). Missing resources are empty answers, AWS errors
one line naming the call, and the page on an empty account shows the AWS hints.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import boto3
import pytest
from botocore.stub import Stubber
from moto import mock_aws
from streamlit.testing.v1 import AppTest

from dashboard.aws_source import (
    DAY,
    HOUR,
    MODEL_MONITOR_DRIFT_NAMESPACE,
    PIPELINE_DRIFT_NAMESPACE,
    QUALITY_NAMESPACE,
    SAGEMAKER_NAMESPACE,
    VARIANT_NAME,
    VERSION_TAG,
    AwsSource,
    AwsTargets,
)
from dashboard.sources import MAX_PSI, MONITORING, PHM08_SCORE, RMSE, TRAINING, SourceError
from settings import Settings

REGION = "eu-west-1"
ROLE = "arn:aws:iam::123456789012:role/pipeline"
BUCKET = "artifacts"
NOW = datetime(2026, 11, 25, 14, 30, tzinfo=UTC)
SETTINGS = Settings()
TARGETS = AwsTargets.from_settings(SETTINGS)


def clients() -> dict:
    return {name: boto3.client(name, region_name=REGION) for name in ("sagemaker", "cloudwatch", "s3")}


def source(made: dict) -> AwsSource:
    return AwsSource(TARGETS, made["sagemaker"], made["cloudwatch"], made["s3"], now=lambda: NOW)


def register(made: dict, rmse: float, status: str) -> str:
    key = f"registry/run-{rmse:g}/evaluation.json"
    evaluation = {"regression_metrics": {"rmse": {"value": rmse}, "phm08_score": {"value": rmse * 3}}}
    made["s3"].put_object(Bucket=BUCKET, Key=key, Body=json.dumps(evaluation).encode())
    image = f"123456789012.dkr.ecr.{REGION}.amazonaws.com/turbofan-rul:1"
    return made["sagemaker"].create_model_package(
        ModelPackageGroupName=TARGETS.model_package_group,
        ModelApprovalStatus=status,
        InferenceSpecification={
            "Containers": [{"Image": image, "ModelDataUrl": f"s3://{BUCKET}/models/model.tar.gz"}],
            "SupportedContentTypes": ["text/csv"],
            "SupportedResponseMIMETypes": ["application/json"],
        },
        ModelMetrics={
            "ModelQuality": {
                "Statistics": {"ContentType": "application/json", "S3Uri": f"s3://{BUCKET}/{key}"}
            }
        },
        CustomerMetadataProperties={"DataVersion": f"data-{rmse:g}"},
    )["ModelPackageArn"]


def deploy(made: dict, version: int) -> None:
    """What the deploy-on-approval function leaves: a model, a tagged endpoint config, the endpoint."""
    sagemaker = made["sagemaker"]
    sagemaker.create_model(ModelName="model-v1", ExecutionRoleArn=ROLE, PrimaryContainer={"Image": "image"})
    variant = {"VariantName": VARIANT_NAME, "ModelName": "model-v1", "InstanceType": "ml.m5.large"}
    sagemaker.create_endpoint_config(
        EndpointConfigName="config-v1",
        ProductionVariants=[{**variant, "InitialInstanceCount": 1}],
        Tags=[{"Key": VERSION_TAG, "Value": str(version)}],
    )
    sagemaker.create_endpoint(EndpointName=TARGETS.endpoint, EndpointConfigName="config-v1")


@pytest.fixture
def account():
    with mock_aws():
        made = clients()
        made["s3"].create_bucket(Bucket=BUCKET, CreateBucketConfiguration={"LocationConstraint": REGION})
        yield made


def test_registry_versions_carry_their_evaluation_and_the_serving_tag(account):
    account["sagemaker"].create_model_package_group(ModelPackageGroupName=TARGETS.model_package_group)
    register(account, 12.5, "Approved")
    register(account, 19.0, "Rejected")
    deploy(account, 1)
    versions = source(account).model_versions()
    assert [(v.version, v.approval_status, v.rmse, v.phm08_score, v.serving) for v in versions] == [
        (2, "Rejected", 19.0, 57.0, False),
        (1, "Approved", 12.5, 37.5, True),
    ]
    assert versions[1].data_version == "data-12.5"


def test_a_version_whose_report_is_gone_is_listed_without_metrics(account):
    account["sagemaker"].create_model_package_group(ModelPackageGroupName=TARGETS.model_package_group)
    register(account, 12.5, "PendingManualApproval")
    account["s3"].delete_object(Bucket=BUCKET, Key="registry/run-12.5/evaluation.json")
    [version] = source(account).model_versions()
    assert (version.rmse, version.phm08_score, version.serving) == (None, None, False)  # no endpoint


def test_executions_of_both_pipelines_with_status_and_duration(account):
    definition = json.dumps({"Version": "2020-12-01", "Steps": []})
    started = {}
    for name in (TARGETS.pipeline, TARGETS.monitoring_pipeline):
        account["sagemaker"].create_pipeline(PipelineName=name, PipelineDefinition=definition, RoleArn=ROLE)
        started[name] = account["sagemaker"].start_pipeline_execution(PipelineName=name)[
            "PipelineExecutionArn"
        ]
    executions = source(account).executions()
    assert sorted(e.pipeline for e in executions) == [MONITORING, TRAINING]
    training = next(e for e in executions if e.pipeline == TRAINING)
    assert training.execution_id == started[TARGETS.pipeline].rsplit("/", 1)[-1]
    assert training.status == "Succeeded" and training.seconds is not None and training.seconds >= 0


def test_nothing_deployed_is_empty_not_an_error(account):
    empty = source(account)
    assert empty.model_versions() == [] and empty.executions() == [] and empty.serving_version() is None


def test_aws_errors_name_the_call():
    made = {name: boto3.client(name, region_name=REGION) for name in ("sagemaker", "cloudwatch", "s3")}
    with Stubber(made["sagemaker"]) as stub:
        stub.add_client_error("list_model_packages", "AccessDeniedException", "not allowed")
        with pytest.raises(SourceError, match=r"^list_model_packages: AccessDeniedException: not allowed$"):
            source(made).model_versions()


# -- CloudWatch --------------------------------------------------------------------------------------------
def metric(namespace: str, name: str, stat: str, period: int, **dimensions: str) -> dict:
    listed = [{"Name": key, "Value": value} for key, value in dimensions.items()]
    return {
        "Metric": {"Namespace": namespace, "MetricName": name, "Dimensions": listed},
        "Stat": stat,
        "Period": period,
    }


def expect_data(stub: Stubber, queries: dict[str, dict], hours: int, results: dict[str, list]) -> None:
    request = {
        "MetricDataQueries": [
            {"Id": key, "MetricStat": stat, "ReturnData": True} for key, stat in queries.items()
        ],
        "StartTime": NOW - timedelta(hours=hours),
        "EndTime": NOW,
        "ScanBy": "TimestampAscending",
    }
    answer = [
        {
            "Id": key,
            "Timestamps": [t for t, _ in points],
            "Values": [v for _, v in points],
            "StatusCode": "Complete",
        }
        for key, points in results.items()
    ]
    stub.add_response("get_metric_data", {"MetricDataResults": answer}, request)


@pytest.fixture
def cloudwatch():
    made = {name: boto3.client(name, region_name=REGION) for name in ("sagemaker", "cloudwatch", "s3")}
    with Stubber(made["cloudwatch"]) as stub:
        yield made, stub
        stub.assert_no_pending_responses()


def test_drift_is_the_newest_feature_psi_of_each_listed_feature(cloudwatch):
    made, stub = cloudwatch
    endpoint = TARGETS.endpoint
    listed = [
        {
            "Namespace": PIPELINE_DRIFT_NAMESPACE,
            "MetricName": "FeaturePSI",
            "Dimensions": [{"Name": "Endpoint", "Value": endpoint}, {"Name": "Feature", "Value": name}],
        }
        for name in ("sensor_4", "sensor_11")
    ]
    filters = {
        "Namespace": PIPELINE_DRIFT_NAMESPACE,
        "MetricName": "FeaturePSI",
        "Dimensions": [{"Name": "Endpoint", "Value": endpoint}],
    }
    stub.add_response("list_metrics", {"Metrics": listed}, filters)
    queries = {
        f"f{i}": metric(
            PIPELINE_DRIFT_NAMESPACE, "FeaturePSI", "Maximum", HOUR, Endpoint=endpoint, Feature=name
        )
        for i, name in enumerate(("sensor_11", "sensor_4"))
    }
    early, late = NOW - timedelta(hours=2), NOW - timedelta(hours=1)
    expect_data(
        stub, queries, 24 * 7, {"f0": [(early, 0.05), (late, 0.07)], "f1": [(early, 0.4), (late, 0.31)]}
    )
    snapshot = source(made).drift()
    assert snapshot.measured_at == late
    assert [(f.feature, f.psi) for f in snapshot.features] == [("sensor_11", 0.07), ("sensor_4", 0.31)]


def test_no_feature_metrics_means_no_drift_yet(cloudwatch):
    made, stub = cloudwatch
    stub.add_response("list_metrics", {"Metrics": []})
    assert source(made).drift() is None


def test_history_daily_invocations_and_latency_in_milliseconds(cloudwatch):
    made, stub = cloudwatch
    endpoint = TARGETS.endpoint
    history = {
        "maxpsi": metric(PIPELINE_DRIFT_NAMESPACE, MAX_PSI, "Maximum", HOUR, Endpoint=endpoint),
        "drifted": metric(PIPELINE_DRIFT_NAMESPACE, "DriftedFeatures", "Maximum", HOUR, Endpoint=endpoint),
        "rmse": metric(QUALITY_NAMESPACE, RMSE, "Average", HOUR, Endpoint=endpoint),
        "phm08": metric(QUALITY_NAMESPACE, PHM08_SCORE, "Average", HOUR, Endpoint=endpoint),
    }
    hour = NOW - timedelta(hours=1)
    expect_data(
        stub, history, 24 * 7, {"maxpsi": [(hour, 0.3)], "rmse": [(hour, 21.0)], "drifted": [], "phm08": []}
    )
    variant = {"EndpointName": endpoint, "VariantName": VARIANT_NAME}
    day = datetime(2026, 11, 24, tzinfo=UTC)
    daily = {"invocations": metric(SAGEMAKER_NAMESPACE, "Invocations", "Sum", DAY, **variant)}
    expect_data(stub, daily, 24 * 7, {"invocations": [(day, 120.0), (day + timedelta(days=1), 80.0)]})
    latency = {"latency": metric(SAGEMAKER_NAMESPACE, "ModelLatency", "p99", HOUR, **variant)}
    expect_data(stub, latency, 24, {"latency": [(hour, 35_000.0)]})
    aws = source(made)
    assert {(p.metric, p.value) for p in aws.monitoring_history()} == {(MAX_PSI, 0.3), (RMSE, 21.0)}
    assert [(d.day.isoformat(), d.predictions) for d in aws.daily_predictions()] == [
        ("2026-11-24", 120),
        ("2026-11-25", 80),
    ]
    assert aws.latency_ms() == 35.0


def test_get_metric_data_pages_are_followed(cloudwatch):
    made, stub = cloudwatch
    latency = {
        "latency": metric(
            SAGEMAKER_NAMESPACE,
            "ModelLatency",
            "p99",
            HOUR,
            EndpointName=TARGETS.endpoint,
            VariantName=VARIANT_NAME,
        )
    }
    first = [
        {
            "Id": "latency",
            "Timestamps": [NOW - timedelta(hours=2)],
            "Values": [10_000.0],
            "StatusCode": "PartialData",
        }
    ]
    request = {
        "MetricDataQueries": [{"Id": "latency", "MetricStat": latency["latency"], "ReturnData": True}],
        "StartTime": NOW - timedelta(hours=24),
        "EndTime": NOW,
        "ScanBy": "TimestampAscending",
    }
    stub.add_response("get_metric_data", {"MetricDataResults": first, "NextToken": "page-2"}, request)
    second = [
        {
            "Id": "latency",
            "Timestamps": [NOW - timedelta(hours=1)],
            "Values": [20_000.0],
            "StatusCode": "Complete",
        }
    ]
    stub.add_response("get_metric_data", {"MetricDataResults": second}, {**request, "NextToken": "page-2"})
    assert source(made).latency_ms() == 20.0


# -- names shared with the stacks and the deploy function ---------------------------------------------------
def test_metric_names_match_what_the_stacks_watch():
    from lambdas.deploy_on_approval.resources import TAG_VERSION
    from stacks import monitoring_dashboard as stacks

    assert (SAGEMAKER_NAMESPACE, QUALITY_NAMESPACE, VARIANT_NAME) == (
        stacks.SAGEMAKER_NAMESPACE,
        stacks.QUALITY_NAMESPACE,
        stacks.VARIANT_NAME,
    )
    assert (PIPELINE_DRIFT_NAMESPACE, MODEL_MONITOR_DRIFT_NAMESPACE) == (
        stacks.PIPELINE_DRIFT_NAMESPACE,
        stacks.MODEL_MONITOR_DRIFT_NAMESPACE,
    )
    assert {MAX_PSI, "DriftedFeatures"} == set(stacks.DRIFT_METRICS) and {RMSE, PHM08_SCORE} == set(
        stacks.QUALITY_METRICS
    )
    assert TARGETS.drift_namespace == stacks.drift_namespace(SETTINGS.monitoring)
    monitored = Settings.model_validate({"monitoring": {"use_model_monitor": True}})
    assert AwsTargets.from_settings(monitored).drift_namespace == stacks.drift_namespace(monitored.monitoring)
    assert VERSION_TAG == TAG_VERSION


# -- the page ------------------------------------------------------------------------------------------------
def run_dashboard(argv: list[str]) -> None:
    from dashboard.app import main

    main(argv)


def test_the_page_on_an_account_with_nothing_deployed_shows_the_aws_hints(monkeypatch):
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    with mock_aws():
        at = AppTest.from_function(
            run_dashboard, args=(["--source", "aws", "--region", REGION],), default_timeout=60
        )
        at.run()
    assert not at.exception and not at.error, [error.value for error in at.error]
    hints = " ".join(info.value for info in at.info)
    assert "No executions of the training or monitoring pipeline yet" in hints
    assert "No model package in the group yet" in hints and "No FeaturePSI metrics in CloudWatch yet" in hints
    assert f"endpoint {TARGETS.endpoint}" in at.caption[0].value
