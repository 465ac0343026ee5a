"""The standalone (BYOC) server of serve.py: the ASGI app in-process, and the real gunicorn server."""

from __future__ import annotations

import asyncio
import http.client
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tarfile
import time
from pathlib import Path

import pytest

import serve
from pipeline_steps.code import CONTAINERS_DIR
from rul.data import COLUMNS
from rul.errors import ConfigurationError

GOOD_ROW = ",".join(str(value) for value in [1, 1, 0.0, 0.0, 100.0, *range(21)])


@pytest.fixture(scope="session")
def good_body(serving_subset) -> str:
    return serving_subset.test[COLUMNS].to_csv(index=False, header=False)


class Answer:
    """What the ASGI app sent for one request."""

    def __init__(self, messages: list[dict]):
        self.status_code = messages[0]["status"]
        self.headers = {name.decode(): value.decode() for name, value in messages[0]["headers"]}
        self.content_type = self.headers["content-type"]
        self.body = b"".join(message.get("body", b"") for message in messages[1:])

    def get_json(self):
        assert self.content_type == "application/json"
        return json.loads(self.body)

    def get_data(self, as_text: bool = False):
        return self.body.decode() if as_text else self.body


class Client:
    """Drives the ASGI app as uvicorn would, one request at a time, without a socket."""

    def __init__(self, app):
        self.application = app

    def request(self, method: str, path: str, data: str | bytes = b"", headers: dict | None = None):
        body = data.encode() if isinstance(data, str) else data
        raw_headers = [(name.lower().encode(), value.encode()) for name, value in (headers or {}).items()]
        raw_headers.append((b"content-length", str(len(body)).encode()))
        scope = {"type": "http", "method": method, "path": path, "headers": raw_headers}
        pending = [{"type": "http.request", "body": body, "more_body": False}]
        sent = []

        async def receive():
            return pending.pop(0) if pending else {"type": "http.disconnect"}

        async def send(message):
            sent.append(message)

        asyncio.run(self.application(scope, receive, send))
        return Answer(sent)

    def get(self, path: str):
        return self.request("GET", path)

    def post(self, path: str, data="", content_type=None, headers=None, json=None):
        if json is not None:
            data, content_type = globals()["json"].dumps(json), "application/json"
        headers = {**(headers or {}), **({"Content-Type": content_type} if content_type else {})}
        return self.request("POST", path, data, headers)


@pytest.fixture(scope="session")
def client(model_dir):
    app = serve.create_app(serve.ServerSettings(model_dir=model_dir, max_bytes=400_000, max_rows=5_000))
    return Client(app)


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
    service = client.application.service

    def broken(frame):
        raise RuntimeError("estimator exploded")

    with monkeypatch.context() as patch:
        patch.setattr(service.model.predictor, "predict_last", broken)
        response = client.post("/invocations", data=good_body, content_type="text/csv")
    assert response.status_code == 500
    assert response.get_json()["error"] == "internal error: RuntimeError: estimator exploded"
    assert_good(client.post("/invocations", data=good_body, content_type="text/csv"))


def test_unknown_routes_and_methods_answer_json(client):
    response = client.get("/nope")
    assert response.status_code == 404 and "no such path '/nope'" in response.get_json()["error"]
    response = client.get("/invocations")
    assert response.status_code == 405 and response.get_json()["status"] == 405
    assert client.request("POST", "/ping").status_code == 405


def test_an_invocation_is_captured_with_the_callers_inference_id(model_dir, tmp_path, good_body):
    client = Client(serve.create_app(serve.ServerSettings(model_dir=model_dir, capture_dir=tmp_path)))
    headers = {"Content-Type": "text/csv", "X-Amzn-SageMaker-Inference-Id": "caller-7"}
    assert_good(client.request("POST", "/invocations", good_body, headers))
    (record,) = [
        json.loads(line) for path in tmp_path.rglob("*.jsonl") for line in path.read_text().splitlines()
    ]
    assert record["eventMetadata"]["inferenceId"] == "caller-7"


def test_headers_over_the_setting_answer_431(model_dir):
    client = Client(serve.create_app(serve.ServerSettings(model_dir=model_dir, max_header_bytes=1024)))
    response = client.request("GET", "/ping", headers={"X-Big": "a" * 1100})
    assert response.status_code == 431 and "the limit is 1024" in response.get_json()["error"]
    assert client.get("/ping").status_code == 200


def test_a_content_length_over_the_limit_answers_413_before_the_body_is_read(client):
    scope = {"type": "http", "method": "POST", "path": "/invocations"}
    scope["headers"] = [(b"content-type", b"text/csv"), (b"content-length", b"400001")]
    sent = []

    async def receive():
        raise AssertionError("the body was read")

    async def send(message):
        sent.append(message)

    asyncio.run(client.application(scope, receive, send))
    answer = Answer(sent)
    assert answer.status_code == 413 and "limit is 400000" in answer.get_json()["error"]
    assert answer.headers["connection"] == "close"


def test_a_client_gone_before_its_body_ended_gets_no_prediction(model_dir, tmp_path):
    """A disconnect in the middle of a body: nothing is predicted, answered or captured."""
    app = serve.create_app(serve.ServerSettings(model_dir=model_dir, capture_dir=tmp_path))
    scope = {"type": "http", "method": "POST", "path": "/invocations"}
    scope["headers"] = [(b"content-type", b"text/csv"), (b"content-length", b"5000")]
    pending = [
        {"type": "http.request", "body": GOOD_ROW.encode(), "more_body": True},
        {"type": "http.disconnect"},
    ]
    sent = []

    async def receive():
        return pending.pop(0)

    async def send(message):
        sent.append(message)

    asyncio.run(app(scope, receive, send))
    assert sent == [] and list(tmp_path.rglob("*.jsonl")) == []


def test_a_body_slower_than_the_body_timeout_answers_408(model_dir):
    app = serve.create_app(serve.ServerSettings(model_dir=model_dir, body_timeout=1))
    scope = {"type": "http", "method": "POST", "path": "/invocations"}
    scope["headers"] = [(b"content-type", b"text/csv"), (b"content-length", b"5000")]
    sent = []

    async def receive():
        if not sent and not hasattr(receive, "called"):
            receive.called = True
            return {"type": "http.request", "body": b"1,1", "more_body": True}
        await asyncio.sleep(30)

    async def send(message):
        sent.append(message)

    started = time.monotonic()
    asyncio.run(app(scope, receive, send))
    answer = Answer(sent)
    assert answer.status_code == 408 and time.monotonic() - started < 5
    assert "(3 of 5000 bytes received)" in answer.get_json()["error"]


def test_the_service_follows_a_repointed_model_link_only_to_a_healthy_model(model_dir, tmp_path):
    good = tmp_path / "v2"
    shutil.copytree(model_dir, good)
    metadata = json.loads((good / "metadata.json").read_text())
    (good / "metadata.json").write_text(json.dumps({**metadata, "model_version": "2"}))
    broken = tmp_path / "v3"
    shutil.copytree(model_dir, broken)
    (broken / "estimator.joblib").unlink()
    link = tmp_path / "model"
    link.symlink_to(model_dir)
    service = serve.Service(serve.ServerSettings(model_dir=link))
    assert service.model.model_version is None and service.reload_if_moved() is False

    def repoint(target):
        (tmp_path / "next").symlink_to(target)
        os.replace(tmp_path / "next", link)

    repoint(good)
    assert service.reload_if_moved() is True and service.model.model_version == "2"
    repoint(broken)
    assert service.reload_if_moved() is False and service.model.model_version == "2"
    assert service.reload_if_moved() is False, "a refused model is not retried until the link moves"
    assert json.loads(service.ping()[1])["model_version"] == "2"


def test_without_a_model_ping_and_invocations_answer_503(tmp_path):
    client = Client(serve.create_app(serve.ServerSettings(model_dir=tmp_path / "model")))
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
    assert (defaults.host, defaults.port, defaults.workers, defaults.capture_dir) == (
        "0.0.0.0",
        8080,
        2,
        None,
    )
    assert (defaults.header_timeout, defaults.body_timeout, defaults.reload_seconds) == (10, 20, 0.0)
    local = serve.ServerSettings.from_environment(
        {"RUL_BIND_HOST": "127.0.0.1", "RUL_MODEL_RELOAD_SECONDS": "0.2"}
    )
    assert (local.host, local.reload_seconds) == ("127.0.0.1", 0.2)


@pytest.mark.parametrize(
    ("name", "value", "message"),
    [
        ("SAGEMAKER_BIND_TO_PORT", "http", "is not an integer"),
        ("SAGEMAKER_MODEL_SERVER_WORKERS", "0", "outside"),
        ("RUL_CAPTURE_PERCENTAGE", "150", "outside"),
        ("RUL_MAX_REQUEST_BYTES", "99999999", "outside"),
        ("RUL_BODY_TIMEOUT_SECONDS", "0", "outside"),
        ("RUL_MODEL_RELOAD_SECONDS", "soon", "is not a number"),
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
        "PYTHONPATH": str(CONTAINERS_DIR),
        "SAGEMAKER_BASE_DIR": str(tmp_path),
        "SAGEMAKER_BIND_TO_PORT": str(port),
        "SAGEMAKER_MODEL_SERVER_WORKERS": "2",
        "RUL_BIND_HOST": "127.0.0.1",
        "MODEL_VERSION": "11",
    }
    process = subprocess.Popen(
        [sys.executable, str(CONTAINERS_DIR / "serve.py"), "serve"],
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
