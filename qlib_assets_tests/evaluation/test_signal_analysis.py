"""IC, rank IC and rolling ICIR against Qlib's calc_ic on generated scores and labels."""

import json
from pathlib import Path

import numpy as np
import pandas as pd
import polars as pl
import pytest
from qlib.contrib.eva.alpha import calc_ic

from qlib_assets.evaluation.signal_analysis import (
    analyse_signals,
    daily_ic,
    plot_rolling_ic,
    with_rolling_icir,
)
from qlib_assets.features.alpha158 import compute_label
from qlib_assets.market.synthetic import Market

WINDOW = 10


@pytest.fixture(scope="module")
def labels(small_market: Market) -> pl.DataFrame:
    return compute_label(small_market.bars, sessions=small_market.sessions)


@pytest.fixture(scope="module")
def scores(small_market: Market) -> pl.DataFrame:
    """The planted expectation of d+1 plus noise, with tied scores and a one-row session."""
    rng = np.random.default_rng(11)
    oracle = small_market.oracle
    frame = oracle.select(
        "instrument",
        "date",
        (pl.col("expected_return") + pl.Series(rng.normal(0.0, 0.01, oracle.height)))
        .round(3)
        .alias("score"),
    )
    lone_day = small_market.sessions[3]
    return pl.concat(
        [frame.filter(pl.col("date") != lone_day), frame.filter(pl.col("date") == lone_day).head(1)]
    )


def _series(frame: pl.DataFrame, column: str) -> pd.Series:
    pdf = frame.to_pandas()
    index = pd.MultiIndex.from_arrays(
        [pd.to_datetime(pdf["date"]), pdf["instrument"]], names=["datetime", "instrument"]
    )
    return pd.Series(pdf[column].to_numpy(), index=index)


def test_daily_ic_and_rank_ic_equal_qlib_calc_ic(
    scores: pl.DataFrame, labels: pl.DataFrame
) -> None:
    ours = daily_ic(scores, labels)
    ic, rank_ic = calc_ic(_series(scores, "score"), _series(labels, "label"), dropna=True)
    assert ic.index.equals(rank_ic.index)
    expected = pl.DataFrame(
        {"date": ic.index.to_numpy(), "qlib_ic": ic.to_numpy(), "qlib_rank_ic": rank_ic.to_numpy()}
    ).with_columns(pl.col("date").cast(pl.Date))
    defined = ours.drop_nulls("ic")
    assert defined.get_column("date").to_list() == expected.get_column("date").to_list()
    joined = defined.join(expected, on="date")
    assert (joined["ic"] - joined["qlib_ic"]).abs().max() < 1e-10
    assert (joined["rank_ic"] - joined["qlib_rank_ic"]).abs().max() < 1e-10
    # Sessions Qlib leaves NaN (one pair; labels not known yet) are null here, not dropped.
    undefined = ours.filter(pl.col("ic").is_null())
    assert undefined.height >= 1 and (undefined["count"] < 2).all()


def test_rolling_icir_is_the_rolling_mean_over_the_rolling_sample_std(
    scores: pl.DataFrame, labels: pl.DataFrame
) -> None:
    rolled = with_rolling_icir(daily_ic(scores, labels), WINDOW).drop_nulls("ic")
    ic = rolled.get_column("ic").to_pandas()
    mean, std = ic.rolling(WINDOW).mean(), ic.rolling(WINDOW).std(ddof=1)
    np.testing.assert_allclose(rolled["ic_mean"].to_numpy(), mean.to_numpy(), rtol=1e-10)
    np.testing.assert_allclose(rolled["icir"].to_numpy(), (mean / std).to_numpy(), rtol=1e-9)
    assert rolled["icir"].null_count() == WINDOW - 1


def test_analysis_of_several_scores_is_json_ready_and_plotted(
    scores: pl.DataFrame, labels: pl.DataFrame, tmp_path: Path
) -> None:
    signal = scores.rename({"score": "signal"}).with_columns(pl.col("signal") * -1)
    analysis = analyse_signals({"model": scores, "signal": signal}, labels, window=WINDOW)
    assert set(analysis.summary) == {"model", "signal"}
    model, flipped = analysis.summary["model"], analysis.summary["signal"]
    assert model["ic"] == pytest.approx(-flipped["ic"])
    json.dumps(analysis.summary, allow_nan=False)
    assert set(analysis.daily.get_column("name").unique()) == {"model", "signal"}
    path = plot_rolling_ic(analysis, tmp_path / "plots" / "rolling_ic.png")
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert path.stat().st_size > 10_000
