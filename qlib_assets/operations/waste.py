"""Waste detection, each finding with a suggestion.

- ``unchanged_inputs``: a partition materialized again with the same data version as before
  (Dagster derives it from the code version and the inputs' data versions): nothing changed.
- ``identical_output``: a partition re-materialized to the same SHA-256 as before.
- ``idle_step``: a step that waited far more than it computed.
- ``saturated_pool``: steps queue for the training pool while every slot is busy.
- ``unread_feature``: a feature asset in the lake that no model spec reads.
"""

from collections.abc import Iterable

import dagster as dg
import polars as pl

from qlib_assets.operations.store import operations_store
from qlib_assets.settings import Settings

FEATURE_ASSETS = ("indicators", "alpha158")
IDLE_CPU_SHARE = 0.2
IDLE_MIN_WALL_SECONDS = 5.0
HISTORY = 2000
DATA_VERSION_TAG = "dagster/data_version"
SCHEMA = {
    "kind": pl.String(),
    "asset": pl.String(),
    "partition": pl.String(),
    "detail": pl.String(),
    "suggestion": pl.String(),
}


def _row(kind: str, asset: str, partition: str | None, detail: str, suggestion: str) -> dict:
    return {
        "kind": kind,
        "asset": asset,
        "partition": partition,
        "detail": detail,
        "suggestion": suggestion,
    }


def repeated_materializations(instance: dg.DagsterInstance) -> list[dict]:
    """Re-materializations whose data version or output hash equals the previous one."""
    rows = []
    for key in instance.get_asset_keys():
        records = instance.fetch_materializations(
            dg.AssetRecordsFilter(asset_key=key), limit=HISTORY, ascending=True
        ).records
        previous: dict[str | None, dg.AssetMaterialization] = {}
        for record in records:
            event = record.asset_materialization
            if event is None:
                continue
            before = previous.get(event.partition)
            previous[event.partition] = event
            if before is None:
                continue
            name = key.to_user_string()
            version = (event.tags or {}).get(DATA_VERSION_TAG)
            if version is not None and version == (before.tags or {}).get(DATA_VERSION_TAG):
                rows.append(
                    _row(
                        "unchanged_inputs",
                        name,
                        event.partition,
                        f"data version {version[:12]} again (same code, same inputs)",
                        "skip it: materialize only stale partitions (automation conditions, "
                        "'materialize changed and missing' in the UI)",
                    )
                )
                continue
            digest = event.metadata.get("sha256")
            if digest is not None and digest == before.metadata.get("sha256"):
                rows.append(
                    _row(
                        "identical_output",
                        name,
                        event.partition,
                        "output byte-identical to the previous materialization",
                        "the upstream change did not reach this asset: narrow the sensor or the "
                        "partition range that requested it",
                    )
                )
    return rows


def idle_steps(usage: pl.DataFrame) -> list[dict]:
    idle = usage.filter(
        (pl.col("wall_seconds") >= IDLE_MIN_WALL_SECONDS)
        & (pl.col("cpu_seconds") < pl.col("wall_seconds") * IDLE_CPU_SHARE)
    )
    return [
        _row(
            "idle_step",
            row["asset"],
            row["first_partition"],
            f"{row['cpu_seconds']:.1f} CPU s in {row['wall_seconds']:.1f} s on {row['host']}",
            "the step mostly waited: fewer concurrent steps (operations.max_concurrent_steps) or "
            "Celery autoscale with a minimum of 0 so idle workers give their cores back",
        )
        for row in idle.iter_rows(named=True)
    ]


def saturated_pools(instance: dg.DagsterInstance, pools: Iterable[str] = ("training",)) -> list:
    rows = []
    for pool in pools:
        info = instance.event_log_storage.get_concurrency_info(pool)
        if info.pending_step_count and info.active_slot_count >= (info.slot_count or 0):
            rows.append(
                _row(
                    "saturated_pool",
                    pool,
                    None,
                    f"{info.pending_step_count} step(s) waiting, "
                    f"{info.active_slot_count}/{info.slot_count} slots busy",
                    "more slots if memory allows (machine_capacity), or a worker on another "
                    "machine (Celery), or lower-priority training tagged to wait",
                )
            )
    return rows


def unread_features(settings: Settings, present: Iterable[str]) -> list[dict]:
    from qlib_assets.models.platform import platform_specs

    read = {source.asset for spec in platform_specs(settings).values() for source in spec.features}
    return [
        _row(
            "unread_feature",
            asset,
            None,
            "materialized every session, read by no model spec",
            "stop materializing it daily (remove it from the daily selection) or add a spec that "
            "uses it",
        )
        for asset in FEATURE_ASSETS
        if asset in present and asset not in read
    ]


def find_waste(instance: dg.DagsterInstance, settings: Settings) -> pl.DataFrame:
    usage = operations_store(settings.operations, settings.root).usage()
    lake = settings.lake_dir
    present = {p.name for p in lake.iterdir() if p.is_dir()} if lake.is_dir() else set()
    rows = [
        *repeated_materializations(instance),
        *idle_steps(usage),
        *saturated_pools(instance),
        *unread_features(settings, present),
    ]
    return pl.DataFrame(rows, schema=SCHEMA)
