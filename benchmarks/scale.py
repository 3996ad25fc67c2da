"""The same daily-graph backfill on the embedded instance and on PostgreSQL + Celery.

Both deployments run the same four launched runs (market data and features over the range,
labels, one training window, predictions and signal over its test segment) through a
reconstructable job, as a launched run does: the embedded one on SQLite storage with the
multiprocess executor, the other on a fresh PostgreSQL database with two local Celery workers
on RabbitMQ. Printed per deployment: wall time, the time some asset body was executing
(interval union of the steps' ``resource_usage`` rows) and Dagster's overhead share
(1 - busy / wall: process starts, code loading, event writes, queueing); then the wall-time
ratio. Needs PostgreSQL at 127.0.0.1:5432 and RabbitMQ at 127.0.0.1:5672.

    .venv/bin/python benchmarks/scale.py [--instruments 30] [--months 7]
"""

import argparse
import os
import tempfile
import time
import uuid
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import yaml

from qlib_assets.calendar import sessions
from qlib_assets.instance import embedded_instance
from qlib_assets.market.synthetic import Market, MarketSpec, generate_market, write_landing
from qlib_assets.operations.daily_graph import busy_seconds, daily_graph_stages, write_quick_spec
from qlib_assets.operations.launch import execute_range
from qlib_assets.operations.services import (
    ADMIN_URL,
    BROKER_URL,
    celery_workers,
    reachable,
    temporary_databases,
)
from qlib_assets.operations.store import operations_store
from qlib_assets.settings import load_settings

START = date(2021, 1, 4)


def run_deployment(
    name: str, work: Path, market: Market, days: list[date], operations: dict[str, Any]
) -> dict[str, float]:
    config = work / f"{name}.yaml"
    config.write_text(
        yaml.safe_dump(
            {
                "home": str(work / name),
                "start_date": START.isoformat(),
                "specs_dir": str(write_quick_spec(work / "specs")),
                "operations": operations,
            }
        )
    )
    os.environ["QLIB_ASSETS_CONFIG"] = str(config)
    settings = load_settings()
    write_landing(market, settings.landing_dir)
    instance = embedded_instance(settings)
    stages = daily_graph_stages(settings, days)

    def run_all() -> float:
        started = time.perf_counter()
        for stage in stages:
            result = execute_range(instance, stage.assets, stage.first, stage.last)
            if not result.success:
                raise RuntimeError(f"{name}: run of {stage.assets} failed ({result.run_id})")
        return time.perf_counter() - started

    if operations.get("executor") == "celery":
        with celery_workers(settings.operations, 2, {"QLIB_ASSETS_CONFIG": str(config)}, work):
            wall = run_all()
    else:
        wall = run_all()
    usage = operations_store(settings.operations, settings.root).usage()
    instance.dispose()
    busy = busy_seconds(usage)
    return {"wall": wall, "busy": busy, "steps": usage.height, "cpu": usage["cpu_seconds"].sum()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--instruments", type=int, default=30)
    parser.add_argument("--months", type=int, default=7)
    args = parser.parse_args()
    if not (reachable(ADMIN_URL, 5432) and reachable(BROKER_URL, 5672)):
        raise SystemExit("needs PostgreSQL at 127.0.0.1:5432 and RabbitMQ at 127.0.0.1:5672")
    end = START + timedelta(days=int(args.months * 30.5))
    days = list(sessions("XSHG", START, end))
    market = generate_market(
        MarketSpec(
            instruments=args.instruments, start=START, end=end, seed=11, effect_strength=0.15
        )
    )
    print(f"{args.instruments} instruments x {len(days)} sessions; load {os.getloadavg()}")
    results = {}
    with tempfile.TemporaryDirectory() as folder:
        work = Path(folder)
        results["embedded"] = run_deployment(
            "embedded", work, market, days, {"instance": "embedded", "executor": "multiprocess"}
        )
        with temporary_databases(ADMIN_URL, "dagster", "mlflow") as urls:
            results["postgres+celery(2)"] = run_deployment(
                "scale",
                work,
                market,
                days,
                {
                    "instance": "postgres",
                    "executor": "celery",
                    "postgres_url": urls["dagster"],
                    "mlflow_tracking_uri": urls["mlflow"],
                    "celery_broker": BROKER_URL,
                    "celery_queue": f"bench-{uuid.uuid4().hex[:8]}",
                },
            )
    print(f"{'deployment':<20} {'wall s':>8} {'busy s':>8} {'step CPU s':>10} {'overhead':>9}")
    for name, r in results.items():
        overhead = 1 - r["busy"] / r["wall"]
        print(f"{name:<20} {r['wall']:>8.1f} {r['busy']:>8.1f} {r['cpu']:>10.1f} {overhead:>9.0%}")
    ratio = results["postgres+celery(2)"]["wall"] / results["embedded"]["wall"]
    print(f"wall-time ratio postgres+celery / embedded: {ratio:.2f}; load {os.getloadavg()}")


if __name__ == "__main__":
    main()
