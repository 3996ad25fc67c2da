"""First start is quiet: after the demo's ingest, the landing sensor requests nothing."""

import dagster as dg
import polars as pl
import pytest
from dagster._core.definitions.selector import InstigatorSelector

from qlib_assets.defs.build import build_definitions
from qlib_assets.first_start import record_sensor_tick, stored_cursor
from qlib_assets.instance import embedded_instance
from qlib_assets.market.synthetic import Market
from qlib_assets.orchestration import materialize_range
from qlib_assets.settings import Settings
from qlib_assets_tests.conftest import session_days


def test_recorded_tick_leaves_nothing_to_ingest(
    settings: Settings, small_market: Market, monkeypatch: pytest.MonkeyPatch
) -> None:
    # embedded_instance points DAGSTER_HOME at the home; restored after the test.
    monkeypatch.setenv("DAGSTER_HOME", str(settings.dagster_home))
    days = session_days(small_market.bars)[:5]
    for day in days:
        small_market.bars.filter(pl.col("date") == day).write_parquet(
            settings.landing_dir / f"bars_{day.isoformat()}.parquet"
        )
    defs = build_definitions(settings)
    instance = embedded_instance(settings)
    first = record_sensor_tick(instance, defs)
    assert first.run_requests and stored_cursor(instance, "landing_sensor") == first.cursor
    assert materialize_range(
        defs, instance, ["raw_bars"], days[0].isoformat(), days[-1].isoformat()
    )
    observed = instance.fetch_observations(dg.AssetKey("landing_files"), limit=100).records
    assert {r.partition_key for r in observed} == {d.isoformat() for d in days}

    # The daemon loads the location under its own origin id and finds the state by selector.
    selector = InstigatorSelector(
        location_name="qlib_assets", repository_name="__repository__", name="landing_sensor"
    ).get_id()
    state = instance.get_instigator_state("the-daemon's-origin-id", selector)
    assert state is not None and state.instigator_data.cursor == first.cursor
    context = dg.build_sensor_context(
        instance=instance, cursor=state.instigator_data.cursor, definitions=defs
    )
    again = defs.resolve_sensor_def("landing_sensor")(context)
    assert isinstance(again, dg.SensorResult) and not again.run_requests
