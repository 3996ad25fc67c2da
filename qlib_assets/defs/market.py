"""Market-data assets: observed landing files, validated raw bars."""

import json
from collections.abc import Iterator

import dagster as dg

from qlib_assets.defs.daily import (
    DailyAssets,
    LakeResource,
    add_session_metadata,
    landing_files_by_session,
    session_days,
    session_files_metadata,
)
from qlib_assets.market.landing import session_versions
from qlib_assets.market.raw_bars import build_raw_bars, landing_catalog
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
        code=["qlib_assets.market.raw_bars:build_raw_bars"],
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
        rows = lake.session_rows("raw_bars", days)
        files = landing_files_by_session(landing_catalog(settings).scan(), days)
        add_session_metadata(
            context,
            {
                day: {
                    "rows": rows[day],
                    # validation keeps one bar per instrument and session
                    "instruments": rows[day],
                    "sha256": digest,
                    **session_files_metadata(files.get(day, {})),
                }
                for day, digest in report.hashes.items()
            },
            {
                "sessions": len(days),
                "rows": report.rows,
                "instruments": report.instruments,
                "landing_files": len(report.landing_files),
                "rejected_files": len(report.rejected),
                "path": lake.folder("raw_bars"),
            },
        )
        yield dg.MaterializeResult()
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

    return dg.Definitions(assets=[landing_files, raw_bars])
