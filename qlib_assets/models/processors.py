"""Qlib's slow data-handler processors, with the same output computed on numpy blocks.

Each class subclasses Qlib's processor of the same name, so ``DataHandlerLP``, pickling and
``config`` treat it as Qlib's; only the work changes. On a 550k x 158 float32 Alpha158 window,
Qlib's ``RobustZScoreNorm`` copies the frame several times and runs ``np.nanmedian`` over a
strided 2-D block, and it and ``Fillna`` write their result back column by column. Here the
medians run column by column on contiguous values (the median of the non-NaN values, which is
what ``np.nanmedian`` computes per column) and results are written in place, a block of rows at a
time. ``CSRankNorm`` returns a new frame instead of writing into its input, which spares the
handler a copy of the whole learn frame. Frames the fast path does not cover (mixed dtypes in
the group, a fill value the dtype cannot hold, no ``(datetime, instrument)`` MultiIndex) go to
Qlib's own code.
"""

import os
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pandas as pd
from qlib.constant import EPS
from qlib.data.dataset import processor
from qlib.data.dataset.processor import get_group_columns
from qlib.data.dataset.utils import get_level_index

# Rows per in-place step: keeps each step's temporaries (NaN masks) at a few tens of MB.
ROW_CHUNK = 65_536
# Threads for the per-column medians; capped so that windows trained side by side by separate
# processes do not oversubscribe the cores.
MAX_THREADS = 4
# Qlib's MAD-to-standard-deviation factor for normal data.
MAD_SCALE = 1.4826


def _positions(df: pd.DataFrame, columns: pd.Index) -> slice | np.ndarray:
    """Column positions of ``columns`` in ``df``, as a slice when they are contiguous."""
    positions = df.columns.get_indexer(columns)
    if (
        len(positions)
        and positions[0] >= 0
        and np.array_equal(positions, np.arange(positions[0], positions[0] + len(positions)))
    ):
        return slice(int(positions[0]), int(positions[0]) + len(positions))
    return positions


def _float_values(df: pd.DataFrame, columns: pd.Index) -> np.ndarray | None:
    """The ``(rows, columns)`` values of a group sharing one float dtype, else ``None``.

    A view of the frame's block when the whole frame has that dtype (no copy).
    """
    dtypes = set(df.dtypes[columns])
    if len(dtypes) != 1 or next(iter(dtypes)).kind != "f":
        return None
    if len(set(df.dtypes)) == 1:
        return df.to_numpy()[:, _positions(df, columns)]
    return df[columns].to_numpy()


def _block_view(df: pd.DataFrame, columns: pd.Index) -> np.ndarray | None:
    """A writable view of ``df[columns]`` inside the frame's storage, or ``None``.

    pandas stores a frame of one float dtype as one 2-D block and ``to_numpy`` returns a view of
    it; writing there changes the frame without its per-column ``__setitem__``. ``None`` when
    pandas hands out copies (several blocks) or read-only views (copy-on-write), or when the
    columns are not contiguous (a fancy-indexed selection would be a copy).
    """
    dtypes = set(df.dtypes)
    positions = _positions(df, columns)
    if len(dtypes) != 1 or next(iter(dtypes)).kind != "f" or not isinstance(positions, slice):
        return None
    values, again = df.to_numpy(), df.to_numpy()
    # Two copies never overlap, two views of the same block always do.
    if not values.flags.writeable or not np.may_share_memory(values, again):
        return None
    return values[:, positions]


def _transform_rows(values: np.ndarray, func: Callable[[np.ndarray], None]) -> None:
    """Apply ``func``, which edits its argument, to ``values`` a block of rows at a time."""
    for start in range(0, len(values), ROW_CHUNK):
        func(values[start : start + ROW_CHUNK])


def _fit_rows(df: pd.DataFrame, start: object, end: object) -> slice | np.ndarray | None:
    """Rows of ``df`` that Qlib's ``fetch_df_by_index`` takes for a datetime slice, or ``None``.

    ``MultiIndex.get_locs`` is the lookup behind that ``.loc`` selection, so the rows are the
    same; ``None`` when the index is not a MultiIndex.
    """
    if not isinstance(df.index, pd.MultiIndex):
        return None
    period = slice(start, end)
    if period == slice(None, None):
        return slice(None)
    selector: list[slice] = [slice(None)] * df.index.nlevels
    selector[get_level_index(df, "datetime")] = period
    rows = df.index.get_locs(selector)
    if len(rows) and rows[-1] - rows[0] + 1 == len(rows):
        return slice(int(rows[0]), int(rows[-1]) + 1)
    return rows


def _median(values: np.ndarray) -> np.floating:
    """``np.median`` of non-empty, NaN-free ``values``, reordering them in place.

    The same numbers as ``np.median``: the mean, in the array's dtype, of the middle value or the
    two middle values. ``np.median`` also partitions at the last index to look for NaN, which
    made it about twice as slow here and finds none.
    """
    lower, upper = (values.size - 1) // 2, values.size // 2
    values.partition((lower, upper) if lower != upper else upper)
    return values[lower : upper + 1].mean()


def _column_median_and_mad(column: np.ndarray) -> tuple[float, float]:
    """NaN-ignoring median of ``column`` and of ``|column - median|``; NaN when all are NaN.

    ``np.nanmedian`` reduces each column to its non-NaN values and takes their median; doing the
    same here gives its numbers exactly, in the column's dtype.
    """
    present = column[~np.isnan(column)]
    if present.size == 0:
        return np.nan, np.nan
    median = _median(present)
    np.subtract(present, median, out=present)
    np.abs(present, out=present)
    return median, _median(present)


def _median_and_mad(values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per column of ``values``: NaN-ignoring median and median absolute deviation."""
    # numpy's partition releases the GIL, so columns run in parallel on threads.
    with ThreadPoolExecutor(max_workers=min(MAX_THREADS, os.cpu_count() or 1)) as pool:
        pairs = list(pool.map(_column_median_and_mad, values.T))
    median = np.array([m for m, _ in pairs], dtype=values.dtype)
    mad = np.array([d for _, d in pairs], dtype=values.dtype)
    return median, mad


class RobustZScoreNorm(processor.RobustZScoreNorm):
    """Qlib's ``RobustZScoreNorm``: ``(x - median) / ((MAD + EPS) * 1.4826)``, clipped to ±3."""

    def fit(self, df: pd.DataFrame | None = None) -> None:
        assert df is not None
        columns = get_group_columns(df, self.fields_group)
        rows = _fit_rows(df, self.fit_start_time, self.fit_end_time)
        values = _float_values(df, columns)
        if rows is None or values is None:
            super().fit(df)
            return
        self.cols = columns
        self.mean_train, self.std_train = _median_and_mad(values[rows])
        self.std_train += EPS
        self.std_train *= MAD_SCALE

    def __call__(self, df: pd.DataFrame) -> pd.DataFrame:
        values = _block_view(df, self.cols)
        if values is None or values.dtype != self.mean_train.dtype:
            return super().__call__(df)

        def normalise(block: np.ndarray) -> None:
            block -= self.mean_train
            block /= self.std_train
            if self.clip_outlier:
                np.clip(block, -3, 3, out=block)

        _transform_rows(values, normalise)
        return df


class Fillna(processor.Fillna):
    """Qlib's ``Fillna``: NaN in the group (every column without one) becomes ``fill_value``."""

    def __call__(self, df: pd.DataFrame) -> pd.DataFrame:
        columns = get_group_columns(df, self.fields_group)
        values = _block_view(df, columns)
        # pandas upcasts the column when the dtype cannot hold the fill value exactly.
        if values is None or values.dtype.type(self.fill_value) != self.fill_value:
            return super().__call__(df)

        def fill(block: np.ndarray) -> None:
            block[np.isnan(block)] = self.fill_value

        _transform_rows(values, fill)
        return df


class CSRankNorm(processor.CSRankNorm):
    """Qlib's ``CSRankNorm`` that leaves its input untouched.

    Being read-only lets ``DataHandlerLP`` skip its defensive copy of the whole learn frame;
    the result shares the unchanged columns with the input and gets new ranked ones.
    """

    def __call__(self, df: pd.DataFrame) -> pd.DataFrame:
        columns = get_group_columns(df, self.fields_group)
        ranks = df[columns].groupby("datetime", group_keys=False).rank(pct=True)
        # Qlib's centring and scaling of the uniform ranks towards unit standard deviation.
        ranks -= 0.5
        ranks *= 3.46
        out = df.copy(deep=False)
        out[columns] = ranks
        return out

    def readonly(self) -> bool:
        return True
