"""Whole indicator catalog vs the bare TA-Lib C calls it rests on, on the same series.

The reference is what a direct implementation would at least pay: every distinct TA-Lib call of
the catalog's TA-Lib-backed columns, per instrument, on arrays already split by instrument, calling
the C functions without the talib package's pandas/polars wrapper (the custom columns are not in
the reference at all). Ours is ``compute_indicators`` on the polars bars frame, including sorting
checks, validation and building the output frame, on ``--threads`` threads (default: one per CPU;
TA-Lib and numpy release the GIL). The CPU columns sum the time of all threads.

The figures are medians over ``--repeat`` interleaved rounds; the load average is printed
because other processes on the machine move both sides' times.

    .venv/bin/python benchmarks/indicators.py [--repeat 7] [--threads N]
"""

import qlib_assets  # noqa: F401, I001 (first: it sets polars' allocator options)
import argparse
import os
import statistics
import time
from collections.abc import Callable
from datetime import date, timedelta

import numpy as np
import polars as pl

from qlib_assets.features.indicators.catalog import talib_input_fields
from qlib_assets.features.indicators.panel import c_function
from qlib_assets.features.indicators import CATALOG, compute_indicators

SHAPES = ((5_000, 260), (1_000, 2_500))


def random_bars(instruments: int, sessions: int, seed: int = 0) -> pl.DataFrame:
    """Random-walk OHLCV with per-instrument price level, volatility and volume scale."""
    rng = np.random.default_rng(seed)
    shape = (instruments, sessions)
    level = 10 ** rng.uniform(0, 3, (instruments, 1))
    sigma = rng.uniform(0.01, 0.04, (instruments, 1))
    close = level * np.exp(np.cumsum(sigma * rng.standard_normal(shape), axis=1))
    open_ = close * np.exp(0.3 * sigma * rng.standard_normal(shape))
    high = np.maximum(open_, close) * np.exp(np.abs(0.5 * sigma * rng.standard_normal(shape)))
    low = np.minimum(open_, close) * np.exp(-np.abs(0.5 * sigma * rng.standard_normal(shape)))
    volume = 10 ** rng.uniform(4, 8, (instruments, 1)) * rng.lognormal(0, 0.5, shape)
    days = [date(2010, 1, 4) + timedelta(days=i) for i in range(sessions)]
    names = [f"SH{600000 + i}" for i in range(instruments)]
    return pl.DataFrame(
        {
            "instrument": np.repeat(names, sessions),
            "date": days * instruments,
            "open": open_.ravel(),
            "high": high.ravel(),
            "low": low.ravel(),
            "close": close.ravel(),
            "volume": volume.ravel(),
            "amount": (volume * close).ravel(),
            "vwap": close.ravel(),
            "factor": np.ones(instruments * sessions),
        },
        schema_overrides={"date": pl.Date},
    )


def talib_reference(bars: pl.DataFrame) -> Callable[[], None]:
    """Each distinct TA-Lib call of the catalog, on each instrument's own arrays."""
    calls: dict[str, tuple[Callable[..., object], tuple[str, ...], dict[str, float]]] = {}
    for spec in CATALOG.values():
        if spec.talib is not None:
            name, kwargs, _ = spec.talib
            key = f"{name}{sorted(kwargs.items())}"
            calls[key] = (c_function(name), talib_input_fields(name), kwargs)
    per_instrument = [
        {field: part[field].to_numpy() for field in ("open", "high", "low", "close", "volume")}
        for part in bars.partition_by("instrument", maintain_order=True)
    ]
    prepared = [
        (function, [arrays[field] for field in fields], kwargs)
        for arrays in per_instrument
        for function, fields, kwargs in calls.values()
    ]

    def run() -> None:
        for function, inputs, kwargs in prepared:
            function(*inputs, **kwargs)

    return run


def median_of_interleaved(repeat: int, *runs: Callable[[], object]) -> list[tuple[float, float]]:
    """Median wall and median CPU time (all threads) of each run over ``repeat`` rounds, the
    runs alternating within a round so that load from other processes hits them alike."""
    times: list[list[tuple[float, float]]] = [[] for _ in runs]
    for _ in range(repeat):
        for index, run in enumerate(runs):
            wall, cpu = time.perf_counter(), time.process_time()
            run()
            times[index].append((time.perf_counter() - wall, time.process_time() - cpu))
    return [
        (statistics.median(wall for wall, _ in taken), statistics.median(cpu for _, cpu in taken))
        for taken in times
    ]


def load() -> str:
    return " ".join(f"{value:.2f}" for value in os.getloadavg())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=7)
    parser.add_argument("--threads", type=int, default=None)
    args = parser.parse_args()
    talib_columns = sum(spec.talib is not None for spec in CATALOG.values())
    print(
        f"catalog: {len(CATALOG)} columns, {talib_columns} TA-Lib-backed; "
        f"{args.threads or os.cpu_count()} threads; median of {args.repeat}; "
        f"load average {load()}"
    )
    print(
        f"{'instruments x sessions':>24} {'ours s':>8} {'TA-Lib s':>9} {'ratio':>6}"
        f" {'ours CPU s':>11} {'TA-Lib CPU s':>13} {'CPU ratio':>10}"
    )
    for instruments, sessions in SHAPES:
        bars = random_bars(instruments, sessions)
        (ours, ours_cpu), (reference, reference_cpu) = median_of_interleaved(
            args.repeat,
            lambda bars=bars: compute_indicators(bars, threads=args.threads),
            talib_reference(bars),
        )
        label = f"{instruments:,} x {sessions:,}"
        print(
            f"{label:>24} {ours:8.3f} {reference:9.3f} {ours / reference:6.2f}"
            f" {ours_cpu:11.3f} {reference_cpu:13.3f} {ours_cpu / reference_cpu:10.2f}"
        )
    print(f"load average after: {load()}")


if __name__ == "__main__":
    main()
