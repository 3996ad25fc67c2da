"""The budget guard holds queued non-critical runs past the threshold, alerts, audits, releases."""

from pathlib import Path

import dagster as dg
import pytest
import yaml
from dagster._core.remote_origin import (
    InProcessCodeLocationOrigin,
    RemoteJobOrigin,
    RemoteRepositoryOrigin,
)
from dagster._core.test_utils import create_run_for_test
from dagster._core.types.loadable_target_origin import LoadableTargetOrigin
from dagster._utils.tags import TagConcurrencyLimitsCounter

from qlib_assets.defs.operations import build_operations_defs, notifier_resource
from qlib_assets.operations.accounting import ResourceUsage
from qlib_assets.operations.budget import BUDGET_TAG, HELD, RELEASED
from qlib_assets.operations.config import (
    AlertSettings,
    BudgetSettings,
    OperationsSettings,
    Prices,
)
from qlib_assets.operations.deployment import INSTANCE_FILES
from qlib_assets.operations.store import StepIdentity, operations_store
from qlib_assets.settings import Settings
from qlib_assets_tests.operations.conftest import Inbox


@dg.op
def noop() -> None:
    pass


@dg.job
def some_job() -> None:
    noop()


RUNS = {
    "daily": {},
    "tuning": {"qlib_assets/kind": "tuning"},
    "backfill": {"dagster/backfill": "abcd"},
    "explain": {"qlib_assets/kind": "explanation"},
}


def _settings(tmp_path: Path, monthly: float, webhook: Inbox) -> Settings:
    ops = OperationsSettings(
        prices=Prices(cpu_hour=1.0, gb_hour=0.0, storage_gb_month=0.0),
        budget=BudgetSettings(monthly=monthly, threshold=0.8),
        alerts=AlertSettings(webhook_url=webhook.url),
    )
    return Settings(home=tmp_path / "home", operations=ops)


def _evaluate(settings: Settings, instance: dg.DagsterInstance) -> str:
    sensor = build_operations_defs(settings).resolve_sensor_def("budget_guard")
    context = dg.build_sensor_context(
        instance=instance, resources={"notifier": notifier_resource(settings)}
    )
    result = sensor(context)
    return str(result.skip_message)


def test_hold_alert_audit_and_release(tmp_path: Path, webhook: Inbox) -> None:
    tight = _settings(tmp_path, monthly=1.0, webhook=webhook)
    store = operations_store(tight.operations, tight.root)
    # 54 CPU-minutes at 1 per CPU-hour: 0.9 of a budget of 1, past the 0.8 threshold.
    store.record_usage(
        StepIdentity(run_id="r0", step_key="model", asset="model_x"),
        ResourceUsage(cpu_seconds=3240, peak_memory_mb=100, wall_seconds=3300),
    )
    with dg.instance_for_test() as instance:
        origin = RemoteJobOrigin(
            RemoteRepositoryOrigin(
                InProcessCodeLocationOrigin(LoadableTargetOrigin(python_file=__file__)),
                "__repository__",
            ),
            "some_job",
        )
        runs = {
            name: create_run_for_test(
                instance,
                job_name="some_job",
                status=dg.DagsterRunStatus.QUEUED,
                tags=tags,
                remote_job_origin=origin,
            ).run_id
            for name, tags in RUNS.items()
        }
        message = _evaluate(tight, instance)
        assert "held 3" in message
        tags = {name: instance.get_run_by_id(run).tags for name, run in runs.items()}
        assert BUDGET_TAG not in tags["daily"]
        assert {tags[n][BUDGET_TAG] for n in ("tuning", "backfill", "explain")} == {HELD}
        assert "held 0" in _evaluate(tight, instance)  # already held: no second hold row
        assert [a["source"] for a in webhook.received] == ["budget"]

        raised = _settings(tmp_path, monthly=10.0, webhook=webhook)
        assert "released 3" in _evaluate(raised, instance)
        released = {instance.get_run_by_id(runs[n]).tags[BUDGET_TAG] for n in RUNS if n != "daily"}
        assert released == {RELEASED}

    events = store.budget_events()
    assert [e.action for e in events] == ["hold"] * 3 + ["release"] * 3
    assert events[0].spent == pytest.approx(0.9, rel=1e-3)
    assert events[0].budget == 1.0 and events[-1].budget == 10.0
    assert len(webhook.received) == 1


@pytest.mark.parametrize("instance_name", ["embedded", "postgres"])
def test_instance_run_queue_admits_no_held_run(instance_name: str) -> None:
    config = yaml.safe_load(INSTANCE_FILES[instance_name].read_text())
    limits = config["concurrency"]["runs"]["tag_concurrency_limits"]
    counter = TagConcurrencyLimitsCounter(limits, [])
    with dg.instance_for_test() as instance:
        held = instance.create_run_for_job(some_job, tags={BUDGET_TAG: HELD})
        released = instance.create_run_for_job(some_job, tags={BUDGET_TAG: RELEASED})
        assert counter.is_blocked(held)
        assert not counter.is_blocked(released)
