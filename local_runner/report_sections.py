"""The sections of the execution report, each a function of `ReportData` returning escaped HTML.

Steps (one row per step, the SDK's doubled step-collection names shown once), tuning trials (objective
bars, the best trial starred), the evaluated model (protocol, training units, interval coverage), the
quality gate (each rule, measured against its limit), plots, error by RUL bucket, the data manifest,
drift results and the parameters. A part the execution did not produce is shown as missing, never
invented. `local_runner.report` gathers the data and assembles the page.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from local_runner.readers import MANIFEST_OUTPUT
from local_runner.report_html import badge, escape, missing, number, table
from local_runner.results import ExecutionResult

# The plots evaluate.py writes (rul.plots.write_evaluation_plots), with the captions the report gives them.
PLOTS = {
    "predicted_vs_true": "Predicted vs true RUL at each test unit's last cycle",
    "error_histogram": "Prediction error (predicted - true)",
    "error_by_bucket": "Error by true-RUL bucket",
    "unit_trajectory": "One test unit: predicted vs true RUL over its observed life",
}


@dataclass
class ReportData:
    """What the report shows; every part but the execution itself may be missing."""

    result: ExecutionResult
    outputs: dict[str, str] = field(default_factory=dict)
    evaluation: dict | None = None
    plots: dict[str, bytes] = field(default_factory=dict)
    manifest: dict | None = None
    drift: dict[str, Any] = field(default_factory=dict)
    links: dict[str, str] = field(default_factory=dict)


def cards_html(data: ReportData) -> str:
    """The headline cards: test metrics with their bootstrap spread, the gate, the registered version."""
    cards = []
    evaluation = data.evaluation
    if evaluation:
        metrics, capped = evaluation["regression_metrics"], evaluation["capped_truth_metrics"]
        for label, value, spread in (
            ("Test RMSE", metrics["rmse"]["value"], metrics["rmse"].get("standard_deviation")),
            ("Test MAE", metrics["mae"]["value"], metrics["mae"].get("standard_deviation")),
            (
                "PHM08 score",
                metrics["phm08_score"]["value"],
                metrics["phm08_score"].get("standard_deviation"),
            ),
            ("R²", metrics["r2"]["value"], None),
            ("RMSE vs capped truth", capped["rmse"]["value"], None),
            (f"Test units ({_protocol_name(evaluation)})", evaluation["n_units"], None),
        ):
            note = f'<div class="note">± {number(spread)} (bootstrap sd)</div>' if spread is not None else ""
            cards.append(
                f'<div class="card"><div class="label">{escape(label)}</div>'
                f'<div class="value" data-metric="{escape(label)}">{number(value)}</div>{note}</div>'
            )
        gate = evaluation["gate"]
        cards.append(
            f'<div class="card"><div class="label">Quality gate</div><div class="value">'
            f"{badge('passed' if gate['passed'] else 'failed', gate['passed'])}</div></div>"
        )
    registered = next((s for s in data.result.steps if s.type == "RegisterModel" and s.properties), None)
    if registered:
        cards.append(
            f'<div class="card"><div class="label">Registered version</div><div class="value">'
            f"{escape(registered.properties['ModelPackageVersion'])}</div></div>"
        )
    if data.manifest:
        cards.append(
            f'<div class="card"><div class="label">Data version</div><div class="value mono">'
            f"{escape(data.manifest['version'])}</div></div>"
        )
    return f'<div class="cards">{"".join(cards)}</div>' if cards else ""


def _protocol_name(evaluation: Mapping[str, Any]) -> str:
    """How the report names the protocol that produced the evaluation's numbers."""
    name = evaluation.get("protocol", {}).get("name")
    return {"official": "official test set", "internal_holdout": "held-out units"}.get(
        name, "protocol unknown"
    )


def evaluated_model_html(data: ReportData) -> str:
    """Which protocol scored the model, what it was trained on and how its intervals covered the truth."""
    evaluation = data.evaluation
    if evaluation is None:
        return missing("No evaluation report.")
    protocol, model = evaluation.get("protocol", {}), evaluation.get("model", {})
    padded = protocol.get("padded_units", [])
    units = ", ".join(f"{n} {name}" for name, n in model.get("training_units", {}).items())
    rows = [
        ["protocol", escape(f"{_protocol_name(evaluation)}: {protocol.get('description', '')}")],
        ["files", escape(", ".join(protocol.get("files", [])) or "the pipeline's own held-out units")],
        ["units scored", escape(evaluation["n_units"])],
        ["padded (shorter than the window)", escape(", ".join(map(str, padded)) if padded else "none")],
        ["final refit on all training units", escape("yes" if model.get("final_refit") else "no")],
        [
            "training units",
            escape(units or "unknown"),
        ],
    ]
    intervals = evaluation.get("prediction_intervals")
    if intervals:
        rows.append(
            [
                "prediction intervals",
                escape(
                    f"coverage {intervals['coverage']:.0%} (nominal {intervals['nominal_coverage']:.0%}), "
                    f"{intervals['coverage_capped_truth']:.0%} of the capped truth, "
                    f"mean width {intervals['mean_width']:.1f} cycles on {intervals['n_units']} units"
                ),
            ]
        )
    return table(["", ""], rows)


def steps_html(data: ReportData) -> str:
    """One row per step: name, type, status, start, seconds, job seconds, cache hit, failure."""
    rows = []
    for step in data.result.steps:
        good = {"Succeeded": True, "Failed": False}.get(step.status)
        rows.append(
            [
                escape(step.display_name),
                escape(step.type),
                badge(step.status, good),
                escape(step.started_at[11:19] if step.started_at else ""),
                number(step.seconds, 1),
                number(step.job_seconds, 1),
                "cache hit" if step.cache_hit else "",
                escape(step.failure_reason.splitlines()[0] if step.failure_reason else ""),
            ]
        )
    headers = ["step", "type", "status", "started (UTC)", "seconds", "job seconds", "cache", "failure"]
    return table(headers, rows)


def trials_html(data: ReportData) -> str:
    """The tuning trials with a bar per objective, the best trial starred; missing when none ran."""
    tuning = next((s for s in data.result.steps if s.type == "Tuning" and s.properties), None)
    if tuning is None:
        return missing("No tuning step ran in this execution.")
    summaries = tuning.properties["TrainingJobSummaries"]
    best = tuning.properties["BestTrainingJob"]["TrainingJobName"]
    values = [
        s["FinalHyperParameterTuningJobObjectiveMetric"]["Value"]
        for s in summaries
        if s["FinalHyperParameterTuningJobObjectiveMetric"]
    ]
    worst = max(values, default=1.0) or 1.0
    metric = next(
        (
            s["FinalHyperParameterTuningJobObjectiveMetric"]["MetricName"]
            for s in summaries
            if s["FinalHyperParameterTuningJobObjectiveMetric"]
        ),
        "objective",
    )
    names = sorted({name for s in summaries for name in s["TunedHyperParameters"]})
    rows = []
    for summary in sorted(summaries, key=lambda s: s["TrainingJobName"]):
        objective = summary["FinalHyperParameterTuningJobObjectiveMetric"]
        is_best = summary["TrainingJobName"] == best
        if objective:
            width = 100 * objective["Value"] / worst
            shown = (
                f'<div class="bar"><span style="width:{width:.0f}%"></span></div>'
                f"{number(objective['Value'], 3)}"
            )
        else:
            shown = escape(summary.get("FailureReason", "")[:120] or "no objective")
        rows.append(
            [
                '<tr class="best">' if is_best else "<tr>",
                escape(summary["TrainingJobName"].rsplit("-", 1)[-1])
                + (' <span class="star">★ best</span>' if is_best else ""),
                badge(summary["TrainingJobStatus"], summary["TrainingJobStatus"] == "Completed"),
                shown,
                *(number(_maybe_float(summary["TunedHyperParameters"].get(name, "")), 4) for name in names),
            ]
        )
    return table(["trial", "status", metric, *names], rows, "trials")


def _maybe_float(text: str) -> Any:
    try:
        number = float(text)
    except ValueError:
        return text
    return int(number) if number.is_integer() and "." not in text else number


def gate_html(data: ReportData) -> str:
    """The quality gate: each rule with its measured value and limit, the verdict and the champion."""
    evaluation = data.evaluation
    condition = next((s for s in data.result.steps if s.type == "Condition" and s.properties), None)
    if evaluation is None:
        return missing("No evaluation report: the gate was not reached.")
    gate = evaluation["gate"]
    comparison = evaluation.get("champion_comparison", {})
    champion = evaluation.get("champion")
    allowed = comparison.get("allowed_rmse")
    basis = f"(true RUL capped at {number(gate['rul_cap'])}, {_protocol_name(evaluation)})"
    rows = [
        [escape(f"RMSE {basis} ≤ threshold"), number(gate["rmse"]), number(gate["rmse_threshold"])],
        [
            escape(f"PHM08 score per 100 units {basis} ≤ threshold"),
            number(gate["phm08_score_per_100_units"]),
            number(gate["score_threshold"]),
        ],
        [
            escape("RMSE ≤ champion RMSE + tolerance"),
            number(gate["rmse"]),
            number(allowed) if champion else "no champion: passes",
        ],
    ]
    verdict = badge("passed" if gate["passed"] else "failed", gate["passed"])
    outcome = (
        f" The pipeline's condition step decided <b>{escape(condition.properties['Outcome'])}</b>."
        if condition
        else ""
    )
    text = f"<p>{verdict} {escape(gate['summary'])}.{outcome}</p>"
    if champion:
        text += (
            f"<p>Champion: version {escape(champion.get('version', 'unknown'))}, RMSE "
            f"{number(champion['regression_metrics']['rmse']['value'])} on the same units.</p>"
        )
    return text + table(["rule", "measured", "limit"], rows)


def plots_html(data: ReportData, names: Iterable[str]) -> str:
    """The named plots, embedded as base64 PNG; a note when none was written."""
    figures = []
    for name in names:
        if name in data.plots:
            encoded = base64.b64encode(data.plots[name]).decode("ascii")
            figures.append(
                f'<figure><img alt="{escape(PLOTS[name])}" src="data:image/png;base64,{encoded}">'
                f"<figcaption>{escape(PLOTS[name])}</figcaption></figure>"
            )
    return f'<div class="plots">{"".join(figures)}</div>' if figures else missing("No plots were written.")


def buckets_html(data: ReportData) -> str:
    """Error by true-RUL bucket: the table and its plot."""
    if not data.evaluation:
        return missing("No evaluation report.")
    rows = [
        [
            escape(b["bucket"]),
            number(b["count"]),
            number(b.get("rmse")),
            number(b.get("mae")),
            number(b.get("mean_error")),
        ]
        for b in data.evaluation["error_by_rul_bucket"]
    ]
    headers = ["true RUL", "units", "RMSE", "MAE", "mean error"]
    return table(headers, rows) + plots_html(data, ["error_by_bucket"])


def manifest_html(data: ReportData) -> str:
    """The dataset manifest: data version, files with their hashes, splits, settings and features."""
    manifest = data.manifest
    if not manifest:
        return missing("This execution produced no dataset manifest.")
    files = table(
        ["file", "bytes", "sha256"],
        [
            [escape(f["name"]), number(f["bytes"]), f'<span class="mono">{escape(f["sha256"])}</span>']
            for f in manifest["files"]
        ],
    )
    splits = table(
        ["split", "units", "rows"],
        [[escape(name), number(s["units"]), number(s["rows"])] for name, s in manifest["splits"].items()],
    )
    settings = ", ".join(f"{escape(k)}={escape(json.dumps(v))}" for k, v in manifest["settings"].items())
    uri = data.outputs.get(MANIFEST_OUTPUT, "")
    return (
        f'<p>Data version <b class="mono">{escape(manifest["version"])}</b> '
        f"of subset {escape(manifest['subset'])}: "
        f"{number(manifest['rows'])} rows, {number(manifest['units'])} units, from {escape(uri)}.</p>"
        f"{files}{splits}<p>Split settings: {settings}</p>"
        f'<p>Features ({len(manifest["features"])}): <span class="mono">'
        f"{escape(', '.join(manifest['features']))}</span></p>"
    )


def drift_html(data: ReportData) -> str:
    """Each drift result: its summary and, for per-feature results, a table with drifted rows marked."""
    parts = []
    for name, content in data.drift.items():
        parts.append(f"<h3>{escape(name)}</h3>")
        features = content.get("features") if isinstance(content, dict) else None
        if isinstance(features, list) and features and isinstance(features[0], dict):
            columns = [
                c
                for c in ("name", "ks_statistic", "adjusted_p_value", "psi", "severity", "drifted")
                if c in features[0]
            ]
            rows = [
                [
                    '<tr class="drifted">' if f.get("drifted") else "<tr>",
                    *(number(f.get(c), 3) for c in columns),
                ]
                for f in features
            ]
            summary = {k: v for k, v in content.items() if k != "features"}
            parts.append(f"<pre>{escape(json.dumps(summary, indent=2, default=str)[:4000])}</pre>")
            parts.append(table(columns, rows))
        else:
            parts.append(f"<pre>{escape(json.dumps(content, indent=2, default=str)[:8000])}</pre>")
    return "".join(parts)


def parameters_html(data: ReportData) -> str:
    """The execution's parameters and the tracking links."""
    rows = [[escape(name), escape(value)] for name, value in sorted(data.result.parameters.items())]
    links = "".join(
        f'<li>{escape(label)}: <span class="mono">{escape(value)}</span></li>'
        for label, value in data.links.items()
    )
    return table(["parameter", "value"], rows) + (f"<ul>{links}</ul>" if links else "")
