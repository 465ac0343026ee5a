"""Shared by the drift tests: a baseline, data-capture files of served windows, the job under /opt/ml."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime, timedelta

import pandas as pd
import pytest

import drift
from rul.contract import run_entrypoint
from rul.data import COLUMNS, SENSOR_COLUMNS, SETTING_COLUMNS
from rul.monitoring import write_baseline
from rul.synthetic import DriftSpec, SyntheticSpec, generate

FEATURES = [*SETTING_COLUMNS, *SENSOR_COLUMNS]


START = datetime(2026, 11, 25, 13, tzinfo=UTC)


ENDPOINT = "rul-endpoint"


def capture_line(rows: pd.DataFrame, moment: datetime, predictions: list[dict] | None = None) -> str:
    """One data-capture record as SageMaker writes it: `rows` as the CSV request, `predictions` (by default
    80 cycles for each unit) as the JSON response, at `moment`."""
    data = "\n".join(
        ",".join(repr(float(v)) if i > 1 else str(int(v)) for i, v in enumerate(row))
        for row in rows[COLUMNS].itertuples(index=False)
    )
    if predictions is None:
        predictions = [
            {"unit": int(u), "predicted_rul": 80.0, "cycles_used": 30, "padded": False}
            for u in pd.unique(rows["unit"])
        ]
    output = json.dumps({"predictions": predictions, "model_version": 3})
    record = {
        "captureData": {
            "endpointInput": {
                "observedContentType": "text/csv",
                "mode": "INPUT",
                "data": data,
                "encoding": "CSV",
            },
            "endpointOutput": {
                "observedContentType": "application/json",
                "mode": "OUTPUT",
                "data": output,
                "encoding": "JSON",
            },
        },
        "eventMetadata": {
            "eventId": str(uuid.uuid4()),
            "inferenceTime": moment.strftime("%Y-%m-%dT%H:%M:%SZ"),
        },
        "eventVersion": "0",
    }
    return json.dumps(record)


def write_captures(root, windows: pd.DataFrame, start: datetime = START, endpoint: str = ENDPOINT):
    """One request per unit (its rows), a minute apart, in SageMaker's hour folders."""
    files: dict = {}
    for index, (_, rows) in enumerate(windows.groupby("unit", sort=True)):
        moment = start + timedelta(minutes=index)
        folder = root / endpoint / "AllTraffic" / moment.strftime("%Y/%m/%d/%H")
        files.setdefault(folder, []).append(capture_line(rows, moment))
    for folder, lines in files.items():
        folder.mkdir(parents=True, exist_ok=True)
        (folder / "00-00-000-capture.jsonl").write_text("\n".join(lines) + "\n")
    return root


def served_windows(seed: int, units: int = 50, drift_spec: DriftSpec | None = None) -> pd.DataFrame:
    spec = SyntheticSpec(n_train_units=1, n_test_units=units, seed=seed, min_test_cycles=30, drift=drift_spec)
    return generate(spec).test.groupby("unit").tail(30).reset_index(drop=True)


# Fixtures, registered by name so that a test module imports the function without its parameters
# shadowing the import (which needs a noqa for F401 only).
@pytest.fixture(scope="session", name="baseline_dir")
def baseline_dir_fixture(tmp_path_factory):
    """statistics.json and constraints.json of 100 training units, as DataQualityBaseline writes them."""
    train = generate(SyntheticSpec(n_train_units=100, n_test_units=1, seed=0)).train
    folder = tmp_path_factory.mktemp("baseline")
    write_baseline(train[FEATURES], folder)
    return folder


@pytest.fixture(scope="session", name="baseline")
def baseline_fixture(baseline_dir):
    """The drift job's baseline loaded from `baseline_dir`."""
    return drift.load_baseline(baseline_dir)


@pytest.fixture(name="opt_ml")
def opt_ml_fixture(tmp_path, monkeypatch):
    """A temporary /opt/ml (the contract's SAGEMAKER_BASE_DIR)."""
    monkeypatch.setenv("SAGEMAKER_BASE_DIR", str(tmp_path / "opt_ml"))
    return tmp_path / "opt_ml"


def run_drift(opt_ml, baseline_dir, windows, *extra):
    captures = write_captures(opt_ml / "processing" / "input" / "captures", windows)
    code = run_entrypoint(drift.main, ["--baseline", str(baseline_dir), "--captures", str(captures), *extra])
    output = opt_ml / "processing" / "output"
    return code, output
