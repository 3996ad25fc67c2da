"""Landing-zone readers: long-format Parquet or CSV, and Qlib's per-symbol collector CSVs.

Every reader returns the file's rows with canonical column names but unvalidated values; the
validator turns them into canonical bars or names what is wrong.
"""

import re
from collections.abc import Mapping
from pathlib import Path

import polars as pl

from qlib_assets.market.errors import LandingFileError, Violation

LANDING_SUFFIXES = (".parquet", ".csv")

# Names that common exports use for the canonical columns; the user's aliases win.
DEFAULT_ALIASES: dict[str, str] = {
    "symbol": "instrument",
    "code": "instrument",
    "ts_code": "instrument",
    "ticker": "instrument",
    "datetime": "date",
    "trade_date": "date",
    "money": "amount",
    "turnover": "amount",
    "vol": "volume",
    "adj_factor": "factor",
}

_DATE_IN_NAME = re.compile(r"(\d{4}-\d{2}-\d{2})")
_INSTRUMENT_NAME = re.compile(r"^[A-Za-z]{2}[0-9A-Za-z]{4,8}$")


def is_landing_file(path: Path) -> bool:
    return (
        path.is_file() and path.suffix.lower() in LANDING_SUFFIXES and not path.name.startswith(".")
    )


def date_in_name(path: Path) -> str | None:
    """The YYYY-MM-DD a per-session file carries in its name, if any."""
    match = _DATE_IN_NAME.search(path.stem)
    return match.group(1) if match else None


def _rename(frame: pl.DataFrame, aliases: Mapping[str, str]) -> pl.DataFrame:
    lowered = {name: name.strip().lower() for name in frame.columns}
    frame = frame.rename(lowered)
    mapping = {**DEFAULT_ALIASES, **{k.lower(): v for k, v in aliases.items()}}
    renames = {
        name: mapping[name]
        for name in frame.columns
        if name in mapping and mapping[name] not in frame.columns
    }
    return frame.rename(renames)


def _read_raw(path: Path) -> pl.DataFrame:
    """Read every column as found; CSV values stay strings so that typing is the validator's."""
    try:
        if path.suffix.lower() == ".parquet":
            return pl.read_parquet(path)
        return pl.read_csv(path, infer_schema=False)
    except Exception as exc:
        reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise LandingFileError(
            path, [Violation(str(path), "unreadable", f"cannot read the file: {reason}")]
        ) from exc


def read_landing_file(path: Path, aliases: Mapping[str, str] | None = None) -> pl.DataFrame:
    """One landing file with canonical column names, raw values.

    Qlib's collector layout (one CSV per symbol, named by the symbol, often without an
    instrument column) gets its instrument from the file name.
    """
    frame = _rename(_read_raw(path), aliases or {})
    if "instrument" not in frame.columns and _INSTRUMENT_NAME.match(path.stem):
        frame = frame.with_columns(pl.lit(path.stem.upper()).alias("instrument"))
    elif "instrument" in frame.columns and frame.schema["instrument"] == pl.String():
        frame = frame.with_columns(pl.col("instrument").str.strip_chars().str.to_uppercase())
    return frame


def read_landing_dates(path: Path, aliases: Mapping[str, str] | None = None) -> list[str]:
    """The distinct dates a landing file holds, as YYYY-MM-DD strings, reading only that column."""
    named = date_in_name(path)
    if named is not None:
        return [named]
    frame = read_landing_file(path, aliases)
    if "date" not in frame.columns:
        raise LandingFileError(path, [Violation(str(path), "missing_column", "no 'date' column")])
    column = frame.get_column("date")
    if column.dtype != pl.String():
        column = column.cast(pl.String())
    return sorted({value[:10] for value in column.drop_nulls().to_list()})
