"""Which way a request is read and predicted gives the same answers: the plain-CSV reader against the
general parser, `Service.invoke_many` against `invoke`, and the event-loop batch against the thread pool."""

from __future__ import annotations

import asyncio
import dataclasses

import numpy as np
import pytest
from test_inference import GOOD_ROW, bad_order_rows, csv_body, one_unit
from test_serve_http import Answer, Client, assert_good

import serve
from rul.data import COLUMNS
from rul.inference import CSV, RequestError, parse_rows


@pytest.fixture(scope="module")
def test_rows(serving_subset):
    return serving_subset.test


def test_plain_csv_bodies_parse_as_the_general_parser_parses_them(test_rows):
    """The vectorised reader (`number_table`) and the line-by-line parser give the same rows and errors."""
    plain = csv_body(test_rows).encode()
    reordered = test_rows[list(reversed(COLUMNS))].to_csv(index=False).replace("\n", "\r\n").encode()
    for body in (plain, reordered):
        fast = parse_rows(body, CSV).values
        general = parse_rows(body.decode(), CSV).values  # a str body takes the general parser
        assert np.array_equal(fast.view(np.int64), general.view(np.int64))
    header = ",".join(COLUMNS) + "\n"
    for body, message in (
        (header + bad_order_rows(), "line 4: cycles of unit 1"),
        (GOOD_ROW + "\n" + GOOD_ROW, "line 2"),
    ):
        for sent in (body.encode(), body):
            with pytest.raises(RequestError, match=message):
                parse_rows(sent, CSV)


def test_invoke_many_answers_each_request_as_invoke_would(model_dir, test_rows, monkeypatch):
    """A batch answers 200, 400 and 406 as single calls do, and a fault of one request stays with it."""
    service = serve.Service(serve.ServerSettings(model_dir=model_dir))
    good = csv_body(one_unit(test_rows)).encode()
    calls = [
        (good, CSV, None, None),
        (b"1,2", CSV, None, None),
        (good, CSV, "text/csv", "id-1"),
        (good, CSV, "x/y", None),
    ]
    answers = service.invoke_many(calls)
    assert answers == [service.invoke(*call) for call in calls]
    assert [status for status, _, _ in answers] == [200, 400, 200, 406]
    calls = [(csv_body(one_unit(test_rows, cycles)).encode(), CSV, None, None) for cycles in (3, 4)]
    original = service.model.predictor.predict_last

    def broken_for_three(frame):  # a fault of one request of a batch stays with it
        if frame.groupby("unit").size().min() == 3:
            raise RuntimeError("three cycles exploded")
        return original(frame)

    monkeypatch.setattr(service.model.predictor, "predict_last", broken_for_three)
    first, second = service.invoke_many(calls)
    assert first[0] == 500 and b"three cycles exploded" in first[1]
    assert second[0] == 200


def test_small_requests_ready_together_are_answered_on_the_loop_in_one_batch(model_dir, serving_subset):
    """Five bodies ready in one pass: one invoke_many on the loop, no thread; a large body takes the pool."""
    test = serving_subset.test
    body = test[test["unit"] == test["unit"].iloc[0]][COLUMNS].to_csv(index=False, header=False).encode()
    app = serve.create_app(serve.ServerSettings(model_dir=model_dir))
    batches = []
    invoke_many = app._inline.invoke_many
    app._inline.invoke_many = lambda calls: batches.append(len(calls)) or invoke_many(calls)
    app.pool.submit = None  # nothing may go to a thread

    headers = [(b"content-type", b"text/csv"), (b"content-length", str(len(body)).encode())]
    scope = {"type": "http", "method": "POST", "path": "/invocations", "headers": headers}

    async def one(sent: list) -> None:

        async def receive():
            return {"type": "http.request", "body": body, "more_body": False}

        async def send(message):
            sent.append(message)

        await app(scope, receive, send)

    async def five() -> list[list[dict]]:
        answers: list[list[dict]] = [[] for _ in range(5)]
        await asyncio.gather(*(one(sent) for sent in answers))
        return answers

    answers = asyncio.run(five())
    assert batches == [5]
    assert [Answer(sent).status_code for sent in answers] == [200] * 5
    assert len({Answer(sent).body for sent in answers}) == 1
    big = serve.create_app(serve.ServerSettings(model_dir=model_dir))
    big.limits = dataclasses.replace(big.limits, inline_bytes=10)  # larger bodies go to the thread pool
    big._inline.invoke_many = None
    assert_good(Client(big).post("/invocations", data=body, content_type="text/csv"), units=1)
