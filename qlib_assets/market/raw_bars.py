"""The raw_bars computation: landing files of a session range -> one Parquet per session."""

import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path

import polars as pl

from qlib_assets.calendar import sessions, shift_sessions
from qlib_assets.market.errors import LandingFileError
from qlib_assets.market.ingest import load_sessions, read_validated
from qlib_assets.market.landing import LandingCatalog, quarantine
from qlib_assets.market.sensor_plan import rejectable_files
from qlib_assets.market.validation import SoftFindings, soft_findings
from qlib_assets.settings import Settings
from qlib_assets.storage.atomic import remove_stale_temps, write_bytes_atomic, write_parquet_atomic
from qlib_assets.storage.lake import Lake, platform_lake

ASSET = "raw_bars"
SPANS = "raw_bars_spans"
# Landing data version of every session as raw_bars last ingested it; the landing sensor
# requests the sessions whose files now say otherwise.
INGESTED = "raw_bars_landing.json"


@dataclass
class RawBarsReport:
    rows: int
    instruments: int
    hashes: dict[date, str]
    landing_files: dict[str, str]
    findings: SoftFindings
    rejected: list[str] = field(default_factory=list)


def landing_catalog(settings: Settings) -> LandingCatalog:
    return LandingCatalog(
        settings.landing_dir,
        settings.root / "landing_index.json",
        settings.column_aliases,
        settle_seconds=settings.landing.settle_seconds,
        completion_marker=settings.landing.completion_marker,
    )


def build_raw_bars(settings: Settings, days: Sequence[date]) -> RawBarsReport:
    """Validate the landing files that hold ``days`` and write their bars, one file a session.

    Nothing is written unless every file validates and every session has rows.
    """
    days = sorted(days)
    result = load_sessions(
        landing_catalog(settings),
        days,
        settings.calendar,
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
    remove_stale_temps(lake.root / ASSET)
    before = shift_sessions(settings.calendar, days[0], -1)
    previous = lake.read_days(ASSET, [before]) if lake.exists(ASSET, before) else None
    findings = soft_findings(result.bars, previous, settings.validation)
    hashes = lake.write_days(ASSET, result.bars, days)
    update_spans(lake, result.bars)
    _record_ingested(lake, result.versions)
    return RawBarsReport(
        rows=result.bars.height,
        instruments=result.bars.get_column("instrument").n_unique(),
        hashes=hashes,
        landing_files=result.files,
        findings=findings,
        rejected=[str(e) for e in result.rejected],
    )


def ingested_versions(settings: Settings) -> dict[str, str]:
    """Session -> landing data version raw_bars was last built from (empty: nothing yet)."""
    path = settings.lake_dir / "_meta" / INGESTED
    return json.loads(path.read_text()) if path.is_file() else {}


def _record_ingested(lake: Lake, versions: dict[str, str]) -> None:
    path = lake.root / "_meta" / INGESTED
    known = json.loads(path.read_text()) if path.is_file() else {}
    known.update(versions)
    write_bytes_atomic(path, json.dumps(known, sort_keys=True).encode())


def read_raw_bars(settings: Settings, days: Sequence[date]) -> pl.DataFrame:
    return Lake(settings.lake_dir).read_days(ASSET, days)


def reject_unplaceable(settings: Settings, partition_keys: Sequence[str]) -> list[Path]:
    """Validate and quarantine the landing files no session run reads (see
    ``sensor_plan.rejectable_files``): unreadable ones, symbolic links, files of days the
    exchange never traded. Returns where they went."""
    catalog = landing_catalog(settings)
    entries = catalog.scan()
    calendar_days = sessions(settings.calendar, date(1990, 1, 1), date(2200, 1, 1))
    moved = []
    for rel in rejectable_files(entries, partition_keys, settings.calendar):
        path = settings.landing_dir / rel
        try:
            read_validated(path, calendar_days, settings.validation, settings.column_aliases)
        except LandingFileError as exc:
            moved.append(quarantine(path, exc.violations, settings.quarantine_dir))
    return moved


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
