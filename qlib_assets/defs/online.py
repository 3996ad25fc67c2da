"""Online assets: each spec's daily predictions and the ensemble signal."""

import dagster as dg
import polars as pl

from qlib_assets.asset_keys import SIGNAL, model_asset, predictions_asset
from qlib_assets.defs.conditions import on_new_session
from qlib_assets.defs.daily import (
    DailyAssets,
    LakeResource,
    add_session_metadata,
    session_days,
    write_sessions,
)
from qlib_assets.models.specs import ModelSpec
from qlib_assets.models.window_training import platform_specs
from qlib_assets.settings import Settings

GROUP = "online"


def _predictions(settings: Settings, spec: ModelSpec, daily: DailyAssets) -> dg.AssetsDefinition:
    features = list(dict.fromkeys(source.asset for source in spec.features))

    @daily.asset(
        predictions_asset(spec.name),
        code=["qlib_assets.online.tables:build_predictions"],
        spec=[spec.digest()],
        deps=[
            *features,
            dg.AssetDep(model_asset(spec.name), partition_mapping=dg.AllPartitionMapping()),
        ],
        kinds={"mlflow", "polars"},
        automation_condition=on_new_session(
            ignore=dg.AssetSelection.assets(model_asset(spec.name))
        ),
        description=f"Scores of {spec.ref}: session d comes from the latest trained window whose "
        "test segment holds d; sessions with no online model yet are skipped with a reason.",
    )
    def predictions(context: dg.AssetExecutionContext, lake: LakeResource) -> dg.MaterializeResult:
        from qlib_assets.online.predictions import PREDICTION_SCHEMA
        from qlib_assets.online.tables import build_predictions

        days = session_days(context)
        result = build_predictions(settings, spec, days)
        for warning in result.warnings:
            context.log.warning(warning)
        scored = set(result.sessions)
        written = [d for d in days if d in scored or d in result.skipped]
        write_sessions(
            context,
            lake,
            predictions_asset(spec.name),
            result.frame.select(list(PREDICTION_SCHEMA)),
            written,
            sessions_scored=len(scored),
            clipped_to=result.clipped_to.isoformat() if result.clipped_to else "no",
            models=result.models,
        )
        add_session_metadata(
            context, {d: {"skipped": reason} for d, reason in sorted(result.skipped.items())}
        )
        return dg.MaterializeResult()

    return predictions


def build_online_defs(settings: Settings, partitions: dg.PartitionsDefinition) -> dg.Definitions:
    specs = platform_specs(settings)
    daily = DailyAssets(partitions, GROUP)

    @daily.asset(
        SIGNAL,
        code=["qlib_assets.online.tables:build_signal"],
        deps=[predictions_asset(name) for name in specs],
        kinds={"polars"},
        automation_condition=on_new_session(),
        description="Qlib's AverageEnsemble of the specs' predictions: per-session z-score, "
        "then the mean; exactly one row per (instrument, date).",
    )
    def signal(context: dg.AssetExecutionContext, lake: LakeResource) -> dg.MaterializeResult:
        from qlib_assets.online.tables import build_signal

        days = session_days(context)
        table = build_signal(settings, days)
        unique = table.select(pl.struct("instrument", "date").is_unique().all()).item()
        write_sessions(context, lake, SIGNAL, table, days, unique=unique)
        return dg.MaterializeResult()

    assets = [_predictions(settings, spec, daily) for spec in specs.values()]
    return dg.Definitions(assets=[*assets, signal])
