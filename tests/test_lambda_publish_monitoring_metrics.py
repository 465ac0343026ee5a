"""The monitoring path of the metrics function: a finished monitoring execution's metrics -> CloudWatch.

The metrics files are written by the jobs' own writer (`drift.emit_metrics` with the `file` target), put
into moto's S3 under the execution's report prefix; moto's CloudWatch is read back with list_metrics.
"""

from __future__ import annotations

from datetime import UTC, datetime

import boto3
import pytest
from moto import mock_aws

import drift
import model_quality
from lambdas.publish_model_metrics import handler as publisher
from lambdas.publish_model_metrics import monitoring
from pipeline_steps import monitoring_names as mnames

REGION = "eu-west-1"
ACCOUNT = "111111111111"
PIPELINE = "turbofan-rul-test-monitoring"
BUCKET = "turbofan-rul-test-artifacts-111111111111-eu-west-1"
EXECUTION_ID = "m0n1t0r1ng42"
EXECUTION_ARN = f"arn:aws:sagemaker:{REGION}:{ACCOUNT}:pipeline/{PIPELINE}/execution/{EXECUTION_ID}"
ENVIRONMENT = {
    "PIPELINE_NAME": "turbofan-rul-test-training",
    "METRICS_NAMESPACE": model_quality.NAMESPACE,
    monitoring.ENV_PIPELINE: PIPELINE,
    monitoring.ENV_BUCKET: BUCKET,
    monitoring.ENV_PREFIX: "monitoring/",
    monitoring.ENV_NAMESPACES: f"{drift.NAMESPACE},{model_quality.NAMESPACE}",
}
NOW = datetime.now(UTC).replace(microsecond=0)


def finished(status: str = "Succeeded", arn: str = EXECUTION_ARN) -> dict:
    return {
        "source": "aws.sagemaker",
        "detail-type": "SageMaker Model Building Pipeline Execution Status Change",
        "time": NOW.strftime("%Y-%m-%dT%H:%M:%SZ"),
        "detail": {
            "pipelineArn": arn.split("/execution/")[0],
            "pipelineExecutionArn": arn,
            "currentPipelineExecutionStatus": status,
        },
    }


def metrics_file(tmp_path, name: str, namespace: str, data: list[dict], extra: str = "") -> bytes:
    path = tmp_path / name / mnames.METRICS_FILE
    drift.emit_metrics("file", namespace, data, path)
    return path.read_bytes() + extra.encode()


@pytest.fixture
def aws(monkeypatch, tmp_path):
    for name, value in {**ENVIRONMENT, "AWS_DEFAULT_REGION": REGION}.items():
        monkeypatch.setenv(name, value)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    with mock_aws():
        s3 = boto3.client("s3", region_name=REGION)
        s3.create_bucket(Bucket=BUCKET, CreateBucketConfiguration={"LocationConstraint": REGION})
        endpoint = {"Endpoint": "turbofan-rul-test-rul"}
        drift_data = [
            drift.metric_datum("MaxPSI", 0.43, endpoint, NOW),
            drift.metric_datum("DriftedFeatures", 12, endpoint, NOW, "Count"),
        ]
        quality_data = [drift.metric_datum("RMSE", 17.5, endpoint, NOW)]
        prefix = f"monitoring/{EXECUTION_ID}"
        s3.put_object(
            Bucket=BUCKET,
            Key=f"{prefix}/{mnames.DRIFT_STEP}/report/{mnames.METRICS_FILE}",
            Body=metrics_file(tmp_path, "d", drift.NAMESPACE, drift_data),
        )
        s3.put_object(
            Bucket=BUCKET,
            Key=f"{prefix}/{mnames.QUALITY_STEP}/report/{mnames.METRICS_FILE}",
            Body=metrics_file(
                tmp_path, "q", model_quality.NAMESPACE, quality_data, '{"Namespace": "Other"}\n'
            ),
        )
        s3.put_object(Bucket=BUCKET, Key=f"{prefix}/{mnames.DRIFT_STEP}/report/drift_report.json", Body=b"{}")
        yield s3, boto3.client("cloudwatch", region_name=REGION)


def published(cloudwatch) -> dict[str, set[str]]:
    found: dict[str, set[str]] = {}
    for metric in cloudwatch.list_metrics()["Metrics"]:
        if metric["Namespace"].startswith("AWS/"):  # moto's own S3 storage metrics
            continue
        found.setdefault(metric["Namespace"], set()).add(metric["MetricName"])
    return found


def test_the_drift_jobs_metrics_file_is_the_one_the_function_reads():
    assert drift.METRICS_FILE == mnames.METRICS_FILE  # the container cannot import the pipeline's names


@pytest.mark.parametrize("status", ["Succeeded", "Failed"])
def test_drift_and_quality_metrics_are_published(aws, status):
    _, cloudwatch = aws
    result = publisher.handler(finished(status))
    assert result["action"] == "published" and result["requests"] == 2 and result["metrics"] == 3
    assert len(result["files"]) == 2
    (bad,) = result["skipped_lines"]
    assert f"{mnames.QUALITY_STEP}/report/{mnames.METRICS_FILE}:2" in bad and "namespace" in bad
    assert published(cloudwatch) == {
        drift.NAMESPACE: {"MaxPSI", "DriftedFeatures"},
        model_quality.NAMESPACE: {"RMSE"},
    }


def test_an_execution_without_metrics_is_skipped(aws):
    _, cloudwatch = aws
    other = EXECUTION_ARN.replace(EXECUTION_ID, "emptyexec01")
    result = publisher.handler(finished(arn=other))
    assert result["action"] == "skipped" and result["files"] == []
    assert published(cloudwatch) == {}


def test_running_executions_and_other_pipelines_are_not_monitoring_events():
    config = monitoring.load_monitoring_config(ENVIRONMENT)
    assert monitoring.monitoring_execution(finished("Executing"), config) is None
    training = EXECUTION_ARN.replace(PIPELINE, "turbofan-rul-test-training")
    assert monitoring.monitoring_execution(finished(arn=training), config) is None
    assert monitoring.monitoring_execution(finished(), config) == (EXECUTION_ID, "Succeeded")
    assert monitoring.load_monitoring_config({}) is None


def test_bad_configuration_names_the_variable():
    with pytest.raises(ValueError, match=monitoring.ENV_PREFIX):
        monitoring.load_monitoring_config({**ENVIRONMENT, monitoring.ENV_PREFIX: "no-slash"})


@pytest.mark.parametrize(
    ("line", "problem"),
    [('{"Namespace": "TurbofanRul/Drift", "MetricData": []}', "non-empty"),
     ('{"Namespace": "TurbofanRul/Drift", "MetricData": [{"Value": NaN, "Timestamp": "2026"}]}', "finite"),
     ("not json", "Expecting value")],
)  # fmt: skip
def test_malformed_requests_are_rejected(line, problem):
    with pytest.raises(ValueError, match=problem):
        monitoring.parse_request(line, (drift.NAMESPACE,))
