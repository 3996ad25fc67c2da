"""Market-data assets: observed landing files, validated raw bars, the landing sensor."""

import json
from collections.abc import Iterator

import dagster as dg

from qlib_assets.defs.daily import DailyAssets, LakeResource, session_days
from qlib_assets.market.landing import session_versions
from qlib_assets.market.raw_bars import build_raw_bars, landing_catalog, quarantine_unreadable
from qlib_assets.market.sensor_plan import plan_landing_runs
from qlib_assets.settings import Settings

GROUP = "market_data"


def build_market_defs(settings: Settings, partitions: dg.PartitionsDefinition) -> dg.Definitions:
    daily = DailyAssets(partitions, GROUP)

    @dg.observable_source_asset(
        name="landing_files",
        group_name=GROUP,
        partitions_def=partitions,
        description="Files delivered to the landing folder; a session's data version is a "
        "digest of the content hashes of the files that hold it.",
    )
    def landing_files() -> dg.DataVersionsByPartition:
        versions = session_versions(landing_catalog(settings).scan())
        valid = set(partitions.get_partition_keys())
        return dg.DataVersionsByPartition({k: v for k, v in versions.items() if k in valid})

    @daily.asset(
        "raw_bars",
        code=[build_raw_bars],
        spec=[settings.validation.model_dump_json(), json.dumps(settings.column_aliases)],
        deps=[landing_files],
        kinds={"parquet", "polars"},
        check_specs=[
            dg.AssetCheckSpec(
                "price_limits",
                asset="raw_bars",
                description="No close-to-close move beyond the daily limit "
                "without an adjustment-factor change.",
            ),
            dg.AssetCheckSpec(
                "coverage",
                asset="raw_bars",
                description="No session loses more than the configured share "
                "of the previous session's instruments.",
            ),
        ],
        description="Validated daily bars in the canonical schema, one Parquet file per session.",
    )
    def raw_bars(
        context: dg.AssetExecutionContext, lake: LakeResource
    ) -> Iterator[dg.MaterializeResult | dg.AssetCheckResult]:
        days = session_days(context)
        context.log.info(f"ingesting {len(days)} session(s) {days[0]} .. {days[-1]}")
        report = build_raw_bars(settings, days)
        jumps = report.findings.price_jumps
        drops = report.findings.coverage_drops
        yield dg.MaterializeResult(
            metadata={
                "rows": report.rows,
                "instruments": report.instruments,
                "sessions": len(days),
                "sha256": next(iter(report.hashes.values()))
                if len(days) == 1
                else dg.MetadataValue.json({d.isoformat(): h for d, h in report.hashes.items()}),
                "landing_files": dg.MetadataValue.json(report.landing_files),
                "path": lake.folder("raw_bars"),
            },
        )
        yield dg.AssetCheckResult(
            check_name="price_limits",
            passed=jumps.height == 0,
            severity=dg.AssetCheckSeverity.WARN,
            metadata={
                "violations": jumps.height,
                "examples": dg.MetadataValue.md(jumps.head(20).to_pandas().to_markdown(index=False))
                if jumps.height
                else "none",
            },
        )
        yield dg.AssetCheckResult(
            check_name="coverage",
            passed=not drops,
            severity=dg.AssetCheckSeverity.WARN,
            metadata={"drops": dg.MetadataValue.json(drops) if drops else "none"},
        )

    @dg.sensor(
        name="landing_sensor",
        asset_selection=dg.AssetSelection.assets(
            raw_bars, "qlib_dataset", "indicators", "alpha158"
        ),
        minimum_interval_seconds=30,
        default_status=dg.DefaultSensorStatus.RUNNING,
        description="Requests raw_bars, qlib_dataset and the features for sessions touched by "
        "new or changed landing files; an identical file delivered again requests nothing. "
        "labels follow by their automation condition, two sessions later.",
    )
    def landing_sensor(context: dg.SensorEvaluationContext) -> dg.SensorResult:
        cursor = json.loads(context.cursor) if context.cursor else {}
        entries = landing_catalog(settings).scan()
        plan = plan_landing_runs(entries, cursor, partitions.get_partition_keys())
        for problem in plan.problems:
            context.log.warning(problem)
        for rel in plan.unreadable:
            moved = quarantine_unreadable(settings, rel, entries[rel].error or "unreadable")
            context.log.warning(f"{rel} is unreadable and was quarantined as {moved}")
        versions = session_versions(entries)
        observations = [
            dg.AssetObservation(
                asset_key="landing_files",
                partition=day,
                tags={"dagster/data_version": versions[day]},
            )
            for day in plan.touched_sessions
        ]
        requests = [
            dg.RunRequest(
                run_key=run.run_key,
                tags={
                    "dagster/asset_partition_range_start": run.start,
                    "dagster/asset_partition_range_end": run.end,
                    "qlib_assets/landing_files": ",".join(run.files)[:1000],
                },
            )
            for run in plan.runs
        ]
        return dg.SensorResult(
            run_requests=requests,
            asset_events=observations,
            cursor=json.dumps(plan.cursor, sort_keys=True),
            skip_reason=None if requests else "no new or changed landing files",
        )

    return dg.Definitions(assets=[landing_files, raw_bars], sensors=[landing_sensor])
