"""Signal analysis and backtests over what the online assets wrote."""

from collections.abc import Sequence
from datetime import date
from pathlib import Path

import mlflow
import polars as pl

from qlib_assets.asset_keys import SIGNAL
from qlib_assets.calendar import sessions, shift_sessions
from qlib_assets.evaluation.backtest import BacktestConfig, BacktestReport, run_backtest
from qlib_assets.evaluation.signal_analysis import SignalAnalysis, analyse_signals, plot_rolling_ic
from qlib_assets.market.raw_bars import read_raw_bars
from qlib_assets.online.builders import read_predictions
from qlib_assets.operations.locations import artifact_location
from qlib_assets.settings import Settings
from qlib_assets.storage.lake import Lake
from qlib_assets.storage.provider_read import committed_provider

ROLLING_WINDOW = 20
PLOT_SESSIONS = 120
BACKTEST_EXPERIMENT = "qlib_assets/backtest"


def build_signal_analysis(
    settings: Settings, days: Sequence[date]
) -> tuple[pl.DataFrame, SignalAnalysis, Path]:
    """Per-session IC and rank IC of every spec and of the signal for ``days``.

    Rolling ICIR needs the sessions before: they are read too (whatever exists), so a
    one-session run equals the same session of a backfill. Labels of ``days`` must exist
    (they do two sessions later).
    """
    days = sorted(days)
    first = shift_sessions(settings.calendar, days[0], -(PLOT_SESSIONS - 1))
    window = list(sessions(settings.calendar, first, days[-1]))
    lake = Lake(settings.lake_dir)
    missing = [d for d in days if not lake.exists("labels", d)]
    if missing:
        raise FileNotFoundError(
            f"labels are not materialized for {len(missing)} session(s), e.g. {missing[0]}: "
            "signal analysis runs two sessions behind"
        )
    labelled = [d for d in window if lake.exists("labels", d)]
    scores = read_predictions(settings, labelled)
    have_signal = set(lake.days(SIGNAL))
    signal_days = [d for d in labelled if d in have_signal]
    if signal_days:
        scores[SIGNAL] = lake.read_days(SIGNAL, signal_days)
    if not scores:
        raise FileNotFoundError(f"no predictions or signal for {days[0]} .. {days[-1]}")
    analysis = analyse_signals(scores, lake.read_days("labels", labelled), ROLLING_WINDOW)
    plot = plot_rolling_ic(
        analysis, settings.root / "reports" / "signal_analysis" / f"{days[-1].isoformat()}.png"
    )
    table = analysis.daily.filter(pl.col("date").is_in(days))
    return table, analysis, plot


def build_backtest(
    settings: Settings, start: date | None, end: date | None, config: BacktestConfig
) -> BacktestReport:
    """Qlib's TopkDropout backtest of the stored signal over the Qlib provider."""
    lake = Lake(settings.lake_dir)
    days = [
        d for d in lake.days(SIGNAL) if (start is None or d >= start) and (end is None or d <= end)
    ]
    if not days:
        raise FileNotFoundError(f"the signal has no session between {start} and {end}")
    signal = lake.read_days(SIGNAL, days)
    before = shift_sessions(settings.calendar, days[0], -1)
    bar_days = [d for d in lake.days("raw_bars") if before <= d]
    bars = read_raw_bars(settings, bar_days)
    plot = settings.root / "reports" / "backtest" / f"{days[0]}_{days[-1]}.png"
    with committed_provider(settings.qlib_data_dir):
        return run_backtest(signal, settings.qlib_data_dir, bars, config, plot_path=plot)


def log_backtest(settings: Settings, report: BacktestReport, tags: dict[str, str]) -> str:
    """One MLflow run with the backtest's metrics and plot; returns the run id."""
    mlflow.set_tracking_uri(settings.mlflow_uri)
    if mlflow.get_experiment_by_name(BACKTEST_EXPERIMENT) is None:
        location = artifact_location(settings.mlflow_artifacts, "backtest")
        mlflow.create_experiment(BACKTEST_EXPERIMENT, artifact_location=location)
    mlflow.set_experiment(BACKTEST_EXPERIMENT)
    with mlflow.start_run(run_name=f"backtest {report.start}..{report.end}", tags=tags) as run:
        mlflow.log_params({f"config.{k}": v for k, v in report.to_dict()["config"].items()})
        mlflow.log_metrics({k: v for k, v in report.metrics.items() if v is not None})
        mlflow.log_dict(report.to_dict(), "backtest.json")
        if report.plot:
            mlflow.log_artifact(report.plot, "plots")
    return run.info.run_id
