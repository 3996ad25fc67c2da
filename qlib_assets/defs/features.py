"""Feature assets: technical indicators, Alpha158 and labels, each over a raw_bars lookback."""

import json
from typing import Literal

import dagster as dg

from qlib_assets.defs.conditions import when_inputs_complete
from qlib_assets.defs.daily import DailyAssets, LakeResource, session_days, write_sessions
from qlib_assets.features.builders import (
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


def build_feature_defs(settings: Settings, partitions: dg.PartitionsDefinition) -> dg.Definitions:
    daily = DailyAssets(partitions, GROUP)
    ind_lookback = indicator_lookback(settings)
    indicator_spec = json.dumps(
        [settings.indicator_params, settings.custom_indicators], sort_keys=True, default=str
    )

    @daily.asset(
        "indicators",
        code=["qlib_assets.features.builders:build_indicators"],
        spec=[indicator_spec],
        deps=[dg.AssetDep("raw_bars", partition_mapping=_lookback(ind_lookback))],
        kinds={"polars", "talib"},
        description=f"Technical indicators (TA-Lib where it has them), {ind_lookback}-session "
        "warm-up so a one-session run equals the full history; plus custom_indicators.",
    )
    def indicators(context: dg.AssetExecutionContext, lake: LakeResource) -> dg.MaterializeResult:
        days = session_days(context)
        write_sessions(context, lake, "indicators", build_indicators(settings, days), days)
        return dg.MaterializeResult()

    a158_window = alpha158_window(settings.custom_factors)

    @daily.asset(
        "alpha158",
        code=["qlib_assets.features.builders:build_alpha158"],
        spec=[json.dumps(settings.custom_factors, sort_keys=True)],
        deps=[dg.AssetDep("raw_bars", partition_mapping=_lookback(a158_window))],
        kinds={"polars", "qlib"},
        description="Qlib's Alpha158 factors (definitions read from Qlib at run time) compiled "
        "to polars, raw values; engine='qlib' computes them with Qlib's own engine.",
    )
    def alpha158(
        context: dg.AssetExecutionContext, config: Alpha158Config, lake: LakeResource
    ) -> dg.MaterializeResult:
        days = session_days(context)
        table = build_alpha158(settings, days, engine=config.engine)
        write_sessions(context, lake, "alpha158", table, days, engine=config.engine)
        return dg.MaterializeResult()

    @daily.asset(
        "labels",
        code=["qlib_assets.features.builders:build_labels"],
        deps=[dg.AssetDep("raw_bars", partition_mapping=_lookback(0, LABEL_HORIZON))],
        kinds={"polars"},
        automation_condition=when_inputs_complete(later_sessions=LABEL_HORIZON),
        description="Qlib's label Ref($close,-2)/Ref($close,-1)-1: materializable once raw_bars "
        "of the two following sessions exist (labels lag by two sessions).",
    )
    def labels(context: dg.AssetExecutionContext, lake: LakeResource) -> dg.MaterializeResult:
        days = session_days(context)
        write_sessions(context, lake, "labels", build_labels(settings, days), days)
        return dg.MaterializeResult()

    return dg.Definitions(assets=[indicators, alpha158, labels])
