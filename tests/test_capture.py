"""Data capture (`rul.capture`): SageMaker's record layout and folders, sampling, writers, readers."""

from __future__ import annotations

import base64
import json
import multiprocessing
import re
from datetime import UTC, datetime, timedelta

import pandas as pd
import pytest

import serve
from rul.capture import (
    CaptureConfig,
    DataCapture,
    capture_record,
    decode_body,
    read_captures,
    read_window,
)
from rul.data import COLUMNS
from rul.errors import ConfigurationError, DataFormatError

MOMENT = datetime(2024, 5, 1, 12, 34, 56, 789000, tzinfo=UTC)
FILE_NAME = re.compile(r"^\d{2}-\d{2}-\d{3}-[0-9a-f-]{36}\.jsonl$")


def test_record_layout_matches_sagemaker():
    record = capture_record("1,2", "text/csv", b'{"predictions": []}', "application/json", MOMENT, "req-7")
    assert set(record) == {"captureData", "eventMetadata", "eventVersion"}
    assert record["eventVersion"] == "0"
    assert record["captureData"]["endpointInput"] == {
        "observedContentType": "text/csv",
        "mode": "INPUT",
        "data": "1,2",
        "encoding": "CSV",
    }
    output = record["captureData"]["endpointOutput"]
    assert (output["mode"], output["encoding"], output["data"]) == ("OUTPUT", "JSON", '{"predictions": []}')
    metadata = record["eventMetadata"]
    assert metadata["inferenceTime"] == "2024-05-01T12:34:56.789Z"
    assert metadata["inferenceId"] == "req-7"
    assert re.fullmatch(r"[0-9a-f-]{36}", metadata["eventId"])
    assert "inferenceId" not in capture_record("", "text/csv", "", "text/csv", MOMENT)["eventMetadata"]


def test_other_content_types_and_binary_bodies_are_base64():
    record = capture_record(b"\xff\x00", "text/csv", b"\x01", "application/x-npy", MOMENT)
    for side, raw in (("endpointInput", b"\xff\x00"), ("endpointOutput", b"\x01")):
        assert record["captureData"][side]["encoding"] == "BASE64"
        assert base64.b64decode(record["captureData"][side]["data"]) == raw
        assert decode_body(record["captureData"][side]) == raw


def test_files_follow_the_endpoint_variant_hour_layout(tmp_path):
    capture = DataCapture(CaptureConfig(tmp_path, "my-endpoint", seed=0))
    record = capture.capture("1", "text/csv", "{}", "application/json", moment=MOMENT)
    files = list(tmp_path.rglob("*.jsonl"))
    assert len(files) == 1
    relative = files[0].relative_to(tmp_path)
    assert relative.parts[:-1] == ("my-endpoint", "AllTraffic", "2024", "05", "01", "12")
    assert FILE_NAME.match(relative.name) and relative.name.startswith("34-56-789-")
    assert json.loads(files[0].read_text()) == record
    capture.capture("2", "text/csv", "{}", "application/json", moment=MOMENT + timedelta(minutes=1))
    capture.capture("3", "text/csv", "{}", "application/json", moment=MOMENT + timedelta(hours=1))
    hours = sorted(path.parent.name for path in tmp_path.rglob("*.jsonl"))
    assert hours == ["12", "13"], "same hour appends to the same file, a new hour starts a new one"


def test_sampling_is_deterministic_with_a_seed_and_honours_the_percentage(tmp_path):
    def draws(seed: int, percentage: float) -> list[bool]:
        capture = DataCapture(CaptureConfig(tmp_path, "e", percentage=percentage, seed=seed))
        return [capture.sampled() for _ in range(2000)]

    assert draws(3, 30) == draws(3, 30)
    assert draws(3, 30) != draws(4, 30)
    assert 0.26 < sum(draws(3, 30)) / 2000 < 0.34
    assert not any(draws(1, 0)) and all(draws(1, 100))
    capture = DataCapture(CaptureConfig(tmp_path / "none", "e", percentage=0, seed=1))
    assert capture.capture("1", "text/csv", "{}", "application/json") is None
    assert not (tmp_path / "none").exists()


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [({"percentage": 101}, "within"), ({"endpoint": "a/b"}, "folder name"), ({"variant": ""}, "folder name")],
)
def test_capture_config_validation(tmp_path, kwargs, message):
    with pytest.raises(ConfigurationError, match=message):
        CaptureConfig(**({"root": tmp_path, "endpoint": "e"} | kwargs))


def _write_many(root: str, worker: int, count: int) -> None:
    capture = DataCapture(CaptureConfig(root, "e", seed=worker))
    for index in range(count):
        capture.capture(f"{worker},{index}" + "," * 500, "text/csv", "{}", "application/json", moment=MOMENT)


def test_several_processes_append_without_mixing_lines(tmp_path):
    context = multiprocessing.get_context("fork")
    workers = [context.Process(target=_write_many, args=(str(tmp_path), worker, 200)) for worker in range(4)]
    for process in workers:
        process.start()
    for process in workers:
        process.join(30)
        assert process.exitcode == 0
    records = list(read_captures(tmp_path))
    assert len(records) == 800
    assert len(list(tmp_path.rglob("*.jsonl"))) == 4, "one file per process"
    seen = {tuple(record["captureData"]["endpointInput"]["data"].split(",")[:2]) for record in records}
    assert len(seen) == 800


def test_read_captures_filters_by_time_and_skips_other_hours(tmp_path):
    capture = DataCapture(CaptureConfig(tmp_path, "e", seed=0))
    for hours in range(5):
        capture.capture(
            str(hours), "text/csv", "{}", "application/json", moment=MOMENT + timedelta(hours=hours)
        )
    start, end = MOMENT + timedelta(hours=1), MOMENT + timedelta(hours=3)
    inputs = [
        record["captureData"]["endpointInput"]["data"] for record in read_captures(tmp_path, start, end)
    ]
    assert inputs == ["1", "2"]
    naive = [
        r["captureData"]["endpointInput"]["data"] for r in read_captures(tmp_path, start.replace(tzinfo=None))
    ]
    assert naive == ["1", "2", "3", "4"]
    assert len(list(read_captures(tmp_path / "e" / "AllTraffic"))) == 5


def test_read_captures_reports_a_malformed_line_and_ignores_a_write_in_progress(tmp_path):
    capture = DataCapture(CaptureConfig(tmp_path, "e", seed=0))
    path = capture.write(capture_record("1", "text/csv", "{}", "application/json", MOMENT))
    with path.open("a") as handle:
        handle.write('{"captureData": {"endpointInput"')  # unterminated: a writer is mid-line
    assert len(list(read_captures(tmp_path))) == 1
    with path.open("a") as handle:
        handle.write("\n")
    with pytest.raises(DataFormatError, match=r"line 2: not valid JSON"):
        list(read_captures(tmp_path))


def test_read_window_parses_requests_as_serving_does(tmp_path, model_dir, serving_subset):
    capture = DataCapture(CaptureConfig(tmp_path, "e", seed=0))
    service = serve.Service(serve.ServerSettings(model_dir=model_dir), capture)
    test = serving_subset.test
    csv_body = test[COLUMNS].to_csv(index=False).encode()
    status, payload, _ = service.invoke(csv_body, "text/csv", None, "client-id-1")
    assert status == 200
    units = test[test["unit"] <= 2]
    json_body = json.dumps({"instances": units[COLUMNS].to_numpy().tolist()}).encode()
    status, _, _ = service.invoke(json_body, "application/json", "text/csv")
    assert status == 200
    assert service.invoke(b"1,2,3", "text/csv", None)[0] == 400  # errors are not captured

    window = read_window(tmp_path)
    assert window.files == 1 and not window.skipped and len(window.requests) == 2
    first = window.requests[0]
    assert first.inference_id == "client-id-1" and first.model_version is None
    pd.testing.assert_frame_equal(first.rows, test[COLUMNS].reset_index(drop=True), check_dtype=False)
    predictions = window.predictions()
    answered = {p["unit"]: p["predicted_rul"] for p in json.loads(payload)["predictions"]}
    mine = predictions[predictions["event_id"] == first.event_id]
    assert dict(zip(mine["unit"], mine["predicted_rul"], strict=True)) == pytest.approx(answered)
    assert (mine["last_cycle"].to_numpy() == test.groupby("unit")["cycle"].max().to_numpy()).all()
    assert len(predictions) == test["unit"].nunique() + 2, "the CSV response of the second is read too"
    rows = window.model_rows()
    assert len(rows) == (test.groupby("unit").size().clip(upper=30)).sum(), "units 1-2 were sent twice"
    assert rows["inference_time"].map(lambda moment: moment.tzinfo is not None).all()


def test_read_window_of_nothing_has_the_columns(tmp_path):
    window = read_window(tmp_path)
    assert window.model_rows().empty and list(window.model_rows().columns)[:2] == ["unit", "cycle"]
    assert window.predictions().empty and window.summary()["records"] == 0
    with pytest.raises(DataFormatError, match="the captures folder does not exist"):
        read_window(tmp_path / "none")


@pytest.mark.parametrize(
    ("request_body", "request_type", "reason"),
    [
        ("1,2,3", "text/csv", "serving would reject the request (400: line 1: expected 26 columns"),
        ("1 2 3", "application/x-npy", "serving would reject the request (415"),
        (b"\xff\xfe", "text/csv", "not UTF-8"),
    ],
)
def test_read_window_skips_what_serving_would_reject(tmp_path, request_body, request_type, reason):
    capture = DataCapture(CaptureConfig(tmp_path, "e", seed=0))
    record = capture_record(request_body, request_type, '{"predictions": []}', "application/json", MOMENT)
    path = capture.write(record)
    window = read_window(tmp_path)
    assert not window.requests and len(window.skipped) == 1
    skipped = window.skipped[0]
    assert (skipped.path, skipped.line) == (str(path), 1) and reason in skipped.reason
    assert str(skipped).startswith(f"{path}:1: ")


def test_read_window_skips_invalid_base64(tmp_path):
    capture = DataCapture(CaptureConfig(tmp_path, "e", seed=0))
    record = capture_record(b"\x00", "application/x-npy", "{}", "application/json", MOMENT)
    record["captureData"]["endpointInput"]["data"] = "***"
    capture.write(record)
    (skipped,) = read_window(tmp_path).skipped
    assert "captureData.endpointInput is not valid BASE64" in skipped.reason
