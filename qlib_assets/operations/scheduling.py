"""Training queued by priority: one number per spec, read by every queue it passes."""

from qlib_assets.operations.config import OperationsSettings

MAX_PRIORITY = 10


def training_priority_tags(ops: OperationsSettings, spec: str) -> dict[str, str]:
    """Tags that order a spec's training: ``dagster/priority`` for the run queue (on runs) and
    the multiprocess executor (on steps), ``dagster-celery/priority`` for Celery's queue."""
    priority = ops.training_priority.get(spec, 0)
    if not 0 <= priority <= MAX_PRIORITY:
        raise ValueError(
            f"operations.training_priority[{spec!r}] = {priority}: must be 0..{MAX_PRIORITY}"
        )
    return {"dagster/priority": str(priority), "dagster-celery/priority": str(priority)}
