"""Log a finished training-pipeline execution to the SageMaker-managed MLflow tracking server.

The pipeline's jobs run network-isolated, so the publish function (which already reads each execution's
evaluation) logs it: one MLflow run per execution in the experiment named by `MLFLOW_EXPERIMENT_NAME`,
tagged with the execution ARN, holding the evaluation metrics, the execution's status and whether a model
version was registered. A retried event finds the run by that tag and logs into it again, so a retry
never makes a second run.

It speaks MLflow's REST API (`/api/2.0/mlflow/...`) directly, signed with SigV4 for the service
`sagemaker-mlflow` and routed by the `x-mlflow-sm-tracking-server-arn` header, as AWS's
`sagemaker-mlflow` plugin does; this keeps MLflow itself out of the function package. The server's API is
`https://<region>.experiments.sagemaker.<dns suffix>`, reached through the `sagemaker.experiments` VPC
endpoint; `MLFLOW_TRACKING_URL` overrides the address (the tests point it at a local MLflow server).
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlencode

from .config import ENV_EXPERIMENT, ENV_TRACKING_SERVER_ARN, ENV_TRACKING_URL

SIGNING_SERVICE = "sagemaker-mlflow"
ARN_HEADER = "x-mlflow-sm-tracking-server-arn"
EXECUTION_TAG = "sagemaker_pipeline_execution_arn"
# Opens the experiment on MLflow's model-training view rather than the GenAI traces view.
EXPERIMENT_KIND = {"key": "mlflow.experimentKind", "value": "custom_model_development"}
ARN_PATTERN = re.compile(
    r"^arn:(aws[a-z-]*):sagemaker:([a-z0-9-]+):(\d{12}):mlflow-tracking-server/[a-zA-Z0-9](-*[a-zA-Z0-9]){0,255}$"
)
DNS_SUFFIXES = {"aws-cn": "amazonaws.com.cn"}


class MlflowError(RuntimeError):
    """The tracking server refused a request; the message names the call, the status and MLflow's error."""

    def __init__(self, call: str, status: int, body: str):
        self.status = status
        try:
            self.code = json.loads(body).get("error_code", "")
        except ValueError:
            self.code = ""
        super().__init__(f"MLflow {call}: HTTP {status}: {body[:300]}")


@dataclass(frozen=True)
class MlflowTarget:
    """The MLflow tracking server (ARN, URL, region) and the experiment to log to."""

    server_arn: str
    experiment: str
    url: str
    region: str


def load_target(environ: Mapping[str, str]) -> MlflowTarget | None:
    """The server to log to, or None when the function has no MLflow server; ValueError names a bad value."""
    arn = environ.get(ENV_TRACKING_SERVER_ARN, "").strip()
    if not arn:
        return None
    match = ARN_PATTERN.match(arn)
    if match is None:
        raise ValueError(f"{ENV_TRACKING_SERVER_ARN}: not an MLflow tracking server ARN (got {arn!r})")
    experiment = environ.get(ENV_EXPERIMENT, "").strip()
    if not experiment or len(experiment) > 256:
        raise ValueError(f"{ENV_EXPERIMENT}: must be 1-256 characters (got {experiment!r})")
    partition, region = match.group(1), match.group(2)
    default_url = f"https://{region}.experiments.sagemaker.{DNS_SUFFIXES.get(partition, 'amazonaws.com')}"
    url = environ.get(ENV_TRACKING_URL, "").strip() or default_url
    return MlflowTarget(arn, experiment, url.rstrip("/"), region)


class MlflowRestClient:
    """Signed calls to one tracking server; `session` is botocore's HTTP session (URLLib3Session)."""

    def __init__(self, target: MlflowTarget, credentials: Any, session: Any):
        self.target, self.credentials, self.session = target, credentials, session

    def signed_request(self, method: str, path: str, body: dict | None = None, query: dict | None = None):
        """A prepared request to the MLflow REST API `path`, SigV4-signed for the tracking server."""
        from botocore.auth import SigV4Auth
        from botocore.awsrequest import AWSRequest

        url = f"{self.target.url}/api/2.0/mlflow/{path}" + (f"?{urlencode(query)}" if query else "")
        data = json.dumps(body).encode() if body is not None else b""
        headers = {ARN_HEADER: self.target.server_arn, "Content-Type": "application/json"}
        request = AWSRequest(method=method, url=url, data=data, headers=headers)
        SigV4Auth(self.credentials, SIGNING_SERVICE, self.target.region).add_auth(request)
        return request.prepare()

    def call(self, method: str, path: str, body: dict | None = None, query: dict | None = None) -> dict:
        """Send a signed request; its JSON answer ({} when empty), or `MlflowError` for a non-200 status."""
        response = self.session.send(self.signed_request(method, path, body, query))
        text = response.content.decode("utf-8", "replace")
        if response.status_code != 200:
            raise MlflowError(f"{method} {path}", response.status_code, text)
        return json.loads(text) if text else {}


def experiment_id(client: MlflowRestClient, name: str) -> str:
    """The experiment's id, created (as a model-development experiment) when it does not exist yet."""
    try:
        found = client.call("GET", "experiments/get-by-name", query={"experiment_name": name})
        return str(found["experiment"]["experiment_id"])
    except MlflowError as error:
        if error.code != "RESOURCE_DOES_NOT_EXIST":
            raise
    try:
        return str(
            client.call("POST", "experiments/create", {"name": name, "tags": [EXPERIMENT_KIND]})[
                "experiment_id"
            ]
        )
    except MlflowError as error:  # created by a concurrent invocation in between
        if error.code != "RESOURCE_ALREADY_EXISTS":
            raise
        found = client.call("GET", "experiments/get-by-name", query={"experiment_name": name})
        return str(found["experiment"]["experiment_id"])


def run_for_execution(client: MlflowRestClient, experiment: str, execution_arn: str, started_ms: int) -> str:
    """The run of this execution: found by its tag (a retried event) or created."""
    quoted = execution_arn.replace("'", "")
    found = client.call(
        "POST",
        "runs/search",
        {"experiment_ids": [experiment], "filter": f"tags.{EXECUTION_TAG} = '{quoted}'", "max_results": 1},
    )
    if found.get("runs"):
        return str(found["runs"][0]["info"]["run_id"])
    created = client.call(
        "POST",
        "runs/create",
        {
            "experiment_id": experiment,
            "run_name": execution_arn.rsplit("/", 1)[-1],
            "start_time": started_ms,
            "tags": [{"key": EXECUTION_TAG, "value": execution_arn}],
        },
    )
    return str(created["run"]["info"]["run_id"])


def log_execution(
    client: MlflowRestClient,
    execution_arn: str,
    status: str,
    metrics: Mapping[str, float],
    tags: Mapping[str, str],
    timestamp_ms: int | None = None,
) -> str:
    """Log one finished execution (metrics and tags) as one run, ended with its status; returns the run id."""
    now = timestamp_ms if timestamp_ms is not None else int(time.time() * 1000)
    run_id = run_for_execution(client, experiment_id(client, client.target.experiment), execution_arn, now)
    client.call(
        "POST",
        "runs/log-batch",
        {
            "run_id": run_id,
            "metrics": [
                {"key": k, "value": v, "timestamp": now, "step": 0} for k, v in sorted(metrics.items())
            ],
            "tags": [{"key": k, "value": str(v)} for k, v in sorted(tags.items())],
        },
    )
    final = "FINISHED" if status == "Succeeded" else "FAILED"
    client.call("POST", "runs/update", {"run_id": run_id, "status": final, "end_time": now})
    return run_id


def make_client(target: MlflowTarget) -> MlflowRestClient:
    """A client with the function's credentials and botocore's HTTP session (timeouts, TLS verification)."""
    import boto3
    from botocore.httpsession import URLLib3Session

    credentials = boto3.Session().get_credentials()
    if credentials is None:
        raise RuntimeError("no AWS credentials to sign MLflow requests with")
    return MlflowRestClient(target, credentials.get_frozen_credentials(), URLLib3Session(timeout=20))
