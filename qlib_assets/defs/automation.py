"""Update modes: the daily routine, the rolling retrain, retraining on breaches."""

import dagster as dg

from qlib_assets.asset_keys import model_asset, model_spec_name
from qlib_assets.calendar import exchange_timezone
from qlib_assets.defs.lifecycle import retrain_job_name, retrain_run_config
from qlib_assets.defs.lifecycle import retrain_jobs as build_retrain_jobs
from qlib_assets.models.platform import audit_log, platform_specs
from qlib_assets.operations.scheduling import training_priority_tags
from qlib_assets.settings import Settings


def training_job_name(spec_name: str) -> str:
    return f"train_{spec_name}"


def build_automation_defs(settings: Settings) -> dg.Definitions:
    daily = dg.AssetSelection.assets(
        *(a for a in ("raw_bars", "qlib_dataset"))
    ).downstream().required_multi_asset_neighbors() - dg.AssetSelection.assets(
        *(model_asset(n) for n in platform_specs(settings)), "backtest"
    )
    running = (
        dg.DefaultSensorStatus.RUNNING
        if settings.automation.enabled
        else dg.DefaultSensorStatus.STOPPED
    )
    train_jobs = [
        dg.define_asset_job(
            training_job_name(name),
            selection=[model_asset(name)],
            tags=training_priority_tags(settings.operations, name),
        )
        for name in platform_specs(settings)
    ]
    retrain_jobs = build_retrain_jobs(settings)

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
        from qlib_assets.online.routine import daily_routine_requests

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
        default_status=running,
        description="A rolling step: trains each spec's next window once all its train and "
        "valid labels are materialized.",
    )
    def rolling_retrain_sensor(context: dg.SensorEvaluationContext) -> dg.SensorResult:
        from qlib_assets.online.routine import due_retrains

        requests = [
            dg.RunRequest(
                run_key=f"{r.assets[0]}:{r.partition}",
                job_name=training_job_name(model_spec_name(r.assets[0])),
                partition_key=r.partition,
                tags={"qlib_assets/reason": r.reason},
            )
            for r in due_retrains(settings)
        ]
        return dg.SensorResult(
            run_requests=requests,
            skip_reason=None if requests else "no rolling window is due",
        )

    @dg.sensor(
        name="monitoring_retrain_sensor",
        jobs=retrain_jobs,
        minimum_interval_seconds=300,
        default_status=running,
        description="Performance-triggered updates: a decay or drift breach requests one "
        "retraining of the affected spec (a new window ending at the latest labelled session, "
        "through the gates), records the reason and evidence in the registry audit table, and "
        "then holds a cool-down.",
    )
    def monitoring_retrain_sensor(context: dg.SensorEvaluationContext) -> dg.SensorResult:
        from qlib_assets.monitoring.builders import cooldown, latest_breaches
        from qlib_assets.monitoring.retrain_trigger import (
            decode_cursor,
            encode_cursor,
            plan_retraining,
            record_requests,
        )

        plan = plan_retraining(
            latest_breaches(settings), decode_cursor(context.cursor), cooldown(settings)
        )
        for breach in plan.suppressed:
            context.log.info(f"{breach.spec}: breach on {breach.session} inside the cool-down")
        requests = []
        for breach in plan.requests:
            requests.append(
                dg.RunRequest(
                    run_key=f"{breach.spec}:{breach.kind}:{breach.session}",
                    job_name=retrain_job_name(breach.spec),
                    run_config=retrain_run_config(breach.spec, breach.reason),
                    tags={"qlib_assets/reason": breach.reason[:200]},
                )
            )
        record_requests(plan, audit_log(settings))
        return dg.SensorResult(
            run_requests=requests,
            cursor=encode_cursor(plan.cursor),
            skip_reason=None if requests else "no breach outside the cool-down",
        )

    automation_sensor = dg.AutomationConditionSensorDefinition(
        "daily_automation",
        target=dg.AssetSelection.all(),
        minimum_interval_seconds=settings.automation.interval_seconds,
        default_status=running,
        description="Evaluates every asset's automation condition: predictions, signal and drift "
        "of each new session; labels, signal analysis and decay as their inputs complete.",
    )

    return dg.Definitions(
        schedules=[daily_routine],
        sensors=[rolling_retrain_sensor, monitoring_retrain_sensor, automation_sensor],
        jobs=[*train_jobs, *retrain_jobs],
    )
