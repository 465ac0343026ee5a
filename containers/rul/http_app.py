"""The ASGI application of the model server: reads whole requests on the event loop, then predicts.

Why this shape: a gthread worker gives each connection a thread for as long as it is open, so a few idle
keep-alive clients or clients trickling a body used up every thread and stalled /ping and predictions.
Here the event loop holds any number of connections at the cost of a socket each. A request reaches the
inference thread pool (`threads` threads, one `BatchingPredictor` behind them) only once its whole body
has arrived, within `body_timeout` seconds (408 past it) and `max_bytes` (413 as soon as a
`Content-Length` over it is seen, before any body byte is read). /ping is answered on the event loop, so
it stays fast while every inference thread is busy. A body the client abandoned is never predicted on nor
captured: the application sees a disconnect instead of a complete body. Every answer the application
gives itself is JSON; the connection-level errors are `rul.http_protocol`'s.

With `reload_seconds` > 0 (the local endpoint), a background task checks every that many seconds whether
the model folder now resolves elsewhere (a repointed `current` link) and, if so, has the service load and
health-check the new model in a thread and switch to it (`Service.reload_if_moved`): requests in flight
finish on the model they started with, new ones use the new model, and no connection is closed.
"""

from __future__ import annotations

import asyncio
import contextlib
import sys
import traceback
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

from rul.http_protocol import error_document

INFERENCE_ID_HEADER = "x-amzn-sagemaker-inference-id"
# One request to /invocations: (body, content type, accept, inference id), as `Service.invoke` takes them.
Call = tuple[bytes, str | None, str | None, str | None]


@dataclass(frozen=True)
class HttpLimits:
    """What one request may take (body bytes and seconds, header bytes), threads for all predictions, and
    how often to look for a moved model (0: never)."""

    max_bytes: int
    body_timeout: float = 20.0
    threads: int = 16
    reload_seconds: float = 0.0
    max_header_bytes: int = 16 * 1024
    inline_bytes: int = 64 * 1024
    # Requests answered in one pass of the loop; more wait for the next pass, after pending I/O and pings.
    inline_batch: int = 16


class _Refused(Exception):
    def __init__(self, status: int, message: str):
        super().__init__(message)
        self.status, self.message = status, message


def _headers(scope: dict) -> dict[str, str]:
    return {name.decode("latin-1"): value.decode("latin-1") for name, value in scope["headers"]}


async def _answer(send, status: int, body: bytes, content_type: str, close: bool = False) -> None:
    headers = [(b"content-type", content_type.encode()), (b"content-length", str(len(body)).encode())]
    if close:  # the rest of an unread body must not be taken for the next request
        headers.append((b"connection", b"close"))
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body, "more_body": False})


async def _error(send, status: int, message: str, close: bool = False) -> None:
    await _answer(send, status, error_document(status, message), "application/json", close)


class LoopBatch:
    """Answers the calls made during one pass of the event loop with one `invoke_many` call, run on the
    loop by a callback scheduled at the first call; past `size` calls the rest wait for the next pass."""

    def __init__(self, invoke_many, size: int):
        self.invoke_many = invoke_many
        self.size = size
        self._pending: list[tuple[Call, asyncio.Future]] = []
        self._scheduled: asyncio.AbstractEventLoop | None = None

    async def answer(self, call: Call) -> tuple[int, bytes, str]:
        """The answer to `call`, once the batch it joined ran."""
        loop = asyncio.get_running_loop()
        future = loop.create_future()
        self._pending.append((call, future))
        if self._scheduled is not loop:
            self._scheduled = loop
            loop.call_soon(self._run)
        return await future

    def _run(self) -> None:
        loop = asyncio.get_running_loop()
        # a call left by a loop that has ended (a test's asyncio.run) has no one waiting for it
        pending = [(call, future) for call, future in self._pending if future.get_loop() is loop]
        batch, self._pending = pending[: self.size], pending[self.size :]
        if self._pending:
            loop.call_soon(self._run)
        else:
            self._scheduled = None
        batch = [(call, future) for call, future in batch if not future.cancelled()]
        if not batch:
            return
        try:
            answers = self.invoke_many([call for call, _ in batch])
        except Exception as error:  # invoke_many answers its own faults: this is a last guard
            print(traceback.format_exc(), file=sys.stderr, flush=True)
            answers = [(500, error_document(500, f"internal error: {error!r}"), "application/json")] * len(
                batch
            )
        for (_, future), answer in zip(batch, answers, strict=True):
            if not future.done():
                future.set_result(answer)


class InferenceApp:
    """ASGI app: `GET /ping` and `POST /invocations` over a `serve.Service` (anything with `ping` and
    `invoke` returning (status, body, content type) and, for reloads, `reload_if_moved`)."""

    def __init__(self, service, limits: HttpLimits):
        self.service = service
        self.limits = limits
        self.pool = ThreadPoolExecutor(limits.threads, thread_name_prefix="inference")
        self._watcher: asyncio.Task | None = None
        invoke_many = getattr(service, "invoke_many", None)
        self._inline = None if invoke_many is None else LoopBatch(invoke_many, limits.inline_batch)

    async def __call__(self, scope, receive, send) -> None:
        """ASGI entry: lifespan starts and stops the app, HTTP requests are routed, other scopes ignored."""
        if scope["type"] == "lifespan":
            await self._lifespan(receive, send)
        elif scope["type"] == "http":
            await self._route(scope, receive, send)

    async def _route(self, scope, receive, send) -> None:
        path, method = scope["path"], scope["method"]
        # h11 bounds only headers still incomplete in its buffer; headers that came in one read are
        # counted here.
        size = len(scope.get("raw_path", b"")) + sum(len(n) + len(v) + 4 for n, v in scope["headers"])
        if size > self.limits.max_header_bytes:
            message = f"the request headers are {size} bytes; the limit is {self.limits.max_header_bytes}"
            await _error(send, 431, message, close=True)
        elif path == "/ping" and method == "GET":
            await _answer(send, *self.service.ping())
        elif path == "/invocations" and method == "POST":
            await self._invoke(scope, receive, send)
        elif path in ("/ping", "/invocations"):
            allowed = "GET" if path == "/ping" else "POST"
            await _error(send, 405, f"{method} is not allowed on {path}; use {allowed}")
        else:
            await _error(send, 404, f"no such path {path!r}; the server answers /ping and /invocations")

    async def _invoke(self, scope, receive, send) -> None:
        headers = _headers(scope)
        try:
            body = await self._read_body(headers.get("content-length"), receive)
        except _Refused as refusal:
            await _error(send, refusal.status, refusal.message, close=True)
            return
        if body is None:
            return  # the client went away before its body was complete: nothing to answer or capture
        call: Call = (
            body,
            headers.get("content-type"),
            headers.get("accept"),
            headers.get(INFERENCE_ID_HEADER),
        )
        if (
            self._inline is not None
            and len(body) <= self.limits.inline_bytes
            and self.service.serves_inline()
        ):
            answer = await self._inline.answer(call)
        else:
            loop = asyncio.get_running_loop()
            answer = await loop.run_in_executor(self.pool, self.service.invoke, *call)
        await _answer(send, *answer)

    async def _read_body(self, declared: str | None, receive) -> bytes | None:
        """The whole body; None if the client disconnected first; `_Refused` (408/413) otherwise."""
        limit = self.limits.max_bytes
        if declared is not None and int(declared) > limit:  # h11 has checked it is digits
            raise _Refused(413, f"the request body is {declared} bytes; the limit is {limit}")
        deadline = asyncio.get_running_loop().time() + self.limits.body_timeout
        chunks, size = [], 0
        while True:
            try:
                async with asyncio.timeout_at(deadline):  # no task per message, unlike wait_for in 3.11
                    message = await receive()
            except TimeoutError:
                expected = f" of {declared}" if declared is not None else ""
                raise _Refused(
                    408,
                    f"the request body did not arrive within {self.limits.body_timeout:g}s "
                    f"({size}{expected} bytes received)",
                ) from None
            if message["type"] == "http.disconnect":
                return None
            chunks.append(message.get("body", b""))
            size += len(chunks[-1])
            if size > limit:
                raise _Refused(413, f"the request body is over {limit} bytes; the limit is {limit}")
            if not message.get("more_body", False):
                return b"".join(chunks)

    async def _lifespan(self, receive, send) -> None:
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                if self.limits.reload_seconds > 0:
                    self._watcher = asyncio.create_task(self._watch_model())
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                if self._watcher is not None:
                    self._watcher.cancel()
                    with contextlib.suppress(asyncio.CancelledError):
                        await self._watcher
                self.pool.shutdown(wait=False)
                await send({"type": "lifespan.shutdown.complete"})
                return

    async def _watch_model(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            await asyncio.sleep(self.limits.reload_seconds)
            try:
                await loop.run_in_executor(None, self.service.reload_if_moved)
            except Exception:  # a failed reload leaves the current model serving; the loop must go on
                print(traceback.format_exc(), file=sys.stderr, flush=True)
