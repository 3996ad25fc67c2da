"""Rolling IC decay of a model that learned the regime before the shift.

Thresholds: bound = max(0, 0.5 x valid IC), window 20. The stale model's valid IC (Jan-Feb
2024) is 0.045, so the bound is 0.023; before the shift its rolling IC stays at or above 0.040,
after it the daily IC is about zero and the 20-session mean crosses the bound within a week.
"""

from datetime import date

import numpy as np
import polars as pl
import pytest
from scipy import stats

from qlib_assets.monitoring.decay import ROW_SCHEMA, ic_bound, performance_decay
from qlib_assets_tests.monitoring.conftest import SHIFT, DecayCase


def test_breach_after_the_shift_only(decay_case: DecayCase) -> None:
    result = decay_case.result
    rows = result.rows
    assert rows.schema == ROW_SCHEMA
    assert decay_case.valid_ic > 0.03
    before = rows.filter(pl.col("date") < SHIFT)
    assert before.get_column("rolling_ic").drop_nulls().len() > 50
    assert not before.get_column("breached").any()
    first = result.breach_dates[0]
    sessions_to_breach = rows.filter(pl.col("date").is_between(SHIFT, first)).height
    assert first >= SHIFT and sessions_to_breach <= 10
    assert result.breached  # still decayed at the end of the range
    assert result.evidence["first_breach"] == first.isoformat()
    assert result.evidence["ic_bound"] == pytest.approx(0.5 * decay_case.valid_ic)


def test_rolling_ic_matches_scipy(decay_case: DecayCase) -> None:
    """Daily IC against scipy's Pearson and Spearman, the rolling mean against numpy."""
    rows = decay_case.result.rows
    joined = decay_case.predictions.join(decay_case.labels, on=["instrument", "date"])
    for day in [date(2024, 1, 10), date(2024, 4, 2)]:
        part = joined.filter(pl.col("date") == day)
        score, label = part.get_column("score").to_numpy(), part.get_column("label").to_numpy()
        row = rows.filter(pl.col("date") == day).row(0, named=True)
        assert row["ic"] == pytest.approx(stats.pearsonr(score, label).statistic, abs=1e-12)
        assert row["rank_ic"] == pytest.approx(stats.spearmanr(score, label).statistic, abs=1e-12)
    daily = rows.get_column("ic").to_numpy()
    at = rows.height - 1
    assert rows.get_column("rolling_ic")[at] == pytest.approx(daily[at - 19 : at + 1].mean())
    assert rows.get_column("rolling_ic")[:19].is_null().all()


def test_rank_ic_bound_and_floor(decay_case: DecayCase) -> None:
    """A rank-IC level the model never reaches breaches through rank IC alone; a floor above
    every rolling IC breaches every full window."""
    predictions = decay_case.predictions.filter(pl.col("date") < SHIFT)
    rank_only = performance_decay(
        predictions, decay_case.labels, valid_ic=0.0, valid_rank_ic=1.0, ratio=0.5
    )
    full = rank_only.rows.filter(pl.col("rolling_rank_ic").is_not_null())
    assert full.get_column("breached").all()
    assert (full.get_column("rolling_ic") >= full.get_column("ic_bound")).all()

    floored = performance_decay(predictions, decay_case.labels, valid_ic=0.0, floor=0.5)
    assert floored.evidence["ic_bound"] == 0.5
    assert len(floored.breach_dates) == floored.rows.get_column("rolling_ic").drop_nulls().len()
    assert ic_bound(0.04, ratio=0.5, floor=0.0) == 0.02
    assert ic_bound(-0.01, ratio=0.5, floor=0.0) == 0.0
    assert np.isfinite(floored.evidence["rolling_ic"])
