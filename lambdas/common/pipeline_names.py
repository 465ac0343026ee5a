"""The pipeline's names that the functions read: parameters, outputs and files.

The functions' asset holds only `lambdas/`, so these spellings live here and `pipeline_steps.names` and
`pipeline_steps.monitoring_names` import them from here. Standard library only.
"""

from __future__ import annotations

# Pipeline parameters the start function sets.
INPUT_DATA_URI = "InputDataUri"
# Content hash of the input data (rul.lineage's data version), computed by whoever starts a run.
DATA_VERSION = "DataVersion"
# The DataVersion of the newest registered model package: equal data, nothing to register.
REGISTERED_DATA_VERSION = "RegisteredDataVersion"
# CustomerMetadataProperties key of a registered package holding the DataVersion it was trained on.
DATA_VERSION_METADATA_KEY = "DataVersion"
# EvaluateModel's output and file, which the metrics function reads after each execution.
EVALUATION_OUTPUT = "evaluation"
EVALUATION_FILE = "evaluation.json"
# The monitoring jobs' metric lines, which the metrics function publishes.
METRICS_FILE = "metrics.jsonl"
