"""The operations dashboard page (`make dashboard`, i.e. `streamlit run dashboard/app.py -- [options]`).

Five sections over one `DashboardSource`: the model card (the serving version's test RMSE and PHM08
score, endpoint latency, predictions of the last day), drift per feature as PSI bars against the alert
threshold of the project's monitoring settings, pipeline executions (status and duration), the model
registry (versions, metrics, approval, which one serves) and monitoring results over time. Options:
`--source local` (default; `--work-dir`, default `.work`) or `--source aws` (`--region`, `--profile`;
names from the project settings). The settings are the CDK app's: cdk.json's `settings` context over an
optional `--settings-file`. A source that cannot be read is named in one error line; a section with
nothing yet says how to fill it.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from pathlib import Path

import streamlit as st

from dashboard import charts
from dashboard.sources import (
    DRIFTED_FEATURES,
    MAX_PSI,
    PHM08_SCORE,
    RMSE,
    DailyCount,
    DashboardSource,
    Execution,
    FeatureDrift,
    ModelVersion,
    MonitoringPoint,
    SourceError,
    frame,
    model_card,
)
from settings import MonitoringSettings, Settings, SettingsError, load_settings

PROJECT_ROOT = Path(__file__).resolve().parent.parent
SHOWN_EXECUTIONS = 20  # newest first
LOCAL_HINTS = {
    "executions": "No executions yet — run `make run`.",
    "registry": "No model versions registered yet — run `make run`.",
    "drift": "No drift check yet — run `python -m local_runner monitor run` on the endpoint's captures "
    "(or `make demo`).",
    "history": "No monitoring results yet — the monitoring pipeline has not run (`python -m local_runner "
    "monitor run`).",
    "predictions": "No captured predictions yet — serve with `python -m local_runner endpoint serve "
    "--capture-dir <work>/captures`.",
}
AWS_HINTS = {
    "executions": "No executions of the training or monitoring pipeline yet (or they are not deployed).",
    "registry": "No model package in the group yet: the training pipeline has not registered one.",
    "drift": "No FeaturePSI metrics in CloudWatch yet: the monitoring pipeline has not published any.",
    "history": "No monitoring metrics in CloudWatch for the last days.",
    "predictions": "No endpoint invocations in CloudWatch for the last days.",
}


def parse_arguments(argv: Sequence[str]) -> argparse.Namespace:
    """The dashboard's options: source, work folder, AWS region and profile, settings file."""
    parser = argparse.ArgumentParser(prog="dashboard", description=__doc__.split("\n\n")[0])
    parser.add_argument("--source", choices=("local", "aws"), default="local")
    parser.add_argument("--work-dir", type=Path, default=Path(".work"), help="local runner work folder")
    parser.add_argument("--region", help="AWS region (default: the settings' aws.region)")
    parser.add_argument("--profile", help="AWS named profile")
    parser.add_argument("--settings-file", type=Path, help="JSON/YAML settings file, as for `cdk synth`")
    return parser.parse_args(list(argv))


def project_settings(settings_file: Path | None, cdk_json: Path = PROJECT_ROOT / "cdk.json") -> Settings:
    """The CDK app's settings: cdk.json's `settings` context over `settings_file` (or its `settings_file`)."""
    context = json.loads(cdk_json.read_text()).get("context", {}) if cdk_json.is_file() else {}
    return load_settings(context.get("settings"), settings_file or context.get("settings_file"))


def open_source(arguments: argparse.Namespace, settings: Settings) -> tuple[DashboardSource, dict[str, str]]:
    """The source the arguments name, and its empty-state hints."""
    if arguments.source == "aws":
        import boto3

        from dashboard.aws_source import AwsSource, AwsTargets

        session = boto3.Session(
            region_name=arguments.region or settings.aws.region, profile_name=arguments.profile
        )
        return AwsSource.from_session(AwsTargets.from_settings(settings), session), AWS_HINTS
    from dashboard.local_source import LocalSource

    return LocalSource(arguments.work_dir), LOCAL_HINTS


def alert_threshold(monitoring: MonitoringSettings, metric: str) -> float | None:
    """The drift alarm's threshold when it watches `metric` (monitoring.drift_metric), else None."""
    return monitoring.drift_threshold if monitoring.drift_metric == metric else None


def _number(value: float | int | None, pattern: str) -> str:
    return "—" if value is None else pattern.format(value)


def show_card(
    source: DashboardSource, versions: list[ModelVersion], daily: list[DailyCount], hints: dict
) -> None:
    """The model card section: the serving version's metrics, latency and daily predictions."""
    st.header("Model")
    card = model_card(source, versions, daily)
    rmse, score, latency, predictions = st.columns(4)
    version = f" (v{card.version})" if card.version is not None else ""
    rmse.metric(f"Test RMSE{version}", _number(card.rmse, "{:.2f}"), help="cycles, uncapped truth")
    score.metric(
        f"PHM08 score{version}", _number(card.phm08_score, "{:,.1f}"), help="asymmetric, lower is better"
    )
    latency.metric("Endpoint latency p99", _number(card.latency_ms, "{:.1f} ms"))
    predictions.metric("Predictions, last day", _number(card.predictions_last_day, "{:,}"))
    st.caption(" · ".join(card.notes))
    unreadable = getattr(source, "unreadable_captures", 0)  # only the local source reads capture files
    if unreadable:
        st.warning(f"{unreadable} capture lines could not be read and are not counted.")
    if daily:
        st.altair_chart(charts.daily_chart(frame(daily, DailyCount)), width="stretch")
    else:
        st.info(hints["predictions"])


def show_drift(source: DashboardSource, monitoring: MonitoringSettings, hints: dict) -> None:
    """The drift section: each feature's PSI against the monitoring alert threshold."""
    st.header("Drift per feature")
    snapshot = source.drift()
    if snapshot is None or not snapshot.features:
        st.info(hints["drift"])
        return
    threshold = alert_threshold(monitoring, MAX_PSI)
    features = frame(list(snapshot.features), FeatureDrift)
    when = f"Newest drift check {snapshot.measured_at:%Y-%m-%d %H:%M} UTC"
    if threshold is None:
        alarm = f"the drift alarm watches {monitoring.drift_metric} > {monitoring.drift_threshold:g}"
        st.markdown(f"{when}; {alarm}, so no PSI alert line.")
    else:
        above = features[features["psi"] > threshold]["feature"].tolist()
        listed = f": {', '.join(above)}" if above else "."
        st.markdown(
            f"{when}; alert line PSI {threshold:g} (monitoring.drift_threshold). "
            f"**{len(above)} of {len(features)} features above**{listed}"
        )
    st.altair_chart(charts.drift_chart(features, threshold), width="stretch")


def show_executions(source: DashboardSource, hints: dict) -> None:
    """The executions section: counts per status and the newest executions' durations."""
    st.header("Pipeline executions")
    executions = frame(source.executions(), Execution)
    if executions.empty:
        st.info(hints["executions"])
        return
    counts = executions["status"].value_counts().to_dict()
    st.markdown(", ".join(f"**{count}** {status}" for status, count in counts.items()))
    shown = executions.head(SHOWN_EXECUTIONS)
    st.altair_chart(charts.executions_chart(shown), width="stretch")
    st.table(shown.set_index("execution_id").round({"seconds": 1}))


def show_registry(versions: list[ModelVersion], hints: dict) -> None:
    """The registry section: the model versions' metrics, approval and serving flag."""
    st.header("Model registry")
    if not versions:
        st.info(hints["registry"])
        return
    table = frame(versions, ModelVersion)
    left, right = st.columns([3, 2])
    left.table(table.set_index("version").round({"rmse": 2, "phm08_score": 1}))
    right.altair_chart(charts.registry_chart(table), width="stretch")


def show_history(source: DashboardSource, monitoring: MonitoringSettings, hints: dict) -> None:
    """The history section: drift and quality metrics over time, with their alert lines."""
    st.header("Monitoring over time")
    points = frame(source.monitoring_history(), MonitoringPoint)
    if points.empty:
        st.info(hints["history"])
        return
    drift, quality = st.columns(2)
    for column, metric in (
        (drift, MAX_PSI),
        (drift, DRIFTED_FEATURES),
        (quality, RMSE),
        (quality, PHM08_SCORE),
    ):
        if (points["metric"] == metric).any():
            column.subheader(metric)
            chart = charts.history_chart(points, metric, alert_threshold(monitoring, metric))
            column.altair_chart(chart, width="stretch")


def render(source: DashboardSource, settings: Settings, hints: dict[str, str]) -> None:
    """Draw the whole page (title and the five sections) from `source`."""
    st.title("Turbofan RUL — operations")
    st.caption(f"Source: {source.label}")
    versions = source.model_versions()
    show_card(source, versions, source.daily_predictions(), hints)
    show_drift(source, settings.monitoring, hints)
    show_executions(source, hints)
    show_registry(versions, hints)
    show_history(source, settings.monitoring, hints)


def main(argv: Sequence[str]) -> None:
    """Open the source the arguments name and render the page; a bad source or argument is one error."""
    st.set_page_config(page_title="Turbofan RUL operations", layout="wide")
    try:
        arguments = parse_arguments(argv)
        settings = project_settings(arguments.settings_file)
        source, hints = open_source(arguments, settings)
        render(source, settings, hints)
    except (SourceError, SettingsError) as error:
        st.error(str(error))
    except SystemExit:
        st.error(f"bad dashboard arguments: {' '.join(argv)} (see `--help`)")


if __name__ == "__main__":
    main(sys.argv[1:])
