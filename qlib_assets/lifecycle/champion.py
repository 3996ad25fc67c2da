"""Which version serves a spec: now (the ``champion`` alias on a production version) and for any
session (the timeline of alias records).

MLflow keeps only the current alias. Every alias move the lifecycle makes is also an audit row
whose evidence names ``effective_from``, the first session the move applies to; the ordered rows
are the spec's timeline, and the version that served session d is the latest assignment effective
on or before d. Sessions before the first assignment are served as before the lifecycle existed:
by the session's window model (the newest servable version trained for the rolling window whose
test segment holds d).
"""

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import date
from typing import Any, Literal

from mlflow.exceptions import MlflowException

from qlib_assets.lifecycle.registry_access import registry_of
from qlib_assets.models.audit import AuditEntry
from qlib_assets.models.platform import spec_windows
from qlib_assets.models.registry import STATE_TAG, IllegalTransition
from qlib_assets.models.rolling import window_for_day
from qlib_assets.models.specs import ModelSpec
from qlib_assets.settings import Settings

CHAMPION = "champion"
CHALLENGER = "challenger"
EFFECTIVE = "effective_from"
# States whose versions never serve by the window rule (today's rule skipped only archived).
NOT_SERVING = frozenset({"archived", "rejected", "rolled_back"})

Source = Literal["promotion", "window_model", "none"]


@dataclass(frozen=True)
class Assignment:
    """``version`` holds ``alias`` from session ``effective_from`` on (None: the alias was
    removed from then on)."""

    alias: str
    version: str | None
    effective_from: date
    entry_id: int
    reason: str


@dataclass(frozen=True)
class ServedBy:
    """The version that serves (or served) one session and how that was decided.

    ``source``: ``promotion`` (an assignment of the timeline), ``window_model`` (no assignment
    before the session: its rolling window's model) or ``none`` (``reason`` says why).
    ``current``: the assignment is the latest one, i.e. the live champion.
    """

    version: str | None
    source: Source
    reason: str
    current: bool = False


def alias_timeline(settings: Settings, name: str, alias: str = CHAMPION) -> list[Assignment]:
    """The assignments of ``alias`` of model ``name``, in the order they take effect."""
    found = [
        Assignment(alias, e.to_value, date.fromisoformat(e.evidence[EFFECTIVE]), e.id, e.reason)
        for e in registry_of(settings).history(name)
        if e.kind == "alias" and e.subject == alias and EFFECTIVE in e.evidence
    ]
    return sorted(found, key=lambda a: (a.effective_from, a.entry_id))


def assignment_on(timeline: Sequence[Assignment], day: date) -> Assignment | None:
    holding = [a for a in timeline if a.effective_from <= day]
    return holding[-1] if holding else None


def champion(settings: Settings, name: str) -> str | None:
    """The version serving new sessions of ``name`` now: the ``champion`` alias, when that
    version is in production (None otherwise)."""
    registry = registry_of(settings)
    try:
        version = registry.aliases(name).get(CHAMPION)
    except MlflowException as exc:
        if exc.error_code == "RESOURCE_DOES_NOT_EXIST":
            return None
        raise
    if version is None or registry.state(name, version) != "production":
        return None
    return version


def assign_alias(
    settings: Settings,
    name: str,
    alias: str,
    version: str | None,
    effective_from: date,
    actor: str,
    reason: str,
    evidence: Mapping[str, Any] | None = None,
) -> AuditEntry:
    """Move (``version``) or remove (None) ``alias`` from session ``effective_from`` on.

    Served history is not rewritten: ``effective_from`` may not precede the alias's latest
    assignment.
    """
    timeline = alias_timeline(settings, name, alias)
    if timeline and effective_from < timeline[-1].effective_from:
        raise IllegalTransition(
            f"{name}: {alias} is assigned from {timeline[-1].effective_from} on (v"
            f"{timeline[-1].version}); a move effective {effective_from} would rewrite what served"
        )
    details = {**dict(evidence or {}), EFFECTIVE: effective_from.isoformat()}
    registry = registry_of(settings)
    if version is None:
        return registry.remove_alias(name, alias, actor, reason, details)
    return registry.set_alias(name, alias, version, actor, reason, details)


def window_models(settings: Settings, spec: ModelSpec) -> dict[str, str]:
    """Window key -> the newest servable version trained for it (the rule before champions)."""
    newest: dict[str, int] = {}
    for mv in registry_of(settings).search(spec=spec.name):
        key = mv.tags.get("window")
        if key is None or mv.tags.get(STATE_TAG) in NOT_SERVING:
            continue
        newest[key] = max(newest.get(key, 0), int(mv.version))
    return {key: str(version) for key, version in newest.items()}


def serving_plan(settings: Settings, spec: ModelSpec, days: Sequence[date]) -> dict[date, ServedBy]:
    """The version that serves each of ``days``: by the champion timeline, else the window
    model; the registry is read once for the whole range."""
    timeline = alias_timeline(settings, spec.name)
    latest = timeline[-1] if timeline else None
    windows = spec_windows(settings, spec)
    by_window: dict[str, str] | None = None
    plan: dict[date, ServedBy] = {}
    for day in sorted(set(days)):
        held = assignment_on(timeline, day)
        if held is not None:
            current = held is latest
            if held.version is None:
                why = f"no champion from {held.effective_from}: {held.reason}"
                plan[day] = ServedBy(None, "none", why, current)
            else:
                plan[day] = ServedBy(
                    held.version,
                    "promotion",
                    f"champion from {held.effective_from} (audit row {held.entry_id})",
                    current,
                )
            continue
        window = window_for_day(windows, day)
        if window is None:
            plan[day] = ServedBy(None, "none", f"no rolling window of {spec.ref} holds {day}")
            continue
        if by_window is None:
            by_window = window_models(settings, spec)
        version = by_window.get(window.key)
        plan[day] = (
            ServedBy(version, "window_model", f"model of window {window.key} (no promotion yet)")
            if version is not None
            else ServedBy(None, "none", f"window {window.key} of {spec.ref} has no servable model")
        )
    return plan


def served_version(settings: Settings, spec: ModelSpec, day: date) -> ServedBy:
    """The version that served (or serves) session ``day`` of ``spec``."""
    return serving_plan(settings, spec, [day])[day]


def fallback_versions(settings: Settings, name: str, exclude: str | None) -> list[str]:
    """Production versions other than ``exclude``, the most recent champion first."""
    registry = registry_of(settings)
    production = [str(mv.version) for mv in registry.search(spec=name, state="production")]
    order = {a.version: i for i, a in enumerate(alias_timeline(settings, name)) if a.version}
    ranked = sorted(production, key=lambda v: (order.get(v, -1), int(v)), reverse=True)
    return [v for v in ranked if v != exclude]


def next_session_to_serve(settings: Settings, spec: ModelSpec, version: str) -> date:
    """Where a promotion made now takes effect: the session after the spec's latest
    predictions, or, before any, the first test session of the version's window."""
    from qlib_assets.calendar import shift_sessions
    from qlib_assets.online.builders import predictions_asset
    from qlib_assets.storage.lake import Lake

    scored = Lake(settings.lake_dir).days(predictions_asset(spec.name))
    if scored:
        return shift_sessions(settings.calendar, scored[-1], 1)
    return date.fromisoformat(registry_of(settings).version(spec.name, version).tags["window"])
