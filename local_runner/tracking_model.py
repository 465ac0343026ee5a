"""Log a registered model archive (`model.tar.gz`) as an MLflow `pyfunc` model with its signature.

The archive is unpacked into a scratch folder and saved in MLflow's model format as the "model from code"
of `tracking_pyfunc.py`, with the model folder as its artifact, the project's `rul` package as its code
path and, as requirements, the job image's pins of what prediction imports (given, so MLflow does not
spend seconds inferring them; TensorFlow only for a deep model).
The signature is inferred from the model's own prediction on `rul.inference.canned_window()`: a DataFrame
of the 26 C-MAPSS columns in, one row per unit out. The saved model becomes an MLflow 3 logged model of
the given run, whose artifact location is what a model version points at.
"""

from __future__ import annotations

import tarfile
import tempfile
from pathlib import Path
from typing import Any

from local_runner.container_code import CONTAINERS_DIR, use_container_code

# The artifact name `tracking_pyfunc.py` reads (that file runs inside the model, so it holds its own copy).
MODEL_DIR_ARTIFACT = "model_dir"
PYFUNC_SOURCE = Path(__file__).resolve().with_name("tracking_pyfunc.py")
LOGGED_MODEL_NAME = "model"
# What `rul` imports to predict; a deep model needs TensorFlow too. Pins come from the job image's list.
PREDICTION_PACKAGES = ("numpy", "pandas", "scikit-learn", "scipy", "joblib")
DEEP_PACKAGES = ("tensorflow-cpu",)


def model_signature(model_dir: Path) -> tuple[Any, bool]:
    """The signature of the model folder's predictions on the canned window (rows in, units out), and
    whether the model is a deep one."""
    from mlflow.models import infer_signature

    use_container_code()
    from rul import inference

    window = inference.canned_window()
    model = inference.load_model(model_dir)
    return infer_signature(window, inference.predict(model, window).frame), model.predictor.deep


def pinned_requirements(deep: bool) -> list[str]:
    """The job image's pins (`containers/requirements.txt`) of the packages prediction needs."""
    wanted = PREDICTION_PACKAGES + (DEEP_PACKAGES if deep else ())
    pins = {}
    for line in (CONTAINERS_DIR / "requirements.txt").read_text().splitlines():
        name = line.split("#", 1)[0].split("==", 1)[0].strip().lower()
        if name in wanted:
            pins[name] = line.split("#", 1)[0].strip()
    return [pins.get(name, name) for name in wanted]


def save_pyfunc(archive: Path, scratch: Path) -> Path:
    """Unpack `archive` under `scratch` and save it there in MLflow's model format; returns that folder."""
    import mlflow.pyfunc

    model_dir = scratch / "model"
    model_dir.mkdir(parents=True)
    with tarfile.open(archive) as bundle:
        bundle.extractall(model_dir, filter="data")
    saved = scratch / "pyfunc"
    signature, deep = model_signature(model_dir)
    mlflow.pyfunc.save_model(
        str(saved),
        python_model=str(PYFUNC_SOURCE),
        artifacts={MODEL_DIR_ARTIFACT: str(model_dir)},
        code_paths=[str(CONTAINERS_DIR / "rul")],
        signature=signature,
        pip_requirements=pinned_requirements(deep),
    )
    return saved


def log_pyfunc_model(
    client: Any, experiment_id: str, run_id: str, archive: Path, tags: dict[str, str]
) -> Any:
    """A READY MLflow logged model of `run_id` holding the `pyfunc` form of `archive`."""
    with tempfile.TemporaryDirectory(prefix="mlflow-model-") as scratch:
        saved = save_pyfunc(Path(archive), Path(scratch))
        logged = client.create_logged_model(
            experiment_id, name=LOGGED_MODEL_NAME, source_run_id=run_id, tags=tags, model_type="pyfunc"
        )
        try:
            client.log_model_artifacts(logged.model_id, str(saved))
        except BaseException:
            client.finalize_logged_model(logged.model_id, "FAILED")
            raise
    return client.finalize_logged_model(logged.model_id, "READY")
