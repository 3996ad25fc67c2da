"""Feature assets through Dagster: a one-session run equals the same session of a backfill."""

from datetime import date

import dagster as dg
import numpy as np
import polars as pl
import pytest

from qlib_assets.calendar import sessions
from qlib_assets.defs.build import build_definitions
from qlib_assets.features.alpha158 import compute_alpha158, compute_label
from qlib_assets.features.builders import indicator_lookback
from qlib_assets.features.indicators import compute_indicators
from qlib_assets.market.raw_bars import build_raw_bars
from qlib_assets.market.synthetic import MarketSpec, generate_market
from qlib_assets.orchestration import materialize_range
from qlib_assets.settings import Settings
from qlib_assets.storage.lake import Lake

START, END = date(2022, 1, 4), date(2024, 6, 28)
DAYS = sessions("XSHG", START, END)


@pytest.fixture(scope="module")
def long_market() -> pl.DataFrame:
    """Long enough that the indicators' warm-up fits before the sessions compared."""
    return generate_market(MarketSpec(instruments=25, start=START, end=END, seed=11)).bars


def _ingest(settings: Settings, bars: pl.DataFrame) -> None:
    for day, part in bars.partition_by("date", as_dict=True).items():
        part.write_parquet(settings.landing_dir / f"bars_{day[0].isoformat()}.parquet")
    build_raw_bars(settings, list(DAYS))


def _values(frame: pl.DataFrame) -> np.ndarray:
    return frame.sort("instrument").drop("instrument", "date").cast(pl.Float64).to_numpy()


def test_one_session_equals_full_history(settings: Settings, long_market: pl.DataFrame) -> None:
    """The Dagster run reads only a lookback window; the reference computes on all history."""
    assert len(DAYS) > indicator_lookback(settings) + 20
    _ingest(settings, long_market)
    defs = build_definitions(settings)
    target = DAYS[-3]
    with dg.instance_for_test() as instance:
        one = materialize_range(
            defs,
            instance,
            ["indicators", "alpha158", "labels"],
            target.isoformat(),
            target.isoformat(),
            log_level="ERROR",
        )
        assert one.success
    universe = long_market.filter(pl.col("date") == target).select("instrument", "date")
    references = {
        "indicators": compute_indicators(long_market),
        "alpha158": compute_alpha158(long_market, sessions=list(DAYS)),
        "labels": compute_label(long_market, sessions=list(DAYS)),
    }
    lake = Lake(settings.lake_dir)
    for asset, full in references.items():
        expected = universe.join(full, on=["instrument", "date"], how="left")
        single = lake.read_days(asset, [target])
        assert single.columns == expected.columns
        assert single.select("instrument").equals(expected.sort("instrument").select("instrument"))
        np.testing.assert_allclose(
            _values(single), _values(expected), rtol=1e-8, atol=1e-10, equal_nan=True
        )
        # Every column has a value for some instrument on the session.
        assert not np.isnan(_values(single)).all(axis=0).any()


def test_labels_lag_two_sessions(settings: Settings, long_market: pl.DataFrame) -> None:
    _ingest(settings, long_market)
    defs = build_definitions(settings)
    with dg.instance_for_test() as instance:
        too_late = materialize_range(
            defs,
            instance,
            ["labels"],
            DAYS[-2].isoformat(),
            DAYS[-2].isoformat(),
            raise_on_error=False,
            log_level="ERROR",
        )
        assert not too_late.success
        failure = next(e for e in too_late.all_events if e.is_step_failure)
        assert "raw_bars is not materialized" in str(failure.step_failure_data.error)
        ok = materialize_range(
            defs, instance, ["labels"], DAYS[-3].isoformat(), DAYS[-3].isoformat()
        )
        assert ok.success
    labels = Lake(settings.lake_dir).read_days("labels", [DAYS[-3]])
    close = long_market.pivot(on="date", index="instrument", values="close")
    c1, c2 = close[DAYS[-2].isoformat()], close[DAYS[-1].isoformat()]
    expected = dict(zip(close["instrument"], (c2 / c1 - 1).to_list(), strict=True))
    for inst, value in labels.select("instrument", "label").iter_rows():
        want = expected[inst]
        if want is None or np.isnan(value):
            assert want is None and np.isnan(value)
        else:
            # Qlib's label is float32: a small return keeps ~1e-7 absolute precision.
            assert value == pytest.approx(want, abs=1e-6)


def test_custom_formulas_from_settings(settings: Settings, long_market: pl.DataFrame) -> None:
    custom = settings.model_copy(
        update={
            "custom_indicators": {
                "ret5": "$close / Ref($close, 5) - 1",
                "range_pct": 'polars:(pl.col("high") - pl.col("low")) / pl.col("close")',
            },
            "custom_factors": {"vol_ratio": "$volume / Mean($volume, 20)"},
        }
    )
    _ingest(custom, long_market)
    defs = build_definitions(custom)
    day = DAYS[-1]
    with dg.instance_for_test() as instance:
        assert materialize_range(
            defs, instance, ["indicators", "alpha158"], day.isoformat(), day.isoformat()
        ).success
    lake = Lake(custom.lake_dir)
    indicators = lake.read_days("indicators", [day])
    bars = long_market.filter(pl.col("date") == day).sort("instrument")
    expected = ((bars["high"] - bars["low"]) / bars["close"]).to_numpy()
    np.testing.assert_allclose(indicators.sort("instrument")["range_pct"].to_numpy(), expected)
    assert indicators["ret5"].is_not_null().sum() > 0
    assert "vol_ratio" in lake.read_days("alpha158", [day]).columns


def test_bad_custom_formula_fails_at_load(settings: Settings) -> None:
    bad = settings.model_copy(update={"custom_indicators": {"oops": "Mean($clsoe, 5)"}})
    with pytest.raises(ValueError, match=r"oops.*clsoe"):
        build_definitions(bad)
