"""What the landing sensor requests: contiguous session ranges whose landing files changed.

The plan compares the landing catalog with what raw_bars last ingested (its record in the
lake, written by the run), not with a copy of the catalog kept in the cursor: the cursor only
remembers the ranges requested and not yet ingested, a few hundred bytes whatever the number
of files, and it does not change while nothing happens. Planning has no side effect.
"""

import hashlib
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date
from typing import Any

from qlib_assets.calendar import is_session
from qlib_assets.market.landing import LandingEntry, session_versions

CURSOR_VERSION = 2


@dataclass(frozen=True)
class PlannedRun:
    start: str
    end: str
    files: tuple[str, ...]
    run_key: str


@dataclass
class LandingPlan:
    runs: list[PlannedRun]
    touched_sessions: list[str]
    # Files no session run will read: unreadable, symbolic links, without a readable date, or
    # holding no partition and some day the exchange never traded (a Saturday, a date past the
    # calendar). A run of ``landing_rejections`` quarantines them.
    rejectable: list[str]
    rejection_key: str | None
    cursor: dict[str, Any]
    waiting: list[str] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)

    def cursor_text(self) -> str:
        return json.dumps(self.cursor, sort_keys=True, separators=(",", ":"))


def _digest(parts: Sequence[str]) -> str:
    return hashlib.sha256("\n".join(parts).encode()).hexdigest()[:32]


def plan_landing_runs(
    entries: Mapping[str, LandingEntry],
    ingested: Mapping[str, str],
    partition_keys: Sequence[str],
    calendar: str,
    cursor: Mapping[str, Any] | None = None,
    now: float = 0.0,
    retry_seconds: float = 3600.0,
) -> LandingPlan:
    """Plan one run per contiguous range of sessions whose landing data version differs from
    the one raw_bars was built from (``ingested``).

    A file delivered again with identical bytes, under its own or a new name, changes no
    version and requests nothing. Ranges already requested with the same versions (kept in
    the cursor until raw_bars records them) are not requested again, unless ``retry_seconds``
    passed since (the run failed for good): then they are requested under a new run key.
    Files not yet settled are not looked at.
    """
    position = {key: i for i, key in enumerate(partition_keys)}
    versions = session_versions(entries)
    changed = [day for day in versions if day in position and versions[day] != ingested.get(day)]
    previous = (
        (cursor or {}).get("pending", {}) if (cursor or {}).get("v") == CURSOR_VERSION else {}
    )
    pending, attempts = _still_pending(previous, versions, ingested, now, retry_seconds)
    in_flight = {
        day for spec in pending.values() for day in changed if spec["start"] <= day <= spec["end"]
    }
    days = sorted((d for d in changed if d not in in_flight), key=position.__getitem__)

    holders: dict[str, set[str]] = {}
    for rel, entry in entries.items():
        if entry.usable:
            for day in entry.dates:
                holders.setdefault(day, set()).add(rel)
    runs: list[PlannedRun] = []
    group: list[str] = []
    for day in days:
        if group and position[day] != position[group[-1]] + 1:
            runs.append(_run(group, holders, versions, attempts))
            group = []
        group.append(day)
    if group:
        runs.append(_run(group, holders, versions, attempts))
    for run in runs:
        pending[run.run_key] = {
            "start": run.start,
            "end": run.end,
            "versions": _range_digest(run.start, run.end, versions),
            "at": int(now),
            "attempt": max(attempts.get(d, 0) for d in days if run.start <= d <= run.end),
        }

    rejectable = rejectable_files(entries, partition_keys, calendar)
    key = _digest([f"{r}:{entries[r].sha256}" for r in rejectable]) if rejectable else None
    problems = [
        f"{rel}: no session of it is a partition; it will be validated and quarantined"
        for rel in rejectable
        if entries[rel].error is None
    ]
    return LandingPlan(
        runs=runs,
        touched_sessions=days,
        rejectable=rejectable,
        rejection_key=key,
        cursor={"v": CURSOR_VERSION, "pending": pending},
        waiting=sorted(rel for rel, entry in entries.items() if not entry.settled),
        problems=problems,
    )


def rejectable_files(
    entries: Mapping[str, LandingEntry], partition_keys: Sequence[str], calendar: str
) -> list[str]:
    """Settled files no session run reads, each of which breaks a rule (see LandingPlan)."""
    position = {key: i for i, key in enumerate(partition_keys)}
    return sorted(
        rel
        for rel, entry in entries.items()
        if entry.settled and _rejectable(entry, position, calendar)
    )


def _rejectable(entry: LandingEntry, position: Mapping[str, int], calendar: str) -> bool:
    if entry.error is not None or entry.sha256.startswith("symlink:") or not entry.dates:
        return True
    if any(day in position for day in entry.dates):
        return False
    # Valid sessions before the first partition are history the platform does not keep: leave
    # them. A day the exchange never traded makes the file wrong.
    return any(not _is_session(calendar, day) for day in entry.dates)


def _is_session(calendar: str, day: str) -> bool:
    try:
        return is_session(calendar, date.fromisoformat(day))
    except ValueError:
        return False


def _range_digest(start: str, end: str, versions: Mapping[str, str]) -> str:
    return _digest([f"{d}:{v}" for d, v in sorted(versions.items()) if start <= d <= end])


def _still_pending(
    pending: Mapping[str, Mapping[str, Any]],
    versions: Mapping[str, str],
    ingested: Mapping[str, str],
    now: float,
    retry_seconds: float,
) -> tuple[dict[str, dict[str, Any]], dict[str, int]]:
    """Requested ranges not yet ingested whose files are still what was requested, and the
    attempt number of each session whose request expired unanswered (its run failed or died
    for good): those are requested again under a new run key."""
    kept: dict[str, dict[str, Any]] = {}
    retry: dict[str, int] = {}
    for key, spec in pending.items():
        days = [d for d in versions if spec["start"] <= d <= spec["end"]]
        if _range_digest(spec["start"], spec["end"], versions) != spec["versions"]:
            continue
        if all(ingested.get(d) == versions.get(d) for d in days):
            continue
        if now - spec["at"] > retry_seconds:
            retry.update({d: spec["attempt"] + 1 for d in days})
            continue
        kept[key] = dict(spec)
    return kept, retry


def _run(
    group: list[str],
    holders: Mapping[str, set[str]],
    versions: Mapping[str, str],
    attempts: Mapping[str, int],
) -> PlannedRun:
    files = sorted(set().union(*(holders.get(d, set()) for d in group)))
    attempt = max(attempts.get(d, 0) for d in group)
    key = _digest([f"{d}:{versions[d]}" for d in group] + [f"attempt:{attempt}"])
    return PlannedRun(group[0], group[-1], tuple(files), key)
