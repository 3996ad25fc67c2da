"""Every operator against Qlib's own engine (``D.features``) on small hand-shaped data: constant
windows, missing sessions inside windows, windows longer than an instrument's history."""

from datetime import date
from pathlib import Path

import numpy as np
import polars as pl
import pytest

from qlib_assets.calendar import sessions
from qlib_assets.features.alpha158 import qlib_features
from qlib_assets.features.expressions import (
    compile_expression,
    compute_expressions,
    to_session_panel,
)
from qlib_assets.storage.qlib_bin import QlibProviderWriter
from qlib_assets_tests.features.parity import assert_parity

OPERATOR_EXPRESSIONS = {
    "abs": "Abs($close - Ref($close, 1))",
    "sign": "Sign($close - $open)",
    "log": "Log($volume + 1)",
    "power": "Power($close, 2) + $close ** 0.5",
    "neg_literal": "-1 * $close + 2 * $open",
    "not": "Not($close > $open)",
    "if_bool": "If($close > $open, $high, $low)",
    "if_num": "If($close - $open, 1, 0)",
    "greater": "Greater($open, Ref($close, 2))",
    "less": "Less($open, Ref($close, 2))",
    "cmp": "($close >= $open) + ($close <= $open) * 2 + ($close == $open) * 4",
    "ne_missing": "Mean($close != Ref($close, 1), 5)",
    "and_or": "Mean(($close > $open) & ($volume > Ref($volume, 1)) | ($high == $low), 4)",
    "ref": "Ref($close, 3) / $close",
    "mean": "Mean($close, 7)",
    "sum": "Sum($volume, 4)",
    "std": "Std($close, 6)",
    "var": "Var($close, 5)",
    "skew": "Skew($close, 6)",
    "kurt": "Kurt($close, 8)",
    "max": "Max($high, 9)",
    "min": "Min($low, 9)",
    "idxmax": "IdxMax($high, 7)",
    "idxmin": "IdxMin($low, 6)",
    # Max and IdxMax (Min and IdxMin) of the same windows come from one fused kernel
    "idxmax_max": "IdxMax($high, 9)",
    "min_idxmin": "Min($low, 6)",
    "quantile": "Quantile($close, 7, 0.3)",
    "med": "Med($close, 6)",
    "mad": "Mad($close, 6)",
    "rank": "Rank($close, 6)",
    "count": "Count($close, 8)",
    "delta": "Delta($close, 3)",
    "slope": "Slope($close, 6)",
    "rsquare": "Rsquare($close, 6)",
    "resi": "Resi($close, 6)",
    "wma": "WMA($close, 5)",
    "ema": "EMA($close, 6)",
    "ema_alpha": "EMA($close, 0.4)",
    "corr": "Corr($close, $volume, 6)",
    "cov": "Cov($close, Log($volume), 5)",
    # the right side is missing (log of a negative) on sessions where the left is present
    "corr_gaps": "Corr($close, Log($volume - 200000.5), 5)",
    "nested": "Mean(Std($close, 3), 4) + Max(Mean($close > Ref($close, 1), 3), 5)",
}
LABEL = {"label": "Ref($close, -2) / Ref($close, -1) - 1"}


def _series(rng: np.random.Generator, n: int) -> dict[str, np.ndarray]:
    close = 10 * np.exp(np.cumsum(rng.normal(0, 0.02, n)))
    open_ = close * (1 + rng.normal(0, 0.01, n))
    return {
        "open": open_,
        "close": close,
        "high": np.maximum(open_, close) * (1 + rng.uniform(0, 0.02, n)),
        "low": np.minimum(open_, close) * (1 - rng.uniform(0, 0.02, n)),
        "volume": rng.uniform(1e5, 5e5, n).round(),
    }


@pytest.fixture(scope="module")
def shaped(tmp_path_factory: pytest.TempPathFactory) -> tuple[pl.DataFrame, list[date], Path]:
    days = list(sessions("XSHG", date(2023, 1, 3), date(2023, 7, 31)))[:120]
    rng = np.random.default_rng(7)
    frames = []
    for name, keep in {
        # every session
        "SH600001": np.arange(120),
        # suspensions inside windows, then a flat stretch (constant windows)
        "SH600002": np.setdiff1d(np.arange(120), [10, 11, 12, 13, 14, 40, 41, 90]),
        # listed three sessions before the end: every window is longer than its history
        "SH600003": np.arange(117, 120),
        # delisted after 50 sessions, one suspension
        "SH600004": np.setdiff1d(np.arange(50), [25]),
    }.items():
        data = _series(rng, 120)
        if name == "SH600002":
            for field in ("open", "close", "high", "low", "volume"):
                data[field][60:85] = data[field][60]
        frame = pl.DataFrame({"instrument": name, "date": days, **data})[keep.tolist()]
        frames.append(frame)
    bars = pl.concat(frames).with_columns(
        vwap=(pl.col("open") + pl.col("close")) / 2,
        amount=pl.col("close") * pl.col("volume"),
        factor=pl.lit(1.0),
    )
    # Qlib stores float32: both engines start from the same rounded inputs.
    bars = bars.with_columns(pl.exclude("instrument", "date").cast(pl.Float32).cast(pl.Float64))
    root = tmp_path_factory.mktemp("qlib_ops")
    QlibProviderWriter(root, "XSHG").rebuild(bars, days)
    return bars, days, root


def test_every_operator_matches_qlib(shaped: tuple[pl.DataFrame, list[date], Path]) -> None:
    bars, days, root = shaped
    exprs = OPERATOR_EXPRESSIONS | LABEL
    theirs = qlib_features(root, exprs, bars)
    ours = compute_expressions(to_session_panel(bars, days), exprs, allow_future=True)
    assert_parity(ours, theirs, list(exprs))


def test_single_expressions_over_instrument_match_qlib(
    shaped: tuple[pl.DataFrame, list[date], Path],
) -> None:
    bars, days, root = shaped
    theirs = qlib_features(root, OPERATOR_EXPRESSIONS, bars)
    panel = to_session_panel(bars, days)
    ours = panel.select(
        "instrument",
        "date",
        *(compile_expression(text).alias(name) for name, text in OPERATOR_EXPRESSIONS.items()),
    )
    assert_parity(ours, theirs, list(OPERATOR_EXPRESSIONS))


def test_data_has_the_shapes_it_claims(shaped: tuple[pl.DataFrame, list[date], Path]) -> None:
    bars, days, _ = shaped
    panel = to_session_panel(bars, days)
    suspended = panel.filter(pl.col("close").is_null())
    assert set(suspended.get_column("instrument")) == {"SH600002", "SH600004"}
    assert panel.filter(pl.col("instrument") == "SH600003").height == 3
    flat = panel.filter(pl.col("instrument") == "SH600002").get_column("close")[60:85]
    assert flat.n_unique() == 1


def test_session_panel_spans_first_to_last_bar() -> None:
    days = [date(2024, 1, d) for d in (2, 3, 4, 5, 8, 9)]
    bars = pl.DataFrame(
        {
            "instrument": ["A", "A", "B"],
            "date": [days[1], days[4], days[2]],
            "close": [1.0, 2.0, 3.0],
        }
    )
    panel = to_session_panel(bars, days)
    assert panel.get_column("date").to_list() == [*days[1:5], days[2]]
    assert panel.get_column("close").to_list() == [1.0, None, None, 2.0, 3.0]
    early = to_session_panel(bars, days, first_dates={"B": days[0]})
    assert early.filter(pl.col("instrument") == "B").get_column("date").to_list() == days[:3]


def test_bars_off_the_calendar_are_refused() -> None:
    bars = pl.DataFrame({"instrument": ["A"], "date": [date(2024, 1, 6)], "close": [1.0]})
    with pytest.raises(ValueError, match="outside the session calendar"):
        to_session_panel(bars, [date(2024, 1, 5), date(2024, 1, 8)])


@pytest.mark.parametrize("picks", [(119,), (3, 30, 49, 70, 84, 110, 117, 118, 119)])
def test_targets_equal_the_same_rows_of_a_full_run(
    shaped: tuple[pl.DataFrame, list[date], Path], picks: tuple[int, ...]
) -> None:
    """Windows evaluated at the target rows only (gathered, numpy) against every row (polars):
    sessions at instrument starts, inside and after suspensions, in the flat stretch, and the
    last ones, where the label reads past an instrument's end."""
    bars, days, _ = shaped
    exprs = OPERATOR_EXPRESSIONS | LABEL
    panel = to_session_panel(bars, days)
    targets = [days[i] for i in picks]
    full = compute_expressions(panel, exprs, allow_future=True)
    expected = full.filter(pl.col("date").is_in(pl.Series(targets, dtype=pl.Date).implode()))
    ours = compute_expressions(panel, exprs, allow_future=True, targets=targets)
    assert ours.height == expected.height > 0
    assert_parity(ours, expected, list(exprs))
    for name in exprs:
        a = ours.get_column(name).to_numpy().astype(np.float64)
        b = expected.get_column(name).to_numpy().astype(np.float64)
        assert np.allclose(a, b, rtol=1e-6, atol=1e-7, equal_nan=True), name


def test_targets_outside_the_panel_give_no_rows(
    shaped: tuple[pl.DataFrame, list[date], Path],
) -> None:
    bars, days, _ = shaped
    panel = to_session_panel(bars, days)
    ours = compute_expressions(panel, {"mean": "Mean($close, 5)"}, targets=[date(2030, 1, 2)])
    assert ours.columns == ["instrument", "date", "mean"]
    assert ours.height == 0


def test_window_sums_without_running_totals_are_the_same(
    shaped: tuple[pl.DataFrame, list[date], Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    """A panel too large for exact running totals sums counts and positions window by window:
    the same values."""
    bars, days, _ = shaped
    panel = to_session_panel(bars, days)
    exact = compute_expressions(panel, OPERATOR_EXPRESSIONS)
    monkeypatch.setattr("qlib_assets.features.expressions.planning._EXACT_TOTAL", 0.0)
    rolled = compute_expressions(panel, OPERATOR_EXPRESSIONS)
    assert_parity(rolled, exact, list(OPERATOR_EXPRESSIONS))
