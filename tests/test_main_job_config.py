"""The main job takes the bucket and the pipeline name from the one config it renders, not from defaults."""

from __future__ import annotations

import pytest

from local_runner import main_job
from local_runner.main_job import MainJobOptions, prepare_workspace, run_main_job
from pipeline_steps.code import source_dir_uri


class TrackerMade(Exception):
    """Raised by the stand-in tracker factory to end the run once the tracker's name is known."""


def test_the_code_is_published_in_the_configured_bucket(tmp_path):
    """A workspace whose config names another bucket has its code there, where its jobs will read it."""
    workspace = prepare_workspace(tmp_path, render=False, artifact_bucket="other-artifacts")
    assert workspace.config.code_uri.startswith("s3://other-artifacts/code/")
    assert workspace.store.path_for(source_dir_uri(workspace.config.code_uri)).is_file()


def test_the_tracker_is_named_after_the_configured_pipeline(tmp_path, monkeypatch):
    """The MLflow experiment is the pipeline the run renders, also when an override renames it."""
    names: list[str] = []

    def make_tracker(work_dir, experiment_name, enabled, echo):
        names.append(experiment_name)
        raise TrackerMade

    monkeypatch.setattr(main_job, "make_tracker", make_tracker)
    options = MainJobOptions(work_dir=tmp_path, config_overrides={"pipeline_name": "renamed-rul"})
    with pytest.raises(TrackerMade):
        run_main_job(options, echo=lambda line: None)
    assert names == ["renamed-rul"]


def test_a_bad_override_fails_before_anything_is_written(tmp_path):
    """An unknown config field is refused by name before the tracker, data or workspace exist."""
    options = MainJobOptions(work_dir=tmp_path / "work", config_overrides={"no_such_field": 1})
    with pytest.raises(ValueError, match="no_such_field"):
        run_main_job(options, echo=lambda line: None)
    assert not (tmp_path / "work").exists()
