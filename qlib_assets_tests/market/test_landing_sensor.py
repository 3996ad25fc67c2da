"""The landing sensor on a real Dagster instance: new, changed and identical files."""

import os
import shutil
from datetime import date

import dagster as dg
import polars as pl

from qlib_assets.calendar import sessions
from qlib_assets.defs.build import build_definitions
from qlib_assets.market.synthetic import Market
from qlib_assets.settings import Settings

DAYS = sessions("XSHG", date(2024, 1, 2), date(2024, 1, 10))


def _write_day(settings: Settings, market: Market, day: date, scale: float = 1.0) -> None:
    frame = market.bars.filter(pl.col("date") == day).with_columns(pl.col("volume") * scale)
    frame.write_parquet(settings.landing_dir / f"bars_{day.isoformat()}.parquet")


def _tick(
    defs: dg.Definitions, instance: dg.DagsterInstance, cursor: str | None
) -> dg.SensorResult:
    sensor = defs.resolve_sensor_def("landing_sensor")
    context = dg.build_sensor_context(instance=instance, cursor=cursor, definitions=defs)
    result = sensor(context)
    assert isinstance(result, dg.SensorResult)
    return result


def _ranges(result: dg.SensorResult) -> list[tuple[str, str]]:
    return [
        (
            r.tags["dagster/asset_partition_range_start"],
            r.tags["dagster/asset_partition_range_end"],
        )
        for r in result.run_requests or []
    ]


def test_new_changed_and_identical_files(settings: Settings, small_market: Market) -> None:
    defs = build_definitions(settings)
    with dg.instance_for_test() as instance:
        for day in DAYS[:3]:
            _write_day(settings, small_market, day)
        first = _tick(defs, instance, None)
        assert _ranges(first) == [(DAYS[0].isoformat(), DAYS[2].isoformat())]
        observed = {e.partition for e in first.asset_events}
        assert observed == {d.isoformat() for d in DAYS[:3]}

        same = _tick(defs, instance, first.cursor)
        assert _ranges(same) == [] and same.cursor == first.cursor

        # The same bytes delivered again, rewritten in place and as a copy under a new name.
        path = settings.landing_dir / f"bars_{DAYS[1].isoformat()}.parquet"
        path.write_bytes(path.read_bytes())
        os.utime(path, ns=(1, 1))
        (settings.landing_dir / "redelivered").mkdir()
        shutil.copyfile(path, settings.landing_dir / "redelivered" / path.name)
        identical = _tick(defs, instance, first.cursor)
        assert _ranges(identical) == []

        _write_day(settings, small_market, DAYS[1], scale=2.0)
        _write_day(settings, small_market, DAYS[4])
        changed = _tick(defs, instance, identical.cursor)
        assert _ranges(changed) == [
            (DAYS[1].isoformat(), DAYS[1].isoformat()),
            (DAYS[4].isoformat(), DAYS[4].isoformat()),
        ]
        keys = [r.run_key for r in changed.run_requests or []]
        assert len(set(keys)) == 2 and first.run_requests[0].run_key not in keys


def test_unreadable_file_without_dates_is_quarantined(
    settings: Settings, small_market: Market
) -> None:
    defs = build_definitions(settings)
    (settings.landing_dir / "SH600000.parquet").write_bytes(b"not a parquet file")
    with dg.instance_for_test() as instance:
        result = _tick(defs, instance, None)
    assert _ranges(result) == []
    assert not (settings.landing_dir / "SH600000.parquet").exists()
    assert len(list(settings.quarantine_dir.glob("*SH600000.parquet"))) == 1


def test_changed_file_makes_exactly_its_partition_stale(
    settings: Settings, small_market: Market
) -> None:
    """The sensor's observations carry the landing data versions Dagster's staleness reads."""
    from dagster._core.definitions.data_version import CachingStaleStatusResolver, StaleStatus
    from dagster._core.loader import LoadingContextForTest

    from qlib_assets.orchestration import materialize_range

    defs = build_definitions(settings)
    for day in DAYS[:4]:
        _write_day(settings, small_market, day)
    with dg.instance_for_test() as instance:

        def tick(cursor: str | None) -> dg.SensorResult:
            result = _tick(defs, instance, cursor)
            for observation in result.asset_events:
                instance.report_runless_asset_event(observation)
            return result

        first = tick(None)
        start, end = DAYS[0].isoformat(), DAYS[3].isoformat()
        assert materialize_range(defs, instance, ["raw_bars"], start, end, log_level="ERROR")
        _write_day(settings, small_market, DAYS[2], scale=3.0)
        tick(first.cursor)
        resolver = CachingStaleStatusResolver(
            instance, defs.resolve_asset_graph(), LoadingContextForTest(instance)
        )
        raw = dg.AssetKey("raw_bars")
        statuses = {d: resolver.get_status(raw, d.isoformat()) for d in DAYS[:4]}
    assert statuses == {
        d: StaleStatus.STALE if d == DAYS[2] else StaleStatus.FRESH for d in DAYS[:4]
    }
