"""How much signal a generated market carries: information coefficients measured on its bars.

IC here is the Pearson correlation, across instruments on one date, between a score known at
the close of d and the realized return of the next session ``close[d+1] / close[d] - 1``,
averaged over dates. A return exists only when the instrument has bars on both d and the
session right after d.
"""

from datetime import date

import polars as pl

from qlib_assets.market.synthetic import Market

# Dates with fewer scored instruments give correlations too noisy to average.
_MIN_CROSS_SECTION = 10


def next_returns(bars: pl.DataFrame, sessions: tuple[date, ...]) -> pl.DataFrame:
    """instrument, date, next_return for every bar whose next session also has a bar."""
    index = pl.DataFrame(
        {"date": list(sessions), "session": range(len(sessions))},
        schema={"date": pl.Date(), "session": pl.Int64()},
    )
    return (
        bars.select("instrument", "date", "close")
        .join(index, on="date", how="left")
        .sort("instrument", "date")
        .with_columns(
            next_close=pl.col("close").shift(-1).over("instrument"),
            next_session=pl.col("session").shift(-1).over("instrument"),
        )
        .filter(pl.col("next_session") == pl.col("session") + 1)
        .select("instrument", "date", next_return=pl.col("next_close") / pl.col("close") - 1.0)
    )


def mean_daily_ic(scored: pl.DataFrame, score: str, target: str = "next_return") -> float:
    """Mean over dates of the cross-sectional Pearson correlation of ``score`` and ``target``."""
    daily = (
        scored.drop_nulls([score, target])
        .group_by("date")
        .agg(ic=pl.corr(score, target), n=pl.len())
        .filter(pl.col("n") >= _MIN_CROSS_SECTION)
        .sort("date")
    )
    return float(daily["ic"].drop_nans().mean())


def oracle_ic(market: Market) -> float:
    """IC of the planted expected return: the best a model can do on average."""
    scored = market.oracle.join(
        next_returns(market.bars, market.sessions), on=["instrument", "date"]
    )
    return mean_daily_ic(scored, "expected_return")


def reversal_factor(bars: pl.DataFrame, window: int = 5) -> pl.DataFrame:
    """instrument, date, reversal = ``-(close[d] / close[d - window bars] - 1)``."""
    return bars.sort("instrument", "date").select(
        "instrument",
        "date",
        reversal=-(pl.col("close") / pl.col("close").shift(window).over("instrument") - 1.0),
    )


def reversal_ic(market: Market, window: int = 5) -> float:
    """IC of the plain reversal factor, the planted effect a model finds first."""
    scored = reversal_factor(market.bars, window).join(
        next_returns(market.bars, market.sessions), on=["instrument", "date"]
    )
    return mean_daily_ic(scored, "reversal")
