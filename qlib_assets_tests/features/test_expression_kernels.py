"""The whole-column window kernels against the same statistics on gathered windows.

The gathered path (:func:`window_statistic_at`, one window matrix per output row) is the plain
statement of each statistic; the column kernels take shortcuts (lag walks, sorting and merging
networks, windows merged from shorter ones) that must give the same numbers on every row: ties,
missing sessions inside windows, instruments shorter than the window, with and without the empty
rows the padded layout puts between instruments."""

from datetime import date, timedelta
from itertools import product

import numpy as np
import polars as pl
import pytest

from qlib_assets.features.expressions import compute_expressions
from qlib_assets.features.expressions.quantiles import (
    _compare_exchange,
    _merging_network,
    quantiles_kernel,
)
from qlib_assets.features.expressions.windows import (
    paired_variance_kernel,
    ranks_kernel,
    window_kernel,
    window_statistic_at,
)

LENGTHS = (1, 3, 70, 200, 150, 61)
WINDOWS = (1, 2, 3, 5, 10, 13, 20, 30, 49, 60, 64)


def _column(seed: int, pad: int, copies: int = 1) -> tuple[np.ndarray, np.ndarray]:
    """Values (few distinct levels, so windows hold ties; NaN for missing sessions, including
    a long suspension) and each row's index within its instrument (-1 on padding rows)."""
    rng = np.random.default_rng(seed)
    values: list[np.ndarray] = [np.full(pad, np.nan)]
    pos: list[np.ndarray] = [np.full(pad, -1)]
    for length in LENGTHS * copies:
        part = rng.integers(0, 6, length).astype(np.float64)
        part[rng.random(length) < 0.12] = np.nan
        if length >= 150:
            part[40:52] = np.nan
        values += [part, np.full(pad, np.nan)]
        pos += [np.arange(length), np.full(pad, -1)]
    return np.concatenate(values), np.concatenate(pos)


def _batch(values: np.ndarray, pos: np.ndarray) -> pl.Series:
    frame = pl.DataFrame({"v": pl.Series(values, nan_to_null=True), "p": pos})
    return frame.select(pl.struct("v", "p")).to_series()


def _same(ours: np.ndarray, expected: np.ndarray) -> None:
    assert np.array_equal(np.isnan(ours), np.isnan(expected))
    assert np.allclose(ours, expected, rtol=1e-12, atol=1e-12, equal_nan=True)


@pytest.mark.parametrize("pad", [0, 64])
@pytest.mark.parametrize("n", WINDOWS)
@pytest.mark.parametrize("op", ["IdxMax", "IdxMin", "Rank", "Mad"])
def test_column_kernels_equal_gathered_windows(op: str, n: int, pad: int) -> None:
    values, pos = _column(seed=n, pad=pad)
    rows = np.flatnonzero(pos >= 0)
    expected = window_statistic_at(op, [values], rows, pos[rows], n)
    ours = window_kernel(op, n)(_batch(values, pos)).fill_null(np.nan).to_numpy()
    _same(ours[rows], expected)


def _panel(values: np.ndarray, pos: np.ndarray) -> pl.DataFrame:
    """A session panel whose ``high`` column is the unpadded ``values`` (missing as null)."""
    code = np.cumsum(pos == 0) - 1
    days = [date(2020, 1, 1) + timedelta(days=int(p)) for p in pos]
    high = pl.Series("high", values, nan_to_null=True)
    return pl.DataFrame({"instrument": [f"I{c:03d}" for c in code], "date": days, "high": high})


def test_extremes_over_the_padded_layout_equal_gathered_windows() -> None:
    """Max/Min and IdxMax/IdxMin of the padded evaluation, merged from shorter windows, with
    Qlib's first-missing-row index, against the statistic of each gathered window."""
    values, pos = _column(seed=200, pad=0, copies=2)
    ops = ("Max", "Min", "IdxMax", "IdxMin")
    names = {f"{op}{n}": (op, n) for op in ops for n in WINDOWS}
    texts = {name: f"{op}($high, {n})" for name, (op, n) in names.items()}
    ours = compute_expressions(_panel(values, pos), texts)
    rows = np.arange(len(values))
    for name, (op, n) in names.items():
        expected = window_statistic_at(op, [values], rows, pos, n).astype(np.float32)
        _same(ours.get_column(name).cast(pl.Float64).to_numpy(), expected.astype(np.float64))


@pytest.mark.parametrize("pad", [0, 64])
@pytest.mark.parametrize("ns", [(1, 2, 3), (5, 10, 20, 30, 60), (13, 49, 64), (2, 48, 49)])
def test_several_windows_equal_gathered_windows(ns: tuple[int, ...], pad: int) -> None:
    """One walk or one sort serving several windows (some merged from shorter ones, some
    longer than an instrument) gives each window's own statistic."""
    values, pos = _column(seed=300 + sum(ns), pad=pad)
    rows = np.flatnonzero(pos >= 0)
    batch = _batch(values, pos)
    ranks = ranks_kernel(ns)(batch)
    quantiles = quantiles_kernel(dict.fromkeys(ns, (0.2, 0.8)))(batch)
    for i, n in enumerate(ns):
        expected = window_statistic_at("Rank", [values], rows, pos[rows], n)
        _same(ranks.struct.field(f"r{i}").fill_null(np.nan).to_numpy()[rows], expected)
        for j, q in enumerate((0.2, 0.8)):
            expected = window_statistic_at("Quantile", [values], rows, pos[rows], n, q)
            ours = quantiles.struct.field(f"q{n}_{j}").fill_null(np.nan).to_numpy()
            _same(ours[rows], expected)


@pytest.mark.parametrize("pad", [0, 64])
@pytest.mark.parametrize("n", WINDOWS)
@pytest.mark.parametrize("qs", [(0.8,), (0.2, 0.8), (0.0, 0.5, 1.0)])
def test_quantiles_kernel_equals_gathered_windows(qs: tuple[float, ...], n: int, pad: int) -> None:
    values, pos = _column(seed=100 + n, pad=pad)
    rows = np.flatnonzero(pos >= 0)
    struct = quantiles_kernel({n: qs})(_batch(values, pos))
    for i, q in enumerate(qs):
        expected = window_statistic_at("Quantile", [values], rows, pos[rows], n, q)
        ours = struct.struct.field(f"q{n}_{i}").fill_null(np.nan).to_numpy()
        _same(ours[rows], expected)


@pytest.mark.parametrize("qs", [(0.8,), (0.2, 0.8), (0.0, 0.5, 1.0)])
def test_quantiles_over_the_padded_layout_equal_gathered_windows(qs: tuple[float, ...]) -> None:
    """Quantile and Med of the padded evaluation (the sorted-lanes kernel, polars' rolling
    median) against pandas' linear interpolation of each gathered window, every window."""
    values, pos = _column(seed=100 + len(qs), pad=0, copies=2)
    names = {f"Q{n}_{q}": ("Quantile", n, q) for n in WINDOWS for q in qs}
    names |= {f"Med{n}": ("Med", n, None) for n in WINDOWS}
    texts = {
        name: f"Quantile($high, {n}, {q})" if op == "Quantile" else f"Med($high, {n})"
        for name, (op, n, q) in names.items()
    }
    ours = compute_expressions(_panel(values, pos), texts)
    rows = np.arange(len(values))
    for name, (op, n, q) in names.items():
        expected = window_statistic_at(op, [values], rows, pos, n, q).astype(np.float32)
        _same(ours.get_column(name).cast(pl.Float64).to_numpy(), expected.astype(np.float64))


@pytest.mark.parametrize("n", [5, 30, 60])
def test_kernels_on_a_column_longer_than_a_chunk(n: int) -> None:
    """Tens of thousands of rows: the sorted lanes are built chunk by chunk of rows."""
    values, pos = _column(seed=7, pad=64, copies=150)
    rows = np.flatnonzero(pos >= 0)
    batch = _batch(values, pos)
    struct = quantiles_kernel({n: (0.2, 0.8)})(batch)
    for i, q in enumerate((0.2, 0.8)):
        expected = window_statistic_at("Quantile", [values], rows, pos[rows], n, q)
        _same(struct.struct.field(f"q{n}_{i}").fill_null(np.nan).to_numpy()[rows], expected)
    for op in ("IdxMax", "IdxMin", "Rank"):
        expected = window_statistic_at(op, [values], rows, pos[rows], n)
        _same(window_kernel(op, n)(batch).fill_null(np.nan).to_numpy()[rows], expected)


@pytest.mark.parametrize("older", [1, 2, 3, 5, 8, 10, 20, 30])
@pytest.mark.parametrize("newer", [1, 2, 4, 5, 7, 10, 30])
def test_merging_network_merges_every_pair_of_sorted_runs(older: int, newer: int) -> None:
    """The 0-1 principle: a comparator network that merges every pair of sorted 0-1 runs
    merges every pair of sorted runs."""
    start, steps = _merging_network(older, newer)
    runs = list(product(range(older + 1), range(newer + 1)))
    # Column c is one case: each run ends in its number of ones.
    lanes = np.empty((older + newer + 1, len(runs)))
    for case, (old_ones, new_ones) in enumerate(runs):
        lanes[:older, case] = np.arange(older) >= older - old_ones
        lanes[older : older + newer, case] = np.arange(newer) >= newer - new_ones
    order = list(start)
    _compare_exchange(lanes, order, steps, older + newer)
    merged = lanes[order[: older + newer]]
    assert np.array_equal(merged, np.sort(merged, axis=0))
    assert np.array_equal(merged.sum(axis=0), [a + b for a, b in runs])


@pytest.mark.parametrize("other_gaps", [False, True])
def test_paired_variance_is_the_rolling_variance(other_gaps: bool) -> None:
    """Equal to polars' rolling variance of the paired side, whether the shortcut through the
    own side's std applies (the other side never missing alone) or not."""
    values, _ = _column(seed=3, pad=8)
    own = pl.Series(values, nan_to_null=True)
    rng = np.random.default_rng(4)
    paired = own.scatter(np.flatnonzero(rng.random(len(values)) < 0.2), None) if other_gaps else own
    for n in (2, 5, 20):
        batch = (
            pl.DataFrame({"paired": paired, "own": own, "std": own.rolling_std(n, min_samples=1)})
            .select(pl.struct("paired", "own", "std"))
            .to_series()
        )
        ours = paired_variance_kernel(n)(batch).fill_null(np.nan).to_numpy()
        expected = paired.rolling_var(n, min_samples=1).fill_null(np.nan).to_numpy()
        _same(ours, expected)
