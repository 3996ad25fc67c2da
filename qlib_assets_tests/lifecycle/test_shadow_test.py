"""The shadow test on predictions planted from the generator's oracle, against statsmodels."""

from datetime import date

import numpy as np
import polars as pl
import pytest
import statsmodels.api as sm

from qlib_assets.features.alpha158 import compute_label
from qlib_assets.lifecycle.shadow import hac_lags, session_ic, shadow_test
from qlib_assets.market.synthetic import Market, MarketSpec, generate_market

HORIZON = 2


@pytest.fixture(scope="module")
def market() -> Market:
    return generate_market(
        MarketSpec(instruments=150, start=date(2024, 1, 2), end=date(2024, 5, 31), seed=21)
    )


def _planted(market: Market, noise: float, seed: int) -> pl.DataFrame:
    """Scores of session d: the oracle's expected return of d+1 (what the label of d measures:
    the return from d+1 to d+2) plus noise in units of its cross-sectional spread."""
    oracle = (
        market.oracle.sort("instrument", "date")
        .with_columns(pl.col("expected_return").shift(-1).over("instrument").alias("signal"))
        .drop_nulls("signal")
    )
    rng = np.random.default_rng(seed)
    spread = float(oracle["signal"].std())  # type: ignore[arg-type]
    noise_column = pl.Series(rng.normal(0.0, noise * spread, oracle.height))
    return oracle.select("instrument", "date", (pl.col("signal") + noise_column).alias("score"))


def _labels(market: Market) -> pl.DataFrame:
    return compute_label(market.bars, sessions=market.sessions).drop_nulls("label")


def test_a_planted_better_challenger_is_promoted_and_an_equal_one_is_not(market: Market) -> None:
    labels = _labels(market)
    champion = _planted(market, noise=3.0, seed=1)
    better = _planted(market, noise=0.5, seed=2)
    equal = _planted(market, noise=3.0, seed=3)
    lags = hac_lags(HORIZON)
    promoted = shadow_test(champion, better, labels, margin=0.0, alpha=0.05, lags=lags)
    kept = shadow_test(champion, equal, labels, margin=0.0, alpha=0.05, lags=lags)
    assert promoted.challenger_ic > promoted.champion_ic and promoted.promote
    assert promoted.p_value < 0.01 and promoted.statistic > 2.3
    assert not kept.promote and abs(kept.mean_difference) < 0.02
    assert kept.evidence()["decision"] == "keep champion" and kept.lags == 1
    assert len(promoted.sessions) > 60


def test_the_statistic_is_statsmodels_hac_mean_test(market: Market) -> None:
    labels = _labels(market)
    champion = _planted(market, noise=3.0, seed=1)
    challenger = _planted(market, noise=2.0, seed=5)
    result = shadow_test(champion, challenger, labels, margin=0.01, alpha=0.05, lags=3)
    a = session_ic(champion, labels).rename({"ic": "a"})
    b = session_ic(challenger, labels).rename({"ic": "b"})
    diff = a.join(b, on="date").sort("date").select(pl.col("b") - pl.col("a")).to_series()
    reference = sm.OLS(diff.to_numpy() + 0.01, np.ones(diff.len())).fit(
        cov_type="HAC", cov_kwds={"maxlags": 3}
    )
    assert result.statistic == pytest.approx(float(reference.tvalues[0]), rel=1e-12)
    # A bigger margin only makes promotion easier.
    looser = shadow_test(champion, challenger, labels, margin=0.05, alpha=0.05, lags=3)
    assert looser.statistic > result.statistic
