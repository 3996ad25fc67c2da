"""Every version a lake partition ever had: content-addressed objects plus an SQLite index.

Layout, inside the lake root so that the lake and its history travel together::

    .versions/objects/<sha[:2]>/<sha>    the bytes of a version (read-only, one file per content)
    .versions/index.sqlite               one row per (asset, day) version, and the restore audit

A version is its SHA-256, the time it became the partition's content and the run that wrote
it. A write hard-links the new file into the object store (one ``link`` call: the previous
bytes are already there from their own write), so a rewrite moves no data; equal content is
stored once. A partition removed by an in-place restore gets a row with an empty SHA-256 (a
tombstone), so "as of" a later time it is absent again.

Crash safety: objects are linked before the index row is committed, and one transaction holds
the rows of one batch, so the index never names bytes that are not stored. A crash after a
rename but before the commit leaves a lake file the index does not know; the next write of that
partition (or ``adopt``) hashes it and records it, dated by its mtime, before replacing it.
"""

import contextvars
import itertools
import os
import shutil
import sqlite3
import sys
import time
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

from qlib_assets.storage.atomic import sha256_file

STORE_DIR = ".versions"
UNKNOWN_RUN = "manual"
UNTRACKED_RUN = "untracked"
_TIMEOUT_S = 60.0
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)

_SCHEMA = """
CREATE TABLE IF NOT EXISTS versions (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    asset TEXT NOT NULL,
    day TEXT NOT NULL,
    sha256 TEXT NOT NULL,
    size INTEGER NOT NULL,
    written_ns INTEGER NOT NULL,
    run_id TEXT NOT NULL,
    pruned_ns INTEGER
);
CREATE INDEX IF NOT EXISTS versions_partition ON versions (asset, day, written_ns);
CREATE INDEX IF NOT EXISTS versions_sha ON versions (sha256);
CREATE TABLE IF NOT EXISTS restores (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    at_ns INTEGER NOT NULL,
    as_of_ns INTEGER NOT NULL,
    target TEXT NOT NULL,
    in_place INTEGER NOT NULL,
    actor TEXT NOT NULL,
    reason TEXT NOT NULL,
    changed INTEGER NOT NULL
);
"""

_writer_run: contextvars.ContextVar[str | None] = contextvars.ContextVar(
    "lake_writer_run", default=None
)


@contextmanager
def writing_run(run_id: str) -> Iterator[None]:
    """Lake writes inside this block are recorded as written by ``run_id``."""
    token = _writer_run.set(run_id)
    try:
        yield
    finally:
        _writer_run.reset(token)


def current_run_id(explicit: str | None = None) -> str:
    """The writer's run: the explicit one, else ``writing_run``'s, else the Dagster run whose
    asset body is executing (looked up only when Dagster is already imported), else manual."""
    if explicit:
        return explicit
    if (run := _writer_run.get()) is not None:
        return run
    if "dagster" in sys.modules:
        import dagster as dg

        try:
            return dg.OpExecutionContext.get().run_id
        except dg.DagsterInvariantViolationError:
            pass
    return UNKNOWN_RUN


def to_ns(moment: datetime) -> int:
    """Nanoseconds since the epoch (exact, whole microseconds); a naive time is UTC."""
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return (moment - _EPOCH) // timedelta(microseconds=1) * 1000


def from_ns(ns: int) -> datetime:
    return _EPOCH + timedelta(microseconds=ns // 1000)


def _now_ns() -> int:
    """Version times are whole microseconds, so a time shown by ``history`` (a datetime)
    names its version exactly when given back as ``--as-of``."""
    return time.time_ns() // 1000 * 1000


@dataclass(frozen=True)
class PartitionVersion:
    asset: str
    day: date
    seq: int
    sha256: str
    size: int
    written_ns: int
    run_id: str
    pruned_ns: int | None

    @property
    def written_at(self) -> datetime:
        return from_ns(self.written_ns)

    @property
    def deleted(self) -> bool:
        return self.sha256 == ""


@dataclass(frozen=True)
class Retention:
    """How long superseded versions stay, and how many bytes they may take; None: no bound.

    A partition's current version is never pruned, whatever its age or size.
    """

    keep_days: float | None = None
    max_bytes: int | None = None


@dataclass(frozen=True)
class PruneResult:
    versions: int
    objects: int
    bytes_freed: int


class VersionError(ValueError):
    """A version that does not exist or whose bytes are no longer kept."""


def _link_or_copy(source: Path, target: Path) -> None:
    try:
        os.link(source, target)
    except OSError:
        shutil.copyfile(source, target)


def _same_file(a: Path, b: Path) -> bool:
    try:
        sa, sb = a.stat(), b.stat()
    except FileNotFoundError:
        return False
    return (sa.st_dev, sa.st_ino) == (sb.st_dev, sb.st_ino)


class VersionStore:
    """The kept versions of the partitions under ``lake_root``."""

    def __init__(self, lake_root: Path) -> None:
        self.lake_root = lake_root
        self.root = lake_root / STORE_DIR
        self.objects = self.root / "objects"
        self._conn: sqlite3.Connection | None = None

    # -- index ---------------------------------------------------------------------------

    def _db(self) -> sqlite3.Connection:
        if self._conn is None:
            self.objects.mkdir(parents=True, exist_ok=True)
            conn = sqlite3.connect(
                self.root / "index.sqlite", timeout=_TIMEOUT_S, isolation_level=None
            )
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute("PRAGMA synchronous=NORMAL")
            conn.executescript(_SCHEMA)
            self._conn = conn
        return self._conn

    @contextmanager
    def _transaction(self) -> Iterator[sqlite3.Connection]:
        conn = self._db()
        conn.execute("BEGIN IMMEDIATE")
        try:
            yield conn
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        conn.execute("COMMIT")

    def close(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None

    def exists(self) -> bool:
        return (self.root / "index.sqlite").is_file()

    def _rows(self, where: str, params: Iterable[object]) -> list[PartitionVersion]:
        if not self.exists():
            return []
        cursor = self._db().execute(
            "SELECT asset, day, seq, sha256, size, written_ns, run_id, pruned_ns FROM versions "
            f"WHERE {where} ORDER BY asset, day, written_ns, seq",
            tuple(params),
        )
        return [
            PartitionVersion(a, date.fromisoformat(d), s, h, n, w, r, p)
            for a, d, s, h, n, w, r, p in cursor
        ]

    def history(self, asset: str, day: date) -> list[PartitionVersion]:
        """The partition's versions, oldest first."""
        return self._rows("asset = ? AND day = ?", (asset, day.isoformat()))

    def latest(self, asset: str, days: Sequence[date] = ()) -> dict[date, PartitionVersion]:
        """The newest version of each of ``asset``'s partitions (tombstones included); only
        those between the first and last of ``days`` when given (the daily path reads one)."""
        if not days:
            return {v.day: v for v in self._rows("asset = ?", (asset,))}
        span = (asset, min(days).isoformat(), max(days).isoformat())
        return {v.day: v for v in self._rows("asset = ? AND day BETWEEN ? AND ?", span)}

    def assets(self) -> list[str]:
        if not self.exists():
            return []
        return [a for (a,) in self._db().execute("SELECT DISTINCT asset FROM versions ORDER BY 1")]

    def first_written_ns(self) -> int | None:
        if not self.exists():
            return None
        (first,) = self._db().execute("SELECT MIN(written_ns) FROM versions").fetchone()
        return first

    def as_of(self, as_of_ns: int, asset: str | None = None) -> list[PartitionVersion]:
        """The version each partition had at ``as_of_ns``; partitions absent then are left out."""
        rows = self._rows(
            "written_ns <= ?" + (" AND asset = ?" if asset else ""),
            (as_of_ns, asset) if asset else (as_of_ns,),
        )
        current: dict[tuple[str, date], PartitionVersion] = {}
        for row in rows:
            current[(row.asset, row.day)] = row
        return [v for v in current.values() if not v.deleted]

    # -- objects -------------------------------------------------------------------------

    def object_path(self, sha256: str) -> Path:
        return self.objects / sha256[:2] / sha256

    def open_version(self, version: PartitionVersion) -> Path:
        """The file holding ``version``'s bytes; a clear error when retention dropped them."""
        path = self.object_path(version.sha256)
        if version.pruned_ns is not None or not path.is_file():
            when = f" at {from_ns(version.pruned_ns)}" if version.pruned_ns else ""
            raise VersionError(
                f"{version.asset} {version.day}: version {version.sha256[:12]} written "
                f"{version.written_at} is no longer kept (pruned by retention{when})"
            )
        return path

    def find(self, asset: str, day: date, sha256: str) -> PartitionVersion:
        """The version of a partition with these bytes (the newest such row)."""
        found = [v for v in self.history(asset, day) if v.sha256 == sha256]
        if not found:
            raise VersionError(f"{asset} {day}: no version with SHA-256 {sha256} was ever written")
        return found[-1]

    def _store(self, source: Path, sha256: str) -> Path:
        """Hard-link ``source`` into the object store unless that content is already there."""
        path = self.object_path(sha256)
        if not path.is_file():
            path.parent.mkdir(parents=True, exist_ok=True)
            staging = path.with_name(f".{sha256}.{os.getpid()}.tmp")
            staging.unlink(missing_ok=True)
            _link_or_copy(source, staging)
            os.replace(staging, path)
        return path

    # -- writes --------------------------------------------------------------------------

    def keep_existing(
        self, asset: str, day: date, target: Path, latest: PartitionVersion | None
    ) -> bool:
        """Make sure the file about to be replaced is kept; record it when the index lacks it
        (True then).

        Costs two ``stat`` calls when the file is the indexed version (the usual case); a file
        the index does not know (written before versions existed, or a crash) is hashed once.
        """
        if not target.is_file():
            return False
        if (
            latest is not None
            and not latest.deleted
            and _same_file(target, self.object_path(latest.sha256))
        ):
            return False
        sha = sha256_file(target)
        self._store(target, sha)
        if latest is not None and latest.sha256 == sha and latest.pruned_ns is None:
            return False
        stat = target.stat()
        mtime = stat.st_mtime_ns // 1000 * 1000
        row = (asset, day.isoformat(), sha, stat.st_size, mtime, UNTRACKED_RUN)
        with self._transaction() as conn:
            conn.execute(
                "INSERT INTO versions (asset, day, sha256, size, written_ns, run_id) "
                "VALUES (?, ?, ?, ?, ?, ?)",
                row,
            )
        return True

    def link_written(self, target: Path, sha256: str) -> None:
        """After ``target`` got new bytes: keep them; equal content already kept is shared.

        Also puts kept bytes back at ``target`` (which need not exist then).
        """
        path = self.object_path(sha256)
        if path.is_file():
            target.parent.mkdir(parents=True, exist_ok=True)
            if not _same_file(target, path):
                swap = target.with_name(f".{target.name}.{os.getpid()}.link")
                swap.unlink(missing_ok=True)
                _link_or_copy(path, swap)
                os.replace(swap, target)
            return
        self._store(target, sha256)

    def record(
        self,
        written: Iterable[tuple[str, date, str, int]],
        run_id: str,
        latest: dict[tuple[str, date], PartitionVersion],
    ) -> int:
        """Index the (asset, day, sha256, size) just written, in one transaction; a partition
        whose bytes did not change gets no new version. Returns how many were recorded."""
        now = _now_ns()
        rows = []
        for asset, day, sha, size in written:
            before = latest.get((asset, day))
            if before is not None and before.sha256 == sha and before.pruned_ns is None:
                continue
            rows.append((asset, day.isoformat(), sha, size, now, run_id))
        if rows:
            with self._transaction() as conn:
                conn.executemany(
                    "INSERT INTO versions (asset, day, sha256, size, written_ns, run_id) "
                    "VALUES (?, ?, ?, ?, ?, ?)",
                    rows,
                )
        return len(rows)

    def record_restore(
        self, as_of_ns: int, target: Path, in_place: bool, actor: str, reason: str, changed: int
    ) -> None:
        with self._transaction() as conn:
            conn.execute(
                "INSERT INTO restores (at_ns, as_of_ns, target, in_place, actor, reason, changed)"
                " VALUES (?, ?, ?, ?, ?, ?, ?)",
                (_now_ns(), as_of_ns, str(target), int(in_place), actor, reason, changed),
            )

    def restores(self) -> list[dict[str, object]]:
        if not self.exists():
            return []
        cursor = self._db().execute(
            "SELECT at_ns, as_of_ns, target, in_place, actor, reason, changed FROM restores "
            "ORDER BY seq"
        )
        return [
            {
                "at": from_ns(at).isoformat(),
                "as_of": from_ns(as_of).isoformat(),
                "target": target,
                "in_place": bool(in_place),
                "actor": actor,
                "reason": reason,
                "changed": changed,
            }
            for at, as_of, target, in_place, actor, reason, changed in cursor
        ]

    # -- retention -----------------------------------------------------------------------

    def usage(self) -> tuple[int, int]:
        """(bytes held only by superseded versions, bytes of all kept objects)."""
        total = sum(p.stat().st_size for p in self.objects.glob("*/*") if p.name[0] != ".")
        return total - self._current_bytes(), total

    def _current_bytes(self) -> int:
        current = self._current_shas()
        return sum(
            self.object_path(s).stat().st_size for s in current if self.object_path(s).is_file()
        )

    def _current_shas(self) -> set[str]:
        latest: dict[tuple[str, date], PartitionVersion] = {}
        for row in self._rows("1 = 1", ()):
            latest[(row.asset, row.day)] = row
        return {v.sha256 for v in latest.values() if not v.deleted}

    def prune(self, retention: Retention, now_ns: int | None = None) -> PruneResult:
        """Drop superseded versions older than ``keep_days`` (by when they were superseded),
        then the oldest superseded ones until their objects fit ``max_bytes``. Index rows stay,
        marked pruned, so history still tells what existed."""
        if not self.exists() or (retention.keep_days is None and retention.max_bytes is None):
            return PruneResult(0, 0, 0)
        now_ns = now_ns or _now_ns()
        rows = self._rows("1 = 1", ())
        superseded: list[tuple[int, PartitionVersion]] = []
        by_partition: dict[tuple[str, date], list[PartitionVersion]] = {}
        for row in rows:
            by_partition.setdefault((row.asset, row.day), []).append(row)
        for versions in by_partition.values():
            for old, new in itertools.pairwise(versions):
                if old.pruned_ns is None and not old.deleted:
                    superseded.append((new.written_ns, old))
        superseded.sort(key=lambda pair: pair[0])
        protected = self._current_shas()
        drop: list[PartitionVersion] = []
        if retention.keep_days is not None:
            cutoff = now_ns - int(retention.keep_days * 86_400e9)
            drop.extend(v for since, v in superseded if since < cutoff)
        if retention.max_bytes is not None:
            dropped = {v.seq for v in drop}
            remaining = [v for _, v in superseded if v.seq not in dropped]
            sizes = {v.sha256: v.size for v in remaining if v.sha256 not in protected}
            held = sum(sizes.values())
            holders: dict[str, int] = {}
            for version in remaining:
                holders[version.sha256] = holders.get(version.sha256, 0) + 1
            for version in remaining:
                if held <= retention.max_bytes:
                    break
                drop.append(version)
                holders[version.sha256] -= 1
                if holders[version.sha256] == 0 and version.sha256 in sizes:
                    held -= sizes.pop(version.sha256)
        if not drop:
            return PruneResult(0, 0, 0)
        with self._transaction() as conn:
            conn.executemany(
                "UPDATE versions SET pruned_ns = ? WHERE seq = ?", [(now_ns, v.seq) for v in drop]
            )
            referenced = {
                sha
                for (sha,) in conn.execute(
                    "SELECT DISTINCT sha256 FROM versions WHERE pruned_ns IS NULL"
                )
            }
        objects = freed = 0
        for sha in {v.sha256 for v in drop} - referenced:
            path = self.object_path(sha)
            if path.is_file():
                freed += path.stat().st_size
                path.unlink()
                objects += 1
        return PruneResult(len(drop), objects, freed)
