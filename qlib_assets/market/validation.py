"""Validation of landing rows into canonical bars, with named rules.

Hard rules reject the whole file (it goes to quarantine, no partition changes). Soft rules are
reported per session and surface as asset-check warnings.
"""

from collections.abc import Collection
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path

import numpy as np
import polars as pl

from qlib_assets.market.errors import LandingFileError, Violation
from qlib_assets.market.readers import date_in_name, parse_dates
from qlib_assets.market.schema import (
    FIELD_COLUMNS,
    PRICE_COLUMNS,
    REQUIRED_COLUMNS,
    canonical,
)
from qlib_assets.settings import ValidationSettings

HARD_RULES = (
    "unreadable",
    "empty_file",
    "missing_column",
    "mistyped_column",
    "non_finite_price",
    "non_positive_price",
    "negative_volume",
    "high_below_open_close",
    "low_above_open_close",
    "duplicate_key",
    "date_not_session",
    "date_outside_partition",
    "malformed_instrument",
    "non_finite_value",
    "negative_amount",
    "value_out_of_range",
    "not_a_regular_file",
)
SOFT_RULES = ("price_jump", "coverage_drop")

_MAX_REPORTED = 20
_ROW = "__row"
# The provider stores float32: a larger magnitude would be written as infinity.
FLOAT32_MAX = float(np.finfo(np.float32).max)


@dataclass
class ValidatedFile:
    path: Path
    bars: pl.DataFrame


def _violations(
    path: Path, frame: pl.DataFrame, mask: pl.Expr, rule: str, message: str, value_col: str | None
) -> list[Violation]:
    bad = frame.filter(mask.fill_null(False)).head(_MAX_REPORTED)
    return [
        Violation(
            str(path),
            rule,
            message,
            row=int(r[_ROW]),
            value=None if value_col is None else r[value_col],
        )
        for r in bad.iter_rows(named=True)
    ]


def _typed(path: Path, frame: pl.DataFrame) -> tuple[pl.DataFrame, list[Violation]]:
    """Cast to canonical types; a value that does not cast, or an empty cell, is a
    'mistyped_column' violation."""
    targets: dict[str, pl.DataType] = {"instrument": pl.String(), "date": pl.Date()}
    targets.update({name: pl.Float64() for name in FIELD_COLUMNS if name in frame.columns})
    found: list[Violation] = []
    casts = []
    for name, dtype in targets.items():
        source = pl.col(name)
        kind = frame.schema[name]
        if name == "date":
            converted = parse_dates(source, kind)
        elif kind == pl.String() and dtype != pl.String():
            source = source.str.strip_chars().replace("", None)
            converted = source.cast(dtype, strict=False)
        else:
            converted = source.cast(dtype, strict=False)
        bad = frame.filter(source.is_not_null() & converted.is_null()).head(_MAX_REPORTED)
        found += [
            Violation(
                str(path),
                "mistyped_column",
                f"column '{name}' is not {dtype}",
                row=int(r[_ROW]),
                value=r[name],
            )
            for r in bad.iter_rows(named=True)
        ]
        missing = frame.filter(source.is_null()).head(_MAX_REPORTED)
        found += [
            Violation(str(path), "mistyped_column", f"column '{name}' is empty", row=int(r[_ROW]))
            for r in missing.iter_rows(named=True)
        ]
        casts.append(converted.alias(name))
    return frame.with_columns(casts), found


def _derive(frame: pl.DataFrame) -> pl.DataFrame:
    """Fill the optional columns the way Qlib's data would have them."""
    typical = (pl.col("high") + pl.col("low") + pl.col("close")) / 3
    if "vwap" not in frame.columns:
        if "amount" in frame.columns:
            vwap = pl.when(pl.col("volume") > 0).then(pl.col("amount") / pl.col("volume"))
            frame = frame.with_columns(vwap.otherwise(typical).alias("vwap"))
        else:
            frame = frame.with_columns(typical.alias("vwap"))
    if "amount" not in frame.columns:
        frame = frame.with_columns((pl.col("vwap") * pl.col("volume")).alias("amount"))
    if "factor" not in frame.columns:
        frame = frame.with_columns(pl.lit(1.0).alias("factor"))
    return frame


def validate_rows(
    path: Path,
    raw: pl.DataFrame,
    calendar_sessions: Collection[date],
    settings: ValidationSettings,
) -> ValidatedFile:
    """Canonical bars of one landing file, or LandingFileError naming every broken hard rule.

    ``calendar_sessions`` are the exchange sessions the file's dates must belong to.
    """
    name = str(path)
    if raw.height == 0:
        raise LandingFileError(path, [Violation(name, "empty_file", "the file has no rows")])
    missing = [c for c in REQUIRED_COLUMNS if c not in raw.columns]
    if missing:
        raise LandingFileError(
            path,
            [
                Violation(name, "missing_column", f"required column '{c}' is missing")
                for c in missing
            ],
        )
    frame = raw.with_row_index(_ROW, offset=1)
    frame, found = _typed(path, frame)
    if found:
        raise LandingFileError(path, found)
    # Inputs first, so that a bad value is named in its own column and never reaches a
    # derived one; then the derived columns, which can still overflow.
    given = [c for c in FIELD_COLUMNS if c in frame.columns]
    checks = _value_checks(given, settings)
    for mask, rule, message, value_col in checks:
        found += _violations(path, frame, mask, rule, message, value_col)
    if found:
        raise LandingFileError(path, found)
    frame = _derive(frame)
    derived = [c for c in FIELD_COLUMNS if c not in given]
    checks = _value_checks(derived, settings, with_instrument=False)
    checks += [
        (
            pl.col("high") < pl.max_horizontal("open", "close"),
            "high_below_open_close",
            "'high' is below max(open, close)",
            "high",
        ),
        (
            pl.col("low") > pl.min_horizontal("open", "close"),
            "low_above_open_close",
            "'low' is above min(open, close)",
            "low",
        ),
        (
            pl.struct("instrument", "date").is_duplicated(),
            "duplicate_key",
            "duplicate (instrument, date)",
            "instrument",
        ),
    ]
    sessions = pl.Series(sorted(calendar_sessions), dtype=pl.Date())
    checks.append(
        (
            ~pl.col("date").is_in(sessions.implode()),
            "date_not_session",
            "date is not an exchange session",
            "date",
        )
    )
    named_day = date_in_name(path)
    if named_day is not None and _named_session(named_day) not in calendar_sessions:
        found.append(
            Violation(
                name,
                "date_not_session",
                f"the file is named for {named_day}, which is not an exchange session",
            )
        )
    if named_day is not None:
        checks.append(
            (
                pl.col("date") != date.fromisoformat(named_day),
                "date_outside_partition",
                f"date differs from the session {named_day} the file is named for",
                "date",
            )
        )
    for mask, rule, message, value_col in checks:
        found += _violations(path, frame, mask, rule, message, value_col)
    if found:
        raise LandingFileError(path, found)
    return ValidatedFile(path=path, bars=canonical(frame.drop(_ROW)))


def _value_checks(
    columns: list[str], settings: ValidationSettings, with_instrument: bool = True
) -> list[tuple[pl.Expr, str, str, str | None]]:
    """The per-value rules of ``columns`` (given or derived numeric fields)."""
    checks: list[tuple[pl.Expr, str, str, str | None]] = []
    if with_instrument:
        checks.append(
            (
                ~pl.col("instrument").str.contains(settings.instrument_pattern),
                "malformed_instrument",
                f"instrument code does not match {settings.instrument_pattern}",
                "instrument",
            )
        )
    for col in columns:
        if col in (*PRICE_COLUMNS, "vwap", "factor"):
            checks.append(
                (~pl.col(col).is_finite(), "non_finite_price", f"'{col}' is not finite", col)
            )
            checks.append((pl.col(col) <= 0, "non_positive_price", f"'{col}' is not positive", col))
        elif col == "volume":
            checks.append(
                (
                    ~pl.col("volume").is_finite() | (pl.col("volume") < 0),
                    "negative_volume",
                    "'volume' is negative or not finite",
                    "volume",
                )
            )
        else:
            checks.append(
                (~pl.col(col).is_finite(), "non_finite_value", f"'{col}' is not finite", col)
            )
            checks.append((pl.col(col) < 0, "negative_amount", f"'{col}' is negative", col))
        checks.append(
            (
                pl.col(col).is_finite() & (pl.col(col).abs() > FLOAT32_MAX),
                "value_out_of_range",
                f"'{col}' exceeds the largest float32 the Qlib provider can store",
                col,
            )
        )
    return checks


def _named_session(text: str) -> date | None:
    try:
        return date.fromisoformat(text)
    except ValueError:
        return None


@dataclass
class SoftFindings:
    """Soft-rule findings for a set of sessions."""

    price_jumps: pl.DataFrame
    coverage: list[dict[str, object]] = field(default_factory=list)

    @property
    def coverage_drops(self) -> list[dict[str, object]]:
        return [c for c in self.coverage if c["dropped"]]


def soft_findings(
    bars: pl.DataFrame,
    previous: pl.DataFrame | None,
    settings: ValidationSettings,
) -> SoftFindings:
    """Price jumps beyond the limit without a factor change, and session coverage drops.

    ``previous`` is the session before the first of ``bars`` (from the lake), if there is one;
    a jump is only measured between consecutive sessions of the calendar that ``bars`` and
    ``previous`` span, so a resumption after a suspension is not counted.
    """
    frames = [bars] if previous is None else [previous, bars]
    panel = pl.concat(frames).sort("instrument", "date")
    days = panel.get_column("date").unique().sort()
    day_index = pl.DataFrame({"date": days, "__i": pl.int_range(days.len(), eager=True)})
    limit = settings.price_limit + settings.limit_tolerance
    jumps = (
        panel.join(day_index, on="date")
        .with_columns(
            prev_close=pl.col("close").shift(1).over("instrument"),
            prev_factor=pl.col("factor").shift(1).over("instrument"),
            prev_i=pl.col("__i").shift(1).over("instrument"),
        )
        .filter(
            (pl.col("prev_i") == pl.col("__i") - 1)
            & (pl.col("factor") == pl.col("prev_factor"))
            & ((pl.col("close") / pl.col("prev_close") - 1).abs() > limit)
        )
        .select("instrument", "date", "prev_close", "close")
    )
    if previous is not None and previous.height:
        first = bars.get_column("date").min()
        jumps = jumps.filter(pl.col("date") >= first)
    counts = panel.group_by("date").agg(pl.len().alias("n")).sort("date")
    coverage = []
    prior: int | None = None
    for day, n in counts.iter_rows():
        dropped = prior is not None and n < (1 - settings.coverage_drop) * prior
        if previous is None or day > previous.get_column("date").max():
            coverage.append(
                {"date": day.isoformat(), "instruments": n, "previous": prior, "dropped": dropped}
            )
        prior = n
    return SoftFindings(price_jumps=jumps, coverage=coverage)
