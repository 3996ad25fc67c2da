"""One LightGBM window: dataset assembly from the Parquet lake plus Qlib's fit, timed apart.

Builds Alpha158 and label tables for a generated market (one Parquet file per session), then
times, in the same process: reading and joining the window's files with their SHA-256 manifest,
the conversion to Qlib's layout with the processors fit on the train segment, LightGBM's own
``lgb.train``, and the valid predictions with their IC. Prints the share of the wall time spent
outside the model's fit (goal: under 20%).

    .venv/bin/python benchmarks/training.py [--instruments 1000] [--years 3] [--rounds 300]
"""

import argparse
import tempfile
import time
from datetime import date
from pathlib import Path

from qlib_assets.features.alpha158 import compute_alpha158, compute_label
from qlib_assets.market.synthetic import MarketSpec, generate_market
from qlib_assets.models.dataset import load_window_frame, window_days
from qlib_assets.models.rolling import rolling_windows
from qlib_assets.models.specs import load_specs
from qlib_assets.models.training import train_window
from qlib_assets.storage.lake import Lake

START = date(2021, 1, 4)


def build_lake(root: Path, instruments: int, years: int) -> tuple[Lake, tuple[date, ...]]:
    end = date(START.year + years - 1, 12, 31)
    market = generate_market(MarketSpec(instruments=instruments, start=START, end=end, seed=7))
    lake = Lake(root)
    days = market.sessions
    lake.write_days("alpha158", compute_alpha158(market.bars, sessions=days), days)
    lake.write_days("labels", compute_label(market.bars, sessions=days), days[:-2])
    return lake, days


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--instruments", type=int, default=1000)
    parser.add_argument("--years", type=int, default=3)
    parser.add_argument("--rounds", type=int, default=300)
    args = parser.parse_args()

    spec = load_specs()["lgbm_alpha158"]
    spec = spec.model_copy(
        update={
            "model": spec.model.model_copy(update={"fit_kwargs": {"num_boost_round": args.rounds}})
        }
    )
    with tempfile.TemporaryDirectory(prefix="bench_training_") as scratch:
        started = time.perf_counter()
        lake, days = build_lake(Path(scratch), args.instruments, args.years)
        print(f"setup (market, Alpha158, labels, Parquet): {time.perf_counter() - started:.1f}s")
        window = rolling_windows(spec.rolling, days, days[-3])[0]
        wall = time.perf_counter()
        data = load_window_frame(lake, spec, window_days(window, days))
        loaded = time.perf_counter() - wall
        result = train_window(spec, window, data)
        total = time.perf_counter() - wall

    outside = total - result.fit_seconds
    rows = data.frame.height
    print(
        f"window {window.key}: train {window.train[0]}..{window.train[1]}, "
        f"valid {window.valid[0]}..{window.valid[1]}; {rows:,} rows x "
        f"{len(data.feature_columns)} features, {len(data.manifest.files)} Parquet files"
    )
    print(f"read + join + SHA-256 manifest : {loaded:7.2f}s")
    print(f"Qlib layout, processors, IC    : {result.prepare_seconds:7.2f}s")
    print(
        f"LightGBM fit (lgb.train)       : {result.fit_seconds:7.2f}s "
        f"({result.best_iteration} best of {len(result.curves['train'])} rounds)"
    )
    print(f"total                          : {total:7.2f}s")
    print(f"share outside the model's fit  : {outside / total:7.1%}  (goal < 20%)")
    print(f"valid IC {result.valid_ic.ic:.4f}, rank IC {result.valid_ic.rank_ic:.4f}")


if __name__ == "__main__":
    main()
