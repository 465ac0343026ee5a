"""Each container script end to end in a temporary /opt/ml, as SageMaker would run it."""

from __future__ import annotations

import json
import shutil
import tarfile

import numpy as np
import pandas as pd
import pytest

import baseline
import evaluate
import preprocess
import train
from rul.contract import run_entrypoint
from rul.data import COLUMNS
from rul.metrics import evaluation_report
from rul.splits import SOURCE_COLUMNS

FAST_HPS = {"feature_set": '"stats"', "ensemble_size": "1", "max_iter": "60", "validation_draws": "2"}


@pytest.fixture
def opt_ml(tmp_path, monkeypatch):
    monkeypatch.setenv("SAGEMAKER_BASE_DIR", str(tmp_path / "opt_ml"))
    return tmp_path / "opt_ml"


@pytest.fixture
def preprocessed(opt_ml, synthetic_dir):
    raw = opt_ml / "processing" / "input"
    raw.mkdir(parents=True)
    shutil.copy(synthetic_dir / "train_FD001.txt", raw)
    assert run_entrypoint(preprocess.main, ["--seed", "1"]) == 0
    return opt_ml / "processing"


def test_preprocess_splits_whole_units_and_cuts_test_units(preprocessed):
    parts = {
        name: pd.read_csv(preprocessed / name / "trajectories-algo-1.csv")
        for name in ("train", "validation", "test")
    }
    unit_sets = [set(frame["unit"]) for frame in parts.values()]
    assert all(not (a & b) for i, a in enumerate(unit_sets) for b in unit_sets[i + 1 :])
    assert sum(len(units) for units in unit_sets) == 40
    # The C-MAPSS columns, then each unit's file and own number (rul.splits.SOURCE_COLUMNS).
    assert list(parts["train"].columns) == COLUMNS + SOURCE_COLUMNS
    truth = pd.read_csv(preprocessed / "test" / "truth-algo-1.csv")
    assert set(truth["unit"]) == unit_sets[2] and (truth["rul"] >= 6).all()
    assert (parts["test"].groupby("unit").size() >= 30).all()
    metadata = json.loads((preprocessed / "metadata" / "metadata-algo-1.json").read_text())
    assert metadata["units"] == {name: len(units) for name, units in zip(parts, unit_sets, strict=True)}
    baseline = pd.read_csv(preprocessed / "baseline" / "baseline-algo-1.csv")
    # Served-style windows of the units the final refit trains on (no official test here: train and
    # validation): 3 cuts per unit, the last 30 cycles of each.
    assert len(baseline) == 3 * 30 * len(unit_sets[0] | unit_sets[1]) and "unit" not in baseline.columns
    assert list(baseline.columns) == COLUMNS[2:]


def test_preprocess_names_the_bad_line_and_writes_the_failure_file(opt_ml, capsys):
    raw = opt_ml / "processing" / "input"
    raw.mkdir(parents=True)
    (raw / "train_FD001.txt").write_text("1 1 " + " ".join(["0.5"] * 24) + "\n1 2 0.1 oops\n")
    assert run_entrypoint(preprocess.main, []) == 1
    message = (opt_ml / "output" / "failure").read_text()
    assert "train_FD001.txt, line 2: expected 26 columns, found 4" in message
    assert "line 2" in capsys.readouterr().err


def train_in(opt_ml, preprocessed, hyperparameters):
    config = opt_ml / "input" / "config"
    config.mkdir(parents=True)
    (config / "hyperparameters.json").write_text(json.dumps(hyperparameters))
    (config / "inputdataconfig.json").write_text(json.dumps({"train": {}, "validation": {}}))
    for channel in ("train", "validation"):
        shutil.copytree(preprocessed / channel, opt_ml / "input" / "data" / channel)
    return run_entrypoint(train.main, [])


def test_train_prints_tuner_metrics_and_saves_the_model(opt_ml, preprocessed, capsys):
    assert train_in(opt_ml, preprocessed, FAST_HPS) == 0
    output = capsys.readouterr().out
    rmse_line = next(line for line in output.splitlines() if line.startswith("validation:rmse="))
    assert float(rmse_line.split("=")[1]) > 0
    metadata = json.loads((opt_ml / "model" / "metadata.json").read_text())
    assert metadata["hyperparameters"]["feature_set"] == "stats"
    assert (opt_ml / "output" / "data" / "validation_metrics.json").is_file()

    assert (
        run_entrypoint(
            evaluate.main, ["--model-dir", str(opt_ml / "model"), "--test-dir", str(preprocessed / "test")]
        )
        == 0
    )
    report = json.loads((preprocessed / "evaluation" / "evaluation.json").read_text())
    assert report["regression_metrics"]["rmse"]["value"] > 0
    assert report["model"]["model_family"] == "gbm"
    assert sorted(path.name for path in (preprocessed / "evaluation" / "plots").iterdir()) == [
        "error_by_bucket.png",
        "error_histogram.png",
        "predicted_vs_true.png",
        "unit_trajectory.png",
    ]
    assert "test:phm08_score=" in capsys.readouterr().out


def test_train_rejects_an_unknown_hyperparameter(opt_ml, preprocessed):
    assert train_in(opt_ml, preprocessed, {"depth": "3"}) == 1
    assert "unknown hyperparameter(s): depth" in (opt_ml / "output" / "failure").read_text()


def test_evaluate_without_a_model_fails_clearly(opt_ml, preprocessed):
    assert run_entrypoint(evaluate.main, ["--model-dir", str(opt_ml / "nothing")]) == 1
    assert "neither model.tar.gz nor a model folder" in (opt_ml / "output" / "failure").read_text()


def test_evaluate_compares_with_the_champion_and_states_the_gate(opt_ml, preprocessed, capsys):
    assert train_in(opt_ml, preprocessed, FAST_HPS) == 0
    champion = opt_ml / "processing" / "champion"
    champion.mkdir(parents=True)
    with tarfile.open(champion / "model.tar.gz", "w:gz") as bundle:
        for path in sorted((opt_ml / "model").iterdir()):
            bundle.add(path, arcname=path.name)
    (champion / "champion.json").write_text(json.dumps({"version": 3}))
    arguments = ["--model-dir", str(opt_ml / "model"), "--rmse-threshold", "0.5", "--champion-tolerance", "2"]
    arguments += ["--score-threshold", "1e9"]
    assert run_entrypoint(evaluate.main, arguments) == 0
    report = json.loads((opt_ml / "processing" / "evaluation" / "evaluation.json").read_text())
    # The gate's basis: the truth capped at the training cap.
    rmse = report["capped_truth_metrics"]["rmse"]["value"]
    assert report["champion"]["version"] == 3
    assert report["champion"]["capped_truth_metrics"]["rmse"]["value"] == pytest.approx(rmse)
    assert report["champion_comparison"]["allowed_rmse"] == pytest.approx(rmse + 2)
    assert report["gate"]["passed"] is False
    assert report["gate"]["failed_rules"] == [f"RMSE {rmse:.2f} exceeds the threshold 0.5"]


def test_without_a_champion_only_the_thresholds_decide(opt_ml, preprocessed):
    assert train_in(opt_ml, preprocessed, FAST_HPS) == 0
    assert (
        run_entrypoint(
            evaluate.main,
            ["--model-dir", str(opt_ml / "model"), "--rmse-threshold", "1e9", "--score-threshold", "1e9"],
        )
        == 0
    )
    report = json.loads((opt_ml / "processing" / "evaluation" / "evaluation.json").read_text())
    assert report["champion"] is None
    assert report["champion_comparison"]["allowed_rmse"] == evaluate.NO_CHAMPION_LIMIT
    capped = report["capped_truth_metrics"]
    assert report["gate"] == {
        "passed": True,
        "failed_rules": [],
        "summary": "all quality rules pass",
        "basis": "capped_truth_metrics",
        "rul_cap": 125,
        "rmse": capped["rmse"]["value"],
        "phm08_score_per_100_units": capped["phm08_score_per_100_units"]["value"],
        "rmse_threshold": 1e9,
        "score_threshold": 1e9,
        "description": evaluate.GATE_DESCRIPTION,
        "protocol": "internal_holdout",
    }


def _report(y_true, y_pred) -> dict:
    return evaluation_report(y_true, y_pred, cap=125, n_bootstrap=2)


def test_the_gate_verdict_does_not_depend_on_the_number_of_test_units():
    rng = np.random.default_rng(4)
    y_true = rng.uniform(5, 200, 20)
    y_pred = np.clip(y_true + rng.normal(3, 12, 20), 0, 125)
    no_champion = {"allowed_rmse": evaluate.NO_CHAMPION_LIMIT, "tolerance": 1.0}
    small, large = _report(y_true, y_pred), _report(np.tile(y_true, 10), np.tile(y_pred, 10))
    per_100 = small["capped_truth_metrics"]["phm08_score_per_100_units"]["value"]
    # A threshold between the per-100 score and the summed score of 200 units: the sum would flip the verdict.
    threshold = per_100 * 1.5
    assert large["capped_truth_metrics"]["phm08_score"]["value"] > threshold
    verdicts = [evaluate.gate_verdict(r, no_champion, 30.0, threshold) for r in (small, large)]
    assert [v["passed"] for v in verdicts] == [True, True]
    assert verdicts[0]["phm08_score_per_100_units"] == pytest.approx(verdicts[1]["phm08_score_per_100_units"])
    strict = [evaluate.gate_verdict(r, no_champion, 30.0, per_100 * 0.5) for r in (small, large)]
    assert len(strict[0]["failed_rules"]) == 1 and strict[0]["failed_rules"] == strict[1]["failed_rules"]


def test_the_gate_measures_rmse_against_the_capped_truth():
    # Truth far above the cap: a model capped at 125 is judged by the truth it could predict.
    y_true, y_pred = np.array([300.0, 250.0, 40.0]), np.array([124.0, 125.0, 42.0])
    report = _report(y_true, y_pred)
    verdict = evaluate.gate_verdict(report, {"allowed_rmse": 1e12, "tolerance": 1.0}, 5.0, 1e9)
    assert report["regression_metrics"]["rmse"]["value"] > 100
    assert verdict["passed"] is True and verdict["rmse"] < 5.0


def test_baseline_plain_contract_equals_the_analyzer_contract(opt_ml, preprocessed, monkeypatch):
    dataset = preprocessed / "baseline"
    plain = ["--dataset-dir", str(dataset), "--output-dir", "/opt/ml/processing/plain", "--header"]
    assert run_entrypoint(baseline.main, plain) == 0
    monkeypatch.setenv("dataset_format", json.dumps({"csv": {"header": True}}))
    monkeypatch.setenv("dataset_source", str(dataset))
    monkeypatch.setenv("output_path", "/opt/ml/processing/analyzer")
    assert run_entrypoint(baseline.main) == 0
    for name in ("statistics.json", "constraints.json"):
        written = json.loads((preprocessed / "plain" / name).read_text())  # /opt/ml follows the base dir
        assert written == json.loads((preprocessed / "analyzer" / name).read_text()), name
    assert written["features"]


def test_baseline_plain_contract_needs_both_folders(opt_ml, preprocessed):
    assert run_entrypoint(baseline.main, ["--dataset-dir", str(preprocessed / "baseline")]) == 1
    assert "--dataset-dir and --output-dir" in (opt_ml / "output" / "failure").read_text()
