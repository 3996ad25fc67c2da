"""The scheduled update mode: the daily routine after each close, and the rolling retrain."""

import dagster as dg

from qlib_assets.calendar import exchange_timezone
from qlib_assets.models.window_training import platform_specs
from qlib_assets.online.routine import (
    daily_routine_requests,
    due_retrains,
)
from qlib_assets.settings import Settings


def training_job_name(spec_name: str) -> str:
    return f"train_{spec_name}"


def build_schedule_defs(settings: Settings) -> dg.Definitions:
    daily = dg.AssetSelection.assets(
        *(a for a in ("raw_bars", "qlib_dataset"))
    ).downstream().required_multi_asset_neighbors() - dg.AssetSelection.assets(
        *(f"model_{n}" for n in platform_specs(settings)), "backtest"
    )
    train_jobs = [
        dg.define_asset_job(training_job_name(name), selection=[f"model_{name}"])
        for name in platform_specs(settings)
    ]

    @dg.schedule(
        name="daily_routine",
        cron_schedule="30 17 * * 1-5",
        execution_timezone=exchange_timezone(settings.calendar),
        target=daily,
        default_status=dg.DefaultScheduleStatus.STOPPED,
        description="After each session's close: ingest, features, predictions and signal for "
        "the session; labels and signal analysis for the session two back.",
    )
    def daily_routine(
        context: dg.ScheduleEvaluationContext,
    ) -> list[dg.RunRequest] | dg.SkipReason:
        day = context.scheduled_execution_time.date()
        requests = daily_routine_requests(settings, day)
        if not requests:
            return dg.SkipReason(f"{day} is not a {settings.calendar} session")
        return [
            dg.RunRequest(
                run_key=f"{day}:{r.partition}:{','.join(r.assets)}",
                asset_selection=[dg.AssetKey(a) for a in r.assets],
                partition_key=r.partition,
                tags={"qlib_assets/reason": r.reason},
            )
            for r in requests
        ]

    @dg.sensor(
        name="rolling_retrain_sensor",
        jobs=train_jobs,
        minimum_interval_seconds=3600,
        default_status=dg.DefaultSensorStatus.STOPPED,
        description="A rolling step: trains each spec's next window once all its train and "
        "valid labels are materialized.",
    )
    def rolling_retrain_sensor(context: dg.SensorEvaluationContext) -> dg.SensorResult:
        requests = [
            dg.RunRequest(
                run_key=f"{r.assets[0]}:{r.partition}",
                job_name=training_job_name(r.assets[0].removeprefix("model_")),
                partition_key=r.partition,
                tags={"qlib_assets/reason": r.reason},
            )
            for r in due_retrains(settings)
        ]
        return dg.SensorResult(
            run_requests=requests,
            skip_reason=None if requests else "no rolling window is due",
        )

    return dg.Definitions(
        schedules=[daily_routine], sensors=[rolling_retrain_sensor], jobs=train_jobs
    )
