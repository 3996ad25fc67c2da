"""Online assets: each spec's daily predictions and the ensemble signal."""

from datetime import date
from typing import Any

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
from qlib_assets.models.platform import platform_specs
from qlib_assets.models.specs import ModelSpec
from qlib_assets.settings import Settings

GROUP = "online"
SERVED_CHECK = "served_as_decided"


def _served_metadata(result: Any) -> dict[str, Any]:
    """Compact for a range: per version its first and last session and count."""
    spans: dict[str, list[Any]] = {}
    for day, version in sorted(result.used.items()):
        span = spans.setdefault(version, [day.isoformat(), day.isoformat(), 0])
        span[1], span[2] = day.isoformat(), span[2] + 1
    versions = sorted(spans, key=int)
    return {
        "model_version": versions[0] if len(versions) == 1 else ",".join(versions) or "none",
        "served_versions": spans,
        "decided_by": result.sources(),
    }


def _served_check(result: Any) -> dg.AssetCheckResult:
    """Fails on a fallback, or on sessions without rows while a production version exists."""
    unexplained = {
        d.isoformat(): r
        for d, r in sorted(result.skipped.items())
        if "no production version could score" in r
    }
    return dg.AssetCheckResult(
        check_name=SERVED_CHECK,
        passed=not result.fallbacks and not unexplained,
        severity=dg.AssetCheckSeverity.ERROR,
        metadata={
            "fallbacks": dg.MetadataValue.json(
                [
                    {
                        "primary": f.primary,
                        "used": f.used,
                        "sessions": [f.sessions[0].isoformat(), f.sessions[-1].isoformat()],
                        "errors": f.error,
                    }
                    for f in result.fallbacks
                ]
            ),
            "unscored_sessions": dg.MetadataValue.json(unexplained),
        },
    )


def _predictions(settings: Settings, spec: ModelSpec, daily: DailyAssets) -> dg.AssetsDefinition:
    features = list(dict.fromkeys(source.asset for source in spec.features))
    name = predictions_asset(spec.name)

    @daily.asset(
        name,
        code=["qlib_assets.lifecycle.served:serve_predictions"],
        spec=[spec.digest()],
        deps=[
            *features,
            dg.AssetDep(model_asset(spec.name), partition_mapping=dg.AllPartitionMapping()),
        ],
        kinds={"mlflow", "polars"},
        automation_condition=on_new_session(
            ignore=dg.AssetSelection.assets(model_asset(spec.name))
        ),
        check_specs=[
            dg.AssetCheckSpec(
                SERVED_CHECK,
                asset=name,
                description="Every session was scored by the version the lifecycle decided: "
                "fails when a fallback version had to serve, or when a session has no rows "
                "while a production version exists.",
            )
        ],
        description=f"Scores of {spec.ref} by the version that serves each session: the "
        "champion (by the promotion records), else the session's window model before any "
        "promotion; rows name their model_version. A champion that cannot serve falls back to "
        "the previous production version; empty sessions carry their reason.",
    )
    def predictions(context: dg.AssetExecutionContext, lake: LakeResource) -> dg.MaterializeResult:
        from qlib_assets.lifecycle.served import SERVED_SCHEMA, serve_predictions

        days = session_days(context)
        result = serve_predictions(settings, spec, days)
        for warning in result.warnings:
            context.log.warning(warning)
        written = [d for d in days if d in result.used or d in result.skipped]
        write_sessions(
            context,
            lake,
            name,
            result.frame.select(list(SERVED_SCHEMA)),
            written,
            sessions_scored=len(result.used),
            clipped_to=result.clipped_to.isoformat() if result.clipped_to else "no",
            **_served_metadata(result),
        )
        per_session: dict[date, dict[str, Any]] = {
            d: {"model_version": version} for d, version in result.used.items()
        }
        for d, reason in result.skipped.items():
            per_session.setdefault(d, {})["skipped"] = reason
        add_session_metadata(context, per_session)
        return dg.MaterializeResult(check_results=[_served_check(result)])

    return predictions


def build_online_defs(settings: Settings, partitions: dg.PartitionsDefinition) -> dg.Definitions:
    specs = platform_specs(settings)
    daily = DailyAssets(partitions, GROUP)

    @daily.asset(
        SIGNAL,
        code=["qlib_assets.online.builders:build_signal"],
        deps=[predictions_asset(name) for name in specs],
        kinds={"polars"},
        automation_condition=on_new_session(),
        description="Qlib's AverageEnsemble of the specs' predictions: per-session z-score, "
        "then the mean; exactly one row per (instrument, date).",
    )
    def signal(context: dg.AssetExecutionContext, lake: LakeResource) -> dg.MaterializeResult:
        from qlib_assets.online.builders import build_signal

        days = session_days(context)
        table = build_signal(settings, days)
        unique = table.select(pl.struct("instrument", "date").is_unique().all()).item()
        write_sessions(context, lake, SIGNAL, table, days, unique=unique)
        return dg.MaterializeResult()

    assets = [_predictions(settings, spec, daily) for spec in specs.values()]
    return dg.Definitions(assets=[*assets, signal])
