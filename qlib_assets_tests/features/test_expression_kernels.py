"""The whole-column window kernels against the same statistics on gathered windows.

The gathered path (:func:`window_statistic_at`, one window matrix per output row) is the plain
statement of each statistic; the column kernels take shortcuts (lag walks, block maxima,
sorting networks, polars on the valid values) that must give the same numbers on every row:
ties, missing sessions inside windows, instruments shorter than the window, with and without
the empty rows the padded layout puts between instruments."""

import numpy as np
import polars as pl
import pytest

from qlib_assets.features.expression_kernels import (
    extremes_kernel,
    paired_variance_kernel,
    quantiles_kernel,
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
@pytest.mark.parametrize("op", ["IdxMax", "IdxMin", "Rank"])
def test_column_kernels_equal_gathered_windows(op: str, n: int, pad: int) -> None:
    values, pos = _column(seed=n, pad=pad)
    rows = np.flatnonzero(pos >= 0)
    expected = window_statistic_at(op, [values], rows, pos[rows], n)
    ours = window_kernel(op, n)(_batch(values, pos)).fill_null(np.nan).to_numpy()
    _same(ours[rows], expected)


@pytest.mark.parametrize("pad", [0, 64])
@pytest.mark.parametrize("n", WINDOWS)
@pytest.mark.parametrize("find_max", [True, False])
def test_extreme_kernel_equals_gathered_windows(find_max: bool, n: int, pad: int) -> None:
    values, pos = _column(seed=200 + n, pad=pad)
    rows = np.flatnonzero(pos >= 0)
    struct = extremes_kernel((n,), find_max)(_batch(values, pos))
    ops = ("IdxMax", "Max") if find_max else ("IdxMin", "Min")
    for field, op in zip(("index0", "value0"), ops, strict=True):
        expected = window_statistic_at(op, [values], rows, pos[rows], n)
        _same(struct.struct.field(field).fill_null(np.nan).to_numpy()[rows], expected)


@pytest.mark.parametrize("pad", [0, 64])
@pytest.mark.parametrize("ns", [(1, 2, 3), (5, 10, 20, 30, 60), (13, 49, 64), (2, 48, 49)])
def test_several_windows_equal_gathered_windows(ns: tuple[int, ...], pad: int) -> None:
    """One walk serving several windows (some longer than the argmax walk, some longer than
    an instrument) gives each window's own statistic."""
    values, pos = _column(seed=300 + sum(ns), pad=pad)
    rows = np.flatnonzero(pos >= 0)
    batch = _batch(values, pos)
    ranks = ranks_kernel(ns)(batch)
    for find_max in (True, False):
        extremes = extremes_kernel(ns, find_max)(batch)
        ops = ("IdxMax", "Max") if find_max else ("IdxMin", "Min")
        for i, n in enumerate(ns):
            for field, op in zip(("index", "value"), ops, strict=True):
                expected = window_statistic_at(op, [values], rows, pos[rows], n)
                ours = extremes.struct.field(f"{field}{i}").fill_null(np.nan).to_numpy()
                _same(ours[rows], expected)
    for i, n in enumerate(ns):
        expected = window_statistic_at("Rank", [values], rows, pos[rows], n)
        _same(ranks.struct.field(f"r{i}").fill_null(np.nan).to_numpy()[rows], expected)


@pytest.mark.parametrize("pad", [0, 64])
@pytest.mark.parametrize("n", WINDOWS)
@pytest.mark.parametrize("qs", [(0.8,), (0.2, 0.8), (0.0, 0.5, 1.0)])
def test_quantiles_kernel_equals_gathered_windows(qs: tuple[float, ...], n: int, pad: int) -> None:
    values, pos = _column(seed=100 + n, pad=pad)
    rows = np.flatnonzero(pos >= 0)
    struct = quantiles_kernel(n, qs)(_batch(values, pos))
    for i, q in enumerate(qs):
        expected = window_statistic_at("Quantile", [values], rows, pos[rows], n, q)
        ours = struct.struct.field(f"q{i}").fill_null(np.nan).to_numpy()
        _same(ours[rows], expected)


@pytest.mark.parametrize("n", [5, 30, 60])
def test_kernels_on_a_column_longer_than_a_chunk(n: int) -> None:
    """Tens of thousands of rows: the sorting network works in chunks of rows."""
    values, pos = _column(seed=7, pad=64, copies=60)
    rows = np.flatnonzero(pos >= 0)
    batch = _batch(values, pos)
    struct = quantiles_kernel(n, (0.2, 0.8))(batch)
    for i, q in enumerate((0.2, 0.8)):
        expected = window_statistic_at("Quantile", [values], rows, pos[rows], n, q)
        _same(struct.struct.field(f"q{i}").fill_null(np.nan).to_numpy()[rows], expected)
    for op in ("IdxMax", "IdxMin", "Rank"):
        expected = window_statistic_at(op, [values], rows, pos[rows], n)
        _same(window_kernel(op, n)(batch).fill_null(np.nan).to_numpy()[rows], expected)


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
