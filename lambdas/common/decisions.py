"""The decision every invocation ends with: one JSON log line, also returned as the function's result.

Each function logs `{"function": <name>, "action": ..., "reason": ..., ...}` (keys sorted) to the logger
named after it. `Ignored` (the event is nothing for this function) and `Skipped` (nothing to act on) carry
the reason in their message.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass, field
from typing import Any


class Ignored(Exception):
    """The event names nothing this function acts on; the message is the reason."""


class Skipped(Exception):
    """The event is the function's, but there is nothing to act on; the message is the reason."""


@dataclass(frozen=True)
class DecisionLog:
    """The decision logger of one function; `function` is both the logger name and the line's field."""

    function: str
    logger: logging.Logger = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        logger = logging.getLogger(self.function)
        logger.setLevel(logging.INFO)
        object.__setattr__(self, "logger", logger)

    def decide(self, action: str, reason: str, level: int = logging.INFO, **fields: Any) -> dict[str, Any]:
        """Log one JSON line for the decision and return it as the function's result."""
        result = {"action": action, "reason": reason, **fields}
        line = json.dumps({"function": self.function, **result}, default=str, sort_keys=True)
        self.logger.log(level, line)
        return result
