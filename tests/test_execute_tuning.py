"""`execute` parity: a Tuning step of a script-mode estimator rendered with the SageMaker SDK; the tuned
values reach the script as command-line arguments and the best trial is the step's property."""

from __future__ import annotations

from sagemaker.inputs import TrainingInput
from sagemaker.tuner import ContinuousParameter, HyperparameterTuner
from sagemaker.workflow.steps import TuningStep
from test_execute_support import BUCKET, execute, render, script_estimator, source_bundle, steps_of

TRAIN = """
import argparse, os, pathlib
parser = argparse.ArgumentParser()
parser.add_argument("--x", type=float)
parser.add_argument("--offset", type=float)
args = parser.parse_args()
assert sorted(os.listdir(os.environ["SM_CHANNEL_TRAIN"])) == ["data.csv"]
pathlib.Path(os.environ["SM_MODEL_DIR"], "x.txt").write_text(str(args.x))
print(f"loss={(args.x - 0.3) ** 2 + args.offset:.6f}")
"""


def _tuning(session) -> list:
    estimator = script_estimator(session, {"offset": 1})
    tuner = HyperparameterTuner(
        estimator,
        objective_metric_name="loss",
        hyperparameter_ranges={"x": ContinuousParameter(0.0, 1.0)},
        metric_definitions=[{"Name": "loss", "Regex": r"loss=([0-9.]+)"}],
        objective_type="Minimize",
        strategy="Random",
        max_jobs=3,
        max_parallel_jobs=1,
    )
    return [TuningStep("Tune", step_args=tuner.fit({"train": TrainingInput(f"{BUCKET}/data/")}))]


def test_a_tuning_step_runs_its_trials_in_script_mode_and_ranks_them(tmp_path):
    (tmp_path / "data.csv").write_text("1\n")
    bundle = source_bundle(tmp_path, {"train.py": TRAIN})
    definition = render(_tuning)
    assert definition["Steps"][0]["Type"] == "Tuning"

    code, record = execute(
        tmp_path,
        definition,
        "--object",
        f"{BUCKET}/data/data.csv={tmp_path / 'data.csv'}",
        "--object",
        f"{BUCKET}/code/sourcedir.tar.gz={bundle}",
    )

    assert code == 0, record["failure_reason"]
    properties = steps_of(record)["Tune"]["properties"]
    summaries = properties["TrainingJobSummaries"]
    assert len(summaries) == 3 and all(s["TrainingJobStatus"] == "Completed" for s in summaries)
    best = properties["BestTrainingJob"]
    x = float(best["TunedHyperParameters"]["x"])
    assert best["FinalHyperParameterTuningJobObjectiveMetric"]["Value"] == round((x - 0.3) ** 2 + 1, 6)
    assert best["FinalHyperParameterTuningJobObjectiveMetric"]["Value"] == min(
        s["FinalHyperParameterTuningJobObjectiveMetric"]["Value"] for s in summaries
    )
