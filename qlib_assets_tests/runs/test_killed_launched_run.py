"""A run launched by the landing sensor through Dagster's run launcher is SIGKILLed inside the
provider journal; Dagster's own daemons (run monitoring with our launcher, slot freeing, run
retries, the run queue) fail it, free its slot and redo it, with no human."""

import logging
import os
import signal
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from pathlib import Path

import dagster as dg
import polars as pl
import psutil
import pytest
from dagster._core.events import DagsterEventType
from dagster._core.storage.dagster_run import RunsFilter
from dagster._core.test_utils import create_test_daemon_workspace_context
from dagster._core.workspace.load_target import ModuleTarget
from dagster._daemon.auto_run_reexecution.auto_run_reexecution import (
    consume_new_runs_for_automatic_reexecution,
)
from dagster._daemon.monitoring.concurrency import execute_concurrency_slots_iteration
from dagster._daemon.monitoring.run_monitoring import execute_run_monitoring_iteration
from dagster._daemon.run_coordinator.queued_run_coordinator_daemon import (
    QueuedRunCoordinatorDaemon,
)
from dagster._daemon.sensor import execute_sensor_iteration

from qlib_assets.defs.build import build_definitions
from qlib_assets.instance import prepare_dagster_home
from qlib_assets.orchestration import materialize_range
from qlib_assets.runs.health import worker_pid
from qlib_assets_tests.runs.test_killed_runs import ASSETS, END, START, _home, _tree

REPO = Path(__file__).resolve().parents[2]
LOG = logging.getLogger("test")


def _wait(condition: Callable[[], bool], seconds: float, what: str) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.5)


@contextmanager
def _reaped(instance: dg.DagsterInstance) -> Iterator[None]:
    """Kill the run workers this test leaves running if it fails (one may block on the FIFO)."""
    try:
        yield
    finally:
        for run in instance.get_runs(RunsFilter(statuses=[dg.DagsterRunStatus.STARTED])):
            pid = worker_pid(instance, run)
            if pid is not None and pid != os.getpid():
                with suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)


@pytest.mark.slow
def test_launched_run_killed_in_the_journal_is_failed_freed_and_retried(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    settings = _home(tmp_path / "home")
    for name, value in {
        "QLIB_ASSETS_HOME": str(settings.root),
        "QLIB_ASSETS_START_DATE": START,
        "QLIB_ASSETS_LANDING__SETTLE_SECONDS": "0",
    }.items():
        monkeypatch.setenv(name, value)
    # The first sessions are ingested by hand, without the instrument that lists later.
    files = sorted(settings.landing_dir.glob("*.parquet"))
    newcomer = pl.read_parquet(files[-1]).get_column("instrument")[0]
    for path in files[:4]:
        pl.read_parquet(path).filter(pl.col("instrument") != newcomer).write_parquet(path)
    prepare_dagster_home(settings)
    instance = dg.DagsterInstance.get()
    first = [p.stem.split("_")[-1] for p in files[:4]]
    assert materialize_range(
        build_definitions(settings), instance, ASSETS, first[0], first[-1]
    ).success
    # Opening a FIFO for writing blocks: the run worker appending the newcomer stops inside
    # the provider journal.
    fifo_dir = settings.qlib_data_dir / "features" / newcomer.lower()
    fifo_dir.mkdir(parents=True)
    os.mkfifo(fifo_dir / "close.day.bin")
    target = ModuleTarget("qlib_assets.definitions", "defs", str(REPO), "qlib_assets")
    queue = QueuedRunCoordinatorDaemon(interval_seconds=1)
    with create_test_daemon_workspace_context(target, instance) as context, _reaped(instance):

        def dequeue() -> None:
            list(queue.run_iteration(context))

        list(execute_sensor_iteration(context, LOG, None, None))
        (run,) = instance.get_runs(RunsFilter(tags={"dagster/sensor_name": "landing_sensor"}))
        assert run.tags["dagster/asset_partition_range_start"] == files[4].stem.split("_")[-1]
        dequeue()
        journal = settings.qlib_data_dir / ".journal" / "manifest.json"
        _wait(journal.is_file, 1800, "the run to open the provider journal")
        pid = worker_pid(instance, instance.get_run_by_id(run.run_id))
        assert pid is not None
        # The whole worker dies, as on a restart: the run worker and its step processes (the
        # multiprocess executor writes the provider in a child, which would hold its lock).
        for child in psutil.Process(pid).children(recursive=True):
            child.kill()
        os.kill(pid, signal.SIGKILL)
        time.sleep(1)
        assert instance.get_run_by_id(run.run_id).status == dg.DagsterRunStatus.STARTED
        assert run.run_id in instance.event_log_storage.get_concurrency_run_ids()

        list(execute_run_monitoring_iteration(context, LOG))
        failed = instance.get_run_by_id(run.run_id)
        assert failed.status == dg.DagsterRunStatus.FAILURE
        time.sleep(11)  # free_slots_after_run_end_seconds
        list(execute_concurrency_slots_iteration(context, LOG))
        assert run.run_id not in instance.event_log_storage.get_concurrency_run_ids()

        records = instance.get_run_records(RunsFilter(run_ids=[run.run_id]))
        list(consume_new_runs_for_automatic_reexecution(context, records, LOG))
        retries = [r for r in instance.get_runs() if r.parent_run_id == run.run_id]
        assert len(retries) == 1 and retries[0].parent_run_id == run.run_id
        dequeue()

        def finished() -> bool:
            status = instance.get_run_by_id(retries[0].run_id).status
            return status in (dg.DagsterRunStatus.SUCCESS, dg.DagsterRunStatus.FAILURE)

        _wait(finished, 1800, "the retry to finish")
        assert instance.get_run_by_id(retries[0].run_id).status == dg.DagsterRunStatus.SUCCESS
    assert not journal.exists()
    for asset in ASSETS:
        keys = instance.get_materialized_partitions(dg.AssetKey(asset))
        assert min(keys) == START and max(keys) == END
    lake = {k: v for k, v in _tree(settings.lake_dir).items() if k.startswith("raw_bars/")}
    assert lake and not any(
        e.dagster_event.event_type == DagsterEventType.RUN_FAILURE
        for e in instance.all_logs(retries[0].run_id)
        if e.dagster_event
    )
