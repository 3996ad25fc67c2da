"""Evaluation assets: per-session signal analysis (two sessions behind) and the backtest."""

from typing import Literal

import dagster as dg

from qlib_assets.calendar import partition_date
from qlib_assets.defs.daily import DailyAssets, LakeResource, code_version, session_days
from qlib_assets.defs.png import png_metadata
from qlib_assets.evaluation.backtest import BacktestConfig
from qlib_assets.evaluation.tables import build_backtest, build_signal_analysis, log_backtest
from qlib_assets.models.window_training import platform_specs
from qlib_assets.online.tables import SIGNAL, predictions_asset
from qlib_assets.settings import Settings

GROUP = "evaluation"


class BacktestRunConfig(dg.Config):
    start: str | None = None
    end: str | None = None
    topk: int = 50
    n_drop: int = 5
    benchmark: str = "equal_weight"
    open_cost: float = 0.0005
    close_cost: float = 0.0015
    deal_price: Literal["close", "open", "vwap"] = "close"


def build_evaluation_defs(
    settings: Settings, partitions: dg.PartitionsDefinition
) -> dg.Definitions:
    specs = platform_specs(settings)
    daily = DailyAssets(partitions, GROUP)

    @daily.asset(
        "signal_analysis",
        code=[build_signal_analysis],
        deps=[SIGNAL, "labels", *(predictions_asset(n) for n in specs)],
        kinds={"polars"},
        description="IC and rank IC per session of every spec and of the signal, rolling "
        "20-session ICIR, a rolling-IC plot; runs two sessions behind (labels lag).",
    )
    def signal_analysis(
        context: dg.AssetExecutionContext, lake: LakeResource
    ) -> dg.MaterializeResult:
        days = session_days(context)
        table, analysis, plot = build_signal_analysis(settings, days)
        lake.write_days("signal_analysis", table, days)
        return dg.MaterializeResult(
            metadata={
                "summary": dg.MetadataValue.json(analysis.summary),
                **png_metadata(plot, "rolling_ic"),
            }
        )

    @dg.asset(
        name="backtest",
        group_name=GROUP,
        deps=[dg.AssetDep(SIGNAL, partition_mapping=dg.AllPartitionMapping()), "qlib_dataset"],
        code_version=code_version(build_backtest, log_backtest),
        kinds={"qlib", "mlflow"},
        description="Qlib's TopkDropoutStrategy with its simulator executor over the stored "
        "signal; benchmark equal_weight (default), none, or a provider code, never Qlib's "
        "silent SH000300 fallback. Report in metadata and MLflow.",
    )
    def backtest(
        context: dg.AssetExecutionContext, config: BacktestRunConfig
    ) -> dg.MaterializeResult:
        report = build_backtest(
            settings,
            partition_date(config.start) if config.start else None,
            partition_date(config.end) if config.end else None,
            BacktestConfig(
                topk=config.topk,
                n_drop=config.n_drop,
                benchmark=config.benchmark,
                open_cost=config.open_cost,
                close_cost=config.close_cost,
                deal_price=config.deal_price,
            ),
        )
        run_id = log_backtest(settings, report, {"dagster_run_id": context.run_id})
        metrics = report.metrics
        shown = {
            "annualized_excess_with_cost": "excess_return_with_cost.annualized_return",
            "annualized_excess_without_cost": "excess_return_without_cost.annualized_return",
            "information_ratio_with_cost": "excess_return_with_cost.information_ratio",
            "max_drawdown_with_cost": "excess_return_with_cost.max_drawdown",
            "annualized_return_with_cost": "return_with_cost.annualized_return",
            "turnover": "turnover",
        }
        return dg.MaterializeResult(
            metadata={
                "period": f"{report.start} .. {report.end} ({report.sessions} sessions)",
                "benchmark": report.benchmark,
                **{k: float(metrics[v]) for k, v in shown.items() if metrics.get(v) is not None},
                "report": dg.MetadataValue.json(report.to_dict()),
                "mlflow_run_id": run_id,
                **(png_metadata(report.plot, "cumulative_return") if report.plot else {}),
            }
        )

    return dg.Definitions(assets=[signal_analysis, backtest])
