"""Publish model metrics: the ``publish_model_metrics`` function, the rule that calls it, and its role.

The pipeline's jobs run with network isolation, so EvaluateModel cannot put its metrics into CloudWatch.
``PipelineFinishedRule`` sends "SageMaker Model Building Pipeline Execution Status Change" events of the
training pipeline with status Succeeded or Failed (a failed quality gate ends the execution Failed) to the
function (retry policy, EventBridge dead-letter queue). The function reads the execution's
``evaluation.json`` and puts RMSE, MAE, PHM08Score, RMSECappedTruth and Registered (0/1) into
``TurbofanRul/ModelQuality`` with the dimension ``PipelineName``, shown by the operations dashboard.

The same function publishes the monitoring pipeline's metrics: ``MonitoringFinishedRule`` sends that
pipeline's finished executions, and the function sends the PutMetricData requests its network-isolated
jobs left in ``metrics.jsonl`` under ``monitoring/<execution id>/`` (drift and model-quality namespaces).

With the managed MLflow server on (``tracking.mlflow_server``), the function also logs each finished
training execution to it as one MLflow run (metrics, data and model version, registered or not), through
the ``sagemaker.experiments`` VPC endpoint: the jobs cannot, being network-isolated.

The role allows exactly the calls the handler makes: the pipeline's executions, the processing jobs
SageMaker Pipelines starts (``pipelines-*``), the pipeline's prefix in the artifacts bucket and the key;
``cloudwatch:PutMetricData`` has no resource-level permissions, so it is on ``*`` and limited to the
namespace by the ``cloudwatch:namespace`` condition.
"""

from __future__ import annotations

import aws_cdk as cdk
from aws_cdk import aws_events as events
from aws_cdk import aws_kms as kms
from aws_cdk import aws_sqs as sqs
from constructs import Construct

from lambdas.publish_model_metrics import config as publish_env
from lambdas.publish_model_metrics.handler import HANDLED_STATUSES
from pipeline_steps.names import EVALUATE_STEP, REGISTER_STEP
from settings import MonitoringSettings, ResourceNames
from stacks.ops_common import EVENTS, FunctionSpec, LambdaNetwork, OpsFunction, add_rule
from stacks.tracking_stack import MLFLOW_LOG_ACTIONS

PUBLISHED_STATUSES = HANDLED_STATUSES  # the rule sends exactly the statuses the handler publishes


def mlflow_environment(names: ResourceNames, server_arn: str) -> dict[str, str]:
    """Where the function logs each finished training execution: the server and the pipeline's experiment."""
    return {publish_env.ENV_TRACKING_SERVER_ARN: server_arn, publish_env.ENV_EXPERIMENT: names.pipeline}


class ModelMetricsPublisher(Construct):
    """``function`` (an :class:`OpsFunction`) and ``rule``."""

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        names: ResourceNames,
        namespace: str,
        monitoring: MonitoringSettings,
        key: kms.IKey,
        network: LambdaNetwork,
        dead_letter_queue: sqs.IQueue,
        drift_namespace: str = "TurbofanRul/Drift",
        mlflow_server_arn: str | None = None,
    ) -> None:
        super().__init__(scope, construct_id)
        self.stack = cdk.Stack.of(self)
        self.names = names
        self.namespace = namespace
        self.monitoring_namespaces = (drift_namespace, namespace)
        self.pipeline_arn = self._sagemaker_arn("pipeline", names.pipeline)
        self.function = OpsFunction(
            self,
            "PublishModelMetrics",
            spec=FunctionSpec(
                name="publish-model-metrics",
                role_name=names.publish_metrics_role,
                handler="lambdas.publish_model_metrics.handler.handler",
                description="Publishes the evaluation of each finished pipeline execution to CloudWatch",
                environment=self._environment(mlflow_server_arn),
                timeout=cdk.Duration.seconds(60),
            ),
            names=names,
            key=key,
            network=network,
            log_retention_days=monitoring.log_retention_days,
        )
        self._allow_publishing(key)
        self._allow_monitoring_metrics()
        if mlflow_server_arn:
            self.function.role.allow("LogExecutionsToMlflow", MLFLOW_LOG_ACTIONS, [mlflow_server_arn])
        self.function.role.acknowledge_wildcards()
        self.rule = self._create_rule(dead_letter_queue)
        self.monitoring_rule = self._create_rule(dead_letter_queue, monitoring=True)

    def _environment(self, mlflow_server_arn: str | None) -> dict[str, str]:
        names = self.names
        return {
            publish_env.ENV_PIPELINE: names.pipeline,
            publish_env.ENV_NAMESPACE: self.namespace,
            publish_env.ENV_EVALUATE_STEP: EVALUATE_STEP,
            publish_env.ENV_REGISTER_STEP: REGISTER_STEP,
            publish_env.ENV_MONITORING_PIPELINE: names.monitoring_pipeline,
            publish_env.ENV_MONITORING_BUCKET: names.artifacts_bucket,
            publish_env.ENV_MONITORING_PREFIX: names.monitoring_prefix,
            publish_env.ENV_MONITORING_NAMESPACES: ",".join(self.monitoring_namespaces),
            **(mlflow_environment(names, mlflow_server_arn) if mlflow_server_arn else {}),
        }

    def _sagemaker_arn(self, resource: str, name: str) -> str:
        return self.stack.format_arn(service="sagemaker", resource=resource, resource_name=name)

    def _allow_publishing(self, key: kms.IKey) -> None:
        role, names = self.function.role, self.names
        role.allow(
            "ListExecutionSteps",
            ["sagemaker:ListPipelineExecutionSteps"],
            [self._sagemaker_arn("pipeline", f"{names.pipeline}/execution/*")],
            wildcard_reason="execution ids are generated by SageMaker Pipelines in the project pipeline",
        )
        role.allow(
            "DescribeEvaluationJobs",
            ["sagemaker:DescribeProcessingJob"],
            [self._sagemaker_arn("processing-job", "pipelines-*")],
            wildcard_reason="SageMaker Pipelines names its jobs pipelines-<execution>-<step>-<suffix>",
        )
        role.allow(
            "ReadEvaluationReports",
            ["s3:GetObject"],
            [f"arn:{self.stack.partition}:s3:::{names.artifacts_bucket}/{names.registry_prefix}*"],
            wildcard_reason="evaluation.json is kept under registry/<pipeline>/<execution>/",
        )
        role.allow("DecryptEvaluationReports", ["kms:Decrypt"], [key.key_arn])
        role.allow(
            "PutModelQualityMetrics",
            ["cloudwatch:PutMetricData"],
            ["*"],
            conditions={"StringEquals": {"cloudwatch:namespace": self.namespace}},
            wildcard_reason="cloudwatch:PutMetricData supports no resource-level permissions; the "
            "cloudwatch:namespace condition limits it to the model-quality namespace",
        )

    def _allow_monitoring_metrics(self) -> None:
        role, names = self.function.role, self.names
        bucket = f"arn:{self.stack.partition}:s3:::{names.artifacts_bucket}"
        role.allow(
            "ListMonitoringReports",
            ["s3:ListBucket"],
            [bucket],
            conditions={"StringLike": {"s3:prefix": [f"{names.monitoring_prefix}*"]}},
        )
        role.allow(
            "ReadMonitoringReports",
            ["s3:GetObject"],
            [f"{bucket}/{names.monitoring_prefix}*"],
            wildcard_reason="metrics.jsonl is keyed by monitoring execution and step under monitoring/",
        )
        role.allow(
            "PutMonitoringMetrics",
            ["cloudwatch:PutMetricData"],
            ["*"],
            conditions={"StringEquals": {"cloudwatch:namespace": list(self.monitoring_namespaces)}},
            wildcard_reason="cloudwatch:PutMetricData supports no resource-level permissions; the "
            "cloudwatch:namespace condition limits it to the drift and model-quality namespaces",
        )

    def _create_rule(self, dead_letter_queue: sqs.IQueue, monitoring: bool = False) -> events.CfnRule:
        function = self.function.function
        pipeline = self.names.monitoring_pipeline if monitoring else self.names.pipeline
        construct_id = "MonitoringFinishedRule" if monitoring else "PipelineFinishedRule"
        rule = add_rule(
            self,
            construct_id,
            rule_name=f"{self.names.prefix}-publish-{'monitoring' if monitoring else 'model'}-metrics",
            description=f"Publish the metrics of finished executions of {pipeline}",
            event_pattern={
                "source": ["aws.sagemaker"],
                "detail-type": ["SageMaker Model Building Pipeline Execution Status Change"],
                "detail": {
                    "pipelineArn": [self._sagemaker_arn("pipeline", pipeline)],
                    "currentPipelineExecutionStatus": list(PUBLISHED_STATUSES),
                },
            },
            target={"id": "PublishModelMetricsFunction", "arn": function.function_arn},
            dead_letter_queue=dead_letter_queue,
        )
        function.add_permission(f"InvokedBy{construct_id}", principal=EVENTS, source_arn=rule.attr_arn)
        return rule
