"""Every landing layout reads back to the same canonical bars."""

from pathlib import Path

import polars as pl
import pytest

from qlib_assets.calendar import sessions
from qlib_assets.market.readers import read_landing_dates, read_landing_file
from qlib_assets.market.schema import canonical
from qlib_assets.market.synthetic import Market, write_landing
from qlib_assets.market.validation import validate_rows
from qlib_assets.settings import ValidationSettings
from qlib_assets_tests.conftest import SMALL_END, SMALL_START


def _read_all(paths: list[Path], aliases: dict[str, str] | None = None) -> pl.DataFrame:
    valid = sessions("XSHG", SMALL_START, SMALL_END)
    frames = [
        validate_rows(p, read_landing_file(p, aliases), valid, ValidationSettings()).bars
        for p in paths
    ]
    return canonical(pl.concat(frames))


@pytest.mark.parametrize("fmt", ["parquet", "csv"])
@pytest.mark.parametrize("layout", ["per-day", "per-instrument"])
def test_layouts_round_trip(small_market: Market, tmp_path: Path, fmt: str, layout: str) -> None:
    paths = write_landing(small_market, tmp_path, fmt, layout)  # type: ignore[arg-type]
    back = _read_all(paths)
    expected = canonical(small_market.bars)
    assert back.equals(expected) if fmt == "parquet" else back.shape == expected.shape
    if fmt == "csv":
        # CSV goes through decimal text: values agree to the printed precision.
        diff = (back.select(pl.col(pl.Float64)) - expected.select(pl.col(pl.Float64))).select(
            pl.all().abs().max()
        )
        assert max(diff.row(0)) < 1e-9 * expected.get_column("amount").max()


def test_dates_of_a_file(small_market: Market, tmp_path: Path) -> None:
    per_day = write_landing(small_market, tmp_path / "d", "parquet", "per-day")
    assert read_landing_dates(per_day[0]) == [SMALL_START.isoformat()]
    per_inst = write_landing(small_market, tmp_path / "i", "csv", "per-instrument")
    dates = read_landing_dates(per_inst[0])
    inst = per_inst[0].stem
    expected = small_market.bars.filter(pl.col("instrument") == inst).get_column("date")
    assert dates == [d.isoformat() for d in expected.to_list()]


def test_qlib_collector_csv(small_market: Market, tmp_path: Path) -> None:
    """Qlib's collector layout: sh600000.csv with a lowercase symbol, no amount, extra columns."""
    inst = small_market.bars.get_column("instrument").unique().sort()[0]
    bars = small_market.bars.filter(pl.col("instrument") == inst)
    collector = bars.select(
        pl.col("instrument").str.to_lowercase().alias("symbol"),
        "date",
        "open",
        "close",
        "high",
        "low",
        "volume",
        "factor",
        (pl.col("close").pct_change().fill_null(0.0)).alias("change"),
    )
    path = tmp_path / f"{inst.lower()}.csv"
    collector.write_csv(path, date_format="%Y-%m-%d")
    back = _read_all([path])
    assert back.get_column("instrument").unique().to_list() == [inst]
    assert back.select("date", "close", "factor").equals(bars.select("date", "close", "factor"))
    typical = (bars["high"] + bars["low"] + bars["close"]) / 3
    assert (back["vwap"] - typical).abs().max() < 1e-9
    assert (back["amount"] - typical * bars["volume"]).abs().max() < 1e-3


def test_column_aliases(small_market: Market, tmp_path: Path) -> None:
    day = small_market.bars.filter(pl.col("date") == SMALL_START)
    renamed = day.rename({"instrument": "secid", "close": "px_last"})
    path = tmp_path / f"bars_{SMALL_START.isoformat()}.parquet"
    renamed.write_parquet(path)
    back = _read_all([path], {"secid": "instrument", "PX_LAST": "close"})
    assert back.equals(canonical(day))
