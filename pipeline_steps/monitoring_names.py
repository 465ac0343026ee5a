"""Names of the monitoring pipeline shared by its builder, the window entry script, the runner and the tests.

Step, parameter, channel and output names of the second SageMaker pipeline (drift and late-label model
quality over the captures of the last window), the container paths its jobs read and write, the metrics
file the jobs leave in their report output (read back and published to CloudWatch by the
`publish_monitoring_metrics` function) and the sentinel of `WindowEnd` that means "the hour the execution
started in". The window entry script (`containers/monitoring_window.py`) cannot import this package, so it
spells the sentinel and the job names again; a test keeps them equal.
"""

from __future__ import annotations

from lambdas.common.pipeline_names import METRICS_FILE as METRICS_FILE
from pipeline_steps.names import CODE_INPUT, LIBRARY_INPUT, PROCESSING_INSTANCE_TYPE, PROCESSING_ROOT

# Steps; they run side by side, so a failure of one (no labels, no requests) does not hide the other.
DRIFT_STEP = "DriftCheck"
QUALITY_STEP = "ModelQualityCheck"
STEP_NAMES = (DRIFT_STEP, QUALITY_STEP)

# Pipeline parameters.
CAPTURE_DATA_URI = "CaptureDataUri"
BASELINE_URI = "BaselineUri"
GROUND_TRUTH_URI = "GroundTruthUri"
ENDPOINT_NAME = "EndpointName"
WINDOW_HOURS = "WindowHours"
WINDOW_END = "WindowEnd"
PARAMETER_NAMES = (
    CAPTURE_DATA_URI,
    BASELINE_URI,
    GROUND_TRUTH_URI,
    ENDPOINT_NAME,
    WINDOW_HOURS,
    WINDOW_END,
    PROCESSING_INSTANCE_TYPE,
)
# WindowEnd's default: the window ends at the start of the hour the execution started in (its own clock).
WINDOW_END_AT_EXECUTION_HOUR = "ExecutionHour"
MAX_WINDOW_HOURS = 168

# Channels and container paths (the defaults of containers/drift.py and containers/model_quality.py).
CAPTURES_INPUT = "captures"
BASELINE_INPUT = "baseline"
GROUND_TRUTH_INPUT = "ground_truth"
CAPTURES_PATH = f"{PROCESSING_ROOT}/input/{CAPTURES_INPUT}"
BASELINE_PATH = f"{PROCESSING_ROOT}/input/{BASELINE_INPUT}"
GROUND_TRUTH_PATH = f"{PROCESSING_ROOT}/input/{GROUND_TRUTH_INPUT}"
REPORT_OUTPUT = "report"
REPORT_PATH = f"{PROCESSING_ROOT}/output"
INPUT_NAMES = {
    DRIFT_STEP: (CAPTURES_INPUT, BASELINE_INPUT, LIBRARY_INPUT, CODE_INPUT),
    QUALITY_STEP: (CAPTURES_INPUT, GROUND_TRUTH_INPUT, LIBRARY_INPUT, CODE_INPUT),
}

# The entry script and the jobs it runs (containers/monitoring_window.py).
WINDOW_SCRIPT = "monitoring_window.py"
DRIFT_JOB = "drift"
QUALITY_JOB = "quality"
JOB_OF_STEP = {DRIFT_STEP: DRIFT_JOB, QUALITY_STEP: QUALITY_JOB}
# PutMetricData requests, one JSON object per line, that each job writes into its report output.
DRIFT_REPORT_FILE = "drift_report.json"
QUALITY_REPORT_FILE = "model_quality_report.json"

# The ground-truth prefix is never empty (an empty processing input fails the job): it holds this file.
GROUND_TRUTH_PLACEHOLDER = "README.txt"
GROUND_TRUTH_PLACEHOLDER_TEXT = (
    "Failure labels of the fleet, read by the monitoring pipeline's ModelQualityCheck: CSV (unit,"
    " failure_cycle[, event_time]), JSON or JSON Lines files.\n"
)

# Where the in-service model's drift baselines are copied on approval (under the champion prefix).
BASELINES_FOLDER = "baselines/"
STATISTICS_FILE = "statistics.json"
CONSTRAINTS_FILE = "constraints.json"
