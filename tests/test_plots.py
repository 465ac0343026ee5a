"""Tests of rul.plots: every plot writes a real PNG and leaves no figure open."""

from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np
import pytest

from rul import metrics, plots
from rul.errors import ConfigurationError, DataFormatError

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def _assert_png(path):
    data = path.read_bytes()
    assert data[:8] == PNG_SIGNATURE
    assert len(data) > 5_000
    assert plt.get_fignums() == []


@pytest.fixture
def predictions():
    rng = np.random.default_rng(0)
    y_true = rng.uniform(0, 190, 60).round()
    y_pred = np.minimum(y_true, 125) + rng.normal(0, 12, 60)
    return y_true, y_pred


@pytest.fixture
def trajectory():
    cycles = np.arange(1, 201)
    true_rul = cycles[::-1] - 1
    return {
        "unit": 3,
        "cycles": cycles,
        "true_rul": true_rul,
        "predicted_rul": np.minimum(true_rul, 125) + np.sin(cycles / 7) * 8,
    }


def test_predicted_vs_true(tmp_path, predictions):
    path = plots.plot_predicted_vs_true(*predictions, tmp_path / "pvt.png", cap=125)
    assert path == tmp_path / "pvt.png"
    _assert_png(path)


def test_error_histogram(tmp_path, predictions):
    _assert_png(plots.plot_error_histogram(*predictions, tmp_path / "hist.png"))


def test_error_by_bucket_skips_empty(tmp_path):
    buckets = metrics.error_by_bucket([5, 10, 30, 140], [7, 9, 20, 125])
    assert any(b["count"] == 0 for b in buckets)
    _assert_png(plots.plot_error_by_bucket(buckets, tmp_path / "nested" / "buckets.png"))


def test_error_by_bucket_all_empty(tmp_path):
    buckets = metrics.error_by_bucket([5], [5], edges=(100, 200))
    _assert_png(plots.plot_error_by_bucket(buckets, tmp_path / "empty.png"))


def test_unit_trajectory(tmp_path, trajectory):
    path = plots.plot_unit_trajectory(
        trajectory["cycles"],
        trajectory["true_rul"],
        trajectory["predicted_rul"],
        tmp_path / "traj.png",
        unit=trajectory["unit"],
    )
    _assert_png(path)


def test_unit_trajectory_length_mismatch(tmp_path):
    with pytest.raises(DataFormatError, match="length mismatch"):
        plots.plot_unit_trajectory([1, 2], [5, 4, 3], [5, 4, 3], tmp_path / "x.png", unit=1)
    assert plt.get_fignums() == []


def test_invalid_predictions_leave_no_figure(tmp_path):
    with pytest.raises(DataFormatError):
        plots.plot_error_histogram([1, 2], [1], tmp_path / "x.png")
    assert not (tmp_path / "x.png").exists()
    assert plt.get_fignums() == []


def test_write_evaluation_plots_with_trajectory(tmp_path, predictions, trajectory):
    buckets = metrics.error_by_bucket(*predictions)
    out = tmp_path / "plots"
    written = plots.write_evaluation_plots(*predictions, buckets, trajectory, out)
    assert set(written) == {"predicted_vs_true", "error_histogram", "error_by_bucket", "unit_trajectory"}
    assert sorted(p.name for p in out.iterdir()) == [
        "error_by_bucket.png",
        "error_histogram.png",
        "predicted_vs_true.png",
        "unit_trajectory.png",
    ]
    for path in written.values():
        assert path.parent == out
        _assert_png(path)


def test_write_evaluation_plots_without_trajectory(tmp_path, predictions):
    buckets = metrics.error_by_bucket(*predictions)
    written = plots.write_evaluation_plots(*predictions, buckets, None, tmp_path / "a" / "b")
    assert len(written) == 3 and "unit_trajectory" not in written
    for path in written.values():
        _assert_png(path)


def test_write_evaluation_plots_rejects_incomplete_trajectory(tmp_path, predictions):
    buckets = metrics.error_by_bucket(*predictions)
    with pytest.raises(ConfigurationError, match="predicted_rul"):
        plots.write_evaluation_plots(*predictions, buckets, {"unit": 1, "cycles": [1]}, tmp_path)
