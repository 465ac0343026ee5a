"""The SageMaker container contract, in one place.

Processing jobs read inputs from and write outputs to folders under `/opt/ml/processing`; training jobs
read `SM_*` variables and the JSON files under `/opt/ml/input/config`, write the model to `SM_MODEL_DIR`
and report a failure reason in `/opt/ml/output/failure`. The root `/opt/ml` can be moved with the
`SAGEMAKER_BASE_DIR` environment variable, which is how the local runner and the tests run the same
scripts in a temporary folder.

Checkpoints: a training job created with a `CheckpointConfig` (managed spot training) finds it in
`<base>/input/config/checkpointconfig.json`; its `LocalPath` (default `/opt/ml/checkpoints`) is the
folder SageMaker syncs with the checkpoint S3 URI. SageMaker sets no environment variable for it;
`SM_CHECKPOINT_DIR` is this project's override of the folder (it also turns checkpoints on).
"""

from __future__ import annotations

import json
import os
import sys
import traceback
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

from rul.errors import ConfigurationError, RulError

BASE_DIR_VARIABLE = "SAGEMAKER_BASE_DIR"
DEFAULT_BASE_DIR = "/opt/ml"
CHECKPOINT_CONFIG = "checkpointconfig.json"
DEFAULT_CHECKPOINT_PATH = "/opt/ml/checkpoints"
# Hyperparameters the SageMaker SDK and tuner add for their own use.
_RESERVED_PREFIXES = ("sagemaker_", "_tuning_objective_metric")


def base_dir(environ: Mapping[str, str] | None = None) -> Path:
    """The SageMaker root folder: `SAGEMAKER_BASE_DIR` if set, else /opt/ml."""
    environ = os.environ if environ is None else environ
    return Path(environ.get(BASE_DIR_VARIABLE, DEFAULT_BASE_DIR))


def processing_dir(*parts: str, environ: Mapping[str, str] | None = None) -> Path:
    """A folder under `<base>/processing`, the default place of processing inputs and outputs."""
    return base_dir(environ).joinpath("processing", *parts)


def failure_file(environ: Mapping[str, str] | None = None) -> Path:
    """The file whose text SageMaker reports as the job's failure reason (`<base>/output/failure`)."""
    return base_dir(environ) / "output" / "failure"


def container_path(path: str, base: Path) -> Path:
    """A path SageMaker names under `/opt/ml`, placed under `base` (the same path when base is /opt/ml)."""
    if path == DEFAULT_BASE_DIR or path.startswith(DEFAULT_BASE_DIR + "/"):
        return base.joinpath(path[len(DEFAULT_BASE_DIR) :].strip("/"))
    return Path(path)


def checkpoint_location(config_dir: Path, base: Path, environ: Mapping[str, str]) -> tuple[Path, bool]:
    """The checkpoint folder and whether checkpoints are on (a CheckpointConfig or the project override)."""
    if "SM_CHECKPOINT_DIR" in environ:
        return Path(environ["SM_CHECKPOINT_DIR"]), True
    if (config_dir / CHECKPOINT_CONFIG).is_file():
        local = _read_json(config_dir / CHECKPOINT_CONFIG).get("LocalPath") or DEFAULT_CHECKPOINT_PATH
        if not isinstance(local, str):
            raise ConfigurationError(f"{config_dir / CHECKPOINT_CONFIG}: LocalPath must be a string")
        return container_path(local, base), True
    return base / "checkpoints", False


def decode_hyperparameter(value: object) -> object:
    """SageMaker passes hyperparameters as strings, JSON-encoded by the SDK; decode when possible."""
    if not isinstance(value, str):
        return value
    try:
        return json.loads(value)
    except json.JSONDecodeError:
        return value


def _read_json(path: Path) -> dict:
    if not path.is_file():
        return {}
    try:
        content = json.loads(path.read_text())
    except json.JSONDecodeError as error:
        raise ConfigurationError(f"{path} is not valid JSON: {error}") from None
    if not isinstance(content, dict):
        raise ConfigurationError(f"{path} must hold a JSON object, found {type(content).__name__}")
    return content


@dataclass(frozen=True)
class TrainingContext:
    """Where a training job finds its inputs and puts its outputs, and the hyperparameters it was given."""

    model_dir: Path
    output_data_dir: Path
    checkpoint_dir: Path
    channels: dict[str, Path]
    hyperparameters: dict[str, object] = field(default_factory=dict)
    checkpoints_enabled: bool = False

    @classmethod
    def from_environment(cls, environ: Mapping[str, str] | None = None) -> TrainingContext:
        """The folders, channels and decoded hyperparameters from SageMaker's files and SM_* variables."""
        environ = os.environ if environ is None else environ
        base = base_dir(environ)
        config_dir = base / "input" / "config"
        channel_names = set(_read_json(config_dir / "inputdataconfig.json"))
        channel_names |= {
            name[len("SM_CHANNEL_") :].lower() for name in environ if name.startswith("SM_CHANNEL_")
        }
        channels = {
            name: Path(environ.get(f"SM_CHANNEL_{name.upper()}", base / "input" / "data" / name))
            for name in sorted(channel_names)
        }
        if "SM_HPS" in environ:
            try:
                raw = json.loads(environ["SM_HPS"])
            except json.JSONDecodeError as error:
                raise ConfigurationError(f"SM_HPS is not valid JSON: {error}") from None
            if not isinstance(raw, dict):
                raise ConfigurationError(f"SM_HPS must hold a JSON object, found {type(raw).__name__}")
        else:
            raw = _read_json(config_dir / "hyperparameters.json")
        hyperparameters = {
            key: decode_hyperparameter(value)
            for key, value in raw.items()
            if not key.startswith(_RESERVED_PREFIXES)
        }
        checkpoint_dir, checkpoints_enabled = checkpoint_location(config_dir, base, environ)
        return cls(
            model_dir=Path(environ.get("SM_MODEL_DIR", base / "model")),
            output_data_dir=Path(environ.get("SM_OUTPUT_DATA_DIR", base / "output" / "data")),
            checkpoint_dir=checkpoint_dir,
            channels=channels,
            hyperparameters=hyperparameters,
            checkpoints_enabled=checkpoints_enabled,
        )

    def channel(self, name: str) -> Path:
        """The folder of input channel `name`; a missing channel is an error naming the known ones."""
        if name not in self.channels:
            known = ", ".join(self.channels) or "none"
            raise ConfigurationError(f"training channel {name!r} was not provided (channels: {known})")
        return self.channels[name]


def run_entrypoint(main: Callable[[list[str] | None], int], argv: list[str] | None = None) -> int:
    """Run a script's main; a `RulError` exits 1 with its message, a bug exits 2 with its traceback.

    Either way the reason is also written to the failure file, which SageMaker shows as the job's
    FailureReason.
    """
    try:
        return main(argv)
    except RulError as error:
        message = f"{type(error).__name__}: {error}"
        code = 1
    except Exception:
        message = traceback.format_exc()
        code = 2
    print(message, file=sys.stderr, flush=True)
    try:
        path = failure_file()
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(message[-1024:])
    except OSError:
        pass
    return code
