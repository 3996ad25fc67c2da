"""An operator's numpy statistic over window matrices: at every row of a column (the
``map_batches`` functions the compilers put in polars expressions) or at chosen rows only
(:func:`window_statistic_at`, the few output rows of a one-session run)."""

import warnings
from collections.abc import Callable, Sequence

import numpy as np
import polars as pl

from qlib_assets.features.expressions import kernels
from qlib_assets.features.expressions.kernels import FloatArray, IntArray
from qlib_assets.features.expressions.operators import OPERATORS, Windows

# Rows per gathered block: bounds a block's window matrices to a few tens of megabytes.
_BLOCK_ROWS = 1 << 15


def window_statistic(
    op: str,
    windows: FloatArray,
    pos: IntArray,
    n: int,
    *,
    quantile: float | None = None,
    other: FloatArray | None = None,
) -> FloatArray:
    """Qlib's window operator ``op`` (Mean, Std, Quantile, Corr ...) on each row of windows.

    ``quantile`` is Quantile's q; ``other`` is the second operand's windows for Corr and Cov.
    """
    statistic = OPERATORS[op].statistic
    if statistic is None:
        raise ValueError(f"no window statistic for {op}")
    if op in ("IdxMax", "IdxMin"):
        # Truncates its short rows itself: their cells before the start must rank lowest.
        return statistic(Windows(windows, pos, n))
    # An all-NaN window is NaN by design; numpy's "mean of empty slice" warnings are noise here.
    with warnings.catch_warnings(), np.errstate(invalid="ignore", divide="ignore"):
        warnings.simplefilter("ignore", RuntimeWarning)
        result = statistic(Windows(windows, pos, n, quantile, other))
        # Short windows again, with the cells before the instrument's start emptied: cheaper
        # than copying the whole (possibly strided) matrix to empty them in place.
        rows, block, _ = kernels.short_rows(windows, pos, n, np.nan)
        if rows.size:
            other_block = None if other is None else kernels.short_rows(other, pos, n, np.nan)[1]
            result[rows] = statistic(Windows(block, pos[rows], n, quantile, other_block))
    return result


def window_statistic_at(
    op: str,
    columns: Sequence[FloatArray],
    rows: IntArray,
    pos: IntArray,
    n: int,
    quantile: float | None = None,
) -> FloatArray:
    """The statistic at the chosen ``rows`` of whole columns only (``pos``: their index within
    their instrument), from gathered windows, block by block to bound memory."""
    result = np.empty(len(rows))
    for start in range(0, len(rows), _BLOCK_ROWS):
        block = slice(start, start + _BLOCK_ROWS)
        windows = [kernels.gathered(values, rows[block], pos[block], n) for values in columns]
        other = windows[1] if len(windows) > 1 else None
        result[block] = window_statistic(
            op, windows[0], pos[block], n, quantile=quantile, other=other
        )
    return result


def _as_arrays(batch: pl.Series) -> tuple[FloatArray, IntArray]:
    values = batch.struct.field("v").cast(pl.Float64).fill_null(np.nan).to_numpy()
    pos = batch.struct.field("p").cast(pl.Int64).to_numpy()
    return values, pos


def window_kernel(op: str, n: int) -> Callable[[pl.Series], pl.Series]:
    """A ``map_batches`` function over a struct column ``{v: value, p: pos}``: the statistic
    at every row, from the operator's whole-column form if it has one, else from a sliding
    view of the column."""
    column = OPERATORS[op].column

    def run(batch: pl.Series) -> pl.Series:
        values, pos = _as_arrays(batch)
        if column is not None:
            out = column(values, pos, n)
        else:
            out = window_statistic(op, kernels.sliding_windows(values, n), pos, n)
        return pl.Series(out, dtype=pl.Float64, nan_to_null=True)

    return run


def ranks_kernel(ns: Sequence[int]) -> Callable[[pl.Series], pl.Series]:
    """A ``map_batches`` function over a struct column ``{v: value, p: pos}``: a struct of
    Rank over each window of ``ns`` (field ``r{i}`` for ``ns[i]``), from one walk of the
    longest window."""

    def run(batch: pl.Series) -> pl.Series:
        values, pos = _as_arrays(batch)
        ranks = kernels.rank_columns(values, pos, ns)
        fields = [
            pl.Series(f"r{i}", out, dtype=pl.Float64, nan_to_null=True)
            for i, out in enumerate(ranks)
        ]
        return pl.struct(fields, eager=True).alias(batch.name)

    return run


def paired_variance_kernel(n: int) -> Callable[[pl.Series], pl.Series]:
    """A ``map_batches`` function over a struct column ``{paired, own, std}``: the rolling
    variance of ``paired`` (one side of Corr, missing where either side is), given the same
    side unpaired (``own``) and its rolling std over the same windows. When the column's
    paired side misses exactly the rows its own side misses, the two are the same series and
    the variance is ``std**2``; otherwise it is computed."""

    def run(batch: pl.Series) -> pl.Series:
        paired = batch.struct.field("paired")
        if paired.is_null().equals(batch.struct.field("own").is_null()):
            std = batch.struct.field("std")
            return (std * std).alias(batch.name)
        return paired.rolling_var(n, min_samples=1).alias(batch.name)

    return run
