"""Calibrated drift: few false alarms on a stationary market, a planted shift flagged at once.

Both markets are small (60-80 instruments, ~1.5 years) and monitored on a fixed subset of
Alpha158 columns spanning its families, so the whole file scores a few thousand columns. The
bounds are the issue's: under 5% of stationary sessions flagged, a shift flagged within 5
sessions. benchmarks/drift.py --calibration measures the same on 158 columns.
"""

from datetime import date

import numpy as np
import polars as pl
import pytest

from qlib_assets.features.alpha158 import compute_alpha158
from qlib_assets.market.synthetic import MarketSpec, generate_market
from qlib_assets.monitoring.drift import (
    calibrate_thresholds,
    feature_drift,
    prediction_drift,
    session_scores,
)
from qlib_assets_tests.monitoring.conftest import REFERENCE, SHIFT, START, ShiftedFeatures

COLUMNS = [
    "KMID", "KLEN", "KUP", "KLOW", "KSFT", "OPEN0", "HIGH0", "LOW0", "ROC5", "ROC20", "MA5",
    "MA20", "STD5", "STD20", "BETA20", "RSQR20", "RESI20", "MAX20", "MIN20", "QTLU20", "RANK20",
    "RSV20", "IMAX20", "IMXD20", "CORR20", "CORD20", "CNTP20", "SUMP20", "VMA5", "VMA20",
    "VSTD20", "WVMA20", "VSUMP20",
]  # fmt: skip
MONITORED = (date(2024, 1, 2), date(2024, 3, 29))


@pytest.fixture(scope="module")
def stationary() -> pl.DataFrame:
    market = generate_market(MarketSpec(instruments=60, start=START, end=MONITORED[1], seed=3))
    return compute_alpha158(market.bars).select("instrument", "date", *COLUMNS)


def test_stationary_market_flags_under_5_percent_of_sessions(stationary: pl.DataFrame) -> None:
    reference = stationary.filter(pl.col("date").is_between(*REFERENCE))
    limits = calibrate_thresholds(reference, COLUMNS, sessions=20)
    monitored = stationary.filter(pl.col("date").is_between(*MONITORED))
    calibrated = feature_drift(reference, monitored, COLUMNS, threshold=limits)
    assert len(calibrated.sessions) > 55
    assert calibrated.alarm_rate() < 0.05, calibrated.summary().filter(pl.col("alarm"))
    assert calibrated.threshold is None
    assert set(calibrated.scores.get_column("threshold")) == set(limits.values())
    # The global threshold this replaces cries wolf on the same scores.
    scores = calibrated.scores
    assert scores.get_column("drifted").mean() < 0.5 * (scores.get_column("score") >= 0.45).mean()


def test_planted_shift_is_flagged_within_5_sessions(shifted_features: ShiftedFeatures) -> None:
    reference = shifted_features.reference.select("instrument", "date", *COLUMNS)
    limits = calibrate_thresholds(reference, COLUMNS, sessions=20)
    days = shifted_features.before + shifted_features.after
    current = shifted_features.alpha158.filter(pl.col("date").is_in(days))
    result = feature_drift(reference, current, COLUMNS, threshold=limits)
    delay = result.detection_delay(SHIFT)
    assert delay is not None and delay < 5, result.summary()
    before = [s for s in result.sessions if s.date < SHIFT]
    assert sum(s.alarm for s in before) <= len(before) * 0.05


def test_thresholds_are_quantiles_of_the_reference_sessions(
    shifted_features: ShiftedFeatures,
) -> None:
    """A threshold is margin x the chosen quantile of the calibration sessions' own scores, each
    session scored whole against the same sample monitoring uses."""
    reference = shifted_features.reference
    names = ["KLEN", "ROC5"]
    limits = calibrate_thresholds(
        reference, names, sessions=5, quantile=0.5, margin=3.0, sample=2_000
    )
    days = sorted(reference.get_column("date").unique().to_list())
    picked = [days[round(i * (len(days) - 1) / 4)] for i in range(5)]
    pool = reference.select(names).with_row_index("_r").sample(n=2_000, seed=0).sort("_r")
    scores = session_scores(pool.drop("_r"), reference.filter(pl.col("date").is_in(picked)), names)
    assert scores.get_column("date").n_unique() == 5
    for name in names:
        own = scores.filter(pl.col("column") == name).get_column("score").to_numpy()
        assert limits[name] == pytest.approx(3.0 * float(np.median(own)), rel=1e-12)
    with pytest.raises(ValueError, match="'date' column"):
        calibrate_thresholds(reference.drop("date"), names)
    with pytest.raises(ValueError, match="no threshold for columns"):
        feature_drift(reference, reference.head(10), ["KLEN", "ROC5"], threshold={"KLEN": 1.0})


def test_prediction_drift_calibrates_on_the_reference_sessions(
    shifted_features: ShiftedFeatures,
) -> None:
    """A linear score on range and volume features: calm before the shift, flagged after."""

    def score(frame: pl.DataFrame) -> pl.DataFrame:
        value = pl.col("KLEN") - 0.5 * pl.col("VMA20") + pl.col("ROC5")
        return frame.select("date", value.cast(pl.Float64).alias("score")).drop_nans()

    reference = score(shifted_features.reference)
    days = shifted_features.before + shifted_features.after
    current = score(shifted_features.alpha158.filter(pl.col("date").is_in(days)))
    result = prediction_drift(reference, current)
    assert result.threshold is None
    delay = result.detection_delay(SHIFT)
    assert delay is not None and delay < 5, result.summary()
    assert not any(s.alarm for s in result.sessions if s.date < SHIFT), result.summary()
