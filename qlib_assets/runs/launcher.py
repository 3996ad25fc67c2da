"""Dagster's default run launcher, plus the worker health check its run monitoring needs.

``DefaultRunLauncher`` cannot tell Dagster's run monitoring whether a run worker is alive, so a
run whose worker was killed stays STARTED forever. With this launcher the monitoring daemon
marks it failed (then ``run_retries`` re-executes it and the daemon frees its pool slots).
"""

import dagster as dg
from dagster._core.launcher.base import CheckRunHealthResult, WorkerStatus

from qlib_assets.runs.health import run_worker, worker_alive


class MonitoredRunLauncher(dg.DefaultRunLauncher):
    @property
    def supports_check_run_worker_health(self) -> bool:
        return True

    def check_run_worker_health(self, run: dg.DagsterRun) -> CheckRunHealthResult:
        worker = run_worker(self._instance, run)
        if worker is None:
            # Dagster's monitoring fails a run on any status but RUNNING or SUCCESS; a worker
            # that has not recorded its pid yet is covered by ``start_timeout_seconds``.
            return CheckRunHealthResult(WorkerStatus.RUNNING, "no worker pid recorded yet")
        if worker_alive(worker):
            return CheckRunHealthResult(WorkerStatus.RUNNING)
        return CheckRunHealthResult(WorkerStatus.FAILED, f"run worker process {worker.pid} is gone")
