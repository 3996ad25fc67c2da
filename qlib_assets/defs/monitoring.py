"""Monitoring assets: feature and prediction drift, performance decay, the dashboard."""

from collections.abc import Iterator

import dagster as dg
import polars as pl

from qlib_assets.asset_keys import (
    FEATURE_DRIFT,
    PERFORMANCE_DECAY,
    PREDICTION_DRIFT,
    model_asset,
    predictions_asset,
)
from qlib_assets.defs.conditions import on_any_update, on_new_session, when_inputs_complete
from qlib_assets.defs.daily import DailyAssets, LakeResource, code_version, session_days
from qlib_assets.defs.png import png_metadata
from qlib_assets.models.platform import platform_specs
from qlib_assets.settings import Settings

GROUP = "monitoring"
Event = dg.MaterializeResult | dg.AssetCheckResult


def build_monitoring_defs(
    settings: Settings, partitions: dg.PartitionsDefinition
) -> dg.Definitions:
    specs = platform_specs(settings)
    conf = settings.monitoring
    monitored = specs[conf.spec]
    daily = DailyAssets(partitions, GROUP)
    monitoring_spec = conf.model_dump_json()

    @daily.asset(
        FEATURE_DRIFT,
        code=["qlib_assets.monitoring.builders:build_feature_drift"],
        spec=[monitoring_spec, monitored.digest()],
        deps=[
            *(s.asset for s in monitored.features),
            dg.AssetDep(model_asset(conf.spec), partition_mapping=dg.AllPartitionMapping()),
        ],
        kinds={"evidently"},
        automation_condition=on_new_session(
            ignore=dg.AssetSelection.assets(model_asset(conf.spec))
        ),
        check_specs=[
            dg.AssetCheckSpec(
                "drift_share",
                asset=FEATURE_DRIFT,
                description=f"Fewer than {conf.retrain_share:.0%} of feature columns drift.",
            )
        ],
        description=f"Evidently drift of the session's features against the training window of "
        f"{monitored.ref}'s online model ({conf.method} pinned, "
        f"{'per-column calibrated thresholds' if conf.calibrate else conf.threshold}, session "
        f"flagged at {conf.alarm_share:.0%} of columns); "
        "per-column scores as a table, HTML report per session.",
    )
    def feature_drift(context: dg.AssetExecutionContext, lake: LakeResource) -> Iterator[Event]:
        from qlib_assets.monitoring.builders import build_feature_drift

        days = session_days(context)
        run = build_feature_drift(settings, days)
        for day, reason in sorted(run.skipped.items()):
            context.log.warning(f"{day}: skipped, {reason}")
        if run.result:
            lake.write_days(FEATURE_DRIFT, run.result.scores, days)
        latest = run.result.session() if run.result else None
        summary = run.result.summary() if run.result else pl.DataFrame()
        yield dg.MaterializeResult(
            metadata={
                "sessions_skipped": len(run.skipped),
                "drift_share": latest.share if latest else 0.0,
                "top_drifted": ", ".join(latest.top_features) if latest else "",
                "suggested_action": latest.action if latest else "none",
                "report": dg.MetadataValue.path(str(latest.report))
                if latest and latest.report
                else "",
                "per_session": dg.MetadataValue.md(
                    summary.to_pandas().to_markdown(index=False) if summary.height else "none"
                ),
            }
        )
        worst = float(summary.get_column("share").max() or 0.0) if summary.height else 0.0
        yield dg.AssetCheckResult(
            check_name="drift_share",
            passed=worst < conf.retrain_share,
            severity=dg.AssetCheckSeverity.WARN,
            metadata={"max_share": worst, "threshold": conf.retrain_share},
        )

    @daily.asset(
        PREDICTION_DRIFT,
        code=["qlib_assets.monitoring.builders:build_prediction_drift"],
        spec=[monitoring_spec],
        deps=[predictions_asset(n) for n in specs],
        kinds={"evidently"},
        automation_condition=on_new_session(),
        description="Each spec's score distribution per session against its online model's "
        "validation-period predictions.",
    )
    def prediction_drift(
        context: dg.AssetExecutionContext, lake: LakeResource
    ) -> dg.MaterializeResult:
        from qlib_assets.monitoring.builders import build_prediction_drift

        days = session_days(context)
        runs = build_prediction_drift(settings, days)
        tables = [
            r.result.scores.with_columns(spec=pl.lit(name)) for name, r in runs.items() if r.result
        ]
        if tables:
            lake.write_days(PREDICTION_DRIFT, pl.concat(tables), days)
        return dg.MaterializeResult(
            metadata={
                name: f"score {r.result.scores['score'][-1]:.3f}, drifted "
                f"{bool(r.result.scores['drifted'][-1])}"
                if r.result
                else f"skipped {len(r.skipped)} session(s)"
                for name, r in runs.items()
            }
        )

    @daily.asset(
        PERFORMANCE_DECAY,
        code=["qlib_assets.monitoring.builders:build_performance_decay"],
        spec=[monitoring_spec],
        deps=["labels", *(predictions_asset(n) for n in specs)],
        kinds={"polars"},
        automation_condition=when_inputs_complete(),
        check_specs=[
            dg.AssetCheckSpec(
                "ic_decay",
                asset=PERFORMANCE_DECAY,
                description=f"Rolling {conf.decay_window}-session IC stays above "
                f"max({conf.decay_floor}, valid IC x {conf.decay_ratio}).",
            )
        ],
        description="Rolling IC and rank IC of each spec against its online model's validation "
        "level; two sessions behind (labels lag).",
    )
    def performance_decay(context: dg.AssetExecutionContext, lake: LakeResource) -> Iterator[Event]:
        from qlib_assets.monitoring.builders import build_performance_decay

        days = session_days(context)
        results = build_performance_decay(settings, days)
        if results:
            table = pl.concat(r.rows.with_columns(spec=pl.lit(name)) for name, r in results.items())
            lake.write_days(PERFORMANCE_DECAY, table, days)
        breached = {n: r.evidence for n, r in results.items() if r.breached}
        yield dg.MaterializeResult(
            metadata={
                "specs": len(results),
                "breached": ", ".join(breached) or "none",
                "evidence": dg.MetadataValue.json(breached or {}),
            }
        )
        yield dg.AssetCheckResult(
            check_name="ic_decay",
            passed=not breached,
            severity=dg.AssetCheckSeverity.ERROR,
            metadata={"breached": ", ".join(breached) or "none"},
        )

    @dg.asset(
        name="monitoring_report",
        group_name=GROUP,
        deps=[
            dg.AssetDep(a, partition_mapping=dg.AllPartitionMapping())
            for a in (FEATURE_DRIFT, PERFORMANCE_DECAY)
        ],
        code_version=code_version(
            ["qlib_assets.monitoring.dashboard:build_monitoring_report"], [monitoring_spec]
        ),
        kinds={"matplotlib"},
        automation_condition=on_any_update(),
        description="The dashboard: drift heatmap of the most drifted features over time, "
        "drift share over time, rolling IC against its bound per spec.",
    )
    def monitoring_report() -> dg.MaterializeResult:
        from qlib_assets.monitoring.dashboard import build_monitoring_report

        charts = build_monitoring_report(settings)
        metadata: dict[str, dg.MetadataValue] = {}
        for title, path in charts.items():
            metadata |= png_metadata(path, title)
        return dg.MaterializeResult(metadata=metadata)

    return dg.Definitions(
        assets=[feature_drift, prediction_drift, performance_decay, monitoring_report]
    )
