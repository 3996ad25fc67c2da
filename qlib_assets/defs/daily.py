"""One way to write a daily asset: the trading-day decorator, the lake resource, code versions."""

import ast
import hashlib
import importlib.util
from collections.abc import Callable, Iterable, Mapping, Sequence
from datetime import date
from functools import cache
from inspect import getsource
from pathlib import Path
from typing import Any

import dagster as dg
import polars as pl
from pydantic import PrivateAttr

from qlib_assets.calendar import partition_date
from qlib_assets.defs.metering import metered
from qlib_assets.market.landing import LandingEntry
from qlib_assets.storage.lake import Lake
from qlib_assets.storage.versions import Retention

LAKE = "lake"


class LakeResource(dg.ConfigurableResource):
    """The partitioned Parquet lake every daily asset reads and writes.

    Every write keeps the bytes it replaces, recorded as written by this run; superseded
    versions beyond ``keep_days`` / ``max_bytes`` are pruned (settings ``versions``).
    """

    root: str
    keep_days: float | None = None
    max_bytes: int | None = None
    _run_id: str | None = PrivateAttr(default=None)

    def setup_for_execution(self, context: dg.InitResourceContext) -> None:
        self._run_id = context.run.run_id if context.run else None

    def lake(self) -> Lake:
        return Lake(Path(self.root), self._run_id, Retention(self.keep_days, self.max_bytes))

    def write_days(self, asset: str, frame: pl.DataFrame, days: Iterable[date]) -> dict[date, str]:
        """One file per requested session (empty when the session has no rows); SHA-256 each."""
        return self.lake().write_days(asset, frame, days)

    def read_days(self, asset: str, days: Iterable[date], strict: bool = True) -> pl.DataFrame:
        return self.lake().read_days(asset, days, strict)

    def days(self, asset: str) -> list[date]:
        return self.lake().days(asset)

    def folder(self, asset: str) -> str:
        return str(Path(self.root) / asset)

    def session_rows(self, asset: str, days: Iterable[date]) -> dict[date, int]:
        """Rows of each session's file, read from the Parquet footer (no data is read)."""
        import pyarrow.parquet as pq

        lake = self.lake()
        return {d: pq.read_metadata(lake.path(asset, d)).num_rows for d in days}


@cache
def _top_level_sources(module: str) -> dict[str, str]:
    # Read from the file, not the imported module: the code location must not import the heavy
    # libraries (qlib, mlflow, evidently) that the assets' library functions use.
    found = importlib.util.find_spec(module)
    if found is None or found.origin is None:
        raise ImportError(f"no module named {module}")
    text = Path(found.origin).read_text(encoding="utf-8")
    return {
        node.name: ast.get_source_segment(text, node) or ""
        for node in ast.parse(text).body
        if isinstance(node, ast.FunctionDef | ast.ClassDef)
    }


def library_source(ref: str) -> str:
    """The source of the top-level function (or class) ``"package.module:name"``."""
    module, _, name = ref.partition(":")
    sources = _top_level_sources(module)
    if name not in sources:
        raise LookupError(f"{module} defines no top-level function or class {name!r}")
    return sources[name]


def code_version(code: Sequence[Callable[..., Any] | str], spec: Sequence[str] = ()) -> str:
    """A digest of the source of what an asset runs and of the text of its spec.

    ``code``: the asset body and the library functions it calls, the latter as
    ``"package.module:function"`` references. The version changes when any of them or the spec
    changes, so Dagster marks exactly the assets whose code moved as stale; helpers deeper in
    the library are not followed.
    """
    digest = hashlib.sha256()
    for part in code:
        digest.update((library_source(part) if isinstance(part, str) else getsource(part)).encode())
        digest.update(b"\0")
    for text in spec:
        digest.update(text.encode())
        digest.update(b"\0")
    return digest.hexdigest()[:16]


def session_days(context: dg.AssetExecutionContext) -> list[date]:
    """The sessions of the run's partition range, in order."""
    return [partition_date(k) for k in context.partition_keys]


class DailyAssets:
    """Decorates asset bodies as trading-day assets of one group.

    Every daily asset shares the partitions, a single-run backfill policy (a ten-year backfill
    is one vectorized run), a code version computed from its body, the library functions it
    calls and its spec text, and resource accounting (:mod:`qlib_assets.defs.metering`).
    """

    def __init__(self, partitions: dg.PartitionsDefinition, group: str) -> None:
        self.partitions = partitions
        self.group = group

    def asset(
        self,
        name: str,
        *,
        code: Sequence[str],
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
                code_version=code_version([body, *code], spec),
                kinds=kinds,
                automation_condition=automation_condition,
                check_specs=list(check_specs) or None,
                description=description,
                **extra,
            )(metered(body))

        return decorate


def add_session_metadata(
    context: dg.AssetExecutionContext,
    by_session: dict[date, dict[str, Any]],
    range_facts: dict[str, Any] | None = None,
) -> None:
    """Give each session's materialization its own figures; facts about the run's whole range go
    once, onto its last session, instead of being copied onto every partition.

    Dagster's ``add_asset_metadata(partition_key=...)`` checks the key against every key of the
    run's range on each call, which is quadratic in a ten-year backfill; the keys are checked
    once here and recorded into the same per-partition accumulator.
    """
    keys = set(context.partition_keys)
    unknown = [d for d in by_session if d.isoformat() not in keys]
    if unknown:
        raise ValueError(f"{context.asset_key.to_user_string()}: {unknown[0]} is not in this run")
    step = context.get_step_execution_context()
    accumulator = step._metadata_accumulator
    for day, metadata in by_session.items():
        accumulator = accumulator.with_additional_asset_metadata(
            asset_key=context.asset_key, metadata=metadata, partition_key=day.isoformat()
        )
    if range_facts:
        accumulator = accumulator.with_additional_asset_metadata(
            asset_key=context.asset_key,
            metadata={"run_range": dg.MetadataValue.json(range_facts)},
            partition_key=context.partition_keys[-1],
        )
    step._metadata_accumulator = accumulator


def write_sessions(
    context: dg.AssetExecutionContext,
    lake: LakeResource,
    asset: str,
    table: pl.DataFrame,
    days: Sequence[date],
    **range_facts: Any,
) -> dict[date, str]:
    """Write one lake file per session and record each session's rows, columns and SHA-256 on
    its own partition; the range's size and folder once."""
    hashes = lake.write_days(asset, table, days)
    rows = dict(table.group_by("date").len().iter_rows())
    columns = table.width - 2
    add_session_metadata(
        context,
        {
            day: {"rows": rows.get(day, 0), "columns": columns, "sha256": digest}
            for day, digest in hashes.items()
        },
        {
            "sessions": len(hashes),
            "first": min(hashes).isoformat() if hashes else None,
            "last": max(hashes).isoformat() if hashes else None,
            "rows": table.height,
            "path": lake.folder(asset),
            **range_facts,
        },
    )
    return hashes


# A session delivered as one file per instrument has thousands of files: its event lists the
# first few and the count, so that no event grows past a few KB.
FILES_SHOWN = 20


def landing_files_by_session(
    entries: Mapping[str, LandingEntry], days: Sequence[date]
) -> dict[date, dict[str, str]]:
    """Session -> {landing file: SHA-256} of the files that hold it."""
    wanted = {d.isoformat(): d for d in days}
    found: dict[date, dict[str, str]] = {}
    for rel, entry in sorted(entries.items()):
        for key in entry.dates:
            if key in wanted:
                found.setdefault(wanted[key], {})[rel] = entry.sha256
    return found


def session_files_metadata(files: Mapping[str, str]) -> dict[str, Any]:
    shown = dict(list(files.items())[:FILES_SHOWN])
    return {
        "landing_files": len(files),
        "landing_file_sha256": dg.MetadataValue.json(shown),
    }
