"""Feature assets: technical indicators, Alpha158 and labels, each over a raw_bars lookback."""

from datetime import timedelta
from typing import Any, Literal

import dagster as dg
import polars as pl

from qlib_assets import __version__
from qlib_assets.calendar import partition_date
from qlib_assets.features.builders import (
    LABEL_HORIZON,
    alpha158_window,
    build_alpha158,
    build_indicators,
    build_labels,
    indicator_lookback,
)
from qlib_assets.settings import Settings
from qlib_assets.storage.lake import Lake

GROUP = "features"


class Alpha158Config(dg.Config):
    engine: Literal["polars", "qlib"] = "polars"


def _lookback(sessions_before: int, sessions_after: int = 0) -> dg.TimeWindowPartitionMapping:
    return dg.TimeWindowPartitionMapping(
        start_offset=-sessions_before,
        end_offset=sessions_after,
        allow_nonexistent_upstream_partitions=True,
    )


def _write(
    settings: Settings, asset: str, context: dg.AssetExecutionContext, table: pl.DataFrame
) -> dict[str, Any]:
    days = [partition_date(k) for k in context.partition_keys]
    hashes = Lake(settings.lake_dir).write_days(asset, table, days)
    return {
        "rows": table.height,
        "columns": table.width - 2,
        "sessions": len(days),
        "sha256": next(iter(hashes.values()))
        if len(days) == 1
        else dg.MetadataValue.json({d.isoformat(): h for d, h in hashes.items()}),
        "path": str(settings.lake_dir / asset),
    }


def build_feature_defs(settings: Settings, partitions: dg.PartitionsDefinition) -> dg.Definitions:
    ind_lookback = indicator_lookback(settings)

    @dg.asset(
        name="indicators",
        group_name=GROUP,
        partitions_def=partitions,
        backfill_policy=dg.BackfillPolicy.single_run(),
        deps=[dg.AssetDep("raw_bars", partition_mapping=_lookback(ind_lookback))],
        code_version=__version__,
        kinds={"polars", "talib"},
        description=f"Technical indicators (TA-Lib where it has them), {ind_lookback}-session "
        "warm-up so a one-session run equals the full history; plus custom_indicators.",
    )
    def indicators(context: dg.AssetExecutionContext) -> dg.MaterializeResult:
        days = [partition_date(k) for k in context.partition_keys]
        table = build_indicators(settings, days)
        return dg.MaterializeResult(metadata=_write(settings, "indicators", context, table))

    a158_window = alpha158_window(settings.custom_factors)

    @dg.asset(
        name="alpha158",
        group_name=GROUP,
        partitions_def=partitions,
        backfill_policy=dg.BackfillPolicy.single_run(),
        deps=[dg.AssetDep("raw_bars", partition_mapping=_lookback(a158_window))],
        code_version=__version__,
        kinds={"polars", "qlib"},
        description="Qlib's Alpha158 factors (definitions read from Qlib at run time) compiled "
        "to polars, raw values; engine='qlib' computes them with Qlib's own engine.",
    )
    def alpha158(context: dg.AssetExecutionContext, config: Alpha158Config) -> dg.MaterializeResult:
        days = [partition_date(k) for k in context.partition_keys]
        table = build_alpha158(settings, days, engine=config.engine)
        metadata = _write(settings, "alpha158", context, table)
        return dg.MaterializeResult(metadata={**metadata, "engine": config.engine})

    @dg.asset(
        name="labels",
        group_name=GROUP,
        partitions_def=partitions,
        backfill_policy=dg.BackfillPolicy.single_run(),
        deps=[dg.AssetDep("raw_bars", partition_mapping=_lookback(0, LABEL_HORIZON))],
        code_version=__version__,
        kinds={"polars"},
        automation_condition=(
            dg.AutomationCondition.in_latest_time_window(timedelta(days=14))
            & dg.AutomationCondition.any_deps_updated()
            & ~dg.AutomationCondition.any_deps_missing()
            & ~dg.AutomationCondition.in_progress()
        ),
        description="Qlib's label Ref($close,-2)/Ref($close,-1)-1: materializable once raw_bars "
        "of the two following sessions exist (labels lag by two sessions).",
    )
    def labels(context: dg.AssetExecutionContext) -> dg.MaterializeResult:
        days = [partition_date(k) for k in context.partition_keys]
        table = build_labels(settings, days)
        return dg.MaterializeResult(metadata=_write(settings, "labels", context, table))

    return dg.Definitions(assets=[indicators, alpha158, labels])
