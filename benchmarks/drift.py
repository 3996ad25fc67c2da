"""Drift of one session (5,000 instruments x 158 Alpha158 columns) against a one-year reference.

Goal: under 10 s per session, HTML report included. Sampling policy: the reference window
(~1.2M rows) is reduced once per model window to a fixed-seed uniform sample of
``REFERENCE_ROWS`` rows and cached as Parquet (``ReferenceCache``); a session reads that sample
and scores every column of its own full cross section.

Timed in one process:
  1. building the cached reference (once per model window): sample + Parquet write;
  2. one session from the cache (what the daily asset does): read sample, score 158 columns,
     write the Evidently report of the most drifted columns;
  3. the reference run: the same session scored against the whole unsampled window, no report;
     with the largest score difference and the drift flags that differ, i.e. what sampling costs.
``--full-report`` also times Evidently's DataDriftPreset rendering all 158 columns (tens of s).

``--calibration`` measures instead what an alarm means, with the calibrated per-column thresholds
(``calibrate_thresholds``) and the session alarm share: the false-alarm rate (share of sessions
flagged) on stationary generated markets and the detection delay (sessions from a planted
``shift_date`` to the first flagged session), for feature drift (all 158 columns) and for
prediction drift (a LightGBM fitted on the reference window, its predictions on the following
validation sessions as the reference, as training logs them). Reference one year, validation 60
sessions, then the monitored sessions; the shift falls 40 monitored sessions in.

The market shifts regime on the monitored session, so the report has drift to show.

    .venv/bin/python benchmarks/drift.py [--instruments 5000] [--sessions 245]
        [--reference-rows 50000] [--full-report]
    .venv/bin/python benchmarks/drift.py --calibration [--instruments 200] [--seeds 1 2]
"""

import qlib_assets  # noqa: F401, I001 (first: it sets polars' allocator options)
import argparse
import tempfile
import time
from datetime import date, timedelta
from pathlib import Path

import polars as pl

from qlib_assets.calendar import sessions as exchange_sessions
from qlib_assets.features.alpha158 import alpha158_lookback, compute_alpha158
from qlib_assets.market.synthetic import MarketSpec, generate_market
from qlib_assets.monitoring.drift import (
    ALARM_SHARE,
    REFERENCE_ROWS,
    DriftResult,
    calibrate_thresholds,
    feature_columns,
    feature_drift,
    prediction_drift,
)
from qlib_assets.monitoring.reference_cache import ReferenceCache

START = date(2022, 1, 4)
GOAL_SECONDS = 10.0


def features(instruments: int, sessions: int, seed: int) -> tuple[pl.DataFrame, list[date]]:
    """Alpha158 of ``sessions`` reference sessions plus one monitored session, after warm-up."""
    total = sessions + 1 + alpha158_lookback()
    days = list(exchange_sessions("XSHG", START, START + timedelta(days=int(total * 1.6) + 30)))
    days = days[:total]
    spec = MarketSpec(
        instruments=instruments, start=days[0], end=days[-1], seed=seed, shift_date=days[-1]
    )
    bars = generate_market(spec).bars
    kept = days[-(sessions + 1) :]
    return compute_alpha158(bars, targets=kept), kept


CALIBRATION_GOALS = (0.05, 5)  # under 5% of stationary sessions flagged; a shift within 5


def calibration_case(
    instruments: int, seed: int, monitored: int, shifted: bool
) -> tuple[DriftResult, DriftResult, date | None]:
    """Feature and prediction drift of ``monitored`` sessions after a one-year reference and a
    60-session validation period; with ``shifted`` the regime shifts 40 monitored sessions in."""
    import lightgbm as lgb

    from qlib_assets.features.alpha158 import compute_label

    warmup, reference_sessions, valid_sessions = alpha158_lookback(), 245, 60
    total = warmup + reference_sessions + valid_sessions + monitored + 2
    days = list(exchange_sessions("XSHG", START, START + timedelta(days=int(total * 1.6) + 30)))
    days = days[:total]
    ref_days = days[warmup : warmup + reference_sessions]
    valid_days = days[warmup + reference_sessions : warmup + reference_sessions + valid_sessions]
    watched = days[-(monitored + 2) : -2]
    shift = watched[40] if shifted else None
    spec = MarketSpec(instruments, days[0], days[-1], seed=seed, shift_date=shift)
    market = generate_market(spec)
    table = compute_alpha158(market.bars, targets=ref_days + valid_days + watched)
    columns = feature_columns(table)
    reference = table.filter(pl.col("date").is_in(ref_days))
    current = table.filter(pl.col("date").is_in(watched))
    limits = calibrate_thresholds(reference, columns)
    features = feature_drift(reference, current, columns, threshold=limits)

    labelled = reference.join(compute_label(market.bars), on=["instrument", "date"])
    labelled = labelled.filter(pl.col("label").is_finite())
    model = lgb.train(
        {"objective": "regression", "verbosity": -1, "num_threads": 2, "min_data_in_leaf": 100},
        lgb.Dataset(labelled.select(columns).to_numpy(), labelled.get_column("label").to_numpy()),
        num_boost_round=100,
    )

    def scores(frame: pl.DataFrame) -> pl.DataFrame:
        values = model.predict(frame.select(columns).to_numpy())
        return frame.select("date").with_columns(score=pl.Series(values, dtype=pl.Float64))

    valid = scores(table.filter(pl.col("date").is_in(valid_days)))
    predictions = prediction_drift(valid, scores(current))
    return features, predictions, shift


def calibration(instruments: int, seeds: list[int], monitored: int) -> None:
    rate_goal, delay_goal = CALIBRATION_GOALS
    print(
        f"calibrated per-column thresholds, session flagged at >= {ALARM_SHARE:.0%} of its columns "
        f"past them; {instruments} instruments, {monitored} monitored sessions per market"
    )
    for seed in seeds:
        tick = time.perf_counter()
        features, predictions, _ = calibration_case(instruments, seed, monitored, shifted=False)
        share = float(features.scores.get_column("drifted").mean())
        print(
            f"stationary seed {seed}: feature drift flags {features.alarm_rate():.1%} of sessions "
            f"({share:.1%} of columns past their thresholds), prediction drift "
            f"{predictions.alarm_rate():.1%} (goal < {rate_goal:.0%}; "
            f"{time.perf_counter() - tick:.0f} s)"
        )
        tick = time.perf_counter()
        features, predictions, shift = calibration_case(instruments, seed, monitored, shifted=True)
        assert shift is not None
        calm = [s.alarm for s in features.sessions if s.date < shift]
        calm_predictions = [s.alarm for s in predictions.sessions if s.date < shift]
        after = [s.share for s in features.sessions if s.date >= shift][:5]
        print(
            f"shift seed {seed} on {shift}: feature drift flags it after "
            f"{features.detection_delay(shift)} session(s) (shares of its first 5: "
            f"{', '.join(f'{x:.0%}' for x in after)}), prediction drift after "
            f"{predictions.detection_delay(shift)} (goal < {delay_goal}); before it "
            f"{sum(calm) / len(calm):.1%} / {sum(calm_predictions) / len(calm_predictions):.1%} "
            f"flagged ({time.perf_counter() - tick:.0f} s)"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--instruments", type=int, help="default 5000; 200 with --calibration")
    parser.add_argument("--sessions", type=int, default=245)
    parser.add_argument("--reference-rows", type=int, default=REFERENCE_ROWS)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--full-report", action="store_true")
    parser.add_argument("--calibration", action="store_true")
    parser.add_argument("--seeds", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--monitored", type=int, default=100)
    args = parser.parse_args()
    if args.calibration:
        calibration(args.instruments or 200, args.seeds, args.monitored)
        return
    args.instruments = args.instruments or 5000

    started = time.perf_counter()
    table, days = features(args.instruments, args.sessions, args.seed)
    session = days[-1]
    reference = table.filter(pl.col("date") < session)
    current = table.filter(pl.col("date") == session)
    columns = feature_columns(table)
    print(
        f"data: {reference.height:,} reference rows ({len(days) - 1} sessions) and "
        f"{current.height:,} current rows x {len(columns)} columns, "
        f"built in {time.perf_counter() - started:.1f} s"
    )
    print(
        f"sampling policy: fixed-seed uniform sample of {args.reference_rows:,} reference rows, "
        "taken once per model window and cached as Parquet; the session is not sampled"
    )

    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        cache = ReferenceCache(root / "cache", rows=args.reference_rows)

        tick = time.perf_counter()
        cache.get("bench", "window", columns, lambda: reference)
        build = time.perf_counter() - tick

        tick = time.perf_counter()
        cached = cache.get("bench", "window", columns, lambda: reference)
        sampled = feature_drift(
            cached.frame, current, columns, sample=None, report_dir=root / "reports"
        )
        per_session = time.perf_counter() - tick
        assert not cached.built
        latest = sampled.session()
        report_mb = latest.report.stat().st_size / 1e6 if latest.report else 0.0

        tick = time.perf_counter()
        full = feature_drift(reference, current, columns, sample=None)
        unsampled = time.perf_counter() - tick

        compared = sampled.scores.join(full.scores, on=["date", "column"], suffix="_full")
        worst = compared.select((pl.col("score") - pl.col("score_full")).abs().max()).item()
        flips = compared.filter(pl.col("drifted") != pl.col("drifted_full")).height

        print(f"reference build (once per window): {build:.2f} s")
        print(
            f"one session from the cache, report included: {per_session:.2f} s "
            f"(goal < {GOAL_SECONDS:.0f} s: {'met' if per_session < GOAL_SECONDS else 'MISSED'})"
        )
        print(
            f"  {latest.drifted}/{latest.columns} columns drifted ({latest.share:.0%}), "
            f"action {latest.action!r}, report {report_mb:.1f} MB"
        )
        print(
            f"unsampled reference ({reference.height:,} rows, no report): {unsampled:.2f} s, "
            f"{unsampled / per_session:.1f}x the cached session"
        )
        print(
            f"sampling error: max |score difference| {worst:.4f} "
            f"(threshold {sampled.threshold}), drift flags differing: {flips}/{len(columns)}"
        )

        if args.full_report:
            tick = time.perf_counter()
            feature_drift(
                cached.frame,
                current,
                columns,
                sample=None,
                report_dir=root / "full",
                report_columns=len(columns),
            )
            print(
                f"Evidently report over all {len(columns)} columns: "
                f"{time.perf_counter() - tick:.1f} s"
            )


if __name__ == "__main__":
    main()
