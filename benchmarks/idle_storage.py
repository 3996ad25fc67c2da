"""Growth of an idle instance's Dagster storage: the landing sensor ticking, no new files.

Usage: .venv/bin/python benchmarks/idle_storage.py [--days 3] [--ticks-per-day 48]

Builds a home with a small ingested market, installs the repo's dagster.yaml, and runs the
sensor daemon's own iteration (``execute_sensor_iteration``) over the real code location for
``--days`` simulated days (the clock is moved between ticks; Dagster's tick retention purges
as it does live). Prints the bytes of the instance's SQLite files after each day, the bytes one
idle tick adds before any purge, and what a live day (a tick every 30 s) therefore holds.
"""

import qlib_assets  # noqa: F401, I001 (first: it sets polars' allocator options)
import argparse
import logging
import os
import sys
import tempfile
import time
from datetime import date
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
LIVE_TICKS_PER_DAY = 24 * 3600 // 30


def _db_bytes(home: Path) -> int:
    return sum(p.stat().st_size for p in home.rglob("*.db*") if p.is_file())


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--days", type=int, default=3)
    parser.add_argument("--ticks-per-day", type=int, default=48)
    args = parser.parse_args()
    root = Path(tempfile.mkdtemp(prefix="idle_storage_"))
    os.environ["QLIB_ASSETS_HOME"] = str(root)
    os.environ["QLIB_ASSETS_START_DATE"] = "2024-01-02"
    os.environ["QLIB_ASSETS_LANDING__SETTLE_SECONDS"] = "0"
    sys.path.insert(0, str(REPO))

    import dagster as dg
    from dagster._core.test_utils import create_test_daemon_workspace_context, freeze_time
    from dagster._core.workspace.load_target import ModuleTarget
    from dagster._daemon.sensor import execute_sensor_iteration

    from qlib_assets.calendar import sessions
    from qlib_assets.instance import prepare_dagster_home
    from qlib_assets.market.raw_bars import build_raw_bars
    from qlib_assets.market.synthetic import MarketSpec, generate_market, write_landing
    from qlib_assets.settings import load_settings

    settings = load_settings()
    settings.ensure_dirs()
    spec = MarketSpec(instruments=20, start=date(2024, 1, 2), end=date(2024, 2, 29), seed=1)
    write_landing(generate_market(spec), settings.landing_dir, "parquet", "per-day")
    build_raw_bars(settings, list(sessions("XSHG", spec.start, spec.end)))
    home = prepare_dagster_home(settings)
    instance = dg.DagsterInstance.get()
    target = ModuleTarget("qlib_assets.definitions", "defs", str(REPO), "qlib_assets")
    logger = logging.getLogger("idle_storage")
    step = 86400 / args.ticks_per_day
    clock = time.time()
    with create_test_daemon_workspace_context(target, instance) as context:
        with freeze_time(clock):
            list(execute_sensor_iteration(context, logger, None, None))  # first tick
        start = _db_bytes(home)
        print(f"after the first tick: {start:,} B of SQLite files")
        sizes = []
        for day in range(args.days):
            for _ in range(args.ticks_per_day):
                clock += step
                with freeze_time(clock):
                    list(execute_sensor_iteration(context, logger, None, None))
            sizes.append(_db_bytes(home))
            print(f"day {day + 1}: {sizes[-1]:,} B ({sizes[-1] - start:+,} B since the start)")
        sensor = next(s for s in instance.all_instigator_state() if s.name == "landing_sensor")
        ticks = instance.get_ticks(sensor.instigator_origin_id, sensor.selector_id, limit=10_000)
        cursor = sensor.instigator_data.cursor if sensor.instigator_data else None
    statuses = {t.status.value for t in ticks}
    print(f"ticks kept: {len(ticks)} (statuses {sorted(statuses)}); cursor {len(cursor or '')} B")
    per_tick = (sizes[0] - start) / args.ticks_per_day
    print(
        f"first day: {per_tick:,.0f} B per idle tick before purging; a live day "
        f"({LIVE_TICKS_PER_DAY} ticks) holds ~{per_tick * LIVE_TICKS_PER_DAY / 1e6:.1f} MB, "
        "purged after a day (retention: skipped ticks 1 day)"
    )
    if len(sizes) > 1:
        print(
            f"growth per day after the first: {(sizes[-1] - sizes[0]) / (len(sizes) - 1):+,.0f} B"
        )


if __name__ == "__main__":
    main()
