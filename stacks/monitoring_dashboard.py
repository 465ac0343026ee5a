"""Alarms on the serving endpoint and on drift, and the operations dashboard.

:class:`ServingAlarms` watches the endpoint the deploy-on-approval function maintains (``<prefix>-rul``,
variant ``AllTraffic``): 5xx errors, model errors, p99 ``ModelLatency`` (SageMaker reports microseconds, the
settings milliseconds) and the drift metric, which the monitoring pipeline's drift job writes in
``TurbofanRul/Drift`` or, with ``monitoring.use_model_monitor``, a bring-your-own-container Model Monitor
job in ``/aws/sagemaker/Endpoint/data-metrics`` (its metric file cannot name a namespace; developer guide,
model-monitor-byoc-cloudwatch), dimension ``Endpoint``. The 5xx and latency alarms also roll back blue/green
updates (:attr:`ServingAlarms.rollback_alarm_names`). Every alarm notifies the alerts topic.

:class:`OpsDashboard` shows the endpoint's invocations, errors and latency, the drift metrics, the
pipeline's executions by status (``AWS/Sagemaker/ModelBuildingPipeline``) and the model-quality metrics
(``TurbofanRul/ModelQuality``): the serving model's realised error (dimension ``Endpoint``) and the test-set
evaluation of each pipeline execution (``publish_model_metrics``, dimension ``PipelineName``), and every
alarm's state. With ``serving.ab_test.enabled`` the endpoint alarms watch ``AllTraffic``, ``Champion`` and
``Challenger`` (errors summed, worst p99; no traffic counts as 0) and the dashboard adds a per-variant row.
"""

from __future__ import annotations

from collections.abc import Sequence

import aws_cdk as cdk
from aws_cdk import aws_cloudwatch as cloudwatch
from aws_cdk import aws_cloudwatch_actions as cloudwatch_actions
from aws_cdk import aws_sns as sns
from constructs import Construct

from lambdas.deploy_on_approval.endpoint import VARIANT_NAME
from settings import MonitoringSettings, ResourceNames, ServingSettings
from settings.ab_testing import CHALLENGER_VARIANT, CHAMPION_VARIANT

SAGEMAKER_NAMESPACE = "AWS/SageMaker"
PIPELINE_NAMESPACE = "AWS/Sagemaker/ModelBuildingPipeline"  # SageMaker's own spelling
# containers/drift.py under the Model Monitor contract (MODEL_MONITOR_NAMESPACE there), used only with
# monitoring.use_model_monitor; by default the monitoring pipeline's drift job writes its CLI namespace
# (drift.NAMESPACE), which the metrics function publishes.
MODEL_MONITOR_DRIFT_NAMESPACE = "/aws/sagemaker/Endpoint/data-metrics"
PIPELINE_DRIFT_NAMESPACE = "TurbofanRul/Drift"
DRIFT_METRICS = ("MaxPSI", "DriftedFeatures")
QUALITY_NAMESPACE = "TurbofanRul/ModelQuality"  # containers/model_quality.py
QUALITY_METRICS = ("RMSE", "PHM08Score")
# lambdas/publish_model_metrics: evaluation.json of each finished pipeline execution, by pipeline.
EVALUATION_DIMENSION = "PipelineName"
EVALUATION_METRICS = ("RMSE", "MAE", "RMSECappedTruth", "PHM08Score", "Registered")
AB_VARIANTS = (CHAMPION_VARIANT, CHALLENGER_VARIANT)
PIPELINE_EXECUTION_METRICS = ("ExecutionStarted", "ExecutionSucceeded", "ExecutionFailed", "ExecutionStopped")
MICROSECONDS_PER_MILLISECOND = 1000
ONE_MINUTE = cdk.Duration.minutes(1)
AT_OR_ABOVE = cloudwatch.ComparisonOperator.GREATER_THAN_OR_EQUAL_TO_THRESHOLD
ROLLBACK_5XX = "endpoint-5xx-errors"  # alarm name suffixes; the alarms roll back blue/green updates
ROLLBACK_LATENCY = "endpoint-latency-p99"


def daily_metric(
    namespace: str, metric_name: str, dimensions: dict[str, str], statistic: str
) -> cloudwatch.Metric:
    """A metric over one-day periods (the dashboard's pipeline and model-quality graphs)."""
    return cloudwatch.Metric(
        namespace=namespace,
        metric_name=metric_name,
        dimensions_map=dimensions,
        statistic=statistic,
        period=cdk.Duration.days(1),
    )


def drift_namespace(monitoring: MonitoringSettings) -> str:
    """Where the drift metrics land: Model Monitor's namespace, or the monitoring pipeline's."""
    return MODEL_MONITOR_DRIFT_NAMESPACE if monitoring.use_model_monitor else PIPELINE_DRIFT_NAMESPACE


class ServingAlarms(Construct):
    """Endpoint, drift and silent-monitoring alarms (``errors_5xx``, ``model_errors``, ``latency``,
    ``drift``, ``monitoring_silent``)."""

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        names: ResourceNames,
        serving: ServingSettings,
        monitoring: MonitoringSettings,
        topic: sns.ITopic,
    ) -> None:
        super().__init__(scope, construct_id)
        self.names = names
        self.latency_threshold_ms = serving.latency_alarm_threshold_ms
        self.action = cloudwatch_actions.SnsAction(topic)
        self.drift_namespace = drift_namespace(monitoring)
        self.ab_enabled = serving.ab_test.enabled
        self.errors_5xx, self.model_errors, self.latency = self._endpoint_alarms(serving)
        self.drift = self._alarm(
            "Drift",
            name="drift",
            metric=self.drift_metric(monitoring.drift_metric),
            threshold=monitoring.drift_threshold,
            comparison=cloudwatch.ComparisonOperator.GREATER_THAN_THRESHOLD,
            evaluation_periods=1,
            description=(
                f"{monitoring.drift_metric} of the captured inputs above {monitoring.drift_threshold:g}: "
                "the entry into ALARM starts a retraining pipeline execution"
            ),
        )
        self.monitoring_silent = self._silent_alarm(monitoring.silent_alarm_hours)

    def _endpoint_alarms(self, serving: ServingSettings) -> tuple[cloudwatch.Alarm, ...]:
        """5xx errors, model errors and p99 latency of the endpoint (of every variant with A/B testing)."""
        errors_5xx = self._alarm(
            "Endpoint5xxErrors",
            name=ROLLBACK_5XX,
            metric=self.serving_metric("Invocation5XXErrors", "Sum"),
            threshold=serving.error_alarm_threshold,
            description="5xx errors from the endpoint in two consecutive minutes (rolls back updates)",
        )
        model_errors = self._alarm(
            "EndpointModelErrors",
            name="endpoint-model-errors",
            metric=self.serving_metric("InvocationModelErrors", "Sum"),
            threshold=serving.error_alarm_threshold,
            description="The model container failed requests in two consecutive minutes",
        )
        latency = self._alarm(
            "EndpointLatencyP99",
            name=ROLLBACK_LATENCY,
            metric=self.serving_metric("ModelLatency", "p99"),
            # ModelLatency is reported in microseconds; the setting is in milliseconds.
            threshold=serving.latency_alarm_threshold_ms * MICROSECONDS_PER_MILLISECOND,
            comparison=cloudwatch.ComparisonOperator.GREATER_THAN_THRESHOLD,
            description=(
                f"p99 model latency above {serving.latency_alarm_threshold_ms:g} ms in two consecutive "
                "minutes (rolls back updates)"
            ),
        )
        return errors_5xx, model_errors, latency

    @property
    def rollback_alarm_names(self) -> tuple[str, ...]:
        """Names (literal, deterministic) of the alarms that stop and roll back a blue/green update."""
        return (self.alarm_name(ROLLBACK_5XX), self.alarm_name(ROLLBACK_LATENCY))

    @property
    def all(self) -> tuple[cloudwatch.Alarm, ...]:
        """Every serving alarm: 5xx errors, model errors, latency, drift and silent monitoring."""
        return (self.errors_5xx, self.model_errors, self.latency, self.drift, self.monitoring_silent)

    def _silent_alarm(self, hours: int) -> cloudwatch.Alarm:
        """The endpoint served requests for `hours` hours but no drift datapoint arrived: monitoring stopped.

        An endpoint without traffic (or none deployed yet) is not a monitoring failure, so the drift
        datapoints count only when there were invocations: 1 (fine) without traffic, else their count.
        """
        period = cdk.Duration.hours(hours)
        watched = cloudwatch.MathExpression(
            expression="IF(FILL(invocations, 0) > 0, FILL(datapoints, 0), 1)",
            using_metrics={
                "invocations": self.serving_metric("Invocations", "Sum").with_(period=period),
                "datapoints": self.drift_metric("MaxPSI").with_(statistic="SampleCount", period=period),
            },
            label="drift datapoints while serving",
            period=period,
        )
        alarm = cloudwatch.Alarm(
            self,
            "MonitoringSilent",
            alarm_name=self.alarm_name("monitoring-silent"),
            alarm_description=(
                f"The endpoint served requests but no drift metric arrived for {hours} h: the monitoring "
                "jobs failed, found no captured request, or were not started; drift would go unnoticed"
            ),
            metric=watched,
            threshold=1,
            comparison_operator=cloudwatch.ComparisonOperator.LESS_THAN_THRESHOLD,
            evaluation_periods=1,
            treat_missing_data=cloudwatch.TreatMissingData.NOT_BREACHING,  # the expression fills the gaps
        )
        alarm.add_alarm_action(self.action)
        return alarm

    def alarm_name(self, name: str) -> str:
        """The physical alarm name of `name`, under the project prefix."""
        return f"{self.names.prefix}-{name}"

    def endpoint_metric(
        self, metric_name: str, statistic: str, variant: str = VARIANT_NAME
    ) -> cloudwatch.Metric:
        """An endpoint metric of `variant` at one-minute periods."""
        return cloudwatch.Metric(
            namespace=SAGEMAKER_NAMESPACE,
            metric_name=metric_name,
            dimensions_map={"EndpointName": self.names.endpoint, "VariantName": variant},
            statistic=statistic,
            period=ONE_MINUTE,
        )

    def serving_metric(
        self, metric_name: str, statistic: str
    ) -> cloudwatch.Metric | cloudwatch.MathExpression:
        """The `AllTraffic` metric, or with A/B testing on, every variant's: summed, or the worst p99."""
        if not self.ab_enabled:
            return self.endpoint_metric(metric_name, statistic)
        variants = {"all": VARIANT_NAME, "champion": CHAMPION_VARIANT, "challenger": CHALLENGER_VARIANT}
        filled = [f"FILL({key}, 0)" for key in variants]
        return cloudwatch.MathExpression(
            expression=f"MAX([{', '.join(filled)}])" if statistic == "p99" else " + ".join(filled),
            using_metrics={
                key: self.endpoint_metric(metric_name, statistic, v) for key, v in variants.items()
            },
            label=f"{metric_name} {statistic} of every variant",
            period=ONE_MINUTE,
        )

    def drift_metric(self, metric_name: str) -> cloudwatch.Metric:
        """An hourly maximum of a drift metric of the endpoint."""
        # The drift job runs hourly (the monitoring schedule), so one datapoint per hour.
        return cloudwatch.Metric(
            namespace=self.drift_namespace,
            metric_name=metric_name,
            dimensions_map={"Endpoint": self.names.endpoint},
            statistic="Maximum",
            period=cdk.Duration.hours(1),
        )

    def _alarm(
        self,
        construct_id: str,
        *,
        name: str,
        metric: cloudwatch.IMetric,
        threshold: float,
        description: str,
        comparison: cloudwatch.ComparisonOperator = AT_OR_ABOVE,
        evaluation_periods: int = 2,
    ) -> cloudwatch.Alarm:
        alarm = cloudwatch.Alarm(
            self,
            construct_id,
            alarm_name=self.alarm_name(name),
            alarm_description=description,
            metric=metric,
            threshold=threshold,
            comparison_operator=comparison,
            evaluation_periods=evaluation_periods,
            datapoints_to_alarm=evaluation_periods,
            treat_missing_data=cloudwatch.TreatMissingData.NOT_BREACHING,  # no traffic is not an error
        )
        alarm.add_alarm_action(self.action)
        return alarm


class OpsDashboard(Construct):
    """The CloudWatch dashboard ``<prefix>-operations`` (``dashboard``)."""

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        names: ResourceNames,
        alarms: ServingAlarms,
        other_alarms: Sequence[cloudwatch.IAlarm],
    ) -> None:
        super().__init__(scope, construct_id)
        self.names = names
        self.alarms = alarms
        self.dashboard = cloudwatch.Dashboard(
            self,
            "Dashboard",
            dashboard_name=f"{names.prefix}-operations",
            default_interval=cdk.Duration.days(7),
        )
        self.dashboard.add_widgets(
            cloudwatch.AlarmStatusWidget(
                title="Alarms", alarms=[*alarms.all, *other_alarms], width=24, height=4
            )
        )
        self.dashboard.add_widgets(*self._endpoint_widgets())
        if alarms.ab_enabled:
            self.dashboard.add_widgets(*self._variant_widgets())
        self.dashboard.add_widgets(self._drift_widget(), self._pipeline_widget(), self._quality_widget())
        self.dashboard.add_widgets(self._evaluation_widget())

    def _endpoint_widgets(self) -> list[cloudwatch.IWidget]:
        metric = self.alarms.endpoint_metric
        latency_ms = cloudwatch.MathExpression(
            expression=f"latency / {MICROSECONDS_PER_MILLISECOND}",
            using_metrics={"latency": metric("ModelLatency", "p99")},
            label="ModelLatency p99 (ms)",
            period=ONE_MINUTE,
        )
        return [
            cloudwatch.GraphWidget(
                title=f"Endpoint {self.names.endpoint}: invocations",
                left=[metric("Invocations", "Sum")],
                width=8,
            ),
            cloudwatch.GraphWidget(
                title="Endpoint errors",
                left=[
                    metric("Invocation4XXErrors", "Sum"),
                    metric("Invocation5XXErrors", "Sum"),
                    metric("InvocationModelErrors", "Sum"),
                ],
                width=8,
            ),
            cloudwatch.GraphWidget(
                title="Endpoint model latency p99 (ms)",
                left=[latency_ms],
                left_annotations=[
                    cloudwatch.HorizontalAnnotation(value=self.alarms.latency_threshold_ms, label="alarm")
                ],
                width=8,
            ),
        ]

    def _variant_widgets(self) -> list[cloudwatch.IWidget]:
        """One graph per metric with a line per A/B variant (SageMaker's VariantName dimension)."""
        metric = self.alarms.endpoint_metric
        charts = (
            ("invocations", "Invocations", "Sum"),
            ("5xx errors", "Invocation5XXErrors", "Sum"),
            ("model latency p99 (us)", "ModelLatency", "p99"),
        )
        widgets: list[cloudwatch.IWidget] = [
            cloudwatch.GraphWidget(
                title=f"A/B {title}", left=[metric(n, st, v) for v in AB_VARIANTS], width=6
            )
            for title, n, st in charts
        ]
        endpoint = self.names.endpoint
        rmse = [
            daily_metric(QUALITY_NAMESPACE, "RMSE", {"Endpoint": endpoint, "Variant": v}, "Average")
            for v in AB_VARIANTS
        ]
        widgets.append(cloudwatch.GraphWidget(title="A/B realised RMSE (late labels)", left=rmse, width=6))
        return widgets

    def _drift_widget(self) -> cloudwatch.IWidget:
        return cloudwatch.GraphWidget(
            title="Data drift of the captured inputs",
            left=[self.alarms.drift_metric("MaxPSI")],
            right=[self.alarms.drift_metric("DriftedFeatures")],
            width=8,
        )

    def _pipeline_widget(self) -> cloudwatch.IWidget:
        return cloudwatch.GraphWidget(
            title=f"Pipeline {self.names.pipeline}: executions by status",
            left=[
                daily_metric(PIPELINE_NAMESPACE, name, {"PipelineName": self.names.pipeline}, "Sum")
                for name in PIPELINE_EXECUTION_METRICS
            ],
            stacked=True,
            width=8,
        )

    def _quality_widget(self) -> cloudwatch.IWidget:
        quality = [
            daily_metric(QUALITY_NAMESPACE, name, {"Endpoint": self.names.endpoint}, "Average")
            for name in QUALITY_METRICS
        ]
        return cloudwatch.GraphWidget(
            title="Model quality (realised RUL error of the serving model)",
            left=[quality[0]],
            right=[quality[1]],
            width=8,
        )

    def _evaluation_widget(self) -> cloudwatch.IWidget:
        metrics = {
            name: daily_metric(
                QUALITY_NAMESPACE, name, {EVALUATION_DIMENSION: self.names.pipeline}, "Maximum"
            )
            for name in EVALUATION_METRICS
        }
        return cloudwatch.GraphWidget(
            title=f"Pipeline {self.names.pipeline}: test-set evaluation of each trained model",
            left=[metrics["RMSE"], metrics["MAE"], metrics["RMSECappedTruth"]],
            right=[metrics["PHM08Score"], metrics["Registered"]],
            width=24,
        )
