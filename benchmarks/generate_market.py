"""Time the synthetic market generator at full scale and report the signal it carries.

    .venv/bin/python benchmarks/generate_market.py [--instruments 5000] [--out DIR]

Prints the wall time of ``generate_market`` (everything: events, simulation, bars, frames)
against the one-minute budget, the wall time of writing per-day Parquet landing files against
writing the same bars as one Parquet file (the floor for the bytes involved), the oracle IC,
and the oracle and reversal IC of the demo's default market (300 x 2021-2024, seed 7).
"""

import argparse
import tempfile
import time
from datetime import date
from pathlib import Path

from qlib_assets.market.synthetic import MarketSpec, generate_market, write_landing
from qlib_assets.market.synthetic.quality import oracle_ic, reversal_ic
from qlib_assets.storage.atomic import write_parquet_atomic

BUDGET_SECONDS = 60.0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--instruments", type=int, default=5000)
    parser.add_argument("--start", type=date.fromisoformat, default=date(2015, 1, 5))
    parser.add_argument("--end", type=date.fromisoformat, default=date(2024, 12, 31))
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, help="landing folder (default: a temporary one)")
    args = parser.parse_args()

    spec = MarketSpec(instruments=args.instruments, start=args.start, end=args.end, seed=args.seed)
    began = time.perf_counter()
    market = generate_market(spec)
    generate_s = time.perf_counter() - began
    print(
        f"generate {spec.instruments} x {len(market.sessions)} sessions "
        f"({market.bars.height:,} bars): {generate_s:.1f} s = "
        f"{generate_s / BUDGET_SECONDS:.2f} x the {BUDGET_SECONDS:.0f} s budget"
    )

    with tempfile.TemporaryDirectory() as scratch:
        out = args.out or Path(scratch) / "landing"
        began = time.perf_counter()
        files = write_landing(market, out, fmt="parquet", layout="per-day")
        per_day_s = time.perf_counter() - began
        began = time.perf_counter()
        write_parquet_atomic(market.bars, Path(scratch) / "all_bars.parquet")
        single_s = time.perf_counter() - began
    print(
        f"write per-day parquet ({len(files)} files): {per_day_s:.1f} s = "
        f"{per_day_s / single_s:.1f} x one-file write ({single_s:.1f} s)"
    )
    began = time.perf_counter()
    ic = oracle_ic(market)
    print(f"oracle IC: {ic:.4f} (measured in {time.perf_counter() - began:.1f} s)")

    demo = generate_market(
        MarketSpec(instruments=300, start=date(2021, 1, 4), end=date(2024, 12, 31), seed=7)
    )
    print(
        f"demo market 300 x {len(demo.sessions)} seed 7: oracle IC {oracle_ic(demo):.4f}, "
        f"5-session reversal IC {reversal_ic(demo):.4f}"
    )


if __name__ == "__main__":
    main()
