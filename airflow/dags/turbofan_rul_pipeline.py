"""Airflow DAG `turbofan_rul_pipeline`: start the project's SageMaker pipeline and wait, or run it locally.

Triggered by hand or by another DAG (no schedule: the deployed pipeline has its own EventBridge schedule).
`resolve_run` turns the run's params into a plan; `choose_mode` branches on the `mode` param. In `aws` mode
the pipeline name and region come from the CDK app's settings (`settings.load_settings` over the `cdk.json`
context, or the `settings_file` param: the file given to `cdk deploy -c settings_file=...`),
`check_parameters` checks the run's parameters against the deployed definition (DescribePipeline, the same
check as `python -m pipeline_steps start`) and `start_pipeline`, the Amazon provider's
`SageMakerStartPipelineOperator`, starts an execution that `wait_for_pipeline` (`SageMakerPipelineSensor`)
polls until it ends (a failed execution fails the sensor). In `local` mode `run_local` runs `python -m
local_runner run` with the same parameters in the project's own virtual environment, offline. The parameter
params are spelled as the pipeline's parameters (`pipeline_steps.names`). The repository root must be
importable (on `PYTHONPATH`): the DAG reads the settings module and the shared names from it, and fails to
parse with a message saying so otherwise.
"""

from __future__ import annotations

import re
import shlex
from pathlib import Path
from typing import Any

from airflow.providers.amazon.aws.hooks.sagemaker import SageMakerHook
from airflow.providers.amazon.aws.operators.sagemaker import SageMakerStartPipelineOperator
from airflow.providers.amazon.aws.sensors.sagemaker import SageMakerPipelineSensor
from airflow.sdk import DAG, Param, task

try:
    import settings
    from pipeline_steps import names
    from pipeline_steps.aws_parameters import build_request, declared_parameters
    from pipeline_steps.aws_target import context_values
except ImportError as error:  # the DAG folder is on sys.path, the repository root is not by default
    raise ImportError(
        f"turbofan_rul_pipeline needs the turbofan repository root on PYTHONPATH ({error}); e.g. "
        "export PYTHONPATH=/path/to/repo before starting Airflow (on MWAA, ship settings.py and "
        "pipeline_steps/ with the DAGs)"
    ) from error

DAG_ID = "turbofan_rul_pipeline"
REPO_ROOT = Path(settings.__file__).resolve().parent
MODES = ("aws", "local")
# The DAG params that become pipeline parameters, in the order they are passed.
PIPELINE_PARAMS = (
    names.DATA_VERSION,
    names.TUNING_MAX_JOBS,
    names.TUNING_MAX_PARALLEL_JOBS,
)
POLL_SECONDS = 60
# The sensor's limit: settings.pipeline.max_runtime_minutes bounds each job, nothing bounds the whole run.
TIMEOUT_SECONDS = 12 * 3600
# PipelineExecutionDisplayName: letters, digits and dashes, starting and ending with a letter or digit.
DISPLAY_NAME_LENGTH = 82


class RunPlanError(ValueError):
    """The run's params cannot make a run (the message names the param and the value)."""


def display_name(run_id: str) -> str:
    """A valid PipelineExecutionDisplayName for the Airflow run `run_id` (dashes for other characters)."""
    return re.sub(r"[^A-Za-z0-9]+", "-", f"airflow-{run_id}").strip("-")[:DISPLAY_NAME_LENGTH].rstrip("-")


def pipeline_assignments(params: dict[str, Any]) -> list[tuple[str, str]]:
    """(Name, Value) pairs of the pipeline parameters the run sets: Subset, the set ones, then extras."""
    pairs = [(names.SUBSET, str(params[names.SUBSET]))]
    pairs += [(name, str(params[name])) for name in PIPELINE_PARAMS if params.get(name) is not None]
    pairs += [(str(name), str(value)) for name, value in (params.get("extra_parameters") or {}).items()]
    return pairs


def aws_plan(params: dict[str, Any], cdk_json: Path) -> dict[str, Any]:
    """Pipeline name and region from the settings the stacks were deployed with, and the parameters."""
    context_settings, context_file = context_values(cdk_json)
    settings_file = params.get("settings_file") or context_file
    try:
        loaded = settings.load_settings(context_settings, settings_file)
    except settings.SettingsError as error:
        raise RunPlanError(f"settings_file {settings_file!r}: {error}") from error
    if loaded.aws.account == settings.PLACEHOLDER_ACCOUNT:
        raise RunPlanError(
            f"the settings name the placeholder account {settings.PLACEHOLDER_ACCOUNT}: set the param "
            "settings_file to the settings the stacks were deployed with"
        )
    family = params.get(names.MODEL_FAMILY)
    if family is not None and family != loaded.pipeline.model_family:
        raise RunPlanError(
            f"{names.MODEL_FAMILY} {family!r}: the deployed pipeline tunes {loaded.pipeline.model_family!r} "
            "(chosen at deploy time by settings.pipeline.model_family); leave it unset in aws mode"
        )
    return {
        "pipeline": loaded.names.pipeline,
        "region": loaded.aws.region,
        "assignments": pipeline_assignments(params),
    }


def local_command(params: dict[str, Any], repo_root: Path) -> str:
    """The `python -m local_runner run ...` command line, each value shell-quoted."""
    python = Path(params.get("project_python") or repo_root / ".venv" / "bin" / "python")
    if not python.is_file():
        raise RunPlanError(
            f"project_python {str(python)!r} does not exist: create the project's venv (make run) or set "
            "the param project_python"
        )
    argv = [str(python), "-m", "local_runner", "run", "--subset", str(params[names.SUBSET])]
    argv += ["--work-dir", str(repo_root / params["work_dir"])]
    if params.get("data_dir"):
        argv += ["--data-dir", str(params["data_dir"])]
    else:
        argv += ["--units", str(params["units"])]
    if not params["tracking"]:
        argv.append("--no-tracking")
    if params.get(names.MODEL_FAMILY) is not None:
        argv += ["--param", f"{names.MODEL_FAMILY}={params[names.MODEL_FAMILY]}"]
    for name, value in pipeline_assignments(params)[1:]:
        argv += ["--param", f"{name}={value}"]
    return shlex.join(argv)


def plan_run(params: dict[str, Any], run_id: str, repo_root: Path = REPO_ROOT) -> dict[str, Any]:
    """Everything the later tasks need; the keys are the same in both modes (None where unused)."""
    plan: dict[str, Any] = {"mode": params["mode"], "pipeline": None, "region": None, "assignments": []}
    plan["display_name"] = display_name(run_id)
    plan["command"] = None
    if params["mode"] == "aws":
        plan.update(aws_plan(params, repo_root / "cdk.json"))
    elif params["mode"] == "local":
        plan["command"] = local_command(params, repo_root)
    else:
        raise RunPlanError(f"mode {params['mode']!r} is not one of {', '.join(MODES)}")
    return plan


def _nullable(kind: str, description: str, **schema: Any) -> Param:
    return Param(None, type=["null", kind], description=description, **schema)


def dag_params() -> dict[str, Param]:
    """The DAG's params: the mode, the pipeline parameters and each mode's settings, with their checks."""
    return {
        "mode": Param("aws", enum=list(MODES), description="aws: the deployed pipeline; local: local_runner"),
        names.SUBSET: Param(names.SUBSETS[0], enum=list(names.SUBSETS), description="C-MAPSS subset"),
        names.MODEL_FAMILY: _nullable(
            "string", "local only (aws: the deployed family)", enum=[None, *names.MODEL_FAMILIES]
        ),
        names.DATA_VERSION: _nullable("string", "content hash keying the step cache", minLength=1),
        names.TUNING_MAX_JOBS: _nullable("integer", "tuning trials", minimum=1, maximum=50),
        names.TUNING_MAX_PARALLEL_JOBS: _nullable("integer", "trials at once", minimum=1, maximum=10),
        "extra_parameters": Param({}, type="object", description="other pipeline parameters, Name: Value"),
        "settings_file": _nullable("string", "aws: settings file the stacks were deployed with"),
        "aws_conn_id": Param("aws_default", type="string", description="aws: Airflow connection"),
        "project_python": _nullable("string", "local: interpreter (default <repo>/.venv/bin/python)"),
        "work_dir": Param(".work/airflow", type="string", description="local: work folder under the repo"),
        "data_dir": _nullable("string", "local: folder with train_<subset>.txt (default synthetic)"),
        "units": Param(100, type="integer", minimum=4, description="local: synthetic training units"),
        "tracking": Param(True, type="boolean", description="local: track the run in MLflow"),
    }


@task(multiple_outputs=True)
def resolve_run(params: dict[str, Any] | None = None, run_id: str | None = None) -> dict[str, Any]:
    """The run's plan (mode, pipeline, region, display name, assignments, local command) from its params."""
    return plan_run(dict(params or {}), run_id or "manual")


@task.branch
def choose_mode(mode: str) -> str:
    """The id of the task the `mode` param selects: `check_parameters` for aws, `run_local` for local."""
    return "check_parameters" if mode == "aws" else "run_local"


@task
def check_parameters(pipeline: str, region: str, assignments: list, params: dict | None = None) -> dict:
    """The run's parameters checked against the deployed definition, as the operator's Name: Value dict."""
    hook = SageMakerHook(aws_conn_id=(params or {}).get("aws_conn_id"), region_name=region)
    definition = hook.conn.describe_pipeline(PipelineName=pipeline)["PipelineDefinition"]
    pairs = [(str(name), str(value)) for name, value in assignments]
    request = build_request(pairs, declared_parameters(definition), pipeline)
    return {item["Name"]: item["Value"] for item in request}


@task.bash(append_env=True, cwd=str(REPO_ROOT))
def run_local(command: str) -> str:
    """The `local_runner` command line that the bash task runs in the repository root."""
    return command


def build_dag() -> DAG:
    """The `turbofan_rul_pipeline` DAG: plan, branch on the mode, then start and wait or run locally."""
    with DAG(
        dag_id=DAG_ID,
        description="Train, evaluate and register the turbofan RUL model (SageMaker or local runner)",
        schedule=None,
        catchup=False,
        params=dag_params(),
        tags=["turbofan-rul", "sagemaker"],
    ) as dag:
        plan = resolve_run()
        branch = choose_mode(plan["mode"])
        checked = check_parameters(plan["pipeline"], plan["region"], plan["assignments"])
        start = SageMakerStartPipelineOperator(
            task_id="start_pipeline",
            pipeline_name=plan["pipeline"],
            display_name=plan["display_name"],
            pipeline_params=checked,
            region_name=plan["region"],
            aws_conn_id="{{ params.aws_conn_id }}",
        )
        # A sensor rather than the operator's own wait: in reschedule mode it frees its worker slot
        # between polls (a pipeline runs for an hour or more), and its first poke needs no sleep.
        wait = SageMakerPipelineSensor(
            task_id="wait_for_pipeline",
            pipeline_exec_arn=start.output,
            region_name=plan["region"],
            aws_conn_id="{{ params.aws_conn_id }}",
            mode="reschedule",
            poke_interval=POLL_SECONDS,
            timeout=TIMEOUT_SECONDS,
            verbose=False,  # its step listing calls ListPipelineExecutionSteps on every poke
        )
        branch >> [checked, run_local(plan["command"])]
        checked >> start >> wait
    return dag


dag = build_dag()
