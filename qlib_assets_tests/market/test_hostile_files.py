"""Hostile landing files: each is ingested as the clean file would be, or rejected by a named
rule with its file (and row), touching no other file or session."""

import json
import shutil
from collections.abc import Callable
from datetime import date
from pathlib import Path

import polars as pl
import pytest

from qlib_assets.calendar import sessions
from qlib_assets.market.ingest import RejectedFilesError
from qlib_assets.market.raw_bars import build_raw_bars, landing_catalog, reject_unplaceable
from qlib_assets.market.synthetic import Market
from qlib_assets.settings import Settings
from qlib_assets.storage.lake import Lake

DAYS = sessions("XSHG", date(2024, 1, 2), date(2024, 1, 10))
TARGET = DAYS[2]
KEYS = [d.isoformat() for d in DAYS]


def _day(market: Market, day: date) -> pl.DataFrame:
    return market.bars.filter(pl.col("date") == day).sort("instrument")


def _csv(frame: pl.DataFrame) -> str:
    return frame.write_csv(date_format="%Y-%m-%d")


def _write(path: Path, data: bytes | str) -> Path:
    path.write_bytes(data.encode() if isinstance(data, str) else data)
    return path


# Each writes the TARGET session's file in a hostile form; the lake must equal the clean run.
Writer = Callable[[pl.DataFrame, Path], Path]
NORMALISED: dict[str, Writer] = {
    "bom": lambda f, p: _write(p.with_suffix(".csv"), b"\xef\xbb\xbf" + _csv(f).encode()),
    "crlf": lambda f, p: _write(p.with_suffix(".csv"), _csv(f).replace("\n", "\r\n")),
    "semicolon": lambda f, p: _write(p.with_suffix(".csv"), f.write_csv(separator=";")),
    "non_utf8": lambda f, p: _write(
        p.with_suffix(".csv"),
        _csv(f.with_columns(name=pl.lit("浦发银行"))).encode("gbk", errors="strict"),
    ),
    "extra_columns": lambda f, p: (
        f.with_columns(sector=pl.lit("bank"), pe=pl.lit(7.5)).write_parquet(p) or p
    ),
    "reordered_columns": lambda f, p: f.select(reversed(f.columns)).write_parquet(p) or p,
    "numeric_strings": lambda f, p: (
        f.with_columns(pl.col("open", "close", "volume").cast(pl.String)).write_parquet(p) or p
    ),
    "integer_dates": lambda f, p: (
        f.with_columns(pl.col("date").dt.strftime("%Y%m%d").cast(pl.Int64)).write_parquet(p) or p
    ),
    "slash_dates": lambda f, p: _write(
        p.with_suffix(".csv"), f.with_columns(pl.col("date").dt.strftime("%Y/%m/%d")).write_csv()
    ),
    "tz_timestamps": lambda f, p: (
        f.with_columns(
            pl.col("date").cast(pl.Datetime("us")).dt.replace_time_zone("Asia/Shanghai")
        ).write_parquet(p)
        or p
    ),
    "lower_padded_codes": lambda f, p: (
        f.with_columns(
            ("  " + pl.col("instrument").str.to_lowercase() + " ").alias("instrument")
        ).write_parquet(p)
        or p
    ),
    "ts_code_and_symbol": lambda f, p: (
        f.with_columns(
            (pl.col("instrument").str.slice(2) + "." + pl.col("instrument").str.slice(0, 2)).alias(
                "ts_code"
            ),
            pl.col("instrument").str.slice(2).alias("symbol"),
        )
        .drop("instrument")
        .write_parquet(p)
        or p
    ),
}


@pytest.fixture
def landed(settings: Settings, small_market: Market) -> Settings:
    for day in DAYS:
        _day(small_market, day).write_parquet(settings.landing_dir / f"bars_{day}.parquet")
    build_raw_bars(settings, list(DAYS))
    return settings


def _lake(settings: Settings) -> dict[date, bytes]:
    lake = Lake(settings.lake_dir)
    return {d: lake.path("raw_bars", d).read_bytes() for d in DAYS}


@pytest.mark.parametrize("case", sorted(NORMALISED))
def test_normalised_file_ingests_like_the_clean_one(
    landed: Settings, small_market: Market, case: str
) -> None:
    before = _lake(landed)
    clean = landed.landing_dir / f"bars_{TARGET}.parquet"
    clean.unlink()
    hostile = NORMALISED[case](_day(small_market, TARGET), clean)
    report = build_raw_bars(landed, list(DAYS))
    assert report.rejected == [] and hostile.exists()
    assert _lake(landed) == before


def _rejected(settings: Settings, days: list[date]) -> tuple[list[dict], str]:
    """Run ``days``; return the quarantined files' reasons and the error (or '')."""
    try:
        build_raw_bars(settings, days)
        error = ""
    except RejectedFilesError as exc:
        error = str(exc)
    reasons = [json.loads(p.read_text()) for p in settings.quarantine_dir.glob("*.reason.json")]
    return reasons, error


REJECTED: dict[str, tuple[Writer, str, int | None]] = {
    "zero_byte": (lambda f, p: _write(p, b""), "empty_file", None),
    "zero_byte_csv": (lambda f, p: _write(p.with_suffix(".csv"), b""), "empty_file", None),
    "truncated_footer": (
        lambda f, p: f.write_parquet(p) or _write(p, p.read_bytes()[:-12]),
        "unreadable",
        None,
    ),
    "header_only_csv": (
        lambda f, p: _write(p.with_suffix(".csv"), _csv(f.clear())),
        "empty_file",
        None,
    ),
    "huge_price": (
        lambda f, p: (
            f.with_columns(pl.col("open", "high", "low", "close") * 1e300).write_parquet(p) or p
        ),
        "value_out_of_range",
        1,
    ),
    "nan_amount": (
        lambda f, p: f.with_columns(amount=pl.lit(float("nan"))).write_parquet(p) or p,
        "non_finite_value",
        1,
    ),
    "null_factor": (
        lambda f, p: f.with_columns(factor=pl.lit(None, pl.Float64)).write_parquet(p) or p,
        "mistyped_column",
        1,
    ),
    "name_says_another_session": (
        lambda f, p: f.with_columns(date=pl.lit(DAYS[3])).write_parquet(p) or p,
        "date_outside_partition",
        1,
    ),
}


@pytest.mark.parametrize("case", sorted(REJECTED))
def test_rejected_file_is_named_and_touches_nothing_else(
    landed: Settings, small_market: Market, case: str
) -> None:
    before = _lake(landed)
    clean = landed.landing_dir / f"bars_{TARGET}.parquet"
    clean.unlink()
    writer, rule, row = REJECTED[case]
    hostile = writer(_day(small_market, TARGET), clean)
    reasons, error = _rejected(landed, list(DAYS))
    assert f"rule '{rule}'" in error and str(hostile) in error
    (reason,) = reasons
    assert reason["file"] == str(hostile)
    assert any(v["rule"] == rule and v["row"] == row for v in reason["violations"])
    assert not hostile.exists() and _lake(landed) == before
    # The other sessions are ingested again without it.
    others = [d for d in DAYS if d != TARGET]
    assert build_raw_bars(landed, others).rejected == []


def test_copy_under_a_new_name_is_ignored(landed: Settings) -> None:
    before = _lake(landed)
    clean = landed.landing_dir / f"bars_{TARGET}.parquet"
    shutil.copyfile(clean, landed.landing_dir / f"copy_of_bars_{TARGET}.parquet")
    assert build_raw_bars(landed, list(DAYS)).rejected == []
    assert _lake(landed) == before


def test_overlapping_different_file_is_rejected_by_duplicate_key(
    landed: Settings, small_market: Market
) -> None:
    before = _lake(landed)
    other = landed.landing_dir / f"late_bars_{TARGET}.parquet"
    _day(small_market, TARGET).with_columns(pl.col("volume") + 1).write_parquet(other)
    report = build_raw_bars(landed, list(DAYS))
    assert len(report.rejected) == 1 and "rule 'duplicate_key'" in report.rejected[0]
    assert not other.exists() and _lake(landed) == before


def test_directory_named_like_a_file_is_ignored(landed: Settings) -> None:
    before = _lake(landed)
    (landed.landing_dir / f"bars_{TARGET}_extra.parquet").mkdir()
    assert build_raw_bars(landed, list(DAYS)).rejected == []
    assert _lake(landed) == before


def test_files_no_session_run_reads_are_rejected_alone(
    landed: Settings, small_market: Market
) -> None:
    before = _lake(landed)
    rows = _day(small_market, TARGET)
    past = landed.landing_dir / "bars_2199-01-05.parquet"
    rows.with_columns(date=pl.lit(date(2199, 1, 5))).write_parquet(past)
    dateless = landed.landing_dir / "vendor_dump.parquet"
    rows.with_columns(pl.col("date").cast(pl.Int64)).write_parquet(dateless)  # days since 1970
    moved = reject_unplaceable(landed, KEYS)
    assert len(moved) == 2 and not past.exists() and not dateless.exists()
    rules = {
        json.loads(p.read_text())["violations"][0]["rule"]
        for p in landed.quarantine_dir.glob("*.reason.json")
    }
    assert rules == {"date_not_session", "mistyped_column"}
    assert _lake(landed) == before and build_raw_bars(landed, list(DAYS)).rejected == []


def test_per_instrument_layout_single_session_keeps_other_files(
    settings: Settings, small_market: Market
) -> None:
    bars = small_market.bars.filter(pl.col("date").is_in(DAYS))
    for (code,), part in bars.partition_by("instrument", as_dict=True).items():
        part.write_parquet(settings.landing_dir / f"{code}.parquet")
    files = sorted(settings.landing_dir.iterdir())
    report = build_raw_bars(settings, [DAYS[0]])
    assert report.rejected == [] and sorted(settings.landing_dir.iterdir()) == files
    assert not any(settings.quarantine_dir.iterdir())
    assert len(landing_catalog(settings).scan()) == len(files)


@pytest.mark.slow
def test_200k_row_session_file_is_accepted(settings: Settings) -> None:
    n = 200_000
    frame = pl.DataFrame(
        {
            "instrument": [f"SH{600000 + i}" for i in range(n)],
            "date": [TARGET] * n,
            "open": [10.0] * n,
            "high": [11.0] * n,
            "low": [9.0] * n,
            "close": [10.5] * n,
            "volume": [1000.0] * n,
        }
    )
    frame.write_parquet(settings.landing_dir / f"bars_{TARGET}.parquet")
    assert build_raw_bars(settings, [TARGET]).rows == n
