"""Appends to a Qlib provider's feature files, planned and written in bulk.

The daily case: every instrument's new bars come after its last bar, so each of its field files
only grows by one run of slots (NaN for the sessions it missed since its last bar, then the new
sessions). With thousands of instruments and eight fields, such a sync is tens of thousands of
tiny writes; the plan is therefore built with array operations over all instruments at once, and
the writes go from one float32 buffer, so that the cost is little more than the open, pwrite and
close each file needs.
"""

import os
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from itertools import pairwise
from pathlib import Path

import numpy as np

from qlib_assets.storage.qlib_layout import FLOAT, SLOT_BYTES, instrument_dirname


@dataclass(frozen=True)
class Appends:
    """Instrument ``codes[i]`` grows by columns ``bounds[i]:bounds[i + 1]`` of ``data``."""

    codes: list[str]
    starts: np.ndarray  # int64: calendar index of each instrument's first slot (unchanged)
    ends: np.ndarray  # int64: calendar index of its last slot before the append
    lasts: np.ndarray  # int64: ... and after it
    bounds: np.ndarray  # int64, len(codes) + 1
    data: np.ndarray  # (n_fields, total) float32, C-contiguous

    @classmethod
    def none(cls, n_fields: int) -> "Appends":
        nothing = np.zeros(0, np.int64)
        return cls(
            [], nothing, nothing, nothing, np.zeros(1, np.int64), np.zeros((n_fields, 0), FLOAT)
        )

    @property
    def files(self) -> int:
        return len(self.codes) * self.data.shape[0]

    @property
    def bytes(self) -> int:
        return int(self.data.nbytes)

    def spans(self) -> dict[str, tuple[int, int]]:
        spans = zip(self.starts.tolist(), self.lasts.tolist(), strict=True)
        return dict(zip(self.codes, spans, strict=True))


def plan_appends(
    codes: list[str],
    rows: np.ndarray,
    starts: np.ndarray,
    ends: np.ndarray,
    positions: np.ndarray,
    values: np.ndarray,
    present: np.ndarray,
) -> Appends:
    """The runs that append the batch rows ``rows`` (one per code) after their ``ends``.

    ``positions`` are the calendar indices of the batch's sessions (ascending, all after every
    end), ``values`` its (n_fields, n_rows, n_sessions) float32 bars with NaN where absent and
    ``present`` its (n_rows, n_sessions) mask; each row must have a bar in the batch.
    """
    n_sessions = positions.size
    last_column = n_sessions - 1 - np.argmax(present[rows, ::-1], axis=1)
    lasts = positions[last_column]
    widths = lasts - ends
    bounds = np.zeros(len(codes) + 1, np.int64)
    np.cumsum(widths, out=bounds[1:])
    total = int(bounds[-1])
    owner = np.repeat(np.arange(len(codes)), widths)
    slot = np.arange(total, dtype=np.int64) - bounds[owner] + ends[owner] + 1
    base = int(positions[0])
    column_of = np.full(int(positions[-1]) - base + 1, -1, np.int64)
    column_of[positions - base] = np.arange(n_sessions)
    # Slots before the batch's first session pad a gap since the last sync: they stay NaN.
    synced = np.flatnonzero(slot >= base)
    data = np.full((values.shape[0], total), np.nan, FLOAT)
    data[:, synced] = values[:, rows[owner[synced]], column_of[slot[synced] - base]]
    return Appends(codes, starts, ends, lasts, bounds, data)


def write_appends(folder: Path, names: Sequence[str], appends: Appends, threads: int) -> None:
    """Write each run at the end of its files (``folder/<instrument>/<name>``), in ``threads``
    contiguous shares of the instruments."""
    count = len(appends.codes)
    if count == 0:
        return
    # Slices of bytes are plain copies; slices of a memoryview are objects the cyclic garbage
    # collector tracks, and one per file made it sweep the whole heap mid-append.
    payload = appends.data.tobytes()
    stride = appends.data.shape[1] * SLOT_BYTES
    root = str(folder)
    # Python ints and strings up front: the loop below runs once per file. Opening each file
    # relative to its instrument's folder spares the kernel most of the path walk.
    directories = [f"{root}/{instrument_dirname(code)}" for code in appends.codes]
    offsets = ((appends.ends - appends.starts + 2) * SLOT_BYTES).tolist()
    bounds = (appends.bounds * SLOT_BYTES).tolist()
    fields = [(field_no * stride, name) for field_no, name in enumerate(names)]

    def write(first: int, stop: int) -> None:
        for i in range(first, stop):
            at, lo, hi = offsets[i], bounds[i], bounds[i + 1]
            directory = os.open(directories[i], os.O_RDONLY | os.O_DIRECTORY)
            try:
                for shift, name in fields:
                    fd = os.open(name, os.O_WRONLY, dir_fd=directory)
                    try:
                        if os.pwrite(fd, payload[shift + lo : shift + hi], at) != hi - lo:
                            raise OSError(f"{directories[i]}/{name}: short write")
                    finally:
                        os.close(fd)
            finally:
                os.close(directory)

    shares = np.linspace(0, count, max(1, min(threads, count)) + 1).astype(int).tolist()
    if len(shares) == 2:
        write(0, count)
        return
    with ThreadPoolExecutor(len(shares) - 1) as pool:
        futures = [pool.submit(write, a, b) for a, b in pairwise(shares)]
        for future in futures:
            future.result()
