"""Request parsing, prediction and rendering (`rul.inference`) and serve.py's SageMaker handler functions."""

from __future__ import annotations

import json
import tarfile
import threading
import time

import numpy as np
import pandas as pd
import pytest

import serve
from rul.data import COLUMNS
from rul.errors import RulError
from rul.inference import (
    CSV,
    INTERVAL_COLUMNS,
    JSON,
    PREDICTION_COLUMNS,
    BatchingPredictor,
    RequestError,
    RequestLimits,
    canned_window,
    health_check,
    load_model,
    negotiate,
    parse_request,
    parse_response,
    predict,
    predict_many,
    render,
)
from rul.intervals import IntervalCalibration


@pytest.fixture(scope="session")
def model(model_dir):
    return load_model(model_dir, environ={})


@pytest.fixture(scope="session")
def test_rows(serving_subset) -> pd.DataFrame:
    return serving_subset.test


def csv_body(frame: pd.DataFrame, header: bool = False) -> str:
    return frame[COLUMNS].to_csv(index=False, header=header)


def one_unit(frame: pd.DataFrame, cycles: int | None = None) -> pd.DataFrame:
    unit = frame[frame["unit"] == frame["unit"].iloc[0]]
    return unit if cycles is None else unit.head(cycles)


def row_text(values) -> str:
    return ",".join(str(value) for value in values)


GOOD_ROW = row_text([1, 1, 0.0, 0.0, 100.0, *range(21)])


# --- parsing -------------------------------------------------------------------------------------------


def test_csv_with_and_without_header_parses_to_the_same_frame(test_rows):
    plain = parse_request(csv_body(test_rows).encode(), "text/csv")
    with_header = parse_request(csv_body(test_rows, header=True), "text/csv; charset=utf-8")
    pd.testing.assert_frame_equal(plain, with_header)
    assert list(plain.columns) == COLUMNS
    assert plain["unit"].dtype == np.int64 and plain["cycle"].dtype == np.int64
    np.testing.assert_allclose(plain[COLUMNS[2:]].to_numpy(), test_rows[COLUMNS[2:]].to_numpy())


def test_csv_header_may_list_the_columns_in_any_order(test_rows):
    reordered = test_rows[list(reversed(COLUMNS))]
    frame = parse_request(reordered.to_csv(index=False), CSV)
    pd.testing.assert_frame_equal(frame, parse_request(csv_body(test_rows), CSV))


def test_whitespace_separated_cmapss_lines_are_accepted(test_rows):
    text = "\n".join(" ".join(str(value) for value in row) + "  " for row in test_rows[COLUMNS].to_numpy())
    frame = parse_request(text, CSV)
    assert len(frame) == len(test_rows)


def test_json_lists_and_objects_parse_to_the_same_frame(test_rows):
    rows = one_unit(test_rows)
    as_lists = {"instances": rows[COLUMNS].to_numpy().tolist()}
    as_objects = {"instances": rows[COLUMNS].to_dict(orient="records")}
    first = parse_request(json.dumps(as_lists), JSON)
    second = parse_request(json.dumps(as_objects).encode(), "application/json")
    pd.testing.assert_frame_equal(first, second)
    assert len(first) == len(rows)


def bad_order_rows() -> str:
    rows = [row_text([1, cycle, 0.0, 0.0, 100.0, *range(21)]) for cycle in (1, 2, 4, 3)]
    return "\n".join(rows)


case = pytest.param
BAD_REQUESTS = [
    case(GOOD_ROW + "\n" + row_text(range(25)), CSV, 400, "line 2: expected 26 columns, found 25", id="cols"),
    case(GOOD_ROW.replace("0.0,0.0,100.0", "0.0,abc,100.0"), CSV, 400, "column 4 (setting_2)", id="text"),
    case(GOOD_ROW.replace("100.0", "nan"), CSV, 400, "line 1, column 5 (setting_3) is nan", id="nan"),
    case(GOOD_ROW.replace("100.0", "inf"), CSV, 400, "(setting_3) is inf", id="inf"),
    case(GOOD_ROW, "text/plain", 415, "'text/plain' is not supported", id="type"),
    case(GOOD_ROW, None, 415, "(none)", id="no-type"),
    case("", CSV, 400, "empty", id="empty"),
    case(" \n\n", JSON, 400, "empty", id="blank"),
    case(",".join(COLUMNS), CSV, 400, "header but no rows", id="header-only"),
    case("a,b\n" + GOOD_ROW, CSV, 400, "header must name the 26 columns", id="bad-header"),
    case(bad_order_rows(), CSV, 400, "line 3: cycles of unit 1 must increase by one", id="unsorted"),
    case(GOOD_ROW + "\n" + GOOD_ROW, CSV, 400, "cycle 1 follows 1", id="duplicate"),
    case(GOOD_ROW.replace("1,1,", "1.5,1,", 1), CSV, 400, "unit must be a positive integer", id="unit"),
    case(GOOD_ROW.replace("1,1,", "1,0,", 1), CSV, 400, "cycle must be a positive integer", id="cycle0"),
    case("[1, 2]", JSON, 400, '{"instances": [...]}', id="json-list"),
    case("{not json", JSON, 400, "not valid JSON", id="json-syntax"),
    case('{"instances": []}', JSON, 400, "no rows", id="json-empty"),
    case('{"instances": [[1, 2]]}', JSON, 400, "instance 1: expected 26 columns, found 2", id="json-cols"),
    case('{"instances": [[NaN]]}', JSON, 400, "NaN", id="json-nan"),
    case('{"instances": [7]}', JSON, 400, "instance 1 must be a list", id="json-scalar"),
    case('{"instances": [{"unit": 1}]}', JSON, 400, "instance 1: missing cycle", id="json-keys"),
]


@pytest.mark.parametrize(("body", "content_type", "status", "message"), BAD_REQUESTS)
def test_bad_requests_raise_request_errors_naming_the_problem(body, content_type, status, message):
    with pytest.raises(RequestError) as caught:
        parse_request(body, content_type)
    assert caught.value.status == status
    assert message in caught.value.message


def test_json_values_must_be_numbers():
    row = [1, 1, 0.0, 0.0, 100.0, *range(21)]
    for bad in ("7", True, None):
        with pytest.raises(RequestError, match=r"instance 1, column 6 \(sensor_1\) is not a number"):
            parse_request(json.dumps({"instances": [[*row[:5], bad, *row[6:]]]}), JSON)
    objects = dict(zip(COLUMNS, row, strict=True)) | {"extra": 1}
    with pytest.raises(RequestError, match="unknown extra"):
        parse_request(json.dumps({"instances": [objects]}), JSON)


def test_a_unit_repeated_after_another_is_refused():
    rows = [row_text([unit, cycle, 0.0, 0.0, 100.0, *range(21)]) for unit, cycle in ((1, 1), (2, 1), (1, 2))]
    with pytest.raises(RequestError, match="line 3: unit 1 appears again"):
        parse_request("\n".join(rows), CSV)


def test_oversized_requests_answer_413():
    limits = RequestLimits(max_bytes=100, max_rows=2)
    with pytest.raises(RequestError) as by_bytes:
        parse_request(GOOD_ROW + "\n" + GOOD_ROW, CSV, limits)
    assert by_bytes.value.status == 413 and "limit is 100" in by_bytes.value.message
    rows = "\n".join(row_text([1, cycle, 0, 0, 100, *range(21)]) for cycle in (1, 2, 3))
    with pytest.raises(RequestError) as by_rows:
        parse_request(rows, CSV, RequestLimits(max_rows=2))
    assert by_rows.value.status == 413 and "3 rows" in by_rows.value.message
    instances = json.dumps({"instances": [[1] * 26] * 3})
    with pytest.raises(RequestError, match="limit is 2"):
        parse_request(instances, JSON, RequestLimits(max_rows=2))


# --- prediction and responses ----------------------------------------------------------------------------


def test_predict_gives_one_row_per_unit_in_unit_order(model, test_rows):
    result = predict(model, parse_request(csv_body(test_rows), CSV))
    assert list(result.frame["unit"]) == sorted(test_rows["unit"].unique())
    assert result.frame["predicted_rul"].between(0, 125).all()
    assert result.model_family == "gbm"


def test_a_short_unit_is_padded_and_says_so(model, test_rows):
    short = one_unit(test_rows, cycles=5)
    result = predict(model, parse_request(csv_body(short), CSV)).frame
    assert result["padded"].tolist() == [True]
    assert result["cycles_used"].tolist() == [5]
    full = predict(model, parse_request(csv_body(canned_window(40)), CSV)).frame
    assert full["padded"].tolist() == [False] and full["cycles_used"].tolist() == [model.window]


def test_json_response_shape(model, test_rows):
    body, content_type = render(predict(model, parse_request(csv_body(test_rows), CSV)), None)
    document = json.loads(body)
    assert content_type == JSON
    assert set(document) == {"predictions", "model_version", "model_family"}
    assert set(document["predictions"][0]) == {"unit", "predicted_rul", "cycles_used", "padded"}
    assert isinstance(document["predictions"][0]["padded"], bool)


def test_csv_response_round_trips(model, test_rows):
    prediction = predict(model, parse_request(csv_body(test_rows), CSV))
    body, content_type = render(prediction, "text/csv")
    assert content_type == CSV and body.decode().startswith("unit,predicted_rul,cycles_used,padded\n")
    pd.testing.assert_frame_equal(parse_response(body, content_type), prediction.frame)
    json_body, json_type = render(prediction, JSON)
    pd.testing.assert_frame_equal(parse_response(json_body, json_type), prediction.frame)


@pytest.fixture(scope="module")
def calibrated_model(model_dir, tmp_path_factory):
    """The served model with an interval calibration attached (residuals -20..+30 in every bin)."""
    predictor = load_model(model_dir, environ={}).predictor
    residuals = tuple(float(value) for value in np.linspace(-20.0, 30.0, 101))
    predictor.calibration = IntervalCalibration((60.0,), (residuals, residuals), units=10)
    return load_model(predictor.save(tmp_path_factory.mktemp("calibrated") / "model"), environ={})


def test_a_calibrated_model_answers_with_intervals_in_json_and_csv(calibrated_model, test_rows):
    prediction = predict(calibrated_model, parse_request(csv_body(test_rows), CSV))
    frame = prediction.frame
    assert list(frame.columns) == [*PREDICTION_COLUMNS, *INTERVAL_COLUMNS]
    # 90 %: ranks floor(0.05 * 102) = 5 and ceil(0.95 * 102) = 97 of the 101 residuals, -18 and +28 cycles
    np.testing.assert_allclose(frame["rul_lower"], np.maximum(frame["predicted_rul"] - 18.0, 0.0))
    np.testing.assert_allclose(frame["rul_upper"], frame["predicted_rul"] + 28.0)
    document = json.loads(render(prediction, JSON)[0])
    assert set(document["predictions"][0]) == {*PREDICTION_COLUMNS, *INTERVAL_COLUMNS}
    body, _ = render(prediction, CSV)
    assert body.decode().startswith("unit,predicted_rul,cycles_used,padded,rul_lower,rul_upper\n")
    for rendered in (body, json.dumps(document).encode()):
        kind = CSV if rendered is body else JSON
        pd.testing.assert_frame_equal(parse_response(rendered, kind), frame)
    batched = predict_many(calibrated_model, [one_unit(test_rows), test_rows])
    pd.testing.assert_frame_equal(batched[1].frame, frame)
    verdict = health_check(calibrated_model)
    assert verdict["rul_lower"] <= verdict["predicted_rul"] <= verdict["rul_upper"]


def test_an_uncalibrated_model_answers_without_intervals(model, test_rows):
    prediction = predict(model, parse_request(csv_body(test_rows), CSV))
    assert list(prediction.frame.columns) == list(PREDICTION_COLUMNS)
    body, _ = render(prediction, CSV)
    assert "rul_lower" not in body.decode() and "rul_lower" not in render(prediction, JSON)[0].decode()
    assert "rul_lower" not in health_check(model)


def test_health_check_rejects_a_broken_interval(calibrated_model, monkeypatch):
    monkeypatch.setattr(
        IntervalCalibration, "bounds", lambda self, predicted, level: (predicted + 5.0, predicted - 5.0)
    )
    with pytest.raises(RulError, match="is not an interval"):
        health_check(calibrated_model)


@pytest.mark.parametrize(
    ("accept", "expected"),
    [
        (None, JSON),
        ("*/*", JSON),
        ("application/json", JSON),
        ("text/csv; q=0.9", CSV),
        ("text/html, text/csv", CSV),
        ("text/*", CSV),
    ],
)
def test_accept_negotiation(accept, expected):
    assert negotiate(accept) == expected


def test_unsupported_accept_answers_406():
    with pytest.raises(RequestError) as caught:
        negotiate("application/x-protobuf")
    assert caught.value.status == 406


def test_model_version_comes_from_metadata_then_environment(model_dir, tmp_path):
    assert load_model(model_dir, environ={"MODEL_VERSION": "7"}).model_version == "7"
    assert load_model(model_dir, environ={}).model_version is None
    stamped = tmp_path / "model"
    stamped.mkdir()
    for path in model_dir.iterdir():
        (stamped / path.name).write_bytes(path.read_bytes())
    metadata = json.loads((stamped / "metadata.json").read_text()) | {"model_version": "3"}
    (stamped / "metadata.json").write_text(json.dumps(metadata))
    assert load_model(stamped, environ={"MODEL_VERSION": "7"}).model_version == "3"


def test_health_check_predicts_on_the_canned_window(model):
    window = canned_window()
    assert list(window.columns) == COLUMNS and len(window) == 30
    verdict = health_check(model)
    assert 0 <= verdict["predicted_rul"] <= 125


def test_health_check_rejects_an_out_of_range_prediction(model, monkeypatch):
    monkeypatch.setattr(model.predictor.estimator, "predict", lambda features: np.full(len(features), np.nan))
    with pytest.raises(RulError, match="is not a RUL"):
        health_check(model)


# --- the SageMaker inference toolkit handlers ------------------------------------------------------------


def test_handler_functions_serve_a_request_end_to_end(model_dir, test_rows):
    loaded = serve.model_fn(str(model_dir))
    frame = serve.input_fn(csv_body(test_rows), "text/csv")
    body, content_type = serve.output_fn(serve.predict_fn(frame, loaded), "application/json")
    assert content_type == JSON
    assert len(json.loads(body)["predictions"]) == test_rows["unit"].nunique()


def test_model_fn_unpacks_a_model_archive(model_dir, tmp_path):
    with tarfile.open(tmp_path / "model.tar.gz", "w:gz") as bundle:
        for path in model_dir.iterdir():
            bundle.add(path, arcname=path.name)
    loaded = serve.model_fn(str(tmp_path))
    assert (tmp_path / "metadata.json").is_file() and loaded.model_family == "gbm"


@pytest.mark.parametrize(("body", "content_type", "status", "message"), BAD_REQUESTS)
def test_input_fn_raises_4xx_then_a_good_request_still_succeeds(
    body, content_type, status, message, model_dir, test_rows
):
    loaded = serve.model_fn(str(model_dir))
    with pytest.raises(RequestError) as caught:
        serve.input_fn(body, content_type)
    assert caught.value.status == status and 400 <= caught.value.status < 500
    good = serve.predict_fn(serve.input_fn(csv_body(one_unit(test_rows)).encode(), "text/csv"), loaded)
    assert len(good.frame) == 1


def test_output_fn_refuses_an_unsupported_accept_then_answers_csv(model_dir, test_rows):
    prediction = serve.predict_fn(serve.input_fn(csv_body(test_rows), CSV), serve.model_fn(str(model_dir)))
    with pytest.raises(RequestError) as caught:
        serve.output_fn(prediction, "image/png")
    assert caught.value.status == 406
    body, content_type = serve.output_fn(prediction, "text/csv")
    assert content_type == CSV and body.count(b"\n") == test_rows["unit"].nunique() + 1


# --- batching of concurrent requests ---------------------------------------------------------------------


def test_predict_many_equals_separate_predictions(model, test_rows):
    units = [group for _, group in test_rows.groupby("unit")]
    frames = [
        parse_request(csv_body(pd.concat(units[:3])), CSV),
        parse_request(csv_body(units[0]), CSV),  # the same unit numbers in two requests stay apart
        parse_request(csv_body(one_unit(test_rows, cycles=4)), CSV),
    ]
    together = predict_many(model, frames)
    for frame, prediction in zip(frames, together, strict=True):
        alone = predict(model, frame).frame
        pd.testing.assert_frame_equal(prediction.frame, alone, check_exact=False, rtol=1e-9)


def test_batching_predictor_batches_concurrent_callers_and_isolates_a_fault(model, test_rows, monkeypatch):
    batcher = BatchingPredictor(model)
    frame = parse_request(csv_body(one_unit(test_rows)), CSV)
    expected = predict(model, frame).frame
    original = model.predictor.predict_last
    entered = threading.Event()

    def slow_predict_last(rows):
        entered.set()
        time.sleep(0.2)  # long enough for the other callers to queue
        if (rows["sensor_2"] < 0).any():
            raise RuntimeError("negative reading")
        return original(rows)

    monkeypatch.setattr(model.predictor, "predict_last", slow_predict_last)
    bad = frame.assign(sensor_2=-1.0)
    results: dict[int, object] = {}

    def call(index: int, rows: pd.DataFrame) -> None:
        try:
            results[index] = batcher.predict(rows).frame
        except RuntimeError as error:
            results[index] = error

    first = threading.Thread(target=call, args=(0, frame))
    first.start()
    entered.wait(5)
    others = [threading.Thread(target=call, args=(i, bad if i == 3 else frame)) for i in range(1, 6)]
    for thread in others:
        thread.start()
    for thread in [first, *others]:
        thread.join(10)
    assert batcher.batch_sizes[:2] == [1, 5]
    for index in (0, 1, 2, 4, 5):
        pd.testing.assert_frame_equal(results[index], expected)
    assert isinstance(results[3], RuntimeError)
