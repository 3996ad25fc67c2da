"""Seed 003's rolling benchmark: specs, and expanding vs sliding windows, on the same sessions.

Each variant (a spec with its window type set to expanding or sliding) trains every rolling
window whose test segment meets the range and predicts that test segment, as Qlib's rolling
benchmark does; the variants are then compared on the sessions all of them scored: IC, rank IC,
ICIR and rank ICIR (``models.scoring.daily_ic``), optionally a backtest per variant, and a plot
of the cumulative daily IC.
"""

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from typing import Any

import pandas as pd
import polars as pl

from qlib_assets.models.dataset import load_window_frame, window_days
from qlib_assets.models.rolling import rolling_windows
from qlib_assets.models.scoring import daily_ic
from qlib_assets.models.specs import ModelSpec
from qlib_assets.models.training import train_window
from qlib_assets.storage.lake import Lake

WINDOW_TYPES = ("expanding", "sliding")


@dataclass(frozen=True)
class VariantScore:
    name: str
    ic: float
    rank_ic: float
    icir: float
    rank_icir: float
    windows: int
    backtest: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class RollingComparison:
    sessions: tuple[date, ...]
    scores: tuple[VariantScore, ...]
    daily: pl.DataFrame  # date, variant, ic
    predictions: dict[str, pl.DataFrame]  # variant -> instrument, date, score

    def table(self) -> list[dict[str, Any]]:
        return [
            {
                "variant": s.name,
                "ic": s.ic,
                "rank_ic": s.rank_ic,
                "icir": s.icir,
                "rank_icir": s.rank_icir,
                "windows": s.windows,
                **{f"backtest.{k}": v for k, v in s.backtest.items()},
            }
            for s in self.scores
        ]


def variant_predictions(
    lake: Lake, spec: ModelSpec, calendar: Sequence[date], start: date, end: date
) -> tuple[pl.DataFrame, int]:
    """Scores of ``start``..``end`` from each rolling window's model over its test segment."""
    windows = [
        w for w in rolling_windows(spec.rolling, calendar, last_day=end) if w.test[1] >= start
    ]
    parts = []
    for window in windows:
        days = [d for d in window_days(window, calendar, with_test=True) if d <= end]
        data = load_window_frame(lake, spec, days)
        result = train_window(spec, window, data)
        scores = result.model.predict(result.dataset, segment="test").rename("score")
        frame = pl.from_pandas(scores.reset_index()).select(
            pl.col("instrument").cast(pl.String),
            pl.col("datetime").cast(pl.Date).alias("date"),
            pl.col("score").cast(pl.Float64),
        )
        parts.append(frame.filter(pl.col("date").is_between(start, end)))
    if not parts:
        raise ValueError(f"{spec.ref}: no rolling window tests {start}..{end}")
    return pl.concat(parts).sort("date", "instrument"), len(windows)


def _summary(name: str, frame: pl.DataFrame, labels: pl.DataFrame, windows: int) -> VariantScore:
    joined = frame.join(labels, on=["instrument", "date"], how="inner").to_pandas()
    index = pd.MultiIndex.from_arrays(
        [pd.to_datetime(joined["date"]), joined["instrument"]], names=["datetime", "instrument"]
    )
    summary = daily_ic(
        pd.Series(joined["score"].to_numpy(), index=index),
        pd.Series(joined["label"].to_numpy(), index=index),
    )
    return VariantScore(name, summary.ic, summary.rank_ic, summary.icir, summary.rank_icir, windows)


def compare_rolling(
    lake: Lake,
    specs: Mapping[str, ModelSpec],
    calendar: Sequence[date],
    start: date,
    end: date,
    window_types: Sequence[str] = WINDOW_TYPES,
) -> RollingComparison:
    """Every spec under every window type, scored on the sessions all of them predicted."""
    predictions: dict[str, pl.DataFrame] = {}
    windows: dict[str, int] = {}
    for name, spec in specs.items():
        for kind in window_types:
            variant = spec.model_copy(
                update={"rolling": spec.rolling.model_copy(update={"type": kind})}
            )
            key = f"{name}:{kind}"
            predictions[key], windows[key] = variant_predictions(
                lake, variant, calendar, start, end
            )
    common = set.intersection(*(set(p.get_column("date").to_list()) for p in predictions.values()))
    labelled = set(lake.days("labels"))
    sessions = sorted(common & labelled)
    if not sessions:
        raise ValueError(f"no session of {start}..{end} was scored by every variant with a label")
    labels = lake.read_days("labels", sessions).select("instrument", "date", "label")
    scores, daily = [], []
    for key, frame in predictions.items():
        kept = frame.filter(pl.col("date").is_in(sessions))
        predictions[key] = kept
        score = _summary(key, kept, labels, windows[key])
        scores.append(score)
        joined = kept.join(labels, on=["instrument", "date"])
        daily.append(
            joined.group_by("date")
            .agg(pl.corr("score", "label").alias("ic"))
            .with_columns(pl.lit(key).alias("variant"))
        )
    return RollingComparison(
        tuple(sessions), tuple(scores), pl.concat(daily).sort("variant", "date"), predictions
    )


def plot_comparison(result: RollingComparison, path: Path) -> Path:
    """Cumulative daily IC per variant."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axis = plt.subplots(figsize=(10, 5))
    try:
        for variant in sorted(set(result.daily.get_column("variant").to_list())):
            rows = result.daily.filter(pl.col("variant") == variant).sort("date")
            axis.plot(
                rows["date"].to_list(), rows["ic"].fill_nan(0.0).cum_sum().to_list(), label=variant
            )
        axis.set_title("Cumulative daily IC on the same test sessions")
        axis.set_ylabel("cumulative IC")
        axis.legend()
        axis.grid(alpha=0.3)
        path.parent.mkdir(parents=True, exist_ok=True)
        figure.savefig(path, dpi=100, bbox_inches="tight")
    finally:
        plt.close(figure)
    return path
