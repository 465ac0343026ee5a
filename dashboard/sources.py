"""What the dashboard shows, as plain frozen dataclasses, and the protocol every data source implements.

A source answers six questions: the model package versions (with their test-set metrics and which one
serves), the pipeline executions, the newest per-feature drift, the monitoring results over time, the
predictions per day and the endpoint latency. `model_card` folds those answers into the headline card;
`frame` turns a list of records into a DataFrame that keeps its columns when the list is empty. Sources
raise `SourceError` (one line naming the problem) when they cannot be read at all, and return empty
answers when there is simply nothing yet.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields
from datetime import date, datetime
from typing import Protocol, runtime_checkable

import pandas as pd

APPROVED = "Approved"  # SageMaker's ModelApprovalStatus
TRAINING = "training"
MONITORING = "monitoring"
# Monitoring metrics, named as the project publishes them to CloudWatch.
MAX_PSI = "MaxPSI"
DRIFTED_FEATURES = "DriftedFeatures"
RMSE = "RMSE"
PHM08_SCORE = "PHM08Score"


class SourceError(RuntimeError):
    """A data source that cannot be read at all (missing work folder, no credentials); one line."""


@dataclass(frozen=True)
class ModelVersion:
    """One model package version; `rmse`/`phm08_score` come from its test-set evaluation report."""

    group: str
    version: int
    approval_status: str
    created_at: datetime
    rmse: float | None
    phm08_score: float | None
    data_version: str = ""
    execution_id: str = ""
    serving: bool = False


@dataclass(frozen=True)
class Execution:
    """One pipeline execution; `seconds` is None while it has no end."""

    pipeline: str
    execution_id: str
    status: str
    started_at: datetime | None
    seconds: float | None
    failure_reason: str = ""


@dataclass(frozen=True)
class FeatureDrift:
    """One feature's PSI in a drift check."""

    feature: str
    psi: float


@dataclass(frozen=True)
class DriftSnapshot:
    """The per-feature PSI of the newest drift check."""

    measured_at: datetime
    features: tuple[FeatureDrift, ...]


@dataclass(frozen=True)
class MonitoringPoint:
    """One value of a monitoring metric (MAX_PSI, DRIFTED_FEATURES, RMSE, PHM08_SCORE) at a time."""

    measured_at: datetime
    metric: str
    value: float


@dataclass(frozen=True)
class DailyCount:
    """The number of predictions the endpoint served on one day."""

    day: date
    predictions: int


@dataclass(frozen=True)
class ModelCard:
    """The headline numbers; None where the source has no such number, `notes` say why or from where."""

    version: int | None
    rmse: float | None
    phm08_score: float | None
    latency_ms: float | None
    predictions_last_day: int | None
    notes: tuple[str, ...] = ()


@runtime_checkable
class DashboardSource(Protocol):
    """Where the dashboard reads from: the local work folder or an AWS account."""

    label: str

    def model_versions(self) -> list[ModelVersion]:
        """The model package versions, newest first."""

    def executions(self) -> list[Execution]:
        """The pipeline executions, newest first."""

    def drift(self) -> DriftSnapshot | None:
        """The newest per-feature drift measurement; None when there is none."""

    def monitoring_history(self) -> list[MonitoringPoint]:
        """The drift and model-quality datapoints over time."""

    def daily_predictions(self) -> list[DailyCount]:
        """The predictions served per day."""

    def latency_ms(self) -> float | None:
        """The endpoint's recent model latency in milliseconds; None when unknown."""


def frame(records: list, record_type: type) -> pd.DataFrame:
    """A DataFrame with one row per record and the dataclass's fields as columns, even when empty; times
    become naive UTC, as Arrow tables and Vega-Lite charts read them without a deprecation warning."""
    columns = [item.name for item in fields(record_type)]
    table = pd.DataFrame([asdict(record) for record in records], columns=columns)
    zoned = [str(name) for name, kind in table.dtypes.items() if isinstance(kind, pd.DatetimeTZDtype)]
    return table.assign(**{name: table[name].dt.tz_convert("UTC").dt.tz_localize(None) for name in zoned})


def serving_version(versions: list[ModelVersion]) -> tuple[ModelVersion | None, str]:
    """The version in service and how it was chosen: the endpoint's, else the newest approved one."""
    for version in versions:
        if version.serving:
            return version, f"v{version.version} is serving on the endpoint"
    approved = [version for version in versions if version.approval_status == APPROVED]
    if approved:
        newest = max(approved, key=lambda version: version.version)
        return newest, f"no endpoint serves a version; showing the newest approved, v{newest.version}"
    return None, "no approved model version yet"


def model_card(source: DashboardSource, versions: list[ModelVersion], daily: list[DailyCount]) -> ModelCard:
    """The headline card: the serving version's test-set metrics, the latency and the last day's count."""
    chosen, how = serving_version(versions)
    notes = [how]
    latency = source.latency_ms()
    if latency is None:
        notes.append("no endpoint latency recorded by this source")
    last_day = max(daily, key=lambda count: count.day).predictions if daily else None
    return ModelCard(
        version=chosen.version if chosen else None,
        rmse=chosen.rmse if chosen else None,
        phm08_score=chosen.phm08_score if chosen else None,
        latency_ms=latency,
        predictions_last_day=last_day,
        notes=tuple(notes),
    )
