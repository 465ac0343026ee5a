"""The capture record layout (SageMaker's, see `rul.capture`): building one record and its parts.

`capture_record` builds the JSON record of one invocation; `encode_body`/`decode_body` turn a body into
one side of its `captureData` and back (text for CSV and JSON bodies, BASE64 otherwise); `format_time`
and `parse_time` write and read `inferenceTime` (UTC, milliseconds, a Z).
"""

from __future__ import annotations

import base64
import uuid
from datetime import UTC, datetime

from rul.errors import DataFormatError
from rul.serving_request import CSV, JSON, media_type

DEFAULT_VARIANT = "AllTraffic"
EVENT_VERSION = "0"


def format_time(moment: datetime) -> str:
    """ISO-8601 in UTC with milliseconds and a Z, as SageMaker writes inferenceTime."""
    moment = moment.astimezone(UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


def parse_time(text: str, where: str = "time", line: int | None = None) -> datetime:
    """An ISO 8601 time ("Z" allowed) as an aware UTC datetime; naive times are taken as UTC."""
    try:
        moment = datetime.fromisoformat(str(text).replace("Z", "+00:00"))
    except ValueError:
        raise DataFormatError(where, line, f"not an ISO 8601 time: {text!r}") from None
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


def encode_body(body: bytes | str, content_type: str | None, mode: str) -> dict:
    """One side of `captureData`: the body as text for CSV and JSON, base64 otherwise."""
    raw = body.encode("utf-8") if isinstance(body, str) else bytes(body)
    kind = media_type(content_type)
    encoding = {CSV: "CSV", JSON: "JSON"}.get(kind, "BASE64")
    data = None
    if encoding != "BASE64":
        try:
            data = raw.decode("utf-8")
        except UnicodeDecodeError:
            encoding = "BASE64"
    if data is None:
        data = base64.b64encode(raw).decode("ascii")
    return {"observedContentType": content_type or "", "mode": mode, "data": data, "encoding": encoding}


def decode_body(side: dict) -> bytes:
    """The body bytes of one side of `captureData`; `binascii.Error` for invalid BASE64."""
    if side.get("encoding") == "BASE64":
        return base64.b64decode(side["data"], validate=True)
    return str(side["data"]).encode("utf-8")


def capture_record(
    request: bytes | str,
    request_type: str | None,
    response: bytes | str,
    response_type: str | None,
    moment: datetime,
    inference_id: str | None = None,
    event_id: str | None = None,
    variant: str | None = None,
) -> dict:
    """One capture record in SageMaker's layout (plus `variantName` when `variant` is given)."""
    metadata = {"eventId": event_id or str(uuid.uuid4())}
    if inference_id:
        metadata["inferenceId"] = inference_id
    metadata["inferenceTime"] = format_time(moment)
    if variant:
        metadata["variantName"] = variant
    return {
        "captureData": {
            "endpointInput": encode_body(request, request_type, "INPUT"),
            "endpointOutput": encode_body(response, response_type, "OUTPUT"),
        },
        "eventMetadata": metadata,
        "eventVersion": EVENT_VERSION,
    }
