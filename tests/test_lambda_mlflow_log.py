"""The publish function's MLflow logging, against a real MLflow server on the loopback.

On AWS the function signs each MLflow REST call with SigV4 for `sagemaker-mlflow` and names the tracking
server in a header; a local `mlflow server` ignores both, so these tests check the signing on the prepared
request and the REST conversation on a real server: one run per execution (a retried event logs into the
same run), the metrics and tags, the run's end status, the experiment's kind; and that an MLflow failure
raises before anything is put into CloudWatch.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from datetime import UTC, datetime

import pytest
from botocore.credentials import ReadOnlyCredentials
from botocore.httpsession import URLLib3Session
from mlflow import MlflowClient
from test_lambda_publish_metrics import (  # noqa: F401  (the `aws` fixture)
    ENVIRONMENT,
    EXECUTION_ARN,
    REGISTERED_STEPS,
    aws,
    expect_steps,
    published,
    put_evaluation,
    status_event,
)

from lambdas.publish_model_metrics import handler as publisher
from lambdas.publish_model_metrics.mlflow_log import (
    ARN_HEADER,
    ENV_EXPERIMENT,
    ENV_TRACKING_SERVER_ARN,
    ENV_TRACKING_URL,
    EXECUTION_TAG,
    MlflowError,
    MlflowRestClient,
    load_target,
    log_execution,
)

SERVER_ARN = "arn:aws:sagemaker:eu-west-1:123456789012:mlflow-tracking-server/turbofan-rul-dev-mlflow"
CREDENTIALS = ReadOnlyCredentials("AKIDEXAMPLE", "secret", "session-token")


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.fixture(scope="module")
def mlflow_url(tmp_path_factory):
    folder = tmp_path_factory.mktemp("mlflow-server")
    port = _free_port()
    command = [sys.executable, "-m", "mlflow", "server", "--host", "127.0.0.1", "--port", str(port)]
    command += ["--backend-store-uri", f"sqlite:///{folder}/mlflow.db", "--workers", "1"]
    command += ["--default-artifact-root", (folder / "artifacts").as_uri()]
    # No job-runner processes (MLflow 3 starts several by default); no usage data.
    environment = {
        **os.environ,
        "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false",
        "MLFLOW_DISABLE_TELEMETRY": "true",
        "DO_NOT_TRACK": "true",
    }
    server = subprocess.Popen(
        command, env=environment, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True
    )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 180
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(f"{url}/health", timeout=2):
                break
        except OSError:
            assert server.poll() is None, "mlflow server exited"
            time.sleep(0.5)
    else:
        os.killpg(server.pid, signal.SIGKILL)
        pytest.fail("mlflow server did not start within 180 s")
    yield url
    os.killpg(server.pid, signal.SIGTERM)  # the server and its uvicorn worker
    try:
        server.wait(timeout=30)
    except subprocess.TimeoutExpired:
        os.killpg(server.pid, signal.SIGKILL)


def _now() -> datetime:
    return datetime.now(UTC)


def _client(url: str, experiment: str) -> MlflowRestClient:
    environ = {ENV_TRACKING_SERVER_ARN: SERVER_ARN, ENV_EXPERIMENT: experiment, ENV_TRACKING_URL: url}
    return MlflowRestClient(load_target(environ), CREDENTIALS, URLLib3Session(timeout=10))


def test_requests_are_signed_for_sagemaker_mlflow_and_name_the_server():
    environ = {ENV_TRACKING_SERVER_ARN: SERVER_ARN, ENV_EXPERIMENT: "turbofan-rul-dev-training"}
    client = MlflowRestClient(load_target(environ), CREDENTIALS, session=None)
    request = client.signed_request("POST", "runs/create", {"experiment_id": "1"})
    assert request.url == "https://eu-west-1.experiments.sagemaker.amazonaws.com/api/2.0/mlflow/runs/create"
    assert request.headers[ARN_HEADER] == SERVER_ARN
    authorization = request.headers["Authorization"]
    assert authorization.startswith("AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/")
    assert "/eu-west-1/sagemaker-mlflow/aws4_request" in authorization
    assert request.headers["X-Amz-Security-Token"] == "session-token"


@pytest.mark.parametrize(
    ("environ", "problem"),
    [
        ({ENV_TRACKING_SERVER_ARN: "arn:aws:s3:::bucket", ENV_EXPERIMENT: "x"}, ENV_TRACKING_SERVER_ARN),
        ({ENV_TRACKING_SERVER_ARN: SERVER_ARN}, ENV_EXPERIMENT),
    ],
)
def test_bad_configuration_names_the_variable(environ, problem):
    with pytest.raises(ValueError, match=problem):
        load_target(environ)


def test_no_server_means_no_logging():
    assert load_target({}) is None
    cn = SERVER_ARN.replace("arn:aws:", "arn:aws-cn:").replace("eu-west-1", "cn-north-1")
    target = load_target({ENV_TRACKING_SERVER_ARN: cn, ENV_EXPERIMENT: "x"})
    assert target.url == "https://cn-north-1.experiments.sagemaker.amazonaws.com.cn"


@pytest.mark.slow
def test_an_execution_is_one_run_even_when_the_event_is_retried(mlflow_url):
    client = _client(mlflow_url, "retried")
    metrics = {"RMSE": 12.5, "Registered": 1.0}
    first = log_execution(client, EXECUTION_ARN, "Succeeded", metrics, {"pipeline": "p"}, 1_700_000_000_000)
    again = log_execution(client, EXECUTION_ARN, "Succeeded", metrics, {"pipeline": "p"}, 1_700_000_000_000)
    assert first == again
    reader = MlflowClient(tracking_uri=mlflow_url)
    experiment = reader.get_experiment_by_name("retried")
    assert experiment.tags["mlflow.experimentKind"] == "custom_model_development"
    (run,) = reader.search_runs([experiment.experiment_id])
    assert run.info.status == "FINISHED"
    assert run.data.metrics == metrics
    assert run.data.tags[EXECUTION_TAG] == EXECUTION_ARN


@pytest.mark.slow
def test_a_rejected_execution_ends_its_run_failed(mlflow_url):
    client = _client(mlflow_url, "rejected")
    run_id = log_execution(client, EXECUTION_ARN, "Failed", {"Registered": 0.0}, {}, 1_700_000_000_000)
    assert MlflowClient(tracking_uri=mlflow_url).get_run(run_id).info.status == "FAILED"


@pytest.mark.slow
def test_handler_logs_the_execution_then_publishes(aws, mlflow_url):  # noqa: F811
    expect_steps(aws, REGISTERED_STEPS)
    put_evaluation(aws)
    config = publisher.load_config(ENVIRONMENT)
    result = publisher.run(
        status_event(), config, aws["sagemaker"], aws["s3"], aws["cloudwatch"], _now, _client(mlflow_url, "h")
    )
    assert result["action"] == "published", result
    run = MlflowClient(tracking_uri=mlflow_url).get_run(result["mlflow_run_id"])
    assert run.data.metrics == published(aws)
    assert run.data.tags["evaluation_uri"] == result["evaluation_uri"]


@pytest.mark.slow
def test_an_mlflow_failure_raises_before_anything_is_published(aws, mlflow_url):  # noqa: F811
    expect_steps(aws, REGISTERED_STEPS)
    put_evaluation(aws)
    config = publisher.load_config(ENVIRONMENT)
    broken = _client(mlflow_url + "/no-such-prefix", "broken")
    with pytest.raises(MlflowError, match="HTTP 404"):
        publisher.run(status_event(), config, aws["sagemaker"], aws["s3"], aws["cloudwatch"], _now, broken)
    assert published(aws) == {}
