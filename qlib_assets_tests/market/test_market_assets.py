"""raw_bars and qlib_dataset through Dagster: one run per ranged backfill, checks, failures."""

import subprocess
import sys
from datetime import date
from pathlib import Path

import dagster as dg
import polars as pl
import pytest

from qlib_assets.calendar import sessions
from qlib_assets.defs.build import build_definitions
from qlib_assets.features.alpha158 import qlib_features
from qlib_assets.instance import prepare_dagster_home
from qlib_assets.market.synthetic import Market
from qlib_assets.orchestration import materialize_range
from qlib_assets.settings import Settings
from qlib_assets.storage.lake import Lake

DAYS = sessions("XSHG", date(2024, 1, 2), date(2024, 2, 29))
PROJECT = Path(__file__).resolve().parents[2]


def _land(settings: Settings, market: Market) -> None:
    for day in DAYS:
        frame = market.bars.filter(pl.col("date") == day)
        frame.write_parquet(settings.landing_dir / f"bars_{day.isoformat()}.parquet")


def test_ranged_backfill_is_one_run(settings: Settings, small_market: Market) -> None:
    _land(settings, small_market)
    defs = build_definitions(settings)
    with dg.instance_for_test() as instance:
        result = materialize_range(
            defs, instance, ["raw_bars", "qlib_dataset"], DAYS[0].isoformat(), DAYS[-1].isoformat()
        )
        assert result.success
        assert len(instance.get_run_records()) == 1
        for asset in ("raw_bars", "qlib_dataset"):
            done = instance.get_materialized_partitions(dg.AssetKey(asset))
            assert done == {d.isoformat() for d in DAYS}
        checks = {e.check_name: e.passed for e in result.get_asset_check_evaluations()}
        assert set(checks) == {"price_limits", "coverage"}

    expected = small_market.bars.filter(pl.col("date").is_in(DAYS))
    stored = Lake(settings.lake_dir).read_days("raw_bars", DAYS).sort("instrument", "date")
    assert stored.equals(expected.sort("instrument", "date"))
    assert (settings.qlib_data_dir / "calendars" / "day.txt").read_text().split() == [
        d.isoformat() for d in DAYS
    ]


def test_price_jump_is_a_warning_not_a_failure(settings: Settings, small_market: Market) -> None:
    _land(settings, small_market)
    day = DAYS[5]
    path = settings.landing_dir / f"bars_{day.isoformat()}.parquet"
    frame = pl.read_parquet(path)
    inst = frame.get_column("instrument")[0]
    hit = pl.col("instrument") == inst
    frame.with_columns(
        close=pl.when(hit).then(pl.col("close") * 1.4).otherwise(pl.col("close")),
        high=pl.when(hit).then(pl.col("high") * 1.4).otherwise(pl.col("high")),
    ).write_parquet(path)
    defs = build_definitions(settings)
    with dg.instance_for_test() as instance:
        materialize_range(defs, instance, ["raw_bars"], DAYS[0].isoformat(), DAYS[4].isoformat())
        result = materialize_range(defs, instance, ["raw_bars"], day.isoformat(), day.isoformat())
    assert result.success
    (jump,) = [e for e in result.get_asset_check_evaluations() if e.check_name == "price_limits"]
    assert not jump.passed and jump.severity == dg.AssetCheckSeverity.WARN
    assert jump.metadata["violations"].value == 1


def test_rejected_file_fails_the_run_and_names_the_rule(
    settings: Settings, small_market: Market
) -> None:
    _land(settings, small_market)
    path = settings.landing_dir / f"bars_{DAYS[2].isoformat()}.parquet"
    frame = pl.read_parquet(path)
    frame.with_columns(volume=pl.lit(-1.0)).write_parquet(path)
    defs = build_definitions(settings)
    with dg.instance_for_test() as instance:
        result = materialize_range(
            defs,
            instance,
            ["raw_bars"],
            DAYS[0].isoformat(),
            DAYS[3].isoformat(),
            raise_on_error=False,
        )
        assert not result.success
        failure = next(e for e in result.all_events if e.is_step_failure)
        text = str(failure.step_failure_data.error)
        assert str(path) in text and "negative_volume" in text and "row 1" in text
        assert instance.get_materialized_partitions(dg.AssetKey("raw_bars")) == set()
    assert not Lake(settings.lake_dir).days("raw_bars")


def test_definitions_validate(settings: Settings, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DAGSTER_HOME", "")
    env = {
        "QLIB_ASSETS_HOME": str(settings.root),
        "DAGSTER_HOME": str(prepare_dagster_home(settings)),
        "PATH": str(Path(sys.executable).parent),
    }
    done = subprocess.run(
        [
            str(Path(sys.executable).parent / "dagster"),
            "definitions",
            "validate",
            "-w",
            "workspace.yaml",
        ],
        cwd=PROJECT,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stdout + done.stderr


def test_qlib_reads_raw_bars_after_a_range_rewrite(
    settings: Settings, small_market: Market
) -> None:
    _land(settings, small_market)
    defs = build_definitions(settings)
    assets = ["raw_bars", "qlib_dataset"]
    with dg.instance_for_test() as instance:
        materialize_range(defs, instance, assets, DAYS[0].isoformat(), DAYS[-1].isoformat())
        for day in DAYS[10:13]:
            path = settings.landing_dir / f"bars_{day.isoformat()}.parquet"
            changed = pl.read_parquet(path).with_columns(
                pl.col(c) * 1.01 for c in ("open", "high", "low", "close", "vwap")
            )
            changed.write_parquet(path)
        rewrite = materialize_range(
            defs, instance, assets, DAYS[10].isoformat(), DAYS[12].isoformat()
        )
        assert rewrite.success
    stored = Lake(settings.lake_dir).read_days("raw_bars", DAYS)
    fields = ["open", "high", "low", "close", "volume", "amount", "vwap", "factor"]
    read = qlib_features(settings.qlib_data_dir, {f: f"${f}" for f in fields}, stored)
    got = stored.select("instrument", "date").join(read, on=["instrument", "date"], how="left")
    expected = stored.select("instrument", "date", *[pl.col(f).cast(pl.Float32) for f in fields])
    assert got.sort("instrument", "date").equals(expected.sort("instrument", "date"))
    # Sessions inside an instrument's life without a bar (suspensions) read back as NaN.
    gaps = read.join(stored, on=["instrument", "date"], how="anti")
    assert gaps.height > 0 and gaps.select(pl.col(fields).is_nan().all()).row(0) == (True,) * 8
