"""Numpy window statistics over matrices of windows, one matrix row per output row.

A window matrix holds, for each output row, the last ``n`` rows of its column, oldest first;
missing sessions are NaN. ``pos`` is the output row's 0-based index within its instrument: the
``n - 1 - pos`` leading cells of a row with ``pos < n - 1`` lie before the instrument's first
row, and every statistic ignores them (pandas' ``min_periods=1`` truncation), whatever they hold.

Matrices come from a sliding view over a whole column (:func:`sliding_windows`) or from chosen
rows (:func:`gathered`). Rank has a whole-column form besides (:func:`rank_columns`) that walks
the lags without building window matrices, one walk for every window of a column.
"""

from collections.abc import Sequence

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

FloatArray = np.ndarray
IntArray = np.ndarray

# np.isclose(std, 0, atol=2e-05): Qlib's test for a constant window in Rsquare and Corr.
CONSTANT_STD = 2e-05


def sliding_windows(values: FloatArray, n: int) -> FloatArray:
    padded = np.concatenate([np.full(n - 1, np.nan), values])
    return sliding_window_view(padded, n)


def short_rows(
    windows: FloatArray, pos: IntArray, n: int, fill: float
) -> tuple[IntArray, FloatArray, IntArray]:
    """Rows whose window starts before their instrument's first row, with those cells filled."""
    rows = np.nonzero(pos < n - 1)[0]
    cut = (n - 1 - pos[rows]).astype(np.int64)
    block = windows[rows].copy()
    block[np.arange(n)[None, :] < cut[:, None]] = fill
    return rows, block, cut


def idx_extreme(windows: FloatArray, pos: IntArray, n: int, find_max: bool) -> FloatArray:
    # np.argmax/argmin return the first NaN in a window holding one: Qlib's quirk, reproduced
    # by handing numpy the raw window with NaN for missing sessions.
    arg = np.argmax if find_max else np.argmin
    index = arg(windows, axis=1)
    result = index.astype(np.float64) + 1.0
    # Only a window whose pick is NaN can be all-missing: check those few rows in full.
    picked_nan = np.nonzero(np.isnan(windows[np.arange(len(index)), index]))[0]
    empty = np.zeros(len(index), dtype=bool)
    empty[picked_nan] = np.isnan(windows[picked_nan]).all(axis=1)
    rows, block, cut = short_rows(windows, pos, n, -np.inf if find_max else np.inf)
    if rows.size:
        result[rows] = arg(block, axis=1) - cut + 1.0
        before = np.arange(n)[None, :] < cut[:, None]
        empty[rows] = (np.isnan(block) | before).all(axis=1)
    result[empty] = np.nan
    return result


def rank(windows: FloatArray) -> FloatArray:
    # pandas' rolling rank(pct=True), method "average": ties share the mean of their ranks.
    last = windows[:, -1:]
    below = (windows < last).sum(axis=1)
    tied = (windows == last).sum(axis=1)
    valid = (~np.isnan(windows)).sum(axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        result = (below + (tied + 1) / 2.0) / valid
    result[np.isnan(last[:, 0])] = np.nan
    return result


def quantiles(windows: FloatArray, qs: Sequence[float]) -> list[FloatArray]:
    """pandas' linear-interpolation quantiles of each row's valid values, one sort for all of
    ``qs``. (np.nanquantile loops over the rows in Python as soon as one holds a NaN.)"""
    ordered = np.sort(windows, axis=1)  # NaN sorts last
    count = (~np.isnan(windows)).sum(axis=1)
    rows = np.arange(len(windows))
    results = []
    for q in qs:
        at = np.maximum(count - 1, 0) * q
        low = np.floor(at).astype(np.int64)
        high = np.minimum(low + 1, np.maximum(count - 1, 0))
        below, above = ordered[rows, low], ordered[rows, high]
        result = below + (above - below) * (at - low)
        result[count == 0] = np.nan
        results.append(result)
    return results


def quantile(windows: FloatArray, q: float) -> FloatArray:
    return quantiles(windows, (q,))[0]


def mad(windows: FloatArray) -> FloatArray:
    mean = np.nanmean(windows, axis=1, keepdims=True)
    return np.nanmean(np.abs(windows - mean), axis=1)


def moment(windows: FloatArray, kurtosis: bool) -> FloatArray:
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


def regression(op: str, windows: FloatArray, pos: IntArray, n: int) -> FloatArray:
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


def pair(op: str, left: FloatArray, right: FloatArray) -> FloatArray:
    # pandas pairs the two sides first: a row counts only when both are present.
    both = ~np.isnan(left) & ~np.isnan(right)
    a = np.where(both, left, np.nan)
    b = np.where(both, right, np.nan)
    count = both.sum(axis=1).astype(np.float64)
    var_a, var_b = np.nanvar(a, axis=1, ddof=1), np.nanvar(b, axis=1, ddof=1)
    if op == "Cov":
        mean_ab = np.nanmean(a * b, axis=1)
        cov = (mean_ab - np.nanmean(a, axis=1) * np.nanmean(b, axis=1)) * (count / (count - 1.0))
        cov[count < 2] = np.nan
        return cov
    # The covariance as the whole-column path takes it: Var(a + b) - Var(a) - Var(b), halved.
    cov = (np.nanvar(a + b, axis=1, ddof=1) - var_a - var_b) / 2.0
    corr = cov / np.sqrt(var_a * var_b)
    # Qlib tests each side's own std, over its rows whether or not the other side is present.
    left_std = np.nanstd(left, axis=1, ddof=1)
    right_std = np.nanstd(right, axis=1, ddof=1)
    corr[(left_std <= CONSTANT_STD) | (right_std <= CONSTANT_STD)] = np.nan
    return corr


def nan_if_empty(result: FloatArray, windows: FloatArray) -> FloatArray:
    """An all-missing window gives NaN, not numpy's 0 for an empty sum."""
    result[np.isnan(windows).all(axis=1)] = np.nan
    return result


def rank_columns(values: FloatArray, pos: IntArray, ns: Sequence[int]) -> list[FloatArray]:
    """Rank at every row, for each window of ``ns``. Walks the longest window lag by lag over
    shifted views of the column with in-place small-integer counts (no (rows x n)
    temporaries, several times faster than comparing a window matrix); a shorter window's
    score is the walk's score after its n lags, so one walk serves every window.
    ``2*below + tied`` is one count: ``(x < last) + (x <= last)``."""
    rows = len(values)
    longest = max(ns)
    padded = np.concatenate([np.full(longest - 1, np.nan), values])
    # The score is at most 2n: one byte per row while that fits.
    score = np.zeros(rows, dtype=np.int8 if 2 * longest < 128 else np.int32)
    counted = np.empty(rows, dtype=bool)
    as_int = counted.view(np.int8)
    present = np.concatenate([[0], np.cumsum(~np.isnan(padded))])
    results: dict[int, tuple[FloatArray, IntArray]] = {}
    with np.errstate(invalid="ignore", divide="ignore"):
        for lag in range(longest):
            column = padded[longest - 1 - lag : longest - 1 - lag + rows]
            np.less(column, values, out=counted)
            np.add(score, as_int, out=score)
            np.less_equal(column, values, out=counted)
            np.add(score, as_int, out=score)
            n = lag + 1
            if n in ns:
                start = longest - n
                valid = present[start + n : start + n + rows] - present[start : start + rows]
                results[n] = (score.astype(np.float64) + 1.0) / (2.0 * valid), valid
    missing = np.isnan(values)
    ranks: list[FloatArray] = []
    for n in ns:
        result, valid = results[n]
        result[missing] = np.nan
        result[pos < 0] = np.nan
        # A window reaching before its instrument's first row is right as walked when the
        # cells there hold no value (the padded layout's empty rows); the others (over another
        # instrument's rows when the column is not padded) are redone from their emptied
        # window matrices.
        short = np.flatnonzero((pos >= 0) & (pos < n - 1))
        short = short[valid_before_start(present, longest - 1, short, pos[short], valid[short])]
        if short.size:
            _, block, _ = short_rows(sliding_windows(values, n)[short], pos[short], n, np.nan)
            result[short] = rank(block)
        ranks.append(result)
    return ranks


def valid_before_start(
    present: IntArray, lead: int, rows: IntArray, pos: IntArray, valid: IntArray
) -> np.ndarray:
    """Which of ``rows`` (``pos`` their index within their instrument) have a window holding
    more valid values (``valid``) than their instrument's own rows do: a value before the
    instrument's first row. ``present`` counts the valid values of the column preceded by
    ``lead`` cells."""
    own = present[lead + rows + 1] - present[lead + rows - pos]
    return valid != own


def gathered(values: FloatArray, rows: IntArray, pos: IntArray, n: int) -> FloatArray:
    """The windows ending at ``rows`` (``pos``: their index within their instrument), with
    the cells before the instrument's first row emptied."""
    windows = sliding_windows(values, n)[rows]
    short = np.flatnonzero(pos < n - 1)
    if short.size:
        block = windows[short]
        block[np.arange(n)[None, :] < (n - 1 - pos[short])[:, None]] = np.nan
        windows[short] = block
    return windows
