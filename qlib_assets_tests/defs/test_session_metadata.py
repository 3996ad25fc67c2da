"""Single-run backfills: each partition carries its own figures, no event grows past 8 KB."""

import dagster as dg
import polars as pl
from dagster._serdes import serialize_value

from qlib_assets.defs.build import build_definitions
from qlib_assets.market.synthetic import Market
from qlib_assets.orchestration import materialize_range
from qlib_assets.settings import Settings
from qlib_assets.storage.atomic import sha256_file
from qlib_assets.storage.lake import Lake
from qlib_assets_tests.conftest import session_days

EVENT_BOUND = 8 * 1024
# Dagster's check-planning event of a ranged run embeds the partitions definition, whose holiday
# exclusions grow ~100 bytes per exchange holiday; it is one event per check and run.
PLANNING = {dg.DagsterEventType.ASSET_CHECK_EVALUATION_PLANNED}


def test_each_partition_has_its_own_figures(settings: Settings, small_market: Market) -> None:
    bars = small_market.bars
    days = session_days(bars)[:15]
    for day in days:
        bars.filter(pl.col("date") == day).write_parquet(
            settings.landing_dir / f"bars_{day.isoformat()}.parquet"
        )
    defs = build_definitions(settings)
    with dg.instance_for_test() as instance:
        runs = [
            materialize_range(defs, instance, [asset], days[0].isoformat(), last.isoformat())
            for asset, last in (("raw_bars", days[-1]), ("labels", days[-3]))
        ]
        assert all(run.success for run in runs)
        sizes = [
            len(serialize_value(r))
            for run in runs
            for r in instance.all_logs(run.run_id)
            if r.dagster_event_type not in PLANNING
        ]
        raw = {m.partition: m.metadata for m in runs[0].asset_materializations_for_node("raw_bars")}
        labels = [m.metadata for m in runs[1].asset_materializations_for_node("labels")]
    assert max(sizes) < EVENT_BOUND
    lake = Lake(settings.lake_dir)
    for day in days:
        meta = raw[day.isoformat()]
        expected = bars.filter(pl.col("date") == day)
        assert meta["rows"].value == expected.height
        assert meta["instruments"].value == expected.get_column("instrument").n_unique()
        assert meta["sha256"].value == sha256_file(lake.path("raw_bars", day))
        assert meta["landing_file_sha256"].value == {
            f"bars_{day.isoformat()}.parquet": sha256_file(
                settings.landing_dir / f"bars_{day.isoformat()}.parquet"
            )
        }
    assert [k for k, m in raw.items() if "run_range" in m] == [days[-1].isoformat()]
    assert raw[days[-1].isoformat()]["run_range"].value["sessions"] == len(days)
    assert len({m["sha256"].value for m in labels}) == len(days) - 2
