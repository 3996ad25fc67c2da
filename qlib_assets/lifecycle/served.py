"""Predictions of the sessions a spec serves, by the version the lifecycle decided, with fallback.

Each session is scored by its version from ``champion.serving_plan`` (the champion timeline, else
the window model). When that version cannot serve (it does not load, fails to score, or it is the
live champion but no longer in production, e.g. archived), the spec's other production versions
are tried, the most recent champion first. Every fallback is an audit row (kind ``decision``,
subject ``fallback``) and is returned, so the asset's check fails visibly; a session is left
without rows only with a reason (no version at all, or none could score it).

Rows carry ``model_version``: the version that produced them.
"""

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import date

import polars as pl

from qlib_assets.lifecycle.champion import (
    CHALLENGER,
    ServedBy,
    alias_timeline,
    assignment_on,
    fallback_versions,
    serving_plan,
)
from qlib_assets.lifecycle.promotion import record_decision
from qlib_assets.lifecycle.registry_access import registry_of
from qlib_assets.lifecycle.sample import load_on_cpu
from qlib_assets.models.specs import ModelSpec
from qlib_assets.online.predictions import PREDICTION_SCHEMA, Scorer, clip_to_latest, score_rows
from qlib_assets.online.predictions import scoring_features as lake_features
from qlib_assets.settings import Settings
from qlib_assets.storage.lake import Lake

VERSION = "model_version"
SERVED_SCHEMA: dict[str, pl.DataType] = {**PREDICTION_SCHEMA, VERSION: pl.String()}
ACTOR = "serving"

VersionLoader = Callable[[str], Scorer]


@dataclass(frozen=True)
class Fallback:
    """``used`` scored ``sessions`` because ``primary`` could not (``error``)."""

    primary: str
    used: str | None
    sessions: tuple[date, ...]
    error: str


@dataclass(frozen=True)
class ServedPredictions:
    """``frame``: ``instrument, date, score, model_version``; ``plan``: what the lifecycle decided
    per requested session; ``used``: session -> the version whose rows were written;
    ``skipped``: session -> why it has no rows."""

    frame: pl.DataFrame
    plan: dict[date, ServedBy]
    used: dict[date, str] = field(default_factory=dict)
    fallbacks: list[Fallback] = field(default_factory=list)
    skipped: dict[date, str] = field(default_factory=dict)
    clipped_to: date | None = None
    warnings: list[str] = field(default_factory=list)

    @property
    def sessions(self) -> list[date]:
        return sorted(self.used)

    def sources(self) -> dict[str, int]:
        """How many sessions each rule decided (promotion / window_model / none)."""
        counts: dict[str, int] = {}
        for served in self.plan.values():
            counts[served.source] = counts.get(served.source, 0) + 1
        return counts


def _served_frame(parts: list[pl.DataFrame]) -> pl.DataFrame:
    frame = pl.concat(parts) if parts else pl.DataFrame(schema=SERVED_SCHEMA)
    return frame.sort("date", "instrument").select(
        pl.col(n).cast(t) for n, t in SERVED_SCHEMA.items()
    )


def _error(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {exc}"[:500]


def served_features(settings: Settings, spec: ModelSpec, days: Sequence[date]) -> pl.DataFrame:
    lake = Lake(settings.lake_dir)
    present = [d for d in days if all(lake.exists(s.asset, d) for s in spec.features)]
    if not present:
        return pl.DataFrame(schema={"instrument": pl.String(), "date": pl.Date()})
    return lake_features(lake, spec, present)


def latest_feature_session(settings: Settings, spec: ModelSpec) -> date:
    lake = Lake(settings.lake_dir)
    common = set.intersection(*(set(lake.days(s.asset)) for s in spec.features))
    if not common:
        raise FileNotFoundError(f"{spec.ref}: none of its feature assets is materialized")
    return max(common)


def serve_predictions(
    settings: Settings,
    spec: ModelSpec,
    days: Sequence[date],
    loader: VersionLoader | None = None,
) -> ServedPredictions:
    """Score ``days`` of ``spec`` by the versions the lifecycle decided (see the module doc).

    A request past the latest session with features is clipped to it (PredUpdater).
    ``loader`` maps a version to a scorer (default: the registered model on the CPU).
    """
    load = loader or (lambda v: load_on_cpu(settings.mlflow_uri, spec.name, v))
    latest = latest_feature_session(settings, spec)
    requested, clipped_to, warnings = clip_to_latest(spec.name, days, latest)
    plan = serving_plan(settings, spec, requested)
    features = served_features(settings, spec, requested)
    with_features = set(features.get_column("date").unique().to_list())
    registry = registry_of(settings)
    skipped: dict[date, str] = {}
    groups: dict[tuple[str, bool], list[date]] = {}
    for day in requested:
        served = plan[day]
        if day not in with_features:
            skipped[day] = "no feature rows for the session"
        elif served.version is None:
            skipped[day] = served.reason
        else:
            groups.setdefault((served.version, served.current), []).append(day)

    scorers: dict[str, Scorer | str] = {}

    def scorer_of(version: str) -> Scorer | str:
        if version not in scorers:
            try:
                scorers[version] = load(version)
            except Exception as exc:
                scorers[version] = _error(exc)
        return scorers[version]

    parts: list[pl.DataFrame] = []
    used: dict[date, str] = {}
    fallbacks: list[Fallback] = []
    for (primary, current), group in groups.items():
        rows = features.filter(pl.col("date").is_in(pl.Series(group, dtype=pl.Date).implode()))
        errors: list[str] = []
        state = registry.state(spec.name, primary) if current else "production"
        if current and state != "production":
            errors.append(f"v{primary} is the champion but {state}")
            order = fallback_versions(settings, spec.name, primary)
        else:
            order = [primary, *fallback_versions(settings, spec.name, primary)]
        scored = None
        for version in order:
            scorer = scorer_of(version)
            if isinstance(scorer, str):
                errors.append(f"v{version} does not load: {scorer}")
                continue
            try:
                scored = score_rows(scorer, rows, f"{spec.name} v{version}")
            except Exception as exc:
                errors.append(f"v{version} cannot score: {_error(exc)}")
                continue
            parts.append(scored.with_columns(pl.lit(version, pl.String).alias(VERSION)))
            used.update(dict.fromkeys(group, version))
            if version != primary:
                fallbacks.append(Fallback(primary, version, tuple(group), "; ".join(errors)))
            break
        if scored is None:
            reason = f"no production version could score it: {'; '.join(errors)}"
            skipped.update(dict.fromkeys(group, reason))
            fallbacks.append(Fallback(primary, None, tuple(group), "; ".join(errors)))

    for fb in fallbacks:
        outcome = f"v{fb.used}" if fb.used else "unscored"
        why = (
            f"{spec.name} v{fb.primary} could not serve {len(fb.sessions)} session(s) "
            f"{fb.sessions[0]}..{fb.sessions[-1]}; "
            + (f"v{fb.used} served them" if fb.used else "no production version could")
        )
        record_decision(
            settings,
            spec.name,
            fb.used or fb.primary,
            "fallback",
            outcome,
            ACTOR,
            why,
            {
                "primary": fb.primary,
                "sessions": [d.isoformat() for d in fb.sessions],
                "errors": fb.error,
            },
        )
        warnings.append(f"{why}: {fb.error}")
    by_reason: dict[str, list[date]] = {}
    for day, reason in skipped.items():
        by_reason.setdefault(reason, []).append(day)
    for reason, skipped_days in by_reason.items():
        warnings.append(
            f"no rows for {len(skipped_days)} session(s) {skipped_days[0]}..{skipped_days[-1]}: "
            f"{reason}"
        )
    return ServedPredictions(
        frame=_served_frame(parts),
        plan=plan,
        used=used,
        fallbacks=fallbacks,
        skipped=skipped,
        clipped_to=clipped_to,
        warnings=warnings,
    )


def serve_shadow(
    settings: Settings, spec: ModelSpec, days: Sequence[date], loader: VersionLoader | None = None
) -> ServedPredictions:
    """The challenger's scores of ``days`` (the ``challenger`` timeline; no fallback: a shadow
    that cannot score is only a warning). Kept apart from the served predictions and the signal.
    """
    load = loader or (lambda v: load_on_cpu(settings.mlflow_uri, spec.name, v))
    timeline = alias_timeline(settings, spec.name, CHALLENGER)
    plan: dict[date, ServedBy] = {}
    groups: dict[str, list[date]] = {}
    for day in sorted(set(days)):
        held = assignment_on(timeline, day)
        if held is None or held.version is None:
            plan[day] = ServedBy(None, "none", "no challenger")
        else:
            plan[day] = ServedBy(
                held.version, "promotion", f"challenger from {held.effective_from}"
            )
            groups.setdefault(held.version, []).append(day)
    features = served_features(settings, spec, [d for g in groups.values() for d in g])
    parts, used, skipped, warnings = [], {}, {}, []
    for day, served in plan.items():
        if served.version is None:
            skipped[day] = served.reason
    for version, group in groups.items():
        rows = features.filter(pl.col("date").is_in(pl.Series(group, dtype=pl.Date).implode()))
        try:
            scored = score_rows(load(version), rows, f"{spec.name} v{version}")
        except Exception as exc:
            warnings.append(f"challenger v{version} cannot score: {_error(exc)}")
            skipped.update(dict.fromkeys(group, f"challenger v{version} failed: {_error(exc)}"))
            continue
        parts.append(scored.with_columns(pl.lit(version, pl.String).alias(VERSION)))
        present = set(scored.get_column("date").unique().to_list())
        used.update({d: version for d in group if d in present})
        skipped.update({d: "no feature rows for the session" for d in group if d not in present})
    return ServedPredictions(
        frame=_served_frame(parts),
        plan=plan,
        used=used,
        skipped=skipped,
        warnings=warnings,
    )
