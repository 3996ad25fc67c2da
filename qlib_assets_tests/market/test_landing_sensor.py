"""The landing sensor on a real Dagster instance: new, changed and identical files."""

import json
import os
import shutil
import time
from datetime import date

import dagster as dg
import polars as pl

from qlib_assets.calendar import sessions
from qlib_assets.defs.build import build_definitions
from qlib_assets.market.raw_bars import build_raw_bars, landing_catalog
from qlib_assets.market.sensor_plan import plan_landing_runs
from qlib_assets.market.synthetic import Market
from qlib_assets.orchestration import materialize_partition
from qlib_assets.settings import LandingSettings, Settings

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
        if "dagster/asset_partition_range_start" in r.tags
    ]


def _ingest(settings: Settings, result: dg.SensorResult) -> None:
    """What the requested runs do to the landing record: build raw_bars for their ranges."""
    for start, end in _ranges(result):
        build_raw_bars(
            settings, sessions("XSHG", date.fromisoformat(start), date.fromisoformat(end))
        )


def test_new_changed_and_identical_files(settings: Settings, small_market: Market) -> None:
    defs = build_definitions(settings)
    with dg.instance_for_test() as instance:
        for day in DAYS[:3]:
            _write_day(settings, small_market, day)
        first = _tick(defs, instance, None)
        assert _ranges(first) == [(DAYS[0].isoformat(), DAYS[2].isoformat())]
        observed = {e.partition for e in first.asset_events}
        assert observed == {d.isoformat() for d in DAYS[:3]}

        # Requested, not yet ingested: not requested again.
        waiting = _tick(defs, instance, first.cursor)
        assert _ranges(waiting) == [] and waiting.cursor == first.cursor
        _ingest(settings, first)
        done = _tick(defs, instance, first.cursor)
        assert _ranges(done) == []
        idle = _tick(defs, instance, done.cursor)
        assert _ranges(idle) == [] and idle.cursor == done.cursor

        # The same bytes delivered again, rewritten in place and as a copy under a new name.
        path = settings.landing_dir / f"bars_{DAYS[1].isoformat()}.parquet"
        path.write_bytes(path.read_bytes())
        os.utime(path, ns=(1, 1))
        (settings.landing_dir / "redelivered").mkdir()
        shutil.copyfile(path, settings.landing_dir / "redelivered" / path.name)
        identical = _tick(defs, instance, idle.cursor)
        assert _ranges(identical) == []
        # ... and a run of that session does not trip over the copy.
        build_raw_bars(settings, [DAYS[1]])

        _write_day(settings, small_market, DAYS[1], scale=2.0)
        _write_day(settings, small_market, DAYS[4])
        changed = _tick(defs, instance, identical.cursor)
        assert _ranges(changed) == [
            (DAYS[1].isoformat(), DAYS[1].isoformat()),
            (DAYS[4].isoformat(), DAYS[4].isoformat()),
        ]
        keys = [r.run_key for r in changed.run_requests or []]
        assert len(set(keys)) == 2 and first.run_requests[0].run_key not in keys


def test_unanswered_request_is_made_again_under_a_new_key(
    settings: Settings, small_market: Market
) -> None:
    """A requested run that died for good (retries spent) does not keep its sessions out."""
    entries_home = settings
    for day in DAYS[:2]:
        _write_day(entries_home, small_market, day)
    entries = landing_catalog(settings).scan()
    keys = [k.isoformat() for k in DAYS]
    first = plan_landing_runs(entries, {}, keys, "XSHG", None, now=1000.0)
    soon = plan_landing_runs(entries, {}, keys, "XSHG", first.cursor, now=2000.0)
    assert first.runs and not soon.runs and soon.cursor == first.cursor
    later = plan_landing_runs(entries, {}, keys, "XSHG", soon.cursor, now=1000.0 + 7200)
    assert [(r.start, r.end) for r in later.runs] == [(r.start, r.end) for r in first.runs]
    assert later.runs[0].run_key != first.runs[0].run_key


def test_cursor_stays_small_whatever_the_number_of_files(
    settings: Settings, small_market: Market
) -> None:
    one_day = small_market.bars.filter(pl.col("date") == DAYS[0])
    for i, row in enumerate(one_day.head(2).iter_rows(named=True)):
        for n in range(1500):
            code = f"SH{600000 + 1500 * i + n}"
            pl.DataFrame([{**row, "instrument": code}], schema=one_day.schema).write_parquet(
                settings.landing_dir / f"{code}.parquet"
            )
    entries = landing_catalog(settings).scan()
    plan = plan_landing_runs(entries, {}, [d.isoformat() for d in DAYS], "XSHG", None, now=1.0)
    assert len(entries) == 3000 and plan.runs
    assert len(plan.cursor_text()) < 1024


def test_file_written_in_two_halves_is_ingested_once_whole(
    settings: Settings, small_market: Market
) -> None:
    slow = settings.model_copy(update={"landing": LandingSettings(settle_seconds=2)})
    defs = build_definitions(slow)
    day = DAYS[0]
    frame = small_market.bars.filter(pl.col("date") == day)
    text = frame.write_csv(date_format="%Y-%m-%d").encode()
    path = slow.landing_dir / f"bars_{day.isoformat()}.csv"
    with dg.instance_for_test() as instance:
        with open(path, "wb") as handle:
            handle.write(text[: len(text) // 2])
            handle.flush()
            assert _ranges(_tick(defs, instance, None)) == []  # still being written
            time.sleep(1.0)
            handle.write(text[len(text) // 2 :])
        assert _ranges(_tick(defs, instance, None)) == []  # just changed: not settled yet
        time.sleep(2.2)
        settled = _tick(defs, instance, None)
        assert _ranges(settled) == [(day.isoformat(), day.isoformat())]
        _ingest(slow, settled)
        assert _ranges(_tick(defs, instance, settled.cursor)) == []
    lake = pl.read_parquet(slow.lake_dir / "raw_bars" / f"{day.isoformat()}.parquet")
    assert lake.height == frame.height


def test_unreadable_file_without_dates_goes_to_the_rejection_run(
    settings: Settings, small_market: Market
) -> None:
    defs = build_definitions(settings)
    bad = settings.landing_dir / "SH600000.parquet"
    bad.write_bytes(b"not a parquet file")
    saturday = settings.landing_dir / "bars_2024-01-06.parquet"
    small_market.bars.filter(pl.col("date") == DAYS[0]).write_parquet(saturday)
    _write_day(settings, small_market, DAYS[0])
    with dg.instance_for_test() as instance:
        result = _tick(defs, instance, None)
        # The sensor itself moves nothing; one run quarantines, the session's run is unharmed.
        assert bad.exists() and saturday.exists()
        assert _ranges(result) == [(DAYS[0].isoformat(), DAYS[0].isoformat())]
        rejection = [r for r in result.run_requests or [] if r.run_key.startswith("rej")]
        assert rejection[0].asset_selection == [dg.AssetKey("landing_rejections")]
        assert materialize_partition(defs, instance, "landing_rejections", None).success
    assert not bad.exists() and not saturday.exists()
    reasons = {
        json.loads(p.read_text())["violations"][0]["rule"]
        for p in settings.quarantine_dir.glob("*.reason.json")
    }
    assert reasons == {"unreadable", "date_not_session"}
    assert build_raw_bars(settings, [DAYS[0]]).rows > 0


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
