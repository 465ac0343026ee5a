"""The tracking hooks the executor calls as an execution runs, and the tracker that does nothing with them.

`ExecutionTracker` is the interface and the tracking-off implementation: the executor calls
`start_execution`, `start_step`, `job_environment`, `finish_step`, `finish_tuning` and `model_registered`
while it runs; the caller of the execution calls `finish_execution` once the report is written
(`local_runner.report_publish`). `local_runner.tracking.MlflowExecutionTracker` implements them with
MLflow. This module imports nothing heavy, so the executor depends on it and not on MLflow's tracker.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from local_runner.object_store import ObjectStore
from local_runner.tracking_store import TRACKING_URI_ENV

if TYPE_CHECKING:
    from local_runner.registry import ModelPackage
    from local_runner.results import ExecutionResult, StepRecord


class ExecutionTracker:
    """Tracking switched off: every hook does nothing and jobs get no MLflow variables."""

    enabled = False
    tracking_uri = ""

    def start_execution(self, execution_id: str, pipeline_name: str, parameters: Mapping[str, Any]) -> None:
        """Called before the first step with the execution's id, pipeline name and parameters."""
        pass

    def start_step(self, name: str, step_type: str) -> None:
        """Called when a step starts running."""
        pass

    def job_environment(self, step_name: str, job_name: str) -> dict[str, str]:
        """The environment variables a job of the step gets: here the tracking URI blanked."""
        # Blank, not absent: a job must not pick up a MLFLOW_TRACKING_URI of the runner's environment.
        return {TRACKING_URI_ENV: ""}

    def finish_step(self, record: StepRecord, store: ObjectStore) -> None:
        """Called when a step ended, with its record."""
        pass

    def finish_tuning(self, step_name: str, properties: Mapping[str, Any]) -> None:
        """Called when a tuning step ended, with its properties (the trials)."""
        pass

    def model_registered(self, package: ModelPackage, store: ObjectStore) -> None:
        """Called when the pipeline registered a model package."""
        pass

    def finish_execution(self, result: ExecutionResult, store: ObjectStore, report: Path | None) -> None:
        """Called once the execution's report is written."""
        pass

    def links(self) -> dict[str, str]:
        """Where the execution's tracking is, by label, for the report; none here."""
        return {}
