"""SHAP for one session (5,000 instruments x 158 Alpha158 features) with LightGBM.

Goal: <= 10 s. Timed in one process against the plain library call it wraps: ``explain_rows``
(infer processors, TreeExplainer, additivity check) vs ``shap.TreeExplainer(booster)
.shap_values(X)`` on the already processed matrix.

    .venv/bin/python benchmarks/explain.py [--instruments 5000] [--train-sessions 120]
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
from qlib_assets.market.generator import MarketSpec, generate_market

START = date(2022, 1, 4)
GOAL_SECONDS = 10.0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--instruments", type=int, default=5000)
    parser.add_argument("--train-sessions", type=int, default=60)
    args = parser.parse_args()

    from qlib.contrib.model.gbdt import LGBModel

    total = alpha158_lookback() + args.train_sessions + 3
    days = list(exchange_sessions("XSHG", START, START + timedelta(days=int(total * 1.6) + 30)))
    days = days[:total]
    market = generate_market(MarketSpec(args.instruments, days[0], days[-1], seed=0))
    train_days = days[-(args.train_sessions + 3) : -3]
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
