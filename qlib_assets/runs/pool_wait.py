"""A run waiting for a pool slot sleeps and stays interruptible (a fix for Dagster 1.13).

Dagster 1.13's ``InstanceConcurrencyContext.interval_to_next_pending_claim_check`` returns
``min([0, *intervals])``, never more than zero, so ``ActiveExecution.sleep_til_ready`` never
sleeps: a run blocked on the ``qlib_provider`` pool spins a core for as long as the slot is held
(upstream: dagster-io/dagster#20367, closed unmerged). Its executor loop also never looks at the
SIGTERM/SIGINT that Dagster captured while it waits, so the process cannot be stopped. The
replacement sleeps until the next claim check (at most a second, so an interrupt is seen within
a second; the claim itself still backs off as Dagster configures it) and turns a captured
interrupt into the interruption Dagster raises inside a step.
"""

import time

from dagster._core.errors import DagsterExecutionInterruptedError
from dagster._core.execution.plan.instance_concurrency_context import InstanceConcurrencyContext
from dagster._utils.interrupts import pop_captured_interrupt

_LONGEST_SLEEP = 1.0


def _interval_to_next_pending_claim_check(self: InstanceConcurrencyContext) -> float:
    if pop_captured_interrupt():
        raise DagsterExecutionInterruptedError("interrupted while waiting for a pool slot")
    timeouts = self._pending_timeouts
    if not self._pending_claims or not timeouts:
        return 0.0
    now = time.time()
    return min(_LONGEST_SLEEP, max(0.0, min(ready - now for ready in timeouts.values())))


def install_pool_wait_fix() -> None:
    """Patch this process's Dagster; idempotent."""
    InstanceConcurrencyContext.interval_to_next_pending_claim_check = (  # type: ignore[method-assign]
        _interval_to_next_pending_claim_check
    )
