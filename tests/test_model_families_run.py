"""Each model family runs through the pipeline locally, with its own search space and a tiny budget.

One work folder for all three runs: the preprocessing is a cache hit after the first, so each later run
costs its trial and its evaluation. The gbm run also takes the Model Monitor baseline path (the analyzer's
contract, emulated by baseline.py), the deep runs the default processing-job baseline. The gate is opened
(thresholds 1e9) because a one-epoch network is not meant to be good, only to run. The data is the same
in all three runs, so only the first registers a version (the data-version check); the assertions read
each run's own step outputs.
"""

from __future__ import annotations

import json

import pytest

from local_runner.main_job import MainJobOptions, run_main_job
from pipeline_steps import names
from pipeline_steps.tuning import TUNING_RANGES
from settings import MonitoringSettings

pytestmark = pytest.mark.slow

TINY = {
    "gbm": (("feature_set", "stats"), ("ensemble_size", "1"), ("max_iter", "30")),
    "cnn": (("epochs", "1"), ("patience", "1")),
    "lstm": (("epochs", "1"), ("patience", "1")),
}
OPEN_GATE = {"RmseThreshold": 1e9, "ScoreThreshold": 1e9, "TuningMaxJobs": 1, "TuningMaxParallelJobs": 1}


@pytest.fixture(scope="module")
def work(tmp_path_factory):
    return tmp_path_factory.mktemp("families")


# gbm (the default family) runs in `make test`; the deep families' runs in `make test-long`.
@pytest.mark.parametrize(
    "family",
    ["gbm", pytest.param("cnn", marks=pytest.mark.long), pytest.param("lstm", marks=pytest.mark.long)],
)
def test_each_family_runs_through_the_pipeline_with_its_own_ranges(family, work, synthetic_dir):
    overrides = {
        "static_hyperparameters": (*TINY[family], ("validation_draws", "1")),
        "monitoring": MonitoringSettings(use_model_monitor=family == "gbm"),
    }
    options = MainJobOptions(
        work_dir=work,
        data_dir=synthetic_dir,
        # ModelFamily as a run parameter re-renders the definition with that family.
        parameters={**OPEN_GATE, names.MODEL_FAMILY: family},
        config_overrides=overrides,
        tracking=False,
    )
    workspace, result = run_main_job(options, echo=lambda line: None)
    assert result.status == "Succeeded", result.failure_reason
    steps = {step["Name"]: step for step in workspace.definition["Steps"]}
    assert steps[names.BASELINE_STEP]["Type"] == ("QualityCheck" if family == "gbm" else "Processing")
    best = result.step(names.TUNE_STEP).properties["BestTrainingJob"]
    assert set(best["TunedHyperParameters"]) == set(TUNING_RANGES[family])
    outputs = result.step(names.EVALUATE_STEP).properties["ProcessingOutputConfig"]["Outputs"]
    evaluation = outputs[names.EVALUATION_OUTPUT]["S3Output"]["S3Uri"] + "/" + names.EVALUATION_FILE
    assert json.loads(workspace.store.read_text(evaluation))["model"]["model_family"] == family
    baseline = result.step(names.BASELINE_STEP).properties
    if family == "gbm":
        statistics = baseline["CalculatedBaselineStatistics"]
    else:
        statistics = (
            baseline["ProcessingOutputConfig"]["Outputs"]["baseline"]["S3Output"]["S3Uri"]
            + "/statistics.json"
        )
    assert json.loads(workspace.store.read_text(statistics))["dataset"]["item_count"] > 0
