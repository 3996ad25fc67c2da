"""Model assets: one per spec YAML, partitioned by rolling window, one MLflow run per window."""

import time
from collections.abc import Mapping

import dagster as dg

from qlib_assets.asset_keys import model_asset
from qlib_assets.defs.daily import code_version
from qlib_assets.defs.png import png_metadata
from qlib_assets.defs.resources import MLflowTracking, mlflow_resource
from qlib_assets.models.specs import ModelSpec
from qlib_assets.models.window_training import platform_specs, spec_windows, train_spec_window
from qlib_assets.settings import Settings

GROUP = "models"
LOG_EVERY_SECONDS = 1.0


class MetricLogger:
    """Forwards per-iteration metrics to the Dagster run log, at most once a second."""

    def __init__(self, context: dg.AssetExecutionContext) -> None:
        self.context = context
        self.last = 0.0

    def __call__(self, step: int, metrics: Mapping[str, float]) -> None:
        now = time.monotonic()
        if now - self.last >= LOG_EVERY_SECONDS:
            shown = ", ".join(f"{k}={v:.5g}" for k, v in metrics.items())
            self.context.log.info(f"iteration {step}: {shown}")
            self.last = now


def _model_asset(settings: Settings, spec: ModelSpec) -> dg.AssetsDefinition:
    windows = spec_windows(settings, spec)
    partitions = dg.StaticPartitionsDefinition([w.key for w in windows])
    deps = [source.asset for source in spec.features] + [spec.label.asset]
    version = code_version(train_spec_window, spec.digest())

    @dg.asset(
        name=model_asset(spec.name),
        group_name=GROUP,
        partitions_def=partitions,
        deps=[
            dg.AssetDep(a, partition_mapping=dg.AllPartitionMapping()) for a in dict.fromkeys(deps)
        ],
        code_version=version,
        pool="training",
        kinds={"mlflow", "qlib"},
        tags={"spec": spec.name},
        description=f"{spec.description or spec.name} ({spec.ref}): one MLflow run and one "
        f"registered version per {spec.rolling.type} window of {spec.rolling.step} "
        "session(s); partition key = the window's first test session.",
    )
    def model(context: dg.AssetExecutionContext, mlflow: MLflowTracking) -> dg.MaterializeResult:
        key = context.partition_key
        tags = {
            "dagster_run_id": context.run_id,
            "partition_key": key,
            "asset_key": context.asset_key.to_user_string(),
            "code_version": version,
        }
        context.log.info(f"training {spec.ref} window {key}")
        tracked = train_spec_window(
            settings,
            spec,
            key,
            tags,
            MetricLogger(context),
            tracking_uri=mlflow.tracking_uri,
            audit=mlflow.audit(),
            artifact_root=mlflow.artifacts(),
        )
        result = tracked.result
        metrics = result.metrics()
        assert tracked.report_path is not None
        return dg.MaterializeResult(
            metadata={
                "mlflow_run_id": tracked.run_id,
                "model_uri": tracked.model_uri,
                "model_version": tracked.model_version,
                "valid_ic": metrics.get("valid_ic", float("nan")),
                "valid_rank_ic": metrics.get("valid_rank_ic", float("nan")),
                "best_iteration": result.best_iteration,
                "rows": result.rows,
                **png_metadata(tracked.report_path, "report"),
            }
        )

    return model


def build_model_defs(settings: Settings) -> dg.Definitions:
    return dg.Definitions(
        assets=[_model_asset(settings, spec) for spec in platform_specs(settings).values()],
        resources={"mlflow": mlflow_resource(settings)},
    )
