"""Numpy window statistics over matrices of windows, one matrix row per output row.

A window matrix holds, for each output row, the last ``n`` rows of its column, oldest first;
missing sessions are NaN. ``pos`` is the output row's 0-based index within its instrument: the
``n - 1 - pos`` leading cells of a row with ``pos < n - 1`` lie before the instrument's first
row, and every statistic ignores them (pandas' ``min_periods=1`` truncation), whatever they hold.

Two sources build the matrices: a sliding view over a whole column (:func:`window_kernel`, every
row of a panel) and a gather of chosen rows (:func:`window_statistic_at`, the few output rows of
a one-session run). The statistics are the same functions for both, except that the whole-column
path has faster forms of Rank (lag by lag) and Quantile (polars on the complete windows).
"""

import warnings
from collections.abc import Callable, Sequence

import numpy as np
import polars as pl
from numpy.lib.stride_tricks import sliding_window_view

FloatArray = np.ndarray
IntArray = np.ndarray

# np.isclose(std, 0, atol=2e-05): Qlib's test for a constant window in Rsquare and Corr.
CONSTANT_STD = 2e-05
# Rows per gathered block: bounds a block's window matrices to a few tens of megabytes.
_BLOCK_ROWS = 1 << 15


def _windows(values: FloatArray, n: int) -> FloatArray:
    padded = np.concatenate([np.full(n - 1, np.nan), values])
    return sliding_window_view(padded, n)


def _short_rows(
    windows: FloatArray, pos: IntArray, n: int, fill: float
) -> tuple[IntArray, FloatArray, IntArray]:
    """Rows whose window starts before their instrument's first row, with those cells filled."""
    rows = np.nonzero(pos < n - 1)[0]
    cut = (n - 1 - pos[rows]).astype(np.int64)
    block = windows[rows].copy()
    block[np.arange(n)[None, :] < cut[:, None]] = fill
    return rows, block, cut


def _idx_extreme(windows: FloatArray, pos: IntArray, n: int, find_max: bool) -> FloatArray:
    # np.argmax/argmin return the first NaN in a window holding one: Qlib's quirk, reproduced
    # by handing numpy the raw window with NaN for missing sessions.
    arg = np.argmax if find_max else np.argmin
    index = arg(windows, axis=1)
    result = index.astype(np.float64) + 1.0
    # Only a window whose pick is NaN can be all-missing: check those few rows in full.
    picked_nan = np.nonzero(np.isnan(windows[np.arange(len(index)), index]))[0]
    empty = np.zeros(len(index), dtype=bool)
    empty[picked_nan] = np.isnan(windows[picked_nan]).all(axis=1)
    rows, block, cut = _short_rows(windows, pos, n, -np.inf if find_max else np.inf)
    if rows.size:
        result[rows] = arg(block, axis=1) - cut + 1.0
        before = np.arange(n)[None, :] < cut[:, None]
        empty[rows] = (np.isnan(block) | before).all(axis=1)
    result[empty] = np.nan
    return result


def _rank(windows: FloatArray) -> FloatArray:
    # pandas' rolling rank(pct=True), method "average": ties share the mean of their ranks.
    last = windows[:, -1:]
    below = (windows < last).sum(axis=1)
    tied = (windows == last).sum(axis=1)
    valid = (~np.isnan(windows)).sum(axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        result = (below + (tied + 1) / 2.0) / valid
    result[np.isnan(last[:, 0])] = np.nan
    return result


def _quantile(windows: FloatArray, q: float) -> FloatArray:
    """pandas' linear-interpolation quantile of each row's valid values. (np.nanquantile loops
    over the rows in Python as soon as one holds a NaN.)"""
    ordered = np.sort(windows, axis=1)  # NaN sorts last
    count = (~np.isnan(windows)).sum(axis=1)
    at = np.maximum(count - 1, 0) * q
    low = np.floor(at).astype(np.int64)
    high = np.minimum(low + 1, np.maximum(count - 1, 0))
    rows = np.arange(len(windows))
    below, above = ordered[rows, low], ordered[rows, high]
    result = below + (above - below) * (at - low)
    result[count == 0] = np.nan
    return result


def _mad(windows: FloatArray) -> FloatArray:
    mean = np.nanmean(windows, axis=1, keepdims=True)
    return np.nanmean(np.abs(windows - mean), axis=1)


def _moment(windows: FloatArray, kurtosis: bool) -> FloatArray:
    """pandas' bias-corrected skew (3+ values) and excess kurtosis (4+ values); a constant
    window gives 0 and -3 as pandas does."""
    count = (~np.isnan(windows)).sum(axis=1).astype(np.float64)
    deviation = windows - np.nanmean(windows, axis=1, keepdims=True)
    m2 = np.nansum(deviation**2, axis=1) / count
    if kurtosis:
        m4 = np.nansum(deviation**4, axis=1) / count
        value = ((count + 1) * m4 / m2**2 - 3 * (count - 1)) * (count - 1)
        value /= (count - 2) * (count - 3)
        least, flat = 4, -3.0
    else:
        m3 = np.nansum(deviation**3, axis=1) / count
        value = np.sqrt(count * (count - 1)) / (count - 2) * m3 / m2**1.5
        least, flat = 3, 0.0
    constant = np.nanmax(windows, axis=1) == np.nanmin(windows, axis=1)
    value[constant] = flat
    value[count < least] = np.nan
    return value


def _regression(op: str, windows: FloatArray, pos: IntArray, n: int) -> FloatArray:
    """Slope, Rsquare, Resi and WMA from the windowed sums of the valid values y against their
    session positions t, the same sums and formulas the full-history path uses."""
    valid = ~np.isnan(windows)
    t = np.where(valid, (pos[:, None] - (n - 1) + np.arange(n)[None, :]).astype(np.float64), 0.0)
    y = np.where(valid, windows, 0.0)
    s_n = valid.sum(axis=1).astype(np.float64)
    s_t, s_y, s_ty = t.sum(axis=1), y.sum(axis=1), (t * y).sum(axis=1)
    here = pos.astype(np.float64)
    if op == "WMA":
        length = np.minimum(float(n), here + 1.0)
        return (s_ty - (here - length) * s_y) / (length * (length + 1.0) / 2.0) / s_n
    s_tt = (t * t).sum(axis=1)
    covariance = s_n * s_ty - s_t * s_y
    spread_t = s_n * s_tt - s_t * s_t
    slope = covariance / spread_t
    if op == "Slope":
        return slope
    if op == "Resi":
        return (windows[:, -1] - s_y / s_n) - slope * (here - s_t / s_n)
    spread_y = s_n * (y * y).sum(axis=1) - s_y * s_y
    rsquare = covariance * covariance / (spread_t * spread_y)
    rsquare[np.nanstd(windows, axis=1, ddof=1) <= CONSTANT_STD] = np.nan
    return rsquare


def _pair(op: str, left: FloatArray, right: FloatArray) -> FloatArray:
    # pandas pairs the two sides first: a row counts only when both are present.
    both = ~np.isnan(left) & ~np.isnan(right)
    a = np.where(both, left, np.nan)
    b = np.where(both, right, np.nan)
    count = both.sum(axis=1).astype(np.float64)
    mean_ab = np.nanmean(a * b, axis=1)
    cov = (mean_ab - np.nanmean(a, axis=1) * np.nanmean(b, axis=1)) * (count / (count - 1.0))
    cov[count < 2] = np.nan
    if op == "Cov":
        return cov
    corr = cov / np.sqrt(np.nanvar(a, axis=1, ddof=1) * np.nanvar(b, axis=1, ddof=1))
    # Qlib tests each side's own std, over its rows whether or not the other side is present.
    left_std = np.nanstd(left, axis=1, ddof=1)
    right_std = np.nanstd(right, axis=1, ddof=1)
    corr[(left_std <= CONSTANT_STD) | (right_std <= CONSTANT_STD)] = np.nan
    return corr


def _nan_if_empty(result: FloatArray, windows: FloatArray) -> FloatArray:
    """An all-missing window gives NaN, not numpy's 0 for an empty sum."""
    result[np.isnan(windows).all(axis=1)] = np.nan
    return result


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
    if op in ("IdxMax", "IdxMin"):
        return _idx_extreme(windows, pos, n, find_max=op == "IdxMax")
    # An all-NaN window is NaN by design; numpy's "mean of empty slice" warnings are noise here.
    with warnings.catch_warnings(), np.errstate(invalid="ignore", divide="ignore"):
        warnings.simplefilter("ignore", RuntimeWarning)
        result = _statistic(op, windows, pos, n, quantile, other)
        # Short windows again, with the cells before the instrument's start emptied: cheaper
        # than copying the whole (possibly strided) matrix to empty them in place.
        rows, block, _ = _short_rows(windows, pos, n, np.nan)
        if rows.size:
            other_block = None if other is None else _short_rows(other, pos, n, np.nan)[1]
            result[rows] = _statistic(op, block, pos[rows], n, quantile, other_block)
    return result


def _statistic(
    op: str,
    windows: FloatArray,
    pos: IntArray,
    n: int,
    quantile: float | None,
    other: FloatArray | None,
) -> FloatArray:
    if op == "Rank":
        return _rank(windows)
    if op in ("Corr", "Cov"):
        if other is None:
            raise ValueError(f"{op} needs the second operand's windows")
        return _pair(op, windows, other)
    if op in ("Slope", "Rsquare", "Resi", "WMA"):
        return _regression(op, windows, pos, n)
    if op in ("Skew", "Kurt"):
        return _moment(windows, kurtosis=op == "Kurt")
    simple: dict[str, Callable[[], FloatArray]] = {
        "Mean": lambda: np.nanmean(windows, axis=1),
        "Sum": lambda: _nan_if_empty(np.nansum(windows, axis=1), windows),
        "Std": lambda: np.nanstd(windows, axis=1, ddof=1),
        "Var": lambda: np.nanvar(windows, axis=1, ddof=1),
        "Max": lambda: np.nanmax(windows, axis=1),
        "Min": lambda: np.nanmin(windows, axis=1),
        "Med": lambda: _quantile(windows, 0.5),
        "Count": lambda: (~np.isnan(windows)).sum(axis=1).astype(np.float64),
        "Mad": lambda: _mad(windows),
        "Quantile": lambda: _quantile(windows, quantile or 0.0),
    }
    if op not in simple:
        raise ValueError(f"no window statistic for {op}")
    return simple[op]()


def _rank_column(values: FloatArray, pos: IntArray, n: int) -> FloatArray:
    """Rank at every row. Walks the window lag by lag over shifted views of the column with
    in-place small-integer counts: no (rows x n) temporaries, several times faster than
    comparing a window matrix. ``2*below + tied`` is one count: ``(x < last) + (x <= last)``."""
    rows = len(values)
    padded = np.concatenate([np.full(n - 1, np.nan), values])
    score = np.zeros(rows, dtype=np.int16)
    with np.errstate(invalid="ignore"):
        for lag in range(n):
            column = padded[n - 1 - lag : n - 1 - lag + rows]
            np.add(score, np.less(column, values), out=score, casting="unsafe")
            np.add(score, np.less_equal(column, values), out=score, casting="unsafe")
    present = np.concatenate([[0], np.cumsum(~np.isnan(padded))])
    valid = present[n : n + rows] - present[:rows]
    with np.errstate(invalid="ignore", divide="ignore"):
        result = (score + 1.0) / (2.0 * valid)
    result[np.isnan(values)] = np.nan
    # Windows reaching before the instrument's first row (over another instrument's rows when
    # the column is not padded) are redone from their emptied window matrices.
    short, block, _ = _short_rows(_windows(values, n), pos, n, np.nan)
    if short.size:
        result[short] = _rank(block)
    return result


def _quantile_column(values: FloatArray, pos: IntArray, n: int, q: float) -> FloatArray:
    """Quantile at every row. polars' rolling quantile is several times faster on a column
    without missing values, so it runs on the valid values alone, where it is right for rows
    whose window is n valid sessions of their own instrument; the other rows (instrument starts,
    windows over a suspension) are computed from their gathered windows."""
    valid = ~np.isnan(values)
    compact = pl.Series(values[valid]).rolling_quantile(q, "linear", n, min_samples=1)
    present = np.concatenate([[0], np.cumsum(valid)])
    rows = np.arange(len(values))
    complete = (pos >= n - 1) & (present[rows + 1] - present[np.maximum(rows + 1 - n, 0)] == n)
    result = np.full(len(values), np.nan)
    result[complete] = compact.to_numpy()[present[rows[complete] + 1] - 1]
    rest = np.flatnonzero(~complete & (pos >= 0))
    result[rest] = window_statistic_at("Quantile", [values], rest, pos[rest], n, q)
    return result


def _as_arrays(batch: pl.Series) -> tuple[FloatArray, IntArray]:
    values = batch.struct.field("v").cast(pl.Float64).fill_null(np.nan).to_numpy()
    pos = batch.struct.field("p").cast(pl.Int64).to_numpy()
    return values, pos


def window_kernel(
    name: str, n: int, quantile: float | None = None
) -> Callable[[pl.Series], pl.Series]:
    """A ``map_batches`` function over a struct column ``{v: value, p: pos}``: the statistic
    at every row (Rank walks the lags; the others use a sliding view)."""

    def run(batch: pl.Series) -> pl.Series:
        values, pos = _as_arrays(batch)
        if name == "Rank":
            out = _rank_column(values, pos, n)
        elif name == "Quantile":
            out = _quantile_column(values, pos, n, quantile or 0.0)
        else:
            out = window_statistic(name, _windows(values, n), pos, n)
        return pl.Series(out, dtype=pl.Float64, nan_to_null=True)

    return run


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
    offsets = np.arange(n) - (n - 1)
    result = np.empty(len(rows))
    for start in range(0, len(rows), _BLOCK_ROWS):
        block = slice(start, start + _BLOCK_ROWS)
        index = np.maximum(rows[block, None] + offsets[None, :], 0)
        before = offsets[None, :] < -pos[block, None]
        windows = []
        for values in columns:
            gathered = values[index]
            gathered[before] = np.nan
            windows.append(gathered)
        other = windows[1] if len(windows) > 1 else None
        result[block] = window_statistic(
            op, windows[0], pos[block], n, quantile=quantile, other=other
        )
    return result
