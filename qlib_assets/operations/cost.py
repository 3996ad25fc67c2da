"""Cost from measured usage and unit prices: per step, per asset, per spec, per day, trends.

A step costs its CPU seconds at the CPU-hour price plus its peak memory held for its wall time
at the GB-hour price. Storage costs the current size of each asset's folder at the
GB-month price, spread evenly over the days of the month (30).
"""

from dataclasses import dataclass
from pathlib import Path

import polars as pl

from qlib_assets.operations.config import Prices
from qlib_assets.storage.atomic import write_bytes_atomic

GB = 2**30
DAYS_PER_MONTH = 30
TREND_DAYS = 7


@dataclass(frozen=True)
class CostReport:
    steps: pl.DataFrame  # one row per measured step, with cpu_cost, memory_cost, cost
    by_asset: pl.DataFrame
    by_spec: pl.DataFrame
    by_day: pl.DataFrame  # compute + storage cost per day, with the trailing-mean trend
    storage: pl.DataFrame  # asset, bytes, cost_per_day

    @property
    def total(self) -> float:
        return float(self.by_day.get_column("cost").sum())


def step_costs(usage: pl.DataFrame, prices: Prices) -> pl.DataFrame:
    return usage.with_columns(
        (pl.col("cpu_seconds") / 3600 * prices.cpu_hour).alias("cpu_cost"),
        (pl.col("peak_memory_mb") / 1024 * pl.col("wall_seconds") / 3600 * prices.gb_hour).alias(
            "memory_cost"
        ),
    ).with_columns((pl.col("cpu_cost") + pl.col("memory_cost")).alias("cost"))


def folder_sizes(root: Path) -> pl.DataFrame:
    """Bytes under each first-level folder of ``root`` (one per asset in the lake)."""
    rows = []
    if root.is_dir():
        for folder in sorted(p for p in root.iterdir() if p.is_dir()):
            size = sum(f.stat().st_size for f in folder.rglob("*") if f.is_file())
            rows.append({"asset": folder.name, "bytes": size})
    return pl.DataFrame(rows, schema={"asset": pl.String(), "bytes": pl.Int64()})


def cost_report(usage: pl.DataFrame, storage: pl.DataFrame, prices: Prices) -> CostReport:
    steps = step_costs(usage, prices).with_columns(pl.col("at").dt.date().alias("day"))
    sums = [
        pl.len().alias("steps"),
        pl.col("cpu_seconds").sum(),
        pl.col("wall_seconds").sum(),
        pl.col("peak_memory_mb").max(),
        pl.col("bytes_written").sum(),
        pl.col("cost").sum(),
    ]
    by_asset = steps.group_by("asset").agg(sums).sort("cost", descending=True)
    by_spec = (
        steps.filter(pl.col("spec").is_not_null())
        .group_by("spec")
        .agg(sums)
        .sort("cost", descending=True)
    )
    stored = storage.with_columns(
        (pl.col("bytes") / GB * prices.storage_gb_month / DAYS_PER_MONTH).alias("cost_per_day")
    )
    storage_per_day = float(stored.get_column("cost_per_day").sum())
    by_day = (
        steps.group_by("day")
        .agg(pl.col("cost").sum().alias("compute_cost"), pl.len().alias("steps"))
        .sort("day")
        .with_columns(pl.lit(storage_per_day).alias("storage_cost"))
        .with_columns((pl.col("compute_cost") + pl.col("storage_cost")).alias("cost"))
        .with_columns(
            pl.col("cost").rolling_mean(TREND_DAYS, min_samples=1).alias("trend"),
        )
    )
    return CostReport(steps, by_asset, by_spec, by_day, stored)


def plot_cost(report: CostReport, path: Path) -> Path:
    """Two panels: cost per day (compute and storage) with its trend, and cost per asset."""
    import io

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, (daily, assets) = plt.subplots(1, 2, figsize=(13, 4.5))
    days = report.by_day.get_column("day").to_list()
    compute = report.by_day.get_column("compute_cost").to_list()
    storage = report.by_day.get_column("storage_cost").to_list()
    daily.bar(days, compute, label="compute")
    daily.bar(days, storage, bottom=compute, label="storage")
    daily.plot(days, report.by_day.get_column("trend").to_list(), color="black", label="trend")
    daily.set_title(f"cost per day ({TREND_DAYS}-day trailing mean)")
    daily.legend()
    daily.tick_params(axis="x", rotation=30)
    top = report.by_asset.head(15)
    assets.barh(top.get_column("asset").to_list()[::-1], top.get_column("cost").to_list()[::-1])
    assets.set_title("compute cost per asset")
    figure.tight_layout()
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=100)
    plt.close(figure)
    write_bytes_atomic(path, buffer.getvalue())
    return path
