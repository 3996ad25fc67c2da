"""The lake and the Qlib provider as they were at a point in time, from the kept versions.

A restore into a folder writes a home-shaped tree there (``lake/`` and ``qlib_data/``), so the
folder can serve as ``QLIB_ASSETS_HOME`` for reading. An in-place restore writes the old bytes
as new versions (and tombstones for partitions that did not exist yet), so every newer version
stays in the history and can itself be restored; it is recorded in the restore audit table.
"""

import shutil
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date, datetime
from pathlib import Path

from qlib_assets.market.raw_bars import ASSET, SPANS, update_spans
from qlib_assets.storage.atomic import atomic_path, sha256_file
from qlib_assets.storage.lake import Lake
from qlib_assets.storage.qlib_bin import QlibProviderWriter
from qlib_assets.storage.versions import PartitionVersion, from_ns, to_ns

Progress = Callable[[int, int], None]


class RestoreError(ValueError):
    """A restore that cannot be done as asked; nothing was changed."""


@dataclass(frozen=True)
class RestorePlan:
    as_of: datetime
    versions: tuple[PartitionVersion, ...]

    def assets(self) -> dict[str, int]:
        counts: dict[str, int] = {}
        for version in self.versions:
            counts[version.asset] = counts.get(version.asset, 0) + 1
        return dict(sorted(counts.items()))


@dataclass(frozen=True)
class RestoreResult:
    as_of: datetime
    target: Path
    partitions: dict[str, int]
    changed: int
    provider_sessions: int


def _ignore(done: int, total: int) -> None:
    return None


def adopt_untracked(lake: Lake) -> int:
    """Record lake files the index does not know (written before versioning, or a crash)."""
    adopted = 0
    for asset in lake.assets():
        latest = lake.versions.latest(asset)
        for day in lake.days(asset):
            target = lake.path(asset, day)
            adopted += lake.versions.keep_existing(asset, day, target, latest.get(day))
    return adopted


def plan_restore(lake: Lake, as_of: datetime) -> RestorePlan:
    """Which version of which partition was current at ``as_of``; an error before the first."""
    store = lake.versions
    first = store.first_written_ns()
    if first is None:
        raise RestoreError(f"{lake.root}: the lake has no recorded versions to restore from")
    as_of_ns = to_ns(as_of)
    if as_of_ns < first:
        raise RestoreError(
            f"{as_of.isoformat()} is before the first recorded version ({from_ns(first)})"
        )
    versions = store.as_of(as_of_ns)
    for version in versions:
        store.open_version(version)
    return RestorePlan(as_of, tuple(versions))


def _check_empty(target: Path) -> None:
    if target.exists() and (not target.is_dir() or any(target.iterdir())):
        raise RestoreError(f"{target}: the restore target exists and is not an empty folder")


def _copy_atomic(source: Path, target: Path) -> None:
    with atomic_path(target) as tmp:
        shutil.copyfile(source, tmp)


def _rebuild_provider(lake: Lake, qlib_dir: Path, calendar: str) -> int:
    """The provider from the lake's raw_bars with our writer; 0 when there are no raw_bars."""
    days = lake.days(ASSET)
    if not days:
        return 0
    writer = QlibProviderWriter(qlib_dir, calendar)
    writer.rebuild(lake.read_days(ASSET, days), days)
    return len(writer.sessions())


def rebuild_spans(lake: Lake) -> None:
    """Each instrument's first and last session, from the lake's raw_bars."""
    (lake.root / "_meta" / f"{SPANS}.parquet").unlink(missing_ok=True)
    days = lake.days(ASSET)
    if days:
        update_spans(lake, lake.read_days(ASSET, days))


def restore_to(
    lake: Lake,
    as_of: datetime,
    target: Path,
    calendar: str,
    progress: Progress = _ignore,
    actor: str = "restore",
    reason: str = "",
) -> RestoreResult:
    """Write the lake as of ``as_of`` to ``target/lake`` and its provider to
    ``target/qlib_data``. ``target`` must not exist or be empty. Recorded in the audit too."""
    _check_empty(target)
    adopt_untracked(lake)
    plan = plan_restore(lake, as_of)
    store = lake.versions
    restored = Lake(target / "lake")
    total = len(plan.versions)
    for done, version in enumerate(plan.versions, 1):
        destination = restored.path(version.asset, version.day)
        source = store.open_version(version)
        _copy_atomic(source, destination)
        if sha256_file(destination) != version.sha256:
            raise RestoreError(f"{source}: kept bytes do not match SHA-256 {version.sha256}")
        progress(done, total)
    rebuild_spans(restored)
    sessions = _rebuild_provider(restored, target / "qlib_data", calendar)
    store.record_restore(to_ns(as_of), target, False, actor, reason, total)
    return RestoreResult(as_of, target, plan.assets(), total, sessions)


def restore_in_place(
    lake: Lake,
    as_of: datetime,
    qlib_dir: Path,
    calendar: str,
    actor: str,
    reason: str,
    progress: Progress = _ignore,
) -> RestoreResult:
    """Make the lake what it was at ``as_of``: changed partitions get their old bytes as a new
    version by run ``restore:<as_of>``, partitions created later are removed (a tombstone keeps
    their versions); then the provider is rebuilt. Audited with ``actor`` and ``reason``."""
    if not reason.strip():
        raise RestoreError("an in-place restore needs a reason (it is audited)")
    adopt_untracked(lake)
    plan = plan_restore(lake, as_of)
    store = lake.versions
    wanted = {(v.asset, v.day): v for v in plan.versions}
    present = {
        (asset, day): version
        for asset in store.assets()
        for day, version in store.latest(asset).items()
        if not version.deleted
    }
    run = f"restore:{as_of.isoformat()}"
    changed = [k for k, v in wanted.items() if k not in present or present[k].sha256 != v.sha256]
    removed = [k for k in present if k not in wanted]
    total = len(changed) + len(removed)
    written: list[tuple[str, date, str, int]] = []
    for done, key in enumerate(changed, 1):
        version = wanted[key]
        store.open_version(version)
        store.link_written(lake.path(*key), version.sha256)
        written.append((*key, version.sha256, version.size))
        progress(done, total)
    for done, key in enumerate(removed, len(changed) + 1):
        lake.path(*key).unlink(missing_ok=True)
        written.append((*key, "", 0))
        progress(done, total)
    store.record(written, run, present)
    rebuild_spans(lake)
    sessions = _rebuild_provider(lake, qlib_dir, calendar)
    store.record_restore(to_ns(as_of), lake.root, True, actor, reason, total)
    return RestoreResult(as_of, lake.root, plan.assets(), total, sessions)
