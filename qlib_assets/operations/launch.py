"""Runs through the configured executor: a reconstructable job, so steps may run elsewhere.

``materialize_range`` in :mod:`qlib_assets.orchestration` executes in-process (one process, no
executor); this module executes as a launched run does, through the executor of
``operations.executor`` (multiprocess, Celery workers or Kubernetes pods).
"""

from collections.abc import Sequence

import dagster as dg
from dagster._core.definitions.reconstruct import ReconstructableJob, ReconstructableRepository

from qlib_assets.operations.deployment import PROJECT_ROOT
from qlib_assets.orchestration import RANGE_END_TAG, RANGE_START_TAG

ASSET_JOB = "__ASSET_JOB"


def reconstructable_asset_job() -> ReconstructableJob:
    repository = ReconstructableRepository.for_module(
        "qlib_assets.operations.location", "code_location", working_directory=str(PROJECT_ROOT)
    )
    return repository.get_reconstructable_job(ASSET_JOB)


def execute_range(
    instance: dg.DagsterInstance,
    assets: Sequence[str],
    start: str,
    end: str | None = None,
    tags: dict[str, str] | None = None,
) -> dg.JobExecutionResult:
    """One run of ``assets``: the partition range start..end, or the partition ``start``."""
    run_tags = dict(tags or {})
    if end is None:
        run_tags["dagster/partition"] = start
    else:
        run_tags |= {RANGE_START_TAG: start, RANGE_END_TAG: end}
    return dg.execute_job(
        reconstructable_asset_job(),
        instance=instance,
        tags=run_tags,
        asset_selection=[dg.AssetKey(name) for name in assets],
        raise_on_error=False,
    )
