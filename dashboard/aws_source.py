"""The dashboard's AWS data source: the deployed project read through boto3, read only.

Model versions: `sagemaker.list_model_packages` of the project's group, then `describe_model_package`
for each, whose `ModelMetrics.ModelQuality.Statistics` S3 URI is the execution's `evaluation.json`
(`s3.get_object`); the serving version is the `ModelPackageVersion` tag the deploy-on-approval function
puts on the endpoint's config (`describe_endpoint` -> `describe_endpoint_config` -> `list_tags`).
Executions: `list_pipeline_executions` + `describe_pipeline_execution` of the training and monitoring
pipelines. Everything else is `cloudwatch.get_metric_data` of the metrics the project publishes (the same
namespaces, names and dimensions as `stacks/monitoring_dashboard.py`; a test keeps them equal): per-feature
`FeaturePSI` (features found with `list_metrics`), `MaxPSI`/`DriftedFeatures`, the endpoint's realised
`RMSE`/`PHM08Score`, and SageMaker's `Invocations` (per day) and p99 `ModelLatency` (microseconds).
AWS errors become a `SourceError` naming the call; a resource not deployed yet is an empty answer.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from dashboard.sources import (
    DRIFTED_FEATURES,
    MAX_PSI,
    MONITORING,
    PHM08_SCORE,
    RMSE,
    TRAINING,
    DailyCount,
    DriftSnapshot,
    Execution,
    FeatureDrift,
    ModelVersion,
    MonitoringPoint,
    SourceError,
)

SAGEMAKER_NAMESPACE = "AWS/SageMaker"
PIPELINE_DRIFT_NAMESPACE = "TurbofanRul/Drift"
MODEL_MONITOR_DRIFT_NAMESPACE = "/aws/sagemaker/Endpoint/data-metrics"
QUALITY_NAMESPACE = "TurbofanRul/ModelQuality"
VARIANT_NAME = "AllTraffic"
FEATURE_PSI = "FeaturePSI"
VERSION_TAG = "ModelPackageVersion"  # lambdas/deploy_on_approval/resources.py TAG_VERSION
MICROSECONDS_PER_MILLISECOND = 1000.0
HOUR = 3600
DAY = 86400
RUNNING = ("Executing", "Stopping")


@dataclass(frozen=True)
class AwsTargets:
    """The deployed names the source reads, from `settings.ResourceNames` and `MonitoringSettings`."""

    model_package_group: str
    pipeline: str
    monitoring_pipeline: str
    endpoint: str
    drift_namespace: str = PIPELINE_DRIFT_NAMESPACE

    @classmethod
    def from_settings(cls, settings: Any) -> AwsTargets:
        """The names of a `settings.Settings`; drift from Model Monitor's namespace when it is on."""
        names = settings.names
        use_monitor = settings.monitoring.use_model_monitor
        return cls(
            model_package_group=names.model_package_group,
            pipeline=names.pipeline,
            monitoring_pipeline=names.monitoring_pipeline,
            endpoint=names.endpoint,
            drift_namespace=MODEL_MONITOR_DRIFT_NAMESPACE if use_monitor else PIPELINE_DRIFT_NAMESPACE,
        )


def _call(what: str, function: Callable[..., Any], **arguments: Any) -> Any:
    """`function(**arguments)`, with AWS errors turned into one line naming the call."""
    try:
        return function(**arguments)
    except ClientError as error:
        detail = error.response.get("Error", {})
        raise SourceError(f"{what}: {detail.get('Code', 'error')}: {detail.get('Message', error)}") from error
    except BotoCoreError as error:
        raise SourceError(f"{what}: {error}") from error


def _not_found(error: SourceError) -> bool:
    text = str(error)
    return "ResourceNotFound" in text or "Could not find" in text


def _utc(moment: datetime) -> datetime:
    return moment.astimezone(UTC) if moment.tzinfo else moment.replace(tzinfo=UTC)


class AwsSource:
    """The `DashboardSource` of a deployed account, from boto3 `sagemaker`, `cloudwatch` and `s3` clients."""

    def __init__(
        self,
        targets: AwsTargets,
        sagemaker: Any,
        cloudwatch: Any,
        s3: Any,
        now: Callable[[], datetime] = lambda: datetime.now(UTC),
        days: int = 7,
        limit: int = 25,
    ):
        self.targets, self.sagemaker, self.cloudwatch, self.s3 = targets, sagemaker, cloudwatch, s3
        self.now, self.days, self.limit = now, days, limit
        self.label = f"AWS account, endpoint {targets.endpoint}, group {targets.model_package_group}"

    @classmethod
    def from_session(cls, targets: AwsTargets, session: Any) -> AwsSource:
        """A source reading through `session`'s sagemaker, cloudwatch and s3 clients."""
        return cls(targets, session.client("sagemaker"), session.client("cloudwatch"), session.client("s3"))

    # --- registry ------------------------------------------------------------------------------------

    def _evaluation(self, uri: str) -> dict:
        bucket, _, key = uri.removeprefix("s3://").partition("/")
        if not uri.startswith("s3://") or not key:
            return {}
        try:
            body = _call(f"s3.get_object {uri}", self.s3.get_object, Bucket=bucket, Key=key)["Body"].read()
            return json.loads(body)
        except (SourceError, ValueError):
            return {}  # a version whose report is gone still belongs in the registry table

    def serving_version(self) -> int | None:
        """The version the endpoint serves (its config's tag), None without an endpoint."""
        try:
            endpoint = _call(
                "describe_endpoint", self.sagemaker.describe_endpoint, EndpointName=self.targets.endpoint
            )
        except SourceError as error:
            if _not_found(error):
                return None
            raise
        name = endpoint["EndpointConfigName"]
        config = _call(
            "describe_endpoint_config", self.sagemaker.describe_endpoint_config, EndpointConfigName=name
        )
        tags = _call("list_tags", self.sagemaker.list_tags, ResourceArn=config["EndpointConfigArn"])["Tags"]
        value = next((tag["Value"] for tag in tags if tag["Key"] == VERSION_TAG), "")
        return int(value) if value.isdigit() else None

    def model_versions(self) -> list[ModelVersion]:
        """The newest `limit` versions, with their test metrics and which one the endpoint serves."""
        summaries = _call(
            "list_model_packages",
            self.sagemaker.list_model_packages,
            ModelPackageGroupName=self.targets.model_package_group,
            SortBy="CreationTime",
            SortOrder="Descending",
            MaxResults=self.limit,
        )["ModelPackageSummaryList"]
        serving = self.serving_version() if summaries else None
        return [self._version(summary["ModelPackageArn"], serving) for summary in summaries]

    def _version(self, arn: str, serving: int | None) -> ModelVersion:
        package = _call("describe_model_package", self.sagemaker.describe_model_package, ModelPackageName=arn)
        statistics = package.get("ModelMetrics", {}).get("ModelQuality", {}).get("Statistics", {})
        metrics = self._evaluation(statistics.get("S3Uri", "")).get("regression_metrics", {})
        version = int(package["ModelPackageVersion"])
        return ModelVersion(
            group=package["ModelPackageGroupName"],
            version=version,
            approval_status=package["ModelApprovalStatus"],
            created_at=_utc(package["CreationTime"]),
            rmse=metrics.get("rmse", {}).get("value"),
            phm08_score=metrics.get("phm08_score", {}).get("value"),
            data_version=package.get("CustomerMetadataProperties", {}).get("DataVersion", ""),
            execution_id=package.get("MetadataProperties", {}).get("GeneratedBy", ""),
            serving=version == serving,
        )

    # --- executions ----------------------------------------------------------------------------------

    def executions(self) -> list[Execution]:
        """The training and monitoring pipelines' executions, newest first."""
        found = []
        for kind, name in ((TRAINING, self.targets.pipeline), (MONITORING, self.targets.monitoring_pipeline)):
            found += self._pipeline_executions(kind, name)
        oldest = datetime.min.replace(tzinfo=UTC)  # every execution here has a start (its CreationTime)
        return sorted(found, key=lambda execution: execution.started_at or oldest, reverse=True)

    def _pipeline_executions(self, kind: str, pipeline: str) -> list[Execution]:
        try:
            listed = _call(
                f"list_pipeline_executions {pipeline}",
                self.sagemaker.list_pipeline_executions,
                PipelineName=pipeline,
                SortBy="CreationTime",
                SortOrder="Descending",
                MaxResults=self.limit,
            )
        except SourceError as error:
            if _not_found(error):
                return []
            raise
        executions = []
        for summary in listed["PipelineExecutionSummaries"]:
            arn = summary["PipelineExecutionArn"]
            described = _call(
                "describe_pipeline_execution",
                self.sagemaker.describe_pipeline_execution,
                PipelineExecutionArn=arn,
            )
            started = _utc(described["CreationTime"])
            status = described["PipelineExecutionStatus"]
            end = self.now() if status in RUNNING else _utc(described["LastModifiedTime"])
            executions.append(
                Execution(
                    pipeline=kind,
                    execution_id=arn.rsplit("/", 1)[-1],
                    status=status,
                    started_at=started,
                    seconds=(end - started).total_seconds(),
                    failure_reason=described.get("FailureReason", ""),
                )
            )
        return executions

    # --- CloudWatch ----------------------------------------------------------------------------------

    def _series(
        self, queries: dict[str, dict], period: int, hours: int
    ) -> dict[str, list[tuple[datetime, float]]]:
        """`get_metric_data` of `queries` (id -> MetricStat without Period) over the last `hours`."""
        end = self.now()
        request = {
            "MetricDataQueries": [
                {"Id": query_id, "MetricStat": {**stat, "Period": period}, "ReturnData": True}
                for query_id, stat in queries.items()
            ],
            "StartTime": end - timedelta(hours=hours),
            "EndTime": end,
            "ScanBy": "TimestampAscending",
        }
        series: dict[str, list[tuple[datetime, float]]] = {query_id: [] for query_id in queries}
        while True:
            answer = _call("cloudwatch.get_metric_data", self.cloudwatch.get_metric_data, **request)
            for result in answer["MetricDataResults"]:
                points = zip(result["Timestamps"], result["Values"], strict=True)
                series[result["Id"]] += [(_utc(moment), float(value)) for moment, value in points]
            if not answer.get("NextToken"):
                return series
            request["NextToken"] = answer["NextToken"]

    def _metric(self, namespace: str, name: str, stat: str, **dimensions: str) -> dict:
        listed = [{"Name": key, "Value": value} for key, value in dimensions.items()]
        return {"Metric": {"Namespace": namespace, "MetricName": name, "Dimensions": listed}, "Stat": stat}

    def _endpoint_metric(self, name: str, stat: str) -> dict:
        return self._metric(
            SAGEMAKER_NAMESPACE, name, stat, EndpointName=self.targets.endpoint, VariantName=VARIANT_NAME
        )

    def _features(self) -> list[str]:
        request: dict[str, Any] = {
            "Namespace": self.targets.drift_namespace,
            "MetricName": FEATURE_PSI,
            "Dimensions": [{"Name": "Endpoint", "Value": self.targets.endpoint}],
        }
        features: set[str] = set()
        while True:
            answer = _call("cloudwatch.list_metrics", self.cloudwatch.list_metrics, **request)
            for metric in answer["Metrics"]:
                features |= {item["Value"] for item in metric["Dimensions"] if item["Name"] == "Feature"}
            if not answer.get("NextToken"):
                return sorted(features)
            request["NextToken"] = answer["NextToken"]

    def drift(self) -> DriftSnapshot | None:
        """The newest hourly PSI of every feature with a FeaturePSI metric; None without datapoints."""
        features = self._features()
        if not features:
            return None
        queries = {
            f"f{index}": self._metric(
                self.targets.drift_namespace,
                FEATURE_PSI,
                "Maximum",
                Endpoint=self.targets.endpoint,
                Feature=name,
            )
            for index, name in enumerate(features)
        }
        series = self._series(queries, HOUR, 24 * self.days)
        newest = {features[int(key[1:])]: points[-1] for key, points in series.items() if points}
        if not newest:
            return None
        measured = max(moment for moment, _ in newest.values())
        drift = tuple(FeatureDrift(name, value) for name, (_, value) in sorted(newest.items()))
        return DriftSnapshot(measured_at=measured, features=drift)

    def monitoring_history(self) -> list[MonitoringPoint]:
        """Hourly max PSI, drifted-feature count, RMSE and PHM08 score datapoints of the last `days` days."""
        endpoint = self.targets.endpoint
        queries = {
            "maxpsi": (
                MAX_PSI,
                self._metric(self.targets.drift_namespace, MAX_PSI, "Maximum", Endpoint=endpoint),
            ),
            "drifted": (
                DRIFTED_FEATURES,
                self._metric(self.targets.drift_namespace, DRIFTED_FEATURES, "Maximum", Endpoint=endpoint),
            ),
            "rmse": (RMSE, self._metric(QUALITY_NAMESPACE, RMSE, "Average", Endpoint=endpoint)),
            "phm08": (
                PHM08_SCORE,
                self._metric(QUALITY_NAMESPACE, PHM08_SCORE, "Average", Endpoint=endpoint),
            ),
        }
        series = self._series({key: stat for key, (_, stat) in queries.items()}, HOUR, 24 * self.days)
        return [
            MonitoringPoint(moment, queries[key][0], value)
            for key, points in series.items()
            for moment, value in points
        ]

    def daily_predictions(self) -> list[DailyCount]:
        """Invocations per UTC day (one invocation may predict several engines)."""
        series = self._series(
            {"invocations": self._endpoint_metric("Invocations", "Sum")}, DAY, 24 * self.days
        )
        return [DailyCount(moment.date(), int(value)) for moment, value in series["invocations"]]

    def latency_ms(self) -> float | None:
        """The newest hourly p99 ModelLatency of the last day, in milliseconds."""
        series = self._series({"latency": self._endpoint_metric("ModelLatency", "p99")}, HOUR, 24)
        points = series["latency"]
        return points[-1][1] / MICROSECONDS_PER_MILLISECOND if points else None
