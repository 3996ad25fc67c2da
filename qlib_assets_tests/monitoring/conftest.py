"""Generated markets with a regime shift on a known date, their features, and a stale model.

The shift (``SHIFT``) multiplies volatility by 1.6, volume by 1.8 and changes the planted return
effects; the "stale model" scores every session with the effects planted *before* the shift,
as a model trained on that regime would.
"""

from dataclasses import dataclass
from datetime import date

import polars as pl
import pytest

from qlib_assets.features.alpha158 import compute_alpha158, compute_label
from qlib_assets.market.synthetic import MarketSpec, generate_market
from qlib_assets.models.scoring import daily_ic
from qlib_assets.monitoring.decay import DecayResult, performance_decay
from qlib_assets.monitoring.drift import DriftResult, feature_drift

START = date(2023, 1, 3)
END = date(2024, 6, 28)
SHIFT = date(2024, 3, 1)
# Well before the shift and after Alpha158's 60-session warm-up.
REFERENCE = (date(2023, 4, 3), date(2023, 12, 29))
VALID = (date(2024, 1, 2), date(2024, 2, 29))
AROUND = 10  # sessions checked on each side of the shift


@dataclass(frozen=True)
class ShiftedFeatures:
    alpha158: pl.DataFrame
    reference: pl.DataFrame
    before: list[date]
    after: list[date]


@dataclass(frozen=True)
class DecayCase:
    predictions: pl.DataFrame
    labels: pl.DataFrame
    valid_ic: float
    valid_rank_ic: float
    result: DecayResult


@pytest.fixture(scope="session")
def shifted_features() -> ShiftedFeatures:
    """80 instruments, Alpha158 for every session; reference = 2023-04..2023-12."""
    market = generate_market(
        MarketSpec(instruments=80, start=START, end=END, seed=7, shift_date=SHIFT)
    )
    features = compute_alpha158(market.bars)
    reference = features.filter(pl.col("date").is_between(*REFERENCE))
    days = list(market.sessions)
    at = days.index(SHIFT)
    return ShiftedFeatures(features, reference, days[at - AROUND : at], days[at : at + AROUND])


@pytest.fixture(scope="session")
def around_shift(shifted_features: ShiftedFeatures) -> DriftResult:
    """Every Alpha158 column, 10 sessions before and 10 from the shift, in one drift run."""
    days = shifted_features.before + shifted_features.after
    current = shifted_features.alpha158.filter(pl.col("date").is_in(days))
    return feature_drift(shifted_features.reference, current)


def stale_scores(bars: pl.DataFrame) -> pl.DataFrame:
    """``instrument, date, score``: the generator's pre-shift blend of cross-sectionally
    z-scored reversal (0.6), momentum (0.4) and abnormal volume (0.35)."""
    log_close = pl.col("close").log()
    signals = (
        bars.sort("instrument", "date")
        .with_columns(
            reversal=-(log_close - log_close.shift(5)).over("instrument"),
            momentum=(log_close.shift(5) - log_close.shift(60)).over("instrument"),
            volume=(pl.col("volume").log() - pl.col("volume").rolling_mean(20).log()).over(
                "instrument"
            ),
        )
        .drop_nulls(["reversal", "momentum", "volume"])
    )

    def zscore(name: str) -> pl.Expr:
        return (pl.col(name) - pl.col(name).mean().over("date")) / pl.col(name).std().over("date")

    score = 0.6 * zscore("reversal") + 0.4 * zscore("momentum") + 0.35 * zscore("volume")
    return signals.select("instrument", "date", score.alias("score"))


@pytest.fixture(scope="session")
def decay_case() -> DecayCase:
    """1,000 instruments (a daily IC over 80 is too noisy for a 20-session mean to separate a
    0.06 IC from its half); the stale model's validation IC over Jan-Feb 2024; decay evaluated
    from 2023-11 to the end."""
    market = generate_market(
        MarketSpec(instruments=1000, start=START, end=END, seed=7, shift_date=SHIFT)
    )
    labels = compute_label(market.bars).filter(pl.col("label").is_not_nan())
    predictions = stale_scores(market.bars)
    valid = predictions.filter(pl.col("date").is_between(*VALID)).join(
        labels, on=["instrument", "date"]
    )
    indexed = valid.to_pandas().rename(columns={"date": "datetime"})
    indexed["datetime"] = indexed["datetime"].astype("datetime64[ns]")
    indexed = indexed.set_index(["datetime", "instrument"])
    summary = daily_ic(indexed["score"], indexed["label"])
    monitored = predictions.filter(pl.col("date") >= date(2023, 11, 1))
    # IC only: the rank IC of this model sits closer to its own bound before the shift.
    result = performance_decay(monitored, labels, summary.ic, window=20, ratio=0.5)
    return DecayCase(monitored, labels, summary.ic, summary.rank_ic, result)
