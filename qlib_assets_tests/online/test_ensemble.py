"""The ensemble signal against Qlib's AverageEnsemble on the same generated scores."""

import numpy as np
import pandas as pd
import polars as pl
import pytest
from qlib.model.ens.ensemble import AverageEnsemble

from qlib_assets.market.synthetic import Market
from qlib_assets.online.ensemble import SIGNAL_SCHEMA, average_ensemble


def _spec_scores(market: Market) -> dict[str, pl.DataFrame]:
    """Three noisy views of the planted expectation, with rows one spec lacks and a session on
    which one spec scores a single instrument (no spread: Qlib's NaN)."""
    rng = np.random.default_rng(7)
    base = market.oracle.select("instrument", "date", pl.col("expected_return").alias("truth"))
    views = {}
    for name, noise in (("lgbm", 0.004), ("xgb", 0.008), ("mlp", 0.02)):
        views[name] = base.select(
            "instrument",
            "date",
            (pl.col("truth") + pl.Series(rng.normal(0.0, noise, base.height))).alias("score"),
        )
    days = market.sessions
    xgb = views["xgb"]
    views["xgb"] = pl.concat(
        [
            xgb.filter(pl.col("date") != days[5]).sample(fraction=0.9, seed=3),
            xgb.filter(pl.col("date") == days[5]).head(1),
        ]
    )
    views["mlp"] = views["mlp"].filter(pl.col("instrument") != views["mlp"]["instrument"][0])
    return views


def _qlib_average(views: dict[str, pl.DataFrame]) -> pd.Series:
    frames = {}
    for name, frame in views.items():
        pdf = frame.to_pandas()
        pdf["datetime"] = pd.to_datetime(pdf["date"])
        frames[name] = pdf.set_index(["datetime", "instrument"])[["score"]]
    return AverageEnsemble()(frames)


def test_signal_equals_qlib_average_ensemble(small_market: Market) -> None:
    views = _spec_scores(small_market)
    ours = average_ensemble(views)
    qlib = _qlib_average(views).dropna()
    assert ours.schema == pl.Schema(SIGNAL_SCHEMA)
    assert ours.height == len(qlib)
    reference = pl.DataFrame(
        {
            "instrument": qlib.index.get_level_values("instrument").astype(str),
            "date": qlib.index.get_level_values("datetime").to_numpy(),
            "expected": qlib.to_numpy(),
        }
    ).with_columns(pl.col("date").cast(pl.Date))
    joined = ours.join(reference, on=["instrument", "date"], how="inner")
    assert joined.height == ours.height
    assert (joined["signal"] - joined["expected"]).abs().max() < 1e-12
    # The lone xgb row of that session has no spread, so only the other specs count there.
    day = small_market.sessions[5]
    lone = views["xgb"].filter(pl.col("date") == day).row(0, named=True)
    two_spec = average_ensemble({k: views[k] for k in ("lgbm", "mlp")})
    key = (pl.col("instrument") == lone["instrument"]) & (pl.col("date") == day)
    assert ours.filter(key)["signal"][0] == pytest.approx(two_spec.filter(key)["signal"][0])


def test_one_row_per_instrument_and_session_and_per_session_runs_agree(
    small_market: Market,
) -> None:
    views = _spec_scores(small_market)
    whole = average_ensemble(views)
    assert not whole.select("instrument", "date").is_duplicated().any()
    days = small_market.sessions
    per_session = pl.concat(
        average_ensemble({k: v.filter(pl.col("date") == day) for k, v in views.items()})
        for day in days[:10]
    )
    assert per_session.equals(whole.filter(pl.col("date").is_in(days[:10])))


def test_duplicated_prediction_rows_are_refused(small_market: Market) -> None:
    views = _spec_scores(small_market)
    doubled = pl.concat([views["lgbm"], views["lgbm"].head(1)])
    with pytest.raises(ValueError, match="lgbm: predictions hold a duplicated"):
        average_ensemble({"lgbm": doubled, "xgb": views["xgb"]})
