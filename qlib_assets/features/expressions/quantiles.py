"""Quantiles of every window and level of one column at once, for the padded evaluation.

Each window's cells are sorted lane by lane (lane p holds the p-th smallest cell of the window
ending at each row): short windows through a sorting network (Batcher's odd-even merge sort),
longer ones by merging two shorter windows' sorted lanes with a bitonic merging network, so all
windows of one input cost about as much as sorting the longest once. Rows whose window reaches
over another instrument's rows (no padding between them) are redone from gathered windows.
The result equals pandas' linear-interpolation quantile of each window's valid values.
"""

from collections.abc import Callable, Iterable, Mapping, Sequence
from functools import cache

import numpy as np
import polars as pl

from qlib_assets.features.expressions import kernels
from qlib_assets.features.expressions.kernels import FloatArray, IntArray, valid_before_start
from qlib_assets.features.expressions.planning import window_split

# Windows up to this long are sorted by a sorting network, longer ones merged from two shorter
# ones; rows per chunk (larger chunks leave the caches, smaller ones pay more Python per numpy
# call); rows per gathered block.
_NETWORK_ROWS = 8
_LANE_CHUNK = 1 << 15
_BLOCK_ROWS = 1 << 15


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
        short = short[valid_before_start(present, 0, short, pos[short], valid)]
        for start in range(0, len(short), _BLOCK_ROWS):
            block = short[start : start + _BLOCK_ROWS]
            windows = kernels.gathered(values, block, pos[block], n)
            for result, value in zip(results[n], kernels.quantiles(windows, qs), strict=True):
                result[block] = value
    return results


def quantiles_kernel(levels: Mapping[int, Sequence[float]]) -> Callable[[pl.Series], pl.Series]:
    """A ``map_batches`` function over a struct column ``{v: value, p: pos}``: a struct of the
    quantiles at every row of each window ``n`` of ``levels`` at each of its levels, field
    ``q{n}_{i}`` for ``levels[n][i]``."""

    def run(batch: pl.Series) -> pl.Series:
        values = batch.struct.field("v").cast(pl.Float64).fill_null(np.nan).to_numpy()
        pos = batch.struct.field("p").cast(pl.Int64).to_numpy()
        quantiles = _quantile_columns(values, pos, levels)
        fields = [
            pl.Series(f"q{n}_{i}", out, dtype=pl.Float64, nan_to_null=True)
            for n, outs in quantiles.items()
            for i, out in enumerate(outs)
        ]
        return pl.struct(fields, eager=True).alias(batch.name)

    return run
