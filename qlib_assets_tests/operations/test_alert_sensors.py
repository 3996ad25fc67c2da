"""The run-failure and check sensors send through the one notifier to real local receivers."""

from pathlib import Path

import dagster as dg

from qlib_assets.defs.operations import build_operations_defs, notifier_resource
from qlib_assets.operations.config import AlertSettings, OperationsSettings
from qlib_assets.settings import Settings
from qlib_assets_tests.operations.conftest import Inbox, MailBox


def _alerting_settings(tmp_path: Path, webhook: Inbox, smtp: MailBox) -> Settings:
    alerts = AlertSettings(
        webhook_url=webhook.url,
        smtp_host="127.0.0.1",
        smtp_port=smtp.port,
        email_to=["ops@example.org"],
    )
    return Settings(home=tmp_path / "home", operations=OperationsSettings(alerts=alerts))


@dg.op
def explode() -> None:
    raise RuntimeError("the step broke")


@dg.job
def breaking_job() -> None:
    explode()


def test_failed_run_alerts_by_webhook_and_email(
    tmp_path: Path, webhook: Inbox, smtp_server: MailBox
) -> None:
    settings = _alerting_settings(tmp_path, webhook, smtp_server)
    defs = build_operations_defs(settings)
    sensor = defs.resolve_sensor_def("run_failure_alert")
    assert sensor.default_status == dg.DefaultSensorStatus.RUNNING
    with dg.instance_for_test() as instance:
        result = breaking_job.execute_in_process(instance=instance, raise_on_error=False)
        assert not result.success
        failure = next(e for e in result.all_events if e.event_type_value == "PIPELINE_FAILURE")
        context = dg.build_run_status_sensor_context(
            sensor_name="run_failure_alert",
            dagster_event=failure,
            dagster_instance=instance,
            dagster_run=result.dagster_run,
            resources={"notifier": notifier_resource(settings)},
        ).for_run_failure()
        sensor(context)
    assert [a["source"] for a in webhook.received] == ["run_failure"]
    assert webhook.received[0]["details"]["run_id"] == result.run_id
    assert "breaking_job" in smtp_server.messages[0]["Subject"]


def _checked_asset(severity: dg.AssetCheckSeverity, passed: bool) -> dg.AssetsDefinition:
    @dg.asset(
        name="performance_decay",
        check_specs=[dg.AssetCheckSpec("ic_decay", asset="performance_decay")],
    )
    def performance_decay() -> dg.MaterializeResult:
        return dg.MaterializeResult(
            check_results=[
                dg.AssetCheckResult(check_name="ic_decay", passed=passed, severity=severity)
            ]
        )

    return performance_decay


def _other_check(severity: dg.AssetCheckSeverity) -> dg.AssetsDefinition:
    @dg.asset(name="raw_bars", check_specs=[dg.AssetCheckSpec("coverage", asset="raw_bars")])
    def raw_bars() -> dg.MaterializeResult:
        return dg.MaterializeResult(
            check_results=[
                dg.AssetCheckResult(check_name="coverage", passed=False, severity=severity)
            ]
        )

    return raw_bars


def test_check_sensor_alerts_on_breaches_and_errors_once(
    tmp_path: Path, webhook: Inbox, smtp_server: MailBox
) -> None:
    settings = _alerting_settings(tmp_path, webhook, smtp_server)
    sensor = build_operations_defs(settings).resolve_sensor_def("check_alerts")
    resources = {"notifier": notifier_resource(settings)}
    graph = dg.Definitions(
        assets=[
            _checked_asset(dg.AssetCheckSeverity.WARN, passed=True),
            _other_check(dg.AssetCheckSeverity.WARN),
        ]
    )
    with dg.instance_for_test() as instance:
        for asset in (
            _checked_asset(dg.AssetCheckSeverity.WARN, passed=True),
            _checked_asset(dg.AssetCheckSeverity.ERROR, passed=False),
            _other_check(dg.AssetCheckSeverity.WARN),
            _other_check(dg.AssetCheckSeverity.ERROR),
        ):
            assert dg.materialize([asset], instance=instance).success
        context = dg.build_sensor_context(instance=instance, resources=resources, definitions=graph)
        sensor(context)
        again = dg.build_sensor_context(
            instance=instance, resources=resources, definitions=graph, cursor=context.cursor
        )
        sensor(again)
    sources = [(a["source"], a["title"]) for a in webhook.received]
    assert sources == [
        ("decay", "check ic_decay of performance_decay failed"),
        ("asset_check", "check coverage of raw_bars failed"),
    ]
    assert len(smtp_server.messages) == 2
