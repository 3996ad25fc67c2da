"""Qlib's TopkDropout backtest over our provider, with the benchmark under our control."""

import json
from dataclasses import dataclass
from datetime import date
from pathlib import Path

import numpy as np
import polars as pl
import pytest

from qlib_assets.evaluation.backtest import (
    NO_BENCHMARK,
    BacktestConfig,
    BacktestReport,
    equal_weight_benchmark,
    init_qlib,
    limit_expressions,
    run_backtest,
)
from qlib_assets.features.alpha158 import compute_label
from qlib_assets.market.synthetic import MarketSpec, generate_market
from qlib_assets.storage.qlib_bin import QlibProviderWriter

MARKET = MarketSpec(instruments=60, start=date(2022, 1, 4), end=date(2022, 9, 30), seed=9)
CONFIG = BacktestConfig(topk=10, n_drop=2, account=1e8)


@dataclass(frozen=True)
class BacktestMarket:
    provider: Path
    bars: pl.DataFrame
    sessions: tuple[date, ...]
    foresight: pl.DataFrame  # signal = the label: the return the trade of d+1 earns


@pytest.fixture(scope="module")
def market(tmp_path_factory: pytest.TempPathFactory) -> BacktestMarket:
    generated = generate_market(MARKET)
    provider = tmp_path_factory.mktemp("provider")
    QlibProviderWriter(provider, "XSHG").rebuild(generated.bars, generated.sessions)
    label = compute_label(generated.bars, sessions=generated.sessions)
    test_days = generated.sessions[-80:-3]
    foresight = label.filter(pl.col("date").is_in(test_days)).rename({"label": "signal"})
    return BacktestMarket(provider, generated.bars, generated.sessions, foresight.drop_nulls())


def _assert_finite(report: BacktestReport, allow_none: tuple[str, ...] = ()) -> None:
    json.dumps(report.to_dict(), allow_nan=False)
    for name, value in report.metrics.items():
        if name not in allow_none:
            assert value is not None and np.isfinite(value), name


def test_equal_weight_benchmark_equals_qlibs_list_benchmark(market: BacktestMarket) -> None:
    from qlib.backtest.report import PortfolioMetrics

    init_qlib(market.provider)
    codes = sorted(market.bars.get_column("instrument").unique().to_list())
    days = market.sessions[100:160]
    qlib_bench = PortfolioMetrics._cal_benchmark(
        {"benchmark": codes, "start_time": str(days[1]), "end_time": str(days[-1])}, "day"
    )
    ours = equal_weight_benchmark(market.bars, days)
    assert ours.get_column("date").to_list() == [ts.date() for ts in qlib_bench.index]
    # Qlib reads float32 closes from the provider.
    np.testing.assert_allclose(ours["bench"].to_numpy(), qlib_bench.to_numpy(), atol=2e-6)


def test_qlib_without_a_benchmark_falls_back_to_sh000300(market: BacktestMarket) -> None:
    """The pitfall the backtest avoids: no benchmark means CSI300, absent from our provider."""
    from qlib.backtest.report import PortfolioMetrics

    init_qlib(market.provider)
    config = {"start_time": str(market.sessions[100]), "end_time": str(market.sessions[120])}
    with pytest.raises(ValueError, match="SH000300"):
        PortfolioMetrics._cal_benchmark(config, "day")


def test_limit_expressions_flag_the_sessions_at_the_price_limit(market: BacktestMarket) -> None:
    from qlib.backtest import get_exchange

    init_qlib(market.provider)
    start, end = market.sessions[1], market.sessions[-1]
    exchange = get_exchange(
        start_time=str(start),
        end_time=str(end),
        limit_threshold=limit_expressions(0.095),
        deal_price="close",
    )
    flags = exchange.quote_df[["limit_buy", "limit_sell", "$close"]].dropna(subset=["$close"])
    change = (
        market.bars.sort("instrument", "date")
        .with_columns(
            prev=pl.col("date").shift(1).over("instrument"),
            change=pl.col("close") / pl.col("close").shift(1).over("instrument") - 1,
        )
        .filter(pl.col("date").is_between(start, end))
    )
    calendar = {d: i for i, d in enumerate(market.sessions)}
    # Only a change over consecutive sessions is a limit test (Ref reads the previous session).
    consecutive = change.filter(
        pl.col("prev").replace_strict(calendar, default=-10) + 1
        == pl.col("date").replace_strict(calendar)
    )
    up = {
        (r["instrument"], r["date"])
        for r in consecutive.filter(pl.col("change") >= 0.095).iter_rows(named=True)
    }
    down = {
        (r["instrument"], r["date"])
        for r in consecutive.filter(pl.col("change") <= -0.095).iter_rows(named=True)
    }
    assert up and down
    flagged_up = {(code, ts.date()) for code, ts in flags.index[flags["limit_buy"]]}
    flagged_down = {(code, ts.date()) for code, ts in flags.index[flags["limit_sell"]]}
    assert flagged_up == up
    assert flagged_down == down
    # Qlib's own float threshold reads $change, which the provider lacks: no flag at all.
    silent = get_exchange(
        start_time=str(start), end_time=str(end), limit_threshold=0.095, deal_price="close"
    ).quote_df.dropna(subset=["$close"])
    assert not silent["limit_buy"].any() and not silent["limit_sell"].any()


def test_backtest_without_a_benchmark_reports_the_strategys_own_return(
    market: BacktestMarket, tmp_path: Path
) -> None:
    config = BacktestConfig(**{**CONFIG.__dict__, "benchmark": NO_BENCHMARK})
    report = run_backtest(
        market.foresight, market.provider, config=config, plot_path=tmp_path / "cum.png"
    )
    assert (report.daily["bench"] == 0.0).all()
    assert report.sessions == len(market.foresight["date"].unique())
    _assert_finite(report, allow_none=("benchmark.information_ratio",))
    m = report.metrics
    assert m["excess_return_with_cost.annualized_return"] == pytest.approx(
        m["return_with_cost.annualized_return"]
    )
    # Foresight of the label is worth a lot: the signal timing is right.
    assert m["excess_return_with_cost.annualized_return"] > 1.0
    assert (
        m["excess_return_without_cost.annualized_return"]
        > m["excess_return_with_cost.annualized_return"]
    )
    assert 0 < m["turnover"] < 1
    assert Path(report.plot or "").read_bytes()[:4] == b"\x89PNG"


def test_backtest_with_the_equal_weight_benchmark(market: BacktestMarket) -> None:
    report = run_backtest(market.foresight, market.provider, market.bars, CONFIG)
    days = [market.sessions[market.sessions.index(report.start) - 1], *report.daily["date"]]
    expected = equal_weight_benchmark(market.bars, days)
    np.testing.assert_allclose(report.daily["bench"].to_numpy(), expected["bench"].to_numpy())
    assert report.daily["bench"].abs().sum() > 0
    _assert_finite(report)
    assert report.to_dict()["benchmark"] == "equal_weight"
    inverted = run_backtest(
        market.foresight.with_columns(-pl.col("signal")), market.provider, market.bars, CONFIG
    )
    assert (
        inverted.metrics["excess_return_without_cost.annualized_return"]
        < 0
        < report.metrics["excess_return_without_cost.annualized_return"]
    )
