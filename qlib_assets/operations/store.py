"""The operations tables (SQLAlchemy Core): ``resource_usage`` and ``budget_audit``.

SQLite at ``<home>/operations.db`` by default; ``operations.database_url`` moves them to any
SQLAlchemy URL (PostgreSQL for several machines). Both tables are append-only.
"""

from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import polars as pl
import sqlalchemy as sa

from qlib_assets.operations.accounting import ResourceUsage
from qlib_assets.operations.config import OperationsSettings

METADATA = sa.MetaData()

RESOURCE_USAGE = sa.Table(
    "resource_usage",
    METADATA,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("run_id", sa.String(64), nullable=False, index=True),
    sa.Column("step_key", sa.String(256), nullable=False),
    sa.Column("asset", sa.String(256), nullable=False, index=True),
    sa.Column("spec", sa.String(128), nullable=True),
    sa.Column("first_partition", sa.String(64), nullable=True),
    sa.Column("last_partition", sa.String(64), nullable=True),
    sa.Column("partitions", sa.Integer, nullable=False),
    sa.Column("host", sa.String(256), nullable=False),
    sa.Column("run_kind", sa.String(64), nullable=True),
    sa.Column("cpu_seconds", sa.Float, nullable=False),
    sa.Column("peak_memory_mb", sa.Float, nullable=False),
    sa.Column("wall_seconds", sa.Float, nullable=False),
    sa.Column("bytes_written", sa.BigInteger, nullable=False),
    sa.Column("at", sa.DateTime(timezone=True), nullable=False, index=True),
)

BUDGET_AUDIT = sa.Table(
    "budget_audit",
    METADATA,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("run_id", sa.String(64), nullable=False, index=True),
    sa.Column("action", sa.String(16), nullable=False),  # "hold" or "release"
    sa.Column("month", sa.String(7), nullable=False),
    sa.Column("spent", sa.Float, nullable=False),
    sa.Column("budget", sa.Float, nullable=True),
    sa.Column("reason", sa.Text, nullable=False),
    sa.Column("at", sa.DateTime(timezone=True), nullable=False),
)

USAGE_SCHEMA = {
    "run_id": pl.String(),
    "step_key": pl.String(),
    "asset": pl.String(),
    "spec": pl.String(),
    "first_partition": pl.String(),
    "last_partition": pl.String(),
    "partitions": pl.Int64(),
    "host": pl.String(),
    "run_kind": pl.String(),
    "cpu_seconds": pl.Float64(),
    "peak_memory_mb": pl.Float64(),
    "wall_seconds": pl.Float64(),
    "bytes_written": pl.Int64(),
    "at": pl.Datetime("us", "UTC"),
}


def default_operations_url(home: Path) -> str:
    return f"sqlite:///{home / 'operations.db'}"


def operations_url(ops: OperationsSettings, home: Path) -> str:
    if ops.database_url:
        return ops.database_url
    home.mkdir(parents=True, exist_ok=True)
    return default_operations_url(home)


def operations_store(ops: OperationsSettings, home: Path) -> "OperationsStore":
    return OperationsStore(operations_url(ops, home))


@dataclass(frozen=True)
class StepIdentity:
    """Which step of which run a measurement belongs to."""

    run_id: str
    step_key: str
    asset: str
    partitions: tuple[str, ...] = ()
    spec: str | None = None
    host: str = "localhost"
    run_kind: str | None = None


@dataclass(frozen=True)
class BudgetEvent:
    run_id: str
    action: str
    month: str
    spent: float
    budget: float | None
    reason: str
    at: datetime


class OperationsStore:
    def __init__(self, url: str) -> None:
        self.engine = sa.create_engine(url)
        METADATA.create_all(self.engine)

    def record_usage(self, step: StepIdentity, usage: ResourceUsage) -> None:
        row: dict[str, Any] = {
            "run_id": step.run_id,
            "step_key": step.step_key,
            "asset": step.asset,
            "spec": step.spec,
            "first_partition": min(step.partitions) if step.partitions else None,
            "last_partition": max(step.partitions) if step.partitions else None,
            "partitions": len(step.partitions),
            "host": step.host,
            "run_kind": step.run_kind,
            **usage.as_metadata(),
            "at": datetime.now(UTC),
        }
        with self.engine.begin() as conn:
            conn.execute(RESOURCE_USAGE.insert().values(**row))

    def usage(self, since: datetime | None = None) -> pl.DataFrame:
        query = sa.select(*(RESOURCE_USAGE.c[name] for name in USAGE_SCHEMA))
        if since is not None:
            query = query.where(RESOURCE_USAGE.c.at >= since)
        with self.engine.connect() as conn:
            rows = [dict(r._mapping) for r in conn.execute(query.order_by(RESOURCE_USAGE.c.id))]
        for row in rows:
            # SQLite hands back naive datetimes; every stored time is UTC.
            if row["at"].tzinfo is None:
                row["at"] = row["at"].replace(tzinfo=UTC)
        return pl.DataFrame(rows, schema=USAGE_SCHEMA)

    def record_budget(
        self,
        run_id: str,
        action: str,
        month: str,
        spent: float,
        budget: float | None,
        reason: str,
    ) -> BudgetEvent:
        if action not in ("hold", "release"):
            raise ValueError(f"budget_audit: action must be 'hold' or 'release', got {action!r}")
        event = BudgetEvent(run_id, action, month, spent, budget, reason, datetime.now(UTC))
        with self.engine.begin() as conn:
            conn.execute(BUDGET_AUDIT.insert().values(**event.__dict__))
        return event

    def budget_events(self, run_id: str | None = None) -> list[BudgetEvent]:
        query = sa.select(BUDGET_AUDIT).order_by(BUDGET_AUDIT.c.id)
        if run_id is not None:
            query = query.where(BUDGET_AUDIT.c.run_id == run_id)
        with self.engine.connect() as conn:
            return [
                BudgetEvent(**{k: v for k, v in r._mapping.items() if k != "id"})
                for r in conn.execute(query)
            ]

    def held_runs(self) -> set[str]:
        """Runs whose last budget event is a hold."""
        last: dict[str, str] = {}
        for event in self.budget_events():
            last[event.run_id] = event.action
        return {run for run, action in last.items() if action == "hold"}
