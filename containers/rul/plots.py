"""Evaluation plots of RUL predictions, written as PNG files without a display.

Matplotlib runs on the Agg backend; every function draws one figure, saves it and closes it, so a job that
writes many plots does not accumulate open figures. `write_evaluation_plots` writes the standard set into
an output directory; the bucket plot takes the list `rul.metrics.error_by_bucket` returns.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt
import numpy as np

from rul.errors import ConfigurationError, DataFormatError
from rul.metrics import validate_predictions

FIGSIZE = (6, 4.5)
DPI = 110
TRAJECTORY_KEYS = ("unit", "cycles", "true_rul", "predicted_rul")


def _new_figure() -> tuple[plt.Figure, plt.Axes]:
    fig, ax = plt.subplots(figsize=FIGSIZE, dpi=DPI)
    ax.grid(True, alpha=0.3)
    return fig, ax


def _save(fig: plt.Figure, path: str | Path) -> Path:
    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fig.tight_layout()
        fig.savefig(path, dpi=DPI)
    finally:
        plt.close(fig)
    return path


def plot_predicted_vs_true(y_true: Any, y_pred: Any, path: str | Path, cap: float = 125) -> Path:
    """Scatter of predicted against true RUL with the identity line and the capped identity min(x, cap)."""
    true, pred = validate_predictions(y_true, y_pred)
    fig, ax = _new_figure()
    try:
        high = max(float(true.max()), float(pred.max()), float(cap))
        low = min(0.0, float(true.min()), float(pred.min()))
        margin = 0.05 * (high - low)
        bottom, top = low - margin, high + margin
        ax.scatter(true, pred, s=18, alpha=0.7, label=f"units (n={len(true)})")
        ax.plot([bottom, top], [bottom, top], color="grey", linewidth=1, label="identity")
        xs = np.array([bottom, cap, top])
        ax.plot(xs, np.minimum(xs, cap), "r--", linewidth=1, label=f"capped truth (cap={cap:g})")
        ax.set_xlim(bottom, top)
        ax.set_ylim(bottom, top)
        ax.set_xlabel("true RUL (cycles)")
        ax.set_ylabel("predicted RUL (cycles)")
        ax.set_title("Predicted vs true RUL")
        ax.legend(loc="upper left", fontsize="small")
    except BaseException:
        plt.close(fig)
        raise
    return _save(fig, path)


def plot_error_histogram(y_true: Any, y_pred: Any, path: str | Path) -> Path:
    """Histogram of d = predicted - true with mean/std in the title; d > 0 is late, d < 0 early."""
    true, pred = validate_predictions(y_true, y_pred)
    d = pred - true
    fig, ax = _new_figure()
    try:
        bins = int(min(30, max(5, np.ceil(np.sqrt(len(d))))))
        ax.hist(d, bins=bins, color="tab:blue", alpha=0.75, edgecolor="white")
        ax.axvline(0.0, color="black", linewidth=1)
        box = {"facecolor": "white", "alpha": 0.8, "edgecolor": "none"}
        for x, text, align, color in (
            (0.98, "late (d > 0) →", "right", "tab:red"),
            (0.02, "← early (d < 0)", "left", "tab:green"),
        ):
            ax.text(x, 0.97, text, transform=ax.transAxes, ha=align, va="top", color=color, bbox=box)
        ax.set_ylim(top=ax.get_ylim()[1] * 1.12)
        ax.set_xlabel("error d = predicted - true RUL (cycles)")
        ax.set_ylabel("units")
        ax.set_title(f"Prediction error: mean {d.mean():+.2f}, std {d.std():.2f} cycles")
    except BaseException:
        plt.close(fig)
        raise
    return _save(fig, path)


def plot_error_by_bucket(buckets: Sequence[Mapping[str, Any]], path: str | Path) -> Path:
    """Bar chart of RMSE per true-RUL bucket with the unit count over each bar; empty buckets are skipped."""
    filled = [b for b in buckets if b.get("count") and b.get("rmse") is not None]
    fig, ax = _new_figure()
    try:
        if filled:
            labels = [str(b["bucket"]) for b in filled]
            heights = [float(b["rmse"]) for b in filled]
            bars = ax.bar(labels, heights, color="tab:blue", alpha=0.8)
            for bar, bucket in zip(bars, filled, strict=True):
                ax.annotate(
                    f"n={bucket['count']}",
                    (bar.get_x() + bar.get_width() / 2, bar.get_height()),
                    xytext=(0, 3),
                    textcoords="offset points",
                    ha="center",
                    va="bottom",
                    fontsize="small",
                )
            ax.set_ylim(0, max(heights) * 1.15 or 1.0)
        else:
            ax.text(0.5, 0.5, "no units in any bucket", transform=ax.transAxes, ha="center", va="center")
        ax.set_xlabel("true RUL bucket (cycles)")
        ax.set_ylabel("RMSE (cycles)")
        ax.set_title("RMSE by true-RUL bucket")
    except BaseException:
        plt.close(fig)
        raise
    return _save(fig, path)


def plot_unit_trajectory(
    cycles: Any, true_rul: Any, predicted_rul: Any, path: str | Path, unit: Any, cap: float = 125
) -> Path:
    """One unit's true RUL (line), capped true RUL (dashed) and predictions (markers) over its cycles."""
    true, pred = validate_predictions(true_rul, predicted_rul)
    cycles = np.asarray(cycles, dtype=float)
    if cycles.shape != true.shape:
        raise DataFormatError(
            "predictions",
            None,
            f"length mismatch: {cycles.size} cycles for {true.size} RUL values of unit {unit}",
        )
    fig, ax = _new_figure()
    try:
        ax.plot(cycles, true, color="black", linewidth=1.2, label="true RUL")
        ax.plot(
            cycles, np.minimum(true, cap), "k--", linewidth=1, alpha=0.6, label=f"true, capped at {cap:g}"
        )
        ax.plot(cycles, pred, "o", markersize=3, color="tab:orange", label="predicted RUL")
        ax.set_xlabel("time (cycles)")
        ax.set_ylabel("RUL (cycles)")
        ax.set_title(f"Unit {unit}: predicted vs true RUL")
        ax.legend(loc="upper right", fontsize="small")
    except BaseException:
        plt.close(fig)
        raise
    return _save(fig, path)


def write_evaluation_plots(
    y_true: Any,
    y_pred: Any,
    buckets: Sequence[Mapping[str, Any]],
    trajectory: Mapping[str, Any] | None,
    out_dir: str | Path,
    cap: float = 125,
) -> dict[str, Path]:
    """Write the evaluation PNGs into `out_dir` (created); the unit trajectory only when one is given."""
    if trajectory is not None:
        missing = [key for key in TRAJECTORY_KEYS if key not in trajectory]
        if missing:
            raise ConfigurationError(f"trajectory is missing key(s) {missing}; needs {list(TRAJECTORY_KEYS)}")
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    written = {
        "predicted_vs_true": plot_predicted_vs_true(y_true, y_pred, out / "predicted_vs_true.png", cap=cap),
        "error_histogram": plot_error_histogram(y_true, y_pred, out / "error_histogram.png"),
        "error_by_bucket": plot_error_by_bucket(buckets, out / "error_by_bucket.png"),
    }
    if trajectory is not None:
        written["unit_trajectory"] = plot_unit_trajectory(
            trajectory["cycles"],
            trajectory["true_rul"],
            trajectory["predicted_rul"],
            out / "unit_trajectory.png",
            unit=trajectory["unit"],
            cap=cap,
        )
    return written
