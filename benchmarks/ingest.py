"""Ingest throughput (raw_bars Parquet + Qlib provider) and the cost of a one-session append.

Usage: .venv/bin/python benchmarks/ingest.py [--instruments 5000] [--years 10] [--appends 5]

1. One year of bars for ``--instruments`` instruments: rows/s of writing raw_bars as one Parquet
   file per session (``Lake.write_days``) and of syncing them into an empty Qlib provider.
2. ``--years`` of bars: rebuild the provider from scratch, then append the held-out last
   ``--appends`` sessions one at a time and rewrite the last one; prints rebuild / append twice:
   for the writer alone (bars already in memory) and for what the ``qlib_dataset`` asset does
   (``sync_provider``: read the sessions' raw_bars Parquet from the lake, then write).
   Each timed write starts after ``os.sync()``, so none pays for flushing an earlier one's
   pages, as in production, where the daily append comes a day after the previous write.
"""

import qlib_assets  # noqa: F401, I001 (first: it sets polars' allocator options)
import argparse
import os
import statistics
import tempfile
import time
from datetime import date
from pathlib import Path

import polars as pl

from qlib_assets.market.synthetic import MarketSpec, generate_market
from qlib_assets.market.raw_bars import ASSET
from qlib_assets.storage.lake import Lake
from qlib_assets.storage.qlib_bin import QlibProviderWriter

LAST_DAY = date(2024, 12, 31)


def _bars(instruments: int, years: int) -> tuple[pl.DataFrame, list[date]]:
    started = time.perf_counter()
    spec = MarketSpec(
        instruments=instruments, start=date(LAST_DAY.year - years + 1, 1, 1), end=LAST_DAY, seed=7
    )
    market = generate_market(spec)
    print(
        f"generated {market.bars.height:,} bars ({instruments:,} instruments x "
        f"{len(market.sessions)} sessions) in {time.perf_counter() - started:.1f}s"
    )
    return market.bars, list(market.sessions)


def _throughput(instruments: int, work: Path) -> None:
    bars, days = _bars(instruments, 1)
    started = time.perf_counter()
    Lake(work / "lake").write_days("raw_bars", bars, days)
    lake_s = time.perf_counter() - started
    result = QlibProviderWriter(work / "qlib_1y").sync(bars, days)
    rows = bars.height
    print(f"raw_bars Parquet, one file per session: {lake_s:7.2f}s  {rows / lake_s:12,.0f} rows/s")
    print(
        f"qlib provider sync (empty -> 1 year):    {result.elapsed_seconds:7.2f}s  "
        f"{rows / result.elapsed_seconds:12,.0f} rows/s  ({result.files_written:,} files)"
    )
    both = lake_s + result.elapsed_seconds
    print(f"both:                                    {both:7.2f}s  {rows / both:12,.0f} rows/s")


def _append_vs_rebuild(instruments: int, years: int, appends: int, work: Path) -> None:
    bars, days = _bars(instruments, years)
    held_out = days[-appends:]
    base_days = days[:-appends]
    lake = Lake(work / "lake_history")
    lake.write_days(ASSET, bars, days)
    base = bars.filter(pl.col("date") < held_out[0])
    print(f"{years}-year figures: {len(base_days)} sessions, {base.height:,} bars; load {_load()}")
    print(f"{'':44}{'writer only':>14}{'with raw_bars read':>20}")

    memory_writer = QlibProviderWriter(work / "qlib_history")
    os.sync()
    rebuild = memory_writer.rebuild(base).elapsed_seconds
    lake_writer = QlibProviderWriter(work / "qlib_history_from_lake")
    os.sync()
    started = time.perf_counter()
    lake_writer.rebuild(lake.read_days(ASSET, base_days))
    lake_rebuild = time.perf_counter() - started
    print(f"{'rebuild the provider from scratch':44}{rebuild:13.2f}s{lake_rebuild:19.2f}s")

    append_times, lake_append_times, files = [], [], 0
    for day in held_out:
        os.sync()
        result = memory_writer.sync(bars.filter(pl.col("date") == day), [day])
        append_times.append(result.elapsed_seconds)
        files = result.files_written
        os.sync()
        started = time.perf_counter()
        lake_writer.sync(lake.read_days(ASSET, [day]), [day])
        lake_append_times.append(time.perf_counter() - started)
    append = statistics.median(append_times)
    lake_append = statistics.median(lake_append_times)
    print(
        f"{f'append one session (median of {appends}, {files:,} files)':44}"
        f"{append * 1000:12.1f}ms{lake_append * 1000:18.1f}ms"
    )
    last = bars.filter(pl.col("date") == held_out[-1])
    os.sync()
    rewrite = memory_writer.sync(last, [held_out[-1]]).elapsed_seconds
    print(f"{'rewrite the last session in place':44}{rewrite * 1000:12.1f}ms")
    print(
        f"{'rebuild / append ratio (goal >= 50x)':44}{rebuild / append:13.1f}x"
        f"{lake_rebuild / lake_append:19.1f}x"
    )
    print(f"{'rebuild / rewrite ratio':44}{rebuild / rewrite:13.1f}x")
    print(f"load average after: {_load()}")


def _load() -> str:
    return " ".join(f"{value:.2f}" for value in os.getloadavg())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--instruments", type=int, default=5000)
    parser.add_argument("--years", type=int, default=10)
    parser.add_argument("--appends", type=int, default=5)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="ingest-bench-") as tmp:
        work = Path(tmp)
        _throughput(args.instruments, work)
        _append_vs_rebuild(args.instruments, args.years, args.appends, work)


if __name__ == "__main__":
    main()
