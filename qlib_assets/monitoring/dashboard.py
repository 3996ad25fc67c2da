"""The monitoring dashboard: charts over every stored drift and decay session."""

from pathlib import Path

import polars as pl

from qlib_assets.monitoring.tables import FEATURE_DRIFT, PERFORMANCE_DECAY
from qlib_assets.settings import Settings
from qlib_assets.storage.lake import Lake


def build_monitoring_report(settings: Settings) -> dict[str, Path]:
    """Chart title -> PNG: drift heatmap and drift share over time (when feature drift is
    stored), rolling IC against its bound per spec (when decay is stored)."""
    # matplotlib is imported here so that loading the code location does not pay for it.
    from qlib_assets.monitoring.report import drift_heatmap, drift_share_chart, rolling_ic_chart

    lake = Lake(settings.lake_dir)
    folder = settings.root / "reports" / "monitoring"
    charts: dict[str, Path] = {}
    drift_days = lake.days(FEATURE_DRIFT)
    if drift_days:
        scores = lake.read_days(FEATURE_DRIFT, drift_days)
        summary = scores.group_by("date").agg(share=pl.col("drifted").mean()).sort("date")
        charts["drift_heatmap"] = drift_heatmap(scores, folder / "drift_heatmap.png")
        charts["drift_share"] = drift_share_chart(
            summary, folder / "drift_share.png", settings.monitoring.retrain_share
        )
    decay_days = lake.days(PERFORMANCE_DECAY)
    if decay_days:
        rows = lake.read_days(PERFORMANCE_DECAY, decay_days)
        for (name,), part in rows.partition_by("spec", as_dict=True).items():
            charts[f"rolling_ic_{name}"] = rolling_ic_chart(
                part.drop("spec"), folder / f"rolling_ic_{name}.png", str(name)
            )
    if not charts:
        raise FileNotFoundError("nothing to report: materialize feature_drift or performance_decay")
    return charts
