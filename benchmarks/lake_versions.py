"""What keeping every partition version costs a lake write, against the plain atomic write.

Usage: .venv/bin/python benchmarks/lake_versions.py [--sessions 1000] [--instruments 300]

Same frames, same process, three writes, each timed for the plain per-session atomic Parquet
write (the lake before versions: ``write_parquet_atomic``) and for ``Lake.write_days`` (which
also hard-links each file into the object store and indexes the batch in one SQLite
transaction):

1. first write of ``--sessions`` sessions (new partitions);
2. rewrite of every session with changed content (the old bytes are kept);
3. the daily path: one new session appended, median of 20.

Prints seconds and the ratio versioned / plain, and the bytes the object store holds beyond
the lake itself (superseded versions only: current versions are hard links).
"""

import qlib_assets  # noqa: F401, I001 (first: it sets polars' allocator options)
import argparse
import statistics
import tempfile
import time
from collections.abc import Callable
from datetime import date, timedelta
from pathlib import Path

import numpy as np
import polars as pl

from qlib_assets.storage.atomic import write_parquet_atomic
from qlib_assets.storage.lake import Lake

FIELDS = ("open", "high", "low", "close", "volume", "amount", "vwap", "factor")


def _bars(sessions: int, instruments: int, seed: int) -> tuple[pl.DataFrame, list[date]]:
    days = [date(2020, 1, 1) + timedelta(days=i) for i in range(sessions)]
    rng = np.random.default_rng(seed)
    rows = sessions * instruments
    frame = pl.DataFrame(
        {
            "instrument": np.tile([f"SH{600000 + i}" for i in range(instruments)], sessions),
            "date": np.repeat(np.array(days, dtype="datetime64[D]"), instruments),
            **{name: rng.uniform(1, 100, rows) for name in FIELDS},
        }
    ).with_columns(pl.col("date").cast(pl.Date))
    return frame, days


def _plain(root: Path, frame: pl.DataFrame, days: list[date]) -> None:
    parts = {k[0]: p for k, p in frame.partition_by("date", as_dict=True).items()}
    for day in days:
        write_parquet_atomic(parts[day], root / "raw_bars" / f"{day.isoformat()}.parquet")


def _timed(work: Callable[[], object]) -> float:
    started = time.perf_counter()
    work()
    return time.perf_counter() - started


def _row(label: str, plain: float, versioned: float) -> None:
    ratio = versioned / plain
    print(f"{label:<34} plain {plain:8.4f}s  versioned {versioned:8.4f}s  x{ratio:5.2f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--sessions", type=int, default=1000)
    parser.add_argument("--instruments", type=int, default=300)
    args = parser.parse_args()
    first, days = _bars(args.sessions, args.instruments, seed=1)
    second, _ = _bars(args.sessions, args.instruments, seed=2)
    extra, extra_days = _bars(args.sessions + 20, args.instruments, seed=3)
    extra_days = extra_days[args.sessions :]
    print(f"{args.sessions} sessions x {args.instruments} instruments ({first.height:,} rows)")
    with tempfile.TemporaryDirectory(prefix="bench_versions_") as scratch:
        plain_root, lake = Path(scratch) / "plain", Lake(Path(scratch) / "versioned")
        _row(
            f"first write of {args.sessions} sessions",
            _timed(lambda: _plain(plain_root, first, days)),
            _timed(lambda: lake.write_days("raw_bars", first, days)),
        )
        _row(
            f"rewrite of {args.sessions} sessions",
            _timed(lambda: _plain(plain_root, second, days)),
            _timed(lambda: lake.write_days("raw_bars", second, days)),
        )
        plain_s, versioned_s = [], []
        for day in extra_days:
            part = extra.filter(pl.col("date") == day)
            plain_s.append(_timed(lambda p=part, d=day: _plain(plain_root, p, [d])))
            versioned_s.append(_timed(lambda p=part, d=day: lake.write_days("raw_bars", p, [d])))
        _row(
            "daily append, one session (median)",
            statistics.median(plain_s),
            statistics.median(versioned_s),
        )
        superseded, total = lake.versions.usage()
        lake_bytes = sum(p.stat().st_size for p in (lake.root / "raw_bars").glob("*.parquet"))
        print(
            f"lake {lake_bytes / 1e6:.1f} MB; object store {total / 1e6:.1f} MB of which "
            f"{superseded / 1e6:.1f} MB superseded versions (the rest are hard links of the lake)"
        )


if __name__ == "__main__":
    main()
