"""The landing zone: a catalog of delivered files (content hash, sessions) and the quarantine."""

import hashlib
import json
import os
import time
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass
from datetime import UTC, date, datetime
from pathlib import Path

from qlib_assets.market.errors import LandingFileError, Violation
from qlib_assets.market.readers import is_landing_file, read_landing_dates
from qlib_assets.storage.atomic import sha256_file, write_bytes_atomic


@dataclass(frozen=True)
class LandingEntry:
    """One landing file as last seen. ``error`` is set when its dates could not be read.

    A file that is not ``settled`` may still be being written: it has no hash or dates yet and
    nothing reads it.
    """

    path: str
    size: int
    mtime_ns: int
    sha256: str
    dates: tuple[str, ...]
    error: str | None = None
    settled: bool = True

    @property
    def usable(self) -> bool:
        return self.settled and self.error is None


class LandingCatalog:
    """Scans the landing folder, rehashing only files whose size or mtime changed.

    Folders whose names start with ``_`` or ``.`` are not landing data (the generator keeps
    its oracle in ``_oracle/``).

    The cache file is only a cache: its content follows from the files, so two writers racing
    on it cannot disagree.

    A file is read only once it has settled: unchanged (modification and status-change times)
    for ``settle_seconds``, and, when ``completion_marker`` is set, with the marker file
    ``<name><completion_marker>`` beside it. A half-written file is therefore never ingested.
    """

    def __init__(
        self,
        landing_dir: Path,
        cache_path: Path,
        aliases: Mapping[str, str] | None = None,
        settle_seconds: float = 0.0,
        completion_marker: str | None = None,
    ) -> None:
        self.landing_dir = landing_dir
        self.cache_path = cache_path
        self.aliases = dict(aliases or {})
        self.settle_seconds = settle_seconds
        self.completion_marker = completion_marker

    def _load_cache(self) -> dict[str, LandingEntry]:
        if not self.cache_path.is_file():
            return {}
        try:
            raw = json.loads(self.cache_path.read_text())
        except (OSError, json.JSONDecodeError):
            return {}
        return {k: LandingEntry(**{**v, "dates": tuple(v["dates"])}) for k, v in raw.items()}

    def _settled(self, path: Path, stat: os.stat_result, now: float) -> bool:
        marker = self.completion_marker
        if marker and not path.with_name(path.name + marker).exists():
            return False
        changed = max(stat.st_mtime_ns, stat.st_ctime_ns) / 1e9
        return now - changed >= self.settle_seconds

    def scan(self, now: float | None = None) -> dict[str, LandingEntry]:
        """Every landing file keyed by its path relative to the landing folder."""
        now = time.time() if now is None else now
        cached = self._load_cache()
        entries: dict[str, LandingEntry] = {}
        if self.landing_dir.is_dir():
            for path in sorted(self.landing_dir.rglob("*")):
                if not is_landing_file(path):
                    continue
                rel_path = path.relative_to(self.landing_dir)
                if any(part.startswith(("_", ".")) for part in rel_path.parts[:-1]):
                    continue
                rel = rel_path.as_posix()
                stat = path.lstat()
                if not self._settled(path, stat, now):
                    entries[rel] = LandingEntry(
                        rel, stat.st_size, stat.st_mtime_ns, "", (), None, settled=False
                    )
                    continue
                previous = cached.get(rel)
                if (
                    previous is not None
                    and previous.size == stat.st_size
                    and previous.mtime_ns == stat.st_mtime_ns
                ):
                    entries[rel] = previous
                    continue
                entries[rel] = self._entry(path, rel, stat)
        settled = {k: v for k, v in entries.items() if v.settled}
        if settled != cached:
            payload = {k: asdict(v) for k, v in settled.items()}
            write_bytes_atomic(self.cache_path, json.dumps(payload, sort_keys=True).encode())
        return entries

    def _entry(self, path: Path, rel: str, stat: os.stat_result) -> LandingEntry:
        """Hash and dates of one file; any failure to read it is recorded, never raised."""
        try:
            digest = f"symlink:{os.readlink(path)}" if path.is_symlink() else sha256_file(path)
            dates = tuple(read_landing_dates(path, self.aliases))
            error = None
        except LandingFileError as exc:
            dates, error = (), str(exc)
        except Exception as exc:  # any reader failure rejects this file alone
            dates, error = (), f"{path}: rule 'unreadable': {type(exc).__name__}: {exc}"
        return LandingEntry(rel, stat.st_size, stat.st_mtime_ns, digest, dates, error)

    def files_for(self, entries: Mapping[str, LandingEntry], days: Iterable[date]) -> list[Path]:
        """The usable files holding any of ``days``, one per distinct content."""
        wanted = {d.isoformat() for d in days}
        return [
            self.landing_dir / rel
            for rel, entry in distinct_entries(entries).items()
            if wanted.intersection(entry.dates)
        ]


def distinct_entries(entries: Mapping[str, LandingEntry]) -> dict[str, LandingEntry]:
    """Usable entries, a byte-identical copy of an earlier (by path) one left out."""
    seen: set[str] = set()
    kept: dict[str, LandingEntry] = {}
    for rel, entry in sorted(entries.items()):
        if entry.usable and entry.sha256 not in seen:
            seen.add(entry.sha256)
            kept[rel] = entry
    return kept


def session_versions(entries: Mapping[str, LandingEntry]) -> dict[str, str]:
    """Data version per session: a digest of the distinct content hashes of the usable files
    that hold it, so a copy under a new name changes nothing."""
    by_day: dict[str, set[str]] = {}
    for entry in distinct_entries(entries).values():
        for day in entry.dates:
            by_day.setdefault(day, set()).add(entry.sha256)
    return {
        day: hashlib.sha256("\n".join(sorted(hashes)).encode()).hexdigest()[:32]
        for day, hashes in sorted(by_day.items())
    }


def quarantine(path: Path, violations: list[Violation], quarantine_dir: Path) -> Path:
    """Move a rejected file out of the landing zone, with a JSON reason beside it.

    The reason is written before the move, so a crash between the two leaves the file in
    landing (it will be rejected again) rather than a quarantined file with no reason.
    """
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S%fZ")
    target = quarantine_dir / f"{stamp}_{path.name}"
    reason = {
        "file": str(path),
        "quarantined_at": stamp,
        "violations": [v.as_json() for v in violations],
    }
    reason_path = target.with_name(target.name + ".reason.json")
    write_bytes_atomic(reason_path, json.dumps(reason, indent=2).encode())
    quarantine_dir.mkdir(parents=True, exist_ok=True)
    try:
        os.replace(path, target)
    except FileNotFoundError:
        # Another run (landing_rejections beside a session run) quarantined it first.
        reason_path.unlink(missing_ok=True)
    return target
