"""Performance decay: rolling IC and rank IC of a spec's predictions against its validation level.

Daily IC and rank IC are the cross-sectional Pearson and Spearman correlations of score and label
(:func:`qlib_assets.models.scoring.daily_ic`, the definition the training report's valid IC uses);
their rolling mean over ``window`` sessions is compared to a bound

    bound = max(floor, valid level * ratio)

and a session whose full-window rolling IC (or rolling rank IC, when a valid rank IC is given)
is below its bound is in breach.
"""

from dataclasses import dataclass, field
from datetime import date
from typing import Any

import polars as pl

from qlib_assets.models.scoring import daily_ic

WINDOW = 20
RATIO = 0.5
FLOOR = 0.0

ROW_SCHEMA: dict[str, pl.DataType] = {
    "date": pl.Date(),
    "ic": pl.Float64(),
    "rank_ic": pl.Float64(),
    "rolling_ic": pl.Float64(),
    "rolling_rank_ic": pl.Float64(),
    "ic_bound": pl.Float64(),
    "rank_ic_bound": pl.Float64(),
    "breached": pl.Boolean(),
}


@dataclass(frozen=True)
class DecayResult:
    """``rows``: one row per session with labels (schema :data:`ROW_SCHEMA`); the rolling columns
    are null until ``window`` sessions are available, and such sessions are never in breach.

    ``breached``: the latest session is in breach (the current state, what a check reports);
    ``breach_dates``: every session in breach.
    """

    rows: pl.DataFrame = field(repr=False)
    breached: bool
    breach_dates: tuple[date, ...]
    evidence: dict[str, Any]


def ic_bound(valid_level: float, ratio: float = RATIO, floor: float = FLOOR) -> float:
    return max(floor, valid_level * ratio)


def performance_decay(
    predictions: pl.DataFrame,
    labels: pl.DataFrame,
    valid_ic: float,
    *,
    valid_rank_ic: float | None = None,
    window: int = WINDOW,
    ratio: float = RATIO,
    floor: float = FLOOR,
    score_column: str = "score",
) -> DecayResult:
    """Rolling ``window``-session IC of ``predictions`` (instrument, date, score) against
    ``labels`` (instrument, date, label), and the breach of ``max(floor, valid * ratio)``."""
    if window < 1:
        raise ValueError(f"window must be >= 1, got {window}")
    joined = predictions.select("instrument", "date", pl.col(score_column).alias("pred")).join(
        labels.select("instrument", "date", "label"), on=["instrument", "date"], how="inner"
    )
    frame = joined.to_pandas().rename(columns={"date": "datetime"})
    frame["datetime"] = frame["datetime"].astype("datetime64[ns]")
    frame = frame.set_index(["datetime", "instrument"])
    daily = daily_ic(frame["pred"], frame["label"]).daily.sort("date")

    bound = ic_bound(valid_ic, ratio, floor)
    rank_bound = None if valid_rank_ic is None else ic_bound(valid_rank_ic, ratio, floor)
    rows = daily.with_columns(
        pl.col("ic").rolling_mean(window).alias("rolling_ic"),
        pl.col("rank_ic").rolling_mean(window).alias("rolling_rank_ic"),
        pl.lit(bound, pl.Float64).alias("ic_bound"),
        pl.lit(rank_bound, pl.Float64).alias("rank_ic_bound"),
    )
    ic_breach = pl.col("rolling_ic") < pl.col("ic_bound")
    rank_breach = pl.col("rolling_rank_ic") < pl.col("rank_ic_bound")
    rows = rows.with_columns(
        (ic_breach.fill_null(False) | rank_breach.fill_null(False)).alias("breached")
    ).select(pl.col(name).cast(dtype) for name, dtype in ROW_SCHEMA.items())

    breach_dates = tuple(rows.filter(pl.col("breached")).get_column("date").to_list())
    last = rows.row(-1, named=True)
    evidence: dict[str, Any] = {
        "session": last["date"].isoformat(),
        "window": window,
        "valid_ic": valid_ic,
        "valid_rank_ic": valid_rank_ic,
        "ratio": ratio,
        "floor": floor,
        "ic_bound": bound,
        "rank_ic_bound": rank_bound,
        "rolling_ic": last["rolling_ic"],
        "rolling_rank_ic": last["rolling_rank_ic"],
        "sessions_in_breach": len(breach_dates),
        "first_breach": breach_dates[0].isoformat() if breach_dates else None,
    }
    return DecayResult(
        rows=rows,
        breached=bool(last["breached"]),
        breach_dates=breach_dates,
        evidence=evidence,
    )
