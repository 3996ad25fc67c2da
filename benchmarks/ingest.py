"""Ingest throughput (raw_bars Parquet + Qlib provider) and the cost of a one-session append.

Usage: .venv/bin/python benchmarks/ingest.py [--instruments 5000] [--years 10] [--appends 5]

1. One year of bars for ``--instruments`` instruments: rows/s of writing raw_bars as one Parquet
   file per session (``Lake.write_days``) and of syncing them into an empty Qlib provider.
2. ``--years`` of bars: rebuild the provider from scratch, then append the held-out last
   ``--appends`` sessions one at a time and rewrite the last one; prints rebuild / append.
"""

import argparse
import statistics
import tempfile
import time
from datetime import date
from pathlib import Path

import polars as pl

from qlib_assets.market.generator import MarketSpec, generate_market
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
    writer = QlibProviderWriter(work / "qlib_history")
    base = bars.filter(pl.col("date") < held_out[0])
    rebuild = writer.rebuild(base).elapsed_seconds
    print(
        f"rebuild {len(days) - appends} sessions, {base.height:,} bars: {rebuild:.2f}s "
        f"({base.height / rebuild:,.0f} rows/s)"
    )
    append_times = []
    for day in held_out:
        one = bars.filter(pl.col("date") == day)
        result = writer.sync(one, [day])
        append_times.append(result.elapsed_seconds)
        print(
            f"  append {day}: {result.elapsed_seconds * 1000:7.1f} ms, "
            f"{result.files_written:,} files, {result.bytes_written:,} bytes"
        )
    last = bars.filter(pl.col("date") == held_out[-1])
    rewrite = writer.sync(last, [held_out[-1]]).elapsed_seconds
    append = statistics.median(append_times)
    print(f"append one session (median of {appends}): {append * 1000:.1f} ms")
    print(f"rewrite the last session in place:        {rewrite * 1000:.1f} ms")
    print(f"rebuild / append ratio:  {rebuild / append:6.1f}x  (goal >= 50x)")
    print(f"rebuild / rewrite ratio: {rebuild / rewrite:6.1f}x")


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
