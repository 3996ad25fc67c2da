"""Factor effectiveness over a window, and a selection computed only from data before a cutoff.

Per factor and horizon h (sessions): the daily cross-sectional IC (Pearson) and rank IC
(Spearman) against the forward return ``close[d+h] / close[d] - 1``, their mean, std and ICIR
(mean / std); the factor's rank autocorrelation between consecutive sessions (1 minus it is the
turnover of a portfolio sorted on it); coverage (share of non-null rows).
"""

from collections.abc import Sequence
from datetime import date

import polars as pl

HORIZONS = (1, 5, 10, 20)
KEYS = ("instrument", "date")


def forward_returns(bars: pl.DataFrame, horizons: Sequence[int] = HORIZONS) -> pl.DataFrame:
    """``instrument, date, ret_<h>``: close-to-close simple return over the next h bars."""
    close = pl.col("close")
    return (
        bars.sort("instrument", "date")
        .with_columns(
            ((close.shift(-h) / close - 1.0).over("instrument")).alias(f"ret_{h}") for h in horizons
        )
        .select(*KEYS, *(f"ret_{h}" for h in horizons))
    )


def daily_ic(
    factors: pl.DataFrame, returns: pl.DataFrame, columns: Sequence[str], horizon: int
) -> pl.DataFrame:
    """``date, factor, ic, rank_ic``: one row per session and factor."""
    target = f"ret_{horizon}"
    joined = factors.select(*KEYS, *columns).join(returns.select(*KEYS, target), on=list(KEYS))
    long = joined.unpivot(index=[*KEYS, target], on=list(columns), variable_name="factor")
    long = long.filter(pl.col("value").is_finite() & pl.col(target).is_finite())
    return (
        long.group_by("date", "factor")
        .agg(
            ic=pl.corr("value", target, method="pearson"),
            rank_ic=pl.corr("value", target, method="spearman"),
        )
        .sort("date", "factor")
    )


def factor_summary(
    factors: pl.DataFrame,
    bars: pl.DataFrame,
    columns: Sequence[str],
    horizons: Sequence[int] = HORIZONS,
) -> pl.DataFrame:
    """``factor, horizon, ic, ic_std, icir, rank_ic, rank_icir, autocorr, coverage``."""
    returns = forward_returns(bars, horizons)
    parts = []
    for horizon in horizons:
        daily = daily_ic(factors, returns, columns, horizon)
        parts.append(
            daily.group_by("factor")
            .agg(
                ic=pl.col("ic").mean(),
                ic_std=pl.col("ic").std(),
                rank_ic=pl.col("rank_ic").mean(),
                rank_ic_std=pl.col("rank_ic").std(),
            )
            .with_columns(
                horizon=pl.lit(horizon),
                icir=pl.col("ic") / pl.col("ic_std"),
                rank_icir=pl.col("rank_ic") / pl.col("rank_ic_std"),
            )
        )
    summary = pl.concat(parts)
    return (
        summary.join(_autocorr(factors, columns), on="factor", how="left")
        .join(_coverage(factors, columns), on="factor", how="left")
        .select(
            "factor",
            "horizon",
            "ic",
            "ic_std",
            "icir",
            "rank_ic",
            "rank_icir",
            "autocorr",
            "coverage",
        )
        .sort("horizon", "factor")
    )


def _autocorr(factors: pl.DataFrame, columns: Sequence[str]) -> pl.DataFrame:
    """Mean over sessions of the Spearman correlation of a factor with its previous session."""
    ordered = factors.sort("instrument", "date")
    lagged = ordered.with_columns(
        pl.col(c).shift(1).over("instrument").alias(f"{c}__lag") for c in columns
    )
    rows = []
    for column in columns:
        kept = lagged.filter(pl.col(column).is_finite() & pl.col(f"{column}__lag").is_finite())
        value = (
            kept.group_by("date")
            .agg(pl.corr(column, f"{column}__lag", method="spearman").alias("r"))
            .get_column("r")
            .mean()
        )
        rows.append((column, value))
    return pl.DataFrame(
        rows, schema={"factor": pl.String(), "autocorr": pl.Float64()}, orient="row"
    )


def _coverage(factors: pl.DataFrame, columns: Sequence[str]) -> pl.DataFrame:
    shares = factors.select(pl.col(c).is_not_null().mean().alias(c) for c in columns)
    return shares.unpivot(variable_name="factor", value_name="coverage")


def select_top_icir(
    factors: pl.DataFrame,
    bars: pl.DataFrame,
    columns: Sequence[str],
    train_end: date,
    count: int,
    horizon: int = 1,
) -> list[str]:
    """The ``count`` factors of highest |rank ICIR| over sessions whose forward return is known by
    ``train_end`` (the return of session d over h bars reads close up to d + h), best first."""
    known = bars.filter(pl.col("date") <= train_end)
    returns = forward_returns(known, [horizon])
    daily = daily_ic(factors.filter(pl.col("date") <= train_end), returns, columns, horizon)
    ranked = (
        daily.group_by("factor")
        .agg(score=(pl.col("rank_ic").mean() / pl.col("rank_ic").std()).abs())
        .sort(["score", "factor"], descending=[True, False])
    )
    return ranked.head(count).get_column("factor").to_list()
