"""Lifecycle assets and jobs: shadow predictions, the daily lifecycle review, approvals."""

from datetime import date
from typing import Any

import dagster as dg
import polars as pl

from qlib_assets.asset_keys import model_asset, predictions_asset, shadow_asset
from qlib_assets.calendar import shift_sessions
from qlib_assets.defs.daily import DailyAssets, LakeResource, session_days
from qlib_assets.defs.png import png_metadata
from qlib_assets.models.platform import platform_sessions, platform_specs
from qlib_assets.models.specs import ModelSpec
from qlib_assets.settings import Settings

GROUP = "deployment"
REVIEW = "lifecycle_review"
REVIEW_SCHEMA: dict[str, pl.DataType] = {
    "date": pl.Date(),
    "spec": pl.String(),
    "version": pl.String(),
    "action": pl.String(),
    "reason": pl.String(),
    "statistic": pl.Float64(),
    "p_value": pl.Float64(),
    "sessions": pl.Int64(),
}


def _shadow(settings: Settings, spec: ModelSpec, daily: DailyAssets) -> dg.AssetsDefinition:
    name = shadow_asset(spec.name)

    @daily.asset(
        name,
        code=["qlib_assets.lifecycle.served:serve_shadow"],
        spec=[spec.digest()],
        deps=[
            *dict.fromkeys(source.asset for source in spec.features),
            dg.AssetDep(model_asset(spec.name), partition_mapping=dg.AllPartitionMapping()),
        ],
        kinds={"mlflow", "polars"},
        description=f"Shadow scores of {spec.ref}: the challenger scores every session beside "
        "the champion; kept for the shadow test, never in the signal.",
    )
    def shadow(context: dg.AssetExecutionContext, lake: LakeResource) -> dg.MaterializeResult:
        from qlib_assets.lifecycle.served import SERVED_SCHEMA, serve_shadow

        days = session_days(context)
        result = serve_shadow(settings, spec, days)
        for warning in result.warnings:
            context.log.warning(warning)
        lake.write_days(name, result.frame.select(list(SERVED_SCHEMA)), days)
        return dg.MaterializeResult(
            metadata={
                "rows": result.frame.height,
                "challenger": ",".join(sorted(set(result.used.values()))) or "none",
                "sessions_without_shadow": len(result.skipped),
            }
        )

    return shadow


class RetrainConfig(dg.Config):
    reason: str = "manual retrain"


def retrain_job_name(spec_name: str) -> str:
    return f"retrain_{spec_name}"


def _retrain_op_name(spec_name: str) -> str:
    return f"train_new_window_{spec_name}"


def retrain_run_config(spec_name: str, reason: str) -> dict[str, Any]:
    return {"ops": {_retrain_op_name(spec_name): {"config": {"reason": reason}}}}


def _retrain_job(settings: Settings, spec: ModelSpec) -> dg.JobDefinition:
    @dg.op(
        name=_retrain_op_name(spec.name),
        tags={"spec": spec.name},
        description=f"Train {spec.ref} on a new window ending at the latest labelled session, "
        "then its gates and promotion policy.",
    )
    def retrain_op(context: dg.OpExecutionContext, config: RetrainConfig) -> None:
        from qlib_assets.lifecycle.retrain import retrain

        done = retrain(settings, spec, config.reason, {"dagster_run_id": context.run_id})
        window = done.window
        context.log.info(
            f"{spec.ref} v{done.tracked.model_version}: train {window.train[0]}..{window.train[1]}"
            f", valid {window.valid[0]}..{window.valid[1]}, test from {window.test[0]}; "
            f"{done.decision.action}: {done.decision.reason}"
        )

    @dg.job(
        name=retrain_job_name(spec.name),
        tags={"spec": spec.name},
        description=f"Performance-triggered retrain of {spec.ref} (launched by the monitoring "
        "retrain sensor, or by hand with a reason).",
    )
    def retrain_job() -> None:
        retrain_op()

    return retrain_job


def retrain_jobs(settings: Settings) -> list[dg.JobDefinition]:
    return [_retrain_job(settings, spec) for spec in platform_specs(settings).values()]


class ComparisonConfig(dg.Config):
    start: str
    end: str
    specs: str = ""  # comma-separated spec names; empty: every spec
    backtest: bool = True


def _rolling_comparison(settings: Settings) -> dg.AssetsDefinition:
    @dg.asset(
        name="rolling_comparison",
        group_name="evaluation",
        kinds={"qlib"},
        deps=["alpha158", "labels", "qlib_dataset"],
        description="Seed 003's rolling benchmark: each spec (default all) under expanding and "
        "sliding windows, every window trained and predicting its test segment, compared on "
        "the same test sessions: IC, rank IC, ICIR, a TopkDropout backtest per variant, a plot.",
    )
    def rolling_comparison(
        context: dg.AssetExecutionContext, config: ComparisonConfig
    ) -> dg.MaterializeResult:
        from qlib_assets.evaluation.backtest import run_backtest
        from qlib_assets.evaluation.rolling_comparison import compare_rolling, plot_comparison
        from qlib_assets.market.raw_bars import read_raw_bars
        from qlib_assets.storage.lake import Lake

        specs = platform_specs(settings)
        names = [n.strip() for n in config.specs.split(",") if n.strip()] or sorted(specs)
        chosen = {n: specs[n] for n in names}
        start, end = date.fromisoformat(config.start), date.fromisoformat(config.end)
        lake = Lake(settings.lake_dir)
        result = compare_rolling(lake, chosen, platform_sessions(settings), start, end)
        backtests: dict[str, dict[str, Any]] = {}
        if config.backtest:
            before = shift_sessions(settings.calendar, result.sessions[0], -1)
            bars = read_raw_bars(settings, [d for d in lake.days("raw_bars") if d >= before])
            for variant, frame in result.predictions.items():
                report = run_backtest(
                    frame.rename({"score": "signal"}), settings.qlib_data_dir, bars
                )
                backtests[variant] = report.metrics
        plot = plot_comparison(
            result, settings.root / "reports" / "rolling_comparison" / f"{start}_{end}.png"
        )
        rows = [{**row, "backtest": backtests.get(row["variant"], {})} for row in result.table()]
        return dg.MaterializeResult(
            metadata={
                "sessions": len(result.sessions),
                "comparison": dg.MetadataValue.json(rows),
                **png_metadata(plot, "cumulative_ic"),
            }
        )

    return rolling_comparison


def build_lifecycle_defs(settings: Settings, partitions: dg.PartitionsDefinition) -> dg.Definitions:
    specs = platform_specs(settings)
    daily = DailyAssets(partitions, GROUP)

    @daily.asset(
        REVIEW,
        code=["qlib_assets.lifecycle.decisions:daily_review"],
        deps=[
            "labels",
            *(predictions_asset(n) for n in specs),
            *(shadow_asset(n) for n in specs),
        ],
        kinds={"mlflow"},
        description="Once a session's labels are known: the shadow test of each challenger "
        "(decision, HAC statistic, sessions) and the watch over new champions (rollback on "
        "decay or failed health). Every decision is also an audit row.",
    )
    def lifecycle_review(
        context: dg.AssetExecutionContext, lake: LakeResource
    ) -> dg.MaterializeResult:
        from qlib_assets.lifecycle.decisions import daily_review

        rows = []
        for day in session_days(context):
            for spec in specs.values():
                for decision in daily_review(settings, spec, day):
                    context.log.info(f"{day} {decision.spec}: {decision.action}: {decision.reason}")
                    ev = decision.evidence
                    rows.append(
                        {
                            "date": day,
                            "spec": decision.spec,
                            "version": decision.version,
                            "action": decision.action,
                            "reason": decision.reason,
                            "statistic": ev.get("statistic"),
                            "p_value": ev.get("p_value"),
                            "sessions": ev.get("n"),
                        }
                    )
        table = pl.DataFrame(rows, schema=REVIEW_SCHEMA)
        lake.write_days(REVIEW, table, session_days(context))
        shown = table.filter(pl.col("action") != "waiting")
        return dg.MaterializeResult(
            metadata={
                "decisions": shown.height,
                "review": dg.MetadataValue.json(shown.to_dicts()),
            }
        )

    class Approval(dg.Config):
        model: str
        version: str
        by: str
        reason: str

    @dg.op(description="Record an approval of a version for production in this environment.")
    def approve(context: dg.OpExecutionContext, config: Approval) -> None:
        from qlib_assets.lifecycle.approvals import record_approval

        entry = record_approval(settings, config.model, config.version, config.by, config.reason)
        context.log.info(f"approval {entry.id}: {config.model} v{config.version} by {config.by}")

    @dg.job(
        name="approve_model_version",
        description="Approve a model version for production (prod needs one before a promotion).",
    )
    def approve_job() -> None:
        approve()

    shadows = [_shadow(settings, spec, daily) for spec in specs.values()]
    return dg.Definitions(
        assets=[*shadows, lifecycle_review, _rolling_comparison(settings)], jobs=[approve_job]
    )
