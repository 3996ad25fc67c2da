"""Dead runs: a run Dagster still shows in progress whose worker process is gone.

A run worker killed by SIGKILL, the OOM killer or a machine restart never reports its end: the
run stays STARTED and keeps its pool slots, so every later run of that pool waits forever. A
worker is identified by the pid Dagster records when the run's process starts (or, for the
CLI's in-process runs, by the pid tag set before the run starts); it is dead when no process
has that pid, or the process with it started after the run did (the pid was reused, e.g. after
a restart). Runs on this machine only: the embedded instance runs every worker locally.
"""

from collections.abc import Iterable
from dataclasses import dataclass

import dagster as dg
import psutil
from dagster._core.events import DagsterEventType
from dagster._core.storage.dagster_run import DagsterRunStatus, RunsFilter

PID_TAG = "qlib_assets/pid"
_IN_PROGRESS = [DagsterRunStatus.STARTING, DagsterRunStatus.STARTED, DagsterRunStatus.CANCELING]
# Process start times come from /proc in clock ticks: this much slack.
_START_SLACK_SECONDS = 2.0


@dataclass(frozen=True)
class Recovery:
    failed_runs: list[str]
    freed_runs: list[str]


@dataclass(frozen=True)
class Worker:
    """A run's worker process: its pid and a moment at which it was known to be running."""

    pid: int
    seen_at: float


def run_worker(instance: dg.DagsterInstance, run: dg.DagsterRun) -> Worker | None:
    """The run's worker, or None when it has not been recorded (yet)."""
    if PID_TAG in run.tags:  # set by the CLI's own process before it creates the run
        run_record = instance.get_run_record_by_id(run.run_id)
        created = run_record.create_timestamp.timestamp() if run_record is not None else 0.0
        return Worker(int(run.tags[PID_TAG]), created)
    for record in instance.all_logs(run.run_id, of_type=DagsterEventType.ENGINE_EVENT):
        event = record.dagster_event
        data = event.engine_event_data if event is not None else None
        if data is not None and "pid" in data.metadata:
            return Worker(int(str(data.metadata["pid"].value)), record.timestamp)
    return None


def worker_pid(instance: dg.DagsterInstance, run: dg.DagsterRun) -> int | None:
    worker = run_worker(instance, run)
    return None if worker is None else worker.pid


def worker_alive(worker: Worker) -> bool:
    """Whether the worker's pid exists and its process is not younger than the worker (a pid
    reused after the worker died, e.g. after a restart)."""
    try:
        started = psutil.Process(worker.pid).create_time()
    except (psutil.NoSuchProcess, psutil.ZombieProcess):
        return False
    except psutil.AccessDenied:
        return True
    return started <= worker.seen_at + _START_SLACK_SECONDS


def dead_runs(instance: dg.DagsterInstance) -> list[dg.DagsterRun]:
    """Runs in progress whose recorded worker is gone (runs with no recorded pid are skipped)."""
    dead = []
    for record in instance.get_run_records(RunsFilter(statuses=_IN_PROGRESS)):
        worker = run_worker(instance, record.dagster_run)
        if worker is not None and not worker_alive(worker):
            dead.append(record.dagster_run)
    return dead


def recover_dead_runs(instance: dg.DagsterInstance) -> Recovery:
    """Mark dead runs failed and free every pool slot held by a run that is no longer running.

    Dagster's daemon frees the slots of finished runs (``free_slots_after_run_end_seconds``);
    the CLI's in-process runs have no daemon, so this does it too.
    """
    failed = []
    for run in dead_runs(instance):
        instance.report_run_failed(
            run,
            f"The run's worker process (pid {worker_pid(instance, run)}) is gone: it was killed "
            "or the machine restarted. Marked failed so that its pool slots are freed.",
        )
        failed.append(run.run_id)
    return Recovery(failed, free_finished_run_slots(instance))


def free_finished_run_slots(instance: dg.DagsterInstance) -> list[str]:
    storage = instance.event_log_storage
    if not storage.supports_global_concurrency_limits:
        return []
    holders = storage.get_concurrency_run_ids()
    if not holders:
        return []
    recorded = {r.run_id for r in instance.get_runs(RunsFilter(run_ids=list(holders)))}
    live = {
        r.run_id
        for r in instance.get_runs(RunsFilter(run_ids=list(holders), statuses=_IN_PROGRESS))
    }
    # A holder with no run record at all (deleted run) holds its slots just as uselessly.
    stale = sorted((set(holders) - recorded) | (recorded - live))
    for run_id in stale:
        storage.free_concurrency_slots_for_run(run_id)
    return stale


def pid_tags(pid: int) -> dict[str, str]:
    return {PID_TAG: str(pid)}


def describe(recovery: Recovery) -> Iterable[str]:
    for run_id in recovery.failed_runs:
        yield f"run {run_id}: worker gone, marked failed"
    for run_id in recovery.freed_runs:
        yield f"run {run_id}: pool slots freed"
