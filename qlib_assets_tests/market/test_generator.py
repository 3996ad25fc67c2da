from datetime import date
from pathlib import Path

import numpy as np
import polars as pl
import pytest

from qlib_assets.calendar import sessions
from qlib_assets.market.schema import BAR_COLUMNS, BAR_SCHEMA, canonical
from qlib_assets.market.synthetic import (
    ORACLE_PATH,
    Market,
    MarketSpec,
    generate_market,
    write_landing,
)
from qlib_assets.market.synthetic.quality import (
    mean_daily_ic,
    next_returns,
    oracle_ic,
    reversal_factor,
    reversal_ic,
)
from qlib_assets.storage.atomic import sha256_file

SMALL = MarketSpec(instruments=50, start=date(2023, 1, 1), end=date(2023, 12, 31), seed=3)
MEDIUM = MarketSpec(instruments=200, start=date(2022, 1, 1), end=date(2023, 12, 31), seed=11)
SHIFT = date(2023, 1, 3)


@pytest.fixture(scope="module")
def small() -> Market:
    return generate_market(SMALL)


@pytest.fixture(scope="module")
def medium() -> Market:
    return generate_market(MEDIUM)


@pytest.fixture(scope="module")
def shifted() -> Market:
    spec = MarketSpec(
        instruments=200, start=MEDIUM.start, end=MEDIUM.end, seed=MEDIUM.seed, shift_date=SHIFT
    )
    return generate_market(spec)


def with_previous(bars: pl.DataFrame) -> pl.DataFrame:
    """Bars with the previous bar's close and factor (the previous session's, when traded)."""
    return bars.sort("instrument", "date").with_columns(
        prev_close=pl.col("close").shift(1).over("instrument"),
        prev_factor=pl.col("factor").shift(1).over("instrument"),
    )


def test_same_seed_same_market_other_seed_differs(small: Market) -> None:
    again = generate_market(SMALL)
    assert again.bars.equals(small.bars)
    assert again.oracle.equals(small.oracle)
    other = generate_market(
        MarketSpec(instruments=50, start=SMALL.start, end=SMALL.end, seed=SMALL.seed + 1)
    )
    assert not other.bars.equals(small.bars)


def test_same_seed_gives_byte_identical_files(small: Market, tmp_path: Path) -> None:
    first = write_landing(small, tmp_path / "a", oracle=True)
    second = write_landing(generate_market(SMALL), tmp_path / "b", oracle=True)
    assert [p.relative_to(tmp_path / "a") for p in first] == [
        p.relative_to(tmp_path / "b") for p in second
    ]
    assert [sha256_file(p) for p in first] == [sha256_file(p) for p in second]


def test_schema_sorted_and_codes_qlib_style(small: Market) -> None:
    assert small.bars.schema == pl.Schema(BAR_SCHEMA)
    assert small.bars.equals(canonical(small.bars))
    assert small.bars.null_count().sum_horizontal().item() == 0
    codes = small.bars["instrument"].unique()
    assert codes.len() == SMALL.instruments
    assert codes.str.contains(r"^(SH60|SZ00)[0-9]{4}$").all()


def test_only_exchange_sessions(small: Market) -> None:
    expected = sessions("XSHG", SMALL.start, SMALL.end)
    assert small.sessions == expected
    assert sorted(small.bars["date"].unique().to_list()) == list(expected)
    # National Day week is a weekday holiday of the Shanghai exchange.
    assert date(2023, 10, 2) not in set(small.bars["date"].to_list())


def test_ohlc_invariants(small: Market) -> None:
    checks = small.bars.select(
        high=pl.col("high") >= pl.max_horizontal("open", "close"),
        low=pl.col("low") <= pl.min_horizontal("open", "close"),
        positive=pl.min_horizontal("open", "high", "low", "close", "vwap") > 0,
        volume=pl.col("volume") >= 0,
        factor=pl.col("factor") >= 1.0,
    )
    failing = [name for name in checks.columns if not checks[name].all()]
    assert failing == []


def test_vwap_and_amount_consistent(small: Market) -> None:
    bars = small.bars
    assert ((bars["low"] <= bars["vwap"]) & (bars["vwap"] <= bars["high"])).all()
    np.testing.assert_allclose(bars["amount"], bars["vwap"] * bars["volume"], rtol=1e-12)
    raw_shares = (bars["volume"] * bars["factor"]).to_numpy()
    np.testing.assert_allclose(raw_shares / 100.0, np.round(raw_shares / 100.0), atol=1e-6)


def test_listings_delistings_and_suspensions_present(small: Market) -> None:
    days = small.sessions
    index = pl.DataFrame({"date": list(days), "session": range(len(days))})
    per = (
        small.bars.join(index, on="date")
        .sort("instrument", "date")
        .with_columns(gap=pl.col("session").diff().over("instrument"))
        .group_by("instrument")
        .agg(
            first=pl.col("date").min(),
            last=pl.col("date").max(),
            longest_gap=pl.col("gap").max(),
        )
    )
    assert (per["first"] > days[0]).any(), "no listing inside the range"
    assert (per["last"] < days[-1]).any(), "no delisting inside the range"
    # A gap of k sessions between consecutive bars is a suspension of k - 1 sessions.
    assert (per["longest_gap"] >= 3).any(), "no multi-session suspension"


def test_splits_move_factor_and_raw_price_not_adjusted_price(small: Market) -> None:
    bars = with_previous(small.bars)
    splits = bars.filter(pl.col("factor") / pl.col("prev_factor") >= 1.2)
    assert splits.height > 0, "no split in the market"
    raw_move = (splits["close"] / splits["factor"]) / (splits["prev_close"] / splits["prev_factor"])
    adjusted_move = splits["close"] / splits["prev_close"]
    assert (raw_move < 0.9).all()
    assert ((adjusted_move - 1.0).abs() <= 0.1 + 1e-9).all()


def test_price_limit_holds_on_raw_prices(small: Market) -> None:
    bars = with_previous(small.bars).drop_nulls("prev_close")
    # On an ex-date the exchange's reference is the ex-rights previous close.
    reference = bars["prev_close"] / bars["prev_factor"] * (bars["prev_factor"] / bars["factor"])
    for column in ("open", "high", "low", "close"):
        move = bars[column] / bars["factor"] / reference - 1.0
        assert (move.abs() <= 0.1 + 1e-9).all(), column
    close_move = (bars["close"] / bars["factor"] / reference - 1.0).abs()
    assert (close_move >= 0.1 - 1e-9).sum() > 0, "the limit never binds: clipping is untested"


def test_oracle_rows_match_bars_and_ic_is_weak_but_real(medium: Market) -> None:
    assert medium.oracle.select("instrument", "date").equals(
        medium.bars.select("instrument", "date")
    )
    ic = oracle_ic(medium)
    assert 0.05 <= ic <= 0.11, ic


def test_reversal_factor_has_planted_sign(medium: Market) -> None:
    assert reversal_ic(medium) > 0.02


def test_regime_shift_changes_market_from_its_date_only(medium: Market, shifted: Market) -> None:
    before = pl.col("date") < SHIFT
    assert shifted.bars.filter(before).equals(medium.bars.filter(before))

    returns = with_previous(shifted.bars).with_columns(
        ret=pl.col("close") / pl.col("prev_close") - 1.0
    )

    def spread(frame: pl.DataFrame) -> tuple[float, float]:
        return float(frame["ret"].drop_nulls().std()), float(frame["volume"].median())

    early_vol, early_volume = spread(returns.filter(pl.col("date") < date(2022, 7, 1)))
    late_vol, late_volume = spread(returns.filter(before & (pl.col("date") >= date(2022, 7, 1))))
    after_vol, after_volume = spread(returns.filter(~before))
    assert 0.85 < late_vol / early_vol < 1.15
    assert 0.8 < late_volume / early_volume < 1.25
    assert after_vol / late_vol > 1.3
    assert after_volume / late_volume > 1.5


def test_regime_shift_flips_reversal_effect(shifted: Market) -> None:
    scored = reversal_factor(shifted.bars).join(
        next_returns(shifted.bars, shifted.sessions), on=["instrument", "date"]
    )
    assert mean_daily_ic(scored.filter(pl.col("date") < SHIFT), "reversal") > 0.02
    assert mean_daily_ic(scored.filter(pl.col("date") >= SHIFT), "reversal") < -0.005


@pytest.mark.parametrize("fmt", ["parquet", "csv"])
@pytest.mark.parametrize("layout", ["per-day", "per-instrument"])
def test_landing_files_round_trip(small: Market, tmp_path: Path, fmt: str, layout: str) -> None:
    written = write_landing(small, tmp_path, fmt=fmt, layout=layout, oracle=True)  # type: ignore[arg-type]
    bar_files = [p for p in written if p.parent == tmp_path]
    assert written[-1] == tmp_path / ORACLE_PATH
    assert sorted(tmp_path.glob(f"*.{fmt}")) == sorted(bar_files)
    if layout == "per-day":
        assert len(bar_files) == len(small.sessions)
        assert bar_files[0].name == f"bars_{small.sessions[0].isoformat()}.{fmt}"
    else:
        assert {p.stem for p in bar_files} == set(small.bars["instrument"].unique())
    if fmt == "parquet":
        frames = [pl.read_parquet(p) for p in bar_files]
    else:
        frames = [pl.read_csv(p, schema=BAR_SCHEMA) for p in bar_files]
    assert all(tuple(frame.columns) == BAR_COLUMNS for frame in frames)
    assert canonical(pl.concat(frames)).equals(small.bars)
    assert pl.read_parquet(tmp_path / ORACLE_PATH).equals(small.oracle)


def test_csv_dates_are_iso_days(small: Market, tmp_path: Path) -> None:
    written = write_landing(small, tmp_path, fmt="csv", layout="per-instrument")
    second_line = written[0].read_text().splitlines()[1]
    assert second_line.split(",")[1] == small.bars["date"][0].isoformat()


@pytest.mark.parametrize(
    "changes",
    [{"instruments": 0}, {"start": date(2024, 1, 1)}, {"listing_share": 1.5}, {"sectors": 0}],
)
def test_spec_rejects_nonsense(changes: dict[str, object]) -> None:
    fields = {"instruments": 5, "start": date(2023, 1, 1), "end": date(2023, 3, 1)} | changes
    with pytest.raises(ValueError):
        MarketSpec(**fields)  # type: ignore[arg-type]


def test_range_without_sessions_is_rejected() -> None:
    with pytest.raises(ValueError, match="no XSHG sessions"):
        generate_market(MarketSpec(instruments=5, start=date(2023, 10, 1), end=date(2023, 10, 6)))


def test_single_session_market() -> None:
    day = date(2023, 1, 3)
    market = generate_market(MarketSpec(instruments=200, start=day, end=day, seed=0))
    assert market.bars["date"].unique().to_list() == [day]
    assert (market.bars["factor"] == 1.0).all()
