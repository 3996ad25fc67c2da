"""Factor statistics equal scipy's; planted effects rank high by IC; a selection ignores data
after the train end."""

from datetime import date

import numpy as np
import polars as pl
import pytest
from scipy import stats

from qlib_assets.explain.factors import daily_ic, factor_summary, forward_returns, select_top_icir
from qlib_assets.features.alpha158 import compute_alpha158
from qlib_assets.market.synthetic import MarketSpec, generate_market

COLUMNS = ["ROC5", "ROC60", "VMA20", "KLEN", "STD20", "CORR20", "RSQR20", "QTLU20", "IMAX20"]
TRAIN_END = date(2023, 3, 31)


@pytest.fixture(scope="module")
def market() -> tuple[pl.DataFrame, pl.DataFrame]:
    spec = MarketSpec(
        instruments=120, start=date(2022, 6, 1), end=date(2023, 6, 30), seed=11,
        effect_strength=0.15,
    )  # fmt: skip
    bars = generate_market(spec).bars
    features = compute_alpha158(bars).select("instrument", "date", *COLUMNS)
    return bars, features.filter(pl.col("date") >= date(2022, 10, 1))


def test_ic_matches_scipy(market: tuple[pl.DataFrame, pl.DataFrame]) -> None:
    bars, features = market
    returns = forward_returns(bars, [5])
    daily = daily_ic(features, returns, ["ROC5"], 5)
    day = daily.get_column("date")[10]
    rows = features.join(returns, on=["instrument", "date"]).filter(pl.col("date") == day)
    rows = rows.filter(pl.col("ROC5").is_finite() & pl.col("ret_5").is_finite())
    x, y = rows.get_column("ROC5").to_numpy(), rows.get_column("ret_5").to_numpy()
    ours = daily.filter(pl.col("date") == day)
    assert ours.get_column("ic").item() == pytest.approx(stats.pearsonr(x, y).statistic, abs=1e-9)
    assert ours.get_column("rank_ic").item() == pytest.approx(
        stats.spearmanr(x, y).statistic, abs=1e-9
    )
    summary = factor_summary(features, bars, ["ROC5"], horizons=[5])
    per_day = daily.get_column("ic").to_numpy()
    assert summary.get_column("icir").item() == pytest.approx(
        per_day.mean() / per_day.std(ddof=1), rel=1e-9
    )


def test_planted_reversal_ranks_first_by_ic(market: tuple[pl.DataFrame, pl.DataFrame]) -> None:
    bars, features = market
    summary = factor_summary(features, bars, COLUMNS, horizons=[1, 5, 10, 20])
    one = summary.filter(pl.col("horizon") == 1).sort(pl.col("rank_icir").abs(), descending=True)
    assert one.get_column("factor")[0] in {"ROC5", "ROC60", "VMA20"}, one
    roc5 = one.filter(pl.col("factor") == "ROC5")
    # Reversal: a high 5-session ROC (close 5 sessions ago over today) predicts a higher return.
    assert roc5.get_column("rank_ic").item() > 0.02
    assert set(summary.get_column("horizon")) == {1, 5, 10, 20}
    assert summary.get_column("coverage").min() > 0.8
    assert np.isfinite(summary.get_column("autocorr").to_numpy()).all()


def test_selection_ignores_data_after_the_train_end(
    market: tuple[pl.DataFrame, pl.DataFrame],
) -> None:
    bars, features = market
    chosen = select_top_icir(features, bars, COLUMNS, TRAIN_END, 4)
    noise = np.random.default_rng(0).normal(size=features.height)
    perturbed = features.with_columns(
        pl.when(pl.col("date") > TRAIN_END).then(pl.Series(noise)).otherwise(pl.col(c)).alias(c)
        for c in COLUMNS
    )
    moved = bars.with_columns(
        pl.when(pl.col("date") > TRAIN_END).then(pl.col("close") * 3.0).otherwise(pl.col("close"))
    )
    assert select_top_icir(perturbed, moved, COLUMNS, TRAIN_END, 4) == chosen
    assert len(chosen) == 4
