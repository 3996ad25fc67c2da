"""Daily cross-sectional IC and rank IC of predictions against labels."""

from dataclasses import dataclass

import pandas as pd
import polars as pl


@dataclass(frozen=True)
class ICSummary:
    ic: float
    rank_ic: float
    icir: float
    rank_icir: float
    daily: pl.DataFrame  # date, ic, rank_ic


def daily_ic(pred: pd.Series, label: pd.Series) -> ICSummary:
    """Pearson and Spearman correlation per day, then their means (Qlib's IC, Rank IC).

    ``pred`` and ``label`` share a ``(datetime, instrument)`` index; pairs with a missing side are
    dropped, days with fewer than two pairs or no spread give no value.
    """
    joined = pd.DataFrame({"pred": pred, "label": label}).dropna().reset_index()
    frame = pl.from_pandas(joined[["datetime", "pred", "label"]]).with_columns(
        pl.col("datetime").cast(pl.Date).alias("date")
    )
    daily = (
        frame.group_by("date")
        .agg(
            pl.corr("pred", "label").alias("ic"),
            pl.corr("pred", "label", method="spearman").alias("rank_ic"),
        )
        .sort("date")
        .fill_nan(None)
        .drop_nulls()
    )
    if daily.is_empty():
        raise ValueError("no day has two or more predictions with labels: IC is undefined")

    def mean_and_ir(column: str) -> tuple[float, float]:
        values = daily.get_column(column)
        mean = float(values.mean())  # type: ignore[arg-type]
        std = values.std()
        return mean, (mean / float(std) if std else float("nan"))  # type: ignore[arg-type]

    ic, icir = mean_and_ir("ic")
    rank_ic, rank_icir = mean_and_ir("rank_ic")
    return ICSummary(ic=ic, rank_ic=rank_ic, icir=icir, rank_icir=rank_icir, daily=daily)
