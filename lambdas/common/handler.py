"""The Lambda entry wrapper: run the body; a failure (a `ConfigError` included) is logged as the "error"
decision, then raised so that Lambda retries the event and its failure destination keeps it."""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from .decisions import DecisionLog


def run_logged(
    log: DecisionLog,
    body: Callable[[], dict[str, Any]],
    retry: tuple[type[BaseException], ...] = (),
) -> dict[str, Any]:
    """`body()`; an exception of `retry` is logged as action "retry" with its message, any other as
    "error" with its type and message; both are raised again."""
    try:
        return body()
    except retry as busy:
        log.decide("retry", str(busy), level=logging.ERROR)
        raise
    except Exception as error:
        log.decide("error", f"{type(error).__name__}: {error}", level=logging.ERROR)
        raise
