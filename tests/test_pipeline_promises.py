"""Promises of the rendered definition: a gate fixed at deploy time, cost caps on every job, registry
references under the kept prefix, the baseline with and without Model Monitor, per-family search spaces
and the data version in the step arguments; and the deployed config built from the settings."""

from __future__ import annotations

import json
from types import SimpleNamespace

import aws_cdk as cdk
import pytest
from aws_cdk import aws_kms as kms
from definition_helpers import all_steps, gets

from pipeline_steps import names
from pipeline_steps.config import local_config
from pipeline_steps.render import render_definition
from pipeline_steps.tuning import TUNING_RANGES, hyperparameter_ranges
from rul.hyperparameters import BOUNDS, FAMILY_HYPERPARAMETERS, MODEL_FAMILIES, Hyperparameters
from settings import MonitoringSettings, load_settings
from stacks.ml_stack import pipeline_config

FIXED = {"gate_overridable": False, "max_runtime_minutes": 17}
PENDING = "PendingManualApproval"


def used_parameters(definition: dict) -> set[str]:
    return {ref.removeprefix("Parameters.") for ref in gets(definition["Steps"]) if ref.startswith("Param")}


@pytest.fixture(scope="module")
def fixed() -> dict:
    return json.loads(render_definition(local_config(**FIXED)))


@pytest.fixture(scope="module")
def model_monitor() -> dict:
    config = local_config(monitoring=MonitoringSettings(use_model_monitor=True), gate_overridable=False)
    return json.loads(render_definition(config))


# --- the gate cannot be weakened ---------------------------------------------------------------------


def test_a_fixed_gate_declares_no_gate_parameter_and_uses_every_declared_one(fixed):
    declared = [parameter["Name"] for parameter in fixed["Parameters"]]
    assert declared == [name for name in names.PARAMETER_NAMES if name not in names.GATE_PARAMETER_NAMES]
    assert used_parameters(fixed) == set(declared)


def test_a_fixed_gate_renders_thresholds_champion_and_approval_as_literals(fixed):
    steps = all_steps(fixed)
    register = steps[names.REGISTER_STEP_JSON_NAME]["Arguments"]
    assert register["ModelApprovalStatus"] == PENDING
    evaluate = steps[names.EVALUATE_STEP]["Arguments"]
    assert evaluate["AppSpecification"]["ContainerArguments"] == [
        *("--rmse-threshold", "20.0"),
        *("--score-threshold", "500.0"),
        *("--champion-tolerance", "1.0"),
    ]
    champion = next(i for i in evaluate["ProcessingInputs"] if i["InputName"] == names.CHAMPION_INPUT)
    assert champion["S3Input"]["S3Uri"] == "s3://local-artifacts/champion/"
    rights = [c["RightValue"] for c in steps[names.GATE_STEP]["Arguments"]["Conditions"]]
    assert rights[:2] == [20.0, 500.0]
    assert gets(steps[names.FAIL_STEP]) == {f"Steps.{names.EVALUATE_STEP}.PropertyFiles.EvaluationReport"}


def test_a_fixed_gate_cannot_be_configured_to_auto_approve():
    with pytest.raises(ValueError, match=r"PipelineConfig\.approval_status='Approved'"):
        local_config(gate_overridable=False, approval_status="Approved")
    assert local_config(approval_status="Approved").approval_status == "Approved"  # the local runner may


# --- cost caps -----------------------------------------------------------------------------------------


def test_every_job_has_the_configured_stopping_condition(fixed):
    cap = {"MaxRuntimeInSeconds": 17 * 60}
    jobs = [step for step in all_steps(fixed).values() if step["Type"] in ("Processing", "QualityCheck")]
    assert len(jobs) == 3
    for step in jobs:
        assert step["Arguments"]["StoppingCondition"] == cap, step["Name"]
    tuning = all_steps(fixed)[names.TUNE_STEP]["Arguments"]
    assert tuning["TrainingJobDefinition"]["StoppingCondition"] == cap
    # The tuning job: one trial's cap per round of the default budget, fixed however a run sets the budget.
    assert tuning["HyperParameterTuningJobConfig"]["ResourceLimits"]["MaxRuntimeInSeconds"] == 3 * 17 * 60
    resources = tuning["TrainingJobDefinition"]["HyperParameterTuningResourceConfig"]
    assert resources["InstanceCount"] == 1


def test_the_model_monitor_baseline_job_is_capped_too(model_monitor):
    baseline = all_steps(model_monitor)[names.BASELINE_STEP]
    assert baseline["Type"] == "QualityCheck"
    assert baseline["Arguments"]["StoppingCondition"] == {"MaxRuntimeInSeconds": 3600}


# --- durable registry references ---------------------------------------------------------------------


def static_prefix(value, steps: dict[str, dict]) -> str:
    """The S3 URI a registered reference resolves to, up to its first run-time value ("<run>")."""
    if isinstance(value, str):
        return value
    if "Std:Join" in value:
        spec = value["Std:Join"]
        return spec["On"].join(static_prefix(item, steps) for item in spec["Values"])
    reference = value["Get"]
    if reference.startswith("Steps."):
        step = steps[reference.split(".")[1]]
        if ".ProcessingOutputConfig.Outputs[" in reference:
            output = reference.split("Outputs['")[1].split("']")[0]
            outputs = step["Arguments"]["ProcessingOutputConfig"]["Outputs"]
            return static_prefix(
                next(o for o in outputs if o["OutputName"] == output)["S3Output"]["S3Uri"], steps
            )
        if reference.endswith(".ModelArtifacts.S3ModelArtifacts"):
            output = step["Arguments"]["OutputDataConfig"]["S3OutputPath"]
            return static_prefix(output, steps) + "/<training job>/output/model.tar.gz"
        if reference.endswith(("CalculatedBaselineStatistics", "CalculatedBaselineConstraints")):
            (output,) = step["Arguments"]["ProcessingOutputConfig"]["Outputs"]
            return static_prefix(output["S3Output"]["S3Uri"], steps) + "/<file>"
    return "<run>"


def registered_uris(definition: dict) -> dict[str, object]:
    register = all_steps(definition)[names.REGISTER_STEP_JSON_NAME]["Arguments"]
    quality = register["DriftCheckBaselines"]["ModelDataQuality"]
    return {
        "model": register["InferenceSpecification"]["Containers"][0]["ModelDataUrl"],
        "evaluation": register["ModelMetrics"]["ModelQuality"]["Statistics"]["S3Uri"],
        "statistics": quality["Statistics"]["S3Uri"],
        "constraints": quality["Constraints"]["S3Uri"],
        "manifest": register["CustomerMetadataProperties"][names.DATA_MANIFEST_METADATA_KEY],
    }


@pytest.mark.parametrize("variant", ["fixed", "model_monitor"])
def test_no_registered_uri_lies_under_the_expiring_intermediates_prefix(variant, request):
    definition = request.getfixturevalue(variant)
    steps = all_steps(definition)
    # The intermediates prefix of a pipeline is `<pipeline name>/` (settings.ResourceNames).
    intermediates = f"s3://local-artifacts/{local_config().pipeline_name}/"
    for name, value in registered_uris(definition).items():
        uri = static_prefix(value, steps)
        kept = (
            "s3://local-artifacts/registry/turbofan-rul/<run>/",
            "s3://local-artifacts/models/turbofan-rul/",
        )
        assert uri.startswith(kept), (name, uri)
        assert not uri.startswith(intermediates), (name, uri)


def test_scratch_outputs_still_expire(fixed):
    outputs = all_steps(fixed)[names.PREPROCESS_STEP]["Arguments"]["ProcessingOutputConfig"]["Outputs"]
    steps = all_steps(fixed)
    prefixes = {o["OutputName"]: static_prefix(o["S3Output"]["S3Uri"], steps) for o in outputs}
    assert prefixes[names.TRAIN_OUTPUT] == "s3://local-artifacts/turbofan-rul/<run>/PreprocessData/train"
    assert prefixes[names.MANIFEST_OUTPUT].startswith("s3://local-artifacts/registry/")


def test_the_model_monitor_baselines_are_registered_from_the_check_properties(model_monitor):
    register = all_steps(model_monitor)[names.REGISTER_STEP_JSON_NAME]["Arguments"]
    quality = register["DriftCheckBaselines"]["ModelDataQuality"]
    assert quality["Statistics"]["S3Uri"] == {
        "Get": f"Steps.{names.BASELINE_STEP}.CalculatedBaselineStatistics"
    }


# --- per-family search spaces --------------------------------------------------------------------------


@pytest.mark.parametrize("family", MODEL_FAMILIES)
def test_each_family_searches_only_its_own_hyperparameters_within_bounds(family):
    ranges = TUNING_RANGES[family]
    assert set(ranges) <= set(FAMILY_HYPERPARAMETERS[family])
    for name, (_, low, high, _) in ranges.items():
        assert BOUNDS[name][0] <= low < high <= BOUNDS[name][1], name
        Hyperparameters.from_dict({"model_family": family, name: str(low)})
        Hyperparameters.from_dict({"model_family": family, name: str(high)})
    assert set(hyperparameter_ranges(family)) == set(ranges)


def test_adam_gets_a_deep_learning_rate_and_gbm_its_own():
    for family in ("cnn", "lstm"):
        _, low, high, scaling = TUNING_RANGES[family]["learning_rate"]
        assert (low, high, scaling) == (1e-4, 1e-2, "Logarithmic")
    assert TUNING_RANGES["gbm"]["learning_rate"][1:3] == (0.02, 0.2)


def test_a_cnn_definition_carries_the_cnn_ranges_and_static_hyperparameters():
    config = local_config(model_family="cnn", static_hyperparameters=(("epochs", "2"),))
    tuning = all_steps(json.loads(render_definition(config)))[names.TUNE_STEP]["Arguments"]
    ranges = tuning["HyperParameterTuningJobConfig"]["ParameterRanges"]
    searched = {r["Name"] for kind in ranges.values() for r in kind}
    assert searched == set(TUNING_RANGES["cnn"])
    static = tuning["TrainingJobDefinition"]["StaticHyperParameters"]
    assert (static["model_family"], static["epochs"]) == ('"cnn"', '"2"')


# --- the config on AWS ---------------------------------------------------------------------------------


def test_a_cdk_token_is_accepted_as_the_key_arn():
    assert local_config(kms_key_arn="${Token[TOKEN.123]}").kms_key_arn == "${Token[TOKEN.123]}"
    with pytest.raises(ValueError, match="kms_key_arn"):
        local_config(kms_key_arn="${Token[TOKEN.123]} or not")


@pytest.fixture(scope="module")
def deployed() -> tuple[dict, object]:
    settings = load_settings(
        {
            "pipeline": {"max_runtime_minutes": 45, "model_family": "lstm", "rmse_threshold": 18.0},
            "serving": {"instance_type": "ml.c5.large"},
        }
    )
    stack = cdk.Stack(cdk.App(), "Ml", env=cdk.Environment(account="111111111111", region="eu-west-1"))
    key = kms.Key(stack, "Key")
    platform = SimpleNamespace(
        names=settings.names,
        settings=settings,
        key=key,
        job_network=SimpleNamespace(subnet_ids=["subnet-0aaa1111"], security_group_ids=["sg-0bbb2222"]),
    )
    config = pipeline_config(platform, settings.pipeline, "0123456789ab", "111111111111.dkr.ecr.x/y:1")
    return json.loads(render_definition(config)), key


def test_the_deployed_definition_fixes_the_gate_from_the_settings(deployed):
    definition, _ = deployed
    declared = {parameter["Name"] for parameter in definition["Parameters"]}
    assert declared.isdisjoint(names.GATE_PARAMETER_NAMES)
    steps = all_steps(definition)
    assert steps[names.REGISTER_STEP_JSON_NAME]["Arguments"]["ModelApprovalStatus"] == PENDING
    assert steps[names.GATE_STEP]["Arguments"]["Conditions"][0]["RightValue"] == 18.0


def test_the_deployed_definition_uses_the_key_arn_caps_family_and_serving_type(deployed):
    definition, key = deployed
    steps = all_steps(definition)
    token = key.key_arn
    assert cdk.Token.is_unresolved(token) and "alias" not in token
    tuning = steps[names.TUNE_STEP]["Arguments"]["TrainingJobDefinition"]
    assert tuning["HyperParameterTuningResourceConfig"]["VolumeKmsKeyId"] == token
    assert (
        steps[names.PREPROCESS_STEP]["Arguments"]["ProcessingResources"]["ClusterConfig"]["VolumeKmsKeyId"]
        == token
    )
    assert tuning["StoppingCondition"] == {"MaxRuntimeInSeconds": 45 * 60}
    assert tuning["StaticHyperParameters"]["model_family"] == '"lstm"'
    spec = steps[names.REGISTER_STEP_JSON_NAME]["Arguments"]["InferenceSpecification"]
    assert spec["SupportedRealtimeInferenceInstanceTypes"] == ["ml.c5.large"]
    assert spec["SupportedTransformInstanceTypes"] == ["ml.c5.large"]
    assert steps[names.BASELINE_STEP]["Type"] == "Processing"  # no Model Monitor unless the setting says so


def test_the_spot_settings_reach_the_deployed_definition():
    settings = load_settings({"pipeline": {"spot_training": True, "spot_max_wait_minutes": 150}})
    stack = cdk.Stack(cdk.App(), "Ml", env=cdk.Environment(account="111111111111", region="eu-west-1"))
    platform = SimpleNamespace(
        names=settings.names,
        settings=settings,
        key=kms.Key(stack, "Key"),
        job_network=SimpleNamespace(subnet_ids=["subnet-0aaa1111"], security_group_ids=["sg-0bbb2222"]),
    )
    config = pipeline_config(platform, settings.pipeline, "0123456789ab", "111111111111.dkr.ecr.x/y:1")
    steps = all_steps(json.loads(render_definition(config)))
    tuning = steps[names.TUNE_STEP]["Arguments"]["TrainingJobDefinition"]
    assert tuning["EnableManagedSpotTraining"] is True
    assert tuning["StoppingCondition"]["MaxWaitTimeInSeconds"] == 150 * 60
    assert tuning["CheckpointConfig"]["S3Uri"].startswith(f"s3://{settings.names.artifacts_bucket}/")
