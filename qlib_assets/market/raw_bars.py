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
from qlib_assets.storage.lake import Lake

ASSET = "raw_bars"


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
    lake = Lake(settings.lake_dir)
    before = shift_sessions(settings.calendar, days[0], -1)
    previous = lake.read_days(ASSET, [before]) if lake.exists(ASSET, before) else None
    findings = soft_findings(result.bars, previous, settings.validation)
    hashes = lake.write_days(ASSET, result.bars, days)
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
