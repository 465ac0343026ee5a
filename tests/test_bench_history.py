"""The history bench: a row per history length with finite figures on a tiny synthetic fleet, the whole
history's own difference 0, trimming to the last N cycles, and the choice of the shortest sufficient N."""

from __future__ import annotations

import math

import pandas as pd
import pytest

from bench import bench_history
from rul.synthetic import SyntheticSpec, generate

TINY_RICH = {
    "model_family": "gbm",
    "feature_set": "rich",
    "ensemble_size": "1",
    "max_iter": "30",
    "validation_draws": "2",
    "cut_max_rul": "150",
}


def test_each_history_gets_a_row_of_finite_figures_and_the_whole_history_differs_by_nothing():
    fleet = generate(SyntheticSpec(n_train_units=24, n_test_units=1, seed=5)).train
    options = {"seed": 1, "folds": 2, "cuts": 2, "lengths": (30, 60)}
    rows = bench_history.history_table(fleet, "SYNTHETIC", TINY_RICH, options)
    assert [row["history"] for row in rows] == ["whole", "30", "60"]
    assert {row["feature_set"] for row in rows} == {"rich"}
    for row in rows:
        assert row["cuts"] == 24 * 2
        figures = [value for key, value in row.items() if key not in ("subset", "history", "feature_set")]
        assert all(math.isfinite(value) for value in figures), row
    whole, thirty, sixty = rows
    assert whole["mean_abs_diff"] == 0 and whole["trimmed_pct"] == 0 and whole["rmse_vs_whole_pct"] == 0
    # Cuts keep at least the 30-cycle window and most keep more: 30 trims more of them than 60, and a
    # trimmed rich history changes the prediction.
    assert thirty["trimmed_pct"] > sixty["trimmed_pct"] > 0
    assert thirty["mean_abs_diff"] > 0
    assert 0 <= whole["coverage"] <= 100 and whole["width"] > 0


def test_last_cycles_keeps_each_units_latest_rows_in_order():
    frame = pd.DataFrame({"unit": [2, 1, 2, 1, 2, 1, 2], "cycle": [4, 3, 2, 1, 3, 2, 1]})
    kept = bench_history.last_cycles(frame, 2)
    assert kept[["unit", "cycle"]].values.tolist() == [[1, 2], [1, 3], [2, 3], [2, 4]]
    assert len(bench_history.last_cycles(frame, 10)) == len(frame)


@pytest.mark.parametrize(
    ("rises", "expected"),
    [({30: 5.0, 40: 1.9, 60: 0.5}, "40"), ({30: 2.0, 40: 3.0}, "30"), ({30: 5.0, 40: 2.1}, "whole")],
)
def test_the_shortest_history_within_the_tolerance_is_recommended(rises, expected):
    rows = [{"history": "whole", "rmse_vs_whole_pct": 0.0}]
    rows += [{"history": str(length), "rmse_vs_whole_pct": rise} for length, rise in rises.items()]
    assert bench_history.smallest_sufficient(rows, 2.0) == expected


def test_a_subset_without_its_train_file_is_refused_by_name(tmp_path, capsys):
    assert bench_history.main(["--data-dir", str(tmp_path), "--subsets", "FD001"]) == 2
    assert "['FD001']" in capsys.readouterr().err


def test_history_lengths_below_one_are_refused(capsys):
    assert bench_history.main(["--synthetic", "--subsets", "--lengths", "30", "0"]) == 2
    assert "--lengths >= 1" in capsys.readouterr().err
