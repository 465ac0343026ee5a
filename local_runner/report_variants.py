"""The variant comparison of an A/B test: requests per variant and, where late labels exist, their quality.

`compare_variants` reads the captures (any root: the capture dir, an endpoint's folder) with the
monitors' reader and, given failure events (the model-quality job's ground-truth files), joins them as
the quality job does (`model_quality.quality_report`, grouped by variant). `render_text` prints the
comparison for `endpoint ab-report`; `render_html` is the same table as a section for an HTML report, and
`ab_section(work_dir)` is the execution report's section: empty when no local A/B test was started there,
else the test's variants from its capture dir, with the failure events under `<work>/endpoint/ab/
ground_truth/` when present. A variant without labelled predictions shows its counts and "-" for the
metrics, never a made-up number.
"""

from __future__ import annotations

import html
import json
from datetime import datetime
from pathlib import Path
from types import ModuleType

from local_runner.container_code import use_container_code
from local_runner.errors import RunnerError

METRICS = (("rmse", "RMSE"), ("mae", "MAE"), ("phm08_score", "PHM08 score"))


class VariantReportError(RunnerError, ValueError):
    """The captures or failure events cannot be read; the message names the file and the problem."""


HEADERS = ("variant", "requests", "predictions", "labelled", *(title for _, title in METRICS))


def compare_variants(
    captures: str | Path,
    ground_truth: str | Path | None = None,
    start: datetime | None = None,
    end: datetime | None = None,
    rul_cap: float = 125.0,
) -> dict:
    """{variant: {requests, predictions, labelled, rmse, mae, phm08_score}} of the captures in the window."""
    # The quality job's own join, imported from the container code on first use.
    use_container_code()
    import model_quality
    from rul.errors import RulError

    try:
        return _compare(model_quality, captures, ground_truth, start, end, rul_cap)
    except RulError as error:
        raise VariantReportError(str(error)) from None


def _compare(
    model_quality: ModuleType,
    captures: str | Path,
    ground_truth: str | Path | None,
    start: datetime | None,
    end: datetime | None,
    rul_cap: float,
) -> dict:
    from rul.capture import read_window

    window = read_window(captures, start, end)
    requests: dict[str, int] = {}
    for request in window.requests:
        name = request.variant or model_quality.UNKNOWN_VARIANT
        requests[name] = requests.get(name, 0) + 1
    events = model_quality.read_failure_events(Path(ground_truth)) if ground_truth else []
    report = model_quality.quality_report(window, events, rul_cap, {})
    comparison = {}
    for variant, block in report["variants"].items():
        metrics = block["regression_metrics"]
        comparison[variant] = {
            "requests": requests.get(variant, 0),
            "predictions": block["counts"]["predictions"],
            "labelled": block["counts"]["matched_predictions"],
            **{key: metrics[key]["value"] for key, _ in METRICS},
        }
    return comparison


def _cells(variant: str, row: dict) -> list[str]:
    numbers = ["-" if row[key] is None else f"{row[key]:.2f}" for key, _ in METRICS]
    return [variant, str(row["requests"]), str(row["predictions"]), str(row["labelled"]), *numbers]


def render_text(comparison: dict) -> str:
    """A fixed-width table, one line per variant."""
    if not comparison:
        return "no captured requests in the window"
    rows = [list(HEADERS), *(_cells(variant, row) for variant, row in comparison.items())]
    widths = [max(len(row[i]) for row in rows) for i in range(len(HEADERS))]
    return "\n".join(
        "  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)) for row in rows
    )


def ab_section(work_dir: str | Path) -> str:
    """The A/B section of the local reports, or "" when no A/B test was started under `work_dir`."""
    state_file = Path(work_dir) / "endpoint" / "ab" / "state.json"
    if not state_file.is_file():
        return ""
    state = json.loads(state_file.read_text())
    versions = ", ".join(f"{name} v{version}" for name, version in state.get("versions", {}).items())
    if not state.get("capture_dir"):
        note = f"{versions}: no capture dir was given to ab-serve, so there is nothing to compare"
        return render_html({}, note)
    labels = state_file.parent / "ground_truth"
    try:
        comparison = compare_variants(state["capture_dir"], labels if labels.is_dir() else None)
    except VariantReportError as error:
        return render_html({}, f"{versions}: {error}")
    return render_html(comparison, versions)


def render_html(comparison: dict, caption: str = "") -> str:
    """The comparison as an HTML section (escaped), for the runner's reports."""
    if not comparison:
        body = f"<p>{html.escape(caption or 'No captured requests in the window.')}</p>"
    else:
        head = "".join(f"<th>{html.escape(title)}</th>" for title in HEADERS)
        lines = "".join(
            "<tr>" + "".join(f"<td>{html.escape(cell)}</td>" for cell in _cells(variant, row)) + "</tr>"
            for variant, row in comparison.items()
        )
        body = f"<p>{html.escape(caption)}</p>" if caption else ""
        body += f"<table><thead><tr>{head}</tr></thead><tbody>{lines}</tbody></table>"
    return f'<section id="variants"><h2>A/B variants</h2>{body}</section>'
