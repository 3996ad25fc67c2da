"""The lifecycle's daily decisions once a session's labels are known: the shadow test of a
challenger, and the watch over a new champion (rollback on decay or failed health).

Both read what was actually served (the predictions and shadow predictions in the lake, whose
rows name their version) and write an audit row for every decision they take.
"""

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date
from typing import Any

import polars as pl

from qlib_assets.asset_keys import shadow_asset
from qlib_assets.lifecycle.champion import (
    CHALLENGER,
    CHAMPION,
    alias_timeline,
    assign_alias,
    champion,
    fallback_versions,
    next_session_to_serve,
)
from qlib_assets.lifecycle.policies import ACTOR, Decision, policy_of
from qlib_assets.lifecycle.promotion import promote, record_decision
from qlib_assets.lifecycle.registry_access import registry_of
from qlib_assets.lifecycle.sample import load_on_cpu, score_sample, scoring_sample
from qlib_assets.lifecycle.served import VERSION
from qlib_assets.lifecycle.shadow import hac_lags, session_ic, shadow_test
from qlib_assets.models.specs import ModelSpec
from qlib_assets.monitoring.decay import ic_bound
from qlib_assets.online.builders import predictions_asset
from qlib_assets.settings import Settings
from qlib_assets.storage.lake import Lake


@dataclass(frozen=True)
class Health:
    ok: bool
    evidence: dict[str, Any]


def _labels(lake: Lake, spec: ModelSpec, days: Sequence[date]) -> pl.DataFrame:
    return lake.read_days(spec.label.asset, days).select(
        "instrument", "date", pl.col(spec.label.column).alias("label")
    )


def _rows_of(lake: Lake, asset: str, days: Sequence[date], version: str) -> pl.DataFrame:
    have = set(lake.days(asset))
    wanted = [d for d in days if d in have]
    if not wanted:
        return pl.DataFrame(schema={"instrument": pl.String, "date": pl.Date, "score": pl.Float64})
    frame = lake.read_days(asset, wanted)
    if VERSION not in frame.columns:
        return frame.clear()
    return frame.filter(pl.col(VERSION) == version)


def _labelled(lake: Lake, spec: ModelSpec, start: date, as_of: date) -> list[date]:
    return [d for d in lake.days(spec.label.asset) if start <= d <= as_of]


def shadow_review(
    settings: Settings, spec: ModelSpec, as_of: date, actor: str = ACTOR
) -> Decision | None:
    """Under the shadow policy, test the challenger once it has ``shadow_sessions`` sessions
    with labels up to ``as_of``; promote it, or keep the champion and retire the challenger."""
    if policy_of(settings, spec.name) != "shadow":
        return None
    registry = registry_of(settings)
    challenger = registry.aliases(spec.name).get(CHALLENGER)
    current = champion(settings, spec.name)
    if challenger is None or current is None:
        return None
    conf = settings.lifecycle
    start = alias_timeline(settings, spec.name, CHALLENGER)[-1].effective_from
    lake = Lake(settings.lake_dir)
    days = _labelled(lake, spec, start, as_of)
    shadow = _rows_of(lake, shadow_asset(spec.name), days, challenger)
    paired = sorted(set(shadow.get_column("date").to_list()))
    served = lake.read_days(predictions_asset(spec.name), paired) if paired else None
    if served is None or len(paired) < conf.shadow_sessions:
        return Decision(
            spec.name,
            challenger,
            "waiting",
            f"v{challenger}: {len(paired)} of {conf.shadow_sessions} shadow sessions with labels",
        )
    test = shadow_test(
        served,
        shadow,
        _labels(lake, spec, paired),
        margin=conf.shadow_margin,
        alpha=conf.shadow_alpha,
        lags=hac_lags(spec.label.horizon, conf.hac_lags),
    )
    evidence = test.evidence()
    verdict = (
        f"shadow test over {len(test.sessions)} sessions: challenger v{challenger} daily IC "
        f"{test.challenger_ic:.4f} vs champion v{current} {test.champion_ic:.4f}, HAC t "
        f"{test.statistic:.3f}, one-sided p {test.p_value:.4f} (margin {test.margin}, "
        f"lags {test.lags})"
    )
    record_decision(
        settings,
        spec.name,
        challenger,
        "shadow_test",
        "promote" if test.promote else "keep",
        actor,
        verdict,
        evidence,
    )
    effective = next_session_to_serve(settings, spec, challenger)
    if test.promote:
        outcome = promote(
            settings,
            spec,
            challenger,
            effective_from=effective,
            actor=actor,
            reason=verdict,
            evidence={"policy": "shadow", "shadow_test": evidence},
        )
        action = "promoted" if outcome.promoted else "refused"
        return Decision(spec.name, challenger, action, outcome.reason, evidence)
    assign_alias(
        settings, spec.name, CHALLENGER, None, effective, actor, f"champion kept: {verdict}"
    )
    return Decision(spec.name, challenger, "kept", verdict, evidence)


def health_check(settings: Settings, spec: ModelSpec, version: str) -> Health:
    """The version loads on the CPU and scores the fixed sample to finite scores, equal to the
    scores its gates recorded when the sample is the same."""
    tags = registry_of(settings).version(spec.name, version).tags
    try:
        sample = scoring_sample(settings, spec)
        scores = score_sample(load_on_cpu(settings.mlflow_uri, spec.name, version), sample)
    except Exception as exc:
        return Health(False, {"error": f"{type(exc).__name__}: {exc}"[:1000]})
    evidence: dict[str, Any] = {
        "finite": bool(scores.frame.get_column("score").is_finite().all()),
        "seconds": round(scores.seconds, 4),
    }
    if tags.get("gate.sample_sha256") == sample.sha256:
        evidence["matches_gate_scores"] = scores.digest() == tags.get("gate.scores_digest")
    return Health(all(v for k, v in evidence.items() if k != "seconds"), evidence)


def rollback(
    settings: Settings,
    spec: ModelSpec,
    version: str,
    to_version: str,
    reason: str,
    evidence: dict[str, Any],
    actor: str = ACTOR,
) -> Decision:
    """Mark ``version`` rolled back and make ``to_version`` the champion again."""
    effective = next_session_to_serve(settings, spec, version)
    registry_of(settings).transition(spec.name, version, "rolled_back", actor, reason, evidence)
    assign_alias(
        settings,
        spec.name,
        CHAMPION,
        to_version,
        effective,
        actor,
        f"rollback: {reason}",
        {"rolled_back": version, **evidence},
    )
    record_decision(
        settings, spec.name, version, "rollback", f"v{to_version}", actor, reason, evidence
    )
    return Decision(spec.name, version, "rolled_back", reason, evidence)


def rollback_review(
    settings: Settings, spec: ModelSpec, as_of: date, actor: str = ACTOR
) -> Decision | None:
    """Watch a champion during its first ``rollback_sessions`` served sessions: roll back to the
    previous champion when its health check fails or its realized IC over the last
    ``rollback_window`` labelled sessions is below its decay bound."""
    current = champion(settings, spec.name)
    timeline = alias_timeline(settings, spec.name)
    if current is None or not timeline or timeline[-1].version != current:
        return None
    previous = fallback_versions(settings, spec.name, current)
    if not previous:
        return None
    conf, monitoring = settings.lifecycle, settings.monitoring
    lake = Lake(settings.lake_dir)
    start = timeline[-1].effective_from
    served = _rows_of(
        lake, predictions_asset(spec.name), _labelled(lake, spec, start, as_of), current
    )
    days = sorted(set(served.get_column("date").to_list()))
    if len(days) > conf.rollback_sessions:
        return None
    health = health_check(settings, spec, current)
    if not health.ok:
        why = f"v{current} failed its health check in its first {len(days)} sessions"
        return rollback(settings, spec, current, previous[0], why, health.evidence, actor)
    if len(days) < conf.rollback_window:
        return None
    recent = days[-conf.rollback_window :]
    daily = session_ic(served.filter(pl.col("date").is_in(recent)), _labels(lake, spec, recent))
    realized = float(daily.get_column("ic").mean())  # type: ignore[arg-type]
    tags = registry_of(settings).version(spec.name, current).tags
    valid_ic = float(tags.get("metric.valid_ic", "nan"))
    bound = ic_bound(valid_ic, monitoring.decay_ratio, monitoring.decay_floor)
    if realized >= bound:
        return None
    evidence = {
        "sessions": [d.isoformat() for d in recent],
        "realized_ic": realized,
        "bound": bound,
        "valid_ic": valid_ic,
        "ratio": monitoring.decay_ratio,
        "floor": monitoring.decay_floor,
        "served_sessions": len(days),
    }
    why = (
        f"v{current}'s realized IC {realized:.4f} over {len(recent)} sessions is below its decay "
        f"bound {bound:.4f} within its first {conf.rollback_sessions} sessions"
    )
    return rollback(settings, spec, current, previous[0], why, evidence, actor)


def daily_review(settings: Settings, spec: ModelSpec, as_of: date) -> list[Decision]:
    """Everything decided for ``spec`` once the labels of ``as_of`` are known."""
    found = [rollback_review(settings, spec, as_of), shadow_review(settings, spec, as_of)]
    return [d for d in found if d is not None]
