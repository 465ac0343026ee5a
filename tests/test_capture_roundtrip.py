"""Serve -> capture files -> drift and model-quality jobs: one reader, and the rows the model read.

Requests go through `serve.Service` with a real (session-trained) model and a `DataCapture`, in every
form the endpoint accepts; both monitoring jobs then read the capture files the service wrote.
"""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

import drift
import model_quality
import serve
from rul.capture import CaptureConfig, DataCapture, read_window
from rul.contract import run_entrypoint
from rul.data import COLUMNS, SENSOR_COLUMNS, SETTING_COLUMNS
from rul.drift_stats import DriftSettings, baseline_from_frame, compare_features
from rul.errors import ConfigurationError
from rul.inference import load_model
from rul.model_window import model_rows
from rul.monitoring import write_baseline
from rul.synthetic import SyntheticSpec, generate

FEATURES = [*SETTING_COLUMNS, *SENSOR_COLUMNS]
ENDPOINT = "rul-endpoint"


def whitespace_body(rows: pd.DataFrame, header: list[str] | None = None) -> bytes:
    """C-MAPSS-file style rows separated by spaces; with a header in the given column order."""
    order = header or COLUMNS
    lines = [" ".join(order)] if header else []
    lines += [" ".join(repr(value) for value in row) for row in rows[order].itertuples(index=False)]
    return ("\n".join(lines) + "\n").encode()


def json_body(rows: pd.DataFrame, as_objects: bool) -> bytes:
    if as_objects:
        return json.dumps({"instances": rows[COLUMNS].to_dict(orient="records")}).encode()
    return json.dumps({"instances": rows[COLUMNS].to_numpy().tolist()}).encode()


def serve_requests(root, model_dir, requests: list[tuple[bytes, str]]) -> list[dict]:
    """Answer each (body, content type) with the real service, capturing every request under `root`."""
    service = serve.Service(
        serve.ServerSettings(model_dir=model_dir), DataCapture(CaptureConfig(root, ENDPOINT))
    )
    answers = []
    for body, content_type in requests:
        status, payload, _ = service.invoke(body, content_type, "application/json")
        assert status == 200, payload
        answers.append(json.loads(payload))
    return answers


@pytest.fixture(scope="module")
def window_baseline(tmp_path_factory, serving_subset):
    """statistics.json of served-like windows: the model rows of cut training units."""
    cut = generate(SyntheticSpec(n_train_units=1, n_test_units=60, min_test_cycles=30, seed=2)).test
    folder = tmp_path_factory.mktemp("window-baseline")
    write_baseline(model_rows(cut, 30)[FEATURES], folder)
    return folder


def test_model_rows_are_the_rows_the_model_reports_it_used(model_dir, serving_subset):
    model = load_model(model_dir)
    test = serving_subset.test
    used = model.predictor.predict_last(test[COLUMNS]).set_index("unit")["cycles_used"]
    rows = model_rows(test, model.window)
    assert rows.groupby("unit").size().to_dict() == used.to_dict()
    last = test.groupby("unit")["cycle"].max()
    assert (rows.groupby("unit")["cycle"].max() == last).all()
    shuffled = test.sample(frac=1.0, random_state=0)
    pd.testing.assert_frame_equal(model_rows(shuffled, model.window), rows)
    two = model_rows(test[test["unit"] <= 2], {1: 3, 2: 1})
    assert two.groupby("unit").size().to_dict() == {1: 3, 2: 1}
    with pytest.raises(ConfigurationError, match=r"no window length for unit\(s\) \[2\]"):
        model_rows(test[test["unit"] <= 2], {1: 3})
    with pytest.raises(ConfigurationError, match="at least one cycle"):
        model_rows(test, 0)


def test_every_accepted_form_is_read_by_both_jobs_and_a_corrupt_record_is_skipped(
    tmp_path, monkeypatch, model_dir, serving_subset, window_baseline
):
    monkeypatch.setenv("SAGEMAKER_BASE_DIR", str(tmp_path / "opt_ml"))
    test, captures = serving_subset.test, tmp_path / "captures"
    part = {name: test[test["unit"].isin(units)] for name, units in
            {"a": [1, 2, 3], "b": [4, 5], "c": [6, 7], "d": [8, 9, 10]}.items()}  # fmt: skip
    reordered = [*reversed(COLUMNS[2:]), "cycle", "unit"]
    answers = serve_requests(
        captures,
        model_dir,
        [
            (whitespace_body(part["a"], reordered), "text/csv"),
            (whitespace_body(part["b"]), "text/csv; charset=utf-8"),
            (json_body(part["c"], as_objects=False), "application/json"),
            (json_body(part["d"], as_objects=True), "application/json"),
        ],
    )
    (path,) = captures.rglob("*.jsonl")
    with path.open("a") as handle:
        handle.write('{"captureData": {"endpointInput": \n')  # a corrupt record, line 5
    out = tmp_path / "drift"
    assert run_entrypoint(drift.main, ["--baseline", str(window_baseline), "--captures", str(captures),
                                       "--output", str(out)]) == 0  # fmt: skip
    report = json.loads((out / drift.REPORT_FILE).read_text())
    summary = report["captures"]
    assert (summary["records"], summary["records_read"], summary["records_skipped"]) == (5, 4, 1)
    assert summary["first_skipped"][0]["file"] == str(path) and summary["first_skipped"][0]["line"] == 5
    assert summary["first_skipped"][0]["reason"].startswith("not valid JSON")
    expected_rows = model_rows(test, load_model(model_dir).window)
    assert report["counts"]["rows"] == len(expected_rows) < report["counts"]["rows_sent"] == len(test)
    assert report["counts"]["units"] == 10 and report["counts"]["requests"] == 4

    ground_truth = tmp_path / "failures.csv"
    last = test.groupby("unit")["cycle"].max()
    failures = serving_subset.test_rul.assign(failure_cycle=lambda t: t["unit"].map(last) + t["rul"])
    failures[["unit", "failure_cycle"]].to_csv(ground_truth, index=False)
    out = tmp_path / "quality"
    argv = ["--ground-truth", str(ground_truth), "--captures", str(captures), "--output", str(out)]
    assert run_entrypoint(model_quality.main, argv) == 0
    quality = json.loads((out / model_quality.REPORT_FILE).read_text())
    assert quality["captures"] == summary | {"rows_sent": len(test)}
    assert quality["counts"]["matched_predictions"] == 10
    predicted = {p["unit"]: p["predicted_rul"] for answer in answers for p in answer["predictions"]}
    true = dict(zip(serving_subset.test_rul["unit"], serving_subset.test_rul["rul"], strict=True))
    rmse = np.sqrt(np.mean([(predicted[unit] - true[unit]) ** 2 for unit in true]))
    assert quality["regression_metrics"]["rmse"]["value"] == pytest.approx(rmse)


def test_whole_histories_and_windows_give_the_same_drift_statistics(tmp_path, model_dir):
    fleet = generate(SyntheticSpec(n_train_units=1, n_test_units=40, min_test_cycles=80, seed=21)).test
    baseline = baseline_from_frame(
        model_rows(generate(SyntheticSpec(n_train_units=1, n_test_units=80, seed=3)).test, 30)
    )
    windows = model_rows(fleet, 30)
    features = {}
    for name, rows in (("whole", fleet), ("windows", windows)):
        # Four requests of ten engines each, JSON and CSV, as a client batching its fleet would send.
        requests = [
            (json_body(group, as_objects=False), "application/json")
            if index % 2
            else (whitespace_body(group), "text/csv")
            for index, (_, group) in enumerate(rows.groupby((rows["unit"] - 1) // 10))
        ]
        serve_requests(tmp_path / name, model_dir, requests)
        captured = read_window(tmp_path / name).model_rows()
        features[name] = compare_features(baseline, captured, DriftSettings())
    psi = {name: [feature["psi"] for feature in result] for name, result in features.items()}
    assert psi["whole"] == psi["windows"]
    assert [f["ks_statistic"] for f in features["whole"]] == [f["ks_statistic"] for f in features["windows"]]
    # The rows sent differ: comparing whole histories, as the jobs used to, moves the statistics.
    sent = compare_features(baseline, fleet, DriftSettings())
    assert max(abs(a["psi"] - b) for a, b in zip(sent, psi["windows"], strict=True)) > 0.05
