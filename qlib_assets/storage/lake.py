"""The data lake: one Parquet file per (asset, session), read back as one frame for a range."""

from collections.abc import Iterable
from datetime import date
from pathlib import Path

import polars as pl

from qlib_assets.storage.atomic import write_parquet_atomic


class Lake:
    """Partitioned Parquet under ``root/<asset>/<YYYY-MM-DD>.parquet``."""

    def __init__(self, root: Path) -> None:
        self.root = root

    def path(self, asset: str, day: date) -> Path:
        return self.root / asset / f"{day.isoformat()}.parquet"

    def exists(self, asset: str, day: date) -> bool:
        return self.path(asset, day).is_file()

    def days(self, asset: str) -> list[date]:
        folder = self.root / asset
        if not folder.is_dir():
            return []
        return sorted(date.fromisoformat(p.stem) for p in folder.glob("*.parquet"))

    def write_day(self, asset: str, day: date, frame: pl.DataFrame) -> str:
        """Write one session's frame atomically; return its SHA-256."""
        return write_parquet_atomic(frame, self.path(asset, day))

    def write_days(
        self, asset: str, frame: pl.DataFrame, days: Iterable[date], date_col: str = "date"
    ) -> dict[date, str]:
        """Split ``frame`` by ``date_col`` and write one file per requested day.

        A requested day with no rows is written as an empty file with the frame's schema, so a
        partition that materialized always has its file.
        """
        parts = {key[0]: part for key, part in frame.partition_by(date_col, as_dict=True).items()}
        return {
            day: self.write_day(asset, day, parts.get(day, frame.clear())) for day in sorted(days)
        }

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
