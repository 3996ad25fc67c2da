"""The panels expressions run on: each instrument's bars on every session of its life (Qlib's
``.bin`` layout), and the padded layout whose windows run over whole columns."""

from collections.abc import Mapping, Sequence
from datetime import date

import numpy as np
import polars as pl

from qlib_assets.features.expressions.parser import FIELDS

INSTRUMENT = "instrument"
# Columns of the padded layout: a real (not padding) row, a row's index within its instrument
# (-1 on padding), the instrument a row belongs to (padding: the instrument it precedes).
REAL = "__real"
POS = "__pos"
GROUP = "__group"


def to_session_panel(
    bars: pl.DataFrame,
    sessions: Sequence[date] | None = None,
    *,
    first_dates: Mapping[str, date] | None = None,
) -> pl.DataFrame:
    """Each instrument's bars reindexed onto every session from its first to its last bar.

    This is the series Qlib reads from a ``.bin`` file: the file runs from the first to the last
    bar and a session inside without a bar is NaN (here: null). ``sessions`` is the market
    calendar; by default the union of the dates in ``bars`` (what ``dump_bin`` would write).
    ``first_dates`` (an instrument's first bar ever) start an instrument's rows earlier than its
    first bar in ``bars`` (never before the calendar's first session): a recent window of bars
    then yields the same panel rows as the full history.
    """
    fields = [c for c in FIELDS if c in bars.columns]
    if sessions is None:
        calendar = bars.get_column("date").unique().sort()
    else:
        calendar = pl.Series("date", sorted(sessions), dtype=pl.Date)
    cal = pl.DataFrame({"date": calendar}).with_row_index("__slot")
    located = bars.select(INSTRUMENT, "date", *fields).join(cal, on="date", how="left")
    stray = located.filter(pl.col("__slot").is_null())
    if stray.height:
        example = stray.row(0, named=True)
        raise ValueError(
            f"{stray.height} bars fall outside the session calendar, e.g. "
            f"{example[INSTRUMENT]} on {example['date']}"
        )
    located = located.sort(INSTRUMENT, "__slot")
    names, first, last = (
        located.group_by(INSTRUMENT, maintain_order=True)
        .agg(pl.col("__slot").min().alias("first"), pl.col("__slot").max().alias("last"))
        .get_columns()
    )
    first_slot = first.to_numpy().astype(np.int64)
    if first_dates:
        # A listing before the calendar starts clamps to its first session (slot 0).
        listed = pl.DataFrame({INSTRUMENT: names}).join(
            pl.DataFrame(
                {INSTRUMENT: list(first_dates), "__listed": list(first_dates.values())},
                schema={INSTRUMENT: pl.String, "__listed": pl.Date},
            ),
            on=INSTRUMENT,
            how="left",
        )
        listed_dates = listed.get_column("__listed")
        slots = calendar.search_sorted(listed_dates.fill_null(calendar[0])).to_numpy()
        earlier = listed_dates.is_not_null().to_numpy()
        first_slot = np.where(earlier, np.minimum(first_slot, slots), first_slot)
    lengths = last.to_numpy().astype(np.int64) - first_slot + 1
    offsets = np.concatenate([[0], np.cumsum(lengths)])
    code = np.repeat(np.arange(len(names)), lengths)
    slot = np.arange(offsets[-1]) - offsets[code] + first_slot[code]
    # Each bar's row in the panel: its instrument's offset plus its session's distance from
    # the instrument's first session (bars are sorted by instrument, then session).
    bar_code = located.get_column(INSTRUMENT).rle_id().to_numpy()
    at = offsets[bar_code] + located.get_column("__slot").to_numpy() - first_slot[bar_code]
    columns = [names.gather(pl.Series(code)).alias(INSTRUMENT), calendar.gather(pl.Series(slot))]
    spread = spread_rows(located.select(fields), at, int(offsets[-1]), pl.Float64)
    return pl.DataFrame([*columns, *spread])


def spread_rows(
    frame: pl.DataFrame, at: np.ndarray, total: int, dtype: type[pl.DataType]
) -> list[pl.Series]:
    """``frame``'s columns cast to ``dtype`` as columns of ``total`` rows holding its rows at
    ``at``: null elsewhere, and where a value is NaN."""
    source = np.zeros(total, dtype=np.int64)
    source[at] = np.arange(len(at))
    empty = np.ones(total, dtype=bool)
    empty[at] = False
    index = pl.Series(source).set(pl.Series(empty), None)
    return frame.select(pl.all().cast(dtype).fill_nan(None).gather(index)).get_columns()


def padded_panel(panel: pl.DataFrame, pad: int) -> pl.DataFrame:
    """The panel with ``pad`` empty rows before each instrument and after the last one.

    Windows then run over the whole column without ``over``: an instrument's first windows
    reach only into empty rows, which every window op skips.
    """
    codes = panel.get_column(INSTRUMENT).rle_id().to_numpy()
    rows = len(codes)
    n_inst = int(codes[-1]) + 1 if rows else 0
    total = rows + (n_inst + 1) * pad
    at = np.arange(rows) + (codes + 1) * pad
    starts = np.searchsorted(codes, np.arange(n_inst))
    pos = np.arange(rows) - starts[codes] if rows else np.zeros(0, dtype=np.int64)
    group = np.repeat(np.arange(n_inst + 1), pad)
    group_full = np.empty(total, dtype=np.int64)
    real = np.zeros(total, dtype=bool)
    real[at] = True
    group_full[at] = codes
    pad_slots = np.nonzero(~real)[0]
    group_full[pad_slots] = np.minimum(group, max(n_inst - 1, 0))
    pos_full = np.full(total, -1, dtype=np.int64)
    pos_full[at] = pos
    columns: dict[str, pl.Series] = {
        REAL: pl.Series(REAL, real),
        POS: pl.Series(POS, pos_full),
        GROUP: pl.Series(GROUP, group_full),
    }
    fields = [name for name in FIELDS if name in panel.columns]
    spread = spread_rows(panel.select(fields), at, total, pl.Float32)
    return pl.DataFrame([*columns.values(), *spread])
