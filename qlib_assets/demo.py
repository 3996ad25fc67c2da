"""The demo: a generated market taken through the whole asset graph by Dagster, then a summary.

Every stage is a Dagster run on the embedded instance (visible in the UI afterwards), exactly
as a backfill launched there; nothing here computes a table itself.
"""

import json
import time
from collections.abc import Callable
from datetime import date
from pathlib import Path
from typing import Any

import dagster as dg
import polars as pl
from rich.console import Console

from qlib_assets.asset_keys import SIGNAL, model_asset, predictions_asset
from qlib_assets.calendar import sessions, shift_sessions
from qlib_assets.defs.build import build_definitions
from qlib_assets.demo_spec import DemoSpec
from qlib_assets.features.builders import LABEL_HORIZON
from qlib_assets.first_start import record_sensor_tick
from qlib_assets.instance import embedded_instance
from qlib_assets.market.synthetic import MarketSpec, generate_market, write_landing
from qlib_assets.models.platform import platform_specs, spec_windows
from qlib_assets.orchestration import materialize_partition, materialize_range
from qlib_assets.settings import Settings
from qlib_assets.summary import feature_summary


class Stages:
    """Runs stages with a spinner, a line per finished stage, and their timings."""

    def __init__(self, console: Console) -> None:
        self.console = console
        self.timings: dict[str, float] = {}

    def run(self, label: str, action: Callable[[], str]) -> None:
        started = time.perf_counter()
        with self.console.status(f"{label} ..."):
            detail = action()
        elapsed = round(time.perf_counter() - started, 1)
        self.timings[label] = elapsed
        self.console.print(f"[green]✓[/green] {label}: {detail} ({elapsed}s)")


def _ranged(
    defs: dg.Definitions, instance: dg.DagsterInstance, assets: list[str], first: date, last: date
) -> Callable[[], str]:
    def action() -> str:
        result = materialize_range(
            defs, instance, assets, first.isoformat(), last.isoformat(), log_level="WARNING"
        )
        done = len(result.asset_materializations_for_node(assets[0]))
        return f"one run ({result.run_id[:8]}), {done} sessions of {', '.join(assets)}"

    return action


def _record_landing(instance: dg.DagsterInstance, defs: dg.Definitions, settings: Settings) -> str:
    # The sensor observes a file only once it has been unchanged for the settle interval; the
    # files were just written, so wait for it, or the first tick in the UI would observe the
    # rest after the assets below materialized, and show them stale.
    time.sleep(settings.landing.settle_seconds)
    result = record_sensor_tick(instance, defs)
    return f"{len(result.asset_events or [])} sessions observed, cursor stored"


def run_demo(settings: Settings, spec: DemoSpec, console: Console) -> dict[str, Any]:
    instance = embedded_instance(settings)
    stages = Stages(console)
    market: dict[str, Any] = {}

    def generate() -> str:
        generated = generate_market(
            MarketSpec(instruments=spec.instruments, start=spec.start, end=spec.end, seed=spec.seed)
        )
        write_landing(generated, settings.landing_dir, oracle=True)
        market.update(bars=generated.bars.height, sessions=len(generated.sessions))
        return f"{generated.bars.height:,} bars, {len(generated.sessions)} sessions"

    stages.run("generate market", generate)
    defs = build_definitions(settings)
    days = sessions(settings.calendar, max(spec.start, settings.start_date), spec.end)
    first, last = days[0], days[-1]
    labelled = shift_sessions(settings.calendar, last, -LABEL_HORIZON)
    # Observed before raw_bars reads them, so raw_bars records their data versions (not stale).
    stages.run("landing sensor state", lambda: _record_landing(instance, defs, settings))
    stages.run("market data", _ranged(defs, instance, ["raw_bars", "qlib_dataset"], first, last))
    stages.run("features", _ranged(defs, instance, ["indicators", "alpha158"], first, last))
    stages.run("labels", _ranged(defs, instance, ["labels"], first, labelled))

    specs = platform_specs(settings)
    models: dict[str, list[dict[str, Any]]] = {}
    test_start = last
    for name, model_spec in specs.items():
        windows = [w for w in spec_windows(settings, model_spec) if w.test[0] <= last]
        for window in windows[-spec.windows :]:
            test_start = min(test_start, window.test[0])

            def train(name: str = name, key: str = window.key) -> str:
                result = materialize_partition(defs, instance, model_asset(name), key)
                metadata = result.asset_materializations_for_node(model_asset(name))[0].metadata
                models.setdefault(name, []).append(
                    {
                        "window": key,
                        "version": metadata["model_version"].value,
                        "valid_ic": round(float(metadata["valid_ic"].value), 4),
                    }
                )
                return f"window {key}, valid IC {metadata['valid_ic'].value:.4f}"

            stages.run(f"train {name} {window.key}", train)

    online = [predictions_asset(n) for n in specs] + [SIGNAL]
    stages.run("predictions + signal", _ranged(defs, instance, online, test_start, last))
    stages.run(
        "signal analysis", _ranged(defs, instance, ["signal_analysis"], test_start, labelled)
    )
    backtest: dict[str, Any] = {}

    def run_backtest() -> str:
        result = materialize_partition(defs, instance, "backtest", None)
        metadata = result.asset_materializations_for_node("backtest")[0].metadata
        backtest.update({k: v.value for k, v in metadata.items() if k != "cumulative_return"})
        return str(metadata["period"].value)

    stages.run("backtest", run_backtest)
    analysis = instance.get_latest_materialization_event(dg.AssetKey("signal_analysis"))
    assert analysis is not None and analysis.asset_materialization is not None
    out_of_sample = analysis.asset_materialization.metadata["summary"].value
    summary = {
        "home": str(settings.root),
        "market": {"instruments": spec.instruments, "first": str(first), "last": str(last)}
        | market,
        "features": feature_summary(settings, last),
        "models": models,
        "out_of_sample": {
            "period": f"{test_start} .. {labelled}",
            **{
                name: {k: _round(v) for k, v in values.items() if k in ("ic", "rank_ic", "icir")}
                for name, values in out_of_sample.items()
            },
        },
        "backtest": {
            k: _round(backtest[k])
            for k in (
                "period",
                "benchmark",
                "annualized_excess_with_cost",
                "annualized_excess_without_cost",
                "max_drawdown_with_cost",
                "information_ratio_with_cost",
            )
            if k in backtest
        },
        "oracle_ic": _oracle_ic(settings, test_start, labelled),
        "timings_s": stages.timings,
        "where": {
            "dagster_ui": "make ui  ->  http://127.0.0.1:3000",
            "mlflow_ui": "make mlflow-ui  ->  http://127.0.0.1:5000",
            "dagster_home": str(settings.dagster_home),
            "mlflow": settings.mlflow_uri,
            "reports": str(settings.root / "reports"),
        },
    }
    path = settings.root / "demo_summary.json"
    path.write_text(json.dumps(summary, indent=2, default=str))
    summary["summary_json"] = str(path)
    return summary


def _round(value: Any) -> Any:
    return round(value, 4) if isinstance(value, float) else value


def _oracle_ic(settings: Settings, start: date, end: date) -> float | None:
    """The best achievable IC over the same sessions: the planted expected return's IC."""
    from qlib_assets.market.synthetic import ORACLE_PATH
    from qlib_assets.storage.lake import Lake

    path: Path = settings.landing_dir / ORACLE_PATH
    if not path.is_file():
        return None
    days = [d for d in Lake(settings.lake_dir).days("labels") if start <= d <= end]
    labels = Lake(settings.lake_dir).read_days("labels", days)
    # The label of d is the return d+1 -> d+2, which the oracle row of session d+1 predicts.
    calendar = sessions(settings.calendar, start, shift_sessions(settings.calendar, end, 1))
    previous = dict(zip(calendar[1:], calendar[:-1], strict=True))
    oracle = (
        pl.read_parquet(path)
        .filter(pl.col("date").is_in(list(previous)))
        .select(
            "instrument",
            pl.col("date").replace_strict(previous, return_dtype=pl.Date()),
            pl.col("expected_return").alias("oracle"),
        )
    )
    joined = labels.join(oracle, on=["instrument", "date"]).drop_nans()
    daily = joined.group_by("date").agg(pl.corr("oracle", "label").alias("ic"))
    value = daily.get_column("ic").mean()
    return None if value is None else round(float(value), 4)
