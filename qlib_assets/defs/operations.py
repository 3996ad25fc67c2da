"""Operations: cost and waste reports, the budget guard, and alerts through one notifier."""

from datetime import UTC, datetime

import dagster as dg
from dagster._core.storage.asset_check_execution_record import AssetCheckExecutionRecordStatus

from qlib_assets.defs.daily import code_version
from qlib_assets.defs.metering import STORE_PARAM, OperationsStoreResource
from qlib_assets.defs.png import png_metadata
from qlib_assets.operations.budget import BUDGET_TAG, HELD, RELEASED, budget_status, plan_guard
from qlib_assets.operations.config import AlertSettings
from qlib_assets.operations.cost import cost_report, folder_sizes, plot_cost, step_costs
from qlib_assets.operations.notifier import Alert, Delivery, notify
from qlib_assets.operations.store import operations_store, operations_url
from qlib_assets.operations.waste import find_waste
from qlib_assets.settings import Settings

GROUP = "operations"
HISTORY = 1000
# Failed evaluations of these checks are drift and decay breaches, alerted whatever their
# severity; any other check alerts when it fails with ERROR severity.
BREACH_CHECKS = {
    ("feature_drift", "drift_share"): "drift",
    ("performance_decay", "ic_decay"): "decay",
}


class Notifier(dg.ConfigurableResource):
    """The one notifier: a JSON webhook and/or SMTP email (operations.alerts)."""

    alerts_json: str

    def send(self, alert: Alert) -> list[Delivery]:
        return notify(AlertSettings.model_validate_json(self.alerts_json), alert)


def notifier_resource(settings: Settings) -> Notifier:
    return Notifier(alerts_json=settings.operations.alerts.model_dump_json())


def _log_deliveries(log: dg.DagsterLogManager, deliveries: list[Delivery]) -> None:
    for delivery in deliveries:
        if not delivery.ok:
            log.warning(f"alert not delivered by {delivery.channel}: {delivery.error}")


def check_alert(evaluation: dg.AssetCheckEvaluation) -> Alert | None:
    """The alert of a failed check evaluation: drift and decay breaches, or ERROR severity."""
    key = (evaluation.asset_key.to_user_string(), evaluation.check_name)
    breach = BREACH_CHECKS.get(key)
    error = evaluation.severity == dg.AssetCheckSeverity.ERROR
    if evaluation.passed or not (breach or error):
        return None
    return Alert(
        source=breach or "asset_check",
        title=f"check {key[1]} of {key[0]} failed",
        body=f"{key[0]}:{key[1]} failed ({evaluation.severity.value})",
        severity="error" if error else "warning",
        details={
            "partition": evaluation.partition,
            "metadata": {k: str(v.value) for k, v in evaluation.metadata.items()},
        },
    )


def _alerting(settings: Settings) -> dg.DefaultSensorStatus:
    alerts = settings.operations.alerts
    configured = alerts.webhook_url or (alerts.smtp_host and alerts.email_to)
    return dg.DefaultSensorStatus.RUNNING if configured else dg.DefaultSensorStatus.STOPPED


def build_operations_defs(settings: Settings) -> dg.Definitions:
    ops = settings.operations
    reports = settings.root / "reports" / "operations"

    @dg.asset(
        name="cost_report",
        group_name=GROUP,
        code_version=code_version([cost_report, step_costs, folder_sizes, plot_cost]),
        kinds={"polars"},
        description="Cost per asset, per spec and per day from the resource_usage table and the "
        "lake's size, at the configured prices (operations.prices); trend and plots.",
    )
    def cost_report_asset(context: dg.AssetExecutionContext) -> dg.MaterializeResult:
        store = operations_store(ops, settings.root)
        report = cost_report(store.usage(), folder_sizes(settings.lake_dir), ops.prices)
        reports.mkdir(parents=True, exist_ok=True)
        for name in ("by_asset", "by_spec", "by_day", "storage"):
            getattr(report, name).write_csv(reports / f"cost_{name}.csv")
        plot = plot_cost(report, reports / "cost.png")
        return dg.MaterializeResult(
            metadata={
                "total_cost": round(report.total, 6),
                "steps_measured": report.steps.height,
                "by_asset": dg.MetadataValue.md(
                    report.by_asset.head(20).to_pandas().to_markdown(index=False)
                ),
                "by_spec": dg.MetadataValue.md(report.by_spec.to_pandas().to_markdown(index=False)),
                "path": dg.MetadataValue.path(str(reports)),
                **png_metadata(plot, "cost_plot"),
            }
        )

    @dg.asset(
        name="waste_report",
        group_name=GROUP,
        code_version=code_version([find_waste]),
        kinds={"polars"},
        description="Wasted work with suggestions: re-runs on unchanged inputs, outputs identical "
        "to the previous materialization, idle steps, a saturated training pool, features no "
        "spec reads.",
    )
    def waste_report(context: dg.AssetExecutionContext) -> dg.MaterializeResult:
        findings = find_waste(context.instance, settings)
        reports.mkdir(parents=True, exist_ok=True)
        findings.write_csv(reports / "waste.csv")
        return dg.MaterializeResult(
            metadata={
                "findings": findings.height,
                "by_kind": dg.MetadataValue.json(
                    dict(findings.group_by("kind").len().iter_rows()) if findings.height else {}
                ),
                "table": dg.MetadataValue.md(
                    findings.head(30).to_pandas().to_markdown(index=False)
                    if findings.height
                    else "no waste found"
                ),
            }
        )

    @dg.run_failure_sensor(
        name="run_failure_alert",
        default_status=_alerting(settings),
        description="Sends every failed run to the notifier (operations.alerts).",
    )
    def run_failure_alert(context: dg.RunFailureSensorContext, notifier: Notifier) -> None:
        run = context.dagster_run
        alert = Alert(
            source="run_failure",
            title=f"run {run.run_id[:8]} of {run.job_name} failed",
            body=context.failure_event.message or "run failed",
            details={"run_id": run.run_id, "tags": dict(run.tags)},
        )
        _log_deliveries(context.log, notifier.send(alert))

    @dg.sensor(
        name="check_alerts",
        minimum_interval_seconds=60,
        default_status=_alerting(settings),
        description="Alerts on failed ERROR-severity asset checks and on drift and decay breaches.",
    )
    def check_alerts(context: dg.SensorEvaluationContext, notifier: Notifier) -> dg.SkipReason:
        after = int(context.cursor) if context.cursor else 0
        newest, sent = after, 0
        storage = context.instance.event_log_storage
        for check in sorted(context.repository_def.asset_graph.asset_check_keys, key=str):
            history = storage.get_asset_check_execution_history(
                check, limit=HISTORY, status={AssetCheckExecutionRecordStatus.FAILED}
            )
            for record in sorted((r for r in history if r.id > after), key=lambda r: r.id):
                newest = max(newest, record.id)
                event = record.event.dagster_event if record.event else None
                if event is None:
                    continue
                alert = check_alert(event.event_specific_data)
                if alert is not None:
                    _log_deliveries(context.log, notifier.send(alert))
                    sent += 1
        context.update_cursor(str(newest))
        return dg.SkipReason(f"{sent} alert(s) sent")

    @dg.sensor(
        name="budget_guard",
        minimum_interval_seconds=300,
        default_status=dg.DefaultSensorStatus.RUNNING
        if ops.budget.monthly is not None
        else dg.DefaultSensorStatus.STOPPED,
        description="Past operations.budget.threshold of the monthly budget, holds queued "
        "non-critical runs (tuning, backfills, explanations) and alerts; releases them when the "
        "month resets or the budget is raised. Every hold and release goes to budget_audit.",
    )
    def budget_guard(context: dg.SensorEvaluationContext, notifier: Notifier) -> dg.SkipReason:
        store = operations_store(ops, settings.root)
        stored = int(folder_sizes(settings.lake_dir).get_column("bytes").sum())
        status = budget_status(
            store.usage(), stored, ops.prices, ops.budget, datetime.now(UTC).date()
        )
        queued = context.instance.get_runs(
            filters=dg.RunsFilter(statuses=[dg.DagsterRunStatus.QUEUED])
        )
        plan = plan_guard(status, [(r.run_id, dict(r.tags)) for r in queued], ops.budget)
        moves = [(r, "hold", HELD) for r in plan.hold]
        moves += [(r, "release", RELEASED) for r in plan.release]
        for run_id, action, tag in moves:
            context.instance.add_run_tags(run_id, {BUDGET_TAG: tag})
            store.record_budget(
                run_id, action, status.month, status.spent, status.budget, status.describe()
            )
        if plan.hold:
            alert = Alert(
                source="budget",
                title=f"budget: {len(plan.hold)} non-critical run(s) held",
                body=status.describe(),
                severity="warning",
                details={"held": plan.hold},
            )
            _log_deliveries(context.log, notifier.send(alert))
        return dg.SkipReason(
            f"{status.describe()}; held {len(plan.hold)}, released {len(plan.release)}"
        )

    return dg.Definitions(
        assets=[cost_report_asset, waste_report],
        sensors=[run_failure_alert, check_alerts, budget_guard],
        resources={
            "notifier": notifier_resource(settings),
            STORE_PARAM: OperationsStoreResource(url=operations_url(ops, settings.root)),
        },
    )
