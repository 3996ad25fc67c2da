"""SHAP for one session (5,000 instruments x 158 Alpha158 features) with LightGBM, and factor
analysis of the 158 factors over two years.

Goals: SHAP <= 10 s, factor analysis <= 30 s. Each timed in one process against the plain library
call it wraps: ``explain_rows`` (infer processors, TreeExplainer, additivity check) vs
``shap.TreeExplainer(booster).shap_values(X)`` on the processed matrix; ``factor_summary`` (IC
and rank IC at 4 horizons, autocorrelation, coverage) vs one polars ``group_by(date, factor)``
of Pearson and Spearman correlations at one horizon.

    .venv/bin/python benchmarks/explain.py [--instruments 5000] [--train-sessions 60]
        [--factor-instruments 1000] [--factor-sessions 490]
"""

import qlib_assets  # noqa: F401, I001 (first: it sets polars' allocator options)
import argparse
import time
from datetime import date, timedelta

import lightgbm as lgb
import numpy as np
import polars as pl

from qlib_assets.calendar import sessions as exchange_sessions
from qlib_assets.explain.contributions import explain_rows
from qlib_assets.explain.model_input import ServedModel, processed_input
from qlib_assets.features.alpha158 import alpha158_lookback, compute_alpha158, compute_label
from qlib_assets.market.synthetic import MarketSpec, generate_market

START = date(2022, 1, 4)
GOAL_SECONDS = 10.0
FACTOR_GOAL_SECONDS = 30.0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--instruments", type=int, default=5000)
    parser.add_argument("--train-sessions", type=int, default=60)
    parser.add_argument("--factor-instruments", type=int, default=1000)
    parser.add_argument("--factor-sessions", type=int, default=490)
    args = parser.parse_args()
    shap_session(args.instruments, args.train_sessions)
    factor_analysis(args.factor_instruments, args.factor_sessions)


def factor_analysis(instruments: int, sessions: int) -> None:
    from qlib_assets.explain.factors import daily_ic, factor_summary, forward_returns

    total = alpha158_lookback() + sessions + 20
    days = list(exchange_sessions("XSHG", START, START + timedelta(days=int(total * 1.6) + 30)))
    days = days[:total]
    market = generate_market(MarketSpec(instruments, days[0], days[-1], seed=1))
    table = compute_alpha158(market.bars, targets=days[-(sessions + 20) : -20])
    columns = [c for c in table.columns if c not in ("instrument", "date")]
    print(f"factor analysis: {len(columns)} factors x {sessions} sessions x {instruments} instr.")
    tick = time.perf_counter()
    daily_ic(table, forward_returns(market.bars, [1]), columns, 1)
    plain = time.perf_counter() - tick
    tick = time.perf_counter()
    factor_summary(table, market.bars, columns)
    ours = time.perf_counter() - tick
    verdict = "met" if ours <= FACTOR_GOAL_SECONDS else "MISSED"
    print(f"plain polars group_by corr (1 horizon): {plain:.2f} s")
    print(
        f"factor_summary (4 horizons, autocorr, coverage): {ours:.2f} s, {ours / plain:.2f}x "
        f"(goal <= {FACTOR_GOAL_SECONDS:.0f} s: {verdict})"
    )


def shap_session(instruments: int, train_sessions: int) -> None:
    from qlib.contrib.model.gbdt import LGBModel

    total = alpha158_lookback() + train_sessions + 3
    days = list(exchange_sessions("XSHG", START, START + timedelta(days=int(total * 1.6) + 30)))
    days = days[:total]
    market = generate_market(MarketSpec(instruments, days[0], days[-1], seed=0))
    train_days = days[-(train_sessions + 3) : -3]
    table = compute_alpha158(market.bars, targets=[*train_days, days[-1]])
    columns = [c for c in table.columns if c not in ("instrument", "date")]
    labelled = table.filter(pl.col("date").is_in(train_days)).join(
        compute_label(market.bars), on=["instrument", "date"]
    )
    labelled = labelled.filter(pl.col("label").is_finite())
    booster = lgb.train(
        {"objective": "regression", "num_leaves": 63, "verbosity": -1, "num_threads": 2},
        lgb.Dataset(labelled.select(columns).to_numpy(), labelled.get_column("label").to_numpy()),
        num_boost_round=200,
    )
    model = LGBModel()
    model.model = booster
    served = ServedModel("bench", model, [], columns)
    session = table.filter(pl.col("date") == days[-1]).to_pandas()
    print(f"session: {len(session):,} instruments x {len(columns)} features, 200 trees")

    import shap

    matrix = processed_input(served, session).to_numpy(dtype=np.float32)
    tick = time.perf_counter()
    shap.TreeExplainer(booster).shap_values(matrix)
    plain = time.perf_counter() - tick

    tick = time.perf_counter()
    result = explain_rows(served, session)
    ours = time.perf_counter() - tick
    verdict = "met" if ours <= GOAL_SECONDS else "MISSED"
    print(f"plain shap.TreeExplainer(booster).shap_values: {plain:.2f} s")
    print(
        f"explain_rows (processors, SHAP, additivity check): {ours:.2f} s, {ours / plain:.2f}x "
        f"the plain call (goal <= {GOAL_SECONDS:.0f} s: {verdict}); max additivity error "
        f"{result.max_additivity_error:.1e}"
    )


if __name__ == "__main__":
    main()
