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
    FRAME_COLUMNS,
    CaptureConfig,
    DataCapture,
    capture_record,
    captured_frame,
    decode_body,
    read_captures,
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
    with pytest.raises(DataFormatError, match=r"line 2: not a capture record"):
        list(read_captures(tmp_path))


def test_captured_frame_joins_predictions_to_the_input_rows(tmp_path, model_dir, serving_subset):
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

    frame = captured_frame(read_captures(tmp_path))
    assert list(frame.columns) == FRAME_COLUMNS
    assert len(frame) == len(test) + len(units)
    first = frame[frame["event_id"] == frame["event_id"].iloc[0]]
    assert first["inference_id"].unique().tolist() == ["client-id-1"]
    pd.testing.assert_frame_equal(
        first[COLUMNS].reset_index(drop=True), test[COLUMNS].reset_index(drop=True), check_dtype=False
    )
    predictions = {p["unit"]: p["predicted_rul"] for p in json.loads(payload)["predictions"]}
    last = first[first["is_last"]]
    assert dict(zip(last["unit"], last["predicted_rul"], strict=True)) == pytest.approx(predictions)
    assert first.groupby("unit")["predicted_rul"].nunique().eq(1).all()
    assert (
        str(frame["inference_time"].dtype).startswith("datetime64")
        and frame["inference_time"].dt.tz is not None
    )
    assert frame["model_version"].isna().all()


def test_captured_frame_of_nothing_has_the_columns():
    frame = captured_frame([])
    assert list(frame.columns) == FRAME_COLUMNS and frame.empty


def test_captured_frame_names_an_unreadable_record():
    record = capture_record("not,rows", "text/csv", "{}", "application/json", MOMENT, event_id="ev-1")
    with pytest.raises(DataFormatError, match="capture record ev-1"):
        captured_frame([record])
