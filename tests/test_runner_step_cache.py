"""The step cache (`local_runner.step_cache`): the ISO 8601 expiry durations SageMaker accepts."""

from __future__ import annotations

import pytest

from local_runner.step_cache import CacheConfigError, parse_duration


def test_cache_expiry_durations():
    """ISO 8601 durations in days, hours and minutes; anything else is a `CacheConfigError`."""
    assert parse_duration("P30D").days == 30
    assert parse_duration("PT1H").total_seconds() == 3600
    assert parse_duration("T16m").total_seconds() == 960
    with pytest.raises(CacheConfigError, match="cache expiry"):
        parse_duration("soon")
