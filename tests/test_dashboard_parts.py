"""The dashboard's pure parts: the model card's choice of version, frames of records, the charts' specs."""

from __future__ import annotations

from datetime import UTC, date, datetime

import pandas as pd

from dashboard import charts
from dashboard.app import alert_threshold, parse_arguments
from dashboard.sources import (
    DailyCount,
    Execution,
    FeatureDrift,
    ModelVersion,
    MonitoringPoint,
    frame,
    model_card,
    serving_version,
)
from settings import MonitoringSettings

WHEN = datetime(2026, 11, 25, 14, tzinfo=UTC)


def version(number: int, status: str, serving: bool = False, rmse: float = 10.0) -> ModelVersion:
    return ModelVersion("g", number, status, WHEN, rmse, rmse * 2, serving=serving)


class FixedLatency:
    label = "fixed"

    def __init__(self, latency):
        self.latency = latency

    def latency_ms(self):
        return self.latency


def test_the_card_shows_the_serving_version_else_the_newest_approved():
    versions = [version(3, "PendingManualApproval"), version(2, "Approved", rmse=8.0), version(1, "Approved")]
    chosen, how = serving_version(versions)
    assert chosen.version == 2 and how == "no endpoint serves a version; showing the newest approved, v2"
    versions[2] = version(1, "Approved", serving=True, rmse=11.0)
    daily = [DailyCount(date(2026, 11, 24), 7), DailyCount(date(2026, 11, 25), 3)]
    card = model_card(FixedLatency(12.5), versions, daily)
    assert (card.version, card.rmse, card.phm08_score, card.latency_ms, card.predictions_last_day) == (
        1,
        11.0,
        22.0,
        12.5,
        3,
    )
    assert card.notes == ("v1 is serving on the endpoint",)


def test_an_empty_registry_gives_an_empty_card_that_says_why():
    card = model_card(FixedLatency(None), [version(1, "Rejected")], [])
    assert (card.version, card.rmse, card.latency_ms, card.predictions_last_day) == (None, None, None, None)
    assert card.notes == ("no approved model version yet", "no endpoint latency recorded by this source")


def test_frames_keep_their_columns_when_empty_and_hold_naive_utc_times():
    assert list(frame([], Execution).columns) == [
        "pipeline",
        "execution_id",
        "status",
        "started_at",
        "seconds",
        "failure_reason",
    ]
    table = frame([MonitoringPoint(WHEN, "MaxPSI", 0.3)], MonitoringPoint)
    assert table["measured_at"].tolist() == [pd.Timestamp("2026-11-25 14:00")]


def test_the_drift_chart_marks_bars_above_the_line_and_draws_it():
    features = frame([FeatureDrift("sensor_4", 0.5), FeatureDrift("sensor_2", 0.1)], FeatureDrift)
    spec = charts.drift_chart(features, 0.2).to_dict()
    bars, rule = spec["layer"]
    assert rule["mark"]["type"] == "rule" and rule["mark"]["color"] == charts.ALERT
    assert bars["encoding"]["color"]["condition"]["value"] == charts.ALERT
    assert bars["encoding"]["y"]["sort"] == ["sensor_4", "sensor_2"]
    [data] = [values for values in spec["datasets"].values() if len(values) == 2]
    assert {row["feature"]: row["alert"] for row in data} == {"sensor_4": True, "sensor_2": False}
    assert "layer" not in charts.drift_chart(features, None).to_dict()


def test_history_charts_draw_a_threshold_only_when_the_alarm_watches_the_metric():
    points = frame(
        [MonitoringPoint(WHEN, "MaxPSI", 0.3), MonitoringPoint(WHEN, "RMSE", 20.0)], MonitoringPoint
    )
    monitoring = MonitoringSettings()
    assert "layer" in charts.history_chart(points, "MaxPSI", alert_threshold(monitoring, "MaxPSI")).to_dict()
    assert alert_threshold(monitoring, "DriftedFeatures") is None
    assert "layer" not in charts.history_chart(points, "RMSE").to_dict()


def test_status_and_approval_colours_are_fixed_and_unknown_states_still_get_one():
    executions = frame(
        [Execution("training", "e1", "Failed", WHEN, 60.0), Execution("training", "e2", "Odd", WHEN, None)],
        Execution,
    )
    scale = charts.executions_chart(executions).to_dict()["encoding"]["color"]["scale"]
    assert dict(zip(scale["domain"], scale["range"], strict=True))["Failed"] == charts.ALERT
    assert "Odd" in scale["domain"]
    registry = charts.registry_chart(frame([version(1, "Approved", serving=True)], ModelVersion)).to_dict()
    assert registry["encoding"]["stroke"]["condition"]["value"] == "black"


def test_arguments_default_to_the_local_work_folder():
    arguments = parse_arguments([])
    assert (arguments.source, str(arguments.work_dir), arguments.region) == ("local", ".work", None)
    assert parse_arguments(["--source", "aws", "--region", "eu-west-1"]).source == "aws"
