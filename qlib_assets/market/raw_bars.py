"""The raw_bars computation: landing files of a session range -> one Parquet per session."""

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date
from pathlib import Path

import polars as pl

from qlib_assets.calendar import sessions, shift_sessions
from qlib_assets.market.errors import Violation
from qlib_assets.market.ingest import load_sessions
from qlib_assets.market.landing import LandingCatalog, quarantine
from qlib_assets.market.validation import SoftFindings, soft_findings
from qlib_assets.settings import Settings
from qlib_assets.storage.atomic import write_parquet_atomic
from qlib_assets.storage.lake import Lake, platform_lake

ASSET = "raw_bars"
SPANS = "raw_bars_spans"


@dataclass
class RawBarsReport:
    rows: int
    instruments: int
    hashes: dict[date, str]
    landing_files: dict[str, str]
    findings: SoftFindings


def landing_catalog(settings: Settings) -> LandingCatalog:
    return LandingCatalog(
        settings.landing_dir, settings.root / "landing_index.json", settings.column_aliases
    )


def build_raw_bars(settings: Settings, days: Sequence[date]) -> RawBarsReport:
    """Validate the landing files that hold ``days`` and write their bars, one file a session.

    Nothing is written unless every file validates and every session has rows.
    """
    days = sorted(days)
    valid = sessions(settings.calendar, days[0], days[-1])
    result = load_sessions(
        landing_catalog(settings),
        days,
        valid,
        settings.validation,
        settings.quarantine_dir,
        settings.column_aliases,
    )
    if result.missing_sessions:
        shown = ", ".join(d.isoformat() for d in result.missing_sessions[:10])
        more = len(result.missing_sessions) - 10
        raise ValueError(
            f"no landing file in {settings.landing_dir} holds session(s) {shown}"
            + (f" and {more} more" if more > 0 else "")
        )
    lake = platform_lake(settings)
    before = shift_sessions(settings.calendar, days[0], -1)
    previous = lake.read_days(ASSET, [before]) if lake.exists(ASSET, before) else None
    findings = soft_findings(result.bars, previous, settings.validation)
    hashes = lake.write_days(ASSET, result.bars, days)
    update_spans(lake, result.bars)
    return RawBarsReport(
        rows=result.bars.height,
        instruments=result.bars.get_column("instrument").n_unique(),
        hashes=hashes,
        landing_files=result.files,
        findings=findings,
    )


def read_raw_bars(settings: Settings, days: Sequence[date]) -> pl.DataFrame:
    return Lake(settings.lake_dir).read_days(ASSET, days)


def quarantine_unreadable(settings: Settings, rel: str, error: str) -> Path:
    """Quarantine a landing file whose sessions cannot even be read from it."""
    path = settings.landing_dir / rel
    return quarantine(path, [Violation(str(path), "unreadable", error)], settings.quarantine_dir)


def read_raw_bars_window(
    settings: Settings, days: Sequence[date], before: int, after: int = 0
) -> pl.DataFrame:
    """raw_bars of ``days`` plus ``before`` sessions ahead of them and ``after`` behind.

    Lookback sessions before the first materialized session are skipped (a market has a
    beginning); any other session of the window that is not materialized is an error, since
    a hole would silently change every windowed value after it.
    """
    days = sorted(days)
    lake = Lake(settings.lake_dir)
    first = shift_sessions(settings.calendar, days[0], -before) if before else days[0]
    last = shift_sessions(settings.calendar, days[-1], after) if after else days[-1]
    window = sessions(settings.calendar, first, last)
    materialized = lake.days(ASSET)
    start = materialized[0] if materialized else days[0]
    missing = [d for d in window if d >= min(start, days[0]) and not lake.exists(ASSET, d)]
    if missing:
        shown = ", ".join(d.isoformat() for d in missing[:5])
        raise FileNotFoundError(
            f"raw_bars is not materialized for {len(missing)} session(s) needed, e.g. {shown}"
        )
    return lake.read_days(ASSET, [d for d in window if lake.exists(ASSET, d)])


def update_spans(lake: Lake, bars: pl.DataFrame) -> None:
    """Keep each instrument's first and last session ever seen, for windowed computations.

    A one-session Alpha158 run reads only a lookback window; whether an instrument's first row
    in it is its listing or a resumption after a suspension changes Qlib's session windows.
    """
    new = bars.group_by("instrument").agg(
        first_date=pl.col("date").min(), last_date=pl.col("date").max()
    )
    path = lake.root / "_meta" / f"{SPANS}.parquet"
    if path.is_file():
        new = (
            pl.concat([pl.read_parquet(path), new])
            .group_by("instrument")
            .agg(pl.col("first_date").min(), pl.col("last_date").max())
        )
    write_parquet_atomic(new.sort("instrument"), path)


def instrument_first_dates(settings: Settings) -> dict[str, date]:
    path = settings.lake_dir / "_meta" / f"{SPANS}.parquet"
    if not path.is_file():
        return {}
    spans = pl.read_parquet(path)
    return dict(zip(spans["instrument"].to_list(), spans["first_date"].to_list(), strict=True))
