"""The HTTP/1.1 connection layer of the model server: uvicorn's h11 protocol with the project's own rules.

uvicorn answers an HTTP protocol error (a malformed request line, a bad `Content-Length`, a bad chunk
size, headers over the size limit) with a plain-text 400 and has no deadline for a request's headers. The
`JsonH11Protocol` built by `protocol_class` changes four things, and nothing else:

- protocol errors answer in the project's JSON error format, `{"error": message, "status": code}`, with
  h11's own status hint (431 for headers over `h11_max_incomplete_event_size`) and h11's reason;
- a request whose headers have not all arrived within `header_timeout` seconds of its first byte is
  answered 408 and the connection closed (a slow-header client holds a socket, never a worker);
- a connection that sends nothing is closed after the keep-alive timeout, as an idle keep-alive one is
  (uvicorn arms that timer only after a first response);
- a client that half-closes its socket in the middle of a body (fewer bytes than its `Content-Length`)
  is answered 400 naming the byte counts; the application sees a disconnect and predicts nothing.

What stays uvicorn's: the 503 plain-text answer once `limit_concurrency` connections are open
(`uvicorn.protocols.http.flow_control.service_unavailable` is not replaceable through its `Config`), and
the 500 plain-text answer should the application raise (ours catches its own faults first).
"""

from __future__ import annotations

import json
from typing import cast

import h11
from uvicorn.protocols.http.h11_impl import H11Protocol

JSON_HEADERS = [(b"content-type", b"application/json"), (b"connection", b"close")]


def error_document(status: int, message: str) -> bytes:
    """The JSON error body: `{"error": message, "status": code}`."""
    return json.dumps({"error": message, "status": status}).encode("utf-8")


class _RecordingConnection(h11.Connection):
    """An h11 connection that keeps its last protocol error, so the answer can name the problem."""

    last_error: h11.RemoteProtocolError | None = None

    def next_event(self):
        try:
            return super().next_event()
        except h11.RemoteProtocolError as error:
            self.last_error = error
            raise


class JsonH11Protocol(H11Protocol):
    """uvicorn's h11 protocol with JSON protocol errors, a header deadline and idle-connection closing."""

    header_timeout: float = 10.0

    def __init__(self, config, server_state, app_state, _loop=None):
        super().__init__(config, server_state, app_state, _loop)
        self.conn = _RecordingConnection(h11.SERVER, self.conn._max_incomplete_event_size)
        self._header_timer = None

    def connection_made(self, transport) -> None:
        """Start the connection with the keep-alive timer armed, so a silent client is closed too."""
        super().connection_made(transport)
        self.timeout_keep_alive_task = self.loop.call_later(
            self.timeout_keep_alive, self.timeout_keep_alive_handler
        )

    def connection_lost(self, exc) -> None:
        """Stop the header timer, then let uvicorn clean up the connection."""
        self._cancel_header_timer()
        super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        """Feed the bytes to uvicorn, then start or stop the header deadline as a request's headers arrive."""
        super().data_received(data)
        self._watch_headers()

    def on_response_complete(self) -> None:
        """Finish the response, then watch the headers of a request that may already have started."""
        super().on_response_complete()
        self._watch_headers()  # a pipelined request may have started already

    def eof_received(self) -> None:
        """Answer a body cut short by the client's half-close with a 400 naming the byte counts."""
        if self.conn.their_state is h11.SEND_BODY and self.cycle is not None:
            # h11 turns an end of input inside a body into a RemoteProtocolError naming the byte counts.
            self.conn.receive_data(b"")
            self.handle_events()

    def send_400_response(self, msg: str) -> None:
        """Answer a protocol error in JSON, with h11's 4xx status hint and error message when there is one."""
        error = cast(_RecordingConnection, self.conn).last_error  # set in __init__
        hint = getattr(error, "error_status_hint", 400)
        status = hint if 400 <= hint < 500 else 400
        self.send_error(status, f"invalid HTTP request: {error}" if error else msg)

    def send_error(self, status: int, message: str) -> None:
        """Answer `status` with a JSON error document and close the connection."""
        self._cancel_header_timer()
        try:
            body = error_document(status, message)
            headers = [*JSON_HEADERS, (b"content-length", str(len(body)).encode())]
            output = self.conn.send(h11.Response(status_code=status, headers=headers))
            output += self.conn.send(h11.Data(data=body))
            output += self.conn.send(h11.EndOfMessage())
            self.transport.write(output)
        except h11.LocalProtocolError:  # a response had already started: closing is all that is left
            pass
        self.transport.close()

    def _watch_headers(self) -> None:
        """Start the header deadline when a request's first bytes are in, stop it once its headers are."""
        if self.transport.is_closing():
            return
        pending, _ = self.conn.trailing_data
        waiting = self.conn.their_state is h11.IDLE and bool(pending)
        if waiting and self._header_timer is None:
            self._header_timer = self.loop.call_later(self.header_timeout, self._headers_late)
        elif not waiting:
            self._cancel_header_timer()

    def _headers_late(self) -> None:
        self._header_timer = None
        if self.conn.their_state is h11.IDLE and not self.transport.is_closing():
            self.send_error(408, f"the request headers did not arrive within {self.header_timeout:g}s")

    def _cancel_header_timer(self) -> None:
        if self._header_timer is not None:
            self._header_timer.cancel()
            self._header_timer = None


def protocol_class(header_timeout: float) -> type[JsonH11Protocol]:
    """A `JsonH11Protocol` subclass with this header deadline, for uvicorn's `Config(http=...)`."""
    return type("JsonH11Protocol", (JsonH11Protocol,), {"header_timeout": header_timeout})
