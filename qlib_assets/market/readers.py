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

# Names that common exports use for the canonical columns; the user's aliases win. When a file
# carries several aliases of one column, the first in this order is used (Tushare's exports
# have both ts_code "600000.SH" and symbol "600000": ts_code names the exchange).
DEFAULT_ALIASES: dict[str, str] = {
    "ts_code": "instrument",
    "symbol": "instrument",
    "code": "instrument",
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
# "600000.SH" (Tushare, Wind) -> "SH600000", Qlib's form.
_SUFFIXED_CODE = r"^(\d{6})\.(SH|SZ|BJ)$"
_SEPARATORS = (",", ";", "\t", "|")


def is_landing_file(path: Path) -> bool:
    """A name the landing scan considers: a regular file or a symlink (rejected when read)."""
    return (
        (path.is_file() or path.is_symlink())
        and path.suffix.lower() in LANDING_SUFFIXES
        and not path.name.startswith(".")
    )


def parse_dates(column: pl.Expr, dtype: pl.DataType) -> pl.Expr:
    """Dates of a landing column, whatever common form they come in; null where none fits.

    Accepted: dates; datetimes (with a time zone: the date in that zone); integers 20240105;
    strings 2024-01-05, 20240105, 2024/01/05, or ISO timestamps (the date part).
    """
    if dtype == pl.Date():
        return column
    if isinstance(dtype, pl.Datetime):
        return column.dt.date()
    if dtype.is_integer():
        return column.cast(pl.String).str.to_date("%Y%m%d", strict=False)
    if dtype != pl.String():
        return pl.lit(None, pl.Date)
    text = column.str.strip_chars()
    return pl.coalesce(
        text.str.to_date("%Y-%m-%d", strict=False),
        text.str.to_date("%Y%m%d", strict=False),
        text.str.to_date("%Y/%m/%d", strict=False),
        text.str.slice(0, 10).str.to_date("%Y-%m-%d", strict=False),
    )


def normalise_instruments(column: pl.Expr) -> pl.Expr:
    """Codes trimmed, upper-cased, and "600000.SH" turned into "SH600000"."""
    code = column.str.strip_chars().str.to_uppercase()
    return code.str.replace(_SUFFIXED_CODE, "${2}${1}")


def date_in_name(path: Path) -> str | None:
    """The YYYY-MM-DD a per-session file carries in its name, if any."""
    match = _DATE_IN_NAME.search(path.stem)
    return match.group(1) if match else None


def _rename(frame: pl.DataFrame, aliases: Mapping[str, str]) -> pl.DataFrame:
    """Canonical names; of several aliases of one column the user's, then the first listed wins.

    A name that appears twice after trimming and lower-casing keeps its first column.
    """
    seen: set[str] = set()
    keep = []
    for name in frame.columns:
        lowered = name.strip().lower()
        if lowered not in seen:
            seen.add(lowered)
            keep.append(pl.col(name).alias(lowered))
    frame = frame.select(keep)
    user = {k.strip().lower(): v for k, v in aliases.items()}
    renames: dict[str, str] = {}
    taken = set(frame.columns)
    for mapping in (user, DEFAULT_ALIASES):
        for alias, target in mapping.items():
            if alias in taken and alias not in renames and target not in taken:
                renames[alias] = target
                taken.add(target)
    return frame.rename(renames)


def _separator(head: bytes) -> str:
    """The delimiter of a CSV: the most frequent candidate in its header line."""
    line = head.split(b"\n", 1)[0].decode("utf-8", errors="replace")
    return max(_SEPARATORS, key=line.count)


def _read_raw(path: Path) -> pl.DataFrame:
    """Read every column as found; CSV values stay strings so that typing is the validator's.

    CSVs may carry a BOM, CRLF line ends, a ``;`` (or tab, ``|``) delimiter and bytes that
    are not UTF-8 (replaced: only text columns we do not keep can hold them).
    """
    if path.is_symlink():
        raise LandingFileError(
            path,
            [
                Violation(
                    str(path),
                    "not_a_regular_file",
                    "a symbolic link: its target can change without the landing folder "
                    "seeing it; deliver the file itself",
                )
            ],
        )
    if path.stat().st_size == 0:
        raise LandingFileError(path, [Violation(str(path), "empty_file", "the file is empty")])
    try:
        if path.suffix.lower() == ".parquet":
            return pl.read_parquet(path)
        with open(path, "rb") as handle:
            head = handle.read(65536)
        return pl.read_csv(
            path, infer_schema=False, separator=_separator(head), encoding="utf8-lossy"
        )
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
        frame = frame.with_columns(normalise_instruments(pl.col("instrument")))
    return frame


def read_landing_dates(path: Path, aliases: Mapping[str, str] | None = None) -> list[str]:
    """The distinct dates a landing file holds, as YYYY-MM-DD strings, reading only that column."""
    named = date_in_name(path)
    if named is not None:
        return [named]
    frame = read_landing_file(path, aliases)
    if "date" not in frame.columns:
        raise LandingFileError(path, [Violation(str(path), "missing_column", "no 'date' column")])
    days = frame.select(parse_dates(pl.col("date"), frame.schema["date"]).alias("d"))
    return sorted(d.isoformat() for d in days.get_column("d").drop_nulls().unique().to_list())
