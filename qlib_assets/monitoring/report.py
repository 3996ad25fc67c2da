"""Monitoring charts as PNGs: drift heatmap, drift share over time, rolling IC against its bound.

Inputs are the tables the monitoring assets keep: drift scores (:data:`drift.SCORE_SCHEMA`,
any number of sessions), drift session summaries (:meth:`drift.DriftResult.summary`) and decay
rows (:data:`decay.ROW_SCHEMA`).
"""

from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # headless: runs inside Dagster workers

import matplotlib.pyplot as plt
import numpy as np
import polars as pl
from matplotlib.colors import TwoSlopeNorm
from matplotlib.figure import Figure

from qlib_assets.monitoring.drift import RETRAIN_SHARE, severity
from qlib_assets.storage.atomic import atomic_path

HEATMAP_FEATURES = 20
# Severity 1 is the threshold; the colour scale saturates at three times past it.
_SEVERITY_CAP = 3.0


def drift_heatmap(scores: pl.DataFrame, target: Path, features: int = HEATMAP_FEATURES) -> Path:
    """The ``features`` most drifted columns (by their worst session) x sessions, coloured by
    severity (score relative to the threshold: white at the threshold, red past it)."""
    if scores.is_empty():
        raise ValueError("no drift scores to plot")
    rated = scores.with_columns(severity(scores).alias("severity"))
    worst = (
        rated.group_by("column")
        .agg(pl.col("severity").max())
        .sort(["severity", "column"], descending=[True, False])
        .head(features)
        .get_column("column")
        .to_list()
    )
    grid = (
        rated.filter(pl.col("column").is_in(worst))
        .pivot(on="date", index="column", values="severity", sort_columns=True)
        .with_columns(pl.col("column").cast(pl.Enum(worst)))
        .sort("column")
    )
    days = grid.columns[1:]
    values = np.clip(grid.drop("column").to_numpy().astype(float), 0.0, _SEVERITY_CAP)
    method = scores.get_column("method")[0]
    limits = scores.get_column("threshold").unique()
    threshold = f"threshold {limits[0]:g}" if limits.len() == 1 else "per-column thresholds"

    fig, ax = plt.subplots(figsize=(max(6.0, 0.3 * len(days) + 3), 0.32 * len(worst) + 2))
    image = ax.imshow(
        np.ma.masked_invalid(values),
        aspect="auto",
        cmap="RdBu_r",
        norm=TwoSlopeNorm(vmin=0.0, vcenter=1.0, vmax=_SEVERITY_CAP),
        interpolation="nearest",
    )
    ax.set_yticks(range(len(worst)), worst)
    ticks = _date_ticks(len(days))
    ax.set_xticks(ticks, [days[i] for i in ticks], rotation=60, ha="right")
    fig.colorbar(image, ax=ax, label="score / threshold (1 = drift)")
    ax.set_title(f"most drifted features ({method}, {threshold})")
    return _save(fig, target)


def drift_share_chart(
    summary: pl.DataFrame, target: Path, retrain_share: float = RETRAIN_SHARE
) -> Path:
    """Share of drifted columns per session, with the share that suggests retraining."""
    if summary.is_empty():
        raise ValueError("no drift sessions to plot")
    ordered = summary.sort("date")
    fig, ax = plt.subplots(figsize=(9, 3.5))
    ax.plot(ordered.get_column("date").to_list(), ordered.get_column("share").to_list(), "o-")
    ax.axhline(retrain_share, color="tab:red", linestyle="--", label=f"retrain ({retrain_share})")
    ax.set_ylim(0.0, 1.0)
    ax.set_ylabel("share of drifted columns")
    ax.set_title("feature drift share per session")
    ax.legend(loc="upper left")
    fig.autofmt_xdate()
    return _save(fig, target)


def rolling_ic_chart(rows: pl.DataFrame, target: Path, title: str = "rolling IC") -> Path:
    """Daily IC (bars), rolling IC and rank IC (lines), their bounds and the sessions in breach."""
    if rows.is_empty():
        raise ValueError("no decay rows to plot")
    ordered = rows.sort("date")
    days = ordered.get_column("date").to_list()
    fig, ax = plt.subplots(figsize=(10, 4))
    ax.bar(days, ordered.get_column("ic").to_list(), color="lightgrey", label="daily IC")
    ax.plot(days, ordered.get_column("rolling_ic").to_list(), color="tab:blue", label="rolling IC")
    ax.plot(
        days,
        ordered.get_column("rolling_rank_ic").to_list(),
        color="tab:green",
        label="rolling rank IC",
    )
    ax.plot(days, ordered.get_column("ic_bound").to_list(), "--", color="tab:red", label="IC bound")
    if ordered.get_column("rank_ic_bound").drop_nulls().len():
        ax.plot(
            days,
            ordered.get_column("rank_ic_bound").to_list(),
            ":",
            color="tab:red",
            label="rank IC bound",
        )
    breached = ordered.filter(pl.col("breached"))
    if not breached.is_empty():
        ax.scatter(
            breached.get_column("date").to_list(),
            breached.get_column("rolling_ic").to_list(),
            color="tab:red",
            zorder=3,
            s=14,
            label="breach",
        )
    ax.axhline(0.0, color="black", linewidth=0.6)
    ax.set_title(title)
    ax.legend(loc="upper right", fontsize="small")
    fig.autofmt_xdate()
    return _save(fig, target)


def _date_ticks(count: int, most: int = 20) -> list[int]:
    step = max(1, -(-count // most))
    return list(range(0, count, step))


def _save(fig: Figure, target: Path) -> Path:
    try:
        fig.tight_layout()
        with atomic_path(target) as tmp:
            fig.savefig(tmp, format="png", dpi=100)
    finally:
        plt.close(fig)
    return target
