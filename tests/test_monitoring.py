"""The data-quality baseline in Model Monitor's format (`rul.monitoring`) and its entry script."""

from __future__ import annotations

import itertools
import json
import math

import numpy as np
import pandas as pd
import pytest

import baseline
from rul.errors import ConfigurationError, DataFormatError
from rul.monitoring import (
    FRACTIONAL,
    INTEGRAL,
    KLL_K,
    MONITORING_CONFIG,
    STRING,
    compute_statistics,
    infer_type,
    kll_distribution,
    suggest_constraints,
    write_baseline,
)

CSV_FORMAT = json.dumps({"csv": {"header": True, "output_columns_position": "START"}})


def crafted() -> pd.DataFrame:
    """Text as read from a CSV: integers, decimals with a gap, negative numbers, and labels."""
    return pd.DataFrame(
        {
            "cycle": ["1", "2", "3", "4"],
            "sensor_2": ["641.5", None, "642.5", "643.0"],
            "setting_1": ["-0.5", "0.5", "1", "-1"],
            "label": ["a", "b", "a", None],
        },
        dtype=object,
    )


def feature(statistics: dict, name: str) -> dict:
    return next(f for f in statistics["features"] if f["name"] == name)


# --- types -----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("values", "expected"),
    [
        (["1", "-2", " 3 "], INTEGRAL),
        (["1", "2.5", "1e3"], FRACTIONAL),
        (["1", "x"], STRING),
        (["nan", "1"], STRING),
        ([1, 2], INTEGRAL),
        ([1.0, 2.0], FRACTIONAL),
        ([True, False], STRING),
    ],
)
def test_infer_type(values, expected):
    series = pd.Series(values, dtype=object if isinstance(values[0], str) else None)
    assert infer_type(series) == expected


def test_infer_type_needs_a_value():
    with pytest.raises(ValueError, match="'empty' has no values"):
        infer_type(pd.Series([None, None], name="empty", dtype=object))


# --- statistics ------------------------------------------------------------------------------------


def test_statistics_of_a_crafted_frame():
    statistics = compute_statistics(crafted())
    assert statistics["version"] == 0.0
    assert statistics["dataset"] == {"item_count": 4}
    assert [(f["name"], f["inferred_type"]) for f in statistics["features"]] == [
        ("cycle", INTEGRAL),
        ("sensor_2", FRACTIONAL),
        ("setting_1", FRACTIONAL),
        ("label", STRING),
    ]
    cycle = feature(statistics, "cycle")["numerical_statistics"]
    assert cycle["common"] == {"num_present": 4, "num_missing": 0}
    assert (cycle["sum"], cycle["mean"], cycle["min"], cycle["max"]) == (10.0, 2.5, 1.0, 4.0)
    assert cycle["std_dev"] == pytest.approx(math.sqrt(1.25))  # population standard deviation
    sensor = feature(statistics, "sensor_2")["numerical_statistics"]
    assert sensor["common"] == {"num_present": 3, "num_missing": 1}
    assert sensor["mean"] == pytest.approx(642.3333333)
    assert (sensor["min"], sensor["max"]) == (641.5, 643.0)
    assert sensor["std_dev"] == pytest.approx(np.std([641.5, 642.5, 643.0]))
    label = feature(statistics, "label")["string_statistics"]
    assert label["common"] == {"num_present": 3, "num_missing": 1}
    assert label["distinct_count"] == 2.0
    assert label["distribution"]["categorical"]["buckets"] == [
        {"value": "a", "count": 2},
        {"value": "b", "count": 1},
    ]


def test_statistics_of_numeric_dtypes_and_json_types():
    frame = pd.DataFrame({"unit": [1, 1, 2], "sensor_4": [1400.0, np.nan, 1410.0]})
    statistics = compute_statistics(frame)
    assert [f["inferred_type"] for f in statistics["features"]] == [INTEGRAL, FRACTIONAL]
    sensor = feature(statistics, "sensor_4")["numerical_statistics"]
    assert sensor["common"] == {"num_present": 2, "num_missing": 1}
    # Plain Python numbers only, so json.dumps never meets a numpy scalar.
    json.dumps(statistics, allow_nan=False)


def test_kll_entry_has_ten_buckets_summing_to_the_count():
    values = np.arange(1, 101, dtype=float)
    kll = kll_distribution(values)
    buckets = kll["buckets"]
    assert len(buckets) == 10
    assert sum(b["count"] for b in buckets) == 100
    assert buckets[0]["lower_bound"] == 1.0 and buckets[-1]["upper_bound"] == 100.0
    assert all(a["upper_bound"] == b["lower_bound"] for a, b in itertools.pairwise(buckets))
    assert kll["sketch"]["parameters"] == {"c": 0.64, "k": 2048.0}
    assert kll["sketch"]["data"] == [values.tolist()]


def test_kll_sketch_keeps_k_sorted_samples_of_a_large_column():
    values = np.random.default_rng(0).normal(size=10_000)
    data = kll_distribution(values)["sketch"]["data"][0]
    assert len(data) == KLL_K
    assert data == sorted(data)
    assert (data[0], data[-1]) == (values.min(), values.max())


def test_a_constant_column_has_one_bucket():
    buckets = kll_distribution(np.full(5, 2.0))["buckets"]
    assert buckets == [{"lower_bound": 2.0, "upper_bound": 2.0, "count": 5}]


def test_histogram_counts_sum_to_the_present_values_of_every_column():
    frame = pd.DataFrame(np.random.default_rng(1).normal(size=(257, 3)), columns=["a", "b", "c"])
    frame.iloc[::10, 1] = np.nan
    for entry in compute_statistics(frame)["features"]:
        stats = entry["numerical_statistics"]
        total = sum(b["count"] for b in stats["distribution"]["kll"]["buckets"])
        assert total == stats["common"]["num_present"]
        assert stats["common"]["num_present"] + stats["common"]["num_missing"] == 257


def test_infinite_values_and_empty_frames_are_refused():
    with pytest.raises(ValueError, match="infinite"):
        compute_statistics(pd.DataFrame({"x": [1.0, np.inf]}))
    with pytest.raises(ValueError, match="no rows"):
        compute_statistics(pd.DataFrame({"x": []}))


# --- constraints -----------------------------------------------------------------------------------


def test_constraints_shape():
    frame = crafted()
    constraints = suggest_constraints(frame, compute_statistics(frame))
    assert set(constraints) == {"version", "features", "monitoring_config"}
    assert constraints["version"] == 0.0
    by_name = {f["name"]: f for f in constraints["features"]}
    assert by_name["cycle"] == {
        "name": "cycle",
        "inferred_type": INTEGRAL,
        "completeness": 1.0,
        "num_constraints": {"is_non_negative": True},
    }
    assert by_name["sensor_2"]["completeness"] == 0.75
    assert by_name["setting_1"]["num_constraints"] == {"is_non_negative": False}
    assert by_name["label"]["string_constraints"] == {"domains": ["a", "b"]}
    assert constraints["monitoring_config"] == {
        "evaluate_constraints": "Enabled",
        "emit_metrics": "Enabled",
        "datatype_check_threshold": 1.0,
        "domain_content_threshold": 1.0,
        "distribution_constraints": {
            "perform_comparison": "Enabled",
            "comparison_threshold": 0.1,
            "comparison_method": "Robust",
        },
    }
    constraints["monitoring_config"]["emit_metrics"] = "Disabled"
    assert MONITORING_CONFIG["emit_metrics"] == "Enabled"


def test_constraints_refuse_statistics_of_another_frame():
    with pytest.raises(ValueError, match="4 items"):
        suggest_constraints(crafted().head(2), compute_statistics(crafted()))


def test_write_baseline_writes_both_files(tmp_path):
    paths = write_baseline(crafted(), tmp_path / "out")
    assert sorted(p.name for p in paths.values()) == ["constraints.json", "statistics.json"]
    assert json.loads(paths["statistics"].read_text())["dataset"]["item_count"] == 4
    assert len(json.loads(paths["constraints"].read_text())["features"]) == 4


# --- the entry script ------------------------------------------------------------------------------


@pytest.fixture
def job(tmp_path, monkeypatch):
    """A temporary /opt/ml with the SDK's data-quality environment and an empty dataset folder."""
    monkeypatch.setenv("SAGEMAKER_BASE_DIR", str(tmp_path))
    monkeypatch.setenv("dataset_format", CSV_FORMAT)
    monkeypatch.setenv("dataset_source", "/opt/ml/processing/input/baseline_dataset_input")
    monkeypatch.setenv("output_path", "/opt/ml/processing/output")
    monkeypatch.setenv("publish_cloudwatch_metrics", "Disabled")
    source = tmp_path / "processing" / "input" / "baseline_dataset_input"
    source.mkdir(parents=True)
    return tmp_path


def write_csv(path, text: str):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


def dataset(job):
    return job / "processing" / "input" / "baseline_dataset_input"


def test_container_path_rebases_opt_ml_only(tmp_path):
    environ = {"SAGEMAKER_BASE_DIR": str(tmp_path)}
    assert baseline.container_path("/opt/ml/processing/output", environ) == tmp_path / "processing" / "output"
    assert baseline.container_path("/opt/ml", environ) == tmp_path
    assert baseline.container_path("/opt/mlx/data", environ).as_posix() == "/opt/mlx/data"
    assert baseline.container_path("/data/in", environ).as_posix() == "/data/in"


def test_script_end_to_end_over_several_files(job):
    write_csv(dataset(job) / "baseline-algo-1.csv", "setting_1,sensor_2\n0.1,641.5\n0.2,642.0\n")
    write_csv(dataset(job) / "part" / "baseline-algo-2.csv", "setting_1,sensor_2\n0.3,\n")
    write_csv(dataset(job) / "notes.txt", "not a csv")
    assert baseline.run_entrypoint(baseline.main) == 0
    output = job / "processing" / "output"
    statistics = json.loads((output / "statistics.json").read_text())
    constraints = json.loads((output / "constraints.json").read_text())
    assert statistics["dataset"] == {"item_count": 3}
    sensor = feature(statistics, "sensor_2")["numerical_statistics"]
    assert sensor["common"] == {"num_present": 2, "num_missing": 1}
    assert feature(statistics, "setting_1")["numerical_statistics"]["sum"] == pytest.approx(0.6)
    assert [f["name"] for f in constraints["features"]] == ["setting_1", "sensor_2"]
    assert not (job / "output" / "failure").exists()


def test_script_names_headerless_columns_as_spark_does(job, monkeypatch):
    monkeypatch.setenv("dataset_format", json.dumps({"csv": {"header": False}}))
    write_csv(dataset(job) / "data.csv", "1,2.5\n2,3.5\n")
    assert baseline.run_entrypoint(baseline.main) == 0
    statistics = json.loads((job / "processing" / "output" / "statistics.json").read_text())
    assert [(f["name"], f["inferred_type"]) for f in statistics["features"]] == [
        ("_c0", INTEGRAL),
        ("_c1", FRACTIONAL),
    ]


def test_script_uses_the_default_paths_without_the_path_variables(job, monkeypatch):
    monkeypatch.delenv("dataset_source")
    monkeypatch.delenv("output_path")
    write_csv(dataset(job) / "data.csv", "sensor_2\n1.5\n")
    assert baseline.main([]) == 0
    assert (job / "processing" / "output" / "constraints.json").is_file()


@pytest.mark.parametrize(
    ("files", "message"),
    [
        ({}, "no CSV file in the baseline dataset source"),
        ({"a.csv": "setting_1,sensor_2\n"}, "a.csv: no data rows"),
        ({"a.csv": ""}, "a.csv: no data rows"),
        (
            {"a.csv": "setting_1,sensor_2\n0.1,641.5\n0.2,x1\n"},
            "a.csv, line 3: column sensor_2 is not numeric: 'x1'",
        ),
        ({"a.csv": "setting_1,sensor_2\n0.1\n"}, "a.csv, line 2: expected 2 fields, found 1"),
        ({"a.csv": "0.1,641.5\n0.2,642.0\n"}, "a.csv, line 1: the header row holds only numbers"),
        ({"a.csv": "a,b\n1,2\n", "b.csv": "a,c\n1,2\n"}, "b.csv, line 1: columns ['a', 'c'] differ"),
        ({"a.csv": "sensor_2,label\n,x\n"}, "'sensor_2' has no values"),
        ({"a.csv": "a,b,a\n1,2,3\n"}, "a.csv, line 1: repeated column names ['a']"),
    ],
)
def test_script_data_errors_name_file_and_problem(job, files, message):
    for name, text in files.items():
        write_csv(dataset(job) / name, text)
    with pytest.raises(DataFormatError) as raised:
        baseline.main([])
    assert message in str(raised.value)


def test_headerless_data_starting_with_a_header_row_is_refused(job, monkeypatch):
    monkeypatch.setenv("dataset_format", json.dumps({"csv": {"header": False}}))
    write_csv(dataset(job) / "a.csv", "setting_1,sensor_2\n0.1,641.5\n")
    with pytest.raises(DataFormatError, match="line 1: the first row looks like a header"):
        baseline.main([])


def test_a_missing_source_is_a_data_error(job, monkeypatch):
    monkeypatch.setenv("dataset_source", "/opt/ml/processing/input/elsewhere")
    with pytest.raises(DataFormatError, match="does not exist"):
        baseline.main([])


@pytest.mark.parametrize(
    ("value", "message"),
    [
        (None, "dataset_format is not set"),
        ("{csv", "not valid JSON"),
        (json.dumps({"json": {"lines": True}}), "is not supported"),
        (json.dumps({"csv": {"header": "yes"}}), "csv.header must be true or false"),
        (json.dumps({"csv": {"output_columns_position": "MIDDLE"}}), "START or END"),
    ],
)
def test_bad_dataset_formats_are_configuration_errors(job, monkeypatch, value, message):
    if value is None:
        monkeypatch.delenv("dataset_format")
    else:
        monkeypatch.setenv("dataset_format", value)
    with pytest.raises(ConfigurationError, match=message):
        baseline.main([])


def test_scripts_the_baseline_cannot_run_are_refused(job, monkeypatch):
    monkeypatch.setenv("record_preprocessor_script", "/opt/ml/processing/input/pre/pre.py")
    with pytest.raises(ConfigurationError, match="record_preprocessor_script"):
        baseline.main([])


def test_failures_exit_1_and_write_the_failure_file(job):
    assert baseline.run_entrypoint(baseline.main) == 1
    assert "no CSV file" in (job / "output" / "failure").read_text()
