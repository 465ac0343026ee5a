"""The ML stack: model package group, job image, code and definition deployment, and the pipeline resource.

The default app builds the job image as a CDK asset; a second app brings its own image (the setting). In
both, one image URI reaches every job, the registered model's inference specification and the Ops stack.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import aws_cdk as cdk
import pytest
from aws_cdk import aws_ecr_assets as ecr_assets
from aws_cdk.assertions import Match, Template
from cdk_helpers import cdk_json_context

from app import build_app
from local_runner.champion import ensure_champion_prefix
from local_runner.execution import PipelineExecutor
from local_runner.main_job import publish_code
from local_runner.object_store import ObjectStore
from local_runner.registry import LocalRegistry
from pipeline_steps.render import render_definition
from stacks.ml_stack import CHAMPION_PLACEHOLDER, GROUND_TRUTH_PLACEHOLDER_KEY

pytestmark = pytest.mark.slow

BYO_URI = "222222222222.dkr.ecr.eu-west-1.amazonaws.com/team/rul-jobs:2026.11.1"
BYO_SERVING_TYPE = "ml.c5.xlarge"  # the second app's serving.instance_type
IMAGE_KEYS = {"ImageUri", "TrainingImage", "Image"}
# With Model Monitor on, the data-quality baseline runs AWS's own analyzer image (from an AWS account's
# registry, chosen by the SDK per region): the one image that is not the project's.
AWS_ANALYZER = "/sagemaker-model-monitor-analyzer"


def _app_stack(app: cdk.App, stack_id: str) -> cdk.Stack:
    stack = app.node.find_child(stack_id)
    assert isinstance(stack, cdk.Stack)
    return stack


@pytest.fixture(scope="module")
def ml_stack():
    return _app_stack(build_app(cdk_json_context()), "Ml")


@pytest.fixture(scope="module")
def byo_ml_stack():
    # With the Model Monitor schedule on, so the Ops stack's deploy function carries the image too; and
    # another serving instance type, which the registered model package must list.
    settings = {
        "pipeline": {"job_image_uri": BYO_URI},
        "monitoring": {"use_model_monitor": True},
        "serving": {"instance_type": BYO_SERVING_TYPE},
    }
    context = {**cdk_json_context(), "settings": settings}
    return _app_stack(build_app(context), "Ml")


def _images(node: object, key: str = "") -> list[tuple[str, object]]:
    """(key, value) of every image field in a definition, and of any other string naming an ECR image."""
    if isinstance(node, dict):
        return [found for k, v in node.items() for found in _images(v, k)]
    if isinstance(node, list):
        return [found for item in node for found in _images(item, key)]
    return [(key, node)] if key in IMAGE_KEYS or (isinstance(node, str) and ".dkr.ecr." in node) else []


def _templates(stack: cdk.Stack) -> dict[str, dict]:
    app = stack.node.root
    return {
        child.node.id: Template.from_stack(child).to_json()
        for child in app.node.children
        if isinstance(child, cdk.Stack)
    }


def _ecr_references(node: object) -> list[object]:
    """Every ECR image reference in a template: URIs inside strings (also inside a definition body) and
    ``Fn::Sub`` expressions (the asset's URI)."""
    if isinstance(node, str):
        return re.findall(r"[0-9]{12}\.dkr\.ecr\.[^\"\s\\]+", node)
    if isinstance(node, dict) and isinstance(node.get("Fn::Sub"), str):
        return [node] if ".dkr.ecr." in node["Fn::Sub"] else []
    if isinstance(node, dict):
        return [found for value in node.values() for found in _ecr_references(value)]
    if isinstance(node, list):
        return [found for item in node for found in _ecr_references(item)]
    return []


def _drift_image(ops_template: dict) -> object:
    (variables,) = [
        r["Properties"]["Environment"]["Variables"]
        for r in ops_template["Resources"].values()
        if r["Type"] == "AWS::Lambda::Function"
        and "DRIFT_IMAGE_URI" in r["Properties"].get("Environment", {}).get("Variables", {})
    ]
    return variables["DRIFT_IMAGE_URI"]


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
    # The key ARN (SageMaker's volume keys take a key id or ARN, not an alias), resolved at deploy time.
    kms_key = processing["ProcessingOutputConfig"]["KmsKeyId"]
    assert ml_stack.resolve(kms_key) == ml_stack.resolve(ml_stack.platform.key.key_arn)


def _register_spec(stack: cdk.Stack) -> dict:
    steps, found = list(json.loads(stack.definition)["Steps"]), None
    while steps and found is None:
        step = steps.pop()
        if step["Type"] == "Condition":
            steps += step["Arguments"]["IfSteps"] + step["Arguments"]["ElseSteps"]
        elif step["Type"] == "RegisterModel":
            found = step["Arguments"]["InferenceSpecification"]
    assert found is not None
    return found


def test_the_registered_package_lists_the_serving_instance_type(ml_stack, byo_ml_stack):
    """serving.instance_type reaches the RegisterModel step of the synthesized definition."""
    for stack, expected in ((ml_stack, "ml.m5.large"), (byo_ml_stack, BYO_SERVING_TYPE)):
        assert stack.platform.settings.serving.instance_type == expected
        spec = _register_spec(stack)
        assert spec["SupportedRealtimeInferenceInstanceTypes"] == [expected]
        assert spec["SupportedTransformInstanceTypes"] == [expected]


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
    result = executor.start({"TuningMaxJobs": 1, "TuningMaxParallelJobs": 1})
    assert result.status == "Succeeded", result.failure_reason
    assert [p.version for p in registry.list(config.model_package_group_name)] == [1]


# The job image ---------------------------------------------------------------------------------------


def test_no_template_and_no_definition_names_a_latest_image(ml_stack, byo_ml_stack):
    for stack in (ml_stack, byo_ml_stack):
        assert ":latest" not in stack.definition + stack.monitoring_pipeline.definition
        for stack_id, template in _templates(stack).items():
            assert ":latest" not in json.dumps(template), stack_id


def test_every_image_of_the_definition_is_the_one_job_image(ml_stack):
    images = _images(json.loads(ml_stack.definition))
    assert {key for key, _ in images} == IMAGE_KEYS  # processing, training and the registered model
    assert {value for _, value in images} == {ml_stack.job_image_uri}
    monitoring = _images(json.loads(ml_stack.monitoring_pipeline.definition))
    assert monitoring and {value for _, value in monitoring} == {ml_stack.job_image_uri}


def test_the_job_image_is_the_content_addressed_linux_amd64_asset(ml_stack):
    (asset,) = [c for c in ml_stack.node.find_all() if isinstance(c, ecr_assets.DockerImageAsset)]
    assert ml_stack.job_image_uri == asset.image_uri
    resolved = ml_stack.resolve(ml_stack.job_image_uri)
    assert resolved["Fn::Sub"].endswith(f"-container-assets-111111111111-eu-west-1:{asset.asset_hash}")
    assembly = cdk.Stage.of(ml_stack).synth()
    manifest = json.loads((Path(assembly.directory) / f"{ml_stack.artifact_id}.assets.json").read_text())
    (image,) = manifest["dockerImages"].values()
    assert image["source"]["platform"] == "linux/amd64"
    assert [d["imageTag"] for d in image["destinations"].values()] == [asset.asset_hash]


def test_the_deployed_definition_and_the_ops_stack_get_the_same_image_uri(ml_stack, template):
    resolved = ml_stack.resolve(ml_stack.job_image_uri)
    # The definition's tokens are filled in at deploy time by the BucketDeployment (json_data markers).
    (deployment,) = template.find_resources("Custom::CDKBucketDeployment").values()
    markers = [m for source in deployment["Properties"]["SourceMarkers"] for m in source.values()]
    assert {"Fn::Join": ["", ['"', resolved, '"']]} in markers
    # Any other stack naming an image (the Ops deploy function, when it runs Model Monitor) names this
    # one: the same Fn::Sub, a pseudo parameter and no export.
    references = [ref for t in _templates(ml_stack).values() for ref in _ecr_references(t)]
    assert references and all(ref == resolved for ref in references)


def test_a_brought_image_replaces_the_asset_everywhere(ml_stack, byo_ml_stack):
    assert byo_ml_stack.job_image_uri == BYO_URI
    assert not [c for c in byo_ml_stack.node.find_all() if isinstance(c, ecr_assets.DockerImageAsset)]
    for definition in (byo_ml_stack.definition, byo_ml_stack.monitoring_pipeline.definition):
        images = {value for _, value in _images(json.loads(definition))}
        assert {image for image in images if not image.endswith(AWS_ANALYZER)} == {BYO_URI}
    templates = _templates(byo_ml_stack)
    assert _drift_image(templates["Ops"]) == BYO_URI  # the deploy function's monitoring image
    references = {ref for t in templates.values() for ref in _ecr_references(t)}
    assert {ref for ref in references if not str(ref).endswith(AWS_ANALYZER)} == {BYO_URI}
    # Another image, another definition object: CloudFormation updates the pipeline when the image changes.
    assert byo_ml_stack.definition_key != ml_stack.definition_key


# Deployment of the code and definition, and the pipeline resource -----------------------------------


def _logical_id(template: Template, kind: str, prefix: str) -> str:
    (found,) = [key for key in template.find_resources(kind) if key.startswith(prefix)]
    return found


def test_the_pipeline_waits_for_the_policy_that_lets_it_read_its_definition(template):
    read_definition = _logical_id(template, "AWS::IAM::ManagedPolicy", "ReadPipelineDefinition")
    (pipeline,) = [
        p
        for p in template.find_resources("AWS::SageMaker::Pipeline").values()
        if "PipelineDefinitionS3Location" in p["Properties"]["PipelineDefinition"]
    ]
    assert read_definition in pipeline["DependsOn"]


def test_code_is_deployed_by_the_named_role_with_only_this_versions_writes(ml_stack, template):
    names = ml_stack.platform.names
    role_id = _logical_id(template, "AWS::IAM::Role", "CodeDeploymentRole")
    role = template.find_resources("AWS::IAM::Role")[role_id]["Properties"]
    assert role["RoleName"] == names.code_deployment_role
    assert role["AssumeRolePolicyDocument"]["Statement"][0]["Principal"] == {
        "Service": "lambda.amazonaws.com"
    }
    assert not role.get("ManagedPolicyArns") and not role.get("Policies")
    handler = [
        r
        for r in template.find_resources("AWS::Lambda::Function").values()
        if r["Properties"]["Role"] == {"Fn::GetAtt": [role_id, "Arn"]}
    ]
    assert len(handler) == 1
    assert not template.find_resources("AWS::IAM::Policy")  # CDK's broad default grants are not attached
    policy_id = _logical_id(template, "AWS::IAM::ManagedPolicy", "CodeDeploymentAccess")
    policy = template.find_resources("AWS::IAM::ManagedPolicy")[policy_id]["Properties"]
    assert policy["Roles"] == [{"Ref": role_id}]
    by_action = {json.dumps(s["Action"]): s["Resource"] for s in policy["PolicyDocument"]["Statement"]}
    artifacts = f"arn:aws:s3:::{names.artifacts_bucket}"
    assert sorted(by_action['"s3:PutObject"']) == sorted(
        [
            f"{artifacts}/code/{ml_stack.bundle.version}/*",
            f"{artifacts}/{ml_stack.definition_key}",
            f"{artifacts}/{names.champion_prefix}{CHAMPION_PLACEHOLDER}",
            f"{artifacts}/{GROUND_TRUTH_PLACEHOLDER_KEY}",
        ]
    )
    assert by_action['"s3:ListBucket"'] == artifacts
    (deployment,) = template.find_resources("Custom::CDKBucketDeployment").values()
    reads = [
        f"arn:aws:s3:::{b}/{k}"
        for b, k in zip(
            deployment["Properties"]["SourceBucketNames"],
            deployment["Properties"]["SourceObjectKeys"],
            strict=True,
        )
    ]
    assert sorted(by_action['"s3:GetObject"']) == sorted(reads)
    assert set(by_action) == {
        '"s3:PutObject"',
        '"s3:ListBucket"',
        '"s3:GetObject"',
        '["kms:Decrypt", "kms:GenerateDataKey"]',
        '["logs:CreateLogStream", "logs:PutLogEvents"]',
    }
    assert policy_id in deployment["DependsOn"]
