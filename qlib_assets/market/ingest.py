"""Landing files -> validated canonical bars for a range of sessions."""

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import date
from pathlib import Path

import polars as pl

from qlib_assets.market.errors import LandingFileError
from qlib_assets.market.landing import LandingCatalog, quarantine
from qlib_assets.market.readers import read_landing_file
from qlib_assets.market.schema import canonical, empty_bars
from qlib_assets.market.validation import validate_rows
from qlib_assets.settings import ValidationSettings


class RejectedFilesError(ValueError):
    """One or more landing files were rejected and quarantined; nothing was written."""

    def __init__(self, errors: list[LandingFileError], moved: list[Path]) -> None:
        self.errors = errors
        self.moved = moved
        lines = [str(e) for e in errors]
        lines += [f"quarantined as {p}" for p in moved]
        super().__init__("\n".join(lines))


@dataclass
class IngestResult:
    bars: pl.DataFrame
    files: dict[str, str]
    missing_sessions: list[date]


def load_sessions(
    catalog: LandingCatalog,
    days: Sequence[date],
    valid_sessions: Sequence[date],
    validation: ValidationSettings,
    quarantine_dir: Path,
    aliases: Mapping[str, str] | None = None,
) -> IngestResult:
    """Validated bars of ``days`` from every landing file that holds one of them.

    All files are validated before anything is returned; any hard violation quarantines the
    offending files and raises RejectedFilesError, so the caller writes nothing.
    """
    entries = catalog.scan()
    paths = catalog.files_for(entries, days)
    unreadable = [
        catalog.landing_dir / rel for rel, entry in entries.items() if entry.error is not None
    ]
    frames: list[pl.DataFrame] = []
    errors: list[LandingFileError] = []
    for path in sorted({*paths, *unreadable}):
        try:
            raw = read_landing_file(path, aliases)
            frames.append(validate_rows(path, raw, valid_sessions, validation).bars)
        except LandingFileError as exc:
            errors.append(exc)
    if errors:
        moved = [quarantine(e.path, e.violations, quarantine_dir) for e in errors]
        raise RejectedFilesError(errors, moved)
    wanted = pl.Series(sorted(days), dtype=pl.Date())
    bars = canonical(pl.concat(frames)) if frames else empty_bars()
    bars = bars.filter(pl.col("date").is_in(wanted.implode()))
    duplicated = bars.filter(pl.struct("instrument", "date").is_duplicated())
    if duplicated.height:
        first = duplicated.row(0, named=True)
        raise ValueError(
            f"{duplicated.height} (instrument, date) pairs arrive in more than one landing file, "
            f"e.g. {first['instrument']} on {first['date']}; remove one of the copies"
        )
    present = set(bars.get_column("date").unique().to_list())
    rel = {str(p): entries[p.relative_to(catalog.landing_dir).as_posix()].sha256 for p in paths}
    return IngestResult(bars, rel, [d for d in days if d not in present])
