"""boto3 clients with standard retries, created per invocation (never at import time)."""

from __future__ import annotations

from typing import Any

# botocore's "standard" mode retries throttling and transient errors with backoff.
MAX_ATTEMPTS = 5
RETRIES = {"mode": "standard", "max_attempts": MAX_ATTEMPTS}


def make_client(service: str) -> Any:
    """A boto3 client of `service` with `RETRIES`."""
    import boto3
    from botocore.config import Config

    return boto3.client(service, config=Config(retries=dict(RETRIES)))


def make_clients(*services: str) -> tuple[Any, ...]:
    """One client per service name, in order."""
    return tuple(make_client(service) for service in services)
