"""Tests of rul.contract: the SageMaker folders, the training context and the entry-point wrapper."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from rul import contract
from rul.contract import TrainingContext, base_dir, decode_hyperparameter, run_entrypoint
from rul.errors import ConfigurationError, DataFormatError


def _config_dir(base: Path) -> Path:
    directory = base / "input" / "config"
    directory.mkdir(parents=True, exist_ok=True)
    return directory


# --- base_dir and the derived folders -----------------------------------------------------------------


def test_base_dir_default(monkeypatch):
    monkeypatch.delenv("SAGEMAKER_BASE_DIR", raising=False)
    assert base_dir() == Path("/opt/ml")
    assert base_dir({}) == Path("/opt/ml")
    assert contract.failure_file({}) == Path("/opt/ml/output/failure")
    assert contract.processing_dir("input", "train", environ={}) == Path("/opt/ml/processing/input/train")


def test_base_dir_override_from_os_environ(monkeypatch, tmp_path):
    monkeypatch.setenv("SAGEMAKER_BASE_DIR", str(tmp_path))
    assert base_dir() == tmp_path
    assert contract.failure_file() == tmp_path / "output" / "failure"
    assert contract.processing_dir("output") == tmp_path / "processing" / "output"


def test_base_dir_explicit_environ_wins_over_os_environ(monkeypatch, tmp_path):
    monkeypatch.setenv("SAGEMAKER_BASE_DIR", "/somewhere/else")
    assert base_dir({"SAGEMAKER_BASE_DIR": str(tmp_path)}) == tmp_path
    assert base_dir({}) == Path("/opt/ml")


@pytest.mark.parametrize(
    ("raw", "decoded"),
    [
        ("30", 30),
        ("0.1", 0.1),
        ('"gbm"', "gbm"),
        ("gbm", "gbm"),
        ("null", None),
        ("true", True),
        (30, 30),
        (None, None),
    ],
)
def test_decode_hyperparameter(raw, decoded):
    result = decode_hyperparameter(raw)
    assert result == decoded
    assert type(result) is type(decoded)


# --- TrainingContext ----------------------------------------------------------------------------------


def test_from_environment_with_sm_variables(tmp_path):
    environ = {
        "SAGEMAKER_BASE_DIR": str(tmp_path / "base"),
        "SM_MODEL_DIR": str(tmp_path / "model"),
        "SM_OUTPUT_DATA_DIR": str(tmp_path / "out"),
        "SM_CHECKPOINT_DIR": str(tmp_path / "ckpt"),
        "SM_CHANNEL_TRAIN": str(tmp_path / "data" / "train"),
        "SM_CHANNEL_VALIDATION": str(tmp_path / "data" / "val"),
        "SM_HPS": json.dumps({"window": 40, "model_family": "cnn", "sagemaker_program": "train.py"}),
        "UNRELATED": "x",
    }
    context = TrainingContext.from_environment(environ=environ)
    assert context.model_dir == tmp_path / "model"
    assert context.output_data_dir == tmp_path / "out"
    assert context.checkpoint_dir == tmp_path / "ckpt"
    assert context.channels == {"train": tmp_path / "data" / "train", "validation": tmp_path / "data" / "val"}
    assert context.channel("train") == tmp_path / "data" / "train"
    assert context.hyperparameters == {"window": 40, "model_family": "cnn"}


def test_from_environment_defaults_under_base(tmp_path):
    context = TrainingContext.from_environment(environ={"SAGEMAKER_BASE_DIR": str(tmp_path)})
    assert context.model_dir == tmp_path / "model"
    assert context.output_data_dir == tmp_path / "output" / "data"
    assert context.checkpoint_dir == tmp_path / "checkpoints"
    assert context.channels == {}
    assert context.hyperparameters == {}


def test_from_environment_reads_config_files(tmp_path):
    config = _config_dir(tmp_path)
    # The SDK writes every hyperparameter value as a JSON-encoded string.
    (config / "hyperparameters.json").write_text(
        json.dumps(
            {
                "window": "30",
                "learning_rate": "0.1",
                "model_family": '"gbm"',
                "feature_set": "stats",
                "sagemaker_program": '"train.py"',
                "sagemaker_submit_directory": '"s3://bucket/source.tar.gz"',
                "sagemaker_region": '"eu-west-1"',
                "_tuning_objective_metric": '"validation:rmse"',
            }
        )
    )
    (config / "inputdataconfig.json").write_text(
        json.dumps(
            {
                "train": {"TrainingInputMode": "File", "S3DistributionType": "FullyReplicated"},
                "validation": {"TrainingInputMode": "File"},
            }
        )
    )
    context = TrainingContext.from_environment(environ={"SAGEMAKER_BASE_DIR": str(tmp_path)})
    assert context.hyperparameters == {
        "window": 30,
        "learning_rate": 0.1,
        "model_family": "gbm",
        "feature_set": "stats",
    }
    assert isinstance(context.hyperparameters["window"], int)
    assert context.channels == {
        "train": tmp_path / "input" / "data" / "train",
        "validation": tmp_path / "input" / "data" / "validation",
    }
    assert context.channel("validation") == tmp_path / "input" / "data" / "validation"


def test_channel_variable_overrides_config_channel_path(tmp_path):
    config = _config_dir(tmp_path)
    (config / "inputdataconfig.json").write_text(json.dumps({"train": {}, "test": {}}))
    environ = {"SAGEMAKER_BASE_DIR": str(tmp_path), "SM_CHANNEL_TRAIN": "/data/train-here"}
    context = TrainingContext.from_environment(environ=environ)
    assert context.channels == {
        "test": tmp_path / "input" / "data" / "test",
        "train": Path("/data/train-here"),
    }
    assert list(context.channels) == ["test", "train"]


def test_sm_hps_takes_precedence_over_file(tmp_path):
    config = _config_dir(tmp_path)
    (config / "hyperparameters.json").write_text(json.dumps({"window": "30", "seed": "1"}))
    environ = {"SAGEMAKER_BASE_DIR": str(tmp_path), "SM_HPS": json.dumps({"window": 50})}
    context = TrainingContext.from_environment(environ=environ)
    assert context.hyperparameters["window"] == 50


def test_from_environment_uses_os_environ_by_default(monkeypatch, tmp_path):
    monkeypatch.setenv("SAGEMAKER_BASE_DIR", str(tmp_path))
    monkeypatch.setenv("SM_CHANNEL_EXTRA", str(tmp_path / "extra"))
    monkeypatch.setenv("SM_HPS", json.dumps({"seed": 3}))
    monkeypatch.delenv("SM_MODEL_DIR", raising=False)
    context = TrainingContext.from_environment()
    assert context.model_dir == tmp_path / "model"
    assert context.channel("extra") == tmp_path / "extra"
    assert context.hyperparameters["seed"] == 3


@pytest.mark.parametrize("file_name", ["hyperparameters.json", "inputdataconfig.json"])
def test_invalid_json_file_raises_configuration_error(tmp_path, file_name):
    path = _config_dir(tmp_path) / file_name
    path.write_text('{"window": "30",')
    with pytest.raises(ConfigurationError) as caught:
        TrainingContext.from_environment(environ={"SAGEMAKER_BASE_DIR": str(tmp_path)})
    assert str(caught.value).startswith(f"{path} is not valid JSON: ")


def test_invalid_sm_hps_raises_configuration_error(tmp_path):
    environ = {"SAGEMAKER_BASE_DIR": str(tmp_path), "SM_HPS": "{window: 30}"}
    with pytest.raises(ConfigurationError, match=r"^SM_HPS is not valid JSON: "):
        TrainingContext.from_environment(environ=environ)


@pytest.mark.parametrize("hps", ["[1, 2]", '"window=30"', "30"])
def test_sm_hps_must_be_a_json_object(tmp_path, hps):
    environ = {"SAGEMAKER_BASE_DIR": str(tmp_path), "SM_HPS": hps}
    with pytest.raises(ConfigurationError, match="SM_HPS"):
        TrainingContext.from_environment(environ=environ)


def test_missing_channel_names_known_channels(tmp_path):
    environ = {"SAGEMAKER_BASE_DIR": str(tmp_path), "SM_CHANNEL_TRAIN": "/a", "SM_CHANNEL_VALIDATION": "/b"}
    context = TrainingContext.from_environment(environ=environ)
    with pytest.raises(ConfigurationError) as caught:
        context.channel("missing")
    assert str(caught.value) == "training channel 'missing' was not provided (channels: train, validation)"


def test_missing_channel_with_no_channels(tmp_path):
    context = TrainingContext.from_environment(environ={"SAGEMAKER_BASE_DIR": str(tmp_path)})
    with pytest.raises(ConfigurationError, match=r"'train' was not provided \(channels: none\)"):
        context.channel("train")


# --- run_entrypoint -----------------------------------------------------------------------------------


@pytest.fixture
def base(monkeypatch, tmp_path) -> Path:
    monkeypatch.setenv("SAGEMAKER_BASE_DIR", str(tmp_path))
    return tmp_path


@pytest.mark.parametrize("code", [0, 3])
def test_run_entrypoint_returns_main_code(base, capsys, code):
    seen = []

    def main(argv):
        seen.append(argv)
        return code

    assert run_entrypoint(main, ["--x", "1"]) == code
    assert seen == [["--x", "1"]]
    assert not (base / "output" / "failure").exists()
    assert capsys.readouterr().err == ""


def test_run_entrypoint_rul_error_exits_1(base, capsys):
    def main(argv):
        raise DataFormatError("/data/train_FD001.txt", 7, "expected 26 columns, found 25")

    assert run_entrypoint(main) == 1
    expected = "DataFormatError: /data/train_FD001.txt, line 7: expected 26 columns, found 25"
    assert capsys.readouterr().err.strip() == expected
    assert (base / "output" / "failure").read_text() == expected


def test_run_entrypoint_configuration_error(base, capsys):
    def main(argv):
        raise ConfigurationError("hyperparameter window=3 is outside [5, 200]")

    assert run_entrypoint(main, []) == 1
    assert "ConfigurationError: hyperparameter window=3 is outside [5, 200]" in capsys.readouterr().err
    assert "window=3" in (base / "output" / "failure").read_text()


def test_run_entrypoint_bug_exits_2_with_traceback(base, capsys):
    def main(argv):
        raise ValueError("boom")

    assert run_entrypoint(main) == 2
    err = capsys.readouterr().err
    assert err.startswith("Traceback (most recent call last):")
    assert "ValueError: boom" in err
    failure = (base / "output" / "failure").read_text()
    assert "Traceback" in failure
    assert "in main" in failure
    assert failure.rstrip().endswith("ValueError: boom")


def test_run_entrypoint_failure_file_keeps_last_1024_characters(base, capsys):
    message = "start " + "x" * 3000 + " the end"

    def main(argv):
        raise ConfigurationError(message)

    assert run_entrypoint(main) == 1
    failure = (base / "output" / "failure").read_text()
    assert len(failure) == 1024
    assert failure.endswith(" the end")
    assert message in capsys.readouterr().err


def test_run_entrypoint_survives_unwritable_failure_file(monkeypatch, tmp_path, capsys):
    blocker = tmp_path / "not-a-dir"
    blocker.write_text("")
    monkeypatch.setenv("SAGEMAKER_BASE_DIR", str(blocker))

    def main(argv):
        raise ConfigurationError("bad")

    assert run_entrypoint(main) == 1
    assert "ConfigurationError: bad" in capsys.readouterr().err
