"""The mocked account the deploy-on-approval tests run the function in (`tests/test_lambda_deploy*.py`).

moto (`mock_aws`) serves the model registry (group, packages, approval updates, list/describe), create/
describe model, endpoint config and endpoint, list_tags and all of S3. moto 5.2.5 lacks `update_endpoint`
and the monitoring-schedule calls, so `RoutedSageMaker` sends exactly those to a client under
`botocore.stub.Stubber` (parameters validated against the service model and compared with the expected
request) and replays update_endpoint's end state in moto (the endpoint now serves the new config). A
stubbed call with no queued answer fails the test, so the default path (Model Monitor off) proves it
makes none. Every call is recorded so each step can assert which mutating APIs it made, or none.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime

import boto3
from botocore.stub import ANY, Stubber

from lambdas.deploy_on_approval import config as deploy_config
from lambdas.deploy_on_approval import handler, monitoring
from lambdas.deploy_on_approval.registry import describe_version

REGION = "eu-west-1"
ACCOUNT = "123456789012"  # moto's default account
GROUP = "turbofan-rul-test-models"
ENDPOINT = "turbofan-rul-test-serving"
ARTIFACTS = "turbofan-rul-test-artifacts"
SCHEDULE = "turbofan-rul-test-data-quality"
KMS = f"arn:aws:kms:{REGION}:{ACCOUNT}:key/1234abcd-12ab-34cd-56ef-1234567890ab"
IMAGE = f"{ACCOUNT}.dkr.ecr.{REGION}.amazonaws.com/turbofan-rul-jobs:serve"
MODEL_ROLE = f"arn:aws:iam::{ACCOUNT}:role/turbofan-rul-test-model"
ENVIRONMENT = {
    "MODEL_PACKAGE_GROUP_NAME": GROUP,
    "ENDPOINT_NAME": ENDPOINT,
    "MODEL_EXECUTION_ROLE_ARN": MODEL_ROLE,
    "SUBNET_IDS": "subnet-0a1b2c3d,subnet-0e1f2a3b",
    "SECURITY_GROUP_IDS": "sg-0123abcd",
    "KMS_KEY_ARN": KMS,
    "DATA_CAPTURE_S3_URI": f"s3://{ARTIFACTS}/datacapture/",
    "DATA_CAPTURE_PERCENT": "20",
    "INSTANCE_TYPE": "ml.m5.large",
    "INSTANCE_COUNT": "2",
    "DEPLOYMENT_STRATEGY": "canary",
    "TRAFFIC_PERCENT": "10",
    "TRAFFIC_WAIT_SECONDS": "600",
    "TERMINATION_WAIT_SECONDS": "300",
    "ROLLBACK_ALARM_NAMES": "turbofan-rul-test-5xx,turbofan-rul-test-p99-latency",
    "ARTIFACTS_BUCKET": ARTIFACTS,
}
MODEL_MONITOR_ENVIRONMENT = {
    **ENVIRONMENT,
    "USE_MODEL_MONITOR": "true",
    "MONITORING_SCHEDULE_NAME": SCHEDULE,
    "MONITORING_SCHEDULE_CRON": "cron(0 * ? * * *)",
    "DRIFT_IMAGE_URI": f"{ACCOUNT}.dkr.ecr.{REGION}.amazonaws.com/turbofan-rul-jobs:drift",
    "MONITORING_ROLE_ARN": MODEL_ROLE,
    "MONITORING_OUTPUT_S3_URI": f"s3://{ARTIFACTS}/monitoring/data-quality/",
}
STUBBED = {
    "update_endpoint",
    "describe_monitoring_schedule",
    "create_monitoring_schedule",
    "update_monitoring_schedule",
    "delete_monitoring_schedule",
}
MUTATING = ("Create", "Update", "Delete", "Put", "Copy", "Start", "Add")


class RoutedSageMaker:
    """moto where moto implements the call, a Stubber client elsewhere; update_endpoint replayed in moto."""

    def __init__(self, moto_client, stubbed_client) -> None:
        self.moto = moto_client
        self.stubbed = stubbed_client
        self.effects = boto3.client("sagemaker", region_name=REGION)  # unrecorded: not the function's calls

    def __getattr__(self, name):
        if name == "update_endpoint":
            return self._update_endpoint
        return getattr(self.stubbed if name in STUBBED else self.moto, name)

    def _update_endpoint(self, **params):
        response = self.stubbed.update_endpoint(**params)
        self.effects.delete_endpoint(EndpointName=params["EndpointName"])
        self.effects.create_endpoint(
            EndpointName=params["EndpointName"], EndpointConfigName=params["EndpointConfigName"]
        )
        return response


class World:
    """The mocked account: clients, the recorded calls, and helpers to make events and read state."""

    def __init__(self, environment: dict[str, str]) -> None:
        self.calls: list[tuple[str, dict]] = []
        moto_sm = boto3.client("sagemaker", region_name=REGION)
        stub_sm = boto3.client("sagemaker", region_name=REGION)
        self.s3 = boto3.client("s3", region_name=REGION)
        for client in (moto_sm, stub_sm, self.s3):
            client.meta.events.register("provide-client-params.*.*", self._record)
        self.stubber = Stubber(stub_sm)
        self.stubber.activate()
        self.moto = moto_sm
        self.clients = handler.Clients(sagemaker=RoutedSageMaker(moto_sm, stub_sm), s3=self.s3)
        self.config = deploy_config.load_config(environment)
        self.s3.create_bucket(Bucket=ARTIFACTS, CreateBucketConfiguration={"LocationConstraint": REGION})
        self.s3.put_object(Bucket=ARTIFACTS, Key="champion/NO_CHAMPION_YET.txt", Body=b"No model yet.\n")
        self.moto.create_model_package_group(ModelPackageGroupName=GROUP)

    def _record(self, params, model, **_):
        self.calls.append((model.name, dict(params)))

    def mutations(self) -> list[str]:
        return [name for name, _ in self.calls if name.startswith(MUTATING)]

    def params(self, operation: str) -> list[dict]:
        return [params for name, params in self.calls if name == operation]

    def run(self, event) -> dict:
        self.calls.clear()
        result = handler.run(event, self.config, self.clients)
        self.stubber.assert_no_pending_responses()
        return result

    def register(self, version: int, with_artifacts: bool = True, with_baselines: bool = True) -> str:
        """A pending version; its model under models/, its baselines under registry/ (as the pipeline)."""
        container = {"Image": IMAGE}
        if with_artifacts:
            key = f"models/v{version}/model.tar.gz"
            self.s3.put_object(Bucket=ARTIFACTS, Key=key, Body=f"model-{version}".encode())
            container["ModelDataUrl"] = f"s3://{ARTIFACTS}/{key}"
        extra = {}
        if with_baselines:
            folder = f"registry/pipeline/exec-{version}/DataQualityBaseline"
            quality = {}
            for name, field in (("statistics.json", "Statistics"), ("constraints.json", "Constraints")):
                body = json.dumps({"file": name, "version": version}).encode()
                self.s3.put_object(Bucket=ARTIFACTS, Key=f"{folder}/{name}", Body=body)
                quality[field] = {
                    "ContentType": "application/json",
                    "S3Uri": f"s3://{ARTIFACTS}/{folder}/{name}",
                }
            extra["DriftCheckBaselines"] = {"ModelDataQuality": quality}
        return self.moto.create_model_package(
            ModelPackageGroupName=GROUP,
            InferenceSpecification={
                "Containers": [container],
                "SupportedContentTypes": ["text/csv"],
                "SupportedResponseMIMETypes": ["text/csv"],
            },
            ModelApprovalStatus="PendingManualApproval",
            **extra,
        )["ModelPackageArn"]

    def set_status(self, arn: str, status: str) -> dict:
        self.moto.update_model_package(ModelPackageArn=arn, ModelApprovalStatus=status)
        return event_for(arn, status)

    def champion(self) -> dict | None:
        try:
            body = self.s3.get_object(Bucket=ARTIFACTS, Key="champion/champion.json")["Body"].read()
        except self.s3.exceptions.NoSuchKey:
            return None
        return json.loads(body)

    def keys(self, prefix: str) -> set[str]:
        listing = self.s3.list_objects_v2(Bucket=ARTIFACTS, Prefix=prefix)
        return {item["Key"] for item in listing.get("Contents", [])}

    def read_json(self, key: str) -> dict:
        return json.loads(self.s3.get_object(Bucket=ARTIFACTS, Key=key)["Body"].read())

    def serving_config(self) -> dict:
        name = self.moto.describe_endpoint(EndpointName=ENDPOINT)["EndpointConfigName"]
        return self.moto.describe_endpoint_config(EndpointConfigName=name)

    def definition(self, arn: str) -> dict:
        """The inline drift-job definition the schedule should hold for the version `arn`."""
        return monitoring.job_definition(self.config, describe_version(self.moto, arn))

    def expect_schedule(self, current: dict | None, wanted: dict | None, operation: str | None) -> None:
        if current is None:
            self.stubber.add_client_error(
                "describe_monitoring_schedule", "ResourceNotFound", "Monitoring schedule not found", 404
            )
        else:
            self.stubber.add_response("describe_monitoring_schedule", schedule(current))
        if operation == "delete_monitoring_schedule":
            self.stubber.add_response(operation, {}, {"MonitoringScheduleName": SCHEDULE})
        elif operation is not None:
            config = {
                "ScheduleConfig": {"ScheduleExpression": "cron(0 * ? * * *)"},
                "MonitoringJobDefinition": wanted,
            }
            expected = {"MonitoringScheduleName": SCHEDULE, "MonitoringScheduleConfig": config}
            if operation == "create_monitoring_schedule":
                expected["Tags"] = ANY
            self.stubber.add_response(
                operation,
                {"MonitoringScheduleArn": f"arn:aws:sagemaker:{REGION}:{ACCOUNT}:monitoring-schedule/x"},
                expected,
            )

    def expect_update(self) -> None:
        expected = {
            "EndpointName": ENDPOINT,
            "EndpointConfigName": ANY,
            "RetainAllVariantProperties": False,
            "DeploymentConfig": {
                "BlueGreenUpdatePolicy": {
                    "TrafficRoutingConfiguration": {
                        "Type": "CANARY",
                        "WaitIntervalInSeconds": 600,
                        "CanarySize": {"Type": "CAPACITY_PERCENT", "Value": 10},
                    },
                    "TerminationWaitInSeconds": 300,
                },
                "AutoRollbackConfiguration": {
                    "Alarms": [
                        {"AlarmName": "turbofan-rul-test-5xx"},
                        {"AlarmName": "turbofan-rul-test-p99-latency"},
                    ]
                },
            },
        }
        arn = f"arn:aws:sagemaker:{REGION}:{ACCOUNT}:endpoint/{ENDPOINT}"
        self.stubber.add_response("update_endpoint", {"EndpointArn": arn}, expected)


def schedule(definition: dict) -> dict:
    return {
        "MonitoringScheduleArn": f"arn:aws:sagemaker:{REGION}:{ACCOUNT}:monitoring-schedule/{SCHEDULE}",
        "MonitoringScheduleName": SCHEDULE,
        "MonitoringScheduleStatus": "Scheduled",
        "CreationTime": datetime(2026, 11, 1, tzinfo=UTC),
        "LastModifiedTime": datetime(2026, 11, 1, tzinfo=UTC),
        "MonitoringScheduleConfig": {
            "ScheduleConfig": {"ScheduleExpression": "cron(0 * ? * * *)"},
            "MonitoringJobDefinition": definition,
        },
    }


def event_for(arn: str, status: str, group: str = GROUP) -> dict:
    version = int(arn.rsplit("/", 1)[1])
    return {
        "version": "0",
        "id": "844e2571-85d4-695f-b930-0153b71dcb42",
        "detail-type": "SageMaker Model Package State Change",
        "source": "aws.sagemaker",
        "account": ACCOUNT,
        "time": "2026-11-02T17:00:14Z",
        "region": REGION,
        "resources": [arn],
        "detail": {
            "ModelPackageGroupName": group,
            "ModelPackageVersion": version,
            "ModelPackageArn": arn,
            "ModelApprovalStatus": status,
            "ModelPackageStatus": "Completed",
            "InferenceSpecification": {"Containers": [{"Image": IMAGE}]},
        },
    }


AWS_TEST_CREDENTIALS = {
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_SESSION_TOKEN": "testing",
    "AWS_DEFAULT_REGION": REGION,
}
