"""Script-mode training as the SageMaker training toolkit runs it, and the built-in images it cannot run.

The SDK's framework estimators (SKLearn, PyTorch, XGBoost in framework mode, ...) put two hyperparameters
in the request: `sagemaker_program` (the entry point) and `sagemaker_submit_directory` (the source
tarball's S3 URI). The toolkit unpacks the tarball, sets the `SM_*` environment (`toolkit_environment`)
and runs the entry point with the user's hyperparameters as command-line arguments
(`script_arguments`, `--name value`, sorted by name). The local runner does the same with the local
Python. A request without those hyperparameters runs the image's own program: a built-in algorithm
(XGBoost, Linear Learner, ...) or a custom image, which the runner cannot run; `require_script_mode` says
so, naming the image.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping

from local_runner.graph import ExecutionError

TOOLKIT_PREFIX = "sagemaker_"  # the toolkit's own hyperparameters, never passed to the script
BUILT_IN_ALGORITHMS = (
    "xgboost",
    "linear-learner",
    "kmeans",
    "knn",
    "factorization-machines",
    "pca",
    "lda",
    "ntm",
    "randomcutforest",
    "blazingtext",
    "object2vec",
    "ipinsights",
    "image-classification",
    "object-detection",
    "semantic-segmentation",
    "seq2seq",
    "forecasting-deepar",
)


def decode(value: object) -> object:
    """A hyperparameter as the toolkit reads it: the SDK JSON-encodes strings (`"\\"t.py\\""`)."""
    if isinstance(value, str):
        try:
            return json.loads(value)
        except json.JSONDecodeError:
            return value
    return value


def require_script_mode(step_name: str, algorithm: Mapping, hyperparameters: Mapping) -> None:
    """Raise `ExecutionError` naming the image when the request is not script mode."""
    if hyperparameters.get("sagemaker_program") and hyperparameters.get("sagemaker_submit_directory"):
        return
    image = algorithm.get("TrainingImage") or algorithm.get("AlgorithmName") or "(no image)"
    repository = str(image).rsplit("/", 1)[-1].split(":")[0].removeprefix("sagemaker-")
    kind = "the built-in algorithm image" if repository in BUILT_IN_ALGORITHMS else "the image"
    raise ExecutionError(
        f"step {step_name}: training with {kind} {image} runs the image's own program, which the local "
        f"runner cannot run; it runs script mode only (an SDK framework estimator with entry_point, which "
        f"sets the sagemaker_program and sagemaker_submit_directory hyperparameters)"
    )


def _argument_text(value: object) -> str:
    return value if isinstance(value, str) else json.dumps(value)


def script_arguments(hyperparameters: Mapping[str, object]) -> list[str]:
    """The user's hyperparameters as the toolkit passes them to the entry point: `--name value`."""
    arguments: list[str] = []
    for name in sorted(hyperparameters):
        if not name.startswith(TOOLKIT_PREFIX):
            arguments += [f"--{name}", _argument_text(decode(hyperparameters[name]))]
    return arguments


def toolkit_environment(hyperparameters: Mapping[str, object], channels: Mapping[str, dict]) -> dict:
    """The toolkit's `SM_*` variables (paths under /opt/ml, rewritten by the job launcher)."""
    user = {k: decode(v) for k, v in hyperparameters.items() if not k.startswith(TOOLKIT_PREFIX)}
    program = str(decode(hyperparameters.get("sagemaker_program", "")))
    environment = {
        "SM_HOSTS": json.dumps(["algo-1"]),
        "SM_CURRENT_HOST": "algo-1",
        "SM_NUM_CPUS": str(os.cpu_count() or 1),
        "SM_NUM_GPUS": "0",
        "SM_CHANNELS": json.dumps(sorted(channels)),
        "SM_INPUT_DIR": "/opt/ml/input",
        "SM_INPUT_CONFIG_DIR": "/opt/ml/input/config",
        "SM_INPUT_DATA_CONFIG": json.dumps(dict(channels)),
        "SM_OUTPUT_DIR": "/opt/ml/output",
        "SM_OUTPUT_INTERMEDIATE_DIR": "/opt/ml/output/intermediate",
        "SM_MODULE_DIR": str(decode(hyperparameters.get("sagemaker_submit_directory", ""))),
        "SM_USER_ENTRY_POINT": program,
        "SM_MODULE_NAME": program.removesuffix(".py"),
        "SM_USER_ARGS": json.dumps(script_arguments(hyperparameters)),
        "SM_LOG_LEVEL": str(decode(hyperparameters.get("sagemaker_container_log_level", 20))),
    }
    environment.update({f"SM_HP_{name.upper()}": _argument_text(value) for name, value in user.items()})
    return environment
