"""Technical indicators of daily bars, per instrument, as float64 columns.

``CATALOG`` lists the columns (see ``indicator_catalog``); ``compute_indicators`` computes any of
them for many instruments at once. Each instrument is computed over its own sessions only: a
suspension (a missing row, or a row whose fields are null or NaN) is skipped, never filled.
"""

import os
from collections.abc import Mapping
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import polars as pl

from qlib_assets.features.indicator_catalog import (
    CATALOG,
    DEFAULT_FAMILIES,
    FAMILIES,
    IndicatorSpec,
    build_catalog,
    max_warmup,
    select,
)
from qlib_assets.features.indicator_panel import FIELDS, Panel

__all__ = [
    "CATALOG",
    "DEFAULT_FAMILIES",
    "FAMILIES",
    "IndicatorSpec",
    "build_catalog",
    "compute_indicators",
    "max_warmup",
]

KEYS = ("instrument", "date")


def compute_indicators(
    bars: pl.DataFrame,
    names: list[str] | None = None,
    catalog: Mapping[str, IndicatorSpec] | None = None,
    threads: int | None = None,
) -> pl.DataFrame:
    """``instrument, date`` and one float64 column per requested catalog entry (all by default),
    sorted by instrument then date, one row per input row.

    ``bars`` is in the raw_bars schema, in any row order; only open, high, low, close and
    volume are read, as given (adjusted prices). Values before a column's lookback, and on
    suspended rows, are null. Indicator families are computed on ``threads`` threads (default:
    one per CPU); the result does not depend on it.
    """
    specs = select(CATALOG if catalog is None else catalog, names)
    frame, lengths = _sorted_fields(bars)
    arrays = {field: frame[field].to_numpy() for field in FIELDS}
    if not any(np.isnan(values.min(initial=np.inf)) for values in arrays.values()):
        return _compute(frame, lengths, arrays, specs, threads)
    usable = pl.all_horizontal(pl.col(field).is_not_nan() for field in FIELDS).fill_null(False)
    traded, traded_lengths = _sorted_fields(frame.filter(usable))
    traded_arrays = {field: traded[field].to_numpy() for field in FIELDS}
    computed = _compute(traded, traded_lengths, traded_arrays, specs, threads)
    suspended = frame.filter(~usable).select(KEYS)
    return pl.concat([computed, suspended], how="diagonal").sort(KEYS)


def _sorted_fields(bars: pl.DataFrame) -> tuple[pl.DataFrame, np.ndarray]:
    """The key and field columns sorted by instrument then date, and each instrument's row
    count."""
    missing = [column for column in (*KEYS, *FIELDS) if column not in bars.columns]
    if missing:
        raise ValueError(f"bars lack columns {missing}")
    frame = bars.select(
        pl.col("instrument").cast(pl.String),
        pl.col("date").cast(pl.Date),
        *(pl.col(field).cast(pl.Float64) for field in FIELDS),
    )
    lengths, repeated = _runs(frame)
    if repeated is not None:
        frame = frame.sort(KEYS)
        lengths, repeated = _runs(frame)
    if repeated is not None:
        row = frame.row(repeated, named=True)
        raise ValueError(
            f"bars hold more than one row for instrument {row['instrument']} on {row['date']}"
        )
    return frame, lengths


def _runs(frame: pl.DataFrame) -> tuple[np.ndarray, int | None]:
    """Row counts of the instrument runs, and the first row that is not strictly after the
    previous one in (instrument, date) order (None when the frame is sorted and unique)."""
    runs = frame["instrument"].rle()
    lengths = runs.struct.field("len").to_numpy().astype(np.int64)
    if not runs.struct.field("value").is_sorted():
        return lengths, 0
    steps = np.diff(frame["date"].to_physical().to_numpy().astype(np.int64))
    steps[np.cumsum(lengths)[:-1] - 1] = 1
    backwards = np.flatnonzero(steps <= 0)
    return lengths, (int(backwards[0]) + 1 if backwards.size else None)


def _compute(
    frame: pl.DataFrame,
    lengths: np.ndarray,
    arrays: dict[str, np.ndarray],
    specs: list[IndicatorSpec],
    threads: int | None,
) -> pl.DataFrame:
    _check_values(frame, arrays)
    offsets = np.zeros(lengths.size + 1, dtype=np.int64)
    np.cumsum(lengths, out=offsets[1:])
    panel = Panel(offsets=offsets, **arrays)
    first_of = {spec.computation: spec for spec in reversed(specs)}
    # TA-Lib and numpy release the GIL inside their loops, so families run side by side.
    with ThreadPoolExecutor(max_workers=threads or os.cpu_count() or 1) as pool:
        running = {
            key: pool.submit(spec.implementation, panel, **spec.params)
            for key, spec in first_of.items()
        }
        computed = {key: future.result() for key, future in running.items()}
    columns = [
        pl.Series(
            spec.name,
            panel.mask_before(computed[spec.computation][spec.output], spec.lookback),
            dtype=pl.Float64,
            nan_to_null=True,
        )
        for spec in specs
    ]
    return frame.select(KEYS).with_columns(columns)


def _check_values(frame: pl.DataFrame, arrays: dict[str, np.ndarray]) -> None:
    """Reject values whose NaN would spread through TA-Lib's running totals to later rows."""
    prices_ok = all(
        arrays[field].min(initial=np.inf) > 0 and np.isfinite(arrays[field].max(initial=0.0))
        for field in FIELDS[:4]
    )
    volume = arrays["volume"]
    volume_ok = volume.min(initial=0.0) >= 0 and np.isfinite(volume.max(initial=0.0))
    if prices_ok and volume_ok:
        return
    rules = {
        "a price is not positive and finite": pl.any_horizontal(
            ~(pl.col(field).is_finite() & (pl.col(field) > 0)) for field in FIELDS[:4]
        ),
        "volume is negative or infinite": ~pl.col("volume").is_finite() | (pl.col("volume") < 0),
    }
    for rule, broken in rules.items():
        bad = frame.filter(broken)
        if bad.height:
            row = bad.row(0, named=True)
            raise ValueError(f"bars of {row['instrument']} on {row['date']}: {rule}")
