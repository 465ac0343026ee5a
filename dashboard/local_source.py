"""The dashboard's local data source: a local runner work folder (`.work` by default), read only.

It reads what `make run`, `local_runner monitor run`, the local endpoint and `make demo` leave there: the
registry (`registry.sqlite`, through `LocalRegistry`'s read calls), the execution records
(`executions/*/execution.json`), the reports those records point at in the local object store (`s3/...`:
each model package's `evaluation.json`, each monitoring execution's drift and model-quality reports), the
endpoint's current release (which version serves) and the captured invocations (`captures/` and the
monitoring pipeline's staged copy). Nothing is created: a missing registry or folder is an empty answer,
a missing work folder a `SourceError`. The local endpoint records no latency, so `latency_ms` is None.
"""

from __future__ import annotations

import base64
import json
import re
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from dashboard.sources import (
    DRIFTED_FEATURES,
    MAX_PSI,
    MONITORING,
    PHM08_SCORE,
    RMSE,
    TRAINING,
    DailyCount,
    DriftSnapshot,
    Execution,
    FeatureDrift,
    ModelVersion,
    MonitoringPoint,
    SourceError,
)
from local_runner.endpoint import EndpointPaths, current_release, release_version
from local_runner.object_store import ObjectStore, ObjectStoreError
from local_runner.registry import LocalRegistry, ModelPackage, RegistryError
from pipeline_steps import monitoring_names as mnames
from pipeline_steps.config import local_config
from pipeline_steps.monitoring_config import local_monitoring_config

UNREADABLE = "Unreadable"
_EXECUTION_TIME = re.compile(r"^local-(\d{14})-")


def _read_json(path: Path) -> Any:
    """The parsed file, or None when it is absent or not JSON (the dashboard shows what it can)."""
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None


def _value(report: Any, *keys: str) -> float | None:
    for key in keys:
        if not isinstance(report, dict):
            return None
        report = report.get(key)
    return float(report) if isinstance(report, int | float) else None


def _time(text: Any) -> datetime | None:
    try:
        moment = datetime.fromisoformat(str(text))
    except ValueError:
        return None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def _known_time(text: Any) -> datetime:
    moment = _time(text)
    if moment is None:
        raise ValueError(f"{text!r} is not an ISO 8601 time")
    return moment


class LocalSource:
    """The `DashboardSource` of a local runner work folder."""

    def __init__(self, work_dir: str | Path, group: str | None = None):
        self.work_dir = Path(work_dir)
        if not self.work_dir.exists():
            raise SourceError(
                f"work folder {self.work_dir} does not exist: run `make run` or pass --work-dir"
            )
        if not self.work_dir.is_dir():
            raise SourceError(f"work folder {self.work_dir} is not a folder")
        self.group = group or local_config().model_package_group_name
        self.label = f"local work folder {self.work_dir}"
        store_root = self.work_dir / "s3"
        self.store = ObjectStore(store_root) if store_root.is_dir() else None
        self.unreadable_captures = 0

    def _store_json(self, uri: str) -> Any:
        if self.store is None:
            return None
        try:
            return _read_json(self.store.path_for(uri))
        except ObjectStoreError:
            return None

    # --- registry ------------------------------------------------------------------------------------

    def _packages(self) -> list[ModelPackage]:
        path = self.work_dir / "registry.sqlite"
        if not path.is_file():  # LocalRegistry would create it
            return []
        try:
            return LocalRegistry(path).list(self.group)
        except RegistryError:
            return []

    def _serving(self) -> int | None:
        return release_version(current_release(EndpointPaths.of(self.work_dir)))

    def model_versions(self) -> list[ModelVersion]:
        """The registered versions, newest first, with their evaluation metrics and the one being served."""
        serving = self._serving()
        versions = []
        for package in self._packages():
            quality = (package.metrics or {}).get("ModelQuality", {}).get("Statistics", {})
            evaluation = self._store_json(quality.get("S3Uri", ""))
            versions.append(
                ModelVersion(
                    group=package.group,
                    version=package.version,
                    approval_status=package.approval_status,
                    created_at=_time(package.created_at) or datetime.now(UTC),
                    rmse=_value(evaluation, "regression_metrics", "rmse", "value"),
                    phm08_score=_value(evaluation, "regression_metrics", "phm08_score", "value"),
                    data_version=(package.customer_metadata or {}).get("DataVersion", ""),
                    execution_id=package.execution_id or "",
                    serving=package.version == serving,
                )
            )
        return versions

    # --- executions ----------------------------------------------------------------------------------

    def _records(self) -> list[tuple[Path, Any]]:
        paths = sorted((self.work_dir / "executions").glob("*/execution.json"))
        return [(path, _read_json(path)) for path in paths]

    def executions(self) -> list[Execution]:
        """The recorded executions of the work folder, newest first."""
        executions = [_execution(path, record) for path, record in self._records()]
        oldest = datetime.min.replace(tzinfo=UTC)
        return sorted(executions, key=lambda execution: execution.started_at or oldest, reverse=True)

    # --- monitoring ----------------------------------------------------------------------------------

    def _reports(self, step: str, file_name: str) -> list[dict]:
        """The `file_name` report of `step` of every recorded execution that ran it, oldest first."""
        reports = []
        for _path, record in self._records():
            for output in _step_outputs(record, step):
                report = self._store_json(f"{output.rstrip('/')}/{file_name}")
                if isinstance(report, dict) and _time(report.get("generated_at")):
                    reports.append(report)
        return sorted(reports, key=lambda report: _known_time(report["generated_at"]))

    def drift(self) -> DriftSnapshot | None:
        """The per-feature PSI of the newest recorded drift report; None when no drift step has run."""
        reports = self._reports(mnames.DRIFT_STEP, mnames.DRIFT_REPORT_FILE)
        if not reports:
            return None
        newest = reports[-1]
        features = tuple(
            FeatureDrift(str(item["name"]), float(item["psi"]))
            for item in newest.get("features", [])
            if isinstance(item.get("psi"), int | float)
        )
        return DriftSnapshot(measured_at=_known_time(newest["generated_at"]), features=features)

    def monitoring_history(self) -> list[MonitoringPoint]:
        """Max PSI and drifted count of each drift report, RMSE and PHM08 score of each quality one."""
        points = []
        for report in self._reports(mnames.DRIFT_STEP, mnames.DRIFT_REPORT_FILE):
            moment = _known_time(report["generated_at"])
            points.append(MonitoringPoint(moment, MAX_PSI, float(report.get("max_psi") or 0.0)))
            points.append(
                MonitoringPoint(moment, DRIFTED_FEATURES, float(len(report.get("drifted_features", []))))
            )
        for report in self._reports(mnames.QUALITY_STEP, mnames.QUALITY_REPORT_FILE):
            moment = _known_time(report["generated_at"])
            for metric, key in ((RMSE, "rmse"), (PHM08_SCORE, "phm08_score")):
                value = _value(report, "regression_metrics", key, "value")
                if value is not None:
                    points.append(MonitoringPoint(moment, metric, value))
        return points

    # --- serving -------------------------------------------------------------------------------------

    def _capture_roots(self) -> list[Path]:
        roots = [self.work_dir / "captures"]
        if self.store is not None:
            roots.append(self.store.path_for(local_monitoring_config().capture_uri))
        return [root for root in roots if root.is_dir()]

    def daily_predictions(self) -> list[DailyCount]:
        """Predictions answered per UTC day; a request found twice (endpoint, staged copy) counts once.

        Lines that are not capture records are counted in `unreadable_captures`, not guessed at."""
        per_event: dict[str, tuple[datetime, int]] = {}
        self.unreadable_captures = 0
        for root in self._capture_roots():
            for path in sorted(root.rglob("*.jsonl")):
                if any(part.startswith(".") for part in path.relative_to(root).parts):
                    continue  # a hidden in-flight copy (the object store's `.tmp-` files)
                for line in path.read_text(errors="replace").splitlines():
                    parsed = _captured(line) if line.strip() else None
                    if parsed is None:
                        self.unreadable_captures += int(bool(line.strip()))
                        continue
                    per_event[parsed[0]] = parsed[1:]
        days: Counter = Counter()
        for moment, count in per_event.values():
            days[moment.date()] += count
        return [DailyCount(day, days[day]) for day in sorted(days)]

    def latency_ms(self) -> float | None:
        """None: the local endpoint records no latency metric."""
        return None


def _captured(line: str) -> tuple[str, datetime, int] | None:
    """(event id, UTC inference time, predictions answered) of one capture record line, None if unreadable.

    The record layout is SageMaker's data capture (see `containers/rul/capture.py`); only the response
    side is read, so the serving stack (and its scikit-learn import) is not needed here."""
    try:
        record = json.loads(line)
        output = record["captureData"]["endpointOutput"]
        data = output["data"]
        if output.get("encoding") == "BASE64":
            data = base64.b64decode(data).decode()
        predictions = json.loads(data)["predictions"]
        moment = _known_time(record["eventMetadata"]["inferenceTime"].replace("Z", "+00:00"))
        return str(record["eventMetadata"]["eventId"]), moment.astimezone(UTC), len(predictions)
    except (ValueError, KeyError, TypeError, AttributeError):
        return None


def _step_outputs(record: Any, step: str) -> list[str]:
    """The S3 URIs of the outputs of a succeeded `step` in an execution record."""
    if not isinstance(record, dict):
        return []
    uris = []
    for item in record.get("steps", []):
        if item.get("name") != step or item.get("status") != "Succeeded":
            continue
        outputs = item.get("properties", {}).get("ProcessingOutputConfig", {}).get("Outputs", {})
        uris += [output.get("S3Output", {}).get("S3Uri", "") for output in outputs.values()]
    return [uri for uri in uris if uri]


def _execution(path: Path, record: Any) -> Execution:
    """An execution record as a row; an unreadable record is a row that says so, not a silent gap."""
    execution_id = path.parent.name
    match = _EXECUTION_TIME.match(execution_id)
    named_time = datetime.strptime(match.group(1), "%Y%m%d%H%M%S").replace(tzinfo=UTC) if match else None
    if not isinstance(record, dict) or not isinstance(record.get("steps"), list):
        return Execution(
            TRAINING, execution_id, UNREADABLE, named_time, None, f"{path} is not an execution record"
        )
    steps = record["steps"]
    names = {step.get("name") for step in steps}
    pipeline = MONITORING if names and names <= set(mnames.STEP_NAMES) else TRAINING
    starts = [moment for moment in (_time(step.get("started_at")) for step in steps) if moment]
    seconds = record.get("seconds")
    return Execution(
        pipeline=pipeline,
        execution_id=str(record.get("execution_id", execution_id)),
        status=str(record.get("status", UNREADABLE)),
        started_at=min(starts) if starts else named_time,
        seconds=float(seconds) if isinstance(seconds, int | float) else None,
        failure_reason=str(record.get("failure_reason", "")),
    )
