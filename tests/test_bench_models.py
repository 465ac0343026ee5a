"""The model bench's rendering: saved folds grouped by settings and trial reuse, CPU seconds shown."""

from __future__ import annotations

import importlib.util
import json

from conftest import PROJECT_ROOT


def bench_module():
    spec = importlib.util.spec_from_file_location("bench_models", PROJECT_ROOT / "bench" / "bench_models.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def record(reuse: bool, cpu: float | None, rmse: float) -> dict:
    result = {
        "subset": "FD004",
        "folds": 2,
        "hyperparameters": {"model_family": "gbm", "feature_set": "regime"},
        "rmse": rmse,
        "rmse_capped": 10.0,
        "score_per_100": 500.0,
        "coverage": 90.0,
        "width": 50.0,
        "fit_seconds": 30.0,
        "peak_mb": 400.0,
    }
    if reuse:
        result["reuse_trial"] = True
    if cpu is not None:
        result["fit_cpu_seconds"] = cpu
    return result


def test_runs_with_and_without_trial_reuse_render_apart_with_their_cpu_seconds(tmp_path):
    bench = bench_module()
    saved = tmp_path / "run.json"
    folds = [record(True, 20.0, 18.0), record(True, 40.0, 20.0), record(False, None, 22.0)]
    other = tmp_path / "other.json"
    saved.write_text(json.dumps({"folds": folds, "fleet": []}))
    other.write_text(
        json.dumps({"folds": [{**record(False, 5.0, 9.0), "subset": "FD001", "folds": 3}], "fleet": []})
    )
    lines, fleet, count = bench.rendered_runs([saved, other])
    assert "cpu s" in lines[0] and fleet == [] and count == "2/3"
    assert len(lines) == 4 and lines[3].startswith("FD001")
    reused = [line for line in lines[1:] if "(refit reuses the trial)" in line]
    plain = [line for line in lines[1:3] if "(refit reuses the trial)" not in line]
    assert len(reused) == len(plain) == 1
    assert "19.0 ± 1.0" in reused[0] and " 30.0   30.0 " in reused[0]  # median wall and CPU seconds
    assert "22.0 ± 0.0" in plain[0] and " nan " in plain[0]  # runs saved before CPU seconds were kept
