"""Technical indicators of daily bars, per instrument, as float64 columns.

``CATALOG`` lists the columns (see ``.catalog``); ``compute_indicators`` computes any of
them for many instruments at once. Each instrument is computed over its own sessions only: a
suspension (a missing row, or a row whose fields are null or NaN) is skipped, never filled.
"""

import os
import threading
from collections.abc import Mapping
from concurrent.futures import ThreadPoolExecutor
from itertools import pairwise

import numpy as np
import polars as pl
import pyarrow as pa

from qlib_assets.features.indicators.catalog import (
    CATALOG,
    DEFAULT_FAMILIES,
    FAMILIES,
    IndicatorSpec,
    build_catalog,
    max_warmup,
    select,
)
from qlib_assets.features.indicators.panel import FIELDS, Panel

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
# Rows computed together: small enough that a block's intermediate arrays stay in the CPU
# cache and are reused by the allocator instead of being faulted in afresh, large enough that
# the per-call overhead of the families is small against the work.
BLOCK_ROWS = 1 << 16


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
    suspended rows, are null. Blocks of whole instruments are computed on ``threads`` threads
    (default: one per CPU); the result does not depend on it.
    """
    specs = select(CATALOG if catalog is None else catalog, names)
    frame, lengths = _sorted_fields(bars)
    arrays = {field: frame[field].to_numpy() for field in FIELDS}
    try:
        return _compute(frame, lengths, arrays, specs, threads)
    except _UnusableValues:
        pass
    # Some block holds a NaN or a rejected value; the column-wide checks tell which, and name
    # the row of a rejected one. A null reads as NaN here, and a minimum is NaN exactly when
    # some value is.
    lows = {field: values.min(initial=np.inf) for field, values in arrays.items()}
    if not any(np.isnan(low) for low in lows.values()):
        _check_values(frame, arrays, lows)
    usable = pl.all_horizontal(pl.col(field).is_not_nan() for field in FIELDS).fill_null(False)
    traded, traded_lengths = _sorted_fields(frame.filter(usable))
    traded_arrays = {field: traded[field].to_numpy() for field in FIELDS}
    traded_lows = {field: values.min(initial=np.inf) for field, values in traded_arrays.items()}
    _check_values(traded, traded_arrays, traded_lows)
    computed = _compute(traded, traded_lengths, traded_arrays, specs, threads)
    suspended = frame.filter(~usable).select(KEYS)
    return pl.concat([computed, suspended], how="diagonal").sort(KEYS)


class _UnusableValues(Exception):
    """A block holds a value that ``_check_values`` rejects, or a NaN (a suspended row)."""


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
    instrument = frame["instrument"]
    # Rows whose instrument differs from the previous row's: about half the cost of rle().
    changes = instrument.slice(1).ne_missing(instrument.slice(0, max(frame.height - 1, 0)))
    starts = np.concatenate(([0], changes.arg_true().to_numpy().astype(np.int64) + 1))
    lengths = np.diff(starts, append=frame.height) if frame.height else starts[:0]
    # Neighbouring runs differ, so runs in non-decreasing order are strictly increasing.
    if not instrument.gather(starts[: lengths.size]).is_sorted():
        return lengths, 0
    # Compared as stored (int32 days), without a widened copy or a difference array: on a
    # large panel those are tens of MB of freshly faulted memory on the serial path.
    days = frame["date"].to_physical().to_numpy()
    backwards = days[1:] <= days[:-1]
    backwards[starts[1:] - 1] = False
    first = int(backwards.argmax()) if backwards.size else 0
    return lengths, (first + 1 if backwards.size and backwards[first] else None)


def _compute(
    frame: pl.DataFrame,
    lengths: np.ndarray,
    arrays: dict[str, np.ndarray],
    specs: list[IndicatorSpec],
    threads: int | None,
) -> pl.DataFrame:
    offsets = np.zeros(lengths.size + 1, dtype=np.int64)
    np.cumsum(lengths, out=offsets[1:])
    # One contiguous row per output column; polars takes each row without a copy.
    values = _arrow_backed((len(specs), int(offsets[-1])), np.float64)
    # Columns grouped by computation: each computation's outputs are written out and released
    # before the next one runs, so a block's working set stays a few arrays. Holding all of a
    # block's outputs until its end made a worker thread's malloc arena return the freed tens
    # of MB to the kernel after every block and fault them in again for the next (about
    # 100,000 page faults per call on 5,000 x 260).
    computations: dict[tuple[object, ...], list[tuple[int, IndicatorSpec]]] = {}
    for index, spec in enumerate(specs):
        computations.setdefault(spec.computation, []).append((index, spec))

    # Checked per block inside the pool rather than over whole columns beforehand: the passes
    # over the fields then run on both cores, and each block's fields are read into the cache
    # just before its computations read them again.
    unusable = threading.Event()

    def compute_block(block: tuple[int, int]) -> None:
        if unusable.is_set():
            return
        first, last = block
        start, end = int(offsets[first]), int(offsets[last])
        fields = {field: column[start:end] for field, column in arrays.items()}
        if not _usable(fields):
            unusable.set()
            raise _UnusableValues
        panel = Panel(offsets=offsets[first : last + 1] - start, **fields)
        for columns in computations.values():
            computed = columns[0][1].implementation(panel, **columns[0][1].params)
            for index, spec in columns:
                target = values[index, start:end]
                target[:] = computed[spec.output]
                panel.mask_before(target, spec.lookback)

    blocks = _blocks(offsets)
    # TA-Lib and numpy release the GIL inside their loops, so blocks run side by side.
    with ThreadPoolExecutor(max_workers=threads or os.cpu_count() or 1) as pool:
        list(pool.map(compute_block, blocks))
    columns = [
        pl.Series(spec.name, values[index], nan_to_null=True) for index, spec in enumerate(specs)
    ]
    return frame.select(KEYS).with_columns(columns)


def _blocks(offsets: np.ndarray) -> list[tuple[int, int]]:
    """Runs of whole instruments (first, end index) of about BLOCK_ROWS rows each; an
    instrument longer than that is a block of its own."""
    targets = np.arange(BLOCK_ROWS, int(offsets[-1]), BLOCK_ROWS)
    cuts = np.unique(np.concatenate(([0], np.searchsorted(offsets, targets), [offsets.size - 1])))
    return list(pairwise(cuts.tolist()))


def _arrow_backed(shape: tuple[int, int], dtype: type[np.generic]) -> np.ndarray:
    """An uninitialized array in memory from Arrow's pool, which the output frame owns.

    The output is hundreds of MB: a fresh mapping (what numpy gets for such sizes) is faulted
    in and zeroed by the kernel page by page, which costs more than computing several of the
    columns; Arrow's pool keeps the memory of dropped frames and hands it out again.
    """
    size = shape[0] * shape[1] * np.dtype(dtype).itemsize
    return np.frombuffer(pa.allocate_buffer(size), dtype=dtype).reshape(shape)


def _usable(fields: dict[str, np.ndarray]) -> bool:
    """Whether ``_check_values`` accepts all these values and none is NaN (a NaN makes a
    comparison false)."""
    prices = all(
        values.min(initial=np.inf) > 0 and values.max(initial=0.0) < np.inf
        for field, values in fields.items()
        if field != "volume"
    )
    volume = fields["volume"]
    return prices and volume.min(initial=np.inf) >= 0 and volume.max(initial=0.0) < np.inf


def _check_values(
    frame: pl.DataFrame, arrays: dict[str, np.ndarray], lows: dict[str, float]
) -> None:
    """Reject values whose NaN would spread through TA-Lib's running totals to later rows;
    ``lows`` are the fields' minima (inf when there are no rows)."""
    prices_ok = all(
        lows[field] > 0 and np.isfinite(arrays[field].max(initial=0.0)) for field in FIELDS[:4]
    )
    volume_ok = lows["volume"] >= 0 and np.isfinite(arrays["volume"].max(initial=0.0))
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
