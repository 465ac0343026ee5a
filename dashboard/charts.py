"""The dashboard's plots, built as Altair charts from the sources' DataFrames (pure: no Streamlit here).

Each function takes the DataFrame of one section (the columns of the matching `dashboard.sources`
dataclass) and returns a chart; thresholds are drawn as red rules so a breach is seen, not read. Status
and approval colours are fixed so the same state always has the same colour.
"""

from __future__ import annotations

import altair as alt
import pandas as pd

ALERT = "#d62728"
OK = "#1f77b4"
STATUS_COLOURS = {
    "Succeeded": "#2ca02c",
    "Executing": "#1f77b4",
    "Failed": ALERT,
    "Stopped": "#7f7f7f",
    "Stopping": "#7f7f7f",
    "Unreadable": "#ff7f0e",
}
LONG_LABELS = alt.Axis(labelLimit=360, labelOverlap=False)  # every execution named in full
APPROVAL_COLOURS = {"Approved": "#2ca02c", "PendingManualApproval": "#ff7f0e", "Rejected": ALERT}


def _scale(colours: dict[str, str], present: pd.Series) -> alt.Scale:
    domain = list(dict.fromkeys([*colours, *present.astype(str)]))
    return alt.Scale(domain=domain, range=[colours.get(name, "#9467bd") for name in domain])


def drift_chart(
    features: pd.DataFrame, threshold: float | None
) -> alt.Chart | alt.LayerChart | alt.FacetChart:
    """Horizontal PSI bars per feature, largest first, red above `threshold`, with the alert line."""
    data = features.assign(alert=features["psi"] > threshold if threshold is not None else False)
    order = data.sort_values("psi", ascending=False)["feature"].tolist()
    bars = (
        alt.Chart(data)
        .mark_bar()
        .encode(
            x=alt.X("psi:Q", title="PSI (population stability index)"),
            y=alt.Y("feature:N", sort=order, title=None),
            color=alt.condition("datum.alert", alt.value(ALERT), alt.value(OK)),
            tooltip=["feature", alt.Tooltip("psi:Q", format=".3f")],
        )
    )
    height = max(160, 18 * len(data))
    if threshold is None:
        return bars.properties(height=height)
    rule = alt.Chart(pd.DataFrame({"threshold": [threshold]})).mark_rule(
        color=ALERT, strokeDash=[6, 3], size=2
    )
    rule = rule.encode(x="threshold:Q", tooltip=[alt.Tooltip("threshold:Q", title="alert threshold")])
    return (bars + rule).properties(height=height)


def executions_chart(executions: pd.DataFrame) -> alt.Chart:
    """One bar per execution, newest on top: its duration, coloured by status."""
    data = executions.assign(
        minutes=executions["seconds"].fillna(0.0) / 60.0,
        label=executions["pipeline"] + " · " + executions["execution_id"],
    )
    return (
        alt.Chart(data)
        .mark_bar()
        .encode(
            x=alt.X("minutes:Q", title="duration (minutes)"),
            y=alt.Y("label:N", sort=data["label"].tolist(), title=None, axis=LONG_LABELS),
            color=alt.Color("status:N", scale=_scale(STATUS_COLOURS, data["status"])),
            tooltip=[
                "execution_id",
                "pipeline",
                "status",
                alt.Tooltip("minutes:Q", format=".1f"),
                "failure_reason",
            ],
        )
        .properties(height=alt.Step(26))  # one row per execution, however many
    )


def registry_chart(versions: pd.DataFrame) -> alt.Chart:
    """Test-set RMSE of each version, coloured by approval state; the serving version is outlined."""
    data = versions.assign(label="v" + versions["version"].astype(str))
    return (
        alt.Chart(data)
        .mark_bar(strokeWidth=3)
        .encode(
            x=alt.X("label:N", sort=data.sort_values("version")["label"].tolist(), title="version"),
            y=alt.Y("rmse:Q", title="test RMSE (cycles)"),
            color=alt.Color("approval_status:N", scale=_scale(APPROVAL_COLOURS, data["approval_status"])),
            stroke=alt.condition("datum.serving", alt.value("black"), alt.value(None)),
            tooltip=[
                "label",
                "approval_status",
                "serving",
                alt.Tooltip("rmse:Q", format=".2f"),
                "data_version",
            ],
        )
        .properties(height=220)
    )


def history_chart(
    points: pd.DataFrame, metric: str, threshold: float | None = None
) -> alt.Chart | alt.LayerChart | alt.FacetChart:
    """One monitoring metric over time, with its alert line when it has one."""
    data = points[points["metric"] == metric]
    line = (
        alt.Chart(data)
        .mark_line(point=True)
        .encode(
            x=alt.X("measured_at:T", title=None, axis=alt.Axis(format="%m-%d %H:%M", labelAngle=0)),
            y=alt.Y("value:Q", title=metric),
            tooltip=[
                alt.Tooltip("measured_at:T", format="%Y-%m-%d %H:%M"),
                alt.Tooltip("value:Q", format=".3f"),
            ],
        )
    )
    if threshold is None:
        return line.properties(height=200)
    rule = alt.Chart(pd.DataFrame({"threshold": [threshold]})).mark_rule(color=ALERT, strokeDash=[6, 3])
    return (line + rule.encode(y="threshold:Q")).properties(height=200)


def daily_chart(daily: pd.DataFrame) -> alt.Chart:
    """Predictions answered per day."""
    data = daily.assign(date=daily["day"].astype(str))
    return (
        alt.Chart(data)
        .mark_bar()
        .encode(
            x=alt.X("date:O", title=None, axis=alt.Axis(labelAngle=0)),
            y=alt.Y("predictions:Q", title="predictions"),
            tooltip=["date:O", "predictions:Q"],
        )
        .properties(height=160)
    )
