"""The standalone (BYOC) server of serve.py: the Flask app in-process, and the real gunicorn server."""

from __future__ import annotations

import http.client
import json
import os
import signal
import socket
import subprocess
import sys
import tarfile
import time
from pathlib import Path

import pytest

import serve
from rul.data import COLUMNS
from rul.errors import ConfigurationError

CONTAINERS = Path(__file__).resolve().parent.parent / "containers"
GOOD_ROW = ",".join(str(value) for value in [1, 1, 0.0, 0.0, 100.0, *range(21)])


@pytest.fixture(scope="session")
def good_body(serving_subset) -> str:
    return serving_subset.test[COLUMNS].to_csv(index=False, header=False)


@pytest.fixture(scope="session")
def client(model_dir):
    app = serve.create_app(serve.ServerSettings(model_dir=model_dir, max_bytes=400_000, max_rows=5_000))
    return app.test_client()


def assert_good(response, units: int = 10) -> dict:
    assert response.status_code == 200, response.get_data(as_text=True)
    document = response.get_json()
    assert len(document["predictions"]) == units
    return document


def test_ping_reports_the_loaded_model(client):
    response = client.get("/ping")
    assert response.status_code == 200
    assert response.get_json() == {"status": "healthy", "model_version": None, "model_family": "gbm"}


def test_csv_and_json_invocations(client, serving_subset, good_body):
    assert_good(client.post("/invocations", data=good_body, content_type="text/csv"))
    rows = serving_subset.test[COLUMNS].to_numpy().tolist()
    assert_good(client.post("/invocations", json={"instances": rows}))
    response = client.post(
        "/invocations", data=good_body, content_type="text/csv", headers={"Accept": "text/csv"}
    )
    assert response.status_code == 200 and response.content_type == "text/csv"
    assert response.get_data(as_text=True).startswith("unit,predicted_rul,cycles_used,padded")


BAD = [
    pytest.param(GOOD_ROW + ",9", "text/csv", {}, 400, "expected 26 columns", id="columns"),
    pytest.param(GOOD_ROW.replace("100.0", "x"), "text/csv", {}, 400, "is not a number", id="text"),
    pytest.param(GOOD_ROW.replace("100.0", "inf"), "text/csv", {}, 400, "is inf", id="inf"),
    pytest.param(GOOD_ROW, "application/x-npy", {}, 415, "not supported", id="type"),
    pytest.param("", "text/csv", {}, 400, "empty", id="empty"),
    pytest.param(GOOD_ROW + "\n" + GOOD_ROW, "text/csv", {}, 400, "follows", id="duplicate"),
    pytest.param('{"instances": 3}', "application/json", {}, 400, "must be a list", id="json"),
    pytest.param(GOOD_ROW, "text/csv", {"Accept": "image/png"}, 406, "accept", id="accept"),
    pytest.param("0" * 400_001, "text/csv", {}, 413, "limit is 400000", id="bytes"),
    pytest.param((GOOD_ROW + "\n") * 5_001, "text/csv", {}, 413, "limit is 5000", id="rows"),
]


@pytest.mark.parametrize(("body", "content_type", "headers", "status", "message"), BAD)
def test_bad_input_answers_4xx_json_then_a_good_request_succeeds(
    client, good_body, body, content_type, headers, status, message
):
    response = client.post("/invocations", data=body, content_type=content_type, headers=headers)
    assert response.status_code == status
    assert response.get_json()["status"] == status and message in response.get_json()["error"]
    assert_good(client.post("/invocations", data=good_body, content_type="text/csv"))


def test_a_server_fault_answers_500_with_a_message_and_the_server_keeps_going(client, good_body, monkeypatch):
    service = client.application.extensions["rul_service"]

    def broken(frame):
        raise RuntimeError("estimator exploded")

    with monkeypatch.context() as patch:
        patch.setattr(service.model.predictor, "predict_last", broken)
        response = client.post("/invocations", data=good_body, content_type="text/csv")
    assert response.status_code == 500
    assert response.get_json()["error"] == "internal error: RuntimeError: estimator exploded"
    assert_good(client.post("/invocations", data=good_body, content_type="text/csv"))


def test_unknown_routes_and_methods_answer_json(client):
    assert client.get("/nope").status_code == 404
    response = client.get("/invocations")
    assert response.status_code == 405 and response.get_json()["status"] == 405


def test_without_a_model_ping_and_invocations_answer_503(tmp_path):
    client = serve.create_app(serve.ServerSettings(model_dir=tmp_path / "model")).test_client()
    ping = client.get("/ping")
    assert ping.status_code == 503 and "no metadata.json" in ping.get_json()["error"]
    assert client.post("/invocations", data=GOOD_ROW, content_type="text/csv").status_code == 503


def test_settings_from_the_environment(tmp_path):
    settings = serve.ServerSettings.from_environment(
        {
            "SAGEMAKER_BASE_DIR": str(tmp_path),
            "SAGEMAKER_BIND_TO_PORT": "9000",
            "SAGEMAKER_MODEL_SERVER_WORKERS": "3",
            "RUL_CAPTURE_DIR": str(tmp_path / "capture"),
            "RUL_CAPTURE_PERCENTAGE": "12.5",
            "RUL_CAPTURE_SEED": "4",
        }
    )
    assert settings.model_dir == tmp_path / "model"
    assert (settings.port, settings.workers, settings.capture_percentage, settings.capture_seed) == (
        9000,
        3,
        12.5,
        4,
    )
    defaults = serve.ServerSettings.from_environment({})
    assert defaults.model_dir == Path("/opt/ml/model")
    assert (defaults.port, defaults.workers, defaults.capture_dir) == (8080, 2, None)


@pytest.mark.parametrize(
    ("name", "value", "message"),
    [
        ("SAGEMAKER_BIND_TO_PORT", "http", "is not an integer"),
        ("SAGEMAKER_MODEL_SERVER_WORKERS", "0", "outside"),
        ("RUL_CAPTURE_PERCENTAGE", "150", "outside"),
        ("RUL_MAX_REQUEST_BYTES", "99999999", "outside"),
    ],
)
def test_bad_settings_name_the_variable(name, value, message):
    with pytest.raises(ConfigurationError, match=f"{name}.*{message}"):
        serve.ServerSettings.from_environment({name: value})


# --- the real gunicorn server ----------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def request(port: int, method: str, path: str, body: str | None = None, content_type: str = "text/csv"):
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        headers = {"Content-Type": content_type} if body is not None else {}
        connection.request(method, path, body=body, headers=headers)
        response = connection.getresponse()
        return response.status, json.loads(response.read() or b"null")
    finally:
        connection.close()


def wait_for_ping(process: subprocess.Popen, port: int, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        assert process.poll() is None, "the server exited"
        try:
            if request(port, "GET", "/ping")[0] == 200:
                return
        except OSError:
            pass
        time.sleep(0.1)
    raise AssertionError("the server did not answer /ping")


@pytest.fixture()
def gunicorn_server(tmp_path, model_dir):
    """`serve.py serve` as SageMaker runs it, on a free port, with model.tar.gz in <base>/model."""
    (tmp_path / "model").mkdir()
    with tarfile.open(tmp_path / "model" / "model.tar.gz", "w:gz") as bundle:
        for path in model_dir.iterdir():
            bundle.add(path, arcname=path.name)
    port = free_port()
    environ = {
        **os.environ,
        "PYTHONPATH": str(CONTAINERS),
        "SAGEMAKER_BASE_DIR": str(tmp_path),
        "SAGEMAKER_BIND_TO_PORT": str(port),
        "SAGEMAKER_MODEL_SERVER_WORKERS": "2",
        "MODEL_VERSION": "11",
    }
    process = subprocess.Popen(
        [sys.executable, str(CONTAINERS / "serve.py"), "serve"],
        env=environ,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    try:
        wait_for_ping(process, port)
        yield process, port
    finally:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(20)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def test_gunicorn_serves_good_and_bad_requests(gunicorn_server, good_body):
    process, port = gunicorn_server
    status, document = request(port, "GET", "/ping")
    assert status == 200 and document["model_version"] == "11"
    for _ in range(3):
        assert request(port, "POST", "/invocations", good_body)[0] == 200
        status, document = request(port, "POST", "/invocations", GOOD_ROW + ",1")
        assert status == 400 and "expected 26 columns" in document["error"]
        assert request(port, "POST", "/invocations", GOOD_ROW, "text/plain")[0] == 415
    status, document = request(port, "POST", "/invocations", good_body)
    assert status == 200 and len(document["predictions"]) == 10
    assert process.poll() is None
