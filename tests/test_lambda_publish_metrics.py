"""The model-metrics Lambda (`lambdas/publish_model_metrics`): an execution's evaluation -> CloudWatch.

moto (`mock_aws`) serves S3 and CloudWatch (read back with list_metrics and get_metric_statistics); moto has
no ListPipelineExecutionSteps, so the SageMaker client is a `botocore.stub.Stubber` that also checks the
exact requests. A stubber with no queued response fails any call, so "no call" is checked for free.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import boto3
import pytest
from botocore.stub import Stubber
from moto import mock_aws

from lambdas.publish_model_metrics import handler as publisher
from pipeline_steps import names
from stacks.monitoring_dashboard import QUALITY_NAMESPACE

REGION = "eu-west-1"
ACCOUNT = "111111111111"
PIPELINE = "turbofan-rul-test-training"
BUCKET = "turbofan-rul-test-artifacts-111111111111-eu-west-1"
EXECUTION_ID = "abc123def456"
EXECUTION_ARN = f"arn:aws:sagemaker:{REGION}:{ACCOUNT}:pipeline/{PIPELINE}/execution/{EXECUTION_ID}"
JOB_NAME = f"pipelines-{EXECUTION_ID}-EvaluateModel-x1y2z3"
JOB_ARN = f"arn:aws:sagemaker:{REGION}:{ACCOUNT}:processing-job/{JOB_NAME}"
OUTPUT_URI = f"s3://{BUCKET}/{PIPELINE}/{EXECUTION_ID}/EvaluateModel/evaluation"
EVALUATION_KEY = f"{PIPELINE}/{EXECUTION_ID}/EvaluateModel/evaluation/evaluation.json"
ENVIRONMENT = {"PIPELINE_NAME": PIPELINE, "METRICS_NAMESPACE": QUALITY_NAMESPACE}
EVALUATION = {
    "regression_metrics": {
        "rmse": {"value": 17.25, "standard_deviation": 1.1},
        "mae": {"value": 12.5, "standard_deviation": 0.9},
        "r2": {"value": 0.81, "standard_deviation": 0.02},
        "phm08_score": {"value": 612.0, "standard_deviation": 80.0},
    },
    "capped_truth_metrics": {
        "rmse": {"value": 14.75, "standard_deviation": 1.0},
        "mae": {"value": 10.0, "standard_deviation": 0.8},
        "r2": {"value": 0.85, "standard_deviation": 0.02},
        "phm08_score": {"value": 420.0, "standard_deviation": 60.0},
        "phm08_score_per_100_units": {"value": 84.0},
    },
    "gate": {"passed": True, "summary": "ok"},
}


def status_event(status: str = "Succeeded", pipeline: str = PIPELINE, when: datetime | None = None) -> dict:
    when = when or datetime.now(UTC).replace(microsecond=0)
    return {
        "version": "0",
        "id": "315c1398-40ff-a850-213b-158f73e60175",
        "detail-type": "SageMaker Model Building Pipeline Execution Status Change",
        "source": "aws.sagemaker",
        "account": ACCOUNT,
        "time": when.strftime("%Y-%m-%dT%H:%M:%SZ"),
        "region": REGION,
        "resources": [f"arn:aws:sagemaker:{REGION}:{ACCOUNT}:pipeline/{pipeline}"],
        "detail": {
            # SageMaker lower-cases names in ARNs.
            "pipelineArn": f"arn:aws:sagemaker:{REGION}:{ACCOUNT}:pipeline/{pipeline.lower()}",
            "pipelineExecutionArn": EXECUTION_ARN,
            "pipelineExecutionDisplayName": "newdata-1234",
            "currentPipelineExecutionStatus": status,
            "previousPipelineExecutionStatus": "Executing",
            "executionStartTime": "2026-11-02T12:00:00Z",
            "executionEndTime": "2026-11-02T13:00:00Z",
        },
    }


def step(name: str, status: str = "Succeeded", metadata: dict | None = None) -> dict:
    return {"StepName": name, "StepStatus": status, "Metadata": metadata or {}}


def evaluate_step(status: str = "Succeeded") -> dict:
    return step(names.EVALUATE_STEP, status, {"ProcessingJob": {"Arn": JOB_ARN}})


REGISTERED_STEPS = [
    step(names.PREPROCESS_STEP),
    step(names.TUNE_STEP),
    evaluate_step(),
    step(names.GATE_STEP, metadata={"Condition": {"Outcome": "True"}}),
    step(names.REGISTER_STEP_JSON_NAME, metadata={"RegisterModel": {"Arn": "arn:aws:sagemaker:x"}}),
]
GATE_FAILED_STEPS = [
    step(names.PREPROCESS_STEP),
    evaluate_step(),
    step(names.GATE_STEP, metadata={"Condition": {"Outcome": "False"}}),
    step(names.FAIL_STEP, "Failed"),
]


def processing_job() -> dict:
    return {
        "ProcessingJobName": JOB_NAME,
        "ProcessingJobArn": JOB_ARN,
        "ProcessingJobStatus": "Completed",
        "CreationTime": datetime(2026, 11, 2, 12, 30, tzinfo=UTC),
        "AppSpecification": {
            "ImageUri": f"{ACCOUNT}.dkr.ecr.{REGION}.amazonaws.com/turbofan@sha256:" + "a" * 64
        },
        "ProcessingResources": {
            "ClusterConfig": {"InstanceCount": 1, "InstanceType": "ml.m5.large", "VolumeSizeInGB": 30}
        },
        "StoppingCondition": {"MaxRuntimeInSeconds": 3600},
        "ProcessingOutputConfig": {
            "Outputs": [
                {
                    "OutputName": names.EVALUATION_OUTPUT,
                    "S3Output": {
                        "S3Uri": OUTPUT_URI,
                        "LocalPath": "/opt/ml/processing/evaluation",
                        "S3UploadMode": "EndOfJob",
                    },
                }
            ]
        },
    }


@pytest.fixture
def aws():
    with mock_aws():
        s3 = boto3.client("s3", region_name=REGION)
        s3.create_bucket(Bucket=BUCKET, CreateBucketConfiguration={"LocationConstraint": REGION})
        sagemaker = boto3.client("sagemaker", region_name=REGION)
        with Stubber(sagemaker) as stubber:
            yield {
                "s3": s3,
                "cloudwatch": boto3.client("cloudwatch", region_name=REGION),
                "sagemaker": sagemaker,
                "stubber": stubber,
            }
            stubber.assert_no_pending_responses()


def expect_steps(aws, steps: list[dict], with_job: bool = True) -> None:
    stubber = aws["stubber"]
    stubber.add_response(
        "list_pipeline_execution_steps",
        {"PipelineExecutionSteps": steps},
        {"PipelineExecutionArn": EXECUTION_ARN},
    )
    if with_job:
        stubber.add_response("describe_processing_job", processing_job(), {"ProcessingJobName": JOB_NAME})


def put_evaluation(aws, body: str | None = None) -> None:
    aws["s3"].put_object(Bucket=BUCKET, Key=EVALUATION_KEY, Body=body or json.dumps(EVALUATION))


def run(aws, event) -> dict:
    config = publisher.load_config(ENVIRONMENT)
    return publisher.run(
        event, config, aws["sagemaker"], aws["s3"], aws["cloudwatch"], lambda: datetime.now(UTC)
    )


def published(aws) -> dict[str, float]:
    """Every datapoint in the namespace, by metric name (one datapoint each), checking the dimension."""
    cloudwatch = aws["cloudwatch"]
    values = {}
    for metric in cloudwatch.list_metrics(Namespace=QUALITY_NAMESPACE)["Metrics"]:
        assert metric["Dimensions"] == [{"Name": "PipelineName", "Value": PIPELINE}]
        now = datetime.now(UTC)
        stats = cloudwatch.get_metric_statistics(
            Namespace=QUALITY_NAMESPACE,
            MetricName=metric["MetricName"],
            Dimensions=metric["Dimensions"],
            StartTime=now - timedelta(hours=1),
            EndTime=now + timedelta(hours=1),
            Period=3600,
            Statistics=["Average", "SampleCount"],
        )
        (point,) = stats["Datapoints"]
        assert point["SampleCount"] == 1
        values[metric["MetricName"]] = point["Average"]
    return values


def test_succeeded_execution_publishes_its_evaluation(aws):
    expect_steps(aws, REGISTERED_STEPS)
    put_evaluation(aws)
    result = run(aws, status_event())
    assert result["action"] == "published", result
    assert result["evaluation_uri"] == f"s3://{BUCKET}/{EVALUATION_KEY}"
    assert result["registered"] is True
    assert published(aws) == {
        "RMSE": 17.25,
        "MAE": 12.5,
        "PHM08Score": 612.0,
        "RMSECappedTruth": 14.75,
        "PHM08ScorePer100Units": 84.0,
        "Registered": 1.0,
    }


def test_rejected_model_is_published_with_registered_zero(aws):
    """A failed quality gate ends the execution Failed (FailStep); its evaluation is still published."""
    expect_steps(aws, GATE_FAILED_STEPS)
    put_evaluation(aws)
    result = run(aws, status_event("Failed"))
    assert result["action"] == "published" and result["registered"] is False
    assert published(aws)["Registered"] == 0.0
    assert published(aws)["RMSE"] == 17.25


def test_execution_that_failed_before_the_evaluation_publishes_nothing(aws):
    expect_steps(aws, [step(names.PREPROCESS_STEP), evaluate_step("Failed")], with_job=False)
    result = run(aws, status_event("Failed"))
    assert result["action"] == "skipped"
    assert "EvaluateModel did not succeed" in result["reason"]
    assert published(aws) == {}


@pytest.mark.parametrize("status", ["Executing", "Stopped", "Stopping"])
def test_other_statuses_are_ignored_without_calls(aws, status):
    result = run(aws, status_event(status))
    assert result["action"] == "ignored" and status in result["reason"]
    assert published(aws) == {}


def test_other_pipelines_are_ignored_without_calls(aws):
    result = run(aws, status_event(pipeline="someone-elses-pipeline"))
    assert result["action"] == "ignored" and "someone-elses-pipeline" in result["reason"]
    assert published(aws) == {}


@pytest.mark.parametrize(
    "event",
    [
        None,
        "text",
        {},
        {**status_event(), "source": "aws.s3"},
        {**status_event(), "detail": "oops"},
        {**status_event(), "detail": {"pipelineArn": f"arn:aws:sagemaker:x:1:pipeline/{PIPELINE}"}},
    ],
)
def test_malformed_events_are_ignored_without_calls(aws, event):
    assert run(aws, event)["action"] == "ignored"
    assert published(aws) == {}


def test_missing_evaluation_file_is_skipped_with_its_uri(aws):
    expect_steps(aws, REGISTERED_STEPS)
    result = run(aws, status_event())
    assert result["action"] == "skipped"
    assert result["reason"] == f"s3://{BUCKET}/{EVALUATION_KEY} does not exist"
    assert published(aws) == {}


def test_evaluation_without_a_metric_is_skipped(aws):
    expect_steps(aws, REGISTERED_STEPS)
    put_evaluation(aws, json.dumps({"regression_metrics": EVALUATION["regression_metrics"]}))
    result = run(aws, status_event())
    assert result["action"] == "skipped" and "capped_truth_metrics.rmse.value" in result["reason"]
    assert published(aws) == {}


def test_handler_logs_and_raises_on_bad_configuration(monkeypatch, caplog):
    monkeypatch.delenv("PIPELINE_NAME", raising=False)
    monkeypatch.setenv("METRICS_NAMESPACE", "AWS/SageMaker")
    with pytest.raises(publisher.ConfigError) as error:
        publisher.handler(status_event())
    assert "PIPELINE_NAME" in str(error.value) and "METRICS_NAMESPACE" in str(error.value)
    (record,) = [r for r in caplog.records if r.name == "publish_model_metrics"]
    assert json.loads(record.getMessage())["action"] == "error"


def test_config_defaults_and_names_match_the_pipeline_definition():
    config = publisher.load_config(ENVIRONMENT)
    assert (config.evaluate_step, config.register_step) == (names.EVALUATE_STEP, names.REGISTER_STEP)
    assert names.REGISTER_STEP_JSON_NAME.startswith(names.REGISTER_STEP + "-")
    # The gate's figures are published under these names (the uncapped ones too, for comparison).
    assert ".".join(publisher.METRIC_PATHS["RMSECappedTruth"]) == names.RMSE_JSON_PATH
    assert ".".join(publisher.METRIC_PATHS["PHM08ScorePer100Units"]) == names.SCORE_JSON_PATH
