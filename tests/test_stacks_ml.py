"""The ML stack: model package group, code and definition deployment, and the pipeline resource."""

from __future__ import annotations

import json

import aws_cdk as cdk
import pytest
from aws_cdk.assertions import Match, Template
from cdk_helpers import cdk_json_context

from app import build_app
from local_runner.champion import ensure_champion_prefix
from local_runner.execution import PipelineExecutor
from local_runner.main_job import publish_code
from local_runner.object_store import ObjectStore
from local_runner.registry import LocalRegistry
from pipeline_steps.render import render_definition

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def ml_stack():
    app = build_app(cdk_json_context())
    return next(
        child for child in app.node.children if isinstance(child, cdk.Stack) and child.node.id == "Ml"
    )


@pytest.fixture(scope="module")
def template(ml_stack) -> Template:
    return Template.from_stack(ml_stack)


def test_model_package_group_and_pipeline_use_the_settings_names(ml_stack, template):
    names = ml_stack.platform.names
    template.has_resource_properties(
        "AWS::SageMaker::ModelPackageGroup", {"ModelPackageGroupName": names.model_package_group}
    )
    template.has_resource_properties(
        "AWS::SageMaker::Pipeline",
        {
            "PipelineName": names.pipeline,
            "PipelineDefinition": {
                "PipelineDefinitionS3Location": {
                    "Bucket": names.artifacts_bucket,
                    "Key": ml_stack.definition_key,
                }
            },
            "RoleArn": Match.any_value(),
        },
    )


def test_the_deployed_definition_is_get_pipeline_rendered_for_the_stack_config(ml_stack):
    assert ml_stack.definition == render_definition(ml_stack.config)
    definition = json.loads(ml_stack.definition)
    assert (
        ml_stack.config.code_uri
        == f"s3://{ml_stack.platform.names.artifacts_bucket}/code/{ml_stack.bundle.version}/"
    )
    processing = next(step for step in definition["Steps"] if step["Name"] == "PreprocessData")["Arguments"]
    assert processing["NetworkConfig"]["EnableNetworkIsolation"] is True
    assert processing["NetworkConfig"]["VpcConfig"]["Subnets"]  # the job network's subnets
    assert processing["ProcessingOutputConfig"]["KmsKeyId"].endswith(ml_stack.platform.names.key_alias)


def test_code_definition_and_champion_placeholder_are_deployed_encrypted(template):
    template.has_resource_properties(
        "Custom::CDKBucketDeployment",
        {"Prune": False, "SystemMetadata": Match.object_like({"sse": "aws:kms"}), "RetainOnDelete": True},
    )


def test_the_template_definition_runs_in_the_local_runner(ml_stack, tmp_path, synthetic_dir):
    """The very definition CloudFormation deploys, executed offline (network and KMS settings are inert)."""
    config = ml_stack.config
    store = ObjectStore(tmp_path / "s3")
    assert publish_code(store, tmp_path, bucket=config.artifact_bucket) == config.code_uri
    store.upload(synthetic_dir / "train_FD001.txt", config.data_uri + "train_FD001.txt")
    ensure_champion_prefix(store, config.champion_uri)
    registry = LocalRegistry(tmp_path / "registry.sqlite")
    registry.create_group(config.model_package_group_name)
    executor = PipelineExecutor(
        json.loads(ml_stack.definition), tmp_path, store, registry, echo=lambda line: None
    )
    result = executor.start({"MaxTuningJobs": 1, "MaxParallelTuningJobs": 1})
    assert result.status == "Succeeded", result.failure_reason
    assert [p.version for p in registry.list(config.model_package_group_name)] == [1]
