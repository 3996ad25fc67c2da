"""What the landing sensor requests: contiguous session ranges touched by new or changed files."""

import hashlib
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from qlib_assets.market.landing import LandingEntry


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
    unreadable: list[str]
    cursor: dict[str, Any]
    problems: list[str] = field(default_factory=list)


def plan_landing_runs(
    entries: Mapping[str, LandingEntry],
    cursor: Mapping[str, Any],
    partition_keys: list[str],
) -> LandingPlan:
    """Compare the landing folder with the cursor and plan one run per contiguous range.

    The cursor maps each file to its content hash and remembers every hash ever requested, so
    a file delivered again with identical bytes (same or new name) requests nothing.
    """
    known: dict[str, str] = dict(cursor.get("files", {}))
    seen: set[str] = set(cursor.get("seen", []))
    position = {key: i for i, key in enumerate(partition_keys)}
    touched: dict[str, set[str]] = {}
    unreadable: list[str] = []
    problems: list[str] = []
    for rel, entry in sorted(entries.items()):
        if known.get(rel) == entry.sha256:
            continue
        known[rel] = entry.sha256
        if entry.sha256 in seen:
            continue
        if entry.error is not None:
            unreadable.append(rel)
            continue
        outside = [d for d in entry.dates if d not in position]
        if outside:
            problems.append(
                f"{rel}: {len(outside)} date(s) are not trading-day partitions, e.g. {outside[0]}"
            )
        for day in entry.dates:
            if day in position:
                touched.setdefault(day, set()).add(rel)
        seen.add(entry.sha256)
    for rel in list(known):
        if rel not in entries:
            del known[rel]

    days = sorted(touched, key=position.__getitem__)
    runs: list[PlannedRun] = []
    group: list[str] = []
    for day in days:
        if group and position[day] != position[group[-1]] + 1:
            runs.append(_run(group, touched, entries))
            group = []
        group.append(day)
    if group:
        runs.append(_run(group, touched, entries))
    return LandingPlan(
        runs=runs,
        touched_sessions=days,
        unreadable=unreadable,
        cursor={"files": known, "seen": sorted(seen)},
        problems=problems,
    )


def _run(
    group: list[str], touched: Mapping[str, set[str]], entries: Mapping[str, LandingEntry]
) -> PlannedRun:
    files = sorted(set().union(*(touched[d] for d in group)))
    digest = hashlib.sha256()
    for rel in files:
        digest.update(entries[rel].sha256.encode())
    digest.update(f"{group[0]}:{group[-1]}".encode())
    return PlannedRun(group[0], group[-1], tuple(files), digest.hexdigest())
