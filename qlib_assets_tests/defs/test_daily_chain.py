"""The daily chain: one new landing file leads, through the landing sensor and Declarative
Automation alone, to the session's predictions, signal and drift being requested."""

from datetime import datetime
from zoneinfo import ZoneInfo

import dagster as dg
import polars as pl

from qlib_assets.asset_keys import FEATURE_DRIFT, PREDICTION_DRIFT, SIGNAL, predictions_asset
from qlib_assets.defs.build import build_definitions
from qlib_assets.market.synthetic import Market
from qlib_assets.models.platform import platform_specs
from qlib_assets.orchestration import materialize_range
from qlib_assets.settings import Settings
from qlib_assets_tests.conftest import session_days

SENSOR_ASSETS = ["raw_bars", "qlib_dataset", "indicators", "alpha158"]


def _land_and_run_sensor(
    defs: dg.Definitions, instance: dg.DagsterInstance, cursor: str | None
) -> str | None:
    """One landing-sensor tick, its runs executed as the daemon would launch them."""
    context = dg.build_sensor_context(instance=instance, cursor=cursor, definitions=defs)
    result = defs.resolve_sensor_def("landing_sensor")(context)
    assert isinstance(result, dg.SensorResult) and result.run_requests
    for request in result.run_requests:
        start = request.tags["dagster/asset_partition_range_start"]
        end = request.tags["dagster/asset_partition_range_end"]
        assert materialize_range(defs, instance, SENSOR_ASSETS, start, end, log_level="ERROR")
    return result.cursor


def _requested(
    defs: dg.Definitions, result: dg.EvaluateAutomationConditionsResult
) -> dict[str, set[str | None]]:
    keys = defs.resolve_asset_graph().get_all_asset_keys()
    found = {k.to_user_string(): set(result.get_requested_partitions(k)) for k in keys}
    return {k: v for k, v in found.items() if v}


def test_new_landing_file_to_signal_and_drift(settings: Settings, small_market: Market) -> None:
    days = session_days(small_market.bars)[:12]
    new = days[-1]
    for day in days[:-1]:
        small_market.bars.filter(pl.col("date") == day).write_parquet(
            settings.landing_dir / f"bars_{day.isoformat()}.parquet"
        )
    defs = build_definitions(settings)
    specs = platform_specs(settings)
    evening = datetime.combine(new, datetime.min.time(), ZoneInfo("Asia/Shanghai")).replace(hour=18)
    with dg.instance_for_test() as instance:
        cursor = _land_and_run_sensor(defs, instance, None)
        before = dg.evaluate_automation_conditions(defs, instance, evaluation_time=evening)

        small_market.bars.filter(pl.col("date") == new).write_parquet(
            settings.landing_dir / f"bars_{new.isoformat()}.parquet"
        )
        _land_and_run_sensor(defs, instance, cursor)
        features = dg.evaluate_automation_conditions(
            defs, instance, evaluation_time=evening, cursor=before.cursor
        )
    key = new.isoformat()
    # One tick requests the whole chain: Dagster counts a dependency requested in the same
    # evaluation as updated, so predictions, signal and drift run together.
    requested = _requested(defs, features)
    assert requested.pop("labels") == {days[-3].isoformat()}
    chain = {predictions_asset(n) for n in specs} | {SIGNAL, FEATURE_DRIFT, PREDICTION_DRIFT}
    assert requested == {asset: {key} for asset in chain}
