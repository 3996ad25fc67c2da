"""Dead runs are found by their worker's pid, failed, and their pool slots freed."""

import logging
import os
import subprocess
import sys
import time
from pathlib import Path

import dagster as dg
import psutil
from dagster._core.storage.dagster_run import DagsterRunStatus
from dagster._daemon.monitoring.run_monitoring import monitor_started_run

from qlib_assets.runs.health import Worker, pid_tags, recover_dead_runs, worker_alive
from qlib_assets.runs.launcher import MonitoredRunLauncher

REPO = Path(__file__).resolve().parents[2]


@dg.asset(pool="qlib_provider")
def provider_like() -> None:
    pass


def _dead_pid() -> int:
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    return child.pid


def _started_run(instance: dg.DagsterInstance, pid: int) -> dg.DagsterRun:
    job = dg.Definitions(assets=[provider_like]).resolve_implicit_global_asset_job_def()
    run = instance.create_run_for_job(job, tags=pid_tags(pid))
    instance.handle_new_event(  # the run's worker reports its start, as Dagster's does
        dg.EventLogEntry(
            error_info=None,
            level=logging.DEBUG,
            user_message="",
            run_id=run.run_id,
            timestamp=time.time(),
            dagster_event=dg.DagsterEvent(
                dg.DagsterEventType.RUN_START.value, job_name=run.job_name
            ),
        )
    )
    instance.event_log_storage.set_concurrency_slots("qlib_provider", 1)
    instance.event_log_storage.claim_concurrency_slot("qlib_provider", run.run_id, "provider_like")
    return run


def test_dead_run_is_failed_and_frees_its_slot() -> None:
    with dg.instance_for_test() as instance:
        dead = _started_run(instance, _dead_pid())
        alive = _started_run(instance, os.getpid())
        assert instance.get_run_by_id(dead.run_id).status == DagsterRunStatus.STARTED

        recovery = recover_dead_runs(instance)

        assert recovery.failed_runs == [dead.run_id]
        assert dead.run_id in recovery.freed_runs
        assert instance.get_run_by_id(dead.run_id).status == DagsterRunStatus.FAILURE
        assert instance.get_run_by_id(alive.run_id).status == DagsterRunStatus.STARTED
        assert instance.event_log_storage.get_concurrency_run_ids() == {alive.run_id}
        assert recover_dead_runs(instance).failed_runs == []


def test_reused_pid_counts_as_dead() -> None:
    # A process that started after the run was created cannot be its worker.
    me = psutil.Process().create_time()
    assert worker_alive(Worker(os.getpid(), me + 10))
    assert not worker_alive(Worker(os.getpid(), me - 60))


def test_dagster_run_monitoring_fails_a_dead_run_through_the_launcher() -> None:
    overrides = {
        "run_launcher": {"module": "qlib_assets.runs.launcher", "class": "MonitoredRunLauncher"},
        "run_monitoring": {"enabled": True, "max_resume_run_attempts": 0},
    }
    with dg.instance_for_test(overrides=overrides) as instance:
        assert isinstance(instance.run_launcher, MonitoredRunLauncher)
        dead = _started_run(instance, _dead_pid())
        alive = _started_run(instance, os.getpid())
        for run in (dead, alive):
            record = instance.get_run_record_by_id(run.run_id)
            monitor_started_run(instance, None, record, logging.getLogger("test"))  # type: ignore[arg-type]
        assert instance.get_run_by_id(dead.run_id).status == DagsterRunStatus.FAILURE
        assert instance.get_run_by_id(alive.run_id).status == DagsterRunStatus.STARTED


_BLOCKED = """
import os, signal, sys, threading, time
import dagster as dg
import psutil
from qlib_assets.runs.pool_wait import install_pool_wait_fix

install_pool_wait_fix()

@dg.asset(pool="qlib_provider")
def provider_like() -> None:
    pass

with dg.instance_for_test() as instance:
    instance.event_log_storage.set_concurrency_slots("qlib_provider", 1)
    instance.event_log_storage.claim_concurrency_slot("qlib_provider", "holder", "step")
    me = psutil.Process()
    def interrupt() -> None:
        time.sleep(3)  # the run is waiting for the slot by now
        before = sum(me.cpu_times()[:2])
        time.sleep(3)
        print("cpu_while_blocked", sum(me.cpu_times()[:2]) - before, flush=True)
        os.kill(os.getpid(), signal.SIGTERM)
    threading.Thread(target=interrupt, daemon=True).start()
    job = dg.Definitions(assets=[provider_like]).resolve_implicit_global_asset_job_def()
    result = job.execute_in_process(instance=instance, raise_on_error=False)
    print("success", result.success, flush=True)
"""


def test_run_blocked_on_a_pool_slot_sleeps_and_stops_on_sigterm() -> None:
    done = subprocess.run(
        [sys.executable, "-c", _BLOCKED],
        cwd=REPO,
        env={**os.environ, "PYTHONPATH": str(REPO)},
        capture_output=True,
        text=True,
        timeout=120,
    )
    lines = dict(line.split(" ", 1) for line in done.stdout.splitlines() if " " in line)
    assert float(lines["cpu_while_blocked"]) < 0.5  # a spinning wait burns ~3 s in 3 s
    assert lines["success"] == "False"
