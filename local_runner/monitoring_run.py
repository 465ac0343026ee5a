"""The monitoring pipeline, run locally: the same definition CDK deploys, executed by the runner.

`run_monitoring(options)` lays out what exists on AWS in the local object store (the code bundle, the
champion prefix with the in-service model's baselines, the endpoint's captures under the capture prefix,
the failure labels under the ground-truth prefix, which always holds its placeholder), renders the
monitoring definition with `render_monitoring_definition` and executes it with `PipelineExecutor`. Given
folders replace what the store holds (`--captures` is the local endpoint's `--capture-dir`, whose first
level is the endpoint name); without `--baseline`, the baselines are those `registry approve` copied next
to the champion. `monitoring_summary` reads the reports back for the terminal.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from local_runner.endpoint import DEFAULT_ENDPOINT_NAME
from local_runner.errors import RunnerError
from local_runner.execution import ExecutionResult, PipelineExecutor
from local_runner.main_job import prepare_workspace
from local_runner.object_store import ObjectStore
from local_runner.report_publish import publish_execution
from pipeline_steps import monitoring_names as mnames
from pipeline_steps.monitoring_config import MonitoringPipelineConfig, local_monitoring_config
from pipeline_steps.monitoring_pipeline import render_monitoring_definition


class MonitoringRunError(RunnerError, RuntimeError):
    """The monitoring pipeline cannot start (no baselines, missing folder)."""


@dataclass(frozen=True)
class MonitoringRunOptions:
    """What a local monitoring run uses: work folder, input folders, endpoint, parameters."""

    work_dir: Path = Path(".work")
    captures: Path | None = None
    baseline: Path | None = None
    ground_truth: Path | None = None
    endpoint: str = DEFAULT_ENDPOINT_NAME
    parameters: dict[str, object] = field(default_factory=dict)


def _replace(store: ObjectStore, folder: Path | None, uri: str, name: str) -> None:
    if folder is None:
        return
    if not Path(folder).exists():
        raise MonitoringRunError(f"--{name} {folder} does not exist")
    store.delete(uri)
    store.upload(Path(folder), uri)


def stage_inputs(store: ObjectStore, config: MonitoringPipelineConfig, options: MonitoringRunOptions) -> None:
    """Put the given folders at the definition's default URIs; check that the baselines exist."""
    _replace(store, options.captures, config.capture_uri, "captures")
    _replace(store, options.baseline, config.baseline_uri, "baseline")
    _replace(store, options.ground_truth, config.ground_truth_uri, "ground-truth")
    store.put_text(
        config.ground_truth_uri + mnames.GROUND_TRUTH_PLACEHOLDER, mnames.GROUND_TRUTH_PLACEHOLDER_TEXT
    )
    if not store.objects(config.baseline_uri):
        raise MonitoringRunError(
            f"no baselines under {config.baseline_uri}: approve a model version (registry approve N) "
            "or pass --baseline"
        )


def run_monitoring(
    options: MonitoringRunOptions, echo: Callable[[str], None] = print
) -> tuple[MonitoringPipelineConfig, ObjectStore, ExecutionResult]:
    """Stage the inputs, render the monitoring definition and execute it locally; the result."""
    workspace = prepare_workspace(Path(options.work_dir), render=False)
    config = local_monitoring_config(workspace.config, endpoint_name=options.endpoint)
    stage_inputs(workspace.store, config, options)
    definition = render_monitoring_definition(config)
    path = Path(options.work_dir) / "monitoring-definition.json"
    path.write_text(definition)
    echo(f"monitoring definition rendered to {path}; running it locally")
    executor = PipelineExecutor(
        json.loads(definition),
        Path(options.work_dir),
        workspace.store,
        workspace.registry,
        echo,
        pipeline_name=config.pipeline_name,
    )
    result = executor.start(dict(options.parameters))
    return config, workspace.store, publish_execution(result, workspace.store, echo=echo)


def report_of(store: ObjectStore, result: ExecutionResult, step: str, file_name: str) -> dict | None:
    """A report a step wrote into its `report` output, or None when the step wrote none."""
    outputs = result.step(step).properties.get("ProcessingOutputConfig", {}).get("Outputs", {})
    if mnames.REPORT_OUTPUT not in outputs:
        return None
    uri = outputs[mnames.REPORT_OUTPUT]["S3Output"]["S3Uri"].rstrip("/") + "/" + file_name
    return json.loads(store.read_text(uri)) if store.objects(uri) else None


def monitoring_summary(store: ObjectStore, result: ExecutionResult) -> list[str]:
    """Terminal lines of a monitoring execution: its steps, drift and quality verdicts, status."""
    lines = [f"{'step':<20} {'status':<12} {'seconds':>8}"]
    lines += [f"{s.name:<20} {s.status:<12} {s.seconds:>8.1f}" for s in result.steps]
    drift = report_of(store, result, mnames.DRIFT_STEP, mnames.DRIFT_REPORT_FILE)
    if drift is not None:
        verdict = "DETECTED" if drift["drift_detected"] else "not detected"
        counts = drift["counts"]
        lines.append(
            f"drift {verdict}: {counts['drifted_features']} of {counts['features']} features, "
            f"max PSI {drift['max_psi']:.3f}, {counts['requests']} requests in the window"
        )
    quality = report_of(store, result, mnames.QUALITY_STEP, mnames.QUALITY_REPORT_FILE)
    if quality is not None:
        rmse = quality["regression_metrics"]["rmse"]["value"]
        matched = quality["counts"]["matched_predictions"]
        lines.append(
            f"model quality: {matched} labelled predictions"
            + (f", RMSE {rmse:.2f}" if rmse is not None else "")
        )
    lines.append(
        f"execution {result.execution_id}: {result.status}"
        + (f" - {result.failure_reason}" if result.failure_reason else "")
    )
    return lines
