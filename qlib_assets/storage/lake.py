"""The data lake: one Parquet file per (asset, session), read back as one frame for a range.

Every write keeps the partition's previous bytes (``qlib_assets.storage.versions``): callers
write as before and get history, restore and reproduction for free.
"""

from collections.abc import Iterable
from datetime import date
from pathlib import Path

import polars as pl

from qlib_assets.settings import Settings
from qlib_assets.storage.atomic import write_parquet_atomic
from qlib_assets.storage.versions import (
    PartitionVersion,
    Retention,
    VersionStore,
    current_run_id,
)


class Lake:
    """Partitioned Parquet under ``root/<asset>/<YYYY-MM-DD>.parquet``.

    ``run_id``: the run recorded as the writer of new versions (default: the enclosing
    ``writing_run`` block or Dagster run, see ``versions.current_run_id``). ``retention``:
    superseded versions beyond it are pruned after each batch of writes.
    """

    def __init__(
        self, root: Path, run_id: str | None = None, retention: Retention | None = None
    ) -> None:
        self.root = root
        self.run_id = run_id
        self.retention = retention
        self.versions = VersionStore(root)

    def path(self, asset: str, day: date) -> Path:
        return self.root / asset / f"{day.isoformat()}.parquet"

    def exists(self, asset: str, day: date) -> bool:
        return self.path(asset, day).is_file()

    def assets(self) -> list[str]:
        """Folders of partitioned assets (``_meta`` and the version store are not assets)."""
        if not self.root.is_dir():
            return []
        return sorted(p.name for p in self.root.iterdir() if p.is_dir() and p.name[0] not in "_.")

    def days(self, asset: str) -> list[date]:
        folder = self.root / asset
        if not folder.is_dir():
            return []
        return sorted(date.fromisoformat(p.stem) for p in folder.glob("*.parquet"))

    def write_day(self, asset: str, day: date, frame: pl.DataFrame) -> str:
        """Write one session's frame atomically, keeping the bytes it replaces; its SHA-256."""
        return self.write_days(asset, frame, [day], date_col=None)[day]

    def write_days(
        self,
        asset: str,
        frame: pl.DataFrame,
        days: Iterable[date],
        date_col: str | None = "date",
    ) -> dict[date, str]:
        """Split ``frame`` by ``date_col`` and write one file per requested day; the SHA-256s.

        A requested day with no rows is written as an empty file with the frame's schema, so a
        partition that materialized always has its file. ``date_col=None``: ``frame`` is the
        one day's content. The batch's new versions are indexed in one transaction.
        """
        days = sorted(days)
        if date_col is None:
            parts = {day: frame for day in days}
        else:
            parts = {k[0]: p for k, p in frame.partition_by(date_col, as_dict=True).items()}
        latest = self.versions.latest(asset, days)
        hashes: dict[date, str] = {}
        written = []
        for day in days:
            target = self.path(asset, day)
            self.versions.keep_existing(asset, day, target, latest.get(day))
            sha = write_parquet_atomic(parts.get(day, frame.clear()), target)
            self.versions.link_written(target, sha)
            hashes[day] = sha
            written.append((asset, day, sha, target.stat().st_size))
        self.versions.record(
            written, current_run_id(self.run_id), {(asset, d): v for d, v in latest.items()}
        )
        if self.retention is not None:
            self.versions.prune(self.retention)
        return hashes

    def current_versions(self, asset: str) -> dict[date, PartitionVersion]:
        """The version each of ``asset``'s files holds now (files the index lacks are adopted)."""
        latest = self.versions.latest(asset)
        adopted = [
            self.versions.keep_existing(asset, day, self.path(asset, day), latest.get(day))
            for day in self.days(asset)
        ]
        if any(adopted):
            latest = self.versions.latest(asset)
        present = set(self.days(asset))
        return {d: v for d, v in latest.items() if d in present and not v.deleted}

    def read_days(self, asset: str, days: Iterable[date], strict: bool = True) -> pl.DataFrame:
        """Concatenate the files of ``days``; a missing file raises unless ``strict`` is off."""
        paths = []
        for day in days:
            path = self.path(asset, day)
            if path.is_file():
                paths.append(path)
            elif strict:
                raise FileNotFoundError(
                    f"{asset}: partition {day} has not been materialized ({path})"
                )
        if not paths:
            raise FileNotFoundError(f"{asset}: none of the requested partitions exist")
        return pl.read_parquet(paths)


def platform_lake(settings: Settings, run_id: str | None = None) -> Lake:
    """The platform's lake, pruning superseded versions by the settings' retention."""
    kept = settings.versions
    return Lake(settings.lake_dir, run_id, Retention(kept.keep_days, kept.max_bytes))
