"""The Qlib provider directory, kept in sync with raw_bars."""

import dagster as dg

from qlib_assets.defs.daily import DailyAssets, session_days
from qlib_assets.settings import Settings
from qlib_assets.storage.provider_sync import sync_provider

GROUP = "market_data"


def build_qlib_data_defs(settings: Settings, partitions: dg.PartitionsDefinition) -> dg.Definitions:
    daily = DailyAssets(partitions, GROUP)

    @daily.asset(
        "qlib_dataset",
        code=[sync_provider],
        deps=["raw_bars"],
        pool="qlib_provider",
        kinds={"qlib"},
        description="Qlib provider directory (calendars, instruments, float32 .bin features) in "
        "sync with raw_bars: appends new sessions, rewrites a re-materialized range in place.",
    )
    def qlib_dataset(context: dg.AssetExecutionContext) -> dg.MaterializeResult:
        days = session_days(context)
        result = sync_provider(settings, days)
        context.log.info(f"qlib provider: {result}")
        return dg.MaterializeResult(
            metadata={
                "provider_uri": str(settings.qlib_data_dir),
                "instruments_touched": result.instruments_touched,
                "sessions_appended": result.sessions_appended,
                "sessions_rewritten": result.sessions_rewritten,
                "sessions": len(days),
                "files_written": result.files_written,
            }
        )

    return dg.Definitions(assets=[qlib_dataset])
