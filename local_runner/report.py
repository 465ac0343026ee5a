"""The per-execution HTML report: one self-contained file that opens offline in any browser.

`collect` gathers what an execution left behind: its step records (status, durations, cache hits), the
tuning trials (objective per trial, the best one first), the evaluation report and plots of the `evaluation`
output (which protocol scored the model, the official test set or held-out units, the model's training units
and its prediction intervals' coverage), the dataset manifest of the `manifest` output and drift results
(JSON files of any output whose name contains "drift") when a step produced them. `render` turns that into
HTML with inline CSS, the plots embedded as base64 PNG and a Content-Security-Policy that forbids every
network fetch, so the file shows the same on a laptop, in CI and as an MLflow artifact. `write_report` does
both and writes `<work>/executions/<id>/report.html`. A part an execution did not produce (a failed run has
no evaluation) is shown as missing, never invented.
"""

from __future__ import annotations

import base64
import html
import json
import sys
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from local_runner.object_store import ObjectStore
from local_runner.report_variants import ab_section

if TYPE_CHECKING:
    from local_runner.execution import ExecutionResult

CONTAINERS_DIR = Path(__file__).resolve().parent.parent / "containers"
EVALUATION_OUTPUT = "evaluation"
MANIFEST_OUTPUT = "manifest"
REPORT_FILE = "report.html"
# The plots evaluate.py writes (rul.plots.write_evaluation_plots), with the captions the report gives them.
PLOTS = {
    "predicted_vs_true": "Predicted vs true RUL at each test unit's last cycle",
    "error_histogram": "Prediction error (predicted - true)",
    "error_by_bucket": "Error by true-RUL bucket",
    "unit_trajectory": "One test unit: predicted vs true RUL over its observed life",
}
_CSP = "default-src 'none'; img-src data:; style-src 'unsafe-inline'"


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


def step_outputs(result: ExecutionResult) -> dict[str, str]:
    """Processing output name -> S3 URI, over every step that ran (or was taken from the cache)."""
    found: dict[str, str] = {}
    for record in result.steps:
        outputs = record.properties.get("ProcessingOutputConfig", {}).get("Outputs", {})
        for name, output in outputs.items():
            found.setdefault(name, output["S3Output"]["S3Uri"].rstrip("/"))
    return found


def read_evaluation(result: ExecutionResult, store: ObjectStore) -> dict | None:
    """evaluation.json of the execution's `evaluation` output, or None when there is none."""
    uri = step_outputs(result).get(EVALUATION_OUTPUT)
    if uri is None or not store.path_for(f"{uri}/evaluation.json").is_file():
        return None
    return json.loads(store.read_text(f"{uri}/evaluation.json"))


def read_manifest(store: ObjectStore, uri: str) -> dict | None:
    """The merged dataset manifest under `uri` (rul.lineage does the merging), or None when empty."""
    folder = store.path_for(uri.rstrip("/"))
    if not folder.is_dir() or not any(folder.glob("manifest-*.json")):
        return None
    # The runner runs the container scripts but does not import them; the manifest code is theirs.
    if str(CONTAINERS_DIR) not in sys.path:
        sys.path.append(str(CONTAINERS_DIR))
    from rul.lineage import read_manifest as read_manifest_folder

    return read_manifest_folder(folder)


def collect(
    result: ExecutionResult, store: ObjectStore, links: Mapping[str, str] | None = None
) -> ReportData:
    data = ReportData(result, step_outputs(result), links=dict(links or {}))
    data.evaluation = read_evaluation(result, store)
    if EVALUATION_OUTPUT in data.outputs:
        for name in PLOTS:
            path = store.path_for(f"{data.outputs[EVALUATION_OUTPUT]}/plots/{name}.png")
            if path.is_file():
                data.plots[name] = path.read_bytes()
    if MANIFEST_OUTPUT in data.outputs:
        data.manifest = read_manifest(store, data.outputs[MANIFEST_OUTPUT])
    for name, uri in data.outputs.items():
        if "drift" in name.lower():
            for relative, path in store.objects(uri):
                if relative.endswith(".json"):
                    data.drift[f"{name}/{relative}"] = json.loads(path.read_text())
    return data


# -- rendering ----------------------------------------------------------------------------------------------
def _e(value: Any) -> str:
    return html.escape(str(value), quote=True)


def _number(value: Any, digits: int = 2) -> str:
    if value is None:
        return "—"
    if isinstance(value, bool) or not isinstance(value, int | float):
        return _e(value)
    return f"{value:,.{digits}f}" if isinstance(value, float) else f"{value:,}"


def _table(headers: Iterable[str], rows: Iterable[Iterable[str]], css: str = "") -> str:
    """Rows of already-escaped cells; a row may start with a `<tr ...>` marker as its first cell."""
    head = "".join(f"<th>{_e(h)}</th>" for h in headers)
    body = []
    for row in rows:
        cells = list(row)
        opener = cells.pop(0) if cells and cells[0].startswith("<tr") else "<tr>"
        body.append(opener + "".join(f"<td>{cell}</td>" for cell in cells) + "</tr>")
    return f'<table class="{css}"><thead><tr>{head}</tr></thead><tbody>{"".join(body)}</tbody></table>'


def _section(title: str, body: str, anchor: str) -> str:
    return f'<section id="{anchor}"><h2>{_e(title)}</h2>{body}</section>'


def _missing(what: str) -> str:
    return f'<p class="missing">{_e(what)}</p>'


def _badge(text: str, good: bool | None) -> str:
    kind = "neutral" if good is None else ("good" if good else "bad")
    return f'<span class="badge {kind}">{_e(text)}</span>'


def _cards(data: ReportData) -> str:
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
            note = f'<div class="note">± {_number(spread)} (bootstrap sd)</div>' if spread is not None else ""
            cards.append(
                f'<div class="card"><div class="label">{_e(label)}</div>'
                f'<div class="value" data-metric="{_e(label)}">{_number(value)}</div>{note}</div>'
            )
        gate = evaluation["gate"]
        cards.append(
            f'<div class="card"><div class="label">Quality gate</div><div class="value">'
            f"{_badge('passed' if gate['passed'] else 'failed', gate['passed'])}</div></div>"
        )
    registered = next((s for s in data.result.steps if s.type == "RegisterModel" and s.properties), None)
    if registered:
        cards.append(
            f'<div class="card"><div class="label">Registered version</div><div class="value">'
            f"{_e(registered.properties['ModelPackageVersion'])}</div></div>"
        )
    if data.manifest:
        cards.append(
            f'<div class="card"><div class="label">Data version</div><div class="value mono">'
            f"{_e(data.manifest['version'])}</div></div>"
        )
    return f'<div class="cards">{"".join(cards)}</div>' if cards else ""


def _protocol_name(evaluation: Mapping[str, Any]) -> str:
    """How the report names the protocol that produced the evaluation's numbers."""
    name = evaluation.get("protocol", {}).get("name")
    return {"official": "official test set", "internal_holdout": "held-out units"}.get(
        name, "protocol unknown"
    )


def _evaluated_model(data: ReportData) -> str:
    """Which protocol scored the model, what it was trained on and how its intervals covered the truth."""
    evaluation = data.evaluation
    if evaluation is None:
        return _missing("No evaluation report.")
    protocol, model = evaluation.get("protocol", {}), evaluation.get("model", {})
    padded = protocol.get("padded_units", [])
    rows = [
        ["protocol", _e(f"{_protocol_name(evaluation)}: {protocol.get('description', '')}")],
        ["files", _e(", ".join(protocol.get("files", [])) or "the pipeline's own held-out units")],
        ["units scored", _e(evaluation["n_units"])],
        ["padded (shorter than the window)", _e(", ".join(map(str, padded)) if padded else "none")],
        ["final refit on all training units", _e("yes" if model.get("final_refit") else "no")],
        [
            "training units",
            _e(", ".join(f"{n} {name}" for name, n in model.get("training_units", {}).items()) or "unknown"),
        ],
    ]
    intervals = evaluation.get("prediction_intervals")
    if intervals:
        rows.append(
            [
                "prediction intervals",
                _e(
                    f"coverage {intervals['coverage']:.0%} (nominal {intervals['nominal_coverage']:.0%}), "
                    f"{intervals['coverage_capped_truth']:.0%} of the capped truth, "
                    f"mean width {intervals['mean_width']:.1f} cycles on {intervals['n_units']} units"
                ),
            ]
        )
    return _table(["", ""], rows)


def _steps(data: ReportData) -> str:
    rows = []
    for step in data.result.steps:
        good = {"Succeeded": True, "Failed": False}.get(step.status)
        rows.append(
            [
                _e(step.name),
                _e(step.type),
                _badge(step.status, good),
                _e(step.started_at[11:19] if step.started_at else ""),
                _number(step.seconds, 1),
                _number(step.job_seconds, 1),
                "cache hit" if step.cache_hit else "",
                _e(step.failure_reason.splitlines()[0] if step.failure_reason else ""),
            ]
        )
    headers = ["step", "type", "status", "started (UTC)", "seconds", "job seconds", "cache", "failure"]
    return _table(headers, rows)


def _trials(data: ReportData) -> str:
    tuning = next((s for s in data.result.steps if s.type == "Tuning" and s.properties), None)
    if tuning is None:
        return _missing("No tuning step ran in this execution.")
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
                f"{_number(objective['Value'], 3)}"
            )
        else:
            shown = _e(summary.get("FailureReason", "")[:120] or "no objective")
        rows.append(
            [
                '<tr class="best">' if is_best else "<tr>",
                _e(summary["TrainingJobName"].rsplit("-", 1)[-1])
                + (' <span class="star">★ best</span>' if is_best else ""),
                _badge(summary["TrainingJobStatus"], summary["TrainingJobStatus"] == "Completed"),
                shown,
                *(_number(_maybe_float(summary["TunedHyperParameters"].get(name, "")), 4) for name in names),
            ]
        )
    return _table(["trial", "status", metric, *names], rows, "trials")


def _maybe_float(text: str) -> Any:
    try:
        number = float(text)
    except ValueError:
        return text
    return int(number) if number.is_integer() and "." not in text else number


def _gate(data: ReportData) -> str:
    evaluation = data.evaluation
    condition = next((s for s in data.result.steps if s.type == "Condition" and s.properties), None)
    if evaluation is None:
        return _missing("No evaluation report: the gate was not reached.")
    gate = evaluation["gate"]
    comparison = evaluation.get("champion_comparison", {})
    champion = evaluation.get("champion")
    allowed = comparison.get("allowed_rmse")
    basis = f"(true RUL capped at {_number(gate['rul_cap'])}, {_protocol_name(evaluation)})"
    rows = [
        [_e(f"RMSE {basis} ≤ threshold"), _number(gate["rmse"]), _number(gate["rmse_threshold"])],
        [
            _e(f"PHM08 score per 100 units {basis} ≤ threshold"),
            _number(gate["phm08_score_per_100_units"]),
            _number(gate["score_threshold"]),
        ],
        [
            _e("RMSE ≤ champion RMSE + tolerance"),
            _number(gate["rmse"]),
            _number(allowed) if champion else "no champion: passes",
        ],
    ]
    verdict = _badge("passed" if gate["passed"] else "failed", gate["passed"])
    outcome = (
        f" The pipeline's condition step decided <b>{_e(condition.properties['Outcome'])}</b>."
        if condition
        else ""
    )
    text = f"<p>{verdict} {_e(gate['summary'])}.{outcome}</p>"
    if champion:
        text += (
            f"<p>Champion: version {_e(champion.get('version', 'unknown'))}, RMSE "
            f"{_number(champion['regression_metrics']['rmse']['value'])} on the same units.</p>"
        )
    return text + _table(["rule", "measured", "limit"], rows)


def _plots(data: ReportData, names: Iterable[str]) -> str:
    figures = []
    for name in names:
        if name in data.plots:
            encoded = base64.b64encode(data.plots[name]).decode("ascii")
            figures.append(
                f'<figure><img alt="{_e(PLOTS[name])}" src="data:image/png;base64,{encoded}">'
                f"<figcaption>{_e(PLOTS[name])}</figcaption></figure>"
            )
    return f'<div class="plots">{"".join(figures)}</div>' if figures else _missing("No plots were written.")


def _buckets(data: ReportData) -> str:
    if not data.evaluation:
        return _missing("No evaluation report.")
    rows = [
        [
            _e(b["bucket"]),
            _number(b["count"]),
            _number(b.get("rmse")),
            _number(b.get("mae")),
            _number(b.get("mean_error")),
        ]
        for b in data.evaluation["error_by_rul_bucket"]
    ]
    table = _table(["true RUL", "units", "RMSE", "MAE", "mean error"], rows)
    return table + _plots(data, ["error_by_bucket"])


def _manifest(data: ReportData) -> str:
    manifest = data.manifest
    if not manifest:
        return _missing("This execution produced no dataset manifest.")
    files = _table(
        ["file", "bytes", "sha256"],
        [
            [_e(f["name"]), _number(f["bytes"]), f'<span class="mono">{_e(f["sha256"])}</span>']
            for f in manifest["files"]
        ],
    )
    splits = _table(
        ["split", "units", "rows"],
        [[_e(name), _number(s["units"]), _number(s["rows"])] for name, s in manifest["splits"].items()],
    )
    settings = ", ".join(f"{_e(k)}={_e(json.dumps(v))}" for k, v in manifest["settings"].items())
    uri = data.outputs.get(MANIFEST_OUTPUT, "")
    return (
        f'<p>Data version <b class="mono">{_e(manifest["version"])}</b> of subset {_e(manifest["subset"])}: '
        f"{_number(manifest['rows'])} rows, {_number(manifest['units'])} units, from {_e(uri)}.</p>"
        f"{files}{splits}<p>Split settings: {settings}</p>"
        f'<p>Features ({len(manifest["features"])}): <span class="mono">'
        f"{_e(', '.join(manifest['features']))}</span></p>"
    )


def _drift(data: ReportData) -> str:
    parts = []
    for name, content in data.drift.items():
        parts.append(f"<h3>{_e(name)}</h3>")
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
                    *(_number(f.get(c), 3) for c in columns),
                ]
                for f in features
            ]
            summary = {k: v for k, v in content.items() if k != "features"}
            parts.append(f"<pre>{_e(json.dumps(summary, indent=2, default=str)[:4000])}</pre>")
            parts.append(_table(columns, rows))
        else:
            parts.append(f"<pre>{_e(json.dumps(content, indent=2, default=str)[:8000])}</pre>")
    return "".join(parts)


def _parameters(data: ReportData) -> str:
    rows = [[_e(name), _e(value)] for name, value in sorted(data.result.parameters.items())]
    links = "".join(
        f'<li>{_e(label)}: <span class="mono">{_e(value)}</span></li>' for label, value in data.links.items()
    )
    return _table(["parameter", "value"], rows) + (f"<ul>{links}</ul>" if links else "")


def render(data: ReportData) -> str:
    """The whole HTML document (no script, no external resource)."""
    result = data.result
    status = _badge(result.status, result.status == "Succeeded")
    failure = f'<p class="failure">{_e(result.failure_reason)}</p>' if result.failure_reason else ""
    sections = [
        _section("Steps", _steps(data), "steps"),
        _section("Tuning trials", _trials(data), "trials"),
        _section("Evaluated model", _evaluated_model(data), "model"),
        _section("Quality gate", _gate(data), "gate"),
        _section("Evaluation plots", _plots(data, ["predicted_vs_true", "error_histogram"]), "plots")
        if data.evaluation
        else _section("Evaluation", _missing("No evaluation report."), "plots"),
        _section("Error by RUL bucket", _buckets(data), "buckets"),
        _section("Unit trajectory", _plots(data, ["unit_trajectory"]), "trajectory"),
        _section("Data manifest", _manifest(data), "manifest"),
    ]
    if data.drift:
        sections.append(_section("Drift", _drift(data), "drift"))
    sections.append(_section("Parameters", _parameters(data), "parameters"))
    sections.append(ab_section(Path(result.record_path).parent.parent.parent))  # <work>/executions/<id>/…
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8">
<meta http-equiv="Content-Security-Policy" content="{_CSP}">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>Execution {_e(result.execution_id)}: {_e(result.status)}</title>
<style>{STYLE}</style></head>
<body><header><h1>Turbofan RUL pipeline execution</h1>
<p><span class="mono">{_e(result.execution_id)}</span> {status} in {_number(result.seconds, 1)} s
(jobs {_number(result.job_seconds, 1)} s)</p>{failure}</header>
<main>{_cards(data)}{"".join(sections)}</main>
<footer>Written by the local runner from {_e(result.record_path)}.</footer>
</body></html>
"""


def report_path(result: ExecutionResult) -> Path:
    return Path(result.record_path).parent / REPORT_FILE


def write_report(result: ExecutionResult, store: ObjectStore, links: Mapping[str, str] | None = None) -> Path:
    """Collect and render the execution's report next to its execution.json; returns the file."""
    path = report_path(result)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(render(collect(result, store, links)), encoding="utf-8")
    return path


# Shared with the demo page (local_runner.demo_report).
STYLE = """
:root { --fg:#1d2733; --muted:#5b6776; --line:#dde3ea; --bg:#f6f8fa; --good:#1a7f37; --bad:#c62828;
        --accent:#2f6fb3; }
* { box-sizing: border-box; }
body { margin:0; font:14px/1.45 -apple-system, "Segoe UI", Roboto, "DejaVu Sans", sans-serif; color:var(--fg);
       background:var(--bg); }
header { background:#16324f; color:#fff; padding:18px 32px; }
header h1 { margin:0 0 4px; font-size:22px; }
header p { margin:0; }
main { padding:16px 32px 8px; max-width:1280px; }
section { background:#fff; border:1px solid var(--line); border-radius:8px; padding:12px 18px;
          margin:14px 0; }
h2 { font-size:17px; margin:4px 0 10px; color:#16324f; }
h3 { font-size:14px; margin:10px 0 6px; }
table { border-collapse:collapse; width:100%; margin:6px 0 10px; }
th, td { text-align:left; padding:5px 8px; border-bottom:1px solid var(--line); vertical-align:top; }
th { background:#eef2f6; font-weight:600; }
tr.best td { background:#fff7d6; font-weight:600; }
tr.drifted td { background:#fdecea; }
.star { color:#a86b00; }
.cards { display:flex; flex-wrap:wrap; gap:10px; margin:6px 0; }
.card { background:#fff; border:1px solid var(--line); border-radius:8px; padding:10px 14px;
        min-width:150px; }
.card .label { color:var(--muted); font-size:12px; text-transform:uppercase; letter-spacing:.04em; }
.card .value { font-size:24px; font-weight:600; }
.card .note { color:var(--muted); font-size:12px; }
.badge { display:inline-block; padding:1px 8px; border-radius:10px; font-size:12px; font-weight:600;
         color:#fff; background:var(--muted); }
.badge.good { background:var(--good); } .badge.bad { background:var(--bad); }
.card .badge { font-size:18px; padding:2px 12px; }
.mono { font-family: "DejaVu Sans Mono", Menlo, Consolas, monospace; font-size:12px; word-break:break-all; }
.bar { display:inline-block; width:120px; height:10px; background:#e8edf3; margin-right:8px;
       border-radius:5px; }
.bar span { display:block; height:10px; background:var(--accent); border-radius:5px; }
.plots { display:flex; flex-wrap:wrap; gap:14px; }
figure { margin:0; } figure img { max-width:560px; width:100%; border:1px solid var(--line); }
figcaption { color:var(--muted); font-size:12px; }
.missing { color:var(--muted); font-style:italic; }
.failure { background:#fdecea; color:var(--bad); padding:6px 10px; border-radius:6px; white-space:pre-wrap; }
pre { background:var(--bg); padding:8px; overflow:auto; font-size:12px; }
footer { color:var(--muted); padding:4px 32px 24px; font-size:12px; }
"""
