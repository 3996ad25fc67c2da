"""Where the files of a Qlib provider directory live and how its two text files read.

Layout as Qlib 0.9.7's file storage reads it (``qlib/data/storage/file_storage.py``):

- ``calendars/day.txt``: one session per line, ``YYYY-MM-DD``; line ``i`` is calendar index ``i``.
- ``instruments/all.txt``: ``CODE<TAB>first<TAB>last`` per instrument, dates ``YYYY-MM-DD``.
- ``features/<code>/<field>.day.bin``: little-endian float32; the first value is the calendar
  index of the second value, the rest are consecutive sessions from there on.

Qlib lowercases the instrument folder and field file names and prefixes Windows device names
(``CON``, ``COM1`` ...) with ``_qlib_``, so we name them the same way.
"""

from collections.abc import Mapping
from datetime import date
from pathlib import Path

FREQ = "day"
MARKET = "all"
FLOAT = "<f4"
SLOT_BYTES = 4

_DEVICE_NAMES = frozenset(
    ["CON", "PRN", "AUX", "NUL", *(f"COM{i}" for i in range(10)), *(f"LPT{i}" for i in range(10))]
)
_DEVICE_PREFIX = "_qlib_"


def instrument_dirname(code: str) -> str:
    if not code or "/" in code or "\\" in code or code in {".", ".."}:
        raise ValueError(f"instrument code {code!r} cannot name a provider folder")
    name = _DEVICE_PREFIX + code if code.upper() in _DEVICE_NAMES else code
    return name.lower()


def features_dir(root: Path) -> Path:
    return root / "features"


def calendar_path(root: Path) -> Path:
    return root / "calendars" / f"{FREQ}.txt"


def instruments_path(root: Path) -> Path:
    return root / "instruments" / f"{MARKET}.txt"


def feature_file_name(field: str) -> str:
    return f"{field.lower()}.{FREQ}.bin"


def format_calendar(days: list[date]) -> str:
    return "".join(f"{day.isoformat()}\n" for day in days)


def parse_calendar(text: str) -> list[date]:
    return [date.fromisoformat(line.strip()) for line in text.splitlines() if line.strip()]


def format_instruments(spans: Mapping[str, tuple[date, date]]) -> str:
    return "".join(
        f"{code}\t{first.isoformat()}\t{last.isoformat()}\n"
        for code, (first, last) in sorted(spans.items())
    )


def parse_instruments(text: str) -> dict[str, tuple[date, date]]:
    spans: dict[str, tuple[date, date]] = {}
    # Thousands of lines share a few hundred dates; parsing each date once keeps appends cheap.
    days: dict[str, date] = {}
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        parts = line.split("\t")
        if len(parts) != 3:
            raise ValueError(f"{MARKET}.txt line {number}: expected CODE<TAB>first<TAB>last")
        first = days.get(parts[1]) or days.setdefault(parts[1], date.fromisoformat(parts[1]))
        last = days.get(parts[2]) or days.setdefault(parts[2], date.fromisoformat(parts[2]))
        spans[parts[0]] = (first, last)
    return spans
