"""Monitor commands take what `registry show` prints: a version number or an s3:// URI of the local store."""

from __future__ import annotations

import argparse
import json
import shutil

import pytest
from drift_helpers import (
    baseline_dir_fixture,  # noqa: F401 - a fixture
    served_windows,
    write_captures,
)

from local_runner.monitor_cli import (
    MonitorInputError,
    add_monitor_parser,
    resolve_location,
    run_monitor_command,
)
from local_runner.object_store import ObjectStore
from local_runner.registry import LocalRegistry
from pipeline_steps.config import local_config
from rul.synthetic import DriftSpec

PREFIX = "s3://local-artifacts/registry/turbofan-rul/e1/DataQualityBaseline/baseline"


@pytest.fixture
def work(tmp_path, baseline_dir):
    """A work folder whose registry holds version 1 with its baselines in the local store."""
    work = tmp_path / "work"
    store = ObjectStore(work / "s3")
    store.upload(baseline_dir, PREFIX)
    registry = LocalRegistry(work / "registry.sqlite")
    group = local_config().model_package_group_name
    registry.create_group(group)
    baselines = {
        "ModelDataQuality": {
            kind: {"ContentType": "application/json", "S3Uri": f"{PREFIX}/{kind.lower()}.json"}
            for kind in ("Statistics", "Constraints")
        }
    }
    registry.register(group, "s3://b/model.tar.gz", "image:1", drift_check_baselines=baselines)
    registry.register(group, "s3://b/model2.tar.gz", "image:1")  # version 2: no baselines
    return work


def test_a_version_number_names_its_registered_baselines(work):
    folder = resolve_location("1", "baseline", work)
    assert folder == work / "s3" / PREFIX.removeprefix("s3://")
    assert sorted(path.name for path in folder.iterdir()) == ["constraints.json", "statistics.json"]


def test_an_s3_uri_of_the_local_store_names_its_folder_or_file(work):
    folder = work / "s3" / PREFIX.removeprefix("s3://")
    assert resolve_location(PREFIX, "baseline", work) == folder
    assert (
        resolve_location(f"{PREFIX}/statistics.json", "baseline", work) == folder
    )  # as `registry show` prints
    assert resolve_location(f"{PREFIX}/statistics.json", "captures", work) == folder / "statistics.json"


@pytest.mark.parametrize(
    ("text", "argument", "message"),
    [
        ("7", "baseline", "--baseline 7: model package group 'turbofan-rul' has no version 7"),
        ("2", "baseline", "--baseline 2: version 2 has no data-quality baselines"),
        ("3", "captures", "--captures 3 does not exist"),
        (
            "s3://local-artifacts/nothing/",
            "ground_truth",
            "--ground-truth s3://local-artifacts/nothing/: nothing",
        ),
        (
            "https://example.com/x",
            "baseline",
            "--baseline https://example.com/x: not a location this command",
        ),
    ],
)
def test_anything_else_is_an_error_naming_the_argument(work, text, argument, message):
    with pytest.raises(MonitorInputError) as error:
        resolve_location(text, argument, work)
    assert message in str(error.value)


def test_a_version_without_a_registry_is_named(tmp_path):
    with pytest.raises(MonitorInputError, match="--baseline 1: no model registry at"):
        resolve_location("1", "baseline", tmp_path)


def parse(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    add_monitor_parser(parser.add_subparsers(dest="verb"))
    return parser.parse_args(["monitor", *argv])


def test_a_bad_baseline_exits_2_before_any_job(work, tmp_path, capsys):
    args = parse(["drift", "--captures", str(tmp_path), "--baseline", "9", "--work-dir", str(work)])
    assert run_monitor_command(args) == 2
    assert "monitor: --baseline 9:" in capsys.readouterr().err
    assert not (work / "monitoring").exists()


def test_drift_with_a_version_number_and_captures_by_s3_uri(work, tmp_path, capsys):
    captures = write_captures(tmp_path / "c", served_windows(seed=11, drift_spec=DriftSpec("offset", 3.0)))
    shutil.copytree(captures, work / "s3" / "local-data" / "captures")
    argv = ["drift", "--baseline", "1", "--captures", "s3://local-data/captures", "--work-dir", str(work)]
    assert run_monitor_command(parse(argv)) == 0
    assert "drift DETECTED" in capsys.readouterr().out
    reports = list((work / "monitoring").glob("drift-*/opt_ml/processing/output/drift_report.json"))
    assert len(reports) == 1 and json.loads(reports[0].read_text())["drift_detected"] is True


@pytest.mark.chaos  # a subprocess job: ~10 s
def test_an_error_in_a_ground_truth_file_names_the_users_file(work, tmp_path, capsys):
    captures = write_captures(tmp_path / "c", served_windows(seed=11))
    labels = tmp_path / "labels"
    labels.mkdir()
    (labels / "bad.csv").write_text("unit,failure_cycle\n3,250\n3,260\n")  # two failures, no event_time
    argv = ["quality", "--captures", str(captures), "--ground-truth", str(labels), "--work-dir", str(work)]
    assert run_monitor_command(parse(argv)) == 1
    error = capsys.readouterr().err
    assert f"{labels / 'bad.csv'}, line " in error and "opt_ml" not in error.splitlines()[0]
