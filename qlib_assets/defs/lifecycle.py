"""Lifecycle assets and jobs: shadow predictions, the daily lifecycle review, approvals."""

from typing import Any

import dagster as dg
import polars as pl

from qlib_assets.asset_keys import model_asset
from qlib_assets.defs.daily import DailyAssets, LakeResource, session_days
from qlib_assets.lifecycle.approvals import record_approval
from qlib_assets.lifecycle.decisions import daily_review
from qlib_assets.lifecycle.retrain import retrain
from qlib_assets.lifecycle.served import SERVED_SCHEMA, serve_shadow, shadow_asset
from qlib_assets.models.platform import platform_specs
from qlib_assets.models.specs import ModelSpec
from qlib_assets.online.builders import predictions_asset
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
        code=[serve_shadow],
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


def retrain_run_config(reason: str) -> dict[str, Any]:
    return {"ops": {"retrain": {"config": {"reason": reason}}}}


def _retrain_job(settings: Settings, spec: ModelSpec) -> dg.JobDefinition:
    @dg.op(
        name="retrain",
        tags={"spec": spec.name},
        description=f"Train {spec.ref} on a new window ending at the latest labelled session, "
        "then its gates and promotion policy.",
    )
    def retrain_op(context: dg.OpExecutionContext, config: RetrainConfig) -> None:
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


def build_lifecycle_defs(settings: Settings, partitions: dg.PartitionsDefinition) -> dg.Definitions:
    specs = platform_specs(settings)
    daily = DailyAssets(partitions, GROUP)

    @daily.asset(
        REVIEW,
        code=[daily_review],
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
        entry = record_approval(settings, config.model, config.version, config.by, config.reason)
        context.log.info(f"approval {entry.id}: {config.model} v{config.version} by {config.by}")

    @dg.job(
        name="approve_model_version",
        description="Approve a model version for production (prod needs one before a promotion).",
    )
    def approve_job() -> None:
        approve()

    shadows = [_shadow(settings, spec, daily) for spec in specs.values()]
    return dg.Definitions(assets=[*shadows, lifecycle_review], jobs=[approve_job])
