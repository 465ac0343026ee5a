"""`python -m local_runner run` checks every parameter and option before any work, and exits 2."""

from __future__ import annotations

import json

import pytest

from local_runner import __main__ as cli
from local_runner.params_check import (
    UsageError,
    check_parameters,
    check_run_options,
    declared_parameters,
    parse_value,
)
from pipeline_steps import names

DECLARED = [
    {"Name": "TuningMaxJobs", "Type": "Integer", "DefaultValue": 6},
    {"Name": "RmseThreshold", "Type": "Float", "DefaultValue": 30.0},
    {"Name": "Subset", "Type": "String", "DefaultValue": "FD001", "EnumValues": ["FD001", "FD002"]},
    {"Name": "UseGpu", "Type": "Boolean", "DefaultValue": False},
]
BOUNDS = {"TuningMaxJobs": (1, None), "RmseThreshold": (0, 100)}


def test_values_are_typed_by_their_declaration():
    given = [("TuningMaxJobs", "4"), ("RmseThreshold", "12.5"), ("Subset", "FD002"), ("UseGpu", "TRUE")]
    assert check_parameters(given, DECLARED, BOUNDS) == {
        "TuningMaxJobs": 4,
        "RmseThreshold": 12.5,
        "Subset": "FD002",
        "UseGpu": True,
    }


def test_an_unknown_name_lists_the_valid_ones():
    with pytest.raises(UsageError) as error:
        check_parameters([("TuningMaxJob", "4")], DECLARED, BOUNDS)
    message = str(error.value)
    assert "unknown parameter 'TuningMaxJob'" in message
    assert "valid parameters: RmseThreshold, Subset, TuningMaxJobs, UseGpu" in message


@pytest.mark.parametrize(
    ("name", "raw", "expected"),
    [
        ("TuningMaxJobs", "four", "TuningMaxJobs='four' is not an integer"),
        ("TuningMaxJobs", "2.5", "TuningMaxJobs='2.5' is not an integer"),
        ("RmseThreshold", "nan", "RmseThreshold='nan' is not a number"),
        ("UseGpu", "yes", "UseGpu='yes' is not true or false"),
        ("Subset", "FD009", "Subset='FD009' is not one of FD001, FD002"),
    ],
)
def test_a_bad_value_says_what_it_is_not(name, raw, expected):
    spec = next(item for item in DECLARED if item["Name"] == name)
    with pytest.raises(UsageError, match=expected.replace(".", r"\.")):
        parse_value(spec, raw)


def test_bounds_and_repeats_are_usage_errors():
    with pytest.raises(UsageError, match="TuningMaxJobs=0 is below its minimum 1"):
        check_parameters([("TuningMaxJobs", "0")], DECLARED, BOUNDS)
    with pytest.raises(UsageError, match=r"RmseThreshold=101\.0 is above its maximum 100"):
        check_parameters([("RmseThreshold", "101")], DECLARED, BOUNDS)
    with pytest.raises(UsageError, match="TuningMaxJobs is given twice"):
        check_parameters([("TuningMaxJobs", "2"), ("TuningMaxJobs", "3")], DECLARED, BOUNDS)


def test_run_options_are_checked(tmp_path):
    with pytest.raises(UsageError, match="--subset 'FD7' is not one of FD001"):
        check_run_options(None, "FD7", 10, {})
    with pytest.raises(UsageError, match="disagrees with --subset FD001"):
        check_run_options(None, "FD001", 10, {names.SUBSET: "FD002"})
    with pytest.raises(UsageError, match="--units 0 is below its minimum 1"):
        check_run_options(None, "FD001", 0, {})
    with pytest.raises(UsageError, match=r"holds no train_FD001\.txt"):
        check_run_options(tmp_path, "FD001", 10, {})
    (tmp_path / "train_FD001.txt").write_text("1 1\n")
    check_run_options(tmp_path, "FD001", 10, {})


def test_the_declared_parameters_are_the_rendered_definitions():
    from pipeline_steps.config import local_config
    from pipeline_steps.render import render_definition

    declared, bounds = declared_parameters()
    rendered = json.loads(render_definition(local_config()))["Parameters"]
    assert [item for item in declared if item["Name"] != names.MODEL_FAMILY] == rendered
    assert bounds[names.TUNING_MAX_JOBS] == (1, None)
    assert set(bounds) <= {item["Name"] for item in declared}


@pytest.mark.parametrize(
    ("param", "message"),
    [
        ("TuningMaxJobs=0", "TuningMaxJobs=0 is below its minimum 1"),
        ("Bogus=1", "valid parameters: ChampionModelUri"),
        ("TuningMaxParallelJobs=x", "TuningMaxParallelJobs='x' is not an integer"),
        ("ModelFamily=xgb", "ModelFamily='xgb' is not one of gbm, cnn, lstm"),
        ("MaxTuningJobs=2", "parameter 'MaxTuningJobs' was renamed: use TuningMaxJobs"),  # a former name
    ],
)
def test_run_exits_2_before_any_work(tmp_path, monkeypatch, capsys, param, message):
    def no_work(*args, **kwargs):
        raise AssertionError("the main job started")

    monkeypatch.setattr("local_runner.main_job.run_main_job", no_work)
    work = tmp_path / "work"
    assert cli.main(["run", "--work-dir", str(work), "--no-tracking", "--param", param]) == 2
    err = capsys.readouterr().err
    assert "python -m local_runner run: error:" in err and message in err
    assert not work.exists()  # no data generated, nothing rendered, no folder made
