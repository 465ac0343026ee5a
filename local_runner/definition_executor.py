"""The executor of any pipeline definition: the project's executor with more step types, retries and
selective execution.

`PipelineExecutor` runs Processing, QualityCheck, Training, Tuning, Condition, RegisterModel and Fail
steps. `DefinitionExecutor` registers the other step types it can run in `STEP_RUNNERS` (type -> function
of the executor, the step, its resolved arguments and its record): Lambda (`step_lambda`), Callback
(`step_callback`), Model (`step_model`), Transform (`step_transform`), and Training and Tuning guarded by
`script_mode.require_script_mode`, and RegisterModel, which creates a missing model package group.
Jobs get `opt_ml_shim` on their `PYTHONPATH`, so scripts written for containers can open literal `/opt/ml`
paths. Every step runs under its retry policies (`retry`). The step types are checked before anything
runs: an unsupported one (EMR, AutoML, ClarifyCheck, ...) is an error naming the step and its type.
With a `Selection` (`selective`), only the selected steps run.
"""

from __future__ import annotations

import functools
import os
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

from local_runner.execution import PipelineExecutor
from local_runner.execution_record import StepRecord
from local_runner.expressions import Context
from local_runner.graph import ExecutionError
from local_runner.object_store import ObjectStore
from local_runner.opt_ml_shim import shim_environment
from local_runner.registry import LocalRegistry
from local_runner.retry import with_retries
from local_runner.script_mode import require_script_mode
from local_runner.selective import Selection
from local_runner.step_callback import run_callback
from local_runner.step_lambda import run_lambda
from local_runner.step_model import run_model
from local_runner.step_transform import run_transform

if TYPE_CHECKING:
    from local_runner.tracking import ExecutionTracker

StepFunction = Callable[[Any, dict, dict, StepRecord], None]
BUILT_IN_TYPES = ("Processing", "QualityCheck", "Training", "Tuning", "Condition", "RegisterModel", "Fail")


@dataclass(frozen=True)
class ExecuteOptions:
    """What a foreign definition needs beyond the definition itself."""

    lambda_map: Mapping[str, str] = field(default_factory=dict)  # function ARN or name -> "file.py:function"
    serving: Mapping[str, str] = field(default_factory=dict)  # image URI or repository -> serving command
    callback_timeout: float = 3600.0
    serve_timeout: float = 60.0
    max_retry_wait: float | None = None  # caps each retry policy's wait (tests)
    selection: Selection | None = None


def _run_training(executor: DefinitionExecutor, step: dict, arguments: dict, record: StepRecord) -> None:
    require_script_mode(
        step["Name"], arguments.get("AlgorithmSpecification", {}), arguments.get("HyperParameters", {})
    )
    executor._run_training(step, arguments, record)


def _run_tuning(executor: DefinitionExecutor, step: dict, arguments: dict, record: StepRecord) -> None:
    definition = arguments.get("TrainingJobDefinition", {})
    hyperparameters = definition.get("StaticHyperParameters", {})
    require_script_mode(step["Name"], definition.get("AlgorithmSpecification", {}), hyperparameters)
    executor._run_tuning(step, arguments, record)


def _run_register_model(
    executor: DefinitionExecutor, step: dict, arguments: dict, record: StepRecord
) -> None:
    group = arguments["ModelPackageGroupName"]
    # On AWS the group must exist before the execution; locally it is created (once) on first use.
    executor.registry.create_group(group, "created by python -m local_runner execute")
    executor._run_registermodel(step, arguments, record)


STEP_RUNNERS: dict[str, StepFunction] = {
    "RegisterModel": _run_register_model,
    "Lambda": run_lambda,
    "Callback": run_callback,
    "Model": run_model,
    "Transform": run_transform,
    "Training": _run_training,
    "Tuning": _run_tuning,
}
SUPPORTED_TYPES = sorted(set(STEP_RUNNERS) | set(BUILT_IN_TYPES))


def unsupported_steps(graph: Mapping[str, tuple[dict, set[str]]]) -> list[str]:
    """`name (Type)` of every step whose type the runner cannot run."""
    return [
        f"{name} ({step['Type']})" for name, (step, _) in graph.items() if step["Type"] not in SUPPORTED_TYPES
    ]


class _ShimmedTracker:
    """The execution's tracker, whose job environment also carries the `/opt/ml` path shim."""

    def __init__(self, tracker: Any):
        self._tracker = tracker

    def __getattr__(self, name: str) -> Any:
        return getattr(self._tracker, name)

    def job_environment(self, step_name: str, job_name: str) -> dict[str, str]:
        environment = dict(self._tracker.job_environment(step_name, job_name))
        return {**environment, **shim_environment({**os.environ, **environment})}


class DefinitionExecutor(PipelineExecutor):
    """Runs any SageMaker pipeline definition whose step types it supports."""

    def __init__(
        self,
        definition: dict,
        work_dir: Path,
        store: ObjectStore,
        registry: LocalRegistry,
        options: ExecuteOptions | None = None,
        **kwargs: Any,
    ):
        super().__init__(definition, work_dir, store, registry, **kwargs)
        self.options = options or ExecuteOptions()
        # foreign scripts open literal /opt/ml paths; the shim forwards everything else to the tracker
        self.tracker = cast("ExecutionTracker", _ShimmedTracker(self.tracker))
        unsupported = unsupported_steps(self.graph)
        if unsupported:
            raise ExecutionError(
                f"step type not supported by the local runner: {', '.join(unsupported)} "
                f"(supported: {', '.join(SUPPORTED_TYPES)})"
            )
        self._attempts: dict[str, int] = {}

    def _step_runner(self, step: dict) -> Callable[[dict, dict, StepRecord], None]:
        registered = STEP_RUNNERS.get(step["Type"])
        runner = functools.partial(registered, self) if registered else super()._step_runner(step)
        name = step["Name"]
        return with_retries(
            step,
            runner,
            self.echo,
            max_wait=self.options.max_retry_wait,
            sleep=self.stop_aware_sleep,
            on_retry=lambda attempt: self._attempts.__setitem__(name, attempt),
        )

    def stop_aware_sleep(self, seconds: float) -> None:
        """Wait before a retry; a stop request ends the wait (and the step)."""
        deadline = time.monotonic() + seconds
        while not self.stop.requested and time.monotonic() < deadline:
            time.sleep(min(0.2, max(0.0, deadline - time.monotonic())))
        self.stop.check()

    def _make_context(self, execution_id: str) -> Context:
        context = super()._make_context(execution_id)
        context.read_object = self.store.read_text  # JsonGet on an S3 URI
        return context

    def _job_name(self, step_name: str, suffix: str = "") -> str:
        attempt = self._attempts.get(step_name, 1)
        return super()._job_name(step_name, suffix + (f"-attempt{attempt}" if attempt > 1 else ""))

    def _execute_step(self, name: str, record: StepRecord) -> None:
        selection = self.options.selection
        if selection is None or name in selection.steps:
            super()._execute_step(name, record)
            return
        reused = selection.reused(name) if name in selection.upstream else None
        if reused is None:
            record.status = "NotExecuted"
            return
        # Shown like a cache hit: nothing ran, the properties are an earlier execution's.
        record.properties, record.status, record.cache_hit = reused, "Succeeded", True
        self.echo(f"step {name}: not selected, properties of execution {selection.source_id}")
        with self._lock:
            self._context.steps[name] = record.properties
