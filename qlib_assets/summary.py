"""Figures for the demo summary, read back from what the assets wrote."""

from datetime import date

import polars as pl

from qlib_assets.settings import Settings
from qlib_assets.storage.lake import Lake


def feature_summary(settings: Settings, day: date) -> dict[str, object]:
    """Columns and coverage of each feature table on ``day``, and how many sessions it holds."""
    lake = Lake(settings.lake_dir)
    summary: dict[str, object] = {}
    for asset in ("indicators", "alpha158", "labels"):
        days = lake.days(asset)
        if not days:
            continue
        table = lake.read_days(asset, [min(day, days[-1])])
        values = table.drop("instrument", "date")
        filled = values.select(pl.all().is_not_null() & pl.all().cast(pl.Float64).is_not_nan())
        share = filled.to_numpy().mean() if values.width else 0.0
        summary[asset] = f"{len(days)} sessions, {values.width} columns, {share:.1%} filled"
    return summary
