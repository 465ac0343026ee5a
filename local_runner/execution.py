"""The pipeline executor: runs a rendered SageMaker pipeline definition locally, step by step.

It reads nothing but the definition JSON: parameters and their defaults, the steps, their arguments (API
requests with `Get`/`Std:Join`/`Std:JsonGet` expressions), `DependsOn`, property files, condition
branches, cache settings. Dependencies come from `DependsOn` and from every `Steps.X` reference
(`local_runner.graph`); steps whose dependencies have succeeded run, up to `max_parallel` at a time. Jobs
run through `local_runner.jobs`, tuning through `local_runner.tuning_step`, registration into
`local_runner.registry`. A step whose cache key matches an unexpired earlier run reuses that run's
properties (`local_runner.step_cache`). The record `<work>/executions/<id>/execution.json` exists from
the start and is rewritten as each step ends (`local_runner.execution_record`). A stop request
(`local_runner.signals`) ends the running jobs, starts nothing more and ends the execution `Stopped`. The
executor calls the tracking hooks (`local_runner.tracking_hooks`) as steps start and end, and only
executes: `start` returns the `ExecutionResult`, and its caller writes the HTML report and closes the
tracked run (`local_runner.report_publish.publish_execution`).
"""

from __future__ import annotations

import json
import secrets
import threading
import time
from collections.abc import Callable, Mapping
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from local_runner import jobs
from local_runner.container_code import CONTAINERS_DIR
from local_runner.execution_record import RecordWriter, mark_abandoned
from local_runner.expressions import Context, ExpressionError, evaluate_condition, load_json_text, resolve
from local_runner.graph import ExecutionError, cast_parameters, flatten_steps
from local_runner.live_view import emit
from local_runner.object_store import ObjectStore
from local_runner.registry import LocalRegistry
from local_runner.results import ExecutionResult, StepRecord
from local_runner.signals import StopController, StopRequested
from local_runner.step_cache import StepCache, cache_key
from local_runner.threads import RUNNING
from local_runner.tracking_hooks import ExecutionTracker
from local_runner.tuner import TuningError, tune
from local_runner.tuning_step import trial_runner, tuning_properties

__all__ = ["CONTAINERS_DIR", "ExecutionError", "ExecutionResult", "PipelineExecutor", "StepRecord"]
# The Model Monitor analyzer image is replaced by the project's own implementation of its contract.
QUALITY_CHECK_SCRIPT = CONTAINERS_DIR / "baseline.py"
JOB_STEP_TYPES = {"Processing", "QualityCheck", "Training", "Tuning"}


class PipelineExecutor:
    """Executes one pipeline definition against a local object store and model registry."""

    def __init__(
        self,
        definition: dict,
        work_dir: Path,
        store: ObjectStore,
        registry: LocalRegistry,
        echo: Callable[[str], None] = print,
        max_parallel: int = 2,
        pipeline_name: str = "local-pipeline",
        tracker: ExecutionTracker | None = None,
        stop: StopController | None = None,
        origins: Mapping[str, Path] | None = None,
    ):
        self.definition = definition
        self.work_dir = Path(work_dir).resolve()
        self.store = store
        self.registry = registry
        self.echo = echo
        self.max_parallel = max_parallel
        self.pipeline_name = pipeline_name
        self.tracker = tracker or ExecutionTracker()
        self.stop = stop or StopController()
        self.origins = dict(origins or {})  # S3 URI -> the local file it was uploaded from
        self.cache = StepCache(self.work_dir / "cache", echo)
        self.graph = flatten_steps(definition.get("Steps", []))
        for name, (_, depends) in self.graph.items():
            missing = depends - set(self.graph)
            if missing:
                raise ExecutionError(f"step {name} depends on unknown step(s) {sorted(missing)}")
        self._lock = threading.Lock()

    # -- the execution loop -------------------------------------------------------------------------------
    def start(
        self, parameters: dict[str, Any] | None = None, execution_id: str | None = None
    ) -> ExecutionResult:
        """Run the definition with `parameters` to its end; the result (its record is written as it runs)."""
        self._started = time.perf_counter()
        execution_id = execution_id or f"local-{datetime.now(UTC):%Y%m%d%H%M%S}-{secrets.token_hex(3)}"
        self._values = cast_parameters(self.definition.get("Parameters", []), parameters or {})
        mark_abandoned(self.work_dir, self.echo)
        self._context, self._execution_id = self._make_context(execution_id), execution_id
        self._records = {name: StepRecord(name, step["Type"]) for name, (step, _) in self.graph.items()}
        self._writer = RecordWriter(self.work_dir / "executions" / execution_id / "execution.json")
        self._writer.open()
        try:
            text = (
                f"execution {execution_id}: {len(self._records)} steps, "
                f"parameters {json.dumps(self._values, sort_keys=True)}"
            )
            emit(self.echo, "execution_started", text, execution=execution_id, steps=len(self._records))
            self._save()
            self.tracker.start_execution(execution_id, self.pipeline_name, self._values)
            return self._finish(self._run_graph())
        finally:
            self._writer.close()

    def _make_context(self, execution_id: str) -> Context:
        now = datetime.now(UTC).isoformat()
        arn = f"arn:aws:sagemaker:local:000000000000:pipeline/{self.pipeline_name}/execution/{execution_id}"
        return Context(
            parameters=self._values,
            execution={
                "PipelineExecutionId": execution_id,
                "PipelineExecutionArn": arn,
                "PipelineName": self.pipeline_name,
                "StartDateTime": now,
                "CurrentDateTime": now,
            },
            read_property_file=self._read_property_file,
        )

    def _result(self, status: str, failure: str) -> ExecutionResult:
        seconds = time.perf_counter() - self._started
        records = list(self._records.values())
        return ExecutionResult(
            self._execution_id, status, failure, self._values, records, seconds, self._writer.path
        )

    def _save(self) -> None:
        """Rewrite the record of the running execution (atomically; from any step thread)."""
        self._writer.write(self._result("Executing", ""))

    def _finish(self, failure: str) -> ExecutionResult:
        for record in self._records.values():
            if record.status == "NotStarted":
                record.status = "NotExecuted"
        status = "Failed" if failure else "Succeeded"
        if self.stop.requested:
            status, failure = "Stopped", failure or self.stop.reason
        result = self._result(status, failure)
        self._writer.write(result)
        return result

    def _run_graph(self) -> str:
        self._skipped: set[str] = set()
        finished: set[str] = set()  # updated by this thread only, after a step's future completed
        failure = ""
        running: dict[Future, str] = {}
        with ThreadPoolExecutor(self.max_parallel) as pool:
            while True:
                if not failure and not self.stop.requested and self._submit_ready(pool, running, finished):
                    self._save()  # the record shows the steps that started
                if not running:
                    break
                done, _ = wait(running, return_when=FIRST_COMPLETED)
                for future in done:
                    name = running.pop(future)
                    finished.add(name)
                    failure = self._step_ended(future, self._records[name], failure)
        return failure

    def _submit_ready(self, pool: ThreadPoolExecutor, running: dict[Future, str], finished: set[str]) -> bool:
        records = self._records
        starting: list[str] = []
        for name, (step, depends) in self.graph.items():
            record = records[name]
            if record.status != "NotStarted" or name in self._skipped:
                continue
            if any(records[d].status == "NotExecuted" or d in self._skipped for d in depends):
                self._skipped.add(name)
                continue
            ready = all(d in finished and records[d].status == "Succeeded" for d in depends)
            if ready and len(running) + len(starting) < self.max_parallel:
                record.status = "Executing"
                record.started_at = datetime.now(UTC).isoformat()
                if step["Type"] in JOB_STEP_TYPES:
                    RUNNING.reserve_step()
                starting.append(name)
        # Every sibling is reserved before the first one starts, so they share the cores from the start.
        for name in starting:
            running[pool.submit(self._run_step, name, records[name])] = name
        return bool(starting)

    def _step_ended(self, future: Future, record: StepRecord, failure: str) -> str:
        if record.type in JOB_STEP_TYPES:
            RUNNING.release_step()
        try:
            future.result()
        except StopRequested as error:
            record.status, record.failure_reason = "Stopped", str(error)
        except Exception as error:  # a step that cannot run ends the execution, like SageMaker
            record.status, record.failure_reason = "Failed", f"{type(error).__name__}: {error}"
        self.tracker.finish_step(record, self.store)
        if record.status == "Failed" and not failure:
            failure = f"step {record.name} failed: {record.failure_reason}"
        elif record.type == "Condition" and record.status == "Succeeded":
            self._mark_branch(record)
        self._save()
        return failure

    def _mark_branch(self, record: StepRecord) -> None:
        step = self.graph[record.name][0]
        chosen = "IfSteps" if record.properties["Outcome"] == "True" else "ElseSteps"
        other = "ElseSteps" if chosen == "IfSteps" else "IfSteps"
        for branch_step in step["Arguments"].get(other, []):
            self._records[branch_step["Name"]].status = "NotExecuted"

    # -- one step -----------------------------------------------------------------------------------------
    def _run_step(self, name: str, record: StepRecord) -> None:
        started = time.perf_counter()
        try:
            self._execute_step(name, record)
        finally:  # a stopped or broken step still shows how long it ran
            record.seconds = time.perf_counter() - started
        note = " (cache hit)" if record.cache_hit else ""
        detail = f": {record.failure_reason}" if record.status in ("Failed", "Stopped") else ""
        text = f"step {name} {record.status.lower()} in {record.seconds:.1f}s{note}{detail}"
        fields = {"type": record.type, "status": record.status, "seconds": record.seconds}
        emit(
            self.echo, "step_ended", text, step=name, reason=detail[2:], cache_hit=record.cache_hit, **fields
        )

    def _execute_step(self, name: str, record: StepRecord) -> None:
        step = self.graph[name][0]
        text = f"step {name} ({step['Type']}) started"
        emit(self.echo, "step_started", text, step=name, type=step["Type"])
        self.tracker.start_step(name, step["Type"])
        runner = self._step_runner(step)
        # A condition's arguments hold its branches, which refer to steps that have not run yet.
        arguments = {} if step["Type"] == "Condition" else resolve(step.get("Arguments", {}), self._context)
        key = cache_key(step, arguments)
        cached = self.cache.lookup(step, key) if key else None
        if cached is not None:
            record.properties, record.cache_hit, record.status = cached, True, "Succeeded"
        else:
            runner(step, arguments, record)
            if record.status == "Executing":
                record.status = "Succeeded"
            if record.status == "Succeeded" and key:
                self.cache.store(step, key, record.properties, self._execution_id)
        with self._lock:
            self._context.steps[name] = record.properties

    def _step_runner(self, step: dict) -> Callable[[dict, dict, StepRecord], None]:
        """The `_run_<type>` method of the step's type; a subclass registers more types and retries."""
        runner = getattr(self, f"_run_{step['Type'].lower()}", None)
        if runner is None:
            raise ExecutionError(f"step type {step['Type']} is not supported by the local runner")
        return runner

    def _job_name(self, step_name: str, suffix: str = "") -> str:
        return f"{self._execution_id}-{step_name}{suffix}"

    def _finish_job(self, result: jobs.JobResult, record: StepRecord) -> None:
        record.add_job(result.seconds)
        if result.status == "Stopped":
            record.status, record.failure_reason = "Stopped", result.failure_reason
        elif not result.ok:
            tail = "\n".join(result.log_text.splitlines()[-10:])
            reason = result.failure_reason + (f"\nlog tail:\n{tail}" if tail else "")
            record.status, record.failure_reason = "Failed", jobs.name_origins(reason, self.origins)

    def _run_processing(self, step: dict, arguments: dict, record: StepRecord) -> None:
        job_name = self._job_name(step["Name"])
        environment = self.tracker.job_environment(step["Name"], job_name)
        result = jobs.run_processing_job(
            job_name, arguments, self.store, self.work_dir, self.echo, environment, self.stop
        )
        self._finish_job(result, record)
        outputs = arguments.get("ProcessingOutputConfig", {}).get("Outputs", [])
        record.properties = {
            "ProcessingJobName": job_name,
            "ProcessingJobStatus": result.status,
            "ProcessingOutputConfig": {"Outputs": {output["OutputName"]: output for output in outputs}},
        }

    def _run_qualitycheck(self, step: dict, arguments: dict, record: StepRecord) -> None:
        request = json.loads(json.dumps(arguments))
        request["AppSpecification"]["ContainerEntrypoint"] = ["python3", str(QUALITY_CHECK_SCRIPT)]
        self._run_processing(step, request, record)
        output = request["ProcessingOutputConfig"]["Outputs"][0]["S3Output"]["S3Uri"].rstrip("/")
        statistics, constraints = f"{output}/statistics.json", f"{output}/constraints.json"
        record.properties.update(
            {
                "CalculatedBaselineStatistics": statistics,
                "CalculatedBaselineConstraints": constraints,
                "BaselineUsedForDriftCheckStatistics": step.get("SuppliedBaselineStatistics") or statistics,
                "BaselineUsedForDriftCheckConstraints": step.get("SuppliedBaselineConstraints")
                or constraints,
            }
        )

    def _run_training(self, step: dict, arguments: dict, record: StepRecord) -> None:
        job_name = self._job_name(step["Name"])
        environment = self.tracker.job_environment(step["Name"], job_name)
        result = jobs.run_training_job(
            job_name, arguments, self.store, self.work_dir, self.echo, environment, self.stop
        )
        self._finish_job(result, record)
        record.properties = {
            "TrainingJobName": job_name,
            "TrainingJobStatus": result.status,
            "ModelArtifacts": {"S3ModelArtifacts": result.outputs.get("model", "")},
        }

    def _run_tuning(self, step: dict, arguments: dict, record: StepRecord) -> None:
        def launch(job_name: str, request: dict) -> jobs.JobResult:
            environment = self.tracker.job_environment(step["Name"], job_name)
            result = jobs.run_training_job(
                job_name, request, self.store, self.work_dir, self.echo, environment, self.stop
            )
            record.add_job(result.seconds)
            return result

        definition = arguments["TrainingJobDefinition"]
        key = cache_key(step, arguments)
        run_trial = trial_runner(step, definition, key, self.cache, self._execution_id, launch, self.echo)
        try:
            trials = tune(arguments, run_trial, echo=self.echo)
        except TuningError as error:
            record.status, record.failure_reason = "Failed", str(error)
            return
        metric = arguments["HyperParameterTuningJobConfig"]["HyperParameterTuningJobObjective"]["MetricName"]
        record.properties = tuning_properties(self._job_name(step["Name"]), metric, trials)
        self.tracker.finish_tuning(step["Name"], record.properties)

    def _run_condition(self, step: dict, arguments: dict, record: StepRecord) -> None:
        outcome = all(
            evaluate_condition(condition, self._context) for condition in step["Arguments"]["Conditions"]
        )
        record.properties = {"Outcome": "True" if outcome else "False"}
        self.echo(f"condition {step['Name']}: {record.properties['Outcome'].lower()}")

    def _run_registermodel(self, step: dict, arguments: dict, record: StepRecord) -> None:
        container = arguments["InferenceSpecification"]["Containers"][0]
        package = self.registry.register(
            arguments["ModelPackageGroupName"],
            model_data_url=container["ModelDataUrl"],
            image_uri=container["Image"],
            model_metrics=arguments.get("ModelMetrics"),
            drift_check_baselines=arguments.get("DriftCheckBaselines"),
            approval_status=arguments.get("ModelApprovalStatus", "PendingManualApproval"),
            customer_metadata=arguments.get("CustomerMetadataProperties"),
            execution_id=self._execution_id,
            content_types=arguments["InferenceSpecification"].get("SupportedContentTypes", []),
            response_types=arguments["InferenceSpecification"].get("SupportedResponseMIMETypes", []),
        )
        record.properties = {"ModelPackageArn": package.arn, "ModelPackageVersion": package.version}
        self._save()  # the version is in the record at once, whatever happens next
        self.tracker.model_registered(package, self.store)
        self.echo(f"registered {package.arn} ({package.approval_status})")

    def _run_fail(self, step: dict, arguments: dict, record: StepRecord) -> None:
        record.status = "Failed"
        record.failure_reason = str(arguments.get("ErrorMessage", ""))

    # -- property files -----------------------------------------------------------------------------------
    def _read_property_file(self, step_name: str, file_name: str) -> Any:
        step = self.graph[step_name][0]
        spec = next(
            (item for item in step.get("PropertyFiles", []) if item["PropertyFileName"] == file_name), None
        )
        if spec is None:
            raise ExpressionError(f"step {step_name} declares no property file {file_name}")
        outputs = self._context.steps[step_name]["ProcessingOutputConfig"]["Outputs"]
        uri = outputs[spec["OutputName"]]["S3Output"]["S3Uri"].rstrip("/") + "/" + spec["FilePath"]
        return load_json_text(self.store.read_text(uri), uri)
