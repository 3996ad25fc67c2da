"""Alpha158 on our compiler against Qlib's engine over a provider built from the same bars."""

from datetime import date
from pathlib import Path

import numpy as np
import polars as pl
import pytest

from qlib_assets.features.alpha158 import (
    DEFAULT_LABEL,
    LABEL_COLUMN,
    alpha158_definitions,
    alpha158_lookback,
    compute_alpha158,
    compute_label,
    qlib_features,
)
from qlib_assets.features.expressions import to_session_panel
from qlib_assets.market.schema import FIELD_COLUMNS
from qlib_assets.market.synthetic import MarketSpec, generate_market
from qlib_assets.storage.qlib_bin import QlibProviderWriter
from qlib_assets_tests.features.parity import assert_parity

Market = tuple[pl.DataFrame, list[date], Path]


@pytest.fixture(scope="module")
def market(tmp_path_factory: pytest.TempPathFactory) -> Market:
    """20 instruments x ~300 sessions with suspensions, listings and delistings."""
    spec = MarketSpec(
        instruments=20,
        start=date(2022, 1, 4),
        end=date(2023, 3, 31),
        seed=5,
        listing_share=0.2,
        delisting_share=0.15,
        suspensions_per_year=3.0,
    )
    generated = generate_market(spec)
    # Qlib stores float32: both engines start from the same rounded inputs.
    bars = generated.bars.with_columns(
        pl.col(c).cast(pl.Float32).cast(pl.Float64) for c in FIELD_COLUMNS
    )
    days = list(generated.sessions)
    root = tmp_path_factory.mktemp("qlib_alpha158")
    QlibProviderWriter(root, "XSHG").rebuild(bars, days)
    return bars, days, root


def test_market_has_suspensions_listings_and_delistings(market: Market) -> None:
    bars, days, _ = market
    spans = bars.group_by("instrument").agg(pl.col("date").min(), pl.col("date").max().alias("e"))
    assert (spans.get_column("date") > days[0]).any()
    assert (spans.get_column("e") < days[-1]).any()
    assert to_session_panel(bars, days).get_column("close").null_count() > 0


def test_all_158_columns_match_qlib_including_warm_up(market: Market) -> None:
    bars, days, root = market
    ours = compute_alpha158(bars, sessions=days)
    theirs = compute_alpha158(bars, engine="qlib", provider_uri=root)
    _, names = alpha158_definitions()
    assert len(names) == 158
    assert ours.columns == ["instrument", "date", *names]
    assert ours.height == theirs.height > 4000
    # No warm-up rows are excluded: min_periods=1 windows match from each instrument's first bar.
    assert_parity(ours, theirs, list(names))


def test_label_matches_qlib(market: Market) -> None:
    bars, days, root = market
    ours = compute_label(bars, sessions=days)
    theirs = qlib_features(root, {LABEL_COLUMN: DEFAULT_LABEL}, bars)
    assert_parity(ours, theirs, [LABEL_COLUMN])
    last = ours.group_by("instrument").agg(pl.col(LABEL_COLUMN).tail(2).is_nan().all())
    assert last.get_column(LABEL_COLUMN).all()


def test_one_session_run_equals_full_history(market: Market) -> None:
    bars, days, _ = market
    full = compute_alpha158(bars, sessions=days)
    window = days[-(alpha158_lookback() + 10) :]
    first_dates = dict(bars.group_by("instrument").agg(pl.col("date").min()).iter_rows())
    recent = bars.filter(pl.col("date") >= window[0])
    latest = compute_alpha158(recent, sessions=window, first_dates=first_dates)
    target = days[-1]
    only = compute_alpha158(recent, sessions=window, first_dates=first_dates, targets=[target])
    a = latest.filter(pl.col("date") == target)
    b = full.filter(pl.col("date") == target)
    assert a.height == b.height > 10
    assert only.columns == a.columns
    for ours in (a, only):
        assert ours.select("instrument", "date").equals(b.select("instrument", "date"))
        left = ours.drop("instrument", "date").to_numpy().astype(np.float64)
        right = b.drop("instrument", "date").to_numpy().astype(np.float64)
        assert np.array_equal(np.isnan(left), np.isnan(right))
        assert np.allclose(left, right, rtol=1e-6, atol=1e-7, equal_nan=True)


def test_definitions_are_qlibs() -> None:
    from qlib.contrib.data.loader import Alpha158DL

    fields, names = Alpha158DL.get_feature_config()
    assert alpha158_definitions() == (tuple(fields), tuple(names))
    assert alpha158_lookback() == 61


def test_unknown_engine_and_missing_provider_are_refused(market: Market) -> None:
    bars, _, _ = market
    with pytest.raises(ValueError, match="unknown engine"):
        compute_alpha158(bars, engine="pandas")
    with pytest.raises(ValueError, match="provider_uri"):
        compute_alpha158(bars, engine="qlib")
