"""The per-execution HTML report: one self-contained file that opens offline in any browser.

`collect` gathers what an execution left behind (through `local_runner.readers`): its step records, the
tuning trials, the evaluation report and plots of the `evaluation` output, the dataset manifest of the
`manifest` output and drift results of any output whose name contains "drift". `render` turns that into
HTML (sections in `local_runner.report_sections`) with inline CSS, the plots embedded as base64 PNG and a
Content-Security-Policy that forbids every network fetch, so the file shows the same on a laptop, in CI
and as an MLflow artifact. `write_report` does both and writes `<work>/executions/<id>/report.html`
atomically. The caller of an execution writes its report (`local_runner.report_publish`); the executor
does not.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

from local_runner.atomic import write_text_atomic
from local_runner.object_store import ObjectStore
from local_runner.readers import (
    EVALUATION_OUTPUT,
    read_drift,
    read_evaluation,
    read_execution_manifest,
    read_plots,
    step_outputs,
)
from local_runner.report_html import STYLE, badge, escape, missing, number, section
from local_runner.report_sections import (
    PLOTS,
    ReportData,
    buckets_html,
    cards_html,
    drift_html,
    evaluated_model_html,
    gate_html,
    manifest_html,
    parameters_html,
    plots_html,
    steps_html,
    trials_html,
)
from local_runner.report_variants import ab_section
from local_runner.results import ExecutionResult

__all__ = ["STYLE", "ReportData", "collect", "render", "report_path", "write_report"]
REPORT_FILE = "report.html"
_CSP = "default-src 'none'; img-src data:; style-src 'unsafe-inline'"


def collect(
    result: ExecutionResult, store: ObjectStore, links: Mapping[str, str] | None = None
) -> ReportData:
    """Everything the report shows, read from the execution's outputs in the object store."""
    data = ReportData(result, step_outputs(result), links=dict(links or {}))
    data.evaluation = read_evaluation(result, store)
    if EVALUATION_OUTPUT in data.outputs:
        data.plots = read_plots(result, store, list(PLOTS))
    data.manifest = read_execution_manifest(result, store)
    data.drift = read_drift(result, store)
    return data


def _sections(data: ReportData) -> list[str]:
    evaluation_plots = plots_html(data, ["predicted_vs_true", "error_histogram"])
    sections = [
        section("Steps", steps_html(data), "steps"),
        section("Tuning trials", trials_html(data), "trials"),
        section("Evaluated model", evaluated_model_html(data), "model"),
        section("Quality gate", gate_html(data), "gate"),
        section("Evaluation plots", evaluation_plots, "plots")
        if data.evaluation
        else section("Evaluation", missing("No evaluation report."), "plots"),
        section("Error by RUL bucket", buckets_html(data), "buckets"),
        section("Unit trajectory", plots_html(data, ["unit_trajectory"]), "trajectory"),
        section("Data manifest", manifest_html(data), "manifest"),
    ]
    if data.drift:
        sections.append(section("Drift", drift_html(data), "drift"))
    sections.append(section("Parameters", parameters_html(data), "parameters"))
    sections.append(ab_section(Path(data.result.record_path).parent.parent.parent))  # <work>/executions/<id>
    return sections


def render(data: ReportData) -> str:
    """The whole HTML document (no script, no external resource)."""
    result = data.result
    status = badge(result.status, result.status == "Succeeded")
    failure = f'<p class="failure">{escape(result.failure_reason)}</p>' if result.failure_reason else ""
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8">
<meta http-equiv="Content-Security-Policy" content="{_CSP}">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>Execution {escape(result.execution_id)}: {escape(result.status)}</title>
<style>{STYLE}</style></head>
<body><header><h1>Turbofan RUL pipeline execution</h1>
<p><span class="mono">{escape(result.execution_id)}</span> {status} in {number(result.seconds, 1)} s
(jobs {number(result.job_seconds, 1)} s)</p>{failure}</header>
<main>{cards_html(data)}{"".join(_sections(data))}</main>
<footer>Written by the local runner from {escape(result.record_path)}.</footer>
</body></html>
"""


def report_path(result: ExecutionResult) -> Path:
    """Where the execution's report goes: `report.html` beside its execution.json."""
    return Path(result.record_path).parent / REPORT_FILE


def write_report(result: ExecutionResult, store: ObjectStore, links: Mapping[str, str] | None = None) -> Path:
    """Collect and render the execution's report next to its execution.json; returns the file."""
    path = report_path(result)
    path.parent.mkdir(parents=True, exist_ok=True)
    write_text_atomic(path, render(collect(result, store, links)))
    return path
