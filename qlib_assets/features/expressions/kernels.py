"""Numpy window statistics over matrices of windows, one matrix row per output row.

A window matrix holds, for each output row, the last ``n`` rows of its column, oldest first;
missing sessions are NaN. ``pos`` is the output row's 0-based index within its instrument: the
``n - 1 - pos`` leading cells of a row with ``pos < n - 1`` lie before the instrument's first
row, and every statistic ignores them (pandas' ``min_periods=1`` truncation), whatever they hold.

Two sources build the matrices: a sliding view over a whole column (:func:`window_kernel`, every
row of a panel) and a gather of chosen rows (:func:`window_statistic_at`, the few output rows of
a one-session run). The statistics are the same functions for both, except that the whole-column
path has faster forms for the rows whose window is complete (n rows of their own instrument):
Rank walks the lags over the column without building window matrices, one walk for every
window of a column (:func:`ranks_kernel`); Quantile
(:func:`quantiles_kernel`, every window and level of a column at once) sorts each window's
cells lane by lane, short windows through a sorting network and longer ones by merging two
shorter windows' sorted lanes. Only the other rows (instrument starts over another
instrument's rows) fall back to window matrices.
"""

import warnings
from collections.abc import Callable, Collection, Iterable, Mapping, Sequence
from functools import cache

import numpy as np
import polars as pl
from numpy.lib.stride_tricks import sliding_window_view

FloatArray = np.ndarray
IntArray = np.ndarray

# np.isclose(std, 0, atol=2e-05): Qlib's test for a constant window in Rsquare and Corr.
CONSTANT_STD = 2e-05
# Rows per gathered block: bounds a block's window matrices to a few tens of megabytes.
_BLOCK_ROWS = 1 << 15
# Sorted lanes: windows up to this long are sorted by a sorting network, longer ones merged
# from two shorter ones; rows per chunk (larger chunks leave the caches, smaller ones pay more
# Python per numpy call).
_NETWORK_ROWS = 8
_LANE_CHUNK = 1 << 15


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


def _quantiles(windows: FloatArray, qs: Sequence[float]) -> list[FloatArray]:
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


def _quantile(windows: FloatArray, q: float) -> FloatArray:
    return _quantiles(windows, (q,))[0]


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


def _rank_columns(values: FloatArray, pos: IntArray, ns: Sequence[int]) -> list[FloatArray]:
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
                results[n] = (score + 1.0) / (2.0 * valid), valid
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
        short = short[_valid_before_start(present, longest - 1, short, pos[short], valid[short])]
        if short.size:
            _, block, _ = _short_rows(_windows(values, n)[short], pos[short], n, np.nan)
            result[short] = _rank(block)
        ranks.append(result)
    return ranks


def _valid_before_start(
    present: IntArray, lead: int, rows: IntArray, pos: IntArray, valid: IntArray
) -> np.ndarray:
    """Which of ``rows`` (``pos`` their index within their instrument) have a window holding
    more valid values (``valid``) than their instrument's own rows do: a value before the
    instrument's first row. ``present`` counts the valid values of the column preceded by
    ``lead`` cells."""
    own = present[lead + rows + 1] - present[lead + rows - pos]
    return valid != own


@cache
def _sorting_network(n: int) -> tuple[tuple[int, int], ...]:
    """Batcher's odd-even merge sort for n lanes, as compare-exchange pairs (i, j), i < j:
    O(n log^2 n) pairs, e.g. 9 for 5 lanes, 178 for 30."""
    pairs: list[tuple[int, int]] = []
    span = 1
    while span < n:
        step = span
        while step >= 1:
            for j in range(step % span, n - step, 2 * step):
                for i in range(min(step, n - j - step)):
                    if (i + j) // (2 * span) == (i + j + step) // (2 * span):
                        pairs.append((i + j, i + j + step))
            step //= 2
        span *= 2
    return tuple(pairs)


def window_split(n: int, built: Collection[int]) -> int:
    """How window ``n`` is merged from two shorter windows: the length ``k`` of its newer part,
    next to an older window of ``n - k`` rows ending ``k`` rows back. The longest window already
    built below ``n`` when it covers at least half of ``n``, else the upper half of ``n`` (to be
    built first, as is the older part when missing)."""
    k = max((size for size in built if size < n), default=0)
    return k if 2 * k >= n else (n + 1) // 2


@cache
def _merging_network(older: int, newer: int) -> tuple[tuple[int, ...], tuple[tuple[int, int], ...]]:
    """Compare-exchange steps that merge two sorted runs of lanes (``older`` then ``newer``)
    into one sorted run of ``older + newer`` lanes: a bitonic merge of the older run, empty
    lanes (+inf) up to a power of two, and the newer run reversed. Steps touching an empty lane
    are resolved here: against a larger position they do nothing, against a smaller one they
    move the lane there. Returns where each lane starts (older lanes as 0.., newer as
    ``older``..; -1 for an empty one) and the remaining steps, as pairs of positions i < j to
    order; a step (-1 - i, j) moves position j's lane to i."""
    size = 1
    while size < older + newer:
        size *= 2
    start = [
        *range(older),
        *([-1] * (size - older - newer)),
        *reversed(range(older, older + newer)),
    ]
    empty = {p for p, lane in enumerate(start) if lane < 0}
    steps: list[tuple[int, int]] = []
    span = size // 2
    while span:
        for base in range(0, size, 2 * span):
            for i in range(base, base + span):
                j = i + span
                if j in empty:
                    continue
                if i in empty:
                    steps.append((-1 - i, j))
                    empty.remove(i)
                    empty.add(j)
                else:
                    steps.append((i, j))
        span //= 2
    return tuple(start), tuple(steps)


def _compare_exchange(
    lanes: FloatArray, order: list[int], steps: Iterable[tuple[int, int]], spare: int
) -> None:
    """Run the steps over ``lanes`` (one row of values per lane), where position p's values are
    ``lanes[order[p]]``: the smaller of each pair goes to the spare row, which becomes
    position i's, and the larger overwrites position j's row."""
    for i, j in steps:
        if i < 0:
            order[-1 - i] = order[j]
            continue
        low, high = order[i], order[j]
        np.minimum(lanes[low], lanes[high], out=lanes[spare])
        np.maximum(lanes[low], lanes[high], out=lanes[high])
        order[i], spare = spare, low


def _sorted_windows(
    values: FloatArray, windows: Sequence[int], lo: int, hi: int
) -> dict[int, tuple[FloatArray, list[int], int]]:
    """For rows ``lo``..``hi`` of ``values`` (missing as +inf, ``lo`` at least the longest
    window's reach past the start) and each window: its cells sorted lane by lane. Returns
    ``(lanes, order, first)``: lane row ``order[p]`` holds the p-th smallest of the window
    ending at each row from ``first``. Short windows come from a sorting network, longer ones
    from merging two shorter ones (one ending ``k`` rows back), which rows before ``lo`` make
    available."""
    recipe: dict[int, int] = {}

    def plan(n: int) -> None:
        if n in recipe or n <= _NETWORK_ROWS:
            recipe.setdefault(n, 0)
            return
        k = window_split(n, recipe)
        plan(k)
        plan(n - k)
        recipe[n] = k

    for n in sorted(windows):
        plan(n)
    # Rows before lo each window is needed at: the older part of a merge is read k rows back.
    reach = dict.fromkeys(recipe, 0)
    for n in sorted(recipe, reverse=True):
        if k := recipe[n]:
            reach[k] = max(reach[k], reach[n])
            reach[n - k] = max(reach[n - k], reach[n] + k)
    built: dict[int, tuple[FloatArray, list[int], int]] = {}
    for n in sorted(recipe):
        first = lo - reach[n]
        rows = hi - first
        lanes = np.empty((n + 1, rows), dtype=values.dtype)
        if not recipe[n]:
            for lag in range(n):
                lanes[lag] = values[first - n + 1 + lag : hi - n + 1 + lag]
            order = list(range(n))
            _compare_exchange(lanes, order, _sorting_network(n), n)
        else:
            k = recipe[n]
            start, steps = _merging_network(n - k, k)
            (old, old_order, old_first), (new, new_order, new_first) = built[n - k], built[k]
            order = [-1] * len(start)
            for p, lane in enumerate(start):
                if lane < 0:
                    continue
                if lane < n - k:
                    at = first - k - old_first
                    lanes[lane] = old[old_order[lane], at : at + rows]
                else:
                    at = first - new_first
                    lanes[lane] = new[new_order[lane - n + k], at : at + rows]
                order[p] = lane
            _compare_exchange(lanes, order, steps, n)
            order = order[:n]
        built[n] = lanes, order, first
    return built


def _quantile_chunk(
    cells: FloatArray,
    lead: int,
    present: IntArray,
    levels: Mapping[int, Sequence[float]],
    results: Mapping[int, Sequence[FloatArray]],
    lo: int,
    hi: int,
) -> None:
    """Rows ``lo``..``hi`` of :func:`_quantile_columns`' results from sorted lanes: fixed lanes
    for the windows of n valid values, lanes chosen row by row for the others."""
    built = _sorted_windows(cells, tuple(levels), lead + lo, lead + hi)
    rows = np.arange(lo, hi)
    for n, qs in levels.items():
        lanes, order, first = built[n]
        at_lo = lead + lo - first
        count = present[rows + 1] - present[np.maximum(rows + 1 - n, 0)]
        partial = np.flatnonzero(count < n)
        valid = count[partial]
        orders = np.asarray(order)
        # Lanes past a window's valid values hold +inf: inf - inf where the fixed lanes are
        # read, on rows redone below; an empty window stays NaN, as pandas gives.
        with np.errstate(invalid="ignore"):
            for q, result in zip(qs, results[n], strict=True):
                at = (n - 1) * q
                low = int(np.floor(at))
                below = lanes[order[low], at_lo:].astype(np.float64)
                above = lanes[order[min(low + 1, n - 1)], at_lo:].astype(np.float64)
                out = below + (above - below) * (at - low)
                if partial.size:
                    at_p = np.maximum(valid - 1, 0) * q
                    low_p = np.floor(at_p).astype(np.int64)
                    high_p = np.minimum(low_p + 1, np.maximum(valid - 1, 0))
                    below_p = lanes[orders[low_p], at_lo + partial].astype(np.float64)
                    above_p = lanes[orders[high_p], at_lo + partial].astype(np.float64)
                    out[partial] = below_p + (above_p - below_p) * (at_p - low_p)
                    out[partial[valid == 0]] = np.nan
                result[lo:hi] = out


def _quantile_columns(
    values: FloatArray, pos: IntArray, levels: Mapping[int, Sequence[float]]
) -> dict[int, list[FloatArray]]:
    """pandas' linear-interpolation quantiles of each window's valid values at every row, for
    each window ``n`` and its levels. Every window's cells are sorted lane by lane, missing
    ones (and those before an instrument's first row in the padded layout) last as +inf; the
    quantile's position follows from the window's count of valid values. Lanes are float32
    when that holds every value exactly (fields are): sorting only moves values. Rows whose
    window reaches over another instrument's rows (no padded layout) are redone from their
    gathered windows."""
    size = len(values)
    missing = np.isnan(values)
    present = np.concatenate([[0], np.cumsum(~missing)])
    lead = max(levels) + max(levels)
    narrow = values.astype(np.float32)
    kind = np.float32 if np.array_equal(narrow, values, equal_nan=True) else np.float64
    cells = np.full(lead + size, np.inf, dtype=kind)
    cells[lead:] = np.where(missing, np.inf, values)
    results = {n: [np.empty(size) for _ in qs] for n, qs in levels.items()}
    for lo in range(0, size, _LANE_CHUNK):
        _quantile_chunk(cells, lead, present, levels, results, lo, min(lo + _LANE_CHUNK, size))
    for n, qs in levels.items():
        short = np.flatnonzero((pos >= 0) & (pos < n - 1))
        valid = present[short + 1] - present[np.maximum(short + 1 - n, 0)]
        short = short[_valid_before_start(present, 0, short, pos[short], valid)]
        for start in range(0, len(short), _BLOCK_ROWS):
            block = short[start : start + _BLOCK_ROWS]
            windows = _gathered(values, block, pos[block], n)
            for result, value in zip(results[n], _quantiles(windows, qs), strict=True):
                result[block] = value
    return results


def _as_arrays(batch: pl.Series) -> tuple[FloatArray, IntArray]:
    values = batch.struct.field("v").cast(pl.Float64).fill_null(np.nan).to_numpy()
    pos = batch.struct.field("p").cast(pl.Int64).to_numpy()
    return values, pos


def window_kernel(name: str, n: int) -> Callable[[pl.Series], pl.Series]:
    """A ``map_batches`` function over a struct column ``{v: value, p: pos}``: the statistic
    at every row (Rank walks the lags; the others use a sliding view; Quantile has
    :func:`quantiles_kernel`). The padded evaluation merges Max/IdxMax from shorter windows in
    polars; IdxMax/IdxMin come here only for a single compiled expression."""

    def run(batch: pl.Series) -> pl.Series:
        values, pos = _as_arrays(batch)
        if name == "Rank":
            (out,) = _rank_columns(values, pos, (n,))
        else:
            out = window_statistic(name, _windows(values, n), pos, n)
        return pl.Series(out, dtype=pl.Float64, nan_to_null=True)

    return run


def _struct(batch: pl.Series, columns: Sequence[tuple[str, FloatArray]]) -> pl.Series:
    """A struct kernel's result: Float64 fields, null where NaN, named as the input column."""
    fields = [pl.Series(name, out, dtype=pl.Float64, nan_to_null=True) for name, out in columns]
    return pl.struct(fields, eager=True).alias(batch.name)


def quantiles_kernel(levels: Mapping[int, Sequence[float]]) -> Callable[[pl.Series], pl.Series]:
    """A ``map_batches`` function over a struct column ``{v: value, p: pos}``: a struct of the
    quantiles at every row of each window ``n`` of ``levels`` at each of its levels, field
    ``q{n}_{i}`` for ``levels[n][i]``."""

    def run(batch: pl.Series) -> pl.Series:
        values, pos = _as_arrays(batch)
        quantiles = _quantile_columns(values, pos, levels)
        return _struct(
            batch,
            [(f"q{n}_{i}", out) for n, outs in quantiles.items() for i, out in enumerate(outs)],
        )

    return run


def ranks_kernel(ns: Sequence[int]) -> Callable[[pl.Series], pl.Series]:
    """A ``map_batches`` function over a struct column ``{v: value, p: pos}``: a struct of
    Rank over each window of ``ns`` (field ``r{i}`` for ``ns[i]``), from one walk of the
    longest window."""

    def run(batch: pl.Series) -> pl.Series:
        values, pos = _as_arrays(batch)
        ranks = _rank_columns(values, pos, ns)
        return _struct(batch, [(f"r{i}", out) for i, out in enumerate(ranks)])

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


def _gathered(values: FloatArray, rows: IntArray, pos: IntArray, n: int) -> FloatArray:
    """The windows ending at ``rows`` (``pos``: their index within their instrument), with
    the cells before the instrument's first row emptied."""
    windows = _windows(values, n)[rows]
    short = np.flatnonzero(pos < n - 1)
    if short.size:
        block = windows[short]
        block[np.arange(n)[None, :] < (n - 1 - pos[short])[:, None]] = np.nan
        windows[short] = block
    return windows


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
        windows = [_gathered(values, rows[block], pos[block], n) for values in columns]
        other = windows[1] if len(windows) > 1 else None
        result[block] = window_statistic(
            op, windows[0], pos[block], n, quantile=quantile, other=other
        )
    return result
