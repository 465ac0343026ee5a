"""The model bench's rendering (saved folds grouped by settings, learner and trial reuse; CPU seconds, the
capped-125 yardstick and the resolved settings shown) and its LightGBM learner."""

from __future__ import annotations

import importlib
import importlib.util
import json

import numpy as np
import pytest
from conftest import PROJECT_ROOT

from rul.hyperparameters import Hyperparameters


def bench_module():
    """The module's shared `bench_module` fixture."""
    spec = importlib.util.spec_from_file_location("bench_models", PROJECT_ROOT / "bench" / "bench_models.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def record(reuse: bool, cpu: float | None, rmse: float) -> dict:
    """The module's shared `record` fixture."""
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


def test_the_literature_yardstick_learner_and_resolved_settings_are_shown(tmp_path):
    bench = bench_module()
    resolved = {"feature_set": "regime", "rul_cap": 150.0, "inner_cap": 125.0}
    folds = [
        {
            **record(True, 40.0, 19.0),
            "rmse_capped_125": 11.0,
            "resolved": resolved,
            "hyperparameters": {"model_family": "gbm"},
        },
        {
            **record(True, 42.0, 21.0),
            "rmse_capped_125": 12.0,
            "resolved": resolved,
            "hyperparameters": {"model_family": "gbm"},
        },
        {**record(True, 50.0, 20.0), "learner": "lightgbm", "hyperparameters": {"model_family": "gbm"}},
    ]
    saved = tmp_path / "run.json"
    saved.write_text(json.dumps({"folds": folds, "fleet": []}))
    header, sklearn, lightgbm = bench.rendered_runs([saved])[0]
    assert "capped 125" in header
    assert "11.5 ± 0.5" in sklearn and "[used regime, cap 150/125]" in sklearn and "lightgbm" not in sklearn
    assert (
        "learner=lightgbm (refit reuses the trial)" in lightgbm and " nan " in lightgbm
    )  # no 125 column saved


def test_the_lightgbm_learner_replaces_the_gbm_ensemble_in_its_process(monkeypatch):
    pytest.importorskip("lightgbm")
    import rul.ensemble
    import rul.models

    monkeypatch.syspath_prepend(str(PROJECT_ROOT / "bench"))
    monkeypatch.setattr(rul.ensemble, "GbmEnsemble", rul.ensemble.GbmEnsemble)
    monkeypatch.setattr(rul.models, "GbmEnsemble", rul.models.GbmEnsemble)
    learner = importlib.import_module("lightgbm_learner")
    learner.install()
    assert rul.models.GbmEnsemble is learner.LgbmEnsemble is rul.ensemble.GbmEnsemble
    rng = np.random.default_rng(0)
    features = rng.normal(size=(300, 4))
    labels = 10 * features[:, 0] + rng.normal(size=300)
    hp = Hyperparameters(ensemble_size=2, max_iter=30, min_samples_leaf=5)
    fitted = learner.LgbmEnsemble(hp).fit(features, labels)
    assert len(fitted.members) == 2
    assert np.corrcoef(fitted.predict(features), labels)[0, 1] > 0.9
