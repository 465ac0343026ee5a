"""Ops stack: what runs the platform day to day — triggers, deployment on approval, alarms, dashboard.

Built after the ML stack, from the typed :class:`stacks.platform.Platform` and the settings:

* :class:`stacks.triggers.PipelineTriggers` — schedule, new raw data and drift start the pipeline;
* :class:`stacks.deployment.DeployOnApproval` — an approved (or rejected) model version is deployed;
* :class:`stacks.model_metrics.ModelMetricsPublisher` — a finished pipeline execution's evaluation is
  published to CloudWatch (the pipeline's jobs run with network isolation);
* :class:`stacks.monitoring_dashboard.ServingAlarms` — endpoint 5xx, model errors, p99 latency, drift,
  monitoring silent;
* :class:`stacks.monitoring_schedule.MonitoringSchedule` — EventBridge Scheduler starts the monitoring
  pipeline hourly (its metrics are published by the model-metrics function);
* ``PipelineFailedRule`` — a failed pipeline execution is published, readable, to the alerts topic;
* one alarm per dead-letter queue, and :class:`stacks.monitoring_dashboard.OpsDashboard`.

The functions run in the job subnets with their own security group: HTTPS out only (the subnets
route to the VPC endpoints and the S3 gateway endpoint, nothing else), admitted by the endpoints'
security group through an ingress rule created here. Dead-letter queues use the project key; the key
policy admits the functions' roles and EventBridge (see ``settings.ResourceNames.key_user_roles`` and
``stacks.storage_stack.TOPIC_PUBLISHER_SERVICES``).
"""

from __future__ import annotations

from typing import cast

import aws_cdk as cdk
from aws_cdk import aws_ec2 as ec2
from aws_cdk import aws_events as events
from aws_cdk import aws_sqs as sqs
from constructs import Construct

from settings import Settings
from stacks.backup import add_registry_backup
from stacks.deployment import DeployOnApproval
from stacks.model_metrics import ModelMetricsPublisher
from stacks.model_mirror import add_model_mirror
from stacks.monitoring_dashboard import QUALITY_NAMESPACE, OpsDashboard, ServingAlarms
from stacks.monitoring_schedule import MonitoringSchedule
from stacks.network_stack import HTTPS, NetworkStack
from stacks.ops_common import LambdaNetwork, add_rule, encrypted_queue
from stacks.platform import Platform
from stacks.queue_alarm import queue_alarm
from stacks.triggers import PipelineTriggers

# Fields of "SageMaker Model Building Pipeline Execution Status Change" events, for the alert text.
PIPELINE_FAILED_INPUT_PATHS = {
    "pipeline": "$.detail.pipelineArn",
    "execution": "$.detail.pipelineExecutionArn",
    "name": "$.detail.pipelineExecutionDisplayName",
    "status": "$.detail.currentPipelineExecutionStatus",
    "time": "$.time",
}
PIPELINE_FAILED_TEMPLATE = (
    '"Pipeline execution <name> <status> at <time>. Execution: <execution> (pipeline <pipeline>). '
    "See the failed step and its reason in SageMaker Studio or with "
    'aws sagemaker list-pipeline-execution-steps --pipeline-execution-arn <execution>."'
)


class OpsStack(cdk.Stack):
    """``triggers``, ``deployment``, ``model_metrics``, ``alarms``, ``dashboard`` and
    ``pipeline_failed_rule``."""

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        platform: Platform,
        image_uri: str,
        mlflow_server_arn: str | None = None,
        **kwargs,
    ) -> None:
        super().__init__(scope, construct_id, **kwargs)
        self.platform = platform
        names = platform.names
        self.network = self._create_lambda_network()
        self.events_dlq = encrypted_queue(
            self, "EventTargetsDlq", queue_name=f"{names.prefix}-event-targets-dlq", key=platform.key
        )
        self.alarms = ServingAlarms(
            self,
            "Alarms",
            names=names,
            serving=platform.settings.serving,
            monitoring=platform.settings.monitoring,
            topic=platform.alerts_topic,
        )
        self.triggers = self._create_triggers()
        self.deployment = self._create_deployment(image_uri)
        self.model_metrics = self._create_model_metrics(mlflow_server_arn)
        self.monitoring_schedule = MonitoringSchedule(
            self,
            "MonitoringSchedule",
            names=names,
            monitoring=platform.settings.monitoring,
            trigger_role=platform.trigger_role,
        )
        self.backup = add_registry_backup(self, platform, self.network, self.events_dlq)
        self.model_mirror = add_model_mirror(self, platform, self.events_dlq)  # None unless mirror.enabled
        self.pipeline_failed_rule = self._create_pipeline_failed_rule()
        self.queue_alarms = self._create_queue_alarms()
        self.dashboard = OpsDashboard(
            self, "Dashboard", names=names, alarms=self.alarms, other_alarms=self.queue_alarms
        )

    def _create_triggers(self) -> PipelineTriggers:
        settings: Settings = self.platform.settings
        return PipelineTriggers(
            self,
            "Triggers",
            names=self.platform.names,
            schedule_expression=settings.pipeline.schedule_expression,
            monitoring=settings.monitoring,
            key=self.platform.key,
            network=self.network,
            drift_alarm=self.alarms.drift,
            dead_letter_queue=self.events_dlq,
        )

    def _create_deployment(self, image_uri: str) -> DeployOnApproval:
        settings: Settings = self.platform.settings
        return DeployOnApproval(
            self,
            "Deployment",
            names=self.platform.names,
            serving=settings.serving,
            monitoring=settings.monitoring,
            key=self.platform.key,
            network=self.network,
            job_network=self.platform.job_network,
            rollback_alarm_names=self.alarms.rollback_alarm_names,
            dead_letter_queue=self.events_dlq,
            # The job image, as for the pipelines (ml_stack): the optional Model Monitor schedule runs it.
            drift_image_uri=image_uri,
        )

    def _create_model_metrics(self, mlflow_server_arn: str | None) -> ModelMetricsPublisher:
        return ModelMetricsPublisher(
            self,
            "ModelMetrics",
            names=self.platform.names,
            namespace=QUALITY_NAMESPACE,
            monitoring=self.platform.settings.monitoring,
            key=self.platform.key,
            network=self.network,
            dead_letter_queue=self.events_dlq,
            drift_namespace=self.alarms.drift_namespace,
            mlflow_server_arn=mlflow_server_arn,
        )

    def _create_lambda_network(self) -> LambdaNetwork:
        job_network = self.platform.job_network
        group = ec2.SecurityGroup(
            self,
            "FunctionSecurityGroup",
            vpc=job_network.vpc,
            description="Ops Lambda functions: HTTPS to the VPC endpoints and the S3 gateway endpoint",
            allow_all_outbound=False,
        )
        # No internet route exists: 443 reaches only the interface endpoints and the S3 gateway endpoint.
        group.add_egress_rule(ec2.Peer.any_ipv4(), HTTPS, "HTTPS to VPC endpoints and S3 gateway endpoint")
        network_stack = cast(NetworkStack, self.platform.stacks["Network"])
        # Created here (not in the Network stack), so the Network stack needs nothing from this one.
        ec2.CfnSecurityGroupIngress(
            self,
            "EndpointsAcceptFunctions",
            group_id=network_stack.endpoint_security_group.security_group_id,
            source_security_group_id=group.security_group_id,
            ip_protocol="tcp",
            from_port=443,
            to_port=443,
            description="HTTPS from the ops Lambda functions",
        )
        return LambdaNetwork(job_network.vpc, job_network.subnets, group)

    def _create_pipeline_failed_rule(self) -> events.CfnRule:
        names = self.platform.names
        pipeline_arn = self.format_arn(service="sagemaker", resource="pipeline", resource_name=names.pipeline)
        return add_rule(
            self,
            "PipelineFailedRule",
            rule_name=f"{names.prefix}-pipeline-failed",
            description=f"Tell the alerts topic when an execution of {names.pipeline} fails",
            event_pattern={
                "source": ["aws.sagemaker"],
                "detail-type": ["SageMaker Model Building Pipeline Execution Status Change"],
                "detail": {"pipelineArn": [pipeline_arn], "currentPipelineExecutionStatus": ["Failed"]},
            },
            target={
                "id": "AlertsTopic",
                "arn": self.platform.alerts_topic.topic_arn,
                "input_transformer": events.CfnRule.InputTransformerProperty(
                    input_paths_map=PIPELINE_FAILED_INPUT_PATHS, input_template=PIPELINE_FAILED_TEMPLATE
                ),
            },
            dead_letter_queue=self.events_dlq,
        )

    def _create_queue_alarms(self) -> list:
        prefix = self.platform.names.prefix
        queues: dict[str, sqs.Queue] = {
            "event-targets": self.events_dlq,
            "start-pipeline": self.triggers.start_function.failures,
            "deploy-on-approval": self.deployment.function.failures,
            "publish-model-metrics": self.model_metrics.function.failures,
        }
        return [
            queue_alarm(
                self,
                f"DeadLetters{''.join(part.title() for part in name.split('-'))}",
                queue=queue,
                name=f"{prefix}-{name}-dead-letters",
                topic=self.platform.alerts_topic,
            )
            for name, queue in queues.items()
        ]
