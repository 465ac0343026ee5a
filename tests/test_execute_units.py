"""Pure parts of `execute`: script-mode arguments and environment, transform payloads and serving commands,
lambda maps and outputs, the `/opt/ml` path shim, JsonGet on S3 URIs and the definition loader."""

from __future__ import annotations

import json
import re
import subprocess
import sys

import pytest

from local_runner.execute_cli import load_definition, stage_objects
from local_runner.expressions import Context, ExpressionError, resolve
from local_runner.graph import ExecutionError
from local_runner.object_store import ObjectStore
from local_runner.opt_ml_shim import shim_environment
from local_runner.script_mode import require_script_mode, script_arguments, toolkit_environment
from local_runner.step_lambda import find_handler, load_lambda_map, output_parameters
from local_runner.step_transform import payloads, serving_command

SDK_HYPERPARAMETERS = {
    "epochs": "3",
    "name": '"run one"',
    "sagemaker_program": '"train.py"',
    "sagemaker_submit_directory": '"s3://b/code/src.tar.gz"',
}


def test_script_mode_passes_user_hyperparameters_as_the_toolkit_does():
    assert script_arguments(SDK_HYPERPARAMETERS) == ["--epochs", "3", "--name", "run one"]
    environment = toolkit_environment(SDK_HYPERPARAMETERS, {"train": {}, "test": {}})
    assert environment["SM_HP_EPOCHS"] == "3" and environment["SM_HP_NAME"] == "run one"
    assert json.loads(environment["SM_CHANNELS"]) == ["test", "train"]
    assert environment["SM_USER_ENTRY_POINT"] == "train.py" and environment["SM_MODULE_NAME"] == "train"
    assert "SM_HP_SAGEMAKER_PROGRAM" not in environment


def test_only_script_mode_training_is_accepted():
    require_script_mode("T", {"TrainingImage": "x"}, SDK_HYPERPARAMETERS)
    with pytest.raises(ExecutionError, match="step T: training with the image acct/custom:1 runs"):
        require_script_mode("T", {"TrainingImage": "acct/custom:1"}, {"epochs": "3"})
    with pytest.raises(ExecutionError, match=r"built-in algorithm image .*/linear-learner:1"):
        require_script_mode(
            "T", {"TrainingImage": "382416733822.dkr.ecr.us-east-1.amazonaws.com/linear-learner:1"}, {}
        )


def test_transform_payloads_follow_split_type_and_batch_strategy():
    data = b"1\n2\n\n3\n"
    assert payloads(data, "None", "SingleRecord", 6) == [data]
    assert payloads(data, "Line", "SingleRecord", 6) == [b"1\n", b"2\n", b"3\n"]
    assert payloads(data, "Line", "MultiRecord", 6) == [b"1\n2\n3\n"]
    assert payloads(data, "Line", "MultiRecord", 4 / (1024 * 1024)) == [b"1\n2\n", b"3\n"]


def test_serving_commands_come_from_the_options_or_the_project_image():
    assert serving_command("acct.dkr.ecr.us-east-1.amazonaws.com/mine:2", {"mine": "python3 s.py --x 1"}) == [
        "python3",
        "s.py",
        "--x",
        "1",
    ]
    assert serving_command("acct.dkr.ecr.us-east-1.amazonaws.com/turbofan-rul:local", {})[-1] == "serve"
    with pytest.raises(ExecutionError, match="--serve other=COMMAND"):
        serving_command("acct.dkr.ecr.us-east-1.amazonaws.com/other:1", {})


def test_a_lambda_map_resolves_handlers_relative_to_its_file(tmp_path):
    (tmp_path / "h.py").write_text("def handle(event, context):\n    return {'n': event['n'] + 1}\n")
    (tmp_path / "map.json").write_text(json.dumps({"fn": "h.py:handle"}))
    handler = find_handler("arn:aws:lambda:us-east-1:1:function:fn", load_lambda_map(tmp_path / "map.json"))
    assert handler({"n": 1}, None) == {"n": 2}
    declared = [{"OutputName": "n", "OutputType": "Integer"}, {"OutputName": "ok", "OutputType": "Boolean"}]
    assert output_parameters(declared, {"n": "5", "ok": "true"}, "L") == {"n": 5, "ok": True}
    with pytest.raises(ExecutionError, match="L returned no output 'ok'"):
        output_parameters(declared, {"n": 5}, "L")
    (tmp_path / "bad.json").write_text(json.dumps({"fn": "no handler"}))
    with pytest.raises(ExecutionError, match="expected a JSON object of function ARN"):
        load_lambda_map(tmp_path / "bad.json")


def test_the_shim_maps_opt_ml_paths_of_a_python_job(tmp_path):
    script = "import pathlib, os; pathlib.Path('/opt/ml/out').mkdir(); open('/opt/ml/out/x', 'w').write('1')"
    environment = {"SAGEMAKER_BASE_DIR": str(tmp_path), **shim_environment({})}
    subprocess.run([sys.executable, "-c", script], env=environment, check=True)
    assert (tmp_path / "out" / "x").read_text() == "1"


def test_json_get_on_an_s3_uri_reads_the_object():
    objects = {"s3://b/r/report.json": '{"m": {"rmse": [3.5]}}'}

    def read(uri: str) -> str:
        if uri not in objects:
            raise LookupError(f"no S3 object {uri}")
        return objects[uri]

    context = Context({"P": "r"}, {"PipelineExecutionArn": "arn:p/pipe/execution/e1"}, read_object=read)
    uri = {"Std:Join": {"On": "/", "Values": ["s3://b", {"Get": "Parameters.P"}, "report.json"]}}
    assert resolve({"Std:JsonGet": {"S3Uri": uri, "Path": "m.rmse[0]"}}, context) == 3.5
    assert resolve({"Get": "Execution.PipelineArn"}, context) == "arn:p/pipe"
    with pytest.raises(ExpressionError, match="no S3 object s3://b/x"):
        resolve({"Std:JsonGet": {"S3Uri": "s3://b/x", "Path": "a"}}, context)


def test_a_definition_file_or_a_create_pipeline_request_is_loaded(tmp_path):
    definition = {"Version": "2020-12-01", "Steps": []}
    (tmp_path / "d.json").write_text(json.dumps(definition))
    assert load_definition(tmp_path / "d.json") == (definition, None)
    request = {
        "PipelineDefinition": json.dumps(definition),
        "ParallelismConfiguration": {"MaxParallelExecutionSteps": 4},
    }
    (tmp_path / "r.json").write_text(json.dumps(request))
    assert load_definition(tmp_path / "r.json") == (definition, 4)
    (tmp_path / "x.json").write_text("{}")
    with pytest.raises(ExecutionError, match="is not a pipeline definition"):
        load_definition(tmp_path / "x.json")


def test_objects_are_staged_as_a_key_or_a_prefix(tmp_path):
    (tmp_path / "folder" / "sub").mkdir(parents=True)
    (tmp_path / "folder" / "sub" / "a.csv").write_text("a")
    (tmp_path / "one.csv").write_text("1")
    store = ObjectStore(tmp_path / "s3")

    origins = stage_objects(
        store, [("s3://b/in", str(tmp_path / "folder")), ("s3://b/x/one.csv", str(tmp_path / "one.csv"))]
    )

    assert [relative for relative, _ in store.objects("s3://b/in/")] == ["sub/a.csv"]
    assert store.read_text("s3://b/x/one.csv") == "1" and origins["s3://b/in"] == tmp_path / "folder"
    with pytest.raises(ExecutionError, match="does not exist"):
        stage_objects(store, [("s3://b/y", str(tmp_path / "missing"))])


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("[1, 2]", "is not a pipeline definition (a JSON list)"),
        ('{"PipelineDefinition": 7}', "PipelineDefinition is not a JSON string"),
        ('{"PipelineDefinition": "{\\"Steps\\": "}', "PipelineDefinition is not a JSON string"),
        ('{"PipelineDefinition": "[]"}', "is not a pipeline definition (no Steps list)"),
        ('{"Steps": [], "ParallelismConfiguration": {"MaxParallelExecutionSteps": 0}}', "MaxParallel"),
        ('{"Steps": [], "ParallelismConfiguration": null}', None),
    ],
)
def test_a_definition_of_the_wrong_shape_is_named_not_a_traceback(tmp_path, text, problem):
    (tmp_path / "d.json").write_text(text)
    if problem is None:
        assert load_definition(tmp_path / "d.json") == ({"Steps": [], "ParallelismConfiguration": None}, None)
        return
    with pytest.raises(ExecutionError, match=re.escape(problem)):
        load_definition(tmp_path / "d.json")


@pytest.mark.parametrize(
    ("option", "problem"),
    [
        ("--max-parallel=0", "argument --max-parallel: 0 is below the minimum 1"),
        ("--max-parallel=two", "argument --max-parallel: 'two' is not an integer"),
        ("--callback-timeout=-1", "argument --callback-timeout: -1 is below the minimum 0"),
        ("--max-retry-wait=x", "argument --max-retry-wait: 'x' is not a number"),
    ],
)
def test_execute_options_out_of_range_are_usage_errors(tmp_path, capsys, option, problem):
    from local_runner.__main__ import main

    with pytest.raises(SystemExit) as done:
        main(["execute", str(tmp_path / "d.json"), option])
    assert done.value.code == 2 and capsys.readouterr().err.strip().endswith(problem)
