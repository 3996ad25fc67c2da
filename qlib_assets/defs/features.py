"""Feature assets: technical indicators, Alpha158 and labels, each over a raw_bars lookback."""

import json
from datetime import timedelta
from typing import Any, Literal

import dagster as dg
import polars as pl

from qlib_assets.defs.daily import DailyAssets, LakeResource, session_days
from qlib_assets.features.tables import (
    LABEL_HORIZON,
    alpha158_window,
    build_alpha158,
    build_indicators,
    build_labels,
    indicator_lookback,
)
from qlib_assets.settings import Settings

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
    lake: LakeResource, asset: str, context: dg.AssetExecutionContext, table: pl.DataFrame
) -> dict[str, Any]:
    days = session_days(context)
    hashes = lake.write_days(asset, table, days)
    return {
        "rows": table.height,
        "columns": table.width - 2,
        "sessions": len(days),
        "sha256": next(iter(hashes.values()))
        if len(days) == 1
        else dg.MetadataValue.json({d.isoformat(): h for d, h in hashes.items()}),
        "path": lake.folder(asset),
    }


def build_feature_defs(settings: Settings, partitions: dg.PartitionsDefinition) -> dg.Definitions:
    daily = DailyAssets(partitions, GROUP)
    ind_lookback = indicator_lookback(settings)
    indicator_spec = json.dumps(
        [settings.indicator_params, settings.custom_indicators], sort_keys=True, default=str
    )

    @daily.asset(
        "indicators",
        code=[build_indicators],
        spec=[indicator_spec],
        deps=[dg.AssetDep("raw_bars", partition_mapping=_lookback(ind_lookback))],
        kinds={"polars", "talib"},
        description=f"Technical indicators (TA-Lib where it has them), {ind_lookback}-session "
        "warm-up so a one-session run equals the full history; plus custom_indicators.",
    )
    def indicators(context: dg.AssetExecutionContext, lake: LakeResource) -> dg.MaterializeResult:
        table = build_indicators(settings, session_days(context))
        return dg.MaterializeResult(metadata=_write(lake, "indicators", context, table))

    a158_window = alpha158_window(settings.custom_factors)

    @daily.asset(
        "alpha158",
        code=[build_alpha158],
        spec=[json.dumps(settings.custom_factors, sort_keys=True)],
        deps=[dg.AssetDep("raw_bars", partition_mapping=_lookback(a158_window))],
        kinds={"polars", "qlib"},
        description="Qlib's Alpha158 factors (definitions read from Qlib at run time) compiled "
        "to polars, raw values; engine='qlib' computes them with Qlib's own engine.",
    )
    def alpha158(
        context: dg.AssetExecutionContext, config: Alpha158Config, lake: LakeResource
    ) -> dg.MaterializeResult:
        table = build_alpha158(settings, session_days(context), engine=config.engine)
        metadata = _write(lake, "alpha158", context, table)
        return dg.MaterializeResult(metadata={**metadata, "engine": config.engine})

    @daily.asset(
        "labels",
        code=[build_labels],
        deps=[dg.AssetDep("raw_bars", partition_mapping=_lookback(0, LABEL_HORIZON))],
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
    def labels(context: dg.AssetExecutionContext, lake: LakeResource) -> dg.MaterializeResult:
        table = build_labels(settings, session_days(context))
        return dg.MaterializeResult(metadata=_write(lake, "labels", context, table))

    return dg.Definitions(assets=[indicators, alpha158, labels])
