"""Progress reporting shared by the model code: flushed log lines and the training-curve callback type.

Training jobs run for seconds to minutes; one flushed line per step shows in CloudWatch and the local
runner as it happens. `MetricsCallback` is the shape of the optional `on_metrics(metrics, step)` hook
(e.g. `rul.tracking`'s `log_metrics`) that the model families call with their training curves.
"""

from __future__ import annotations

import sys
from collections.abc import Callable

# Receives a dict of metric values and the step (iteration, member or epoch, from 1) they belong to.
MetricsCallback = Callable[[dict[str, float], int], None]


def log(message: str) -> None:
    """Progress output for long work: one flushed line, visible in CloudWatch and the local runner."""
    print(message, file=sys.stdout, flush=True)
