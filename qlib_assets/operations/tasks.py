"""Task statuses in Qlib's TaskManager words, read from the Dagster instance.

Each rolling window of a model asset is one task: ``waiting`` (not started, or queued),
``running``, ``done`` (materialized) or ``failed``. A set of windows (a rolling backfill) is
``done`` when every window is done, ``part_done`` when some are done and the rest failed,
``running`` while any runs, ``waiting`` otherwise. Dagster's partition status is the source:
there is no second task pool to keep in sync (Qlib needs MongoDB for that).
"""

from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import dagster as dg

WAITING, RUNNING, DONE, PART_DONE, FAILED = "waiting", "running", "done", "part_done", "failed"
_FROM_DAGSTER = {
    dg.AssetPartitionStatus.MATERIALIZED: DONE,
    dg.AssetPartitionStatus.IN_PROGRESS: RUNNING,
    dg.AssetPartitionStatus.FAILED: FAILED,
}


@dataclass(frozen=True)
class TaskStatuses:
    asset: str
    windows: dict[str, str]  # window key -> waiting / running / done / failed

    @property
    def overall(self) -> str:
        return overall_status(self.windows.values())

    def counts(self) -> dict[str, int]:
        return dict(Counter(self.windows.values()))


def overall_status(statuses: Iterable[str]) -> str:
    values = set(statuses)
    if values == {DONE}:
        return DONE
    if RUNNING in values or (WAITING in values and values & {DONE, FAILED}):
        return RUNNING
    if values <= {WAITING}:
        return WAITING
    return PART_DONE if DONE in values else FAILED


def window_statuses(
    instance: dg.DagsterInstance,
    asset: str,
    partitions: dg.PartitionsDefinition,
    keys: Sequence[str] | None = None,
) -> TaskStatuses:
    keys = list(keys) if keys is not None else list(partitions.get_partition_keys())
    found = instance.get_status_by_partition(dg.AssetKey(asset), keys, partitions) or {}
    statuses = {}
    for key in keys:
        status = found.get(key)
        statuses[key] = WAITING if status is None else _FROM_DAGSTER.get(status, WAITING)
    return TaskStatuses(asset, statuses)
