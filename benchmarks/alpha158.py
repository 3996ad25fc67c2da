"""Alpha158: Qlib's expression engine against our polars compiler, on the same generated bars.

Prints both throughputs (rows = instrument-sessions), their ratio and the largest absolute
difference between the two outputs; then times a one-session incremental run (the last
``lookback + margin`` sessions, ``targets=[last session]``) for a larger universe, against the
same bars computed for every row. Wall and CPU seconds are both printed: on a loaded machine
the wall ratio moves with other jobs, CPU much less. Qlib runs twice: with ``kernels=1`` (one
process: Qlib's default on a machine of up to three CPUs) and ``kernels=2`` (both cores of this
machine; its workers' CPU time is not counted in this process's).
Each engine runs ``--repeats`` times, the two interleaved, and the medians are printed.

    .venv/bin/python benchmarks/alpha158.py [--instruments 500] [--sessions 1000]
        [--incremental-instruments 5000] [--margin 10] [--repeats 3]
"""

import qlib_assets  # noqa: F401, I001 (first: it sets polars' allocator options)
import argparse
import tempfile
import time
from collections.abc import Callable
from datetime import date, timedelta
from pathlib import Path

import numpy as np
import polars as pl

from qlib_assets.calendar import sessions as exchange_sessions
from qlib_assets.features.alpha158 import alpha158_lookback, compute_alpha158
from qlib_assets.market.synthetic import MarketSpec, generate_market
from qlib_assets.market.schema import FIELD_COLUMNS
from qlib_assets.storage.qlib_bin import QlibProviderWriter

START = date(2015, 1, 5)


def market(instruments: int, sessions: int, seed: int) -> tuple[pl.DataFrame, list[date]]:
    end = START + timedelta(days=int(sessions * 1.5) + 30)
    days = list(exchange_sessions("XSHG", START, end))[:sessions]
    spec = MarketSpec(instruments=instruments, start=days[0], end=days[-1], seed=seed)
    bars = generate_market(spec).bars
    # Qlib stores float32: both engines start from the same rounded inputs.
    rounded = bars.with_columns(pl.col(c).cast(pl.Float32).cast(pl.Float64) for c in FIELD_COLUMNS)
    return rounded, days


def max_difference(ours: pl.DataFrame, theirs: pl.DataFrame) -> tuple[float, int]:
    joined = ours.join(theirs, on=["instrument", "date"], how="inner", suffix="_q")
    worst, nan_mismatch = 0.0, 0
    for name in ours.columns[2:]:
        a = joined.get_column(name).to_numpy().astype(np.float64)
        b = joined.get_column(f"{name}_q").to_numpy().astype(np.float64)
        both = ~np.isnan(a) & ~np.isnan(b)
        nan_mismatch += int((np.isnan(a) != np.isnan(b)).sum())
        if both.any():
            worst = max(worst, float(np.abs(a[both] - b[both]).max()))
    return worst, nan_mismatch


def timed(run: Callable[[], pl.DataFrame]) -> tuple[pl.DataFrame, float, float]:
    """The result, wall seconds and CPU seconds (all threads of this process) of one run."""
    wall, cpu = time.perf_counter(), time.process_time()
    result = run()
    return result, time.perf_counter() - wall, time.process_time() - cpu


def interleaved(
    runs: dict[str, Callable[[], pl.DataFrame]], repeats: int
) -> dict[str, tuple[pl.DataFrame, float, float]]:
    """Each run ``repeats`` times, taking turns so that a change in the machine's load falls
    on all of them: the last result and the median wall and CPU seconds of each."""
    results: dict[str, pl.DataFrame] = {}
    walls: dict[str, list[float]] = {name: [] for name in runs}
    cpus: dict[str, list[float]] = {name: [] for name in runs}
    for _ in range(repeats):
        for name, run in runs.items():
            results[name], wall, cpu = timed(run)
            walls[name].append(wall)
            cpus[name].append(cpu)
    return {
        name: (results[name], float(np.median(walls[name])), float(np.median(cpus[name])))
        for name in runs
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--instruments", type=int, default=500)
    parser.add_argument("--sessions", type=int, default=1000)
    parser.add_argument("--incremental-instruments", type=int, default=5000)
    parser.add_argument("--margin", type=int, default=10)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()

    bars, days = market(args.instruments, args.sessions, seed=11)
    compute_alpha158(bars.head(2000), sessions=days)  # warm-up: imports, first-call costs
    with tempfile.TemporaryDirectory() as tmp:
        provider = Path(tmp) / "qlib"
        QlibProviderWriter(provider, "XSHG").rebuild(bars, days)
        timings = interleaved(
            {
                "qlib": lambda: compute_alpha158(bars, engine="qlib", provider_uri=provider),
                "qlib2": lambda: compute_alpha158(
                    bars, engine="qlib", provider_uri=provider, qlib_kernels=2
                ),
                "polars": lambda: compute_alpha158(bars, sessions=days),
            },
            args.repeats,
        )
    theirs, qlib_wall, qlib_cpu = timings["qlib"]
    _, qlib2_wall, _ = timings["qlib2"]
    ours, polars_wall, polars_cpu = timings["polars"]
    rows = ours.height
    worst, nan_mismatch = max_difference(ours, theirs)
    print(
        f"Alpha158 full history: {args.instruments} instruments x {args.sessions} sessions "
        f"(medians of {args.repeats} interleaved runs)"
    )
    print(f"  rows (instrument-sessions)   {rows:,} (qlib {theirs.height:,})")
    print(f"  {'':<28} {'wall':>9}  {'us/row':>7}  {'cpu':>9}")
    for label, wall, cpu in (
        ("qlib D.features (kernels=1)", qlib_wall, f"{qlib_cpu:7.2f} s"),
        ("qlib D.features (kernels=2)", qlib2_wall, "workers'"),
        ("polars", polars_wall, f"{polars_cpu:7.2f} s"),
    ):
        print(f"  {label:<28} {wall:7.2f} s  {wall / rows * 1e6:7.1f}  {cpu:>9}")
    print(
        f"  speed ratio vs kernels=1     {qlib_wall / polars_wall:7.1f} x (wall)   "
        f"{qlib_cpu / polars_cpu:.1f} x (cpu)"
    )
    print(f"  speed ratio vs kernels=2     {qlib2_wall / polars_wall:7.1f} x (wall)")
    print(f"  max |difference|             {worst:.3g}   NaN-pattern mismatches {nan_mismatch}")

    window = alpha158_lookback() + args.margin
    big, big_days = market(args.incremental_instruments, window, seed=12)
    target = big_days[-1]
    incremental = interleaved(
        {
            "latest": lambda: compute_alpha158(big, sessions=big_days, targets=[target]),
            "every": lambda: compute_alpha158(big, sessions=big_days),
        },
        args.repeats,
    )
    latest, wall, cpu = incremental["latest"]
    every, every_wall, _ = incremental["every"]
    worst, nan_mismatch = max_difference(latest, every.filter(pl.col("date") == target))
    print(
        f"One-session run: {args.incremental_instruments} instruments, last {window} sessions "
        f"-> {latest.height:,} rows for {target}"
    )
    print(f"  targets=[{target}]          {wall:7.2f} s wall {cpu:7.2f} s cpu")
    print(f"  every row, then filtered     {every_wall:7.2f} s wall")
    print(f"  max |difference|             {worst:.3g}   NaN-pattern mismatches {nan_mismatch}")


if __name__ == "__main__":
    main()
