"""Names shared by the pipeline builder, the local runner and the tests: one spelling for each.

Step names, parameter names, processing output and training channel names, the container paths the jobs
read and write, the evaluation property file and the regex the tuner reads the validation RMSE with. The
regex is a copy of `rul.metrics.metric_regex("validation:rmse")` because `containers/` is not importable
where the CDK app renders the pipeline; a test keeps the two equal.
"""

from __future__ import annotations

import re

# Names the functions read too; their asset holds only lambdas/, so they are spelled there.
from lambdas.common.pipeline_names import DATA_VERSION as DATA_VERSION
from lambdas.common.pipeline_names import DATA_VERSION_METADATA_KEY as DATA_VERSION_METADATA_KEY
from lambdas.common.pipeline_names import EVALUATION_FILE as EVALUATION_FILE
from lambdas.common.pipeline_names import EVALUATION_OUTPUT as EVALUATION_OUTPUT
from lambdas.common.pipeline_names import INPUT_DATA_URI as INPUT_DATA_URI
from lambdas.common.pipeline_names import REGISTERED_DATA_VERSION as REGISTERED_DATA_VERSION

# Steps, in pipeline order.
PREPROCESS_STEP = "PreprocessData"
BASELINE_STEP = "DataQualityBaseline"
TUNE_STEP = "TuneModel"
# Retrains the best trial's hyperparameters on all training units; its model is evaluated and registered.
REFIT_STEP = "RefitModel"
EVALUATE_STEP = "EvaluateModel"
GATE_STEP = "CheckQualityGate"
# Inside the gate's if-branch: register only data that is not registered yet (else end successfully).
DATA_VERSION_CHECK_STEP = "CheckNewDataVersion"
REGISTER_STEP = "RegisterModel"
FAIL_STEP = "FailQualityGate"
# ModelStep renders its register request under "<ModelStep name>-RegisterModel" (SDK convention).
REGISTER_STEP_JSON_NAME = f"{REGISTER_STEP}-RegisterModel"
STEP_NAMES = (
    PREPROCESS_STEP,
    BASELINE_STEP,
    TUNE_STEP,
    REFIT_STEP,
    EVALUATE_STEP,
    GATE_STEP,
    DATA_VERSION_CHECK_STEP,
    REGISTER_STEP,
    FAIL_STEP,
)

# Pipeline parameters.
SUBSET = "Subset"
PROCESSING_INSTANCE_TYPE = "ProcessingInstanceType"
PROCESSING_INSTANCE_COUNT = "ProcessingInstanceCount"
TRAINING_INSTANCE_TYPE = "TrainingInstanceType"
# Not a parameter: the model family is chosen when the definition is rendered (each family has its own
# search space); the local runner accepts `--param ModelFamily=<family>` and re-renders with it.
MODEL_FAMILY = "ModelFamily"
# Spelled as the settings' fields they default to (PipelineSettings.tuning_max_jobs, ...).
TUNING_MAX_JOBS = "TuningMaxJobs"
TUNING_MAX_PARALLEL_JOBS = "TuningMaxParallelJobs"
RMSE_THRESHOLD = "RmseThreshold"
SCORE_THRESHOLD = "ScoreThreshold"
CHAMPION_TOLERANCE = "ChampionTolerance"
CHAMPION_MODEL_URI = "ChampionModelUri"
MODEL_APPROVAL_STATUS = "ModelApprovalStatus"
DEFAULT_DATA_VERSION = "unversioned"
# The quality gate's parameters: declared only when the config lets a caller override the gate (the local
# runner); the deployed definition renders them as literals fixed at deploy time.
GATE_PARAMETER_NAMES = (
    RMSE_THRESHOLD,
    SCORE_THRESHOLD,
    CHAMPION_TOLERANCE,
    CHAMPION_MODEL_URI,
    MODEL_APPROVAL_STATUS,
)
PARAMETER_NAMES = (
    INPUT_DATA_URI,
    SUBSET,
    DATA_VERSION,
    REGISTERED_DATA_VERSION,
    PROCESSING_INSTANCE_TYPE,
    PROCESSING_INSTANCE_COUNT,
    TRAINING_INSTANCE_TYPE,
    TUNING_MAX_JOBS,
    TUNING_MAX_PARALLEL_JOBS,
    *GATE_PARAMETER_NAMES,
)
# Former parameter names -> current ones: a run that still gives an old name is told the new one.
RENAMED_PARAMETERS = {
    "MaxTuningJobs": TUNING_MAX_JOBS,
    "MaxParallelTuningJobs": TUNING_MAX_PARALLEL_JOBS,
}

# Allowed values (copies of rul.data.SUBSETS and rul.hyperparameters.MODEL_FAMILIES; tests keep them equal).
SUBSETS = ("FD001", "FD002", "FD003", "FD004")
MODEL_FAMILIES = ("gbm", "cnn", "lstm")
APPROVAL_STATUSES = ("PendingManualApproval", "Approved", "Rejected")
PENDING_APPROVAL = APPROVAL_STATUSES[0]

# Processing outputs of PreprocessData (each from /opt/ml/processing/<name>) and of EvaluateModel.
TRAIN_OUTPUT = "train"
VALIDATION_OUTPUT = "validation"
TEST_OUTPUT = "test"
# The held-out units, whole, when the official test set evaluates (the refit trains on them), else empty.
HOLDOUT_OUTPUT = "holdout"
BASELINE_OUTPUT = "baseline"
METADATA_OUTPUT = "metadata"
# The dataset manifest (rul.lineage): manifest-<host>.json, its URI goes into the registered model's metadata.
MANIFEST_OUTPUT = "manifest"
PREPROCESS_OUTPUTS = (
    TRAIN_OUTPUT,
    VALIDATION_OUTPUT,
    TEST_OUTPUT,
    HOLDOUT_OUTPUT,
    BASELINE_OUTPUT,
    METADATA_OUTPUT,
    MANIFEST_OUTPUT,
)
# CustomerMetadataProperties key of the registered model package naming its data manifest's S3 prefix.
DATA_MANIFEST_METADATA_KEY = "DataManifestUri"
# Outputs a registered model package refers to: written under the kept registry prefix, not the
# expiring per-execution prefix (the other outputs are scratch).
REGISTERED_PREPROCESS_OUTPUTS = (MANIFEST_OUTPUT,)
# Output of the DataQualityBaseline processing job (statistics.json, constraints.json).
DATA_QUALITY_OUTPUT = "baseline"
STATISTICS_FILE = "statistics.json"
CONSTRAINTS_FILE = "constraints.json"

# Training channels of TuneModel.
TRAIN_CHANNEL = "train"
VALIDATION_CHANNEL = "validation"
# RefitModel's third channel: the holdout output (whole held-out units, or none).
HOLDOUT_CHANNEL = "holdout"
# RefitModel: the best tuning trial's model.tar.gz, whose fit on the train units calibrates the intervals.
TRIAL_CHANNEL = "trial"
# RefitModel's static hyperparameter that puts train.py in refit mode (fit on every channel's units).
REFIT_HYPERPARAMETER = "final_refit"
# With network isolation the SDK ships source_dir as this extra channel (sourcedir.tar.gz inside).
CODE_CHANNEL = "code"

# Container paths of the processing jobs.
PROCESSING_ROOT = "/opt/ml/processing"
RAW_INPUT_PATH = f"{PROCESSING_ROOT}/input"
# The input prefix again, replicated to every instance: the official test/RUL pair is never split by shards.
OFFICIAL_INPUT_PATH = f"{PROCESSING_ROOT}/official"
LIBRARY_PATH = f"{PROCESSING_ROOT}/input/lib"
MODEL_INPUT_PATH = f"{PROCESSING_ROOT}/model"
TEST_INPUT_PATH = f"{PROCESSING_ROOT}/test"
CHAMPION_INPUT_PATH = f"{PROCESSING_ROOT}/champion"
BASELINE_DATASET_PATH = f"{PROCESSING_ROOT}/baseline_dataset"
DATA_QUALITY_OUTPUT_PATH = f"{PROCESSING_ROOT}/{DATA_QUALITY_OUTPUT}"
# The SDK adds the entry script as input "code" at /opt/ml/processing/input/code/<script>.
CODE_INPUT = "code"
CODE_PATH = f"{PROCESSING_ROOT}/input/code"
RAW_INPUT = "raw"
OFFICIAL_INPUT = "official"
LIBRARY_INPUT = "lib"
MODEL_INPUT = "model"
TEST_INPUT = "test"
CHAMPION_INPUT = "champion"
BASELINE_DATASET_INPUT = "baseline_dataset"

# Entry scripts (files of containers/).
PREPROCESS_SCRIPT = "preprocess.py"
TRAIN_SCRIPT = "train.py"
EVALUATE_SCRIPT = "evaluate.py"
BASELINE_SCRIPT = "baseline.py"

# Evaluation report, read by the quality gate through JsonGet.
EVALUATION_PROPERTY_FILE = "EvaluationReport"
# The gate compares size-independent figures on the truth capped at the training cap (a model capped at
# 125 cannot be blamed for units whose true RUL is above it): RMSE, and the PHM08 score per 100 units
# (the sum over the test units grows with their number). evaluate.py documents the basis in the report.
RMSE_JSON_PATH = "capped_truth_metrics.rmse.value"
SCORE_JSON_PATH = "capped_truth_metrics.phm08_score_per_100_units.value"
ALLOWED_RMSE_JSON_PATH = "champion_comparison.allowed_rmse"
GATE_SUMMARY_JSON_PATH = "gate.summary"
# Which protocol produced the numbers: "official" (test/RUL files) or "internal_holdout" (rul.official).
PROTOCOL_JSON_PATH = "protocol.name"

# Tuning objective: the line train.py prints, and the regex (equal to rul.metrics.metric_regex) reading it.
OBJECTIVE_METRIC = "validation:rmse"
METRIC_VALUE_PATTERN = "([-0-9.eE+]+)"
VALIDATION_METRIC_NAMES = ("rmse", "mae", "r2", "phm08_score", "phm08_score_per_100_units")


OBJECTIVE_METRIC_REGEX = "validation:rmse=([-0-9.eE+]+)"


def metric_regex(name: str) -> str:
    """Regex whose group captures the value train.py prints as `<name>=<value>` (as rul.metrics does)."""
    return f"{re.escape(name)}={METRIC_VALUE_PATTERN}"


def metric_definitions(prefix: str = "validation") -> list[dict[str, str]]:
    """SageMaker MetricDefinitions ({"Name", "Regex"}) for the `prefix:name=value` lines train.py prints."""
    return [
        {"Name": f"{prefix}:{name}", "Regex": metric_regex(f"{prefix}:{name}")}
        for name in VALIDATION_METRIC_NAMES
    ]
