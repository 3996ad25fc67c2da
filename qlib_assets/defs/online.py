"""Online assets: each spec's daily predictions and the ensemble signal."""

import dagster as dg
import polars as pl

from qlib_assets.asset_keys import model_asset
from qlib_assets.defs.daily import DailyAssets, LakeResource, session_days
from qlib_assets.models.specs import ModelSpec
from qlib_assets.models.window_training import platform_specs
from qlib_assets.online.predictions import PREDICTION_SCHEMA
from qlib_assets.online.tables import SIGNAL, build_predictions, build_signal, predictions_asset
from qlib_assets.settings import Settings

GROUP = "online"


def _predictions(settings: Settings, spec: ModelSpec, daily: DailyAssets) -> dg.AssetsDefinition:
    features = list(dict.fromkeys(source.asset for source in spec.features))

    @daily.asset(
        predictions_asset(spec.name),
        code=[build_predictions],
        spec=[spec.digest()],
        deps=[
            *features,
            dg.AssetDep(model_asset(spec.name), partition_mapping=dg.AllPartitionMapping()),
        ],
        kinds={"mlflow", "polars"},
        description=f"Scores of {spec.ref}: session d comes from the latest trained window whose "
        "test segment holds d; sessions with no online model yet are skipped with a reason.",
    )
    def predictions(context: dg.AssetExecutionContext, lake: LakeResource) -> dg.MaterializeResult:
        days = session_days(context)
        result = build_predictions(settings, spec, days)
        for warning in result.warnings:
            context.log.warning(warning)
        scored = set(result.sessions)
        written = [d for d in days if d in scored or d in result.skipped]
        lake.write_days(
            predictions_asset(spec.name), result.frame.select(list(PREDICTION_SCHEMA)), written
        )
        return dg.MaterializeResult(
            metadata={
                "rows": result.frame.height,
                "sessions_scored": len(scored),
                "sessions_skipped": dg.MetadataValue.json(
                    {d.isoformat(): r for d, r in sorted(result.skipped.items())}
                ),
                "clipped_to": result.clipped_to.isoformat() if result.clipped_to else "no",
                "models": dg.MetadataValue.json(result.models),
            }
        )

    return predictions


def build_online_defs(settings: Settings, partitions: dg.PartitionsDefinition) -> dg.Definitions:
    specs = platform_specs(settings)
    daily = DailyAssets(partitions, GROUP)

    @daily.asset(
        SIGNAL,
        code=[build_signal],
        deps=[predictions_asset(name) for name in specs],
        kinds={"polars"},
        description="Qlib's AverageEnsemble of the specs' predictions: per-session z-score, "
        "then the mean; exactly one row per (instrument, date).",
    )
    def signal(context: dg.AssetExecutionContext, lake: LakeResource) -> dg.MaterializeResult:
        days = session_days(context)
        table = build_signal(settings, days)
        lake.write_days(SIGNAL, table, days)
        per_day = table.group_by("date").len()
        return dg.MaterializeResult(
            metadata={
                "rows": table.height,
                "instruments_per_session": float(per_day["len"].mean() or 0.0),
                "unique": table.select(pl.struct("instrument", "date").is_unique().all()).item(),
            }
        )

    assets = [_predictions(settings, spec, daily) for spec in specs.values()]
    return dg.Definitions(assets=[*assets, signal])
