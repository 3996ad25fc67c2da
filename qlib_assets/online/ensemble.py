"""The trading signal: Qlib's AverageEnsemble of the specs' online predictions.

Each spec's score is standardised per session ((x - mean) / std, sample std with ddof=1, as
pandas' ``std``), then the standardised scores are averaged across specs, ignoring a spec that
has no score for the row. A session where a spec has fewer than two scores or no spread gives
that spec no value there, as pandas' NaN does in Qlib; a row no spec scores is left out.

Unlike Qlib's ``OnlineManager.prepare_signals``, which appends the last date again on each call,
the result holds exactly one row per ``(instrument, date)``: it is a pure function of its inputs.
"""

from collections.abc import Mapping

import polars as pl

KEYS = ("instrument", "date")
SIGNAL = "signal"
SIGNAL_SCHEMA: dict[str, pl.DataType] = {
    "instrument": pl.String(),
    "date": pl.Date(),
    SIGNAL: pl.Float64(),
}


def zscore_by_date(column: str) -> pl.Expr:
    """Per-session standard score of ``column``; a NaN input counts as missing."""
    value = pl.col(column).cast(pl.Float64).fill_nan(None)
    standardised = (value - value.mean().over("date")) / value.std(ddof=1).over("date")
    # 0 / 0 is NaN in polars but must mean "no value", as pandas' NaN is skipped by the mean.
    return standardised.fill_nan(None)


def average_ensemble(preds: Mapping[str, pl.DataFrame], column: str = "score") -> pl.DataFrame:
    """``instrument, date, signal`` from ``{spec name: frame(instrument, date, <column>)}``."""
    if not preds:
        raise ValueError("average_ensemble needs at least one prediction frame")
    merged: pl.DataFrame | None = None
    names = []
    for name, frame in preds.items():
        if frame.select(*KEYS).is_duplicated().any():
            raise ValueError(f"{name}: predictions hold a duplicated (instrument, date) row")
        alias = f"z_{len(names)}"
        names.append(alias)
        part = frame.select(
            pl.col("instrument").cast(pl.String),
            pl.col("date").cast(pl.Date),
            zscore_by_date(column).alias(alias),
        )
        merged = part if merged is None else merged.join(part, on=KEYS, how="full", coalesce=True)
    assert merged is not None
    return (
        merged.select(*KEYS, pl.mean_horizontal(*names).alias(SIGNAL))
        .drop_nulls(SIGNAL)
        .sort("date", "instrument")
        .select(pl.col(n).cast(t) for n, t in SIGNAL_SCHEMA.items())
    )
