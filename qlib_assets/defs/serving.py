"""The serving request log as an observed source, and the daily serving_metrics asset."""

import hashlib
from datetime import date
from pathlib import Path

import dagster as dg
import polars as pl

from qlib_assets.defs.daily import code_version
from qlib_assets.defs.png import png_metadata
from qlib_assets.monitoring import serving_metrics as metrics_library
from qlib_assets.settings import Settings

GROUP = "monitoring"


def _log_folder(settings: Settings) -> Path:
    return settings.serving_dir / "request_log"


def build_serving_defs(settings: Settings) -> dg.Definitions:
    days = dg.DailyPartitionsDefinition(start_date=settings.start_date.isoformat(), end_offset=1)

    @dg.observable_source_asset(
        name="serving_request_log",
        group_name=GROUP,
        partitions_def=days,
        description="Every request and response of the prediction service of this environment "
        "(qlib-assets serve), one folder of Parquet parts per UTC day; a day's data version is "
        "a digest of its files' names and sizes.",
    )
    def serving_request_log() -> dg.DataVersionsByPartition:
        from qlib_assets.serving.request_log import log_days

        folder = _log_folder(settings)
        versions = {}
        for day in log_days(folder):
            files = sorted((folder / day.isoformat()).glob("*.parquet"))
            digest = hashlib.sha256(
                "".join(f"{p.name}:{p.stat().st_size};" for p in files).encode()
            ).hexdigest()
            versions[day.isoformat()] = digest
        return dg.DataVersionsByPartition(versions)

    @dg.asset(
        name="serving_metrics",
        group_name=GROUP,
        code_version=code_version(
            [metrics_library.serving_metrics, metrics_library.plot_serving],
            [f"{settings.serving.p99_ms} {settings.serving.max_error_rate}"],
        ),
        partitions_def=days,
        deps=[serving_request_log],
        kinds={"parquet", "polars"},
        description="A day of the request log: volume, error rate and latency percentiles per "
        "version; breaches of serving.p99_ms and serving.max_error_rate with suggestions.",
    )
    def serving_metrics(context: dg.AssetExecutionContext) -> dg.MaterializeResult:
        from qlib_assets.monitoring.serving_metrics import plot_serving, serving_metrics
        from qlib_assets.serving.request_log import read_request_log
        from qlib_assets.storage.lake import Lake

        day = date.fromisoformat(context.partition_key)
        log = read_request_log(_log_folder(settings), [day])
        conf = settings.serving
        report = serving_metrics(log, conf.p99_ms, conf.max_error_rate)
        lake = Lake(settings.lake_dir)
        sha = lake.write_day("serving_metrics", day, report.per_version)
        metadata: dict[str, object] = {
            "requests": report.requests,
            "error_rate": report.error_rate,
            "breaches": len(report.breaches),
            "per_version": dg.MetadataValue.md(_markdown(report.per_version)),
            "suggestions": dg.MetadataValue.json(report.breaches_table()),
            "sha256": sha,
        }
        if log.height:
            plot = plot_serving(log, conf.p99_ms, settings.root / "reports" / f"serving_{day}.png")
            metadata.update(png_metadata(plot, "serving_plot"))
        for breach in report.breaches:
            context.log.warning(
                f"{breach.scope}: {breach.rule} {breach.value:.4g} > "
                f"{breach.bound:.4g}: {breach.suggestion}"
            )
        return dg.MaterializeResult(metadata=metadata)

    return dg.Definitions(assets=[serving_request_log, serving_metrics])


def _markdown(frame: pl.DataFrame) -> str:
    if not frame.height:
        return "no requests"
    return frame.to_pandas().to_markdown(index=False, floatfmt=".4g")
