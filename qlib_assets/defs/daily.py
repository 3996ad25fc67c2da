"""One way to write a daily asset: the trading-day decorator, the lake resource, code versions."""

import hashlib
import inspect
from collections.abc import Callable, Iterable, Sequence
from datetime import date
from pathlib import Path
from typing import Any

import dagster as dg
import polars as pl

from qlib_assets.calendar import partition_date
from qlib_assets.storage.lake import Lake

LAKE = "lake"


class LakeResource(dg.ConfigurableResource):
    """The partitioned Parquet lake every daily asset reads and writes."""

    root: str

    def lake(self) -> Lake:
        return Lake(Path(self.root))

    def write_days(self, asset: str, frame: pl.DataFrame, days: Iterable[date]) -> dict[date, str]:
        """One file per requested session (empty when the session has no rows); SHA-256 each."""
        return self.lake().write_days(asset, frame, days)

    def read_days(self, asset: str, days: Iterable[date], strict: bool = True) -> pl.DataFrame:
        return self.lake().read_days(asset, days, strict)

    def days(self, asset: str) -> list[date]:
        return self.lake().days(asset)

    def folder(self, asset: str) -> str:
        return str(Path(self.root) / asset)


def code_version(*parts: Callable[..., Any] | str) -> str:
    """A digest of the source of the functions (and the text of the specs) an asset runs.

    It changes when the asset body, the library function it calls or its spec changes, so
    Dagster marks exactly the assets whose code moved as stale; helpers deeper in the library
    are not followed.
    """
    digest = hashlib.sha256()
    for part in parts:
        text = part if isinstance(part, str) else inspect.getsource(part)
        digest.update(text.encode())
        digest.update(b"\0")
    return digest.hexdigest()[:16]


def session_days(context: dg.AssetExecutionContext) -> list[date]:
    """The sessions of the run's partition range, in order."""
    return [partition_date(k) for k in context.partition_keys]


class DailyAssets:
    """Decorates asset bodies as trading-day assets of one group.

    Every daily asset shares the partitions, a single-run backfill policy (a ten-year backfill
    is one vectorized run) and a code version computed from its body, the library functions it
    calls and its spec text.
    """

    def __init__(self, partitions: dg.PartitionsDefinition, group: str) -> None:
        self.partitions = partitions
        self.group = group

    def asset(
        self,
        name: str,
        *,
        code: Sequence[Callable[..., Any]],
        spec: Sequence[str] = (),
        kinds: set[str],
        description: str,
        deps: Sequence[str | dg.AssetDep | dg.AssetsDefinition | dg.SourceAsset] = (),
        automation_condition: dg.AutomationCondition | None = None,
        check_specs: Sequence[dg.AssetCheckSpec] = (),
        **extra: Any,
    ) -> Callable[[Callable[..., Any]], dg.AssetsDefinition]:
        def decorate(body: Callable[..., Any]) -> dg.AssetsDefinition:
            return dg.asset(
                name=name,
                group_name=self.group,
                partitions_def=self.partitions,
                backfill_policy=dg.BackfillPolicy.single_run(),
                deps=list(deps),
                code_version=code_version(body, *code, *spec),
                kinds=kinds,
                automation_condition=automation_condition,
                check_specs=list(check_specs) or None,
                description=description,
                **extra,
            )(body)

        return decorate
