"""Monitoring assets: feature and prediction drift, performance decay, the dashboard."""

from collections.abc import Iterator

import dagster as dg
import polars as pl

from qlib_assets import __version__
from qlib_assets.calendar import partition_date
from qlib_assets.defs.png import png_metadata
from qlib_assets.models.platform import platform_specs
from qlib_assets.monitoring.builders import (
    FEATURE_DRIFT,
    PERFORMANCE_DECAY,
    PREDICTION_DRIFT,
    build_feature_drift,
    build_performance_decay,
    build_prediction_drift,
)
from qlib_assets.monitoring.report import drift_heatmap, drift_share_chart, rolling_ic_chart
from qlib_assets.online.builders import predictions_asset
from qlib_assets.settings import Settings
from qlib_assets.storage.lake import Lake

GROUP = "monitoring"
Event = dg.MaterializeResult | dg.AssetCheckResult


def build_monitoring_defs(
    settings: Settings, partitions: dg.PartitionsDefinition
) -> dg.Definitions:
    specs = platform_specs(settings)
    conf = settings.monitoring
    monitored = specs[conf.spec]

    @dg.asset(
        name=FEATURE_DRIFT,
        group_name=GROUP,
        partitions_def=partitions,
        backfill_policy=dg.BackfillPolicy.single_run(),
        deps=[
            *(s.asset for s in monitored.features),
            dg.AssetDep(f"model_{conf.spec}", partition_mapping=dg.AllPartitionMapping()),
        ],
        code_version=__version__,
        kinds={"evidently"},
        check_specs=[
            dg.AssetCheckSpec(
                "drift_share",
                asset=FEATURE_DRIFT,
                description=f"Fewer than {conf.retrain_share:.0%} of feature columns drift.",
            )
        ],
        description=f"Evidently drift of the session's features against the training window of "
        f"{monitored.ref}'s online model ({conf.method}, threshold {conf.threshold}, pinned); "
        "per-column scores as a table, HTML report per session.",
    )
    def feature_drift(context: dg.AssetExecutionContext) -> Iterator[Event]:
        days = [partition_date(k) for k in context.partition_keys]
        run = build_feature_drift(settings, days)
        for day, reason in sorted(run.skipped.items()):
            context.log.warning(f"{day}: skipped, {reason}")
        if run.result:
            Lake(settings.lake_dir).write_days(FEATURE_DRIFT, run.result.scores, days)
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

    @dg.asset(
        name=PREDICTION_DRIFT,
        group_name=GROUP,
        partitions_def=partitions,
        backfill_policy=dg.BackfillPolicy.single_run(),
        deps=[predictions_asset(n) for n in specs],
        code_version=__version__,
        kinds={"evidently"},
        description="Each spec's score distribution per session against its online model's "
        "validation-period predictions.",
    )
    def prediction_drift(context: dg.AssetExecutionContext) -> dg.MaterializeResult:
        days = [partition_date(k) for k in context.partition_keys]
        runs = build_prediction_drift(settings, days)
        tables = [
            r.result.scores.with_columns(spec=pl.lit(name)) for name, r in runs.items() if r.result
        ]
        if tables:
            Lake(settings.lake_dir).write_days(PREDICTION_DRIFT, pl.concat(tables), days)
        return dg.MaterializeResult(
            metadata={
                name: f"score {r.result.scores['score'][-1]:.3f}, drifted "
                f"{bool(r.result.scores['drifted'][-1])}"
                if r.result
                else f"skipped {len(r.skipped)} session(s)"
                for name, r in runs.items()
            }
        )

    @dg.asset(
        name=PERFORMANCE_DECAY,
        group_name=GROUP,
        partitions_def=partitions,
        backfill_policy=dg.BackfillPolicy.single_run(),
        deps=["labels", *(predictions_asset(n) for n in specs)],
        code_version=__version__,
        kinds={"polars"},
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
    def performance_decay(context: dg.AssetExecutionContext) -> Iterator[Event]:
        days = [partition_date(k) for k in context.partition_keys]
        results = build_performance_decay(settings, days)
        if results:
            table = pl.concat(r.rows.with_columns(spec=pl.lit(name)) for name, r in results.items())
            Lake(settings.lake_dir).write_days(PERFORMANCE_DECAY, table, days)
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
        kinds={"matplotlib"},
        description="The dashboard: drift heatmap of the most drifted features over time, "
        "drift share over time, rolling IC against its bound per spec.",
    )
    def monitoring_report() -> dg.MaterializeResult:
        lake = Lake(settings.lake_dir)
        folder = settings.root / "reports" / "monitoring"
        metadata: dict[str, dg.MetadataValue] = {}
        drift_days = lake.days(FEATURE_DRIFT)
        if drift_days:
            scores = lake.read_days(FEATURE_DRIFT, drift_days)
            summary = scores.group_by("date").agg(share=pl.col("drifted").mean()).sort("date")
            metadata |= png_metadata(
                drift_heatmap(scores, folder / "drift_heatmap.png"), "drift_heatmap"
            )
            metadata |= png_metadata(
                drift_share_chart(summary, folder / "drift_share.png", conf.retrain_share),
                "drift_share",
            )
        decay_days = lake.days(PERFORMANCE_DECAY)
        if decay_days:
            rows = lake.read_days(PERFORMANCE_DECAY, decay_days)
            for (name,), part in rows.partition_by("spec", as_dict=True).items():
                chart = rolling_ic_chart(
                    part.drop("spec"), folder / f"rolling_ic_{name}.png", str(name)
                )
                metadata |= png_metadata(chart, f"rolling_ic_{name}")
        if not metadata:
            raise FileNotFoundError(
                "nothing to report: materialize feature_drift or performance_decay"
            )
        return dg.MaterializeResult(metadata=metadata)

    return dg.Definitions(
        assets=[feature_drift, prediction_drift, performance_decay, monitoring_report]
    )
