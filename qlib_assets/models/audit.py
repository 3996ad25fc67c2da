"""The append-only audit table of model lifecycle and alias changes (SQLAlchemy Core).

MLflow keeps only the current state of a version and of an alias; this table keeps every change:
model, version, from, to, actor, reason, evidence (JSON) and time. SQLite at
``<home>/registry_audit.db`` by default; any SQLAlchemy URL works (e.g. PostgreSQL). Rows are only
ever inserted: the API has no update or delete.
"""

import json
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import sqlalchemy as sa

METADATA = sa.MetaData()

AUDIT = sa.Table(
    "model_audit",
    METADATA,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("model", sa.String(256), nullable=False, index=True),
    sa.Column("version", sa.String(64), nullable=False),
    sa.Column("kind", sa.String(16), nullable=False),  # "state" or "alias"
    sa.Column("subject", sa.String(64), nullable=False),  # "lifecycle" or the alias name
    sa.Column("from_value", sa.String(64), nullable=True),
    sa.Column("to_value", sa.String(64), nullable=True),
    sa.Column("actor", sa.String(256), nullable=False),
    sa.Column("reason", sa.Text, nullable=False),
    sa.Column("evidence", sa.Text, nullable=False),
    sa.Column("at", sa.DateTime(timezone=True), nullable=False),
)


@dataclass(frozen=True)
class AuditEntry:
    id: int
    model: str
    version: str
    kind: str
    subject: str
    from_value: str | None
    to_value: str | None
    actor: str
    reason: str
    evidence: dict[str, Any]
    at: datetime


def default_audit_url(home: Path) -> str:
    return f"sqlite:///{home / 'registry_audit.db'}"


class AuditLog:
    def __init__(self, url: str) -> None:
        self.engine = sa.create_engine(url)
        METADATA.create_all(self.engine)

    def record(
        self,
        model: str,
        version: str,
        kind: str,
        subject: str,
        from_value: str | None,
        to_value: str | None,
        actor: str,
        reason: str,
        evidence: Mapping[str, Any] | None = None,
    ) -> AuditEntry:
        at = datetime.now(UTC)
        row = {
            "model": model,
            "version": str(version),
            "kind": kind,
            "subject": subject,
            "from_value": from_value,
            "to_value": to_value,
            "actor": actor,
            "reason": reason,
            "evidence": json.dumps(dict(evidence or {}), sort_keys=True, default=str),
            "at": at,
        }
        with self.engine.begin() as conn:
            new_id = conn.execute(AUDIT.insert().values(**row)).inserted_primary_key[0]
        return _entry({**row, "id": new_id})

    def history(self, model: str, version: str | None = None) -> list[AuditEntry]:
        """Every change of ``model`` (one version, or all), oldest first."""
        query = sa.select(AUDIT).where(AUDIT.c.model == model)
        if version is not None:
            query = query.where(AUDIT.c.version == str(version))
        with self.engine.connect() as conn:
            rows = conn.execute(query.order_by(AUDIT.c.id)).mappings().all()
        return [_entry(dict(r)) for r in rows]

    def count(self) -> int:
        with self.engine.connect() as conn:
            return int(conn.execute(sa.select(sa.func.count()).select_from(AUDIT)).scalar_one())


def _entry(row: Mapping[str, Any]) -> AuditEntry:
    at = row["at"]
    if at.tzinfo is None:  # SQLite drops the zone; every row was written in UTC
        at = at.replace(tzinfo=UTC)
    return AuditEntry(
        id=int(row["id"]),
        model=row["model"],
        version=row["version"],
        kind=row["kind"],
        subject=row["subject"],
        from_value=row["from_value"],
        to_value=row["to_value"],
        actor=row["actor"],
        reason=row["reason"],
        evidence=json.loads(row["evidence"]),
        at=at,
    )
