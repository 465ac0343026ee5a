"""The MLflow `pyfunc` form of a registered RUL model, logged as MLflow "model from code".

MLflow copies this file into each logged model and runs it when the model is loaded (it is not imported
by the runner): `mlflow.pyfunc.load_model("models:/<group>/<version>")` then gives a model whose `predict`
takes a DataFrame of C-MAPSS rows (the 26 columns of `rul.data.COLUMNS`, each unit's cycles contiguous)
and returns one row per unit, exactly as the serving container answers: `unit`, `predicted_rul`,
`cycles_used`, `padded`, and `rul_lower`/`rul_upper` for a calibrated model. The project's `rul` package
travels with the model as its code path; the trained model folder is the artifact `model_dir`.
"""

from __future__ import annotations

import mlflow
import pandas as pd
from mlflow.pyfunc import PythonModel

# `tracking_model.MODEL_DIR_ARTIFACT`: this file runs inside the model, where the runner is not importable.
MODEL_DIR_ARTIFACT = "model_dir"


class RulPyfuncModel(PythonModel):
    """`rul.inference.predict` on the model folder of the artifact `model_dir`."""

    def load_context(self, context) -> None:
        """Load the trained model folder of the artifact `model_dir`."""
        from rul.inference import load_model

        self._model = load_model(context.artifacts[MODEL_DIR_ARTIFACT])

    def predict(self, context, model_input: pd.DataFrame, params=None) -> pd.DataFrame:
        """One row per unit of `model_input`'s C-MAPSS rows, as the serving container answers."""
        from rul.data import COLUMNS
        from rul.inference import predict

        return predict(self._model, pd.DataFrame(model_input)[COLUMNS]).frame


mlflow.models.set_model(RulPyfuncModel())
