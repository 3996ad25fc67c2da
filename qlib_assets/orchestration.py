"""Materializing selections of the asset graph through Dagster, as the UI would."""

import os
from collections.abc import Sequence

import dagster as dg

from qlib_assets.runs.health import pid_tags
from qlib_assets.runs.pool_wait import install_pool_wait_fix

install_pool_wait_fix()

RANGE_START_TAG = "dagster/asset_partition_range_start"
RANGE_END_TAG = "dagster/asset_partition_range_end"


def materialize_range(
    defs: dg.Definitions,
    instance: dg.DagsterInstance,
    assets: Sequence[str],
    start: str,
    end: str,
    raise_on_error: bool = True,
    log_level: str = "INFO",
) -> dg.ExecuteInProcessResult:
    """One run that materializes ``assets`` for the partition range start..end.

    Daily assets have single-run backfill policies, so the run computes the whole range in one
    pass, exactly as a ranged backfill launched from the UI does.
    """
    job = defs.resolve_implicit_global_asset_job_def()
    return job.execute_in_process(
        instance=instance,
        asset_selection=[dg.AssetKey(name) for name in assets],
        tags={RANGE_START_TAG: start, RANGE_END_TAG: end, **pid_tags(os.getpid())},
        raise_on_error=raise_on_error,
        run_config={"loggers": {"console": {"config": {"log_level": log_level}}}},
    )


def materialize_partition(
    defs: dg.Definitions,
    instance: dg.DagsterInstance,
    asset: str,
    partition_key: str | None,
    run_config: dict | None = None,
    log_level: str = "WARNING",
) -> dg.ExecuteInProcessResult:
    """One run of one asset for one partition (None: an unpartitioned asset)."""
    job = defs.resolve_implicit_global_asset_job_def()
    return job.execute_in_process(
        instance=instance,
        asset_selection=[dg.AssetKey(asset)],
        partition_key=partition_key,
        tags=pid_tags(os.getpid()),
        run_config={
            **(run_config or {}),
            "loggers": {"console": {"config": {"log_level": log_level}}},
        },
    )
