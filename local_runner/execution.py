"""The pipeline executor: runs a rendered SageMaker pipeline definition locally, step by step.

It reads nothing but the definition JSON: parameters and their defaults, the steps, their arguments (API
requests with `Get`/`Std:Join`/`Std:JsonGet` expressions), `DependsOn`, property files, condition
branches, cache settings. Dependencies come from `DependsOn` and from every `Steps.X` reference; steps
whose dependencies have succeeded run, up to `max_parallel` at a time. Jobs run through
`local_runner.jobs`, tuning through `local_runner.tuner`, registration into `local_runner.registry`.
A step whose cache key (the attributes SageMaker uses for it) matches an unexpired earlier run reuses
that run's properties. Each execution is recorded in `<work>/executions/<id>/execution.json`, with a
self-contained HTML report beside it (`local_runner.report`); a tracker (`local_runner.tracking`) mirrors
the execution, its steps, trials and registered model into MLflow when tracking is on.
"""

from __future__ import annotations

import hashlib
import json
import re
import secrets
import threading
import time
from collections.abc import Callable
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from local_runner import jobs, report
from local_runner.expressions import Context, ExpressionError, evaluate_condition, load_json_text, resolve
from local_runner.object_store import ObjectStore
from local_runner.registry import LocalRegistry
from local_runner.tracking import ExecutionTracker
from local_runner.tuner import TuningError, tune

CONTAINERS_DIR = Path(__file__).resolve().parent.parent / "containers"
# The Model Monitor analyzer image is replaced by the project's own implementation of its contract.
QUALITY_CHECK_SCRIPT = CONTAINERS_DIR / "baseline.py"
# Attributes of each step type that SageMaker's step caching compares (its "default cache keys").
CACHE_KEYS = {
    "Processing": ("AppSpecification", "Environment", "ProcessingInputs"),
    "QualityCheck": ("AppSpecification", "Environment", "ProcessingInputs"),
    "Training": (
        "AlgorithmSpecification",
        "CheckpointConfig",
        "Environment",
        "HyperParameters",
        "InputDataConfig",
    ),
    "Tuning": ("HyperParameterTuningJobConfig", "TrainingJobDefinition"),
}
_DURATION = re.compile(
    r"^P?(?:(\d+)[Yy])?(?:(\d+)[Mm])?(?:(\d+)[Ww])?(?:(\d+)[Dd])?(?:T(?:(\d+)[Hh])?(?:(\d+)[Mm])?)?$"
)


class ExecutionError(RuntimeError):
    """The definition cannot be executed (unsupported step type, bad parameter, broken reference)."""


@dataclass
class StepRecord:
    name: str
    type: str
    status: str = "NotStarted"  # Executing, Succeeded, Failed, NotExecuted
    started_at: str = ""
    seconds: float = 0.0
    job_seconds: float = 0.0
    cache_hit: bool = False
    failure_reason: str = ""
    properties: dict = field(default_factory=dict)


@dataclass
class ExecutionResult:
    execution_id: str
    status: str  # Succeeded or Failed
    failure_reason: str
    parameters: dict[str, Any]
    steps: list[StepRecord]
    seconds: float
    record_path: Path
    report_path: Path | None = None

    def step(self, name: str) -> StepRecord:
        return next(record for record in self.steps if record.name == name)

    @property
    def job_seconds(self) -> float:
        return sum(record.job_seconds for record in self.steps)


def parse_duration(text: str) -> timedelta:
    """ISO 8601 durations as SageMaker's ExpireAfter takes them: P30D, PT1H, 30d, T16m."""
    match = _DURATION.match(text.strip())
    if not match or not any(match.groups()):
        raise ExecutionError(f"cannot parse cache expiry {text!r}")
    years, months, weeks, days, hours, minutes = (int(value or 0) for value in match.groups())
    return timedelta(days=365 * years + 30 * months + 7 * weeks + days, hours=hours, minutes=minutes)


def cast_parameters(declared: list[dict], overrides: dict[str, Any]) -> dict[str, Any]:
    """Defaults of the declared parameters, overridden and cast to their declared types."""
    names = {item["Name"] for item in declared}
    unknown = sorted(set(overrides) - names)
    if unknown:
        raise ExecutionError(f"unknown pipeline parameter(s): {', '.join(unknown)}")
    casts = {"String": str, "Integer": int, "Float": float, "Boolean": lambda v: str(v).lower() == "true"}
    values = {}
    for item in declared:
        raw = overrides.get(item["Name"], item.get("DefaultValue"))
        if raw is None:
            raise ExecutionError(f"pipeline parameter {item['Name']} has no default and no value")
        try:
            values[item["Name"]] = casts[item.get("Type", "String")](raw)
        except (TypeError, ValueError):
            raise ExecutionError(
                f"pipeline parameter {item['Name']}={raw!r} is not a {item['Type']}"
            ) from None
        if item.get("EnumValues") and values[item["Name"]] not in item["EnumValues"]:
            raise ExecutionError(
                f"pipeline parameter {item['Name']}={raw!r} is not one of {item['EnumValues']}"
            )
    return values


def step_references(value: Any) -> set[str]:
    """Names of the steps an expression tree refers to."""
    found: set[str] = set()
    if isinstance(value, dict):
        for key, item in value.items():
            if key == "Get" and isinstance(item, str) and item.startswith("Steps."):
                found.add(item.split(".")[1].split("[")[0])
            else:
                found |= step_references(item)
    elif isinstance(value, list):
        for item in value:
            found |= step_references(item)
    return found


def flatten_steps(steps: list[dict], parent: str | None = None) -> dict[str, tuple[dict, set[str]]]:
    """Every step, condition branches included, with the names of the steps it must wait for."""
    graph: dict[str, tuple[dict, set[str]]] = {}
    for step in steps:
        depends = set(step.get("DependsOn", [])) | step_references(step.get("Arguments", {}))
        if parent:
            depends.add(parent)
        graph[step["Name"]] = (step, depends - {step["Name"]})
        if step["Type"] == "Condition":
            branches = step["Arguments"].get("IfSteps", []) + step["Arguments"].get("ElseSteps", [])
            graph.update(flatten_steps(branches, step["Name"]))
    return graph


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
    ):
        self.definition = definition
        self.work_dir = Path(work_dir).resolve()
        self.store = store
        self.registry = registry
        self.echo = echo
        self.max_parallel = max_parallel
        self.pipeline_name = pipeline_name
        self.tracker = tracker or ExecutionTracker()
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
        started = time.perf_counter()
        execution_id = execution_id or f"local-{datetime.now(UTC):%Y%m%d%H%M%S}-{secrets.token_hex(3)}"
        values = cast_parameters(self.definition.get("Parameters", []), parameters or {})
        now = datetime.now(UTC).isoformat()
        context = Context(
            parameters=values,
            execution={
                "PipelineExecutionId": execution_id,
                "PipelineExecutionArn": (
                    f"arn:aws:sagemaker:local:000000000000:pipeline/{self.pipeline_name}/execution/{execution_id}"
                ),
                "PipelineName": self.pipeline_name,
                "StartDateTime": now,
                "CurrentDateTime": now,
            },
            read_property_file=self._read_property_file,
        )
        self._context, self._execution_id = context, execution_id
        records = {name: StepRecord(name, step["Type"]) for name, (step, _) in self.graph.items()}
        self.echo(
            f"execution {execution_id}: {len(records)} steps, parameters {json.dumps(values, sort_keys=True)}"
        )
        self.tracker.start_execution(execution_id, self.pipeline_name, values)
        failure = self._run_graph(records)
        status = "Failed" if failure else "Succeeded"
        for record in records.values():
            if record.status == "NotStarted":
                record.status = "NotExecuted"
        result = ExecutionResult(
            execution_id,
            status,
            failure,
            values,
            list(records.values()),
            time.perf_counter() - started,
            self.work_dir / "executions" / execution_id / "execution.json",
        )
        result.record_path.parent.mkdir(parents=True, exist_ok=True)
        result.report_path = self._write_report(result)
        result.record_path.write_text(
            json.dumps({**asdict(result), "record_path": str(result.record_path)}, indent=2, default=str)
        )
        self.tracker.finish_execution(result, self.store, result.report_path)
        return result

    def _write_report(self, result: ExecutionResult) -> Path | None:
        try:
            return report.write_report(result, self.store, self.tracker.links())
        except Exception as error:  # the record stays the source of truth; a report bug must not hide it
            self.echo(f"the HTML report could not be written: {type(error).__name__}: {error}")
            return None

    def _run_graph(self, records: dict[str, StepRecord]) -> str:
        skipped: set[str] = set()
        finished: set[str] = set()  # updated by this thread only, after a step's future completed
        failure = ""
        running: dict[Future, str] = {}
        with ThreadPoolExecutor(self.max_parallel) as pool:
            while True:
                if not failure:
                    for name, (_, depends) in self.graph.items():
                        record = records[name]
                        if record.status != "NotStarted" or name in skipped:
                            continue
                        if any(records[d].status == "NotExecuted" or d in skipped for d in depends):
                            skipped.add(name)
                            continue
                        ready = all(d in finished and records[d].status == "Succeeded" for d in depends)
                        if ready and len(running) < self.max_parallel:
                            record.status = "Executing"
                            record.started_at = datetime.now(UTC).isoformat()
                            running[pool.submit(self._run_step, name, record)] = name
                if not running:
                    break
                done, _ = wait(running, return_when=FIRST_COMPLETED)
                for future in done:
                    name = running.pop(future)
                    finished.add(name)
                    record = records[name]
                    try:
                        future.result()
                    except Exception as error:  # a step that cannot run ends the execution, like SageMaker
                        record.status, record.failure_reason = "Failed", f"{type(error).__name__}: {error}"
                    self.tracker.finish_step(record, self.store)
                    if record.status == "Failed" and not failure:
                        failure = f"step {name} failed: {record.failure_reason}"
                    elif record.type == "Condition":
                        self._mark_branch(record, records)
        return failure

    def _mark_branch(self, record: StepRecord, records: dict[str, StepRecord]) -> None:
        step = self.graph[record.name][0]
        chosen = "IfSteps" if record.properties["Outcome"] == "True" else "ElseSteps"
        other = "ElseSteps" if chosen == "IfSteps" else "IfSteps"
        for branch_step in step["Arguments"].get(other, []):
            records[branch_step["Name"]].status = "NotExecuted"

    # -- one step -----------------------------------------------------------------------------------------
    def _run_step(self, name: str, record: StepRecord) -> None:
        step = self.graph[name][0]
        started = time.perf_counter()
        self.echo(f"step {name} ({step['Type']}) started")
        self.tracker.start_step(name, step["Type"])
        runner = getattr(self, f"_run_{step['Type'].lower()}", None)
        if runner is None:
            raise ExecutionError(f"step type {step['Type']} is not supported by the local runner")
        # A condition's arguments hold its branches, which refer to steps that have not run yet.
        arguments = {} if step["Type"] == "Condition" else resolve(step.get("Arguments", {}), self._context)
        cache_key = self._cache_key(step, arguments)
        cached = self._cache_lookup(step, cache_key) if cache_key else None
        if cached is not None:
            record.properties, record.cache_hit, record.status = cached, True, "Succeeded"
        else:
            runner(step, arguments, record)
            if record.status == "Executing":
                record.status = "Succeeded"
            if record.status == "Succeeded" and cache_key:
                self._cache_store(step, cache_key, record.properties)
        with self._lock:
            self._context.steps[name] = record.properties
        record.seconds = time.perf_counter() - started
        note = " (cache hit)" if record.cache_hit else ""
        detail = f": {record.failure_reason}" if record.status == "Failed" else ""
        self.echo(f"step {name} {record.status.lower()} in {record.seconds:.1f}s{note}{detail}")

    def _job_name(self, step_name: str, suffix: str = "") -> str:
        return f"{self._execution_id}-{step_name}{suffix}"

    def _finish_job(self, result: jobs.JobResult, record: StepRecord) -> None:
        record.job_seconds += result.seconds
        if not result.ok:
            tail = "\n".join(result.log_text.splitlines()[-10:])
            record.status = "Failed"
            record.failure_reason = result.failure_reason + (f"\nlog tail:\n{tail}" if tail else "")

    def _run_processing(self, step: dict, arguments: dict, record: StepRecord) -> None:
        job_name = self._job_name(step["Name"])
        environment = self.tracker.job_environment(step["Name"], job_name)
        result = jobs.run_processing_job(
            job_name, arguments, self.store, self.work_dir, self.echo, environment
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
        result = jobs.run_training_job(job_name, arguments, self.store, self.work_dir, self.echo, environment)
        self._finish_job(result, record)
        record.properties = {
            "TrainingJobName": job_name,
            "TrainingJobStatus": result.status,
            "ModelArtifacts": {"S3ModelArtifacts": result.outputs.get("model", "")},
        }

    def _run_tuning(self, step: dict, arguments: dict, record: StepRecord) -> None:
        definition = arguments["TrainingJobDefinition"]

        def run_trial(number: int, tuned: dict[str, str]) -> tuple[str, str, str]:
            job_name = self._job_name(step["Name"], f"-{number:03d}")
            request = {
                "AlgorithmSpecification": definition["AlgorithmSpecification"],
                "HyperParameters": {**definition.get("StaticHyperParameters", {}), **tuned},
                "InputDataConfig": definition.get("InputDataConfig", []),
                "OutputDataConfig": definition["OutputDataConfig"],
                "Environment": definition.get("Environment", {}),
            }
            environment = self.tracker.job_environment(step["Name"], job_name)
            result = jobs.run_training_job(
                job_name, request, self.store, self.work_dir, self.echo, environment
            )
            record.job_seconds += result.seconds
            return job_name, result.status, result.log_text if result.ok else result.failure_reason

        try:
            trials = tune(arguments, run_trial, echo=self.echo)
        except TuningError as error:
            record.status, record.failure_reason = "Failed", str(error)
            return
        metric = arguments["HyperParameterTuningJobConfig"]["HyperParameterTuningJobObjective"]["MetricName"]
        summaries = [
            {
                "TrainingJobName": trial.job_name,
                "TrainingJobStatus": trial.status,
                "TunedHyperParameters": trial.hyperparameters,
                "FinalHyperParameterTuningJobObjectiveMetric": (
                    {"MetricName": metric, "Value": trial.objective} if trial.objective is not None else None
                ),
                "FailureReason": trial.failure_reason,
            }
            for trial in trials
        ]
        record.properties = {
            "HyperParameterTuningJobName": self._job_name(step["Name"]),
            "BestTrainingJob": summaries[0],
            "TrainingJobSummaries": summaries,
        }
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
        self.tracker.model_registered(package, self.store)
        self.echo(f"registered {package.arn} ({package.approval_status})")

    def _run_fail(self, step: dict, arguments: dict, record: StepRecord) -> None:
        record.status = "Failed"
        record.failure_reason = str(arguments.get("ErrorMessage", ""))

    # -- property files and caching -----------------------------------------------------------------------
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

    def _cache_key(self, step: dict, arguments: dict) -> str | None:
        config = step.get("CacheConfig", {})
        if not config.get("Enabled") or step["Type"] not in CACHE_KEYS:
            return None
        keyed = {name: arguments.get(name) for name in CACHE_KEYS[step["Type"]]}
        return hashlib.sha256(json.dumps([step["Type"], keyed], sort_keys=True).encode()).hexdigest()

    def _cache_path(self, step: dict) -> Path:
        return self.work_dir / "cache" / f"{step['Name']}.json"

    def _cache_lookup(self, step: dict, key: str) -> dict | None:
        path = self._cache_path(step)
        if not path.is_file():
            return None
        expiry = parse_duration(step["CacheConfig"].get("ExpireAfter", "P30D"))
        for entry in json.loads(path.read_text()):
            age = datetime.now(UTC) - datetime.fromisoformat(entry["created_at"])
            if entry["key"] == key and age <= expiry:
                self.echo(f"step {step['Name']}: cache hit, reusing execution {entry['execution_id']}")
                return entry["properties"]
        return None

    def _cache_store(self, step: dict, key: str, properties: dict) -> None:
        path = self._cache_path(step)
        path.parent.mkdir(parents=True, exist_ok=True)
        with self._lock:
            entries = json.loads(path.read_text()) if path.is_file() else []
            entries.append(
                {
                    "key": key,
                    "properties": properties,
                    "created_at": datetime.now(UTC).isoformat(),
                    "execution_id": self._execution_id,
                }
            )
            path.write_text(json.dumps(entries[-20:], indent=2))
