"""Landing files -> validated canonical bars for a range of sessions."""

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path

import polars as pl

from qlib_assets.calendar import sessions
from qlib_assets.market.errors import LandingFileError, Violation
from qlib_assets.market.landing import LandingCatalog, LandingEntry, quarantine, session_versions
from qlib_assets.market.readers import read_landing_file
from qlib_assets.market.schema import canonical, empty_bars
from qlib_assets.market.validation import validate_rows
from qlib_assets.settings import ValidationSettings

# Every session the exchange calendar knows: a file's dates are judged against the calendar,
# never against the sessions of the run that reads it.
_CALENDAR_START = date(1990, 1, 1)
_CALENDAR_END = date(2200, 1, 1)


class RejectedFilesError(ValueError):
    """Landing files were rejected and quarantined, and sessions of the run lost all their data
    with them; nothing was written."""

    def __init__(
        self, errors: list[LandingFileError], moved: list[Path], lost: Sequence[date] = ()
    ) -> None:
        self.errors = errors
        self.moved = moved
        self.lost = list(lost)
        lines = [str(e) for e in errors]
        lines += [f"quarantined as {p}" for p in moved]
        if self.lost:
            shown = ", ".join(d.isoformat() for d in self.lost[:10])
            lines.append(f"session(s) left without data: {shown}")
        super().__init__("\n".join(lines))


@dataclass
class IngestResult:
    bars: pl.DataFrame
    files: dict[str, str]
    missing_sessions: list[date]
    versions: dict[str, str] = field(default_factory=dict)
    rejected: list[LandingFileError] = field(default_factory=list)
    quarantined: list[Path] = field(default_factory=list)


def read_validated(
    path: Path,
    calendar_days: Sequence[date],
    validation: ValidationSettings,
    aliases: Mapping[str, str] | None,
) -> pl.DataFrame:
    """One file's validated bars; whatever goes wrong with it is a LandingFileError."""
    try:
        raw = read_landing_file(path, aliases)
        return validate_rows(path, raw, calendar_days, validation).bars
    except LandingFileError:
        raise
    except Exception as exc:
        message = f"cannot read or validate the file: {type(exc).__name__}: {exc}"
        raise LandingFileError(path, [Violation(str(path), "unreadable", message)]) from exc


def _overlaps(
    frames: dict[Path, pl.DataFrame], entries: Mapping[Path, LandingEntry]
) -> list[LandingFileError]:
    """Files delivering an (instrument, date) an earlier-delivered file already holds.

    The earlier file (by modification time, then name) is kept; a byte-identical copy never
    gets here (see ``distinct_entries``).
    """
    order = sorted(frames, key=lambda p: (entries[p].mtime_ns, str(p)))
    owners: pl.DataFrame | None = None
    errors = []
    for path in order:
        keys = frames[path].select("instrument", "date").with_row_index("__row", offset=1)
        if owners is not None:
            clash = keys.join(owners, on=["instrument", "date"], how="inner").head(20)
            if clash.height:
                errors.append(
                    LandingFileError(
                        path,
                        [
                            Violation(
                                str(path),
                                "duplicate_key",
                                f"(instrument, date) already delivered by {r['owner']}",
                                row=int(r["__row"]),
                                value=f"{r['instrument']} {r['date']}",
                            )
                            for r in clash.iter_rows(named=True)
                        ],
                    )
                )
                continue
        owned = keys.drop("__row").with_columns(owner=pl.lit(str(path)))
        owners = owned if owners is None else pl.concat([owners, owned])
    return errors


def load_sessions(
    catalog: LandingCatalog,
    days: Sequence[date],
    calendar: str,
    validation: ValidationSettings,
    quarantine_dir: Path,
    aliases: Mapping[str, str] | None = None,
) -> IngestResult:
    """Validated bars of ``days`` from every settled landing file that holds one of them.

    A file that breaks a hard rule (or cannot be read at all) is quarantined with its reason
    and left out; the other files are used. A byte-identical copy of another file is skipped.
    When a session of ``days`` is left without rows because of a rejection, RejectedFilesError
    is raised (after the quarantine) and the caller writes nothing.
    """
    entries = catalog.scan()
    paths = catalog.files_for(entries, days)
    # A file whose sessions cannot be read might hold one of ``days``: it is rejected here
    # rather than silently left out.
    unreadable = [
        catalog.landing_dir / rel
        for rel, entry in entries.items()
        if entry.settled and entry.error is not None
    ]
    by_path = {catalog.landing_dir / rel: entry for rel, entry in entries.items()}
    calendar_days = sessions(calendar, _CALENDAR_START, _CALENDAR_END)
    frames: dict[Path, pl.DataFrame] = {}
    errors: list[LandingFileError] = []
    for path in sorted({*paths, *unreadable}):
        try:
            frames[path] = read_validated(path, calendar_days, validation, aliases)
        except LandingFileError as exc:
            errors.append(exc)
    wanted = pl.Series(sorted(days), dtype=pl.Date())
    frames = {p: f.filter(pl.col("date").is_in(wanted.implode())) for p, f in frames.items()}
    overlaps = _overlaps(frames, by_path)
    for error in overlaps:
        del frames[error.path]
    errors += overlaps
    moved = [quarantine(e.path, e.violations, quarantine_dir) for e in errors]
    bars = canonical(pl.concat(frames.values())) if frames else empty_bars()
    present = set(bars.get_column("date").unique().to_list())
    missing = [d for d in days if d not in present]
    if errors and missing:
        raise RejectedFilesError(errors, moved, missing)
    used = {str(p): by_path[p].sha256 for p in frames}
    return IngestResult(
        bars,
        used,
        missing,
        versions=_versions(days, frames, by_path),
        rejected=errors,
        quarantined=moved,
    )


def _versions(
    days: Sequence[date], frames: Mapping[Path, pl.DataFrame], entries: Mapping[Path, LandingEntry]
) -> dict[str, str]:
    """The landing data version of each of ``days`` as ingested (see ``session_versions``)."""
    used = {str(p): entries[p] for p in frames}
    versions = session_versions(used)
    return {d.isoformat(): versions[d.isoformat()] for d in days if d.isoformat() in versions}
