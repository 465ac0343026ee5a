"""Names of the batch-scoring pipeline shared by its builder, the entry script, the runner and the tests.

The third SageMaker pipeline scores every engine of the fleet once a day with the model in service and
ranks them for inspection. This module holds its step, parameter, channel and output names, the container
paths its job reads and writes, the files it leaves under `s3://<artifacts>/batch/<execution id>/` and
the bounds of the maintenance threshold. The entry script (`containers/batch_score.py`) cannot import
this package, so it spells the file names and the bounds again; a test keeps them equal.
"""

from __future__ import annotations

from pipeline_steps.names import CODE_INPUT, LIBRARY_INPUT, PROCESSING_INSTANCE_TYPE, PROCESSING_ROOT
from settings.names import ResourceNames

SCORE_STEP = "ScoreFleet"
STEP_NAMES = (SCORE_STEP,)

# Pipeline parameters.
FLEET_DATA_URI = "FleetDataUri"
CHAMPION_URI = "ChampionUri"
MAINTENANCE_THRESHOLD_CYCLES = "MaintenanceThresholdCycles"
PARAMETER_NAMES = (FLEET_DATA_URI, CHAMPION_URI, MAINTENANCE_THRESHOLD_CYCLES, PROCESSING_INSTANCE_TYPE)
MAX_THRESHOLD_CYCLES = 1000

# Channels and container paths (the defaults of containers/batch_score.py).
FLEET_INPUT = "fleet"
CHAMPION_INPUT = "champion"
FLEET_PATH = f"{PROCESSING_ROOT}/input/{FLEET_INPUT}"
CHAMPION_PATH = f"{PROCESSING_ROOT}/input/{CHAMPION_INPUT}"
SCORES_OUTPUT = "scores"
SCORES_PATH = f"{PROCESSING_ROOT}/output"
INPUT_NAMES = (FLEET_INPUT, CHAMPION_INPUT, LIBRARY_INPUT, CODE_INPUT)

BATCH_SCRIPT = "batch_score.py"
PREDICTIONS_FILE = "fleet_predictions.csv"
MAINTENANCE_FILE = "maintenance_list.csv"
SUMMARY_FILE = "summary.json"
OUTPUT_FILES = (PREDICTIONS_FILE, MAINTENANCE_FILE, SUMMARY_FILE)

# Key prefixes: the fleet's recent cycles in the data bucket, the outputs in the artifacts bucket.
FLEET_PREFIX = ResourceNames.fleet_prefix
OUTPUT_PREFIX = ResourceNames.batch_prefix
