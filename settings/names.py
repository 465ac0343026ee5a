"""Deterministic physical names shared by the stacks and the pipeline definition."""

from __future__ import annotations

from settings.platform import AwsTarget, ProjectSettings

# The function that deploys approved versions and runs A/B operator actions: <prefix>-<this>.
DEPLOY_FUNCTION = "deploy-on-approval"


class ResourceNames:
    """Deterministic physical names shared by the stacks and the pipeline definition."""

    def __init__(self, project: ProjectSettings, aws: AwsTarget) -> None:
        self.prefix = project.prefix
        self._region = aws.region
        self._suffix = f"{aws.account}-{aws.region}"

    @property
    def data_bucket(self) -> str:
        """The bucket of the raw C-MAPSS data and the fleet's recent cycles."""
        return f"{self.prefix}-data-{self._suffix}"

    @property
    def artifacts_bucket(self) -> str:
        """The bucket of code bundles, models, reports, captures and other pipeline outputs."""
        return f"{self.prefix}-artifacts-{self._suffix}"

    @property
    def access_logs_bucket(self) -> str:
        """The bucket the data and artifacts buckets' server access logs are written to."""
        return f"{self.prefix}-logs-{self._suffix}"

    @property
    def pipeline(self) -> str:
        """The training pipeline."""
        return f"{self.prefix}-training"

    @property
    def monitoring_pipeline(self) -> str:
        """The second pipeline: drift and late-label quality jobs over the last window of captures."""
        return f"{self.prefix}-monitoring"

    @property
    def batch_pipeline(self) -> str:
        """The third pipeline: every engine of the fleet scored daily by the model in service, ranked."""
        return f"{self.prefix}-batch"

    @property
    def intermediates_prefix(self) -> str:
        """Artifacts-bucket prefix of everything a pipeline execution writes; expires after N days."""
        return f"{self.pipeline}/"

    @property
    def model_package_group(self) -> str:
        """The model package group the training pipeline registers versions in."""
        return f"{self.prefix}-models"

    def _role(self, concern: str) -> str:
        """Role names carry the region: IAM is global, so two regional deployments must not collide."""
        return f"{self.prefix}-{concern}-{self._region}"

    @property
    def pipeline_role(self) -> str:
        """Execution role of the SageMaker pipelines."""
        return self._role("pipeline")

    @property
    def job_role(self) -> str:
        """Execution role of the pipelines' processing, training and tuning jobs."""
        return self._role("job")

    @property
    def studio_role(self) -> str:
        """Data-scientist persona: the Studio execution role."""
        return self._role("studio")

    @property
    def experiment_job_role(self) -> str:
        """Role of the jobs data scientists start from Studio: writes only the Studio prefix."""
        return self._role("experiment")

    @property
    def approver_role(self) -> str:
        """Approver persona: the only role that may set a model package to Approved."""
        return self._role("approver")

    @property
    def operator_role(self) -> str:
        """Operator persona: runs and watches the platform (start/stop executions, alarms), never approves."""
        return self._role("operator")

    @property
    def model_role(self) -> str:
        """Execution role of the endpoint's model: reads models/, writes data capture; passed by deploy-fn."""
        return self._role("model")

    @property
    def scheduler_role(self) -> str:
        """Role EventBridge rules and Scheduler assume to start the project's pipelines."""
        return self._role("trigger")

    @property
    def flow_logs_role(self) -> str:
        """Role VPC flow logs assume to deliver to CloudWatch Logs."""
        return self._role("flow-logs")

    @property
    def code_deployment_role(self) -> str:
        """Role of CDK's BucketDeployment handler that uploads the code bundle and the definition."""
        return self._role("code-deploy")

    @property
    def start_pipeline_role(self) -> str:
        """Role of the function that starts the training pipeline on new, scheduled or drift-found data."""
        return self._role("start-pipeline-fn")

    @property
    def deploy_role(self) -> str:
        """Role of the deploy-on-approval function."""
        return self._role("deploy-fn")

    @property
    def publish_metrics_role(self) -> str:
        """Role of the function that publishes each finished execution's evaluation to CloudWatch."""
        return self._role("metrics-fn")

    @property
    def mlflow_role(self) -> str:
        """Role the MLflow tracking server assumes to read and write its artifact store."""
        return self._role("mlflow")

    @property
    def deploy_function(self) -> str:
        """Name of the deploy-on-approval function (the operator invokes it for A/B actions)."""
        return f"{self.prefix}-{DEPLOY_FUNCTION}"

    @property
    def mirror_role(self) -> str:
        """Role of the function that copies approved models to the S3-compatible mirror (outside the VPC)."""
        return self._role("mirror-fn")

    @property
    def backup_role(self) -> str:
        """Role of the function that backs up the registry and the endpoint configuration."""
        return self._role("backup-fn")

    @property
    def replication_role(self) -> str:
        """Role S3 assumes to replicate the artifacts bucket to another region (when configured)."""
        return self._role("replication")

    @property
    def mlflow_tracking_server(self) -> str:
        """The managed MLflow tracking server."""
        return f"{self.prefix}-mlflow"

    @property
    def endpoint(self) -> str:
        """The real-time inference endpoint."""
        return f"{self.prefix}-rul"

    @property
    def monitoring_schedule(self) -> str:
        """The Model Monitor data-quality schedule of the endpoint."""
        return f"{self.prefix}-rul-data-quality"

    @property
    def studio_domain(self) -> str:
        """The SageMaker Studio domain."""
        return f"{self.prefix}-studio"

    @property
    def key_alias(self) -> str:
        """The alias of the project's KMS key."""
        return f"alias/{self.prefix}-data"

    @property
    def log_group_prefix(self) -> str:
        """Log groups the project creates (and encrypts with its key) live under this path."""
        return f"/{self.prefix}/"

    # Key prefixes inside the buckets, shared by the IAM policies and the pipeline definition.
    raw_data_prefix = "raw/"  # data bucket: C-MAPSS input files (read-only for jobs)
    models_prefix = "models/"  # artifacts bucket: model artifacts of registered models (kept)
    # artifacts bucket: what a registered model package refers to besides its model data (evaluation report,
    # drift baselines, data manifest), per pipeline execution; kept, unlike the intermediates
    registry_prefix = "registry/"
    code_prefix = "code/"  # artifacts bucket: job source bundles
    champion_prefix = "champion/"  # artifacts bucket: the approved model in service (read by evaluation)
    studio_prefix = "studio/"  # artifacts bucket: Studio users' scratch space and shared notebooks
    data_capture_prefix = "datacapture/"  # artifacts bucket: endpoint requests and responses (data capture)
    ground_truth_prefix = "ground-truth/"  # artifacts bucket: late failure labels read by the quality job
    monitoring_prefix = "monitoring/"  # artifacts bucket: Model Monitor reports
    fleet_prefix = "fleet/"  # data bucket: every engine's recent cycles, scored daily by the batch pipeline
    batch_prefix = "batch/"  # artifacts bucket: fleet predictions and maintenance lists, per execution
    mlflow_prefix = "mlflow/"  # artifacts bucket: the managed MLflow tracking server's artifact store

    def buckets(self) -> tuple[str, ...]:
        """The data, artifacts and access-logs bucket names."""
        return (self.data_bucket, self.artifacts_bucket, self.access_logs_bucket)

    def key_user_roles(self) -> tuple[str, ...]:
        """Roles the key policy lets use the key (data, model artifacts, job volumes, dead-letter queues)."""
        return (
            self.pipeline_role,
            self.job_role,
            self.studio_role,
            self.experiment_job_role,
            self.approver_role,
            self.operator_role,
            self.model_role,
            self.code_deployment_role,
            self.start_pipeline_role,
            self.deploy_role,
            self.publish_metrics_role,
            self.mlflow_role,
            self.backup_role,
            self.mirror_role,
            self.replication_role,
        )

    def roles(self) -> tuple[str, ...]:
        """Every role name the project creates: the key users, the trigger role and the flow-logs role."""
        return (*self.key_user_roles(), self.scheduler_role, self.flow_logs_role)
