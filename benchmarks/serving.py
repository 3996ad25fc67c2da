"""Latency and throughput of POST /v1/predict against calling the model in process.

Builds a small platform (generated market, Alpha158, one or two LightGBM versions) under a
scratch home, starts `qlib-assets serve` in a child process on a loopback port, and sends
requests of N instruments at a fixed rate (open loop: latency counts from the scheduled send).
The reference is the same model's pyfunc called in this process on the same rows at the same
rate. The third run moves the champion alias during the load (a blue-green swap).

    PYTHONPATH=$PWD python benchmarks/serving.py --instruments 300 --rate 10 --seconds 20
"""

import argparse
import json
import os
import shutil
import sys
import tempfile
import threading
import time
from datetime import date
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")  # as `qlib-assets serve` runs


def build_platform(home: Path, instruments: int) -> tuple[list[date], list[str], list[str]]:
    from mlflow import MlflowClient

    from qlib_assets.features.alpha158 import compute_alpha158, compute_label
    from qlib_assets.lifecycle.gates import gate_version
    from qlib_assets.lifecycle.promotion import promote
    from qlib_assets.market.synthetic import MarketSpec, generate_market
    from qlib_assets.models.dataset import load_window_frame, window_days
    from qlib_assets.models.platform import audit_log
    from qlib_assets.models.rolling import rolling_windows
    from qlib_assets.models.specs import RollingSection, load_specs
    from qlib_assets.models.tracking import experiment_name, train_and_track
    from qlib_assets.settings import LifecycleSettings, Settings
    from qlib_assets.storage.lake import Lake

    market = generate_market(
        MarketSpec(instruments=instruments, start=date(2022, 1, 4), end=date(2022, 9, 30), seed=7)
    )
    settings = Settings(
        home=home, start_date=date(2022, 1, 4), lifecycle=LifecycleSettings(ic_floor=-1)
    )
    settings.ensure_dirs()
    days = market.sessions
    lake = Lake(settings.lake_dir)
    lake.write_days("alpha158", compute_alpha158(market.bars, sessions=days), days)
    lake.write_days("labels", compute_label(market.bars, sessions=days), days[:-2])
    shipped = load_specs()["lgbm_alpha158"]
    spec = shipped.model_copy(
        update={
            "model": shipped.model.model_copy(
                update={
                    "kwargs": {**shipped.model.kwargs, "num_threads": 1, "num_boost_round": 100}
                }
            ),
            "rolling": RollingSection(
                step=20, type="sliding", train_sessions=80, valid_sessions=20, trunc_days=3
            ),
        }
    )
    MlflowClient(settings.mlflow_uri).create_experiment(
        experiment_name(spec), artifact_location=(home / "mlartifacts").as_uri()
    )
    versions = []
    for window in rolling_windows(spec.rolling, days, days[-1])[:2]:
        data = load_window_frame(lake, spec, window_days(window, days))
        tracked = train_and_track(
            spec, window, data, tracking_uri=settings.mlflow_uri, audit=audit_log(settings)
        )
        versions.append(tracked.model_version)
        gate_version(settings, shipped, tracked.model_version)
    promote(
        settings, shipped, versions[0], effective_from=days[-5], actor="benchmark", reason="bench"
    )
    names = sorted(market.bars.get_column("instrument").unique().to_list())
    return list(days), versions, names


def in_process(home: Path, day: date, names: list[str], rate: float, seconds: float) -> dict:
    """The reference: the model's pyfunc on the session's rows, at the same open-loop rate."""
    import numpy as np
    import polars as pl

    from qlib_assets.models.specs import load_specs
    from qlib_assets.models.tracking import load_scorer
    from qlib_assets.online.predictions import scoring_features
    from qlib_assets.settings import Settings
    from qlib_assets.storage.lake import Lake

    settings = Settings(home=home)
    rows = scoring_features(Lake(settings.lake_dir), load_specs()["lgbm_alpha158"], [day])
    rows = rows.filter(pl.col("instrument").is_in(names)).to_pandas()
    scorer = load_scorer("models:/lgbm_alpha158/1", settings.mlflow_uri)
    latencies = []
    started = time.perf_counter()
    for index in range(int(rate * seconds)):
        scheduled = started + index / rate
        if (pause := scheduled - time.perf_counter()) > 0:
            time.sleep(pause)
        scorer.predict(rows)
        latencies.append(time.perf_counter() - scheduled)
    values = np.array(latencies) * 1000
    return {
        "sent": len(values),
        "achieved_rate": len(values) / (time.perf_counter() - started),
        "p50_ms": float(np.quantile(values, 0.5)),
        "p99_ms": float(np.quantile(values, 0.99)),
    }


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--instruments", type=int, default=300)
    parser.add_argument("--rate", type=float, default=10.0)
    parser.add_argument("--seconds", type=float, default=20.0)
    parser.add_argument("--keep", action="store_true", help="keep the scratch home")
    args = parser.parse_args()

    from qlib_assets.lifecycle.promotion import promote
    from qlib_assets.models.specs import load_specs
    from qlib_assets.serving.load import run_load
    from qlib_assets.serving.server import ServiceProcess, free_port
    from qlib_assets.settings import LifecycleSettings, Settings

    home = Path(tempfile.mkdtemp(prefix="bench_serving_"))
    try:
        started = time.perf_counter()
        days, versions, names = build_platform(home, args.instruments)
        print(f"platform built in {time.perf_counter() - started:.0f}s: {len(names)} instruments")
        day = days[-3]
        body = {"date": day.isoformat(), "instruments": names}
        environ = {
            "QLIB_ASSETS_HOME": str(home),
            "QLIB_ASSETS_START_DATE": "2022-01-04",
            "QLIB_ASSETS_SERVING__SPECS": json.dumps(["lgbm_alpha158"]),
            "QLIB_ASSETS_SERVING__POLL_SECONDS": "0.5",
            "QLIB_ASSETS_LIFECYCLE__IC_FLOOR": "-1",
        }
        results = {"in_process": in_process(home, day, names, args.rate, args.seconds)}
        with ServiceProcess("dev", free_port(), environ, home / "serve.log") as service:
            service.wait_ready(300)
            url = f"{service.url}/v1/predict"
            run_load(url, lambda i: body, 2, 2)  # warm the session's feature cache
            results["service"] = run_load(url, lambda i: body, args.rate, args.seconds).summary()
            settings = Settings(
                home=home, start_date=date(2022, 1, 4), lifecycle=LifecycleSettings(ic_floor=-1)
            )
            move = threading.Timer(
                args.seconds / 3,
                promote,
                (settings, load_specs()["lgbm_alpha158"], versions[1]),
                {"effective_from": days[-2], "actor": "benchmark", "reason": "swap under load"},
            )
            move.start()
            swap = run_load(url, lambda i: body, args.rate, args.seconds)
            move.join()
            results["service_during_swap"] = swap.summary()
            results["service_during_swap"]["versions"] = sorted({v for _, v in swap.versions})
        reference = results["in_process"]
        print(f"{args.instruments} instruments per request, {args.rate}/s for {args.seconds}s")
        head = ("run", "sent", "failed", "rate/s", "p50 ms", "p99 ms", "p50 x", "p99 x")
        print(f"{head[0]:<22}" + "".join(f"{h:>9}" for h in head[1:]))
        for name, r in results.items():
            ratio50 = r["p50_ms"] / reference["p50_ms"]
            ratio99 = r["p99_ms"] / reference["p99_ms"]
            print(
                f"{name:<22}{r['sent']:>9}{r.get('failed', 0):>9}{r['achieved_rate']:>9.1f}"
                f"{r['p50_ms']:>9.1f}{r['p99_ms']:>9.1f}{ratio50:>9.2f}{ratio99:>9.2f}"
            )
        print(f"versions answering during the swap: {results['service_during_swap']['versions']}")
        print(f"load average: {os.getloadavg()}")
    finally:
        if not args.keep:
            shutil.rmtree(home, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
