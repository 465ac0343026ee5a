"""`execute` parity: Processing, script-mode Training, Model, Transform, Condition on a property file, a
Fail branch and RegisterModel, in one definition rendered with the SageMaker SDK; and the clear error for
a built-in algorithm image."""

from __future__ import annotations

import json
import tarfile

import pytest
from sagemaker import image_uris
from sagemaker.estimator import Estimator
from sagemaker.inputs import TrainingInput
from sagemaker.model import Model
from sagemaker.transformer import Transformer
from sagemaker.workflow.condition_step import ConditionStep
from sagemaker.workflow.conditions import ConditionGreaterThanOrEqualTo
from sagemaker.workflow.execution_variables import ExecutionVariables
from sagemaker.workflow.fail_step import FailStep
from sagemaker.workflow.functions import Join, JsonGet
from sagemaker.workflow.model_step import ModelStep
from sagemaker.workflow.parameters import ParameterInteger
from sagemaker.workflow.properties import PropertyFile
from sagemaker.workflow.steps import TrainingStep, TransformStep
from test_execute_support import (
    BUCKET,
    ROLE,
    execute,
    object_text,
    processing_step,
    render,
    script_estimator,
    source_bundle,
    steps_of,
    write_script,
)

PREPARE = """
import json, pathlib
numbers = pathlib.Path("/opt/ml/processing/input/input.csv").read_text().split()
pathlib.Path("/opt/ml/processing/train/data.csv").write_text("\\n".join(numbers) + "\\n")
report = {"count": len(numbers), "sum": sum(float(n) for n in numbers)}
pathlib.Path("/opt/ml/processing/report/report.json").write_text(json.dumps(report))
"""
TRAIN = """
import argparse, json, os, pathlib
parser = argparse.ArgumentParser()
parser.add_argument("--factor", type=float)
parser.add_argument("--label")
args = parser.parse_args()
model = pathlib.Path(os.environ["SM_MODEL_DIR"])
(model / "factor.txt").write_text(str(args.factor))
seen = {k: v for k, v in os.environ.items() if k.startswith("SM_")}
seen["label"] = args.label
seen["train_files"] = sorted(os.listdir(os.environ["SM_CHANNEL_TRAIN"]))
(model / "seen.json").write_text(json.dumps(seen))
"""
SERVE = """
import os, pathlib
from http.server import BaseHTTPRequestHandler, HTTPServer
factor = float(pathlib.Path(os.environ["SAGEMAKER_BASE_DIR"], "model", "factor.txt").read_text())
class Handler(BaseHTTPRequestHandler):
    def _answer(self, code, body):
        self.send_response(code)
        self.send_header("Content-Type", "text/csv")
        self.end_headers()
        self.wfile.write(body)
    def do_GET(self):
        self._answer(200 if self.path == "/ping" else 404, b"")
    def do_POST(self):
        if self.headers["Content-Type"] != "text/csv":
            return self._answer(415, b"text/csv only")
        rows = self.rfile.read(int(self.headers["Content-Length"])).decode().split()
        self._answer(200, "\\n".join(str(float(r) * factor) for r in rows).encode())
    def log_message(self, *args):
        pass
HTTPServer(("127.0.0.1", int(os.environ["SAGEMAKER_BIND_TO_PORT"])), Handler).serve_forever()
"""
# ModelStep builds on the SDK's own deprecated CreateModelStep.
pytestmark = pytest.mark.filterwarnings("ignore:We are deprecating the use of CreateModelStep")
SERVE_IMAGE = "111122223333.dkr.ecr.us-east-1.amazonaws.com/parity-serve:1"


def _train_step(session, train_uri) -> TrainingStep:
    estimator = script_estimator(session, {"factor": 2, "label": "parity"})
    return TrainingStep("Train", step_args=estimator.fit({"train": TrainingInput(train_uri)}))


def _transform_step(session, model_name, data_uri) -> TransformStep:
    transformer = Transformer(
        model_name=model_name,
        instance_count=1,
        instance_type="ml.m5.large",
        output_path=f"{BUCKET}/predictions/",
        accept="text/csv",
        assemble_with="Line",
        sagemaker_session=session,
    )
    step_args = transformer.transform(data=data_uri, content_type="text/csv", split_type="Line")
    return TransformStep("Predict", step_args=step_args)


def _register_args(model: Model):
    return model.register(
        content_types=["text/csv"],
        response_types=["text/csv"],
        inference_instances=["ml.m5.large"],
        transform_instances=["ml.m5.large"],
        model_package_group_name="parity-models",
        approval_status="Approved",
    )


def _pipeline(session) -> list:
    report = PropertyFile(name="Report", output_name="report", path="report.json")
    run_prefix = Join(on="/", values=[BUCKET, "runs", ExecutionVariables.PIPELINE_EXECUTION_ID, "train"])
    prepare = processing_step(
        session,
        "Prepare",
        "prepare.py",
        inputs=[(f"{BUCKET}/data/input.csv", "input")],
        outputs=[("train", run_prefix), ("report", f"{BUCKET}/reports")],
        property_files=[report],
    )
    train_uri = prepare.properties.ProcessingOutputConfig.Outputs["train"].S3Output.S3Uri
    train = _train_step(session, train_uri)
    model_data = train.properties.ModelArtifacts.S3ModelArtifacts
    model = Model(image_uri=SERVE_IMAGE, model_data=model_data, role=ROLE, sagemaker_session=session)
    create = ModelStep("Model", step_args=model.create(instance_type="ml.m5.large"))
    transform = _transform_step(session, create.properties.ModelName, train_uri)
    count = JsonGet(step_name="Prepare", property_file=report, json_path="count")
    gate = ConditionStep(
        "EnoughRows",
        conditions=[ConditionGreaterThanOrEqualTo(left=count, right=ParameterInteger("MinRows", 3))],
        if_steps=[ModelStep("Register", step_args=_register_args(model))],
        else_steps=[FailStep("TooFew", error_message=Join(on=" ", values=["only", count, "rows"]))],
        depends_on=[transform],
    )
    return [prepare, train, create, transform, gate]


@pytest.fixture
def job_options(tmp_path) -> list[str]:
    (tmp_path / "input.csv").write_text("1\n2\n3\n4\n")
    bundle = source_bundle(tmp_path, {"train.py": TRAIN})
    return [
        "--object",
        f"{BUCKET}/data/input.csv={tmp_path / 'input.csv'}",
        "--object",
        write_script(tmp_path, "prepare.py", PREPARE),
        "--object",
        f"{BUCKET}/code/sourcedir.tar.gz={bundle}",
        "--serve",
        f"parity-serve=python3 {tmp_path / 'serve.py'}",
    ]


def test_a_foreign_definition_runs_its_jobs_and_takes_the_condition_branch(tmp_path, job_options):
    (tmp_path / "serve.py").write_text(SERVE)
    definition = render(_pipeline, parameters=[ParameterInteger("MinRows", 3)])
    assert {s["Type"] for s in definition["Steps"]} == {
        "Processing",
        "Training",
        "Model",
        "Transform",
        "Condition",
    }

    code, record = execute(tmp_path, definition, *job_options)

    steps = steps_of(record)
    assert code == 0, record["failure_reason"]
    assert {n: s["status"] for n, s in steps.items()} == {
        "Prepare": "Succeeded",
        "Train": "Succeeded",
        "Model-CreateModel": "Succeeded",
        "Predict": "Succeeded",
        "EnoughRows": "Succeeded",
        "Register-RegisterModel": "Succeeded",
        "TooFew": "NotExecuted",
    }
    assert steps["EnoughRows"]["properties"]["Outcome"] == "True"
    # Join with the execution id: the output went where the expression said.
    run_uri = f"{BUCKET}/runs/{record['execution_id']}/train"
    assert (
        steps["Prepare"]["properties"]["ProcessingOutputConfig"]["Outputs"]["train"]["S3Output"]["S3Uri"]
        == run_uri
    )
    assert object_text(tmp_path, f"{run_uri}/data.csv").split() == ["1", "2", "3", "4"]
    # Script mode: hyperparameters as arguments and SM_* variables, as the training toolkit passes them.
    model_uri = steps["Train"]["properties"]["ModelArtifacts"]["S3ModelArtifacts"]
    with tarfile.open(tmp_path / "work" / "s3" / model_uri.removeprefix("s3://")) as bundle:
        seen = json.load(bundle.extractfile("seen.json"))
    assert seen["label"] == "parity" and seen["SM_HP_FACTOR"] == "2"
    assert json.loads(seen["SM_CHANNELS"]) == ["train"] and seen["train_files"] == ["data.csv"]
    assert seen["SM_CURRENT_HOST"] == "algo-1"
    # Transform through the serving command: one answer per input line, assembled by line.
    predictions = object_text(tmp_path, f"{BUCKET}/predictions/data.csv.out").split()
    assert [float(p) for p in predictions] == [2.0, 4.0, 6.0, 8.0]
    assert steps["Register-RegisterModel"]["properties"]["ModelPackageArn"].endswith("parity-models/1")


def test_the_else_branch_fails_with_the_joined_message(tmp_path, job_options):
    (tmp_path / "serve.py").write_text(SERVE)
    definition = render(_pipeline, parameters=[ParameterInteger("MinRows", 3)])

    code, record = execute(tmp_path, definition, *job_options, "--param", "MinRows=10")

    steps = steps_of(record)
    assert code == 3
    assert steps["TooFew"]["status"] == "Failed" and steps["TooFew"]["failure_reason"] == "only 4 rows"
    assert steps["Register-RegisterModel"]["status"] == "NotExecuted"


def test_a_transform_without_a_serving_command_names_the_image(tmp_path, job_options):
    definition = render(_pipeline, parameters=[ParameterInteger("MinRows", 3)])
    options = job_options[:-2]  # no --serve

    code, record = execute(tmp_path, definition, *options)

    assert code == 1
    reason = steps_of(record)["Predict"]["failure_reason"]
    assert f"no serving command for image {SERVE_IMAGE}" in reason and "--serve parity-serve=" in reason


def test_a_built_in_algorithm_image_is_refused_by_name(tmp_path):
    image = image_uris.retrieve("xgboost", "us-east-1", "1.7-1")

    def build(session) -> list:
        estimator = Estimator(
            image_uri=image,
            role=ROLE,
            instance_count=1,
            instance_type="ml.m5.large",
            output_path=f"{BUCKET}/models/",
            sagemaker_session=session,
            hyperparameters={"num_round": 10},
        )
        return [TrainingStep("Xgb", step_args=estimator.fit({"train": TrainingInput(f"{BUCKET}/data/")}))]

    code, record = execute(tmp_path, render(build))

    assert code == 1
    reason = steps_of(record)["Xgb"]["failure_reason"]
    assert f"the built-in algorithm image {image}" in reason and "script mode" in reason


def test_a_rejected_invocation_fails_the_transform_with_the_answer(tmp_path, job_options):
    (tmp_path / "serve.py").write_text(SERVE)
    definition = render(_pipeline, parameters=[ParameterInteger("MinRows", 3)])
    predict = next(step for step in definition["Steps"] if step["Name"] == "Predict")
    predict["Arguments"]["TransformInput"]["ContentType"] = "application/json"

    code, record = execute(tmp_path, definition, *job_options)

    predict = steps_of(record)["Predict"]
    assert code == 1 and predict["properties"]["TransformJobStatus"] == "Failed"
    assert (
        predict["failure_reason"] == "ClientError: POST /invocations for data.csv answered 415: text/csv only"
    )
