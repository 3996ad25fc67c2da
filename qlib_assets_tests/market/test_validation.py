"""One malformed landing file per hard rule: quarantined, named, and no partition changes."""

import json
from collections.abc import Callable
from datetime import date
from pathlib import Path

import polars as pl
import pytest

from qlib_assets.calendar import sessions
from qlib_assets.market.ingest import RejectedFilesError
from qlib_assets.market.raw_bars import build_raw_bars
from qlib_assets.market.synthetic import Market
from qlib_assets.market.validation import HARD_RULES, soft_findings
from qlib_assets.settings import Settings, ValidationSettings
from qlib_assets.storage.lake import Lake

DAYS = sessions("XSHG", date(2024, 1, 2), date(2024, 1, 12))
TARGET = DAYS[3]


def _day(market: Market, day: date) -> pl.DataFrame:
    return market.bars.filter(pl.col("date") == day).sort("instrument")


def _land(settings: Settings, market: Market, days: tuple[date, ...]) -> None:
    for day in days:
        _day(market, day).write_parquet(settings.landing_dir / f"bars_{day.isoformat()}.parquet")


def _set(frame: pl.DataFrame, row: int, **values: object) -> pl.DataFrame:
    index = pl.int_range(pl.len()) == row
    return frame.with_columns(
        pl.when(index).then(pl.lit(v)).otherwise(pl.col(k)).cast(frame.schema[k]).alias(k)
        for k, v in values.items()
    )


def _parquet(frame: pl.DataFrame, path: Path) -> Path:
    frame.write_parquet(path)
    return path


def _truncated(frame: pl.DataFrame, path: Path) -> Path:
    frame.write_parquet(path)
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    return path


def _mistyped_csv(frame: pl.DataFrame, path: Path) -> Path:
    text = frame.with_columns(pl.col("open").cast(pl.String())).with_columns(
        pl.when(pl.int_range(pl.len()) == 2)
        .then(pl.lit("abc"))
        .otherwise(pl.col("open"))
        .alias("open")
    )
    csv = path.with_suffix(".csv")
    text.write_csv(csv, date_format="%Y-%m-%d")
    return csv


def _outside_instrument_file(frame: pl.DataFrame, path: Path) -> Path:
    """A per-instrument file (no date in its name) with one row on a Saturday."""
    row = frame.head(1).with_columns(instrument=pl.lit("SH688999"))
    bad = pl.concat([row, row.with_columns(date=pl.lit(date(2024, 1, 6)))])
    target = path.with_name("SH688999.parquet")
    bad.write_parquet(target)
    return target


def _symlink(frame: pl.DataFrame, path: Path) -> Path:
    target = path.parent.parent / "elsewhere.parquet"
    frame.write_parquet(target)
    path.symlink_to(target)
    return path


Mutation = Callable[[pl.DataFrame, Path], Path]
CASES: dict[str, tuple[Mutation, int | None]] = {
    "unreadable": (_truncated, None),
    "empty_file": (lambda f, p: _parquet(f.clear(), p), None),
    "missing_column": (lambda f, p: _parquet(f.drop("close"), p), None),
    "mistyped_column": (_mistyped_csv, 3),
    "non_finite_price": (lambda f, p: _parquet(_set(f, 1, close=float("nan")), p), 2),
    "non_positive_price": (lambda f, p: _parquet(_set(f, 4, open=-1.0), p), 5),
    "negative_volume": (lambda f, p: _parquet(_set(f, 0, volume=-5.0), p), 1),
    "high_below_open_close": (
        lambda f, p: _parquet(_set(f, 6, high=float(f["low"][6])), p),
        7,
    ),
    "low_above_open_close": (
        lambda f, p: _parquet(_set(f, 2, low=float(f["high"][2])), p),
        3,
    ),
    "duplicate_key": (lambda f, p: _parquet(pl.concat([f, f.slice(5, 1)]), p), 6),
    "date_not_session": (_outside_instrument_file, 2),
    "date_outside_partition": (
        lambda f, p: _parquet(_set(f, 3, date=DAYS[4]), p),
        4,
    ),
    "malformed_instrument": (lambda f, p: _parquet(_set(f, 8, instrument="600000"), p), 9),
    "non_finite_value": (lambda f, p: _parquet(_set(f, 2, amount=float("nan")), p), 3),
    "negative_amount": (lambda f, p: _parquet(_set(f, 5, amount=-10.0), p), 6),
    "value_out_of_range": (
        lambda f, p: _parquet(_set(f, 1, open=1e308, high=1e308, low=1e308, close=1e308), p),
        2,
    ),
    "not_a_regular_file": (_symlink, None),
}


def test_every_hard_rule_has_a_case() -> None:
    assert set(CASES) == set(HARD_RULES)


@pytest.mark.parametrize("rule", sorted(CASES))
def test_bad_file_is_quarantined_and_nothing_changes(
    settings: Settings, small_market: Market, rule: str
) -> None:
    _land(settings, small_market, DAYS)
    build_raw_bars(settings, list(DAYS[:5]))
    lake = Lake(settings.lake_dir)
    before = {d: lake.path("raw_bars", d).read_bytes() for d in DAYS[:5]}

    mutate, row = CASES[rule]
    landed = settings.landing_dir / f"bars_{TARGET.isoformat()}.parquet"
    good = _day(small_market, TARGET)
    landed.unlink()
    bad = mutate(good, landed)
    if bad != landed and rule == "date_not_session":
        good.write_parquet(landed)

    # Quarantined either way; the run fails only when its session is left without rows.
    try:
        report = build_raw_bars(settings, [TARGET])
        errors, messages = [], report.rejected
        assert rule == "date_not_session"  # the session's own file is still there
    except RejectedFilesError as exc:
        errors, messages = exc.errors, [str(exc)]
    message = "\n".join(messages)
    assert str(bad) in message and f"rule '{rule}'" in message
    if row is not None:
        assert f"row {row}:" in message
    if errors:
        violations = [v for e in errors for v in e.violations]
        assert any(v.rule == rule and v.row == row for v in violations)

    assert not bad.exists() and not bad.is_symlink()
    (moved,) = [p for p in settings.quarantine_dir.iterdir() if not p.name.endswith(".json")]
    assert moved.is_file()
    reason = json.loads(moved.with_name(moved.name + ".reason.json").read_text())
    assert reason["file"] == str(bad)
    assert any(v["rule"] == rule for v in reason["violations"])
    assert {d: lake.path("raw_bars", d).read_bytes() for d in DAYS[:5]} == before


def test_rerun_after_quarantine_is_clean(settings: Settings, small_market: Market) -> None:
    _land(settings, small_market, DAYS)
    landed = settings.landing_dir / f"bars_{TARGET.isoformat()}.parquet"
    _set(_day(small_market, TARGET), 0, volume=-1.0).write_parquet(landed)
    with pytest.raises(RejectedFilesError):
        build_raw_bars(settings, list(DAYS))
    assert not any(Lake(settings.lake_dir).exists("raw_bars", d) for d in DAYS)
    _day(small_market, TARGET).write_parquet(landed)
    first = build_raw_bars(settings, list(DAYS))
    again = build_raw_bars(settings, list(DAYS))
    assert first.hashes == again.hashes and first.rows == _rows(small_market, DAYS)


def _rows(market: Market, days: tuple[date, ...]) -> int:
    return market.bars.filter(pl.col("date").is_in(days)).height


def test_missing_session_fails_with_its_date(settings: Settings, small_market: Market) -> None:
    _land(settings, small_market, DAYS[:3])
    with pytest.raises(ValueError, match=DAYS[3].isoformat()):
        build_raw_bars(settings, list(DAYS[:4]))


def test_soft_rules_flag_a_jump_and_a_coverage_drop(small_market: Market) -> None:
    bars = small_market.bars.filter(pl.col("date").is_in(DAYS[:4]))
    inst = bars.filter(pl.col("date") == DAYS[2]).get_column("instrument")[0]
    hit = (pl.col("instrument") == inst) & (pl.col("date") == DAYS[2])
    jumped = bars.with_columns(
        close=pl.when(hit).then(pl.col("close") * 1.5).otherwise(pl.col("close")),
        high=pl.when(hit).then(pl.col("high") * 1.5).otherwise(pl.col("high")),
    )
    thinned = jumped.filter((pl.col("date") != DAYS[3]) | (pl.col("instrument") < "SH6020"))
    findings = soft_findings(thinned, None, ValidationSettings())
    # The spike and the fall back the next session both break the limit.
    assert findings.price_jumps.select("instrument", "date").rows() == [
        (inst, DAYS[2]),
        (inst, DAYS[3]),
    ]
    assert [c["date"] for c in findings.coverage_drops] == [DAYS[3].isoformat()]
    clean = soft_findings(bars, None, ValidationSettings())
    assert clean.price_jumps.height == 0 and not clean.coverage_drops
