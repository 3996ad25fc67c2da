"""Per-session IC and rank IC of scores against labels, rolling ICIR, and their plot.

IC of session d is the cross-sectional Pearson correlation between the scores of d and the labels
of d (``Ref($close,-2)/Ref($close,-1)-1``: the return from d+1 to d+2, so it is known two sessions
after d); rank IC is the Spearman correlation (average ranks for ties), as Qlib's ``calc_ic``.
Pairs with a missing side are dropped; a session with fewer than two pairs or no spread has no
IC (null). Rolling ICIR over ``window`` sessions is the rolling mean of IC divided by its rolling
sample standard deviation (ddof=1).
"""

import math
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import matplotlib
import polars as pl

from qlib_assets.storage.atomic import write_with

# Headless: the backend must be chosen before pyplot loads.
matplotlib.use("Agg")
import matplotlib.pyplot as plt

KEYS = ("instrument", "date")
DEFAULT_WINDOW = 20
DAILY_SCHEMA: dict[str, pl.DataType] = {
    "name": pl.String(),
    "date": pl.Date(),
    "count": pl.UInt32(),
    "ic": pl.Float64(),
    "rank_ic": pl.Float64(),
}


def daily_ic(
    scores: pl.DataFrame,
    labels: pl.DataFrame,
    score_column: str = "score",
    label_column: str = "label",
) -> pl.DataFrame:
    """``date, count, ic, rank_ic`` per session of ``scores`` that has labels."""
    pairs = (
        scores.select(*KEYS, pl.col(score_column).cast(pl.Float64).fill_nan(None).alias("x"))
        .join(
            labels.select(*KEYS, pl.col(label_column).cast(pl.Float64).fill_nan(None).alias("y")),
            on=KEYS,
            how="inner",
        )
        .drop_nulls(["x", "y"])
    )
    return (
        pairs.group_by("date")
        .agg(
            pl.len().cast(pl.UInt32).alias("count"),
            pl.corr("x", "y").alias("ic"),
            pl.corr("x", "y", method="spearman").alias("rank_ic"),
        )
        .with_columns(pl.col("ic", "rank_ic").fill_nan(None))
        .with_columns(
            pl.when(pl.col("count") >= 2).then(pl.col(c)).otherwise(None).alias(c)
            for c in ("ic", "rank_ic")
        )
        .sort("date")
    )


def with_rolling_icir(daily: pl.DataFrame, window: int = DEFAULT_WINDOW) -> pl.DataFrame:
    """Add ``ic_mean, ic_std, icir`` and the ``rank_`` counterparts over ``window`` sessions.

    The window counts sessions that have an IC; a window with fewer than ``window`` of them has
    no value yet. Computed per ``name`` when the frame has that column.
    """
    if window < 2:
        raise ValueError(f"a rolling ICIR needs a window of at least 2 sessions, got {window}")
    group = ["name"] if "name" in daily.columns else []
    parts = daily.partition_by(group, maintain_order=True) if group else [daily]
    rolled = [_rolling(part.sort("date"), window) for part in parts]
    return pl.concat(rolled).sort(*group, "date")


def _rolling(part: pl.DataFrame, window: int) -> pl.DataFrame:
    stats = part.drop_nulls("ic").select(
        "date",
        *(
            expr
            for column in ("ic", "rank_ic")
            for expr in (
                pl.col(column).rolling_mean(window).alias(f"{column}_mean"),
                pl.col(column).rolling_std(window, ddof=1).alias(f"{column}_std"),
            )
        ),
    )
    stats = stats.with_columns(
        (pl.col(f"{c}_mean") / pl.col(f"{c}_std")).fill_nan(None).alias(f"{p}icir")
        for c, p in (("ic", ""), ("rank_ic", "rank_"))
    )
    return part.join(stats, on="date", how="left")


def _summary(daily: pl.DataFrame) -> dict[str, float | int | None]:
    def finite(value: object) -> float | None:
        return float(value) if isinstance(value, float) and math.isfinite(value) else None

    present = daily.drop_nulls("ic")
    out: dict[str, float | int | None] = {"sessions": present.height}
    for column, prefix in (("ic", ""), ("rank_ic", "rank_")):
        values = present.get_column(column)
        mean = finite(values.mean()) if values.len() else None
        std = finite(values.std(ddof=1)) if values.len() > 1 else None
        out[column] = mean
        out[f"{prefix}icir"] = mean / std if mean is not None and std else None
    return out


@dataclass(frozen=True)
class SignalAnalysis:
    """``daily``: name, date, count, ic, rank_ic and rolling columns; ``summary``: name -> means
    and whole-period ICIR (JSON-ready, None where undefined)."""

    daily: pl.DataFrame
    summary: dict[str, dict[str, float | int | None]]
    window: int


def analyse_signals(
    scores: Mapping[str, pl.DataFrame],
    labels: pl.DataFrame,
    window: int = DEFAULT_WINDOW,
    label_column: str = "label",
) -> SignalAnalysis:
    """IC analysis of several score frames at once.

    ``scores``: name -> frame with ``instrument, date`` and one value column (``score`` for a
    spec's predictions, ``signal`` for the ensemble; the first non-key column otherwise).
    """
    parts = []
    for name, frame in scores.items():
        value = next(c for c in ("score", "signal", *frame.columns) if c in frame.columns)
        if value in KEYS:
            raise ValueError(f"{name}: no value column besides instrument and date")
        ic = daily_ic(frame, labels, value, label_column)
        parts.append(ic.select(pl.lit(name).alias("name"), pl.all()))
    daily = pl.concat(parts).select(pl.col(n).cast(t) for n, t in DAILY_SCHEMA.items())
    summary = {name: _summary(daily.filter(pl.col("name") == name)) for name in scores}
    return SignalAnalysis(with_rolling_icir(daily, window), summary, window)


def plot_rolling_ic(analysis: SignalAnalysis, path: Path) -> Path:
    """A PNG: daily IC (thin) and its rolling mean (thick) per name; rolling ICIR below."""
    figure, (top, bottom) = plt.subplots(2, 1, figsize=(10, 6), sharex=True)
    try:
        for (name,), part in analysis.daily.group_by("name", maintain_order=True):
            dates = part.get_column("date").to_list()
            line = top.plot(dates, part.get_column("ic").to_list(), linewidth=0.6, alpha=0.4)
            color = line[0].get_color()
            top.plot(dates, part.get_column("ic_mean").to_list(), color=color, label=str(name))
            bottom.plot(dates, part.get_column("icir").to_list(), color=color, label=str(name))
        top.axhline(0.0, color="black", linewidth=0.5)
        bottom.axhline(0.0, color="black", linewidth=0.5)
        top.set_ylabel(f"IC, {analysis.window}-session mean")
        bottom.set_ylabel(f"{analysis.window}-session ICIR")
        top.legend(loc="upper left", fontsize="small")
        top.set_title("Information coefficient of scores against labels")
        figure.autofmt_xdate()
        write_with(path, lambda tmp: figure.savefig(tmp, format="png", dpi=100))
    finally:
        plt.close(figure)
    return path
