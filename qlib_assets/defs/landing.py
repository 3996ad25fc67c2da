"""The landing sensor and the rejection of landing files that belong to no session."""

import json
import time

import dagster as dg

from qlib_assets import __version__
from qlib_assets.market.landing import session_versions
from qlib_assets.market.raw_bars import ingested_versions, landing_catalog, reject_unplaceable
from qlib_assets.market.sensor_plan import plan_landing_runs
from qlib_assets.settings import Settings

GROUP = "market_data"


def build_landing_defs(settings: Settings, partitions: dg.PartitionsDefinition) -> dg.Definitions:
    @dg.asset(
        name="landing_rejections",
        group_name=GROUP,
        code_version=__version__,
        description="Quarantines landing files no session run reads (unreadable, symbolic "
        "links, named for or holding days the exchange never traded), each with its reason.",
    )
    def landing_rejections() -> dg.MaterializeResult:
        moved = reject_unplaceable(settings, partitions.get_partition_keys())
        return dg.MaterializeResult(
            metadata={
                "quarantined": len(moved),
                "files": dg.MetadataValue.json([str(p) for p in moved[:50]]),
            }
        )

    @dg.sensor(
        name="landing_sensor",
        asset_selection=dg.AssetSelection.assets(
            "raw_bars", "qlib_dataset", "indicators", "alpha158", landing_rejections
        ),
        minimum_interval_seconds=30,
        default_status=dg.DefaultSensorStatus.RUNNING,
        description="Requests raw_bars, qlib_dataset and the features for sessions whose "
        "settled landing files differ from what raw_bars ingested; an identical file delivered "
        "again requests nothing. Files no session run reads go to landing_rejections. labels "
        "follow by their automation condition, two sessions later.",
    )
    def landing_sensor(context: dg.SensorEvaluationContext) -> dg.SensorResult:
        cursor = json.loads(context.cursor) if context.cursor else {}
        entries = landing_catalog(settings).scan()
        plan = plan_landing_runs(
            entries,
            ingested_versions(settings),
            partitions.get_partition_keys(),
            settings.calendar,
            cursor,
            now=time.time(),
        )
        for problem in plan.problems:
            context.log.warning(problem)
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
                asset_selection=[
                    dg.AssetKey(a) for a in ("raw_bars", "qlib_dataset", "indicators", "alpha158")
                ],
                tags={
                    "dagster/asset_partition_range_start": run.start,
                    "dagster/asset_partition_range_end": run.end,
                    # A killed step process fails its step, which dagster.yaml's run_retries
                    # alone would not retry; an ingest run is safe to redo.
                    "dagster/retry_on_asset_or_op_failure": "true",
                    "qlib_assets/landing_files": ",".join(run.files)[:1000],
                },
            )
            for run in plan.runs
        ]
        if plan.rejection_key is not None:
            requests.append(
                dg.RunRequest(
                    run_key=f"rejections:{plan.rejection_key}",
                    asset_selection=[landing_rejections.key],
                    tags={"qlib_assets/landing_files": ",".join(plan.rejectable)[:1000]},
                )
            )
        waiting = f"; {len(plan.waiting)} file(s) still settling" if plan.waiting else ""
        return dg.SensorResult(
            run_requests=requests,
            asset_events=observations,
            cursor=plan.cursor_text(),
            skip_reason=None if requests else f"no new or changed landing files{waiting}",
        )

    return dg.Definitions(assets=[landing_rejections], sensors=[landing_sensor])
