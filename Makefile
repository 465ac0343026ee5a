# Two commands set everything up on a fresh machine:
#   make run    creates .venv, installs the runtime set, renders the SageMaker pipeline definition and runs
#               it locally (the main job) on the embedded synthetic default
#   make test   installs the dev set and the CDK CLI, then runs lint, format check and the test suite
#               (`make test-long` runs the end-to-end checks of minutes each; CI runs both)
# DATA_DIR=../shared/data/cmapss SUBSET=FD004 make run   runs the main job on real C-MAPSS files instead.

PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
export npm_config_update_notifier := false
export CDK_DISABLE_CLI_TELEMETRY := true
export JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION := 20
# `python -m local_runner` and `python -m pipeline_steps` silence the SDK themselves (local_runner/quiet.py);
# these two stay for what imports the SDK directly: the tests, `cdk synth` (app.py), authz, the dashboard.
export SAGEMAKER_SUPPRESS_V2_WARNING := 1
# `import sagemaker` probes the EC2 instance-metadata endpoint for credentials; offline there is none.
export AWS_EC2_METADATA_DISABLED := true

.PHONY: run test test-long chaos dashboard airflow-test airflow-test-long lint format bench synth clean ui demo authz

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip

$(VENV)/.runtime: requirements.txt | $(BIN)/python
	$(BIN)/pip install --quiet -r requirements.txt
	touch $@

$(VENV)/.dev: requirements.txt requirements-dev.txt | $(BIN)/python
	$(BIN)/pip install --quiet -r requirements-dev.txt
	touch $@ $(VENV)/.runtime

node_modules/.installed: package.json package-lock.json
	npm ci --no-audit --no-fund --loglevel=error
	touch $@

run: $(VENV)/.runtime
	$(BIN)/python -m local_runner run $(if $(DATA_DIR),--data-dir $(DATA_DIR)) $(if $(SUBSET),--subset $(SUBSET))

test: $(VENV)/.dev node_modules/.installed
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy
	$(BIN)/pytest -q -m "not long and not chaos"

# End-to-end checks of minutes each (the lifecycle demo, the deep families' pipeline runs, data versioning
# over three runs); CI runs them after `make test`.
test-long: $(VENV)/.dev node_modules/.installed
	$(BIN)/pytest -q -m long

# Fault injection: hostile clients, idle and slow connections, swaps under load, kills at step boundaries,
# concurrent registry commands, corrupt files (a small subset of each runs in `make test`).
chaos: $(VENV)/.dev node_modules/.installed
	$(BIN)/pytest -q -m chaos

# The whole lifecycle offline: train, approve, serve, drift, retrain, swap, reject, roll back (~4 minutes).
demo: $(VENV)/.runtime
	$(BIN)/python -m local_runner demo

# The operations dashboard on 127.0.0.1:$(DASHBOARD_PORT): SOURCE=local (WORK_DIR, default .work) or aws.
DASHBOARD_PORT ?= 8501
dashboard: $(VENV)/.runtime
	PYTHONPATH=. $(BIN)/streamlit run dashboard/app.py --server.address 127.0.0.1 --server.port $(DASHBOARD_PORT) --server.headless true --browser.gatherUsageStats false --client.toolbarMode viewer -- --source $(or $(SOURCE),local) $(if $(WORK_DIR),--work-dir $(WORK_DIR)) $(DASHBOARD_ARGS)

# The optional Airflow DAG (airflow/), in its own venv: Airflow's pins clash with ours. Not part of `make test`.
AIRFLOW_VENV := .venv-airflow

$(AIRFLOW_VENV)/.installed: airflow/requirements.txt airflow/constraints.txt
	$(PYTHON) -m venv $(AIRFLOW_VENV)
	$(AIRFLOW_VENV)/bin/pip install --quiet --upgrade pip
	$(AIRFLOW_VENV)/bin/pip install --quiet -r airflow/requirements.txt -c airflow/constraints.txt
	touch $@

airflow-test: $(AIRFLOW_VENV)/.installed $(VENV)/.runtime
	$(AIRFLOW_VENV)/bin/pytest -q airflow/tests -m "not long"

# The local mode end to end through Airflow (minutes).
airflow-test-long: $(AIRFLOW_VENV)/.installed $(VENV)/.runtime
	$(AIRFLOW_VENV)/bin/pytest -q airflow/tests -m long

# Who may approve, start, write models, decrypt, pass roles: read off the synthesized templates.
authz: $(VENV)/.runtime
	$(BIN)/python -m tools.authz_matrix --write-readme

ui: $(VENV)/.runtime
	$(BIN)/python -m local_runner ui $(if $(WORK_DIR),--work-dir $(WORK_DIR))

lint: $(VENV)/.dev
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

format: $(VENV)/.dev
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

bench: $(VENV)/.runtime
	$(BIN)/python bench/bench_models.py $(BENCH_ARGS)

synth: $(VENV)/.runtime node_modules/.installed
	node_modules/.bin/cdk synth --quiet

clean:
	rm -rf .work cdk.out .pytest_cache .ruff_cache .mypy_cache

# Static IaC scan of the synthesized templates with checkov, in its own venv (its pins clash with ours).
# Not part of `make test`; see README "Security" for the checks that are expected to fail and why.
SCAN_VENV := .venv-scan

$(SCAN_VENV)/.installed: requirements-scan.txt
	$(PYTHON) -m venv $(SCAN_VENV)
	$(SCAN_VENV)/bin/pip install --quiet --upgrade pip
	$(SCAN_VENV)/bin/pip install --quiet -r requirements-scan.txt
	touch $@

.PHONY: scan
scan: $(SCAN_VENV)/.installed $(VENV)/.runtime node_modules/.installed
	node_modules/.bin/cdk synth --quiet
	$(SCAN_VENV)/bin/checkov --quiet --compact --skip-download --framework cloudformation --directory cdk.out
